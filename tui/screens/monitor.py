"""The live monitor of one job: progress, rate, ETA, phase, API budget, the rate-limit pause,
what the run changed on each side (↑ to the destination, ↓ to the source), its throttle, a run
the delete guard stopped and the key that runs it anyway, flagged and failed items, events and
the history of executions.

It polls the service twice a second, whether the run is in this app or in another process
(a headless `jobs run`): one code path, so attaching after an SSH reconnect looks the same.
"""

from __future__ import annotations

import shlex
import time
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Log, ProgressBar, Static, TabbedContent, TabPane

from core.explain import explain, throttle
from core.jobs import JobError, Transfer, parse_job
from core.paths import printable
from core.readout import BudgetReadout, eta_text, pause_text, tightest
from core.sides import outcomes, side_lines
from core.state import ItemRecord
from core.status import attempts, item_detail, label
from tui.screens import JOB_CONTROL_BINDINGS, AppScreen
from tui.service import AppService, LiveView, RunEvent, ServiceError
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.format import (
    clock,
    count,
    duration,
    ellipsis,
    middle,
    plain,
    rate,
    size,
    status_text,
    when,
)
from tui.widgets.history import ExecutionHistory
from tui.widgets.item_detail import ItemDetailScreen
from tui.widgets.theme import AMBER, BLUE, GREEN, RED
from tui.widgets.throughput import ThroughputChart

POLL = 0.5  # seconds: the engine reports twice a second; repainting faster shows nothing new
TABLES_EVERY = 2.0  # seconds between re-reading items and history while a run goes on
RESUMABLE = ("interrupted", "paused")
TRIES_WIDTH = 5
EVENTS_HINT = ("What this job's runs say while the app is open: rate-limit pauses, your "
               "pauses, flagged and failed items, retries.")
REASON_LINES = 3  # a longer reason is cut; Enter on its row shows all of it
PATH_LINES = 2  # a longer path is cut in the middle, keeping its start and its name
CONTROLS = {"monitor-start": "app.run_job", "monitor-pause": "app.pause_job",
            "monitor-cancel": "app.cancel_job"}


def headline(live: LiveView) -> Text:
    """One line saying what is happening to the job, in words a user acts on. A stopped run
    says its status's label first, as the history and `jobs history` do."""
    execution = live.execution
    if live.where == "here":
        if live.status == "stopping":
            if live.requested == "cancel":
                text = "Cancelling: stopping now"
            elif live.stats.waiting_until:  # the stop ends the wait for the budget at once
                text = "Pausing: leaving the wait for the rate limit"
            else:
                text = "Pausing: the files in flight finish first"
            return Text(text, style=f"bold {AMBER}")
        return Text("● Running in this app", style=f"bold {BLUE}")
    if live.where == "elsewhere":
        pid = f" (process {execution.pid})" if execution else ""
        where = f"on {printable(live.host)}" if live.host else "in another process"
        return Text(f"● Running {where}{pid}: attached, read from the state",
                    style=f"bold {BLUE}")
    if execution is None:
        return Text("Never run: press r to start it")
    status = live.status
    if status == "interrupted":
        cause = {"pause": " by your pause", "cancel": " by your cancel"}.get(
            live.requested or "", "")
        return Text(f"Interrupted{cause}: resumable, r continues where it stopped",
                    style=AMBER)
    if status == "paused":
        after = f" after {clock(execution.resume_at)}" if execution.resume_at else ""
        return Text(f"Paused: rate limit; r{after} continues where it stopped", style=AMBER)
    if status == "failed":
        return plain(f"Failed: {execution.error or 'see the events'}", style=f"bold {RED}")
    if status == "guarded":
        return Text("Stopped by the delete guard: nothing was changed", style=f"bold {AMBER}")
    words = {"completed": ("Completed", GREEN),
             "no_changes": ("No changes: both sides are in step", GREEN),
             "warn": ("Completed, flagged: see the flagged and failed items below",
                      f"bold {AMBER}")}
    text, style = words.get(status, (label(status), ""))
    return Text(text, style=style)


def counts(live: LiveView, budget: BudgetReadout | None, now: float) -> str:
    stats = live.stats
    more = "" if stats.listing_done or not live.running else "+"
    if live.running:
        timing = f"{rate(live.rate)} · ETA {eta_text(stats, live.eta, budget, now)}"
    else:  # a run that moved nothing has no average worth a word
        timing = f"{rate(live.rate)} average" if live.rate >= 1 else ""
    return " · ".join(filter(None, [
        f"Files {stats.transferred:,} of {stats.planned_files:,}{more}",
        f"{size(stats.bytes)} of {size(stats.planned_bytes)}{more}", timing]))


