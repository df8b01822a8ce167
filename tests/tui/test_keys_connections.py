"""The connections list's `/` filter, its columns after a very long name is removed, and
connection names shown as typed (never as markup) on the connections list and the browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from textual.pilot import Pilot
from textual.widgets import DataTable, Select

from core.connections import add_local
from tests.tui.conftest import SIZE, World, table_rows, text_of, wait_for
from tui.app import DryvIQApp
from tui.screens.browser import BrowserScreen
from tui.screens.connections import ConnectionsScreen
from tui.screens.jobs import JobsScreen


@asynccontextmanager
async def connections_list(world: World, size: tuple[int, int] = SIZE,
                           ) -> AsyncIterator[tuple[DryvIQApp, Pilot[int]]]:
    app = DryvIQApp(world.service)
    async with app.run_test(size=size) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="the list")
        await pilot.pause()
        yield app, pilot


def names(app: DryvIQApp) -> list[str]:
    return [row[0] for row in table_rows(app, "#connections-table")]


async def test_slash_filters_the_connections_by_name_or_place(world: World) -> None:
    async with connections_list(world) as (app, pilot):
        assert names(app) == ["plans", "share"]
        await pilot.press("slash", *"PLA")
        await wait_for(lambda: names(app) == ["plans"], what="the filtered list")
        await pilot.press(*"zz")
        await wait_for(lambda: names(app) == [], what="nothing")
        assert "No connection matches “PLAzz”" in text_of(app, "#connections-empty")
        await pilot.press("escape", "escape")  # back to the list, then clear
        await wait_for(lambda: names(app) == ["plans", "share"], what="every connection")


async def test_a_removed_long_name_gives_its_width_back(world: World, tmp_path) -> None:
    long = await add_local(world.state, "N" * 128, str(tmp_path))  # the longest allowed
    async with connections_list(world, (120, 40)) as (app, pilot):
        table = app.screen.query_one("#connections-table", DataTable)
        await wait_for(lambda: len(names(app)) == 3, what="the three connections")
        name_column = next(iter(table.columns.values()))
        assert name_column.width <= 40, "a long name is capped"
        await world.state.remove_connection(long.id)
        screen = app.screen
        assert isinstance(screen, ConnectionsScreen)
        await screen.refresh_connections()
        await pilot.pause()
        assert next(iter(table.columns.values())).width == len("share")


async def test_connection_names_are_not_markup(world: World, tmp_path) -> None:
    await add_local(world.state, "[red]x[/]", str(tmp_path))
    async with connections_list(world) as (app, pilot):
        await wait_for(lambda: "[red]x[/]" in names(app), what="the name as typed")
        await pilot.press("b")
        await wait_for(lambda: isinstance(app.screen, BrowserScreen), what="the browser")
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        await browser.browse("[red]x[/]")
        await pilot.pause()
        shown = browser.query_one("#browse-connection", Select)
        assert "[red]x[/]" in str(shown.query_one("SelectCurrent Static").render())
