"""The jobs list: every job with its route and last run, the selected job's history, and the
dialog that imports a DryvIQ job JSON file. Jobs are edited, duplicated and deleted from here."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Static

from core.jobs import JobError
from core.schedule import local_zone
from tui.screens import JOB_CONTROL_BINDINGS, AppScreen
from tui.service import AppService, Created, JobRow
from tui.widgets.confirm import DialogScroll, dismiss_unless_kept
from tui.widgets.fitted_table import FittedTable
from tui.widgets.format import plain, printable, status_text, when
from tui.widgets.history import ExecutionHistory
from tui.widgets.list_filter import ListFilter, leave_filter

POLL = 0.5  # seconds between refreshes: statuses change while jobs run
# The route last: it is the longest, and at 80 columns it is the one cut short.
COLUMNS = (("name", "Name"), ("status", "Last run"), ("at", "Started"), ("next", "Next run"),
           ("type", "Type"), ("simulation", "Sim"), ("route", "Source → Destination"))
# Names and routes share the width the other columns leave; the history title shows a name
# whole, so one long name never takes more than this.
FLEXIBLE = {"name": 40, "route": 80}
NO_CONNECTIONS = ("No jobs yet. A job copies from one connection to another, so add a "
                  "connection first: press [b]c[/b] for Connections, then [b]a[/b] to add one.")
EMPTY = ("No jobs yet. Press [b]n[/b] to build one, or [b]i[/b] to import a DryvIQ job JSON "
         "file.")


def next_run_text(row: JobRow, now: dt.datetime) -> str:
    """When the job runs next by its schedule, in local time with the zone: the time alone
    today, with the weekday this week, with the date beyond; else why it will not."""
    moment = row.next_run
    if row.state.code == "complete":
        return "complete"
    if moment is None:
        return "" if row.job.schedule_mode == "manual" else "—"
    if moment <= now:
        return "due now"
    moment = moment.astimezone(now.tzinfo)
    if moment.date() == now.date():
        return f"{moment:%H:%M %Z}"
    if (moment.date() - now.date()).days < 7:
        return f"{moment:%a %H:%M %Z}"
    return f"{moment:%Y-%m-%d %H:%M %Z}"


def _cells(row: JobRow, now: dt.datetime) -> tuple[object, ...]:
    return (plain(row.job.name), status_text(row.status, row.where, row.host),
            when(row.last.started_at)[:16] if row.last else "", next_run_text(row, now),
            row.job.transfer_type, "yes" if row.job.simulation_mode else "",
            plain(f"{row.source} → {row.destination}"))


class JobsScreen(AppScreen[None]):
    """Jobs and their last runs; the highlighted job is the one the job keys act on."""

    SUB_TITLE = "Jobs"
    AUTO_FOCUS = "#jobs-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        *JOB_CONTROL_BINDINGS,
        Binding("m", "open_monitor", "Monitor", id="open-monitor"),
        Binding("e", "app.edit_job", "Edit", id="edit-job"),
        Binding("y", "app.duplicate_job", "Duplicate", id="duplicate-job", show=False),
        Binding("delete", "app.delete_job", "Delete", id="delete-job"),
        Binding("slash", "filter", "Filter", id="filter-jobs"),
        Binding("escape", "leave_filter", "Back to the list", id="leave-jobs-filter",
                show=False),
    ]

    def __init__(self, service: AppService) -> None:
        super().__init__(service)
        self._rows: dict[str, JobRow] = {}
        self._follow_selection = True
        self._history_of: tuple[object, ...] | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="jobs-body"):
            yield ListFilter("jobs", id="jobs-filter")
            yield Static(EMPTY, id="jobs-empty")
            yield FittedTable(COLUMNS, FLEXIBLE, optional={"next"}, id="jobs-table")
            yield Static(id="jobs-schedules", markup=False)
            yield Static("History", id="jobs-history-title", classes="section")
            yield ExecutionHistory(id="jobs-history")

    async def on_mount(self) -> None:
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
        every = await self.service.job_rows()
        shown = self.query_one("#jobs-filter", ListFilter)
        rows = {row.job.id: row for row in every
                if shown.matches(row.job.name, row.source, row.destination)}
        table = self.query_one("#jobs-table", FittedTable)
        now = dt.datetime.now(local_zone())
        rebuilt = table.show({job_id: _cells(row, now) for job_id, row in rows.items()})
        self._show_scheduling(every)
        self._rows = rows
        await self._show_empty(bool(every), bool(rows))
        selected = self.dryviq.selected_job
        if (rebuilt or self._follow_selection) and selected and selected.id in rows:
            table.move_cursor(row=list(rows).index(selected.id))
        self._follow_selection = False
        await self._sync_selection()

    def _show_scheduling(self, rows: list[JobRow]) -> None:
        """Who runs the schedules: shown where a job has a schedule or an agent runs."""
        line = self.query_one("#jobs-schedules", Static)
        scheduling = self.service.scheduling
        line.display = scheduling.by == "agent" or any(
            row.job.schedule_mode != "manual" or row.state.code == "complete" for row in rows)
        line.update(scheduling.words)

    async def _show_empty(self, any_jobs: bool, any_shown: bool) -> None:
        """Why the list is empty, and what to do about it."""
        empty = self.query_one("#jobs-empty", Static)
        empty.display = not any_shown
        if any_jobs:
            typed = self.query_one("#jobs-filter", ListFilter).value.strip()
            empty.update(plain(f"No job matches “{typed}”. Esc twice clears the filter."))
        elif any_shown is False and not await self.service.connections():
            empty.update(NO_CONNECTIONS)
        else:
            empty.update(EMPTY)

    async def _sync_selection(self) -> None:
        """The highlighted job becomes the app's selected job; its history is shown."""
        ids = list(self._rows)
        row_index = self.query_one("#jobs-table", DataTable).cursor_row
        row = self._rows[ids[row_index]] if 0 <= row_index < len(ids) else None
        self.dryviq.selected_job = row.job if row else None
        await self._show_history(row)

    async def _show_history(self, row: JobRow | None) -> None:
        last = row.last if row else None
        key = (row.job.id if row else None, last and (last.id, last.status, last.heartbeat_at),
               row and row.state)
        if key == self._history_of:
            return
        self._history_of = key
        title = self.query_one("#jobs-history-title", Static)
        history = self.query_one("#jobs-history", ExecutionHistory)
        complete = f" · {row.state.words}" if row and row.state.code == "complete" else ""
        title.update(plain(f"History of {row.job.name}{complete}" if row else "History"))
        history.show(await self.service.history(row.job.id) if row else [])

    @on(DataTable.RowHighlighted, "#jobs-table")
    async def _highlighted(self) -> None:
        await self._sync_selection()

    @on(DataTable.RowSelected, "#jobs-table")
    def _selected(self) -> None:
        self.action_open_monitor()

    def action_open_monitor(self) -> None:
        self.dryviq.action_open_monitor()

    # -- the filter ---------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.query_one("#jobs-filter", ListFilter).open()

    @on(Input.Changed, "#jobs-filter")
    async def _filter_changed(self) -> None:
        await self.refresh_jobs()

    @on(Input.Submitted, "#jobs-filter")
    def action_leave_filter(self) -> None:
        """From the filter back to the list; on the list, Esc clears the filter."""
        leave_filter(self.query_one("#jobs-filter", ListFilter),
                     self.query_one("#jobs-table", DataTable))


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
            errors.update("The job was not created:\n"
                          + "\n".join(f"• {printable(e)}" for e in exc.errors))
            return
        self.dismiss(created)