def details(live: LiveView) -> str:
    stats = live.stats
    return (f"Phase: {live.phase} · checked {stats.files + stats.folders:,} · "
            f"skipped {stats.skipped:,} · flagged {stats.flagged:,} · failed {stats.failed:,} · "
            f"{stats.in_flight} in flight (up to {live.job.parallel_writes} at once)")


def api_line(live: LiveView, budget: BudgetReadout | None, now: float) -> str:
    """Calls, waits and the tightest budget, in the words `jobs run` uses (core.readout)."""
    stats = live.stats
    text = (f"{count(stats.api_calls, 'API call')} · "
            f"{count(stats.rate_limit_waits, 'rate-limit wait')}")
    if budget is None:
        return text + " · no API rate limit recorded"
    paused = stats.waiting_until if live.running else None
    return f"{text} · {budget.line(now, paused)}"


def sides_text(live: LiveView, transfer: Transfer | None) -> str:
    """What the run changed on each side, its conflicts, moves and versions, and the job's
    throttle; "" before the first run of a job without a throttle."""
    stats, kind = live.stats, live.job.transfer_type
    changed = live.running or (live.execution is not None and live.status != "guarded")
    lines = side_lines(stats, kind) if changed else []  # a guarded run changed nothing
    more = [outcomes(stats, kind) if lines else "",
            (throttle(transfer.upload_bytes_per_second, transfer.download_bytes_per_second)
             or "") if transfer else ""]
    if any(more):
        lines.append(" · ".join(filter(None, more)))
    return "\n".join(lines)


def guard_reason(live: LiveView) -> str | None:
    """Why the delete guard stopped the newest run, when it did."""
    if live.status != "guarded":
        return None
    execution = live.execution
    return live.stats.delete_guard or (execution.error if execution else None) or (
        "more would be deleted than the job's max_delete allows")


def guard_text(reason: str, job_name: str) -> Text:
    text = Text()
    text.append(plain(f"⚠ {reason}", style=f"bold {AMBER}"))
    text.append("\n")
    text.append(plain(f"If the deletes are meant, f (Run anyway) proceeds, as "
                      f"`dryviq-tui jobs run --force {shlex.quote(job_name)}` does."))
    return text


def waiting_line(live: LiveView, now: float) -> Text | None:
    """The rate-limit pause of a running execution: it continues by itself."""
    until = live.stats.waiting_until
    if not live.running or not until:
        return None
    text = pause_text(until, now)
    return Text(f"⏸ {text[0].upper()}{text[1:]}", style=f"bold {AMBER}")


def problem_widths(width: int, status_width: int) -> tuple[int, int]:
    """Reason and path column widths in a table `width` cells wide: the reason gets the
    larger share (it says what to do), the path the rest; both wrap."""
    rest = max(24, width - status_width - TRIES_WIDTH - 4 * 2 - 2)  # padding, scrollbar
    reason = rest * 3 // 5
    return reason, rest - reason


def problem_row(item: ItemRecord, reason_width: int, path_width: int) -> tuple[Text, ...]:
    reason = Text(ellipsis(printable(item_detail(item)), reason_width * REASON_LINES))
    path = Text(middle(printable("/" + item.path), path_width * PATH_LINES), overflow="fold")
    return status_text(item.status), reason, path, Text(attempts(item))


def progress_percent(live: LiveView) -> float:
    stats = live.stats
    if stats.planned_bytes:
        return min(100.0, 100 * stats.bytes / stats.planned_bytes)
    if stats.planned_files:
        return 100 * stats.transferred / stats.planned_files
    return 100.0 if live.execution and not live.running else 0.0


