"""The monitor's throughput chart: the byte rate between polls over the run, bounded in memory,
shown for a run in progress (enough files that it lasts a few polls; cancelled once seen)."""

from __future__ import annotations

from textual.widgets import Button, Sparkline

from tests.tui.conftest import World, job_json, running, wait_for, write_files
from tui.screens.monitor import MonitorScreen
from tui.widgets.throughput import RunSamples, ThroughputChart

KIB = 1024
LONG_RUN_FILES = 20_000  # a run of seconds here (hard links: cheap to make)


def test_rates_between_polls_and_thinning_keeps_the_average() -> None:
    samples = RunSamples(limit=8)
    for second in range(20):
        samples.add(7, float(second), second * 1000 + (500 if second >= 10 else 0))
    rates = samples.rates()
    assert len(samples.samples) <= 8 and samples.samples[-1] == (19.0, 19_500)
    span = samples.samples[-1][0] - samples.samples[0][0]
    moved = samples.samples[-1][1] - samples.samples[0][1]
    weighted = sum(r * (t1 - t0) for r, ((t0, _), (t1, _)) in zip(
        rates, zip(samples.samples, samples.samples[1:], strict=False), strict=True))
    assert weighted == moved and span > 10  # thinned, yet the whole run and its bytes
    samples.add(8, 30.0, 0)  # a new execution starts over
    assert samples.samples == [(30.0, 0)] and samples.rates() == []


async def test_a_running_copy_draws_its_rate(world: World) -> None:
    write_files(world.source, LONG_RUN_FILES, size=4 * KIB, per_folder=1000)
    job = await world.job(job_json(parallel=1))
    async with running(world) as (app, pilot):
        await pilot.press("m")
        await wait_for(lambda: isinstance(app.screen, MonitorScreen), what="the monitor")
        chart = app.screen.query_one(ThroughputChart)
        assert not chart.display  # nothing has run
        app.screen.query_one("#monitor-start", Button).press()
        await wait_for(lambda: chart.display, what="the throughput chart")
        data = list(chart.query_one(Sparkline).data or [])
        assert len(data) >= 2 and max(data) > 0
        assert "peak" in str(chart.query_one("#throughput-peak").render())
        await world.service.cancel(job.id)
        await world.service.wait(job.id)

