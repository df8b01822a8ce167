"""When a job runs by itself, and when it stops: DryvIQ's `schedule` and `stop_policy`.

Pure functions of the job, its past executions and a moment (Schedule, next_run, stop_reason,
job_status), so a week of schedules is tested in seconds, and thin async ones that read what
they need from the state (apply_stop_policy, current_status, upcoming_run). Times are read in
the zone of the `now` given (the machine's: `local_zone`), DST included: window edges and
`run_at` are wall-clock times, intervals are elapsed time.

What counts (DryvIQ names the keys, not every case; decided here):
- A *run* is an execution that finished: completed, no changes, flagged (warn), failed, or
  stopped by the delete guard. A paused or interrupted execution is not a run: the next
  execution continues it where it stopped (its items are resumed), so a job the rate limit
  pauses ten times on its way through one tree has made one run, not ten.
- A run that *failed to start* is not a run either (DryvIQ: "failed-to-start runs don't
  count"): a failed execution that examined no file and no folder (a connection that could
  not be opened, a root that could not be read) never got to the job's content.
- The executions that count are those since the job was last saved (created or updated):
  an edit starts its schedule and its stop policy afresh, as for a new job.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.home import Home
from core.jobs import INTERVAL_SECONDS, LATEST_DATE, MIN_REPEAT, Job, JobError, parse_job
from core.leases import job_running
from core.state import Execution, JobRecord, State
from core.status import RESUMABLE

AUTO_INTERVAL = 15 * 60.0  # seconds between runs of an auto job that sets no repeat_interval
ALL_DAYS = frozenset(range(7))  # datetime.weekday(): 0 is Monday
_DAY_NUMBERS = {"everyday": ALL_DAYS, "weekdays": frozenset(range(5)),
                "weekends": frozenset({5, 6}),
                **{name: frozenset({number}) for number, name in enumerate(
                    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                     "sunday"))}}
# executions that finished as a run (see the module's docstring)
FINISHED = frozenset({"completed", "no_changes", "warn", "failed", "guarded"})
FAILED = frozenset({"failed", "guarded"})  # the guard stopped the run before it did its work


@dataclass(frozen=True)
class Schedule:
    """A job's `schedule`, read from its definition (mode "manual" when it has none).

    auto: queued at once (or, with `status: "paused"`, after its manual first run), then
    again `interval` seconds after the previous execution *ended* (the end, not the start:
    a run longer than its interval would otherwise start again at once, spending a shared API
    budget without a pause), inside the window on the allowed days, between start_date and
    end_date. With `run_at` and no repeat_interval it runs once a day at run_at. A
    repeat_interval must be more than 0; one under a minute (MIN_REPEAT) is raised to a minute
    with a warning when the job is saved: shorter, a job with nothing to send would run back to
    back, spending the API budget on listings. An execution interrupted part-way (SIGTERM to
    the agent, a pause in the app) is continued as soon as the window allows, not an interval
    later: it is not a run (see the module's docstring); one the rate limit paused continues
    at its resume_at.
    """

    mode: str = "manual"  # manual | ad-hoc | auto
    days: frozenset[int] = ALL_DAYS  # weekday numbers, 0 = Monday
    start_window: dt.time | None = None  # wall clock; a window may cross midnight
    end_window: dt.time | None = None
    run_at: dt.time | None = None  # opens the day's window in place of start_window
    start_date: float | None = None  # epoch seconds: no run before
    end_date: float | None = None  # epoch seconds: no run at or after
    repeat_interval: float | None = None  # seconds, as written (None: AUTO_INTERVAL)
    repeat_count: int | None = None  # runs after the first (Quartz's sense): 2 -> 3 runs
    max_execution: float | None = None  # seconds a run may take (helper `agent` enforces it)
    paused: bool = False  # status "paused": an auto job waits for a manual first run
    start_now: bool = False  # status "start": a manual job runs once on creation

    @classmethod
    def of(cls, job: Job) -> Schedule:
        """The job's schedule; its keys were checked when the job was parsed."""
        found: dict[str, Any] = job.definition.get("schedule") or {}
        days = found.get("days", "everyday")
        return cls(
            mode=job.schedule_mode,
            days=frozenset().union(*(_DAY_NUMBERS[day] for day in (
                [days] if isinstance(days, str) else days))),
            start_window=_clock(found.get("start_window")),
            end_window=_clock(found.get("end_window")),
            run_at=_clock(found.get("run_at")),
            start_date=_float(found.get("start_date")),
            end_date=_float(found.get("end_date")),
            repeat_interval=_seconds(found.get("repeat_interval")),
            repeat_count=found.get("repeat_count"),
            max_execution=_seconds(found.get("max_execution")),
            paused=job.status == "paused",
            start_now=job.status == "start",
        )

    @property
    def interval(self) -> float:
        """Seconds from the end of one execution to the next run."""
        if self.repeat_interval is None:
            return AUTO_INTERVAL
        return max(self.repeat_interval, MIN_REPEAT)

    @property
    def once_a_day(self) -> bool:
        """run_at without repeat_interval: one run in each day's window."""
        return self.run_at is not None and self.repeat_interval is None


def _clock(value: dict[str, int] | None) -> dt.time | None:
    if value is None:
        return None
    return dt.time(value.get("hr", 0), value.get("min", 0), value.get("sec", 0),
                   value.get("ms", 0) * 1000)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _seconds(value: dict[str, Any] | None) -> float | None:
    return None if value is None else value["value"] * INTERVAL_SECONDS[value["unit"]]


def local_zone() -> dt.tzinfo:
    """The machine's time zone with its DST rules (a fixed offset, as `astimezone()` gives,
    would be an hour wrong for half the year): $TZ, else /etc/localtime, else UTC."""
    name = os.environ.get("TZ", "").removeprefix(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        return dt.UTC


def is_run(execution: Execution) -> bool:
    """Whether an execution finished as a run (see the module's docstring)."""
    if execution.status not in FINISHED:
        return False
    return not failed_to_start(execution)


def failed_to_start(execution: Execution) -> bool:
    """A failed execution that examined no file and no folder."""
    stats = execution.stats
    return execution.status == "failed" and not (stats.get("files") or stats.get("folders"))


def next_run(schedule: Schedule, executions: Sequence[Execution],
             now: dt.datetime) -> dt.datetime | None:
    """When the job should run next, at or after `now` (an aware datetime, whose zone the
    windows are read in), given its executions since it was saved, newest first; None when the
    schedule will not run it again. Due now means `now`. A run that was missed (no scheduler
    running, the previous run still going) is made up once, as soon as the window allows.
    Only the newest execution matters, unless a repeat_count needs the runs counted."""
    zone = now.tzinfo
    assert zone is not None, "next_run needs an aware datetime"
    if schedule.mode != "auto":
        return now if schedule.start_now and not executions else None
    if schedule.paused and not executions:
        return None
    runs = sum(map(is_run, executions))
    if schedule.repeat_count is not None and runs > schedule.repeat_count:
        return None
    # epoch seconds from here on: datetimes sharing a zone compare and add as wall clocks
    earliest = max(now.timestamp(), schedule.start_date or 0.0)
    ran_since: float | None = None  # a once-a-day job's window holding its last run is used
    if executions:
        last = executions[0]
        if last.status == "paused" and last.resume_at:
            earliest = max(earliest, last.resume_at)  # the run continues after the reset
        elif last.status in RESUMABLE:
            pass  # stopped part-way: continued at once, in the window
        elif schedule.once_a_day:
            ran_since = last.started_at
        else:
            ended = last.ended_at or last.heartbeat_at
            earliest = max(earliest, ended + schedule.interval)
    if not earliest <= LATEST_DATE:  # a date or an interval a stored job kept from before the
        return None  # checks (or infinity): never, rather than a crash
    try:
        for opens, closes in _windows(schedule, dt.datetime.fromtimestamp(earliest, zone)):
            if closes <= earliest or (ran_since is not None and opens <= ran_since):
                continue
            due = max(opens, earliest)
            if schedule.end_date is not None and due >= schedule.end_date:
                return None
            return now if due == now.timestamp() else dt.datetime.fromtimestamp(due, zone)
    except OverflowError:
        pass  # the windows ran past the last day a datetime holds: never
    return None


def _windows(schedule: Schedule, start: dt.datetime) -> Iterator[tuple[float, float]]:
    """The (opening, closing) epoch seconds of the windows of the allowed days, from the one
    open at `start` (a window crossing midnight belongs to the day it opens on), for two
    weeks."""
    zone = start.tzinfo
    assert zone is not None
    opening = schedule.run_at or schedule.start_window or dt.time(0)
    closing = schedule.end_window
    day = start.date() - dt.timedelta(days=1)
    for _ in range(15):
        if day.weekday() in schedule.days:
            next_day = day + dt.timedelta(days=1)
            if closing is None:
                closes = wall_clock(next_day, dt.time(0), zone)
            else:
                closes = wall_clock(day if closing > opening else next_day, closing, zone)
            yield wall_clock(day, opening, zone).timestamp(), closes.timestamp()
        day += dt.timedelta(days=1)


def wall_clock(day: dt.date, time: dt.time, zone: dt.tzinfo) -> dt.datetime:
    """The moment a wall clock in `zone` shows `time` on `day`: the first of two in the hour
    that autumn repeats; in the hour spring skips, the moment the clocks jump (02:30 on the
    day Berlin goes from 02:00 to 03:00 is 03:00 CEST, as cron runs a job of the lost hour)."""
    moment = dt.datetime.combine(day, time, tzinfo=zone)  # fold=0: the first of two
    utc = moment.astimezone(dt.UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == moment.replace(tzinfo=None):
        return moment
    # in the gap: fold=1 reads it with the offset after the jump, a moment before the jump
    after = moment.replace(fold=1).utcoffset()
    jump = moment.replace(fold=1).astimezone(dt.UTC)
    while jump.astimezone(zone).utcoffset() != after:
        jump += dt.timedelta(minutes=1)
    return jump.astimezone(zone)


def stop_reason(job: Job, executions: Sequence[Execution]) -> str | None:
    """Why the job is complete (its stop policy met, an ad-hoc job's run done, an auto job's
    repeat_count used up), else None; `executions` are those since the job was saved, newest
    first. DryvIQ's keys: on_success counts runs with no changes, on_failure failed runs,
    on_execute all runs, none of them necessarily consecutive; a key missing (or 0) is no
    limit; the first met stops the job."""
    runs = [execution for execution in executions if is_run(execution)]
    policy = job.stop_policy
    counted = (
        ("on_success", policy.on_success,
         sum(run.status == "no_changes" for run in runs), "with no changes"),
        ("on_failure", policy.on_failure, sum(run.status in FAILED for run in runs), "failed"),
        ("on_execute", policy.on_execute, len(runs), "in all"),
    )
    for key, limit, count, what in counted:
        if limit and count >= limit:
            return f"stop policy {key} {limit}: {_runs(count)} {what}"
    schedule = Schedule.of(job)
    if schedule.mode == "ad-hoc" and runs:
        return "ad-hoc job: it ran once"
    if schedule.mode == "auto" and schedule.repeat_count is not None \
            and len(runs) > schedule.repeat_count:
        return f"schedule repeat_count {schedule.repeat_count}: {_runs(len(runs))} made"
    return None


def _runs(count: int) -> str:
    return f"{count} run" + ("" if count == 1 else "s")


async def apply_stop_policy(state: State, record: JobRecord) -> str | None:
    """At the end of an execution: mark the job complete, with why, when its stop policy (or
    its ad-hoc run, or its repeat_count) says so; returns the reason when this completed it.
    The job is read again: the `record` a scheduler loaded may predate an edit."""
    record = next(iter(await state.find_jobs(record.id)), record)
    job = parse_job(record.definition)
    schedule = Schedule.of(job)
    policy = job.stop_policy
    counts = (policy.on_success or policy.on_failure or policy.on_execute
              or schedule.mode == "ad-hoc" or schedule.repeat_count is not None)
    if record.status == "complete" or state.read_only or not counts:
        return None  # (without a limit, a year of runs is not read at the end of every run)
    reason = stop_reason(job, await state.counted_executions(record))
    if reason is not None:
        await state.set_job_status(record.id, "complete", reason)
    return reason


@dataclass(frozen=True)
class JobStatus:
    """A job's DryvIQ status, for `jobs list/show` and the app: `code` is idle, running,
    paused (a run stopped part-way that the next one continues, or an auto job waiting for
    its manual first run) or complete; `reason` says why, where there is a why."""

    code: str
    reason: str | None = None

    @property
    def words(self) -> str:
        return f"{self.code}: {self.reason}" if self.reason else self.code


def job_status(record: JobRecord, last: Execution | None, *, running: bool) -> JobStatus:
    """The status of job `record` given its newest execution since it was saved (None when
    there is none) and whether a process is running it now."""
    if running:  # a complete job run by hand, too
        return JobStatus("running")
    if record.status == "complete":
        return JobStatus("complete", record.status_reason)
    if last is not None and last.status == "paused":
        after = f" after {zoned(last.resume_at):%H:%M %Z}" if last.resume_at else ""
        return JobStatus("paused", f"API rate limit; the next run continues{after}")
    if last is not None and last.status in ("interrupted", "running"):  # running: died
        return JobStatus("paused", "interrupted; the next run continues where it stopped")
    if last is None and record.schedule_mode == "auto":
        schedule = stored_schedule(record)
        if schedule is not None and schedule.paused:
            return JobStatus("paused", 'status "paused": waits for a manual first run')
    return JobStatus("idle")


def stored_schedule(record: JobRecord) -> Schedule | None:
    """The schedule of a stored job; None when its JSON no longer passes today's checks (kept
    by an earlier version: it is shown, and refused when run, never scheduled)."""
    try:
        return Schedule.of(parse_job(record.definition))
    except JobError:
        return None


def zoned(epoch: float) -> dt.datetime:
    """A moment in the machine's zone (for showing it with the zone's name)."""
    return dt.datetime.fromtimestamp(epoch, local_zone())


async def current_status(state: State, home: Home, record: JobRecord) -> JobStatus:
    """Job `record`'s status now, as `jobs list/show` and the app show it."""
    newest = await state.counted_executions(record, 1)
    return job_status(record, next(iter(newest), None),
                      running=await job_running(state, home, record.id))


async def upcoming_run(state: State, record: JobRecord, now: dt.datetime) -> dt.datetime | None:
    """When the schedule runs job `record` next (see next_run); None for a complete job or
    one whose stored JSON no longer passes the checks."""
    schedule = stored_schedule(record)
    if record.status == "complete" or schedule is None:
        return None
    # only a repeat_count needs every run counted; else the newest execution says it all
    newest = None if schedule.repeat_count is not None else 1
    return next_run(schedule, await state.counted_executions(record, newest), now)
