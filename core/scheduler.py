"""The scheduler: runs due jobs by themselves, in `dryviq-tui agent`, `serve` and the open app.

One scheduler per home at a time does the scheduling (`locks/scheduler.lock`); an agent also
holds `locks/agent.lock` for its whole life, so a second agent is refused (or stands by) and
`serve` and open apps leave the scheduling to it; `serve` holds `locks/serve.lock` for its life,
so open apps leave it to `serve` too (core/scheduling.py). Each scheduler keeps a heartbeat row
in `agents`. Due jobs start least recently run first, a bounded number at once; a job whose
Procore client has spent its budget (down to the pacer's reserve for browsing) waits for the
reset instead of starting, so jobs sharing one client take turns and none starves. A job a
person asked to start (core.control, from the API or another process) starts before the due
ones, whatever its schedule; the scheduler looks for such requests about twice a second. The
clock is injectable, so tests run a week in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import fcntl
import json
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from core import control
from core.engine.runner import RunResult, run_job
from core.home import ConfigError, Home, JobBusy
from core.leases import Lease, claim, handed_over, job_running, lease_seconds, release
from core.readout import BudgetReadout, clock
from core.schedule import Schedule, local_zone, stored_schedule, upcoming_run
from core.state import AgentRow, Connection, JobRecord, State

log = logging.getLogger(__name__)

DEFAULT_CONCURRENT = 2  # jobs run at once by one scheduler; config.toml [agent] max_jobs
MAX_CONCURRENT = 16
POLL = 10.0  # seconds: the longest a scheduler goes without looking at the jobs again (one
# created, edited or finished elsewhere meanwhile)
HEARTBEAT = 5.0  # seconds between a scheduler's heartbeats in `agents`
STALE = 6 * HEARTBEAT  # a row not beaten for this long is a process that died: forgotten
LOCK_TRIES = 20  # a lock found held is tried again this often, LOCK_RETRY apart: another
LOCK_RETRY = 0.05  # process only looking whether it is held holds it for an instant


class Clock(Protocol):
    """Now, and waiting: the real one uses time.time and asyncio.sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def this_process() -> str:
    """How executions and heartbeats name the scheduler of this process: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def concurrent_jobs(config: dict[str, object]) -> int:
    """config.toml's [agent] max_jobs: how many scheduled jobs one scheduler runs at once."""
    table = config.get("agent") or {}
    value = table.get("max_jobs", DEFAULT_CONCURRENT) if isinstance(table, dict) else None
    if type(value) is not int or not 1 <= value <= MAX_CONCURRENT:
        raise ConfigError(f"config.toml [agent] max_jobs = {value!r}: use a whole number of "
                          f"jobs from 1 to {MAX_CONCURRENT}, such as {DEFAULT_CONCURRENT}")
    return value


# -- who schedules on this home ---------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """The process holding one of the home's scheduling locks, as it wrote itself there."""

    id: str  # host:pid
    kind: str  # agent | serve | app
    since: float

    @property
    def pid(self) -> int:
        return int(self.id.rpartition(":")[2])

    @property
    def host(self) -> str:
        return self.id.rpartition(":")[0]

    def describe(self) -> str:
        """`an agent (pid 4242 on build-01, since 2026-12-06 17:50:02 UTC)`, or `the API
        server (serve, pid …)`: whom the agent waits for."""
        since = dt.datetime.fromtimestamp(self.since).astimezone()
        where = f"pid {self.pid} on {self.host}, since {since:%Y-%m-%d %H:%M:%S %Z}"
        if self.kind == "serve":
            return f"the API server (serve, {where})"
        return f"{'an agent' if self.kind == 'agent' else 'the app'} ({where})"


