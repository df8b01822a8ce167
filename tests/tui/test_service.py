"""AppService: runs owned by the service (not a screen), pause/cancel/resume, live views of
runs here and in other processes, and the state the screens read."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from core.control import pending_for
from core.home import Home
from core.jobs import JobError
from tests.tui.conftest import World, job_json, wait_for, write_files
from tui.service import AppService, ServiceError


def arrived(world: World) -> int:
    return sum(1 for _ in (world.destination / "copy").rglob("*.bin"))


async def test_a_run_completes_and_its_live_view_says_so(world: World) -> None:
    write_files(world.source, 120)
    job = await world.job()
    finished = []
    world.service.on_finished = lambda job, result, error: finished.append((result, error))

    await world.service.start(job.id)
    assert world.service.runs_here(job.id) and await world.service.is_running(job.id)
    running = await world.service.live(job.id)
    assert (running.where, running.status) == ("here", "running")
    await world.service.wait(job.id)

    live = await world.service.live(job.id)
    assert (live.where, live.status, live.phase) == ("idle", "completed", "not running")
    assert live.stats.transferred == 120 and live.stats.planned_files == 120
    assert live.rate > 0 and live.eta is None
    assert any(e.message.endswith(" completed") for e in live.events)
    assert arrived(world) == 120
    assert [(r.status, e) for r, e in finished] == [("completed", None)]
    assert [e.status for e in await world.service.history(job.id)] == ["completed"]


async def test_pause_leaves_the_execution_resumable_and_start_resumes_it(world: World) -> None:
    write_files(world.source, 3000, per_folder=300)
    job = await world.job(job_json(parallel=1))
    await world.service.start(job.id)
    await wait_for(lambda: arrived(world) >= 50, what="the first files")
    await world.service.pause(job.id)
    assert (await world.service.live(job.id)).status == "stopping"
    await world.service.wait(job.id)

    paused = await world.service.live(job.id)
    assert (paused.status, paused.requested) == ("interrupted", "pause")
    assert 50 <= arrived(world) < 3000, "the pause should land mid-run"
    assert list((world.destination / "copy").rglob("*.part")) == []

    await world.service.start(job.id)
    await world.service.wait(job.id)
    assert (await world.service.live(job.id)).status == "completed"
    assert arrived(world) == 3000
    assert [e.status for e in await world.service.history(job.id)] == ["completed",
                                                                         "interrupted"]


async def test_cancel_stops_at_once_and_closing_the_service_stops_its_runs(
        world: World, tmp_path) -> None:
    write_files(world.source, 3000, per_folder=300)
    job = await world.job(job_json(parallel=1))
    await world.service.start(job.id)
    await wait_for(lambda: arrived(world) >= 20, what="the first files")
    await world.service.cancel(job.id)
    await world.service.wait(job.id)
    live = await world.service.live(job.id)
    assert (live.status, live.requested) == ("interrupted", "cancel")
    assert "cancelled" in live.events[-1].message

    # a second service on the same home (as a fresh app would be) is stopped by close()
    other = await AppService.open(world.home)
    await other.start(job.id)
    await wait_for(lambda: other.runs_here(job.id) and arrived(world) > 0)
    await other.close(grace=5)
    assert (await world.service.history(job.id))[0].status == "interrupted"


async def test_start_refuses_a_running_job(world: World) -> None:
    write_files(world.source, 3000, per_folder=300)
    job = await world.job(job_json(parallel=1))
    await world.service.start(job.id)
    with pytest.raises(ServiceError, match="already running here"):
        await world.service.start(job.id)
    await world.service.cancel(job.id)
    await world.service.wait(job.id)

    sync = await world.job(job_json(name="two way", transfer_type="sync"))
    with pytest.raises(ServiceError, match="not running"):
        await world.service.pause(sync.id)
    assert (await world.service.live(sync.id)).status == "never run"


async def test_a_run_in_another_process_is_read_from_the_state_db(world: World) -> None:
    job = await world.job()
    state = world.state
    # another process: it holds the job's run lock and writes heartbeats with stats
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with Home(world.home.root).job_lock(job.id):
            execution = await state.start_execution(job.id)
            await state.db.execute("UPDATE executions SET pid = ? WHERE id = ?",
                                   (sleeper.pid, execution.id))
            await state.update_execution(execution.id, phase="executing", stats={
                "transferred": 10, "planned_files": 40, "bytes": 1000, "planned_bytes": 4000,
                "listing_done": True, "waiting_until": time.time() + 600})
            first = await world.service.live(job.id)
            assert (first.where, first.status) == ("elsewhere", "running")
            assert first.stats.transferred == 10 and first.execution.pid == sleeper.pid
            assert first.phase == "waiting for the API rate limit"
            await asyncio.sleep(0.05)
            await state.update_execution(execution.id, stats={
                "transferred": 20, "planned_files": 40, "bytes": 2000, "planned_bytes": 4000,
                "listing_done": True})
            second = await world.service.live(job.id)
            assert second.rate > 0 and second.eta is not None
            assert [r.where for r in await world.service.job_rows()] == ["elsewhere"]
            with pytest.raises(ServiceError, match="already running in another process"):
                await world.service.start(job.id)

            await world.service.pause(job.id)  # asked of the process running it
            asked = await pending_for(state, job.id)
            assert asked is not None and asked.action == "pause"
            assert asked.requested_by.startswith("the app (")
            assert sleeper.poll() is None, "no signal: an agent running it runs other jobs"
            sleeper.kill()
            sleeper.wait()
        # its process is gone and left the row 'running': shown as interrupted, not running
        assert (await world.service.live(job.id)).status == "interrupted"
        assert [e.status for e in await world.service.history(job.id)] == ["interrupted"]
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_budgets_problems_and_imports(world: World, tmp_path) -> None:
    await world.state.db.execute(
        "INSERT INTO rate_budgets (client_key, hourly_limit, hourly_remaining, hourly_reset, "
        "blocked_until, updated_at) VALUES ('procore:abc', 3600, 1200, ?, 0, ?)",
        (time.time() + 900, time.time()))
    await world.state.db.commit()
    [budget] = await world.service.budgets()
    assert (budget.client, budget.limit, budget.remaining) == ("procore:abc", 3600, 1200)

    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "transfer": {')
    with pytest.raises(JobError, match="not valid JSON"):
        await world.service.import_job(str(bad))
    with pytest.raises(JobError, match="No such file"):
        await world.service.import_job(str(tmp_path / "missing.json"))
    good = tmp_path / "good.json"
    good.write_text(job_json(name="imported"))
    job, warnings = await world.service.import_job(str(good))
    assert warnings == [] and [j.name for j in await world.state.find_jobs()] == ["imported"]
    assert await world.service.problems(job.id) == []
