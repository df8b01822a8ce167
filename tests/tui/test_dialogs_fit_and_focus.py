"""Every dialog at the 80×24 of an SSH session without a pty: it fits (its buttons inside the
screen and the dialog), opens with the focus on its first field, Enter submits and Esc closes,
asking first when something typed would be lost. And the focus mark that shows where the keys
go, in colour and under NO_COLOR."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Input,
    RadioSet,
    Select,
    Static,
    Tabs,
)

from core.connections import add_local
from tests.tui.conftest import World, wait_for
from tui.app import DryvIQApp
from tui.screens.add_connection import AddConnectionScreen
from tui.screens.connections import ConfirmRemoveScreen, ConnectionsScreen
from tui.screens.jobs import ImportJobScreen, JobsScreen
from tui.screens.monitor import MonitorScreen
from tui.widgets.confirm import ConfirmScreen

SSH = (80, 24)
PROCORE_CONFIG = {
    "domain": "https://api.procore.com", "login_url": None, "credentials": "custom",
    "client_id": "a-client", "grant": "authorization_code", "company_id": 8089,
    "company_name": "Summit Builders", "project_id": 562949953421312,
    "project_name": "Riverside Medical Center",
    "user": {"id": 1, "login": "pm@summit-builders.example", "name": "Pat Morgan"}}


@pytest.fixture(autouse=True)
def _no_default_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CLIENT_ID", "CLIENT_SECRET", "DOMAIN", "LOGIN_URL"):
        monkeypatch.delenv(f"DRYVIQ_PROCORE_{key}", raising=False)


@asynccontextmanager
async def at_80x24(world: World) -> AsyncIterator[tuple[DryvIQApp, Pilot[int]]]:
    app = DryvIQApp(world.service)
    async with app.run_test(size=SSH) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.pause()
        yield app, pilot


async def shown(app: DryvIQApp, pilot: Pilot[int], kind: type) -> None:
    await wait_for(lambda: isinstance(app.screen, kind), what=kind.__name__)
    await pilot.pause()


def inside(inner: Region, outer: Region) -> bool:
    return outer.contains_region(inner)


def assert_fits(app: DryvIQApp, *buttons: str) -> None:
    """Each button lies inside the screen and inside the dialog's frame."""
    dialog = app.screen.query_one(".dialog")
    for selector in buttons:
        region = app.screen.query_one(selector).region
        assert region.area and inside(region, app.screen.region), selector
        assert inside(region, dialog.region), f"{selector} outside the dialog {dialog.region}"


async def test_add_connection_fits_opens_on_the_platform_and_asks_before_dropping_edits(
        world: World) -> None:
    async with at_80x24(world) as (app, pilot):
        await pilot.press("c")
        await shown(app, pilot, ConnectionsScreen)
        await pilot.press("a")
        await shown(app, pilot, AddConnectionScreen)
        dialog = app.screen
        assert app.focused is dialog.query_one("#add-platform", Select)
        assert_fits(app, "#add-done", "#add-cancel")

        await pilot.press("escape")  # nothing typed: closes at once
        await shown(app, pilot, ConnectionsScreen)

        await pilot.press("a")
        await shown(app, pilot, AddConnectionScreen)
        dialog = app.screen
        await pilot.press("tab", *"site")
        assert dialog.query_one("#add-name", Input).value == "site"
        await pilot.press("escape")
        await shown(app, pilot, ConfirmScreen)
        assert_fits(app, "#confirm-yes", "#confirm-no")
        await pilot.press("enter")  # the safe answer has the focus: keep editing
        await shown(app, pilot, AddConnectionScreen)
        assert app.screen is dialog and dialog.query_one("#add-name", Input).value == "site"

        await pilot.press("escape")
        await shown(app, pilot, ConfirmScreen)
        await pilot.press("shift+tab", "enter")  # Discard
        await shown(app, pilot, ConnectionsScreen)
    assert [c.name for c in await world.state.list_connections()] == ["plans", "share"]


async def test_enter_in_the_folder_field_saves_a_local_connection(world: World, tmp_path) -> None:
    folder = tmp_path / "site share"
    folder.mkdir()
    async with at_80x24(world) as (app, pilot):
        await pilot.press("c")
        await shown(app, pilot, ConnectionsScreen)
        await pilot.press("a")
        await shown(app, pilot, AddConnectionScreen)
        await pilot.press("enter", *"Local", "enter")  # the platform
        await pilot.press("tab", *"site")
        await pilot.press("enter")  # not ready yet: Enter moves on to the folder
        assert app.focused is app.screen.query_one("#local-path", Input)
        app.screen.query_one("#local-path", Input).value = str(folder)
        await pilot.press("enter")
        await shown(app, pilot, ConnectionsScreen)
    connection = await world.state.find_connection("site")
    assert connection is not None and connection.config["path"] == str(folder)


async def test_sign_in_again_opens_on_its_sign_in_button(world: World) -> None:
    await world.state.add_connection("Riverside", "procore", PROCORE_CONFIG,
                                     {"client_secret": "not-shown"})
    async with at_80x24(world) as (app, pilot):
        await pilot.press("c")
        await shown(app, pilot, ConnectionsScreen)
        table = app.screen.query_one("#connections-table", DataTable)
        table.move_cursor(row=[str(table.get_row_at(i)[0])
                               for i in range(table.row_count)].index("Riverside"))
        await pilot.press("e")
        await shown(app, pilot, AddConnectionScreen)
        assert app.focused is app.screen.query_one("#procore-sign-in", Button)
        assert_fits(app, "#add-done", "#add-cancel")
        await pilot.press("escape")  # nothing typed, no sign-in started
        await shown(app, pilot, ConnectionsScreen)


