"""Job control across processes (core.control): a start request makes the scheduler start a
job whatever its schedule; a pause or cancel request is obeyed by the run of the job in
whatever process runs it. Real state files, real runs over local folders."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from core import control
from core.connections import add_local, rclone_config
from core.connectors import local
from core.connectors.local import LocalConnector
from core.engine import executor
from core.engine.runner import RunResult, run_job
from core.engine.stats import ExecutionStats
from core.home import Home
from core.job_store import create_job
from core.scheduler import Note, Scheduler
from core.state import JobRecord, State
from tests.e2e.conftest import clean_env, dryviq_command

FILES = 4
SIZE = 256 << 10  # bytes: each file takes a few copy steps (COPY_STEP is made small below)
TIMEOUT = 60  # seconds: only so a hung test fails instead of hanging the suite


@dataclass
class Rig:
    home: Home
    state: State
    source: Path
    destination: Path

    def arrived(self) -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in self.destination.rglob("*")
                if path.is_file()}

    async def job(self, schedule: dict[str, object] | None = None) -> JobRecord:
        return (await create_job(self.state, json.dumps({
            "name": "plans", "transfer": {
                "transfer_type": "copy",
                "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
                "destination": {"connection": {"id": "dst"}, "target": {"path": "/"}},
                "performance": {"parallel_writes": {"requested": 1}}},
            "schedule": schedule or {"mode": "manual"}})))[0]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    source, destination = tmp_path / "source", tmp_path / "destination"
    source.mkdir()
    destination.mkdir()
    for number in range(FILES):
        (source / f"sheet{number}.pdf").write_bytes(bytes([number]) * SIZE)
    await add_local(state, "src", str(source), fsync=False)
    await add_local(state, "dst", str(destination), fsync=False)
    yield Rig(home, state, source, destination)
    await state.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.02)


class HeldCopy:
    """Holds the copy thread in the middle of the first file until released, so a request
    lands while a file is in flight, whatever this machine's speed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loop = asyncio.get_running_loop()
        self.reached = asyncio.Event()
        self.released = threading.Event()
        self.steps = 0
        step = LocalConnector._copy_step

        def held(connector: LocalConnector, *args: object) -> int:
            self.steps += 1
            if self.steps == 2:
                self.loop.call_soon_threadsafe(self.reached.set)
                self.released.wait(timeout=TIMEOUT)
            return step(connector, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(executor, "SMALL_FILE", 0)  # every file copied step by step
        monkeypatch.setattr(local, "COPY_STEP", 64 << 10)
        monkeypatch.setattr(LocalConnector, "_copy_step", held)


async def stopped_mid_file(rig: Rig, job: JobRecord, action: str,
                           monkeypatch: pytest.MonkeyPatch) -> RunResult:
    """Run the job; once its first file is in flight, ask (as another process would, through
    the state file) for `action`; the run's result once it ended. A start asked meanwhile is
    moot: the run drops it."""
    held = HeldCopy(monkeypatch)
    stop = asyncio.Event()
    running = asyncio.create_task(run_job(rig.state, rig.home, job, stop=stop))
    await asyncio.wait_for(held.reached.wait(), TIMEOUT)
    await control.request(rig.state, job.id, "start", by="tests")

    async def dropped() -> None:
        while await control.pending(rig.state):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(dropped(), TIMEOUT)
    assert not stop.is_set()
    asked = await control.request_stop(rig.state, rig.home, job.id, action, by="tests")
    assert await control.pending_for(rig.state, job.id) == asked
    await until(stop.is_set, f"the run to obey the {action} request")
    held.released.set()
    return await asyncio.wait_for(running, TIMEOUT)


async def test_a_pause_request_stops_the_run_resumable_after_the_files_in_flight(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    job = await rig.job()
    result = await stopped_mid_file(rig, job, "pause", monkeypatch)

    assert (result.status, result.stopped_by, result.exit_code) == ("interrupted", "pause", 3)
    arrived = rig.arrived()
    assert 1 <= len(arrived) < FILES, "the file in flight finishes, the others wait"
    assert all(data == (rig.source / name).read_bytes() for name, data in arrived.items())
    assert result.stats.transferred == len(arrived)
    assert await control.pending_for(rig.state, job.id) is None  # obeyed, so deleted
    assert [e.status for e in await rig.state.executions(job.id)] == ["interrupted"]

    # a pause asked of a run that ended before it looked is not obeyed by the next run
    await control.request(rig.state, job.id, "pause", by="late")
    resumed = await run_job(rig.state, rig.home, job)
    assert (resumed.status, resumed.stats.transferred) == ("completed", FILES - len(arrived))
    assert rig.arrived() == {p.name: p.read_bytes() for p in rig.source.iterdir()}
    assert await control.pending_for(rig.state, job.id) is None


async def test_a_cancel_request_ends_the_run_at_once_with_nothing_partial(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    job = await rig.job()
    result = await stopped_mid_file(rig, job, "cancel", monkeypatch)

    assert (result.status, result.stopped_by, result.exit_code) == ("interrupted", "cancel", 3)
    assert result.error and "cancelled" in result.error
    assert rig.arrived() == {}, "the file in flight was rolled back, no .part left"
    assert await control.pending_for(rig.state, job.id) is None
    newest = (await rig.state.executions(job.id))[0]
    assert (newest.status, newest.error, newest.ended_at is not None) == (
        "interrupted", result.error, True)

    resumed = await run_job(rig.state, rig.home, job)
    assert (resumed.status, resumed.stats.transferred) == ("completed", FILES)


async def test_pause_and_cancel_are_refused_for_a_job_that_does_not_run(rig: Rig) -> None:
    job = await rig.job()
    for action in control.STOPS:
        with pytest.raises(control.NotRunning, match="not running"):
            await control.request_stop(rig.state, rig.home, job.id, action, by="tests")
    assert await control.pending(rig.state) == []
    with pytest.raises(ValueError, match="start"):
        await control.request_stop(rig.state, rig.home, job.id, "start", by="tests")


class StillClock:
    """A clock whose sleeps never end: only a run's end, the stop, or a request's watch
    wakes the scheduler."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


async def test_a_start_request_starts_a_manual_complete_job_within_a_tick(rig: Rig) -> None:
    job = await rig.job()
    await rig.state.set_job_status(job.id, "complete", "stop policy: on_success 1")
    notes: list[Note] = []
    scheduler = Scheduler(rig.state, rig.home, agent="test:1", clock=StillClock(),
                          poll=3600, on_note=notes.append)
    stop = asyncio.Event()
    schedules = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(0.05)  # it looked once, found nothing due, and sleeps (for ever)
    assert notes == []

    asked = await control.request(rig.state, job.id, "start", by="tests")
    await until(lambda: any(n.kind == "finished" for n in notes), "the requested run")
    stop.set()
    await asyncio.wait_for(schedules, TIMEOUT)

    assert (notes[0].kind, notes[0].text()) == ("started", "started plans (on request)")
    finished = notes[-1].result
    assert finished is not None and finished.status == "completed"
    assert await control.pending(rig.state) == []
    (execution,) = await rig.state.executions(job.id)
    assert (execution.agent, execution.scheduled, execution.started_at > asked.requested_at
            ) == ("test:1", False, True)
    assert len(rig.arrived()) == FILES


async def test_a_start_request_for_a_running_job_is_dropped_and_a_paused_one_waits(
        rig: Rig) -> None:
    """Asked to start a job that runs elsewhere: moot, deleted. A scheduled run a person
    paused continues at its next run, not at the scheduler's next look."""
    job = await rig.job({"mode": "auto", "repeat_interval": {"value": 1, "unit": "h"}})
    started: list[str] = []

    async def launch(job: JobRecord, stop: asyncio.Event, agent: str,
                     scheduled: bool) -> RunResult:
        started.append(f"{job.name} scheduled={scheduled}")
        execution = await rig.state.start_execution(job.id, agent=agent, scheduled=scheduled)
        await rig.state.update_execution(execution.id, status="interrupted", ended_at=1.0)
        return RunResult(execution.id, "interrupted", ExecutionStats(), stopped_by="pause")

    scheduler = Scheduler(rig.state, rig.home, agent="test:1", launch=launch)
    with rig.home.job_lock(job.id):
        await control.request(rig.state, job.id, "start", by="tests")
        await scheduler.tick()
        assert started == [] and await control.pending(rig.state) == []

    await scheduler.tick()
    await until(lambda: not scheduler.running, "the scheduled run")
    await scheduler.tick()  # its newest run is interrupted: due at once, but a person paused it
    assert started == ["plans scheduled=True"]
    await control.request(rig.state, job.id, "start", by="tests")  # until asked again
    await scheduler.tick()
    await scheduler.stop_runs()
    assert started == ["plans scheduled=True", "plans scheduled=False"]


@pytest.mark.slow
async def test_jobs_run_in_another_process_obeys_a_pause_request(rig: Rig) -> None:
    """`dryviq-tui jobs run` in a subprocess, paused by a request this process writes into
    the state file: it stops resumable and exits 3. The source is read through rclone with a
    download throttle, so the run lasts seconds whatever this machine's speed."""
    conf = rig.source.parent / "rclone.conf"
    conf.write_text("[disk]\ntype = local\n")
    await rig.state.add_connection("slow", "rclone", rclone_config(
        remote=f"disk:{rig.source}", config=str(conf)), None)
    job = (await create_job(rig.state, json.dumps({"name": "throttled", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "slow"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": "/"}},
        "performance": {"parallel_writes": {"requested": 1},
                        "download": {"bytes_per_second": SIZE // 2}}}})))[0]
    run = subprocess.Popen([*dryviq_command(), "--home", str(rig.home.root), "jobs", "run",
                            "throttled"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=clean_env())
    try:
        await until(lambda: rig.home.job_locked(job.id) or run.poll() is not None,
                    "the run to start")
        await control.request_stop(rig.state, rig.home, job.id, "pause", by="tests")
        await until(lambda: run.poll() is not None, "the run to stop")
        out, err = run.communicate(timeout=TIMEOUT)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 3, (out, err)
    assert "interrupted" in out + err
    assert len(rig.arrived()) < FILES
    assert await control.pending_for(rig.state, job.id) is None
    (execution,) = await rig.state.executions(job.id)
    assert execution.status == "interrupted"
