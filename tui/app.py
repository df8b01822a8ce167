"""The Textual app: screens as modes over one AppService, keys users can remap, and a command
palette that offers every action.

`run(home)` is what `dryviq-tui` with no subcommand calls. Tests build `DryvIQApp(service)`
around a service they opened, or `DryvIQApp(home=...)` to let the app open and close its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from core.background import run_in_background
from core.engine.runner import RunResult
from core.home import ConfigError, Home, JobBusy
from core.job_store import duplicate_job, remove_job
from core.jobs import JobError
from core.paths import printable, printable_lines
from core.state import JobRecord, StateError
from core.status import RESUMABLE, label
from tui.keymap import package_binding_ids, read_keymap
from tui.screens import AppScreen, PlaceholderScreen
from tui.screens.analyze import AnalyzeScreen
from tui.screens.help import HelpScreen
from tui.screens.job_builder import Endpoint, JobBuilderScreen
from tui.screens.jobs import ImportJobScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.quit import QuitChoice, QuitScreen
from tui.service import AnalysisTarget, AppService, Created, ServiceError
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.format import count, size, status_text
from tui.widgets.theme import DRYVIQ_THEME

# mode -> (module, class, title). Imported behind a guard, so a build without one of them
# still runs and says so on that screen.
SCREENS = {
    "jobs": ("tui.screens.jobs", "JobsScreen", "Jobs"),
    "connections": ("tui.screens.connections", "ConnectionsScreen", "Connections"),
    "browser": ("tui.screens.browser", "BrowserScreen", "Browser"),
    "analyze": ("tui.screens.analyze", "AnalyzeScreen", "Analyze"),
}
DEFAULT_MODE = "jobs"

# Palette entries: (title, help, action); job actions act on the selected job.
COMMANDS = (
    ("Jobs", "Show the jobs list", "show('jobs')"),
    ("Connections", "Show the connections", "show('connections')"),
    ("Browser", "Browse a connection's folders", "show('browser')"),
    ("Analyze", "What a folder holds, what the other side would refuse, what a copy costs",
     "show('analyze')"),
    ("New job", "Build a job from fields", "new_job"),
    ("Import job JSON", "Create a job from a DryvIQ job JSON file", "import_job"),
    ("Run job", "Run or resume the selected job", "run_job"),
    ("Pause job", "Pause the selected job after the files in flight", "pause_job"),
    ("Cancel job", "Stop the selected job now (files in flight are rolled back)", "cancel_job"),
    ("Open monitor", "Watch the selected job's progress", "open_monitor"),
    ("Edit job", "Change the selected job in the builder", "edit_job"),
    ("Duplicate job", "Copy the selected job under a new name", "duplicate_job"),
    ("Delete job", "Delete the selected job (asks first)", "delete_job"),
    ("Keys", "Every key of this screen and the global ones, with their ids", "help"),
)
NO_JOB_HINT = 4.0  # seconds: "select a job first" is said once, not once per key press


def screen_class(mode: str) -> type[AppScreen[None]] | str:
    """The screen class of a mode, or why it is not available."""
    module_name, class_name, title = SCREENS[mode]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return f"The {title} screen is not available in this build yet."
    screen: type[AppScreen[None]] = getattr(module, class_name)
    return screen


class DryvIQApp(App[int]):
    """Jobs, connections and the browser as modes; the monitor and builder push over them."""

    TITLE = "DryvIQ"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "show('jobs')", "Jobs", id="show-jobs"),
        Binding("c", "show('connections')", "Connections", id="show-connections"),
        Binding("b", "show('browser')", "Browser", id="show-browser"),
        Binding("A", "show('analyze')", "Analyze", id="show-analyze", show=False),
        Binding("n", "new_job", "New", id="new-job"),
        Binding("i", "import_job", "Import", id="import-job"),
        Binding("question_mark,f1", "help", "Keys", id="show-help"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True, show=False),
    ]

    def __init__(self, service: AppService | None = None, *, home: Home | None = None,
                 greeting: str | None = None, background_runs: bool = True) -> None:
        """`background_runs`: whether quitting may hand running jobs to a headless process
        (not where their server lives in this process, as the demo's sandbox does)."""
        if (service is None) == (home is None):
            raise TypeError("DryvIQApp takes a service or a home (exactly one)")
        super().__init__()
        self._service = service
        self._home = home
        self._owns_service = service is None
        self._quitting = False
        self._no_job_hint_until = 0.0
        self._greeting = greeting
        self._background_runs = background_runs
        self.selected_job: JobRecord | None = None  # what the job actions act on

    @property
    def service(self) -> AppService:
        if self._service is None:
            raise RuntimeError("the app's service opens when the app is mounted")
        return self._service

    async def on_mount(self) -> None:
        self.register_theme(DRYVIQ_THEME)
        self.theme = DRYVIQ_THEME.name
        if self._service is None:
            assert self._home is not None
            try:
                self._service = await AppService.open(self._home)
            except StateError as exc:
                self.exit(return_code=1, message=f"dryviq-tui: error: {exc}")
                return
        self.service.on_finished = self._finished
        self.service.start_scheduling()
        self._apply_keymap()
        for mode in SCREENS:
            self.add_mode(mode, partial(self._make_screen, mode))
        await self.switch_mode(DEFAULT_MODE)
        if self._greeting:
            self.notify(self._greeting, title="Welcome", markup=False, timeout=20)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # `kill` (or a monitor elsewhere pausing a job run here) quits as ctrl+q does
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGTERM, partial(self.call_later, self._pause_and_exit))

    async def on_unmount(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        if self._owns_service and self._service is not None:
            await self._service.close()

    def _make_screen(self, mode: str) -> Screen[None]:
        found = screen_class(mode)
        if isinstance(found, str):
            return PlaceholderScreen(self.service, SCREENS[mode][2], found)
        return found(self.service)

    def _apply_keymap(self) -> None:
        """config.toml's [keys]; a bad entry is reported and skipped, never fatal."""
        try:
            config = self.service.home.config()
        except ConfigError as exc:
            self.notify(str(exc), title="config.toml", severity="error", markup=False)
            return
        for mode in SCREENS:
            screen_class(mode)  # imported, so their bindings' ids are known
        keymap, problems = read_keymap(config, package_binding_ids("tui"))
        self.set_keymap(keymap)
        for problem in problems:
            self.notify(problem, title="Key not remapped", severity="warning", markup=False,
                        timeout=10)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        job = f" ({self.selected_job.name})" if self.selected_job else ""
        for title, text, action in COMMANDS:
            detail = text + job if "selected job" in text else text
            yield SystemCommand(title, detail, partial(self.run_action, action))

    # -- actions ----------------------------------------------------------------------------

    async def action_show(self, mode: str) -> None:
        await self.switch_mode(mode)

    def action_new_job(self) -> None:
        self.open_builder()

    async def open_analysis(self, target: AnalysisTarget, *, start: bool = False) -> None:
        """The Analyze screen on `target` (its stored analysis at once); `start` walks it."""
        await self.switch_mode("analyze")
        screen = self.screen
        if isinstance(screen, AnalyzeScreen):
            await screen.show_target(target, start=start)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def open_builder(self, source: Endpoint | None = None, destination: Endpoint | None = None,
                     *, existing: JobRecord | None = None) -> None:
        """The job builder, optionally with the browser's picks as (connection name, path),
        or on a stored job to edit it."""
        builder = JobBuilderScreen(self.service, source=source, destination=destination,
                                   existing=existing)
        self.push_screen(builder, self._created if existing is None else self._edited)

    def action_import_job(self) -> None:
        self.push_screen(ImportJobScreen(self.service), self._created)

    def _created(self, created: Created | None) -> None:
        if created is None:
            return
        job, warnings = created
        self.selected_job = job
        self.notify(f"Created job {job.name}", markup=False)
        for warning in warnings:
            self.notify(warning, title="Warning", severity="warning", markup=False, timeout=10)
        self.call_later(self.switch_mode, "jobs")

    def _edited(self, saved: Created | None) -> None:
        if saved is not None:
            self.selected_job = saved[0]
            self.notify(f"Saved job {saved[0].name}", markup=False)
            for warning in saved[1]:
                self.notify(warning, title="Warning", severity="warning", markup=False,
                            timeout=10)

    def action_open_monitor(self) -> None:
        job = self.job_in_view()
        if job is None:
            return
        current = self.screen
        if not (isinstance(current, MonitorScreen) and current.job_id == job.id):
            self.push_screen(MonitorScreen(self.service, job.id))

    async def action_run_job(self) -> None:
        await self._control(self.service.start, "Started {}")

    async def action_pause_job(self) -> None:
        await self._control(self.service.pause, "Pausing {}: the files in flight finish first")

    async def action_cancel_job(self) -> None:
        await self._control(self.service.cancel, "Cancelling {}")

    async def _control(self, verb: Callable[[str], Awaitable[None]], done: str) -> None:
        job = self.job_in_view()
        if job is None:
            return
        try:
            await verb(job.id)
        except ServiceError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify(done.format(job.name), markup=False)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every toast, the screens' too: they carry names, paths and errors from disks and
        servers, and Rich passes ESC through, so control characters are escaped (core.paths);
        the message keeps its line breaks."""
        super().notify(printable_lines(message), title=printable(title), severity=severity,
                       timeout=timeout, markup=markup)

    def job_in_view(self) -> JobRecord | None:
        """The job the job keys act on; without one, says so (once, however often the
        keys are pressed)."""
        if self.selected_job is None and time.monotonic() >= self._no_job_hint_until:
            self._no_job_hint_until = time.monotonic() + NO_JOB_HINT
            self.notify("No job selected: select one on the Jobs screen (j) first",
                        severity="warning", timeout=NO_JOB_HINT)
        return self.selected_job

    async def _stoppable(self, doing: str) -> JobRecord | None:
        """The job in view, unless it is running (`doing` says what was refused)."""
        job = self.job_in_view()
        if job is not None and await self.service.is_running(job.id):
            self.notify(f"Cannot {doing} {job.name} while it runs: pause (p) or cancel (x) it "
                        "first", severity="warning", markup=False)
            return None
        return job

    async def action_edit_job(self) -> None:
        job = await self._stoppable("edit")
        if job is not None:
            self.open_builder(existing=job)

    async def action_duplicate_job(self) -> None:
        job = self.job_in_view()
        if job is None:
            return
        try:
            copy, _ = await duplicate_job(self.service.state, job)
        except JobError as exc:
            self.notify("Cannot duplicate: " + "; ".join(exc.errors), severity="error",
                        markup=False)
            return
        self.selected_job = copy
        self.notify(f"Created job {copy.name}", markup=False)

    async def action_delete_job(self) -> None:
        job = await self._stoppable("delete")
        if job is None:
            return
        question = ConfirmScreen(
            f"Delete job {job.name}?", "Delete", keep_label="Keep it",
            detail="Its run history and item records go with it. The files it copied stay "
                   "where they are.")
        self.push_screen(question, partial(self._delete, job))

    async def _delete(self, job: JobRecord, confirmed: bool | None) -> None:
        if not confirmed:
            return
        try:
            await remove_job(self.service.home, self.service.state, job)
        except JobBusy:  # started meanwhile (here, the CLI, the agent)
            self.notify(f"Cannot delete {printable(job.name)}: it started running",
                        severity="error", markup=False)
            return
        if self.selected_job and self.selected_job.id == job.id:
            self.selected_job = None
        if isinstance(self.screen, MonitorScreen) and self.screen.job_id == job.id:
            self.pop_screen()  # deleted from the palette while watching it
        self.notify(f"Deleted job {job.name}", markup=False)

    def _finished(self, job: JobRecord, result: RunResult | None, error: str | None) -> None:
        """A run started here ended: say so, whichever screen is showing."""
        if result is None:
            self.notify(f"{job.name}: {error}", severity="error", markup=False)
            return
        stats = result.stats
        status = status_text(result.status).plain
        if result.status == "guarded":
            self.notify(f"{job.name}: {status}, nothing changed\n{stats.delete_guard}\n"
                        "Open its monitor: f runs it anyway", markup=False, severity="warning")
            return
        self.notify(f"{job.name}: {status}, {count(stats.transferred, 'file')} "
                    f"({size(stats.bytes)})"
                    + (f"\n{result.error}" if result.error else ""), markup=False,
                    severity="error" if result.status == "failed" else
                    "warning" if result.status == "warn" else "information")

    async def action_quit(self) -> None:
        """With runs started here, asks first: pause them (resumable) and quit, or hand them
        to a headless process. Quitting again while they finish stops them now."""
        active = self.service.active_runs() if self._service else []
        if not active or self._quitting:
            self.exit()
            return
        if isinstance(self.screen, QuitScreen):
            self.screen.dismiss("pause")  # ctrl+q on its own question: pause and quit
            return
        self.push_screen(QuitScreen(active, background=self._background_runs),
                         self._quit_answered)

    async def _quit_answered(self, choice: QuitChoice | None) -> None:
        if choice == "pause":
            await self._pause_and_exit()
        elif choice == "background":
            await self._pause_and_exit(background=True)

    async def _pause_and_exit(self, *, background: bool = False) -> None:
        """Pause the runs started here, then exit once they stopped (SIGTERM does this);
        with `background`, a headless process resumes each of them first."""
        active = self.service.active_runs() if self._service else []
        if not active or self._quitting:
            self.exit()
            return
        self._quitting = True
        for job in active:
            await self.service.pause(job.id)
        then = "hand them to a background process" if background else "quitting"
        self.notify(f"Pausing {count(len(active), 'running job')} before {then}: the files "
                    "in flight finish first. Quit again to stop them now (resumable either "
                    "way).", timeout=30)
        self.run_worker(self._exit_when_stopped(active, background), group="quit")

    async def _exit_when_stopped(self, jobs: list[JobRecord], background: bool) -> None:
        for job in jobs:
            await self.service.wait(job.id)
        said: list[str] = []
        if background and self._quitting:
            for job in jobs:
                said.append(await self._hand_over(job))
        self.exit(message="\n".join(said) or None)

    async def _hand_over(self, job: JobRecord) -> str:
        """Start a headless run of `job` if its run stopped resumable (one that completed or
        failed meanwhile is left alone); what happened, for the terminal after the app."""
        name = printable(job.name)
        newest = next(iter(await self.service.state.executions(job.id, limit=1)), None)
        if newest is None or newest.status not in RESUMABLE:
            ended = label(newest.status) if newest else "did not start"
            return f"{name}: {ended}, nothing to continue"
        try:
            pid, log = run_in_background(self.service.home, job.id)
        except OSError as exc:
            return (f"{name}: could not start in the background ({printable(str(exc))}); "
                    f"continue it with: dryviq-tui --home {self.service.home.root} jobs run "
                    f"{job.id}")
        return f"{name}: continues in the background (process {pid}, output in {log})"


async def run(home: Home, *, mouse: bool = True, greeting: str | None = None,
              background_runs: bool = True) -> int:
    """Open the TUI on `home` until the user quits; returns the process exit code.
    `greeting` is shown once the app is up (the demo says what to try); `background_runs`
    says whether quitting may hand runs to a headless process (see DryvIQApp)."""
    app = DryvIQApp(home=home, greeting=greeting, background_runs=background_runs)
    await app.run_async(mouse=mouse)
    return app.return_code or 0
