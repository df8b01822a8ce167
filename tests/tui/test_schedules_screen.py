"""The jobs list and the schedules: the app runs them while no agent does, and shows each job's
next run, a complete job's reason, and who runs the schedules (this app, `serve`, or the
agent)."""

from __future__ import annotations

import time

from core.scheduler import Holder, agent_lock, serve_lock, this_process
from tests.tui.conftest import World, job_json, running, table_rows, text_of, wait_for


def scheduled(name: str, schedule: dict[str, object]) -> str:
    text = job_json(name)
    return text.replace('"schedule": {"mode": "manual"}', f'"schedule": {schedule}'.replace(
        "'", '"'))


async def test_the_app_runs_due_jobs_and_shows_their_next_run_and_who_schedules(
        world: World) -> None:
    (world.source / "sheet.pdf").write_bytes(b"sheet")
    hourly = await world.job(scheduled("Hourly", {
        "mode": "auto", "repeat_interval": {"value": 1, "unit": "h"}}))
    done = await world.job(scheduled("Done", {"mode": "auto"}))
    await world.state.set_job_status(done.id, "complete", "3 runs with no changes")
    async with running(world) as (app, pilot):
        # the app ran the auto job at once, by its schedule
        await wait_for(lambda: (world.destination / "copy" / "sheet.pdf").exists(),
                       what="the scheduled run")
        [execution] = await world.state.executions(hourly.id)
        assert execution.scheduled and execution.agent == this_process()
        assert not await world.state.executions(done.id)
        await wait_for(lambda: table_rows(app, "#jobs-table")[0][1] == "completed",
                       what="the run's end in the list")
        rows = {row[0]: row for row in table_rows(app, "#jobs-table")}
        [execution] = await world.state.executions(hourly.id)  # ended now: read again
        next_hour = time.gmtime(execution.ended_at + 3600)  # with its weekday past midnight
        next_hour = time.strftime("%H:%M UTC" if next_hour.tm_yday == time.gmtime().tm_yday
                                  else "%a %H:%M UTC", next_hour)
        assert rows["Hourly"][3] == next_hour
        assert rows["Done"][3] == "complete"
        assert text_of(app, "#jobs-schedules") == ("Schedules: run by this app (no agent on "
                                                    "this home)")
        await pilot.press("down")
        await wait_for(lambda: "History of Done · complete: 3 runs with no changes" in
                       text_of(app, "#jobs-history-title"), what="the complete job's reason")

        for lock, kind, pid, named in (
                (agent_lock(world.home), "agent", 4242, "the agent"),  # the app hands over
                (serve_lock(world.home), "serve", 2017, "the API server (serve)")):  # as to it
            shown = f"Schedules: run by {named}, pid {pid} on build-01"
            assert await lock.acquire(Holder(f"build-01:{pid}", kind, time.time()))
            try:
                await wait_for(lambda shown=shown: text_of(app, "#jobs-schedules") == shown,
                               timeout=10, what=f"{named} named")
            finally:
                lock.release()
        await wait_for(lambda: "run by this app" in text_of(app, "#jobs-schedules"),
                       timeout=10, what="the app taking the schedules back")