class HomeLock:
    """A lock file in the home's locks/ folder, held by one process at a time (the OS drops
    it when the process dies, even by SIGKILL); the holder writes who it is into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds it."""
        return self._fd is not None

    def _open(self) -> int:
        return os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)

    async def acquire(self, holder: Holder) -> bool:
        """Take the lock if nobody holds it (trying again for an instant: see LOCK_TRIES)."""
        if self._fd is not None:
            return True
        fd = self._open()
        for attempt in range(LOCK_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == LOCK_TRIES - 1:
                    os.close(fd)
                    return False
                await asyncio.sleep(LOCK_RETRY)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"id": holder.id, "kind": holder.kind,
                                  "since": holder.since}).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None

    def holder(self) -> Holder | None:
        """Who holds it now (None: nobody); a holder still writing itself reads as unknown."""
        if self._fd is not None:
            return None
        try:
            fd = self._open()
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                return None  # nobody holds it (released at close)
            try:
                found = json.loads(os.pread(fd, 4096, 0) or b"{}")
                return Holder(str(found["id"]), str(found["kind"]), float(found["since"]))
            except (ValueError, KeyError, TypeError):
                return Holder("unknown:0", "agent", time.time())
        finally:
            os.close(fd)


def agent_lock(home: Home) -> HomeLock:
    """Held by `dryviq-tui agent` for its whole life: one agent per home."""
    return HomeLock(home.root / "locks" / "agent.lock")


def scheduler_lock(home: Home) -> HomeLock:
    """Held by whoever runs the scheduler now: the agent, else `serve`, else one open app."""
    return HomeLock(home.root / "locks" / "scheduler.lock")


def serve_lock(home: Home) -> HomeLock:
    """Held by one `dryviq-tui serve` for its whole life: open apps leave the schedules to it
    (a job started over the API never runs inside an app that may close)."""
    return HomeLock(home.root / "locks" / "serve.lock")


class Presence:
    """A scheduler's heartbeat row in `agents`, beaten every HEARTBEAT seconds; rows of
    processes that died without removing theirs are forgotten after STALE seconds."""

    def __init__(self, state: State, kind: str, clock: Clock | None = None) -> None:
        self.state = state
        self.clock = clock or SystemClock()
        now = self.clock.now()
        identity = this_process()
        self.row = AgentRow(identity, identity.rpartition(":")[0], os.getpid(), kind, now, now)

    @property
    def holder(self) -> Holder:
        return Holder(self.row.id, self.row.kind, self.row.started_at)

    async def beat(self) -> None:
        now = self.clock.now()
        self.row = replace(self.row, heartbeat_at=now)
        await self.state.beat(self.row, stale_before=now - STALE)

    async def keep(self, stop: asyncio.Event) -> None:
        """Beat until `stop` is set, then remove the row."""
        try:
            while not stop.is_set():
                await self.beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), HEARTBEAT)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.state.remove_agent(self.row.id))


