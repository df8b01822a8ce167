"""The live monitor of one job: progress, rate, ETA, phase, API budget, the rate-limit pause,
flagged and failed items, events and the history of executions.

It polls the service twice a second, whether the run is in this app or in another process
(a headless `jobs run`): one code path, so attaching after an SSH reconnect looks the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Log, ProgressBar, Static, TabbedContent, TabPane

from core.state import ItemRecord
from tui.screens import JOB_CONTROL_BINDINGS, AppScreen
from tui.service import AppService, Budget, LiveView, RunEvent, ServiceError
from tui.widgets.format import clock, duration, rate, size, status_text, when
from tui.widgets.history import ExecutionHistory
from tui.widgets.theme import AMBER, BLUE, GREEN, RED

POLL = 0.5  # seconds: the engine reports twice a second; repainting faster shows nothing new
TABLES_EVERY = 2.0  # seconds between re-reading items and history while a run goes on
RESUMABLE = ("interrupted", "paused")
CONTROLS = {"monitor-start": "app.run_job", "monitor-pause": "app.pause_job",
            "monitor-cancel": "app.cancel_job"}


def headline(live: LiveView) -> Text:
    """One line saying what is happening to the job, in words a user acts on."""
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
        return Text(f"● Running in another process{pid}: attached, read from the state file",
                    style=f"bold {BLUE}")
    if execution is None:
        return Text("Never run: press r to start it")
    status = live.status
    if status == "interrupted":
        text = {"pause": "Paused by you", "cancel": "Cancelled by you"}.get(
            live.requested or "", "Interrupted")
        return Text(f"{text}: resumable, r continues where it stopped", style=AMBER)
    if status == "paused":
        after = f" after {clock(execution.resume_at)}" if execution.resume_at else ""
        return Text(f"Paused for the API rate limit: run it again{after} to continue",
                    style=AMBER)
    if status == "failed":
        return Text(f"Failed: {execution.error or 'see the events'}", style=f"bold {RED}")
    words = {"completed": ("Completed", GREEN),
             "no_changes": ("No changes: both sides are in step", GREEN),
             "warn": ("Completed with flagged or failed items (below)", f"bold {AMBER}")}
    label, style = words.get(status, (status, ""))
    return Text(label, style=style)


def counts(live: LiveView) -> str:
    stats = live.stats
    more = "" if stats.listing_done or not live.running else "+"
    if live.running:
        speed = rate(live.rate)
        eta = "…" if live.eta is None else duration(live.eta)
        timing = f"{speed} · ETA {eta}"
    else:
        timing = f"{rate(live.rate)} average"
    return (f"Files {stats.transferred:,} of {stats.planned_files:,}{more} · "
            f"{size(stats.bytes)} of {size(stats.planned_bytes)}{more} · {timing}")


def details(live: LiveView) -> str:
    stats = live.stats
    return (f"Phase: {live.phase} · checked {stats.files + stats.folders:,} · "
            f"skipped {stats.skipped:,} · flagged {stats.flagged:,} · failed {stats.failed:,} · "
            f"{stats.in_flight} in flight (up to {live.job.parallel_writes} at once)")


def api_line(live: LiveView, budgets: Sequence[Budget], now: float) -> str:
    stats = live.stats
    text = f"API calls {stats.api_calls:,} · rate-limit waits {stats.rate_limit_waits:,}"
    if not budgets:
        return text + " · no API rate limit recorded"
    tightest = min(budgets, key=lambda b: b.remaining / max(b.limit, 1))
    text += f" · budget {tightest.remaining:,} of {tightest.limit:,} left"
    if tightest.reset_at > now:
        text += f", resets in {duration(tightest.reset_at - now)}"
    if tightest.blocked_until > now:
        text += f" · blocked until {clock(tightest.blocked_until)} (the API said slow down)"
    return text


def waiting_line(live: LiveView, now: float) -> Text | None:
    """The rate-limit pause of a running execution: it continues by itself."""
    until = live.stats.waiting_until
    if not live.running or not until:
        return None
    return Text(f"⏸ Paused until {clock(until)} (rate limit): continues by itself in "
                f"{duration(until - now)}", style=f"bold {AMBER}")


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
        Binding("escape", "dismiss", "Back", id="close-monitor"),
    ]

    def __init__(self, service: AppService, job_id: str) -> None:
        super().__init__(service)
        self.job_id = job_id
        self._tables_key: tuple[object, ...] | None = None
        self._tables_at = 0.0
        self._problems: list[tuple[str, str, str, str]] | None = None
        self._last_event: RunEvent | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="monitor-summary"):
            yield Static(id="monitor-job")
            yield Static(id="monitor-status")
            yield ProgressBar(id="monitor-progress", total=100, show_eta=False)
            yield Static(id="monitor-counts", markup=False)
            yield Static(id="monitor-details", markup=False)
            yield Static(id="monitor-api", markup=False)
            yield Static(id="monitor-waiting")
            with Horizontal(id="monitor-buttons"):
                yield Button("Start", id="monitor-start", variant="success", compact=True)
                yield Button("Pause", id="monitor-pause", variant="warning", compact=True)
                yield Button("Cancel", id="monitor-cancel", variant="error", compact=True)
        with TabbedContent(id="monitor-tabs"):
            with TabPane("Flagged and failed", id="tab-problems"):
                yield DataTable(id="monitor-problems", cursor_type="row", zebra_stripes=True)
            with TabPane("History", id="tab-history"):
                yield ExecutionHistory(id="monitor-history")
            with TabPane("Events", id="tab-events"):
                yield Log(id="monitor-events", max_lines=2000)

    async def on_mount(self) -> None:
        self.query_one("#monitor-problems", DataTable).add_columns(
            "Status", "Path", "Reason", "Tries")
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
            self.query_one("#monitor-status", Static).update(Text(str(exc)))
            return
        self.dryviq.selected_job = live.job
        budgets = await self.service.budgets()
        now = time.time()
        job = live.job
        self.sub_title = f"Monitor · {job.name}"
        self.query_one("#monitor-job", Static).update(Text(
            f"{job.name} · {job.transfer_type}{' (simulation)' if job.simulation_mode else ''}"))
        status = headline(live)
        if live.execution:
            ran = (live.execution.ended_at or now) - live.execution.started_at
            status.append(f" · #{live.execution.id} started {when(live.execution.started_at)}"
                          f", {duration(ran)}")
        self.query_one("#monitor-status", Static).update(status)
        self.query_one("#monitor-progress", ProgressBar).update(progress=progress_percent(live))
        self.query_one("#monitor-counts", Static).update(counts(live))
        self.query_one("#monitor-details", Static).update(details(live))
        self.query_one("#monitor-api", Static).update(api_line(live, budgets, now))
        waiting = waiting_line(live, now)
        waiting_widget = self.query_one("#monitor-waiting", Static)
        waiting_widget.display = waiting is not None
        waiting_widget.update(waiting or "")
        self._show_controls(live)
        self._show_events(live)
        await self._refresh_tables(live, now)

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
                           f"{event.kind}: {event.message}")
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
        self._show_problems(await self.service.problems(self.job_id))
        self.query_one("#monitor-history", ExecutionHistory).show(
            await self.service.history(self.job_id))

    def _show_problems(self, items: Sequence[ItemRecord]) -> None:
        rows = [(item.status, "/" + item.path, item.last_error or item.note or "",
                 str(item.attempts)) for item in items]
        tabs = self.query_one("#monitor-tabs", TabbedContent)
        tabs.get_tab("tab-problems").label = f"Flagged and failed ({len(rows)})"
        if rows == self._problems:
            return
        self._problems = rows
        table = self.query_one("#monitor-problems", DataTable)
        table.clear()
        for status, path, reason, tries in rows:
            table.add_row(status_text(status), Text(path), Text(reason), tries)

    @on(Button.Pressed, "#monitor-buttons Button")
    async def _control(self, event: Button.Pressed) -> None:
        await self.app.run_action(CONTROLS[event.button.id or ""])
        await self.refresh_view()
