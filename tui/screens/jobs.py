"""The jobs list: every job with its route and last run, the selected job's history, and the
dialog that imports a DryvIQ job JSON file."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Static

from core.jobs import JobError
from tui.screens import JOB_CONTROL_BINDINGS, AppScreen
from tui.service import AppService, Created, JobRow
from tui.widgets.confirm import DialogScroll, dismiss_unless_kept
from tui.widgets.format import status_text, when
from tui.widgets.history import ExecutionHistory

POLL = 0.5  # seconds between refreshes: statuses change while jobs run
# The route last: it is the longest, and at 80 columns it is the one cut short.
COLUMNS = (("name", "Name"), ("status", "Last run"), ("at", "Started"), ("type", "Type"),
           ("simulation", "Sim"), ("route", "Source → Destination"))
NAME_WIDTH = 30  # longer names are cut here (the history title shows them whole)
EMPTY = ("No jobs yet. Press [b]n[/b] to build one, or [b]i[/b] to import a DryvIQ job JSON "
         "file.")


def _cells(row: JobRow) -> tuple[object, ...]:
    name = row.job.name
    if len(name) > NAME_WIDTH:
        name = name[:NAME_WIDTH - 1] + "…"
    return (Text(name), status_text(row.status, row.where),
            when(row.last.started_at)[:16] if row.last else "", row.job.transfer_type,
            "yes" if row.job.simulation_mode else "", Text(f"{row.source} → {row.destination}"))


class JobsScreen(AppScreen[None]):
    """Jobs and their last runs; the highlighted job is the one the job keys act on."""

    SUB_TITLE = "Jobs"
    BINDINGS: ClassVar[list[BindingType]] = [
        *JOB_CONTROL_BINDINGS,
        Binding("m", "open_monitor", "Monitor", id="open-monitor"),
    ]

    def __init__(self, service: AppService) -> None:
        super().__init__(service)
        self._shown: dict[str, tuple[object, ...]] = {}
        self._rows: dict[str, JobRow] = {}
        self._follow_selection = True
        self._history_of: tuple[object, ...] | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="jobs-body"):
            yield Static(EMPTY, id="jobs-empty")
            yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
            yield Static("History", id="jobs-history-title", classes="section")
            yield ExecutionHistory(id="jobs-history")

    async def on_mount(self) -> None:
        table = self.query_one("#jobs-table", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        await self.refresh_jobs()
        self.set_interval(POLL, self.refresh_jobs)

    async def on_screen_resume(self) -> None:
        self._follow_selection = True  # a job made elsewhere (builder, import) is selected
        await self.refresh_jobs()

    async def refresh_jobs(self) -> None:
        """Bring the table up to date, touching only cells that changed. Under another
        screen it waits: the resume refreshes it, and the job in view stays that screen's."""
        if not self.is_current:
            return
        rows = {row.job.id: row for row in await self.service.job_rows()}
        table = self.query_one("#jobs-table", DataTable)
        wanted = {job_id: _cells(row) for job_id, row in rows.items()}
        rebuilt = list(wanted) != list(self._shown)
        if rebuilt:
            table.clear()
            for job_id, cells in wanted.items():
                table.add_row(*cells, key=job_id)
        else:
            for job_id, cells in wanted.items():
                for (column, _), old, new in zip(COLUMNS, self._shown[job_id], cells,
                                                 strict=True):
                    if old != new:
                        table.update_cell(job_id, column, new, update_width=True)
        self._shown, self._rows = wanted, rows
        self.query_one("#jobs-empty").display = not rows
        selected = self.dryviq.selected_job
        if (rebuilt or self._follow_selection) and selected and selected.id in rows:
            table.move_cursor(row=list(rows).index(selected.id))
        self._follow_selection = False
        await self._sync_selection()

    async def _sync_selection(self) -> None:
        """The highlighted job becomes the app's selected job; its history is shown."""
        ids = list(self._rows)
        row_index = self.query_one("#jobs-table", DataTable).cursor_row
        row = self._rows[ids[row_index]] if 0 <= row_index < len(ids) else None
        self.dryviq.selected_job = row.job if row else None
        await self._show_history(row)

    async def _show_history(self, row: JobRow | None) -> None:
        last = row.last if row else None
        key = (row.job.id if row else None, last and (last.id, last.status, last.heartbeat_at))
        if key == self._history_of:
            return
        self._history_of = key
        title = self.query_one("#jobs-history-title", Static)
        history = self.query_one("#jobs-history", ExecutionHistory)
        title.update(Text(f"History of {row.job.name}" if row else "History"))
        history.show(await self.service.history(row.job.id) if row else [])

    @on(DataTable.RowHighlighted, "#jobs-table")
    async def _highlighted(self) -> None:
        await self._sync_selection()

    @on(DataTable.RowSelected, "#jobs-table")
    def _selected(self) -> None:
        self.action_open_monitor()

    def action_open_monitor(self) -> None:
        self.dryviq.action_open_monitor()


class ImportJobScreen(ModalScreen[Created | None]):
    """Asks for a job file's path and creates the job through core; every problem is listed
    under the path, and nothing is saved until the file is valid."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close", id="close-dialog")]

    def __init__(self, service: AppService) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        with Vertical(id="import-dialog", classes="dialog"):
            yield Static("Import a DryvIQ job JSON file", classes="dialog-title")
            yield Input(placeholder="path of the job file, e.g. ~/jobs/tower-a.json",
                        id="import-path")
            with DialogScroll(classes="dialog-scroll"):
                yield Static(id="import-errors", classes="errors", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Import", id="import-ok", variant="primary", compact=True)
                yield Button("Cancel", id="import-cancel", compact=True)

    @on(Button.Pressed, "#import-cancel")
    def action_cancel(self) -> None:
        typed = self.query_one("#import-path", Input).value.strip()
        dismiss_unless_kept(self, bool(typed), "Discard the typed path?")

    @on(Input.Submitted, "#import-path")
    @on(Button.Pressed, "#import-ok")
    async def _import(self) -> None:
        path = self.query_one("#import-path", Input).value.strip()
        errors = self.query_one("#import-errors", Static)
        if not path:
            errors.update("Type the path of a job file.")
            return
        try:
            created = await self.service.import_job(path)
        except JobError as exc:
            errors.update("The job was not created:\n" + "\n".join(f"• {e}" for e in exc.errors))
            return
        self.dismiss(created)
