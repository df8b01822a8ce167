"""A real run into Procore's rate limit, watched in the app: it pauses, says until when, and
continues by itself. The sandbox's 'hour' lasts 12 seconds, so the reset comes soon."""

from __future__ import annotations

import pytest

from core.sandbox import DEMO_PROJECT, SandboxConfig
from tests.tui.conftest import World, add_sandbox_procore, job_json, text_of, wait_for
from tests.tui.test_jobs_screens import monitor_says, open_monitor, running

pytestmark = pytest.mark.slow


async def test_a_run_pauses_for_the_rate_limit_and_continues(world: World, make_sandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(hourly_limit=24, hourly_window=12, spike_limit=1000))
    await add_sandbox_procore(world.state, world.home, sandbox, "riverside")
    for n in range(30):
        (world.source / f"Sheet {n:02d}.pdf").write_bytes(b"sheet %d" % n)
    job = await world.job(job_json("Sheets to Procore", "plans", "riverside"))
    async with running(world) as (app, pilot):
        await pilot.press("r")
        await open_monitor(app, pilot)
        await wait_for(lambda: "Paused until" in text_of(app, "#monitor-waiting")
                       and "continues by itself" in text_of(app, "#monitor-waiting"),
                       timeout=30, what="the rate-limit pause")
        await wait_for(lambda: monitor_says(app, "Completed"), timeout=60,
                       what="the run to continue and complete")
        assert "rate-limit wait" in text_of(app, "#monitor-api")
    project = next(p.id for p in sandbox.world.projects.values() if p.name == DEMO_PROJECT)
    sent = [path for path in sandbox.world.tree(project) if path.startswith("copy/")]
    assert len(sent) == 30 and sandbox.world.rate_limited == 0
    live = await world.service.live(job.id)
    assert live.stats.rate_limit_waits >= 1
