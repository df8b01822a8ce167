"""The scheduler: a week of schedules on a fake clock in seconds, the order and number of runs,
the API budget shared by jobs on one Procore client, and max_execution on real runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import core.scheduler as scheduler_module
from core.connections import add_local
from core.demo import SANDBOX_CLIENT_ID, connect_sandbox
from core.engine.runner import RunResult
from core.engine.stats import ExecutionStats
from core.home import ConfigError, Home
from core.job_store import create_job
from core.pacer import BudgetStore
from core.sandbox import DEMO_PROJECT, SandboxConfig
from core.scheduler import STALE, Note, Presence, Scheduler, concurrent_jobs
from core.state import AgentRow, JobRecord, State

MONDAY = dt.datetime(2026, 12, 7, 0, 0, tzinfo=dt.UTC)  # a Monday


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


class FakeClock:
    """A clock that jumps: a sleep takes no time, unless runs started here are still going
    (runs on this clock are instant, so the scheduler wakes at their end instead)."""

    def __init__(self, start: float) -> None:
        self.t = start
        self.scheduler: Scheduler | None = None

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if self.scheduler is not None and self.scheduler.busy:
            await asyncio.Event().wait()  # until the run's end wakes the scheduler
        self.t += seconds
        await asyncio.sleep(0)


def job_json(name: str, schedule: dict[str, Any], source: str = "plans",
             destination: str = "share", **transfer: Any) -> str:
    return json.dumps({
        "name": name,
        "transfer": {"transfer_type": "copy",
                     "source": {"connection": {"id": source}, "target": {"path": "/"}},
                     "destination": {"connection": {"id": destination},
                                     "target": {"path": f"/{name}"}}, **transfer},
        "schedule": schedule})


@pytest.fixture
async def home(tmp_path: Path) -> AsyncIterator[tuple[Home, State, Path]]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    for name in ("plans", "share"):
        (tmp_path / name).mkdir()
        await add_local(state, name, str(tmp_path / name))
    yield home, state, tmp_path
    await state.close()


def instant_runs(state: State, clock: FakeClock, ran: list[tuple[str, float]]):
    """A launch that records a completed execution at the fake clock's now, taking no time."""
    async def launch(job: JobRecord, stop: asyncio.Event, agent: str,
                     scheduled: bool) -> RunResult:
        at = clock.now()
        ran.append((job.name, at))
        execution = await state.start_execution(job.id, agent=agent, scheduled=scheduled)
        await state.db.execute("UPDATE executions SET started_at = ?, ended_at = ?, "
                               "heartbeat_at = ?, status = 'no_changes', phase = 'complete' "
                               "WHERE id = ?", (at, at, at, execution.id))
        await state.db.commit()
        return RunResult(execution.id, "no_changes", ExecutionStats())
    return launch


