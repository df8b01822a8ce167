"""The monitor shows both directions of a sync, conflicts, moves, versions and the job's
throttle; a run the delete guard stopped says why, and Run anyway (f) asks, then runs the job
with force (issue 12, item 7). Executions are recorded in a real state, not run."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.engine.runner import RunResult
from core.engine.stats import ExecutionStats
from tests.tui.conftest import World, job_json, running, table_rows, text_of, wait_for
from tests.tui.test_jobs_screens import jobs_table
from tests.tui.test_monitor import monitor_at
from tui import service as service_module
from tui.screens.monitor import MonitorScreen
from tui.widgets.confirm import ConfirmScreen

GUARD = "would delete 80% of the destination (40 of 50 files), more than max_delete 50%"


async def recorded(world: World, status: str, stats: dict[str, Any], *,
                   error: str | None = None, **transfer: Any) -> str:
    """A job with one finished execution of `status` and `stats`."""
    job = await world.job(job_json(**transfer))
    execution = await world.state.start_execution(job.id)
    await world.state.update_execution(execution.id, status=status, phase="complete",
                                       ended_at=time.time(), stats=stats, error=error)
    return job.id


async def test_a_sync_shows_both_directions_conflicts_and_its_throttle(world: World) -> None:
    await recorded(world, "completed", {
        "transferred": 6, "added_destination": 3, "updated_destination": 1,
        "deleted_destination": 0, "added_source": 0, "updated_source": 2, "deleted_source": 1,
        "conflicts": 1, "moved": 2, "versions": 4}, transfer_type="sync",
        performance={"upload": {"bytes_per_second": 1_048_576}})
    async with monitor_at(world, (80, 24)) as (app, _pilot, monitor):
        await wait_for(lambda: "↑" in text_of(app, "#monitor-sides"), what="the sides")
        lines = text_of(app, "#monitor-sides").splitlines()
        assert lines == ["↑ to destination: 3 added, 1 updated, 0 deleted",
                         "↓ to source: 0 added, 2 updated, 1 deleted",
                         "1 conflict · 2 moved · 4 versions preserved · throttled to 1.0 MiB/s "
                         "up"]
        assert not monitor.query_one("#monitor-guard").display
        assert not monitor.query_one("#monitor-force").display
        await wait_for(lambda: table_rows(app, "#monitor-history") != [], what="the history")
        [row] = table_rows(app, "#monitor-history")
        assert row[2] == "↑+3 ~1 ↓~2 -1 ⚡1"


async def test_a_copy_shows_only_the_way_to_the_destination(world: World) -> None:
    await recorded(world, "completed", {"transferred": 2, "added_destination": 2})
    async with monitor_at(world, (80, 24)) as (app, _pilot, _monitor):
        await wait_for(lambda: "↑" in text_of(app, "#monitor-sides"), what="the sides")
        assert text_of(app, "#monitor-sides") == (
            "↑ to destination: 2 added, 0 updated, 0 deleted")


async def test_a_copy_that_wrote_to_the_source_shows_it(world: World) -> None:
    await recorded(world, "completed", {"added_destination": 2, "deleted_source": 2})
    async with monitor_at(world, (80, 24)) as (app, _pilot, _monitor):
        await wait_for(lambda: "↓" in text_of(app, "#monitor-sides"), what="the ↓ line")
        assert "↓ to source: 0 added, 0 updated, 2 deleted" in text_of(app, "#monitor-sides")


async def test_a_guarded_run_says_why_and_run_anyway_forces_it(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    forced: list[bool] = []

    async def fake_run_job(state, home, job, *, force: bool = False, **_: Any) -> RunResult:
        forced.append(force)
        return RunResult(0, "completed", ExecutionStats())

    monkeypatch.setattr(service_module, "run_job", fake_run_job)
    await recorded(world, "guarded", {"delete_guard": GUARD}, error="stopped by the guard")
    async with monitor_at(world, (80, 24)) as (app, pilot, monitor):
        await wait_for(lambda: GUARD in text_of(app, "#monitor-guard"), what="the reason")
        assert "Stopped by the delete guard" in text_of(app, "#monitor-status")
        assert "jobs run --force 'Tower A'" in text_of(app, "#monitor-guard")
        assert monitor.query_one("#monitor-force").display
        assert monitor.check_action("force_run", ()) is True
        await pilot.press("f")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("escape")  # the safe answer: nothing runs
        await wait_for(lambda: isinstance(app.screen, MonitorScreen), what="the monitor")
        await pilot.pause()
        assert forced == []
        await pilot.press("f")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.click("#confirm-yes")
        await wait_for(lambda: forced == [True], what="the forced run")


async def test_without_a_guard_f_does_nothing(world: World,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    await recorded(world, "completed", {"added_destination": 1})
    async with monitor_at(world, (80, 24)) as (app, pilot, monitor):
        await wait_for(lambda: "↑" in text_of(app, "#monitor-sides"), what="the sides")
        assert monitor.check_action("force_run", ()) is False
        await pilot.press("f")
        await pilot.pause()
        assert app.screen is monitor


async def test_the_jobs_list_shows_a_guarded_run(world: World) -> None:
    await recorded(world, "guarded", {"delete_guard": GUARD})
    async with running(world) as (app, _pilot):
        await wait_for(lambda: jobs_table(app) != [], what="the job")
        assert jobs_table(app)[0][1] == "stopped by the delete guard"
