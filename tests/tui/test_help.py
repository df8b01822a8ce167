"""The help screen: every key of the screen in view and the global ones, with binding ids."""

from __future__ import annotations

from tests.tui.conftest import World, running, wait_for
from tests.tui.test_jobs_screens import open_monitor
from tui.screens.help import HelpScreen
from tui.screens.jobs import JobsScreen
from tui.screens.monitor import MonitorScreen


def help_text(app: object) -> str:
    screen = getattr(app, "screen", None)
    assert isinstance(screen, HelpScreen)
    return "\n".join(screen.lines)


async def test_question_mark_lists_the_jobs_keys_and_the_global_ones(world: World) -> None:
    await world.job()
    async with running(world) as (app, pilot):
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        shown = help_text(app)
        for expected in ("On Jobs", "Everywhere", "run-job", "edit-job", "delete-job",
                         "filter-jobs", "show-jobs", "show-connections", "new-job", "Run"):
            assert expected in shown, expected
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")


async def test_f1_on_the_monitor_lists_its_keys(world: World) -> None:
    await world.job()
    async with running(world) as (app, pilot):
        await open_monitor(app, pilot)
        await pilot.press("f1")
        await wait_for(lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        shown = help_text(app)
        for expected in ("close-monitor", "run-job", "show-jobs", "show-help"):
            assert expected in shown, expected
        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, MonitorScreen), what="the monitor")


async def test_remapped_keys_are_shown_as_remapped(world: World) -> None:
    world.home.config_path.write_text('[keys]\nshow-jobs = "f2"\n')
    world.home.config_path.chmod(0o600)
    async with running(world) as (app, pilot):
        await pilot.press("f1")
        await wait_for(lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        line = next(line for line in help_text(app).splitlines()
                    if "show-jobs" in line)
        assert line.split()[0] == "f2"
