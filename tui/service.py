"""The app-level service: the one object that owns job executions while the TUI runs.

Screens come and go; a transfer must not go with them (a worker dies with its DOM node), so
every execution started here is an asyncio task owned by this service, on the app's loop.
Screens never receive a message per chunk: they poll `live()` about twice a second, which
reads the in-memory counters of a run started here, or the state DB's heartbeat of a run in
another process (a headless `dryviq-tui jobs run` that kept going while the user was away).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.analysis_view import progress_text
from core.analysis_walk import WalkProgress
from core.analyze import Analysis, analyze, latest_analysis
from core.connections import describe
from core.connectors.base import ConnectorError
from core.control import NotRunning, request_stop
from core.engine.runner import RunResult, run_job
from core.engine.stats import ExecutionStats, Throughput
from core.home import Home, JobBusy
from core.job_store import create_job
from core.jobs import JobError, parse_job
from core.leases import holder_of, this_host
from core.readout import BudgetReadout, PauseWatch, budget_readouts
from core.schedule import JobStatus, job_status, local_zone, upcoming_run
from core.scheduler import this_process
from core.scheduling import Scheduling, schedule_unless_agent
from core.sides import recorded_stats
from core.state import (
    Connection,
    Execution,
    ItemRecord,
    JobRecord,
    State,
    StateError,
)
from core.status import label

log = logging.getLogger("dryviq.tui")

EVENT_LIMIT = 500  # recent events kept per run: enough to scroll, bounded in memory
# a scheduled run that ended so says nothing (one every few minutes would bury the screen);
# what needs a person (flagged, failed, guarded) is still said
QUIET_SCHEDULED = frozenset({"completed", "no_changes"})
PROBLEM_STATUSES = ("remediation", "retry")  # flagged for a person; failed, retried next run


class ServiceError(Exception):
    """An action the user asked for cannot be done now; the message says why."""


@dataclass(frozen=True)
class RunEvent:
    at: float
    kind: str  # the engine's kinds (info, warning, flagged, failed, retry), paused, continued
    message: str


@dataclass(frozen=True)
class LiveView:
    """Everything the monitor shows about one job at one moment."""

    job: JobRecord
    where: str  # "here" (this app runs it), "elsewhere" (another process), "idle"
    status: str  # "running", "stopping", else the newest execution's status, or "never run"
    execution: Execution | None  # the newest execution in the state DB
    stats: ExecutionStats
    rate: float  # bytes per second: rolling while running, the average of a finished run
    eta: float | None  # seconds left, None while unknown
    events: tuple[RunEvent, ...] = ()
    requested: str | None = None  # "pause" or "cancel" when the user stopped the run here
    host: str | None = None  # the other host running it (a shared state), None: this one

    @property
    def running(self) -> bool:
        return self.where != "idle"

    @property
    def phase(self) -> str:
        """What the run is doing, in words."""
        if not self.running:
            return "not running" if self.execution else "not started"
        if self.status == "stopping":
            return "stopping: finishing the files in flight"
        if self.stats.waiting_until:
            return "waiting for the API rate limit"
        if self.execution is None or self.execution.phase == "initialize":
            return "starting"
        if not self.stats.listing_done:
            return "listing and transferring"
        return "transferring"


@dataclass(frozen=True)
class JobRow:
    """A job as the jobs list shows it."""

    job: JobRecord
    source: str  # connection name:/path
    destination: str
    last: Execution | None
    where: str  # as in LiveView
    host: str | None  # as in LiveView
    next_run: dt.datetime | None  # by its schedule; None: it will not run by itself
    state: JobStatus  # DryvIQ's job status (complete, and why)

    @property
    def status(self) -> str:
        return shown_status(self.last, self.where)


Budget = BudgetReadout  # one API client's rate-limit budget, as the screens read it


@dataclass
class _Run:
    """An execution started by this service."""

    job: JobRecord
    force: bool = False  # past the delete guard
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    stats: ExecutionStats = field(default_factory=ExecutionStats)
    throughput: Throughput = field(default_factory=Throughput)
    events: deque[RunEvent] = field(default_factory=lambda: deque(maxlen=EVENT_LIMIT))
    requested: str | None = None  # "pause" or "cancel": how the user stopped it
    pauses: PauseWatch = field(default_factory=PauseWatch)
    scheduled_by: str | None = None  # the scheduler (host:pid) that started it, if one did
    asked_to_start: bool = False  # ... because a person asked (not by the job's schedule)
    result: RunResult | None = None

    @property
    def active(self) -> bool:
        return self.task is not None and not self.task.done()

    def event(self, kind: str, message: str) -> None:
        self.events.append(RunEvent(time.time(), kind, message))

    def progress(self, stats: ExecutionStats, throughput: Throughput) -> None:
        self.stats, self.throughput = stats, throughput
        for kind, message in self.pauses(stats):
            self.event(kind, message)


@dataclass
class _Watched:
    """An execution running in another process, as this app follows it."""

    execution_id: int
    throughput: Throughput = field(default_factory=Throughput)
    pauses: PauseWatch = field(default_factory=PauseWatch)
    events: deque[RunEvent] = field(default_factory=lambda: deque(maxlen=EVENT_LIMIT))


@dataclass(frozen=True)
class AnalysisTarget:
    """A folder to analyze (connection name, connector path), and the folder compared with."""

    connection: str
    path: str = ""
    against: str | None = None
    against_path: str | None = None


@dataclass(frozen=True)
class AnalysisView:
    """What the Analyze screen shows of one folder at one moment."""

    target: AnalysisTarget
    running: bool
    progress: str  # how far the walk has got, in words ("" before its first report)
    analysis: Analysis | None  # the newest finished analysis: this app's or the stored one
    stored: bool  # `analysis` was read from the state file, not made by this app just now
    error: str | None = None  # why the last analysis started here did not finish


@dataclass
class _Analyzing:
    """An analysis started by this service."""

    target: AnalysisTarget
    task: asyncio.Task[None] | None = None
    progress: WalkProgress | None = None
    result: Analysis | None = None
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.task is not None and not self.task.done()


Created = tuple[JobRecord, list[str]]  # a stored job and the warnings core gave for it
Finished = Callable[[JobRecord, RunResult | None, str | None], None]


class AppService:
    """Opens the state, runs jobs as tasks on the running loop, and answers the screens."""

    def __init__(self, home: Home, state: State) -> None:
        self.home = home
        self.state = state
        self.on_finished: Finished | None = None  # (job, result, error): for notifications
        self._runs: dict[str, _Run] = {}
        self._watched: dict[str, _Watched] = {}  # runs in other processes
        self._analyses: dict[AnalysisTarget, _Analyzing] = {}
        self.scheduling = Scheduling("nobody")
        self._scheduling: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, home: Home) -> AppService:
        home.ensure()
        return cls(home, await State.open_home(home))

    async def close(self, *, grace: float = 0.0) -> None:
        """Stop the runs started here (they get `grace` seconds to finish the files in
        flight, then the rest is rolled back: resumable either way), then close the state."""
        self.on_finished = None
        if self._scheduling is not None:
            self._scheduling.cancel()
            await asyncio.gather(self._scheduling, return_exceptions=True)
        tasks = [run.task for run in self._runs.values() if run.active and run.task]
        for run in self._runs.values():
            run.stop.set()
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        tasks += [walk.task for walk in self._analyses.values() if walk.active and walk.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.state.close()

    # -- jobs -------------------------------------------------------------------------------

    async def job(self, job_id: str) -> JobRecord:
        jobs = await self.state.find_jobs(job_id)
        if not jobs:
            raise ServiceError("that job no longer exists")
        return jobs[0]

    async def job_rows(self) -> list[JobRow]:
        names = {c.id: c.name for c in await self.state.list_connections()}
        rows = []
        moment = dt.datetime.now(local_zone())
        for job in await self.state.find_jobs():
            last = await self._newest(job.id)
            where, host = await self._where(job.id)
            counted = await self.state.counted_executions(job, 1)
            rows.append(JobRow(
                job, f"{names.get(job.source_connection_id, '?')}:/{job.source_path}",
                f"{names.get(job.destination_connection_id, '?')}:/{job.destination_path}",
                last, where, host, await upcoming_run(self.state, job, moment),
                job_status(job, next(iter(counted), None), running=where != "idle")))
        return rows

    async def connections(self) -> list[tuple[Connection, str]]:
        """Each connection with a one-line description of where it points."""
        return [(c, describe(c)) for c in await self.state.list_connections()]

    async def create_job(self, text: str) -> Created:
        """Validate and store job JSON through core; raises JobError listing every problem."""
        return await create_job(self.state, text)

    async def import_job(self, path: str) -> Created:
        """Create a job from a DryvIQ job JSON file."""
        return await self.create_job(read_job_file(path))

    async def history(self, job_id: str, limit: int = 100) -> list[Execution]:
        """Executions, newest first; one left 'running' by a dead process shows as
        interrupted (as `jobs history` shows it)."""
        running = await self.is_running(job_id)
        return [e if running or e.status != "running" else _interrupted(e)
                for e in await self.state.executions(job_id, limit=limit)]

    async def problems(self, job_id: str) -> list[ItemRecord]:
        """Items flagged for a person, then items that failed and will be retried."""
        return [item for status in PROBLEM_STATUSES
                for item in await self.state.items(job_id, status=status)]

    async def budgets(self) -> list[BudgetReadout]:
        return budget_readouts(await self.state.rate_budgets())

    # -- executions -------------------------------------------------------------------------

    async def is_running(self, job_id: str) -> bool:
        """Whether an execution of the job runs now, here or in another process (any host)."""
        return (await self._where(job_id))[0] != "idle"

    def runs_here(self, job_id: str) -> bool:
        run = self._runs.get(job_id)
        return run is not None and run.active

    def active_runs(self) -> list[JobRecord]:
        return [run.job for run in self._runs.values() if run.active]

    async def start(self, job_id: str, *, force: bool = False) -> None:
        """Start (or resume: the engine continues where the last execution stopped); `force`
        runs it even where the delete guard would stop it (as `jobs run --force`)."""
        job = await self.job(job_id)
        where, host = await self._where(job_id)
        if where != "idle":
            place = ("here" if where == "here" else f"on {host}" if host
                     else "in another process")
            raise ServiceError(f"{job.name} is already running {place}")
        try:
            parse_job(job.definition)
        except JobError as exc:
            raise ServiceError(str(exc)) from None
        run = _Run(job, force=force)
        self._runs[job_id] = run
        run.task = asyncio.create_task(self._execute(run), name=f"job {job.name}")

    async def _execute(self, run: _Run) -> None:
        result, error = None, None
        try:
            result = await run_job(self.state, self.home, run.job, stop=run.stop,
                                   on_progress=run.progress, on_event=run.event,
                                   force=run.force, scheduled_by=run.scheduled_by,
                                   requested=run.asked_to_start)
        except (JobBusy, StateError) as exc:
            error = str(exc)
        except self.state.DatabaseError as exc:  # the state went bad or read-only under it
            log.exception("job %s", run.job.name)
            error = str(self.state.translate(exc))
        except asyncio.CancelledError:
            error = "cancelled: the files in flight were rolled back"
        except Exception as exc:  # shown to the user, not lost in an unawaited task
            log.exception("job %s", run.job.name)
            error = f"the run stopped on an unexpected error: {exc or type(exc).__name__}"
        if error:
            run.event("failed", error)
        elif result is not None:
            run.result, run.stats = result, result.stats
            run.event("info", f"execution #{result.execution_id} {label(result.status)}"
                      + (f": {result.error}" if result.error else ""))
        quiet = run.scheduled_by and result is not None and result.status in QUIET_SCHEDULED
        if self.on_finished and not quiet:
            self.on_finished(run.job, result, error)

    # -- the schedules ----------------------------------------------------------------------

    def start_scheduling(self) -> None:
        """Run the jobs' schedules while the app is open and neither an agent nor `serve` runs
        on this home (one open app schedules; the others, and any app once an agent or `serve`
        starts, leave it: a job started over the API must not die with the app)."""
        if self._scheduling is None:
            self._scheduling = asyncio.create_task(schedule_unless_agent(
                self.state, self.home, "app", launch=self._launch,
                on_change=self._scheduling_changed), name="schedules")

    def _scheduling_changed(self, scheduling: Scheduling) -> None:
        self.scheduling = scheduling

    async def _launch(self, job: JobRecord, stop: asyncio.Event, agent: str,
                      scheduled: bool) -> RunResult | None:
        """A run the scheduler starts (by the job's schedule, or because a person asked over
        the API), owned here like one the user started (the monitor follows it, pause and
        quit stop it resumable)."""
        if self.runs_here(job.id):  # elsewhere: the scheduler's claim of its lease said no
            raise JobBusy("running already")
        run = _Run(job, stop=stop, scheduled_by=agent, asked_to_start=not scheduled)
        self._runs[job.id] = run
        run.task = asyncio.create_task(self._execute(run), name=f"job {job.name}")
        await asyncio.gather(run.task, return_exceptions=True)
        return run.result

    async def pause(self, job_id: str) -> None:
        """Stop after the files in flight; the execution is left interrupted and resumable.
        A run in another process is asked to (core.control), which it obeys the same way."""
        run = self._runs.get(job_id)
        if run is None or not run.active:
            await self._ask_other(job_id, "pause")
            return
        run.requested = run.requested or "pause"
        run.stop.set()
        run.event("paused", "paused by you: finishing the files in flight, then it stops "
                            "resumable")

    async def cancel(self, job_id: str) -> None:
        """Stop now: files in flight are rolled back (as a second Ctrl-C does); what finished
        stays recorded. A run in another process is asked to (core.control), only that run:
        an agent running it goes on with its other jobs."""
        run = self._runs.get(job_id)
        if run is None or run.task is None or not run.active:
            await self._ask_other(job_id, "cancel")
            return
        run.requested = "cancel"
        run.stop.set()
        run.event("paused", "cancelled by you: the files in flight are rolled back")
        run.task.cancel()

    async def _ask_other(self, job_id: str, action: str) -> None:
        try:
            await request_stop(self.state, self.home, job_id, action,
                               by=f"the app ({this_process()})")
        except NotRunning as exc:
            raise ServiceError(str(exc)) from None

    async def wait(self, job_id: str) -> None:
        """Until the run started here ends (at once if there is none)."""
        run = self._runs.get(job_id)
        if run is not None and run.task is not None:
            await asyncio.gather(run.task, return_exceptions=True)

    async def live(self, job_id: str) -> LiveView:
        job = await self.job(job_id)
        newest = await self._newest(job_id)
        where, host = await self._where(job_id)
        run = self._runs.get(job_id)
        if run is not None and run.active:
            return LiveView(job, where, "stopping" if run.stop.is_set() else "running", newest,
                            run.stats, run.throughput.rate, run.throughput.eta(run.stats),
                            tuple(run.events), run.requested)
        events, requested = (tuple(run.events), run.requested) if run else ((), None)
        if where == "elsewhere":
            if newest is None or newest.status != "running":  # its execution is not in yet
                return LiveView(job, where, "running", None, ExecutionStats(), 0.0, None,
                                host=host)
            stats = _stats(newest)
            watched = self._watch(job_id, newest, stats)
            return LiveView(job, where, "running", newest, stats, watched.throughput.rate,
                            watched.throughput.eta(stats), tuple(watched.events), requested,
                            host)
        stats = _stats(newest)
        status = shown_status(newest, where)
        self._watched.pop(job_id, None)
        average = 0.0
        if newest is not None:
            ended = newest.ended_at or newest.heartbeat_at
            if ended > newest.started_at:
                average = stats.bytes / (ended - newest.started_at)
        return LiveView(job, where, status, newest, stats, average, None, events, requested)

    # -- analyses ---------------------------------------------------------------------------

    async def analyze(self, target: AnalysisTarget) -> None:
        """Start walking `target` (listings only); the result is stored by core, so the app
        and `dryviq-tui analyze` show it again without API calls."""
        connection, against = await self._analysis_connections(target)
        walking = self._analyses.get(target)
        if walking is not None and walking.active:
            raise ServiceError("that folder is already being analyzed")
        walking = self._analyses[target] = _Analyzing(target)
        walking.task = asyncio.create_task(self._walk(walking, connection, against),
                                           name=f"analyze {connection.name}")

    async def _walk(self, walking: _Analyzing, connection: Connection,
                    against: Connection | None) -> None:
        def progress(seen: WalkProgress) -> None:
            walking.progress = seen

        target = walking.target
        try:
            walking.result = await analyze(
                self.state, self.home, connection, target.path, against=against,
                against_path=target.against_path or "", on_progress=progress)
        except asyncio.CancelledError:
            walking.error = "cancelled: nothing was stored"
        except ConnectorError as exc:
            walking.error = f"cannot analyze: {exc}"
        except Exception as exc:  # shown on the screen, not lost in an unawaited task
            log.exception("analyze %s", connection.name)
            walking.error = f"the analysis stopped on an unexpected error: {exc}"

    async def cancel_analysis(self, target: AnalysisTarget) -> None:
        walking = self._analyses.get(target)
        if walking is None or walking.task is None or not walking.active:
            raise ServiceError("no analysis of that folder is running")
        walking.task.cancel()
        await asyncio.gather(walking.task, return_exceptions=True)
        walking.error = walking.error or "cancelled: nothing was stored"  # before it began

    async def wait_analysis(self, target: AnalysisTarget) -> None:
        """Until the analysis of `target` started here ends (at once if there is none)."""
        walking = self._analyses.get(target)
        if walking is not None and walking.task is not None:
            await asyncio.gather(walking.task, return_exceptions=True)

    async def analysis(self, target: AnalysisTarget) -> AnalysisView:
        """The folder's analysis: the one running or made here, else the newest stored."""
        walking = self._analyses.get(target)
        if walking is not None and walking.result is not None and not walking.active:
            return AnalysisView(target, False, "", walking.result, False)
        try:
            stored = await self._stored_analysis(target)
        except ServiceError as exc:
            return AnalysisView(target, False, "", None, False, str(exc))
        if walking is None:
            return AnalysisView(target, False, "", stored, stored is not None)
        progress = progress_text(walking.progress) if walking.progress else ""
        return AnalysisView(target, walking.active, progress, stored, stored is not None,
                            None if walking.active else walking.error)

    async def _stored_analysis(self, target: AnalysisTarget) -> Analysis | None:
        connection, against = await self._analysis_connections(target)
        return await latest_analysis(self.state, connection.id, target.path,
                                     against.id if against else None, target.against_path)

    async def _analysis_connections(self, target: AnalysisTarget
                                    ) -> tuple[Connection, Connection | None]:
        connection = await self.state.find_connection(target.connection)
        if connection is None:
            raise ServiceError(f"no connection {target.connection!r}")
        if target.against is None:
            return connection, None
        against = await self.state.find_connection(target.against)
        if against is None:
            raise ServiceError(f"no connection {target.against!r} to compare with")
        return connection, against

    # -- helpers ----------------------------------------------------------------------------

    def _watch(self, job_id: str, execution: Execution, stats: ExecutionStats) -> _Watched:
        """A rolling rate for another process's run, sampled at its heartbeats (~1 s), and
        its rate-limit pauses as events."""
        watched = self._watched.get(job_id)
        if watched is None or watched.execution_id != execution.id:
            watched = self._watched[job_id] = _Watched(execution.id)
        throughput = watched.throughput
        if not throughput.samples or throughput.samples[-1][0] != execution.heartbeat_at:
            throughput.sample(stats.bytes, now=execution.heartbeat_at)
        for kind, message in watched.pauses(stats):
            watched.events.append(RunEvent(time.time(), kind, message))
        return watched

    async def _where(self, job_id: str) -> tuple[str, str | None]:
        """Where the job runs ("here", "elsewhere", "idle") and, for a run on another host of a
        shared state, that host (from its lease)."""
        if self.runs_here(job_id):
            return "here", None
        holder = await holder_of(self.state, job_id)
        if holder is None and not self.home.job_locked(job_id):
            return "idle", None
        return "elsewhere", holder.host if holder and holder.host != this_host() else None

    async def _newest(self, job_id: str) -> Execution | None:
        return next(iter(await self.state.executions(job_id, limit=1)), None)


def read_job_file(path: str) -> str:
    """The text of a job file; unreadable files raise JobError, as bad JSON does."""
    where = Path(path).expanduser()
    try:
        return where.read_text("utf-8")
    except OSError as exc:
        raise JobError([f"{path}: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise JobError([f"{path}: not UTF-8 text"]) from None


def shown_status(last: Execution | None, where: str) -> str:
    """A job's status in words the screens use: "running" while a run goes on here or
    elsewhere, else its newest execution's status ("interrupted" for one whose process died
    without saying so), or "never run"."""
    if where != "idle":
        return "running"
    if last is None:
        return "never run"
    return "interrupted" if last.status == "running" else last.status


def _stats(execution: Execution | None) -> ExecutionStats:
    """An execution's recorded stats (keys this version does not know are left out)."""
    return ExecutionStats() if execution is None else recorded_stats(execution.stats)


def _interrupted(execution: Execution) -> Execution:
    return dataclasses.replace(execution, status="interrupted",
                               ended_at=execution.ended_at or execution.heartbeat_at)