async def test_import_fits_with_many_errors_and_asks_before_dropping_the_path(
        world: World, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{\n" + "".join(f'  "key{i}": 1,\n' for i in range(40)) + '  "name": ""\n}')
    async with at_80x24(world) as (app, pilot):
        await pilot.press("i")
        await shown(app, pilot, ImportJobScreen)
        dialog = app.screen
        assert app.focused is dialog.query_one("#import-path", Input)
        dialog.query_one("#import-path", Input).value = str(bad)
        await pilot.press("enter")  # Enter in the path imports
        await wait_for(lambda: "not created" in str(dialog.query_one("#import-errors",
                                                                     Static).render()),
                       what="the errors")
        errors = dialog.query_one("#import-errors", Static)
        errors.update("The job was not created:\n" + "\n".join(f"• error {i}"
                                                               for i in range(40)))
        await pilot.pause()
        assert_fits(app, "#import-ok", "#import-cancel")
        scroll = dialog.query_one(".dialog-scroll")
        assert scroll.max_scroll_y > 0, "the long list scrolls inside the dialog"
        assert scroll.focusable, "and the keys can scroll it"

        await pilot.press("escape")
        await shown(app, pilot, ConfirmScreen)
        await pilot.press("escape")  # Esc on the question keeps the dialog
        await shown(app, pilot, ImportJobScreen)
        dialog.query_one("#import-path", Input).value = ""
        await pilot.press("escape")  # nothing typed any more: closes at once
        await shown(app, pilot, JobsScreen)


async def test_remove_opens_on_cancel_so_enter_removes_nothing(world: World, tmp_path) -> None:
    (tmp_path / "spare").mkdir()
    await add_local(world.state, "spare", str(tmp_path / "spare"))
    async with at_80x24(world) as (app, pilot):
        await pilot.press("c")
        await shown(app, pilot, ConnectionsScreen)
        table = app.screen.query_one("#connections-table", DataTable)
        table.move_cursor(row=2)
        await pilot.press("x")
        await shown(app, pilot, ConfirmRemoveScreen)
        assert app.focused is app.screen.query_one("#remove-cancel", Button)
        assert_fits(app, "#remove-ok", "#remove-cancel")
        await pilot.press("enter")
        await shown(app, pilot, ConnectionsScreen)
    assert "spare" in [c.name for c in await world.state.list_connections()]


async def test_a_long_question_scrolls_and_its_buttons_stay_on_screen(world: World) -> None:
    async with at_80x24(world) as (app, pilot):
        app.push_screen(ConfirmScreen("Discard? " * 20, "Discard", detail="Long detail. " * 300))
        await shown(app, pilot, ConfirmScreen)
        assert app.focused is app.screen.query_one("#confirm-no", Button)
        assert_fits(app, "#confirm-yes", "#confirm-no")
        await pilot.press("escape")
        await shown(app, pilot, JobsScreen)


def mark(widget: Widget) -> str:
    return widget.styles.border_left[0]


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
async def test_the_focused_widget_carries_a_bar_the_others_do_not(
        world: World, monkeypatch: pytest.MonkeyPatch, no_color: bool) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    async with at_80x24(world) as (app, pilot):
        assert app.no_color is no_color
        table = app.screen.query_one("#jobs-table", DataTable)
        table.focus()
        await pilot.pause()
        assert mark(table) == "outer"
        await pilot.press("c")
        await shown(app, pilot, ConnectionsScreen)
        await pilot.press("a")
        await shown(app, pilot, AddConnectionScreen)
        dialog = app.screen
        widgets: list[Widget] = [dialog.query_one("#add-platform", Select),
                                 dialog.query_one("#add-name", Input),
                                 dialog.query_one("#procore-credentials", RadioSet),
                                 dialog.query_one("#add-done", Button)]
        for widget in widgets:
            widget.focus()
            await pilot.pause()
            assert mark(widget) == "outer", widget
            others = [w for w in widgets if w is not widget]
            assert all(mark(other) == "blank" for other in others), widget
        done = dialog.query_one("#add-done", Button)
        assert done.styles.border_right[0] == "outer"
        assert ("reverse" in str(done.styles.text_style)) is no_color  # a mark in monochrome
        await pilot.press("enter")  # Enter presses the button that is marked: Done
        await wait_for(lambda: dialog.query_one("#add-error").display, what="Done's answer")


async def test_checkbox_focus_is_marked(world: World) -> None:
    async with at_80x24(world) as (app, pilot):
        await pilot.press("c")
        await shown(app, pilot, ConnectionsScreen)
        await pilot.press("a")
        await shown(app, pilot, AddConnectionScreen)
        await pilot.press("enter", *"Local", "enter")
        box = app.screen.query_one("#local-fsync", Checkbox)
        assert mark(box) == "blank"
        box.focus()
        await pilot.pause()
        assert mark(box) == "outer"


async def test_a_focused_row_of_tabs_reverses_its_active_tab(world: World) -> None:
    """The monitor's tabs (Flagged and failed, History, Events) take the focus on Tab: with no
    column for a bar, the active tab is reversed, so the arrow keys' target is seen."""
    job = await world.job()
    async with at_80x24(world) as (app, pilot):
        await app.push_screen(MonitorScreen(world.service, job.id))
        await shown(app, pilot, MonitorScreen)
        tabs = app.screen.query_one("#monitor-tabs ContentTabs", Tabs)
        active = tabs.query_one("Tab.-active")
        assert "reverse" not in str(active.styles.text_style)
        tabs.focus()
        await pilot.pause()
        assert "reverse" in str(active.styles.text_style)
