"""The monitor at 80x24: a flagged item's reason readable beside a long path, Enter for the
item in full, events, and the budget in the very words and numbers `jobs run` prints."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from textual.pilot import Pilot
from textual.widgets import DataTable, Log

from core.cli.output import progress_text
from core.engine.stats import ExecutionStats, Throughput
from core.readout import budget_readouts, tightest
from core.state import ItemRecord
from tests.tui.conftest import World, text_of, wait_for
from tui.app import DryvIQApp
from tui.screens.jobs import JobsScreen
from tui.screens.monitor import MonitorScreen, waiting_line
from tui.widgets.item_detail import ItemDetailScreen

FOLDER = "Projects/Riverside Medical Center/Drawings/Architectural/Level 2/North wing sheets"
REASON = "the path is 262 characters, more than Procore's 255"


@asynccontextmanager
async def monitor_at(world: World, size: tuple[int, int]
                     ) -> AsyncIterator[tuple[DryvIQApp, Pilot[int], MonitorScreen]]:
    app = DryvIQApp(world.service)
    async with app.run_test(size=size) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.pause()
        await pilot.press("m")
        await wait_for(lambda: isinstance(app.screen, MonitorScreen), what="the monitor")
        assert isinstance(app.screen, MonitorScreen)
        yield app, pilot, app.screen


async def finished_with_problems(world: World) -> str:
    job = await world.job()
    execution = await world.state.start_execution(job.id)
    await world.state.update_execution(execution.id, status="warn", phase="complete",
                                       ended_at=time.time(), stats={"flagged": 1, "failed": 1})
    base = dict(job_id=job.id, parent=FOLDER, is_dir=False, size=23, mtime=None,
                action="create", execution_id=execution.id)
    await world.state.save_items([
        ItemRecord(path=f"{FOLDER}/A-201 Floor plan, level two, north wing.pdf",
                   status="remediation", note=REASON, **base),  # type: ignore[arg-type]
        ItemRecord(path=f"{FOLDER}/bad:name?.pdf", status="retry", attempts=2,
                   last_error="the disk is full",
                   note="renamed from 'bad:name?.pdf': characters the destination refuses",
                   destination_path=f"copy/{FOLDER}/bad_name_.pdf",
                   **base),  # type: ignore[arg-type]
    ])
    return job.id


async def test_at_80x24_the_reason_shows_before_a_long_path(world: World) -> None:
    await finished_with_problems(world)
    async with monitor_at(world, (80, 24)) as (app, pilot, monitor):
        table = monitor.query_one("#monitor-problems", DataTable)
        await wait_for(lambda: table.row_count == 2, what="the flagged and failed rows")
        await pilot.pause()
        assert [str(c.label) for c in table.columns.values()] == [
            "Status", "Reason", "Path", "Tries"]
        flagged = [str(cell) for cell in table.get_row_at(0)]
        assert flagged[0] == "flagged" and flagged[1] == REASON  # whole, wrapped
        assert flagged[2].startswith("/Projects/") and flagged[2].endswith("north wing.pdf")
        assert "…" in flagged[2]  # shortened in the middle
        # nothing is pushed past the window's edge
        assert table.virtual_size.width <= table.size.width
        failed = [str(cell) for cell in table.get_row_at(1)]
        assert failed[1].startswith("the disk is full") and failed[3] == "2"

        table.focus()
        table.move_cursor(row=1)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, ItemDetailScreen), what="the detail")
        facts = text_of(app, "#item-facts")
        assert f"Source: /{FOLDER}/bad:name?.pdf" in facts
        assert f"Destination: /copy/{FOLDER}/bad_name_.pdf" in facts
        assert "New name: bad_name_.pdf" in facts
        assert "Status: failed, will retry (retry)" in facts
        assert "Attempts: 2" in facts and "Last error: the disk is full" in facts
        assert ("Why: renamed from 'bad:name?.pdf' to 'bad_name_.pdf': characters the "
                "destination refuses") in facts
        assert "Recorded: " in facts
        await pilot.press("escape")
        await wait_for(lambda: app.screen is monitor, what="back at the monitor")


async def test_the_monitor_and_jobs_run_show_the_same_budget(world: World) -> None:
    """One model: the monitor's budget and pause are the progress line's, number for number,
    and a negative count recorded by the pacers shows as 0."""
    job = await world.job()
    now = time.time()
    await world.state.db.execute(
        "INSERT INTO rate_budgets (client_key, hourly_limit, hourly_remaining, hourly_reset, "
        "blocked_until, updated_at) VALUES ('procore:demo', 30, -2, ?, 0, ?)", (now + 40, now))
    await world.state.db.commit()
    stats = {"transferred": 7, "planned_files": 20, "api_calls": 1, "rate_limit_waits": 1,
             "waiting_until": now + 40}
    with world.home.job_lock(job.id):
        execution = await world.state.start_execution(job.id)
        await world.state.update_execution(execution.id, phase="executing", stats=stats)
        async with monitor_at(world, (120, 40)) as (app, _pilot, _monitor):
            await wait_for(lambda: "Paused until" in text_of(app, "#monitor-waiting"),
                           what="the rate-limit pause")
            api = text_of(app, "#monitor-api")
            waiting = text_of(app, "#monitor-waiting")
            counts = text_of(app, "#monitor-counts")
            live = await world.service.live(job.id)
    budget = tightest(budget_readouts(await world.state.rate_budgets()), now)
    line = progress_text(ExecutionStats(**stats), Throughput(), budget, now)  # type: ignore[arg-type]
    assert "1 API call, 0/30 left" in line and api.startswith("1 API call · 1 rate-limit wait")
    assert api.endswith("hourly budget 0 of 30 calls left")  # the pause is the one countdown
    assert "-2" not in api + line
    # the same moment and the same countdown: "paused until 05:12:14 (40 s)"
    until, left = next(p for p in line.split(" · ") if p.startswith("paused until"))[
        len("paused until "):].rstrip(")").split(" (")
    assert waiting.startswith(f"⏸ Paused until {until} (rate limit)")
    # and at one moment, the monitor's countdown is the progress line's
    shown = waiting_line(live, now)
    assert shown is not None and shown.plain.endswith(f"continues by itself in {left}")
    assert "ETA paused" in line and "ETA paused" in counts


async def test_events_say_pauses_retries_and_problems(world: World) -> None:
    """The Events tab shows what the run said: here a run of this app's service, with a
    rate-limit pause, a retry and a flagged item fed in as the engine reports them."""
    job = await world.job()
    await world.service.start(job.id)
    await world.service.wait(job.id)
    run = world.service._runs[job.id]
    stats = ExecutionStats(waiting_until=time.time() + 14)
    run.progress(stats, Throughput())
    run.progress(ExecutionStats(), Throughput())
    run.event("retry", "/a.pdf: the server answered 503; trying again in 0.5 s")
    run.event("flagged", "/b.pdf: the path is too long")
    async with monitor_at(world, (80, 24)) as (_app, _pilot, monitor):
        log = monitor.query_one("#monitor-events", Log)
        await wait_for(lambda: len(log.lines) >= 5, what="the events")
        text = "\n".join(log.lines)
    assert "paused: rate limit: paused until" in text
    assert "continued: rate-limit pause over: continuing" in text
    assert "retry: /a.pdf: the server answered 503" in text
    assert "flagged: /b.pdf: the path is too long" in text
    assert "info: execution #1 " in text