async def run_until(scheduler: Scheduler, clock: FakeClock, end: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    while clock.t < end and not task.done():
        await asyncio.sleep(0)
    stop.set()
    await task


async def test_a_week_of_schedules_runs_each_job_when_due_and_not_otherwise(home) -> None:
    home_, state, _ = home
    office = {"mode": "auto", "days": "weekdays", "repeat_interval": {"value": 1, "unit": "h"},
              "start_window": {"hr": 9, "min": 0}, "end_window": {"hr": 17, "min": 0}}
    await create_job(state, job_json("office", office))
    await create_job(state, job_json("auto", {"mode": "auto", "repeat_interval": {
        "value": 4, "unit": "h"}}))
    await create_job(state, job_json("manual", {"mode": "manual"}))
    clock = FakeClock(MONDAY.timestamp())
    ran: list[tuple[str, float]] = []
    scheduler = Scheduler(state, home_, agent="test:1", clock=clock, poll=86400,
                          launch=instant_runs(state, clock, ran))
    clock.scheduler = scheduler
    week = MONDAY.timestamp() + 7 * 86400
    await run_until(scheduler, clock, week)

    office_runs = [dt.datetime.fromtimestamp(at, dt.UTC) for name, at in ran
                   if name == "office" and at < week]
    # 09:00 to 16:00 on each of five weekdays, on the hour, and never at the weekend
    assert office_runs == [MONDAY + dt.timedelta(days=day, hours=hour)
                           for day in range(5) for hour in range(9, 17)]
    auto_runs = [at for name, at in ran if name == "auto" and at < week]
    assert auto_runs == [MONDAY.timestamp() + n * 4 * 3600 for n in range(7 * 6)]
    assert not [name for name, _ in ran if name == "manual"]
    history = await state.executions((await state.find_jobs("office"))[0].id)
    assert {(e.agent, e.scheduled) for e in history} == {("test:1", True)}


async def test_due_jobs_start_least_recently_run_first_and_no_more_than_the_limit(
        home) -> None:
    home_, state, _ = home
    jobs = [(await create_job(state, job_json(name, {"mode": "auto"})))[0]
            for name in ("a", "b", "c")]
    clock = FakeClock(MONDAY.timestamp())
    for job, ago in zip(jobs, (600, 3600, 1800), strict=True):  # b ran longest ago, then c
        execution = await state.start_execution(job.id)
        at = clock.t - ago - 900
        await state.db.execute("UPDATE executions SET started_at = ?, ended_at = ?, status = "
                               "'completed' WHERE id = ?", (at, at, execution.id))
    await state.db.commit()
    started: list[str] = []
    release = asyncio.Event()

    async def launch(job: JobRecord, stop: asyncio.Event, agent: str,
                     scheduled: bool) -> None:
        started.append(job.name)
        await release.wait()

    scheduler = Scheduler(state, home_, clock=clock, limit=2, launch=launch)
    await scheduler.tick()
    await asyncio.sleep(0.01)
    assert started == ["b", "c"]  # a waits: the limit is two at once
    await scheduler.tick()
    assert started == ["b", "c"]
    release.set()
    await scheduler.stop_runs()
    await scheduler.tick()
    await asyncio.sleep(0.01)
    assert started == ["b", "c", "a"]
    await scheduler.stop_runs()


async def test_a_job_whose_schedule_cannot_be_worked_out_is_skipped_and_logged_once(
        home, monkeypatch, caplog) -> None:
    """A job stored before the checks refused its date (year 1e300), or one whose schedule
    fails in a way nobody foresaw: the others run, the scheduler goes on."""
    home_, state, _ = home
    for name in ("good", "kept", "odd"):
        await create_job(state, job_json(name, {"mode": "auto"}))
    await state.db.execute("UPDATE jobs SET definition = ? WHERE name = 'kept'",
                           (job_json("kept", {"mode": "auto", "start_date": 1e300}),))
    await state.db.commit()
    real = scheduler_module.upcoming_run

    async def upcoming(state: State, job: JobRecord, now: dt.datetime) -> dt.datetime | None:
        if job.name == "odd":
            raise OverflowError("timestamp out of range for platform time_t")
        return await real(state, job, now)

    monkeypatch.setattr(scheduler_module, "upcoming_run", upcoming)
    clock = FakeClock(MONDAY.timestamp())
    ran: list[tuple[str, float]] = []
    scheduler = Scheduler(state, home_, clock=clock, launch=instant_runs(state, clock, ran))
    for _ in range(3):
        await scheduler.tick()
        await scheduler.stop_runs()
        clock.t += 3600
    assert [name for name, _ in ran] == ["good"] * 3
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(logged) == 2
    assert "job kept is not scheduled: its stored JSON no longer passes" in logged[0]
    assert logged[1] == ("job odd is not scheduled: its schedule cannot be worked out "
                         "(timestamp out of range for platform time_t)")


async def test_a_spent_procore_budget_holds_its_jobs_until_the_reset(home, make_sandbox
                                                                     ) -> None:
    home_, state, _ = home
    sandbox = make_sandbox(SandboxConfig(hourly_limit=100))
    await connect_sandbox(state, home_, sandbox.url, sandbox.world, "riverside")
    to_procore = (await create_job(state, job_json("up", {"mode": "auto"},
                                                   destination="riverside")))[0]
    await create_job(state, job_json("local", {"mode": "auto"}))
    clock = FakeClock(time.time())
    reset = clock.t + 600
    from core.connectors.procore import procore_app

    connection = await state.find_connection("riverside")
    assert connection is not None
    key = procore_app(connection.config, await state.connection_secrets(connection.id),
                      {}).budget_key
    store = BudgetStore(state.path)
    async with store.budget(key, 100) as budget:  # as a pacer leaves it: 10 left, the reserve
        budget.hourly_remaining, budget.hourly_reset = 10, reset
    await store.close()
    started: list[str] = []
    notes: list[Note] = []

    async def launch(job: JobRecord, stop: asyncio.Event, agent: str,
                     scheduled: bool) -> None:
        started.append(job.name)

    scheduler = Scheduler(state, home_, clock=clock, poll=3600, launch=launch,
                          on_note=notes.append)
    assert await scheduler.tick() == pytest.approx(600)
    await scheduler.stop_runs()
    assert started == ["local"]
    assert [(n.kind, n.job.id, n.until) for n in notes if n.kind == "waiting"] == [
        ("waiting", to_procore.id, reset)]
    clock.t = reset + 1
    await scheduler.tick()
    await scheduler.stop_runs()
    assert "up" in started


class LimitClock:
    """The system clock, except that the first run's max_execution (an hour) passes once its
    first files have arrived: the stop lands mid-run, whatever this machine's speed; from then
    on the scheduler's waits (the stopped run's interval, a minute) take no time."""

    def __init__(self, arrived: Callable[[], int]) -> None:
        self.arrived = arrived
        self.limited = False
        self.ahead = 0.0

    def now(self) -> float:
        return time.time() + self.ahead

    async def sleep(self, seconds: float) -> None:
        if seconds == 3600 and not self.limited:
            while self.arrived() < 3:
                await asyncio.sleep(0.005)
            self.limited = True
            return
        if self.limited and seconds != 3600:
            self.ahead += seconds
            await asyncio.sleep(0.01)
            return
        await asyncio.sleep(seconds)


async def test_max_execution_stops_a_run_resumable_and_the_next_run_finishes_it(
        home, make_sandbox) -> None:
    home_, state, folders = home
    sandbox = make_sandbox(SandboxConfig(latency=0.01))  # a slow Procore: files take a while
    await connect_sandbox(state, home_, sandbox.url, sandbox.world, "riverside")
    for i in range(12):
        (folders / "plans" / f"sheet{i:02d}.pdf").write_bytes(b"sheet %d" % i)
    schedule = {"mode": "auto", "repeat_interval": {"value": 1, "unit": "m"},
                "max_execution": {"value": 1, "unit": "h"}}
    job, _ = await create_job(state, job_json(
        "slow", schedule, destination="riverside",
        performance={"parallel_writes": {"requested": 1}}))
    project = next(p.id for p in sandbox.world.projects.values() if p.name == DEMO_PROJECT)

    def sent() -> list[str]:
        return [path for path in sandbox.world.tree(project)
                if path.startswith("slow/") and path.endswith(".pdf")]

    notes: list[Note] = []
    scheduler = Scheduler(state, home_, agent="host:42", on_note=notes.append,
                          clock=LimitClock(lambda: len(sent())))
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if {"completed", "no_changes"} & {e.status for e in await state.executions(job.id)}:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await scheduler.stop_runs()
    history = list(reversed(await state.executions(job.id)))
    assert [e.status for e in history[:2]] == ["interrupted", "completed"]
    assert all(e.agent == "host:42" and e.scheduled for e in history)
    first, second = (e.stats["transferred"] for e in history[:2])
    assert 3 <= first < 12, "the limit should stop the first run part-way"
    assert first + second == 12  # the next run sent the rest, no file twice
    assert len(sent()) == 12
    assert "stopping" in [n.kind for n in notes]


@pytest.mark.slow
async def test_two_jobs_on_one_procore_client_share_its_budget_and_keep_the_reserve(
        home, make_sandbox) -> None:
    home_, state, folders = home
    limit, reserve = 30, 3  # the pacer keeps 10% of the hour for browsing
    home_.config_path.write_text(f"[pacer]\nhourly_limit = {limit}\n")
    home_.config_path.chmod(0o600)
    sandbox = make_sandbox(SandboxConfig(hourly_limit=limit, hourly_window=12, spike_limit=1000))
    await connect_sandbox(state, home_, sandbox.url, sandbox.world, "riverside")
    for i in range(6):
        (folders / "plans" / f"sheet{i}.pdf").write_bytes(b"sheet %d" % i)
    once = {"mode": "auto", "repeat_interval": {"value": 1, "unit": "h"}}
    jobs = [(await create_job(state, job_json(name, once, destination="riverside")))[0]
            for name in ("tower-a", "tower-b")]
    scheduler = Scheduler(state, home_, limit=2)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        finished = [e for job in jobs for e in await state.executions(job.id)
                    if e.status != "running"]
        if len(finished) == 2:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await task
    await scheduler.stop_runs()
    assert sorted(e.status for e in finished) == ["completed", "completed"]  # none starved
    hourly = sandbox.world.windows[SANDBOX_CLIENT_ID][1]
    windows = [*hourly.past, hourly.count]
    assert sum(windows) > limit - reserve, "the jobs should need more than one window"
    assert max(windows) <= limit - reserve  # the reserve for browsing held in every window
    assert sandbox.world.rate_limited == 0  # and Procore never had to refuse a call
    assert sum(e.stats["rate_limit_waits"] for e in finished) >= 1  # they waited for resets
    tree = sandbox.world.tree(next(p.id for p in sandbox.world.projects.values()
                                   if p.name == DEMO_PROJECT))
    assert {path for path in tree if path.endswith(".pdf") and path.startswith("tower-")} == {
        f"{name}/sheet{i}.pdf" for name in ("tower-a", "tower-b") for i in range(6)}


async def test_a_heartbeat_forgets_the_rows_of_schedulers_that_died(home) -> None:
    _, state, _ = home
    dead = AgentRow("gone:1", "gone", 1, "agent", 0.0, time.time() - STALE - 1)
    alive = AgentRow("other:2", "other", 2, "app", 0.0, time.time())
    for row in (dead, alive):
        await state.beat(row, stale_before=0.0)
    presence = Presence(state, "agent")
    await presence.beat()
    assert {row.id for row in await state.agents()} == {presence.row.id, "other:2"}
    stop = asyncio.Event()
    stop.set()
    await presence.keep(stop)  # a scheduler that stops removes its own row
    assert [row.id for row in await state.agents()] == ["other:2"]


def test_how_many_jobs_at_once_is_a_config_key() -> None:
    assert concurrent_jobs({}) == 2
    assert concurrent_jobs({"agent": {"max_jobs": 4}}) == 4
    for bad in (0, "3", 17, 2.5):
        with pytest.raises(ConfigError, match=r"\[agent\] max_jobs"):
            concurrent_jobs({"agent": {"max_jobs": bad}})