class MonitorScreen(AppScreen[None]):
    """The monitor of one job; closing it leaves the run going (the service owns it)."""

    SUB_TITLE = "Monitor"
    BINDINGS: ClassVar[list[BindingType]] = [
        *JOB_CONTROL_BINDINGS,
        Binding("f", "force_run", "Run anyway", id="force-run"),
        Binding("escape", "dismiss", "Back", id="close-monitor"),
    ]

    def __init__(self, service: AppService, job_id: str) -> None:
        super().__init__(service)
        self.job_id = job_id
        self._tables_key: tuple[object, ...] | None = None
        self._tables_at = 0.0
        self._problems: list[ItemRecord] = []
        self._problems_shown: tuple[object, ...] | None = None  # what the table was built from
        self._last_event: RunEvent | None = None
        self._guard: str | None = None  # why the delete guard stopped the newest run
        self._transfer: tuple[str, Transfer | None] = ("", None)  # (definition, parsed)

    def compose_body(self) -> ComposeResult:
        with Vertical(id="monitor-summary"):
            yield Static(id="monitor-job")
            yield Static(id="monitor-status")
            yield ProgressBar(id="monitor-progress", total=100, show_eta=False)
            yield Static(id="monitor-counts", markup=False)
            yield ThroughputChart(id="monitor-throughput")
            yield Static(id="monitor-details", markup=False)
            yield Static(id="monitor-api", markup=False)
            yield Static(id="monitor-sides", markup=False)
            yield Static(id="monitor-waiting")
            yield Static(id="monitor-guard")
            with Horizontal(id="monitor-buttons"):
                yield Button("Start", id="monitor-start", variant="success", compact=True)
                yield Button("Pause", id="monitor-pause", variant="warning", compact=True)
                yield Button("Cancel", id="monitor-cancel", variant="error", compact=True)
                yield Button("Run anyway", id="monitor-force", variant="error", compact=True)
        with TabbedContent(id="monitor-tabs"):
            with TabPane("Flagged and failed", id="tab-problems"):
                yield DataTable(id="monitor-problems", cursor_type="row", zebra_stripes=True)
            with TabPane("History", id="tab-history"):
                yield ExecutionHistory(id="monitor-history")
            with TabPane("Events", id="tab-events"):
                yield Log(id="monitor-events", max_lines=2000)

    async def on_mount(self) -> None:
        self.query_one("#monitor-events", Log).write_line(EVENTS_HINT)
        await self.refresh_view()
        self.set_interval(POLL, self.refresh_view)

    async def on_screen_resume(self) -> None:
        await self.refresh_view()

    async def refresh_view(self) -> None:
        if not self.is_current:  # under a dialog or another mode: the resume refreshes
            return
        try:
            live = await self.service.live(self.job_id)
        except ServiceError as exc:
            self.query_one("#monitor-status", Static).update(plain(exc))
            return
        self.dryviq.selected_job = live.job
        now = time.time()
        budget = tightest(await self.service.budgets(), now)
        job = live.job
        self.sub_title = f"Monitor · {printable(job.name)}"
        self.query_one("#monitor-job", Static).update(plain(
            f"{job.name} · {job.transfer_type}{' (simulation)' if job.simulation_mode else ''}"))
        status = headline(live)
        if live.execution:
            ran = (live.execution.ended_at or now) - live.execution.started_at
            status.append(f" · #{live.execution.id} started {when(live.execution.started_at)}"
                          f", {duration(ran)}")
        self.query_one("#monitor-status", Static).update(status)
        self.query_one("#monitor-progress", ProgressBar).update(progress=progress_percent(live))
        self.query_one("#monitor-counts", Static).update(counts(live, budget, now))
        if live.running and live.execution is not None:
            self.query_one(ThroughputChart).add(live.execution.id, time.monotonic(),
                                                live.stats.bytes)
        self.query_one("#monitor-details", Static).update(details(live))
        self.query_one("#monitor-api", Static).update(api_line(live, budget, now))
        waiting = waiting_line(live, now)
        waiting_widget = self.query_one("#monitor-waiting", Static)
        waiting_widget.display = waiting is not None
        waiting_widget.update(waiting or "")
        sides = sides_text(live, self._parsed(job.definition))
        sides_widget = self.query_one("#monitor-sides", Static)
        sides_widget.display = bool(sides)
        sides_widget.update(sides)
        self._show_guard(live)
        self._show_controls(live)
        self._show_events(live)
        await self._refresh_tables(live, now)

    def _parsed(self, definition: str) -> Transfer | None:
        """The job's transfer (for its throttle), parsed again only when the job changed."""
        if self._transfer[0] != definition:
            try:
                self._transfer = (definition, parse_job(definition).transfer)
            except JobError:
                self._transfer = (definition, None)
        return self._transfer[1]

    def _show_guard(self, live: LiveView) -> None:
        reason = None if live.running else guard_reason(live)
        guard = self.query_one("#monitor-guard", Static)
        guard.display = reason is not None
        guard.update(guard_text(reason, live.job.name) if reason else "")
        self.query_one("#monitor-force", Button).display = reason is not None
        if reason != self._guard:
            self._guard = reason
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Run anyway is offered only for a run the delete guard stopped."""
        return self._guard is not None if action == "force_run" else True

    def action_force_run(self) -> None:
        """Ask, then run past the delete guard."""
        if self._guard is None:
            return
        transfer = self._transfer[1]
        where = explain("trash", transfer.trash if transfer else None)
        self.app.push_screen(
            ConfirmScreen("Run anyway, past the delete guard?", "Run anyway",
                          detail=f"{self._guard}\n{where[0].upper()}{where[1:]}.",
                          keep_label="Don't run"),
            self._forced)

    async def _forced(self, confirmed: bool | None) -> None:
        if not confirmed:
            return
        job = self.dryviq.selected_job
        try:
            await self.service.start(self.job_id, force=True)
        except ServiceError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify(f"Started {job.name if job else 'the job'} past the delete guard",
                    markup=False)
        await self.refresh_view()

    def _show_controls(self, live: LiveView) -> None:
        start = self.query_one("#monitor-start", Button)
        start.disabled = live.running
        start.label = "Resume" if live.status in RESUMABLE else "Start"
        self.query_one("#monitor-pause", Button).disabled = (
            not live.running or live.status == "stopping")
        self.query_one("#monitor-cancel", Button).disabled = not live.running

    def _show_events(self, live: LiveView) -> None:
        events = live.events
        if self._last_event in events:
            events = events[events.index(self._last_event) + 1:]  # type: ignore[arg-type]
        if not events:
            return
        log = self.query_one("#monitor-events", Log)
        for event in events:
            log.write_line(f"{time.strftime('%H:%M:%S', time.localtime(event.at))} "
                           f"{event.kind}: {printable(event.message)}")
        self._last_event = events[-1]

    async def _refresh_tables(self, live: LiveView, now: float) -> None:
        """Items and history change when an execution starts, ends or flags something; while
        one runs they are re-read every few seconds, not at every poll."""
        execution = live.execution
        key = (execution and (execution.id, execution.status), live.stats.flagged,
               live.stats.failed)
        if key == self._tables_key and not (live.running and now - self._tables_at
                                            >= TABLES_EVERY):
            return
        self._tables_key, self._tables_at = key, now
        self._show_problems(list(await self.service.problems(self.job_id)))
        self.query_one("#monitor-history", ExecutionHistory).show(
            await self.service.history(self.job_id))

    def _show_problems(self, items: list[ItemRecord]) -> None:
        """Reason before path, both cut to the table's width (the path in the middle, so
        its start and its name both show); Enter on a row shows the item in full."""
        tabs = self.query_one("#monitor-tabs", TabbedContent)
        tabs.get_tab("tab-problems").label = f"Flagged and failed ({len(items)})"
        table = self.query_one("#monitor-problems", DataTable)
        status_width = max([len("Status"), *(len(label(item.status)) for item in items)])
        reason_width, path_width = problem_widths(table.size.width or self.size.width,
                                                  status_width)
        shown = (reason_width, path_width, *items)
        if shown == self._problems_shown:
            return
        self._problems, self._problems_shown = items, shown
        row = table.cursor_row
        table.clear(columns=True)
        table.add_column("Status", width=status_width)
        table.add_column("Reason", width=reason_width)
        table.add_column("Path", width=path_width)
        table.add_column("Tries", width=TRIES_WIDTH)
        for item in items:
            table.add_row(*problem_row(item, reason_width, path_width), height=None)
        if items:
            table.move_cursor(row=min(row, len(items) - 1))

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_problems, self._problems)

    @on(DataTable.RowSelected, "#monitor-problems")
    def _open_item(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self._problems):
            job = self.dryviq.selected_job
            if job is not None:
                self.app.push_screen(ItemDetailScreen(self._problems[event.cursor_row], job))

    @on(Button.Pressed, "#monitor-force")
    def _force_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_force_run()

    @on(Button.Pressed, "#monitor-buttons Button")
    async def _control(self, event: Button.Pressed) -> None:
        if event.button.id not in CONTROLS:
            return
        await self.app.run_action(CONTROLS[event.button.id])
        await self.refresh_view()