# -- the scheduler ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """Something the scheduler did, for the agent's output and the app: a run `started` or
    `finished` (with its result, or the error that ended it), `stopping` (it passed its
    max_execution), or `waiting` (its Procore client's budget is spent until `until`)."""

    kind: str
    job: JobRecord
    result: RunResult | None = None
    error: str | None = None
    until: float | None = None
    requested: bool = False  # a `started` run a person asked for, not its schedule
    resumed: bool = False  # a `started` run that resumes one whose process died

    def text(self) -> str:
        name = self.job.name
        if self.kind == "started":
            why = ("resuming the run its stopped process left" if self.resumed
                   else "on request" if self.requested else "by its schedule")
            return f"started {name} ({why})"
        if self.kind == "stopping":
            return f"stopping {name}: it ran past its schedule's max_execution (resumable)"
        if self.kind == "waiting":
            return (f"{name} is due and waits for its Procore client's API budget to reset "
                    f"at {clock(self.until or 0)}")
        if self.result is None:
            return f"{name} did not run: {self.error}"
        return f"finished {name}: execution {self.result.execution_id} {self.result.status}" + (
            f" ({self.result.error})" if self.result.error else "")


# runs one execution of a job: (job, stop signal, scheduler id, by its schedule: False when a
# person asked it to start) -> its result
Launch = Callable[[JobRecord, asyncio.Event, str, bool], Awaitable[RunResult | None]]


@dataclass
class _Scheduled:
    job: JobRecord
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    interval: float = 0.0  # its schedule's: a run its max_execution stopped waits this long
    timed_out: bool = False  # stopped by its max_execution
    requested: bool = False  # started because a person asked, not by its schedule
    resumed: bool = False  # resumes a run whose process died (no schedule needed)


def spent_until(budget: BudgetReadout, now: float, reserve: float) -> float | None:
    """Until when a job may not start on this client: Procore said wait (429), or the hour's
    budget is down to the reserve kept for browsing; None when it may start now."""
    until = budget.blocked_until if budget.blocked_until > now else None
    if budget.reset_at > now and budget.left(now) <= math.ceil(reserve * budget.limit):
        until = max(until or 0.0, budget.reset_at)
    return until


class Scheduler:
    """Finds due jobs and runs them (`launch`: core's run_job by default, the app's service in
    the app), at most `limit` at once, never one that runs elsewhere or is complete. Each run
    starts with the job's lease claimed here (core.leases): of several schedulers sharing a
    state, the one that claims a due job runs it, and the others skip it. An agent's scheduler
    on a shared state also resumes a job whose run was left 'running' by a process that died
    (its lease lapsed), whatever its schedule: the run had been started.
    `kind` names who runs it in the lease: agent, serve or app."""

    def __init__(self, state: State, home: Home, *, agent: str | None = None,
                 kind: str = "agent", clock: Clock | None = None,
                 limit: int = DEFAULT_CONCURRENT, poll: float = POLL,
                 launch: Launch | None = None,
                 on_note: Callable[[Note], None] | None = None) -> None:
        self.state = state
        self.home = home
        self.agent = agent or this_process()
        self.kind = kind
        self.lease = lease_seconds(home)
        self.clock = clock or SystemClock()
        self.limit = limit
        self.poll = poll
        self.launch = launch or self._run_job
        self.on_note = on_note
        self._runs: dict[str, _Scheduled] = {}
        self._woken = asyncio.Event()  # a run ended: a slot is free, its next run is known
        self._waiting: dict[str, float] = {}  # jobs told to wait for a budget, until when
        self._retry_at: dict[str, float] = {}  # jobs whose run could not start: not before
        self._unschedulable: set[str] = set()  # jobs skipped for their schedule (logged once)
        self._asked: set[tuple[str, float]] = set()  # start requests seen at the last tick

    @property
    def running(self) -> list[JobRecord]:
        return [run.job for run in self._runs.values()]

    @property
    def busy(self) -> bool:
        """Whether runs started here are going, or one ended and the scheduler has not
        looked at the jobs since (a clock in a test jumps only when neither)."""
        return bool(self._runs) or self._woken.is_set()

    async def _run_job(self, job: JobRecord, stop: asyncio.Event, agent: str,
                       scheduled: bool) -> RunResult:
        return await run_job(self.state, self.home, job, stop=stop, scheduled_by=agent,
                             requested=not scheduled, kind=self.kind)

    def _note(self, note: Note) -> None:
        log.info("scheduler %s: %s", self.agent, note.text())
        if self.on_note:
            self.on_note(note)

    async def run(self, stop: asyncio.Event) -> None:
        """Start due jobs until `stop` is set; then stop the runs started here (the files in
        flight finish, each run ends interrupted and resumable) and wait for them."""
        try:
            while not stop.is_set():
                self._woken.clear()
                delay = await self.tick()
                await self._pause(delay, stop)
        finally:
            await self.stop_runs()

    async def _pause(self, delay: float, stop: asyncio.Event) -> None:
        """Until `delay` passes on the clock, a run started here ends, a new start request
        comes, or `stop`."""
        if self._woken.is_set():
            return
        waits = [asyncio.ensure_future(self.clock.sleep(delay)),
                 asyncio.ensure_future(self._woken.wait()), asyncio.ensure_future(stop.wait()),
                 asyncio.ensure_future(self._new_request())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _new_request(self) -> None:
        """Returns once a start request the last tick did not see is there: a tiny SELECT
        every control.WATCH seconds of real time (whatever the clock), so a job started over
        the API starts within about a second."""
        while True:
            await asyncio.sleep(control.WATCH)
            asked = await control.pending(self.state, "start")
            if {(r.job_id, r.requested_at) for r in asked} - self._asked:
                return

    async def stop_runs(self) -> None:
        """Ask every run started here to stop and wait for them; cancelled meanwhile (a
        second Ctrl-C), they are cancelled too (files in flight rolled back)."""
        tasks = [run.task for run in self._runs.values() if run.task]
        for run in self._runs.values():
            run.stop.set()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def tick(self) -> float:
        """Start the jobs a person asked to start (first, oldest request first), then those
        due now, as many as the limit allows; returns the seconds until the next look (the
        next job due, a budget's reset, or POLL)."""
        moment = dt.datetime.fromtimestamp(self.clock.now(), local_zone())
        now = moment.timestamp()  # to the microsecond, as next_run's answers are
        soonest = self.poll
        asked = {r.job_id: r for r in await control.pending(self.state, "start")}
        self._asked = {(r.job_id, r.requested_at) for r in asked.values()}
        wanted: list[tuple[JobRecord, Schedule | None, control.Request]] = []
        due: list[tuple[float, float, JobRecord, Schedule | None]] = []
        orphans: set[str] = set()
        for job in await self.state.find_jobs():
            request = asked.get(job.id)
            if request is not None:
                if job.id in self._runs or await job_running(self.state, self.home, job.id):
                    await control.take(self.state, request)  # moot: it runs already
                else:
                    wanted.append((job, stored_schedule(job), request))
                continue
            if job.id in self._runs or job.status == "complete":
                continue
            schedule = stored_schedule(job)
            if self._retry_at.get(job.id, 0.0) <= now and await self._orphaned(job):
                orphans.add(job.id)
                due.append((0.0, job.created_at, job, schedule))
                continue
            when = await self._upcoming(job, schedule, moment)
            if schedule is None or when is None:
                continue
            wait = max(when.timestamp(), self._retry_at.get(job.id, 0.0)) - now
            if wait > 0:
                soonest = min(soonest, wait)
                continue
            if await job_running(self.state, self.home, job.id):
                continue  # run by hand, or by another scheduler: looked at again at its end
            newest = await self.state.executions(job.id, 1)
            due.append((newest[0].started_at if newest else 0.0, job.created_at, job, schedule))
        due.sort(key=lambda entry: entry[:2])  # least recently run first: none starves
        wanted.sort(key=lambda entry: entry[2].requested_at)
        spent = await self._spent_budgets(now) if due or wanted else {}
        starts: list[tuple[JobRecord, Schedule | None, control.Request | None]] = [
            *wanted, *((job, schedule, None) for _, _, job, schedule in due)]
        for job, schedule, request in starts:
            if len(self._runs) >= self.limit:
                break
            until = max((spent[key] for key in await self._clients(job) if key in spent),
                        default=None)
            if until is not None:
                soonest = min(soonest, max(0.0, until - now))
                if self._waiting.get(job.id) != until:
                    self._waiting[job.id] = until
                    self._note(Note("waiting", job, until=until))
                continue
            self._waiting.pop(job.id, None)
            lease = await claim(self.state, job.id, kind=self.kind, seconds=self.lease)
            if lease is None:
                continue  # another scheduler (another host) claimed it first: it runs there
            if request is not None and not await control.take(self.state, request):
                await release(self.state, lease)
                continue  # withdrawn (or replaced) since it was read: not started
            self._start(job, schedule, lease, requested=request is not None,
                        resumed=job.id in orphans)
        return soonest

    async def _orphaned(self, job: JobRecord) -> bool:
        """Whether an agent on a shared state should resume the job now: its newest execution
        is still 'running' and no process holds it (its holder died, its lease lapsed)."""
        if self.kind != "agent" or self.state.shared is None:
            return False
        newest = await self.state.executions(job.id, 1)
        return (bool(newest) and newest[0].status == "running"
                and not await job_running(self.state, self.home, job.id))

    async def _upcoming(self, job: JobRecord, schedule: Schedule | None,
                        moment: dt.datetime) -> dt.datetime | None:
        """When the job is due (see upcoming_run); None, logged once, when its schedule
        cannot be worked out: one job's odd schedule never stops the others'."""
        problem = None
        if schedule is None:
            problem = "its stored JSON no longer passes the checks (`jobs show` says why)"
        else:
            try:
                when = await upcoming_run(self.state, job, moment)
            except (ArithmeticError, ValueError) as exc:
                problem = f"its schedule cannot be worked out ({exc})"
        if problem is not None:
            if job.id not in self._unschedulable:
                self._unschedulable.add(job.id)
                log.error("job %s is not scheduled: %s", job.name, problem)
            return None
        self._unschedulable.discard(job.id)
        return when

    def _start(self, job: JobRecord, schedule: Schedule | None, lease: Lease, *,
               requested: bool, resumed: bool) -> None:
        """Start a run with the job's lease claimed; one a person asked for (or one resumed)
        may have no schedule that passes today's checks (the run then says why it cannot
        run)."""
        run = _Scheduled(job, interval=schedule.interval if schedule else 0.0,
                         requested=requested, resumed=resumed)
        self._runs[job.id] = run
        run.task = asyncio.create_task(
            self._execute(run, lease, schedule.max_execution if schedule else None),
            name=f"{'requested' if requested else 'scheduled'} {job.name}")

    async def _execute(self, run: _Scheduled, lease: Lease, max_execution: float | None
                       ) -> None:
        watchdog = (asyncio.create_task(self._time_limit(run, max_execution))
                    if max_execution else None)
        result, error = None, None
        self._note(Note("started", run.job, requested=run.requested, resumed=run.resumed))
        handed_over.set(lease)  # this task's own context: the run adopts the lease
        try:
            result = await self.launch(run.job, run.stop, self.agent, not run.requested)
        except JobBusy as exc:
            error = f"it started elsewhere meanwhile ({exc})"
        except Exception as exc:  # one job's failure never stops the scheduler
            log.exception("scheduled job %s", run.job.name)
            error = str(exc) or type(exc).__name__
        finally:
            if watchdog:
                watchdog.cancel()
            with contextlib.suppress(Exception):  # a launch that never ran it: not held
                await asyncio.shield(release(self.state, lease))
            del self._runs[run.job.id]
            self._woken.set()
        if result is None:  # no execution recorded: it would be due again at once
            self._retry_at[run.job.id] = self.clock.now() + self.poll
        elif run.timed_out or result.stopped_by:  # resumable, but a run stopped by its
            # max_execution or by a person's pause or cancel continues at its next run
            self._retry_at[run.job.id] = self.clock.now() + run.interval
        self._note(Note("finished", run.job, result, error))

    async def _time_limit(self, run: _Scheduled, seconds: float) -> None:
        """Stop the run resumable once it has run `seconds` (its schedule's max_execution)."""
        await self.clock.sleep(seconds)
        if not run.stop.is_set():
            self._note(Note("stopping", run.job))
            run.timed_out = True
            run.stop.set()

    async def _spent_budgets(self, now: float) -> dict[str, float]:
        """The Procore clients a job may not start on now, with until when."""
        rows = await self.state.rate_budgets()
        if not rows:
            return {}
        from core.pacer import DEFAULT_RESERVE, pacer_settings

        reserve = pacer_settings(self.home.config()).get("reserve", DEFAULT_RESERVE)
        spent = {}
        for key, row in rows.items():
            until = spent_until(BudgetReadout.from_row(key, row), now, reserve)
            if until is not None:
                spent[key] = until
        return spent

    async def _clients(self, job: JobRecord) -> set[str]:
        """The API clients (budget keys) of the job's Procore connections."""
        keys = set()
        for connection_id in (job.source_connection_id, job.destination_connection_id):
            connection = await self.state.find_connection(connection_id)
            if connection is not None and connection.platform == "procore":
                key = await self._client_of(connection)
                if key:
                    keys.add(key)
        return keys

    async def _client_of(self, connection: Connection) -> str | None:
        from core.connectors.base import ConnectorError
        from core.connectors.procore import procore_app

        try:
            secrets = await self.state.connection_secrets(connection.id)
            return procore_app(connection.config, secrets, self.home.config()).budget_key
        except (ConnectorError, ConfigError, KeyError):
            return None  # no credentials: the run itself will say so
