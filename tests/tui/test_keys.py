"""Keys while typing: no printable key acts globally while a field has focus, and Esc in the
job builder asks before it throws edits away (issue 11, item 2)."""

from __future__ import annotations

from textual.widgets import Checkbox, Input, Select

from tests.tui.conftest import World, running, wait_for
from tests.tui.test_browser import browsing, open_folder
from tui.app import DryvIQApp
from tui.screens.browser import BrowserScreen
from tui.screens.job_builder import JobBuilderScreen
from tui.screens.jobs import JobsScreen
from tui.widgets.confirm import ConfirmScreen


def builders(app: DryvIQApp) -> int:
    return sum(isinstance(screen, JobBuilderScreen) for screen in app.screen_stack)


async def test_typing_sync_on_the_transfer_type_chooses_it(world: World) -> None:
    async with running(world) as (app, pilot):
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        builder = app.screen
        kind = builder.query_one("#field-transfer_type", Select)
        kind.focus()
        await pilot.press(*"sync")
        await pilot.pause()
        assert app.current_mode == "jobs", "c must not switch to Connections"
        assert builders(app) == 1, "n must not open a second builder"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is builder and kind.value == "sync"
        assert str(builder.query_one("#explain-transfer_type").render()).startswith("two way")
        assert not builder.query_one("#error-transfer_type").display


async def test_one_letter_keys_stay_in_the_form_wherever_its_focus_is(world: World) -> None:
    async with running(world) as (app, pilot):
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        await pilot.press(*"Tower jcbni")
        assert app.screen.query_one("#field-name", Input).value == "Tower jcbni"
        app.screen.query_one("#field-simulation_mode", Checkbox).focus()
        await pilot.press(*"jcbni")
        await pilot.pause()
        assert app.current_mode == "jobs" and builders(app) == 1
        assert app.screen.query_one("#field-name", Input).value == "Tower jcbni"


async def test_typing_in_the_browser_filter_does_not_pick_or_switch(world: World) -> None:
    (world.source / "sdn.pdf").write_bytes(b"x")
    async with browsing(world, "plans") as (app, pilot, browser):
        await open_folder(pilot, browser, "")
        await pilot.press("slash", *"sdncjbr")
        await pilot.pause()
        assert isinstance(app.screen, BrowserScreen) and builders(app) == 0
        assert browser.picks == {"source": None, "destination": None}
        assert browser.query_one("#browse-filter", Input).value == "sdncjbr"


async def test_esc_in_an_untouched_builder_closes_it(world: World) -> None:
    async with running(world) as (app, pilot):
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")


async def test_esc_with_edits_asks_before_discarding(world: World) -> None:
    async with running(world) as (app, pilot):
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        builder = app.screen
        await pilot.press(*"Half typed")
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("enter")  # the focused, safe answer: keep editing
        await wait_for(lambda: app.screen is builder, what="the builder again")
        assert builder.query_one("#field-name", Input).value == "Half typed"
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.click("#confirm-yes")
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")
    assert await world.state.find_jobs() == []


async def test_esc_closes_an_unchanged_edit_without_asking(world: World) -> None:
    await world.job()
    async with running(world) as (app, pilot):
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        await pilot.pause()
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")
