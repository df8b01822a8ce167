"""The Analyze screen driven with keys: a stored analysis shows at once (no walk, no API
call) and its tabs are reached with the keyboard, r walks the chosen folder in the app's
service and stores it, x cancels, and the browser's a analyzes the highlighted folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from textual.pilot import Pilot
from textual.widgets import DataTable, Select, TabbedContent

from core.analyze import latest_analysis, save_analysis
from tests.analyses import EVIL, sample_analysis
from tests.tui.conftest import SIZE, World, table_rows, text_of, wait_for, write_files
from tests.tui.test_browser import browsing, node_at, open_folder
from tui.app import DryvIQApp
from tui.screens.analyze import POLL, AnalyzeScreen
from tui.screens.jobs import JobsScreen
from tui.service import AnalysisTarget

WIDE_TREE = 6000  # files, one to a folder: a walk of seconds here, long enough to cancel


@asynccontextmanager
async def analyzing(world: World) -> AsyncIterator[tuple[DryvIQApp, Pilot[int], AnalyzeScreen]]:
    app = DryvIQApp(world.service)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.press("A")
        await wait_for(lambda: isinstance(app.screen, AnalyzeScreen), what="the Analyze screen")
        screen = app.screen
        assert isinstance(screen, AnalyzeScreen)
        await pilot.pause()
        yield app, pilot, screen


async def choose(pilot: Pilot[int], screen: AnalyzeScreen, name: str) -> None:
    """Pick a connection in the Folder list with the keys, as a user does."""
    select = screen.query_one("#analyze-connection", Select)
    select.focus()
    await pilot.press("enter")  # the list opens
    for _ in range(4):
        await pilot.pause()
        await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause()
        if select.value == name:
            break
        await pilot.press("enter")
    await wait_for(lambda: select.value == name, what=f"{name} chosen")


async def test_a_stored_analysis_shows_at_once_without_a_walk(world: World) -> None:
    plans = await world.state.find_connection("plans")
    assert plans is not None
    await save_analysis(world.state, sample_analysis(connection="plans"), plans.id)
    async with analyzing(world) as (app, pilot, screen):
        await choose(pilot, screen, "plans")
        await wait_for(lambda: "Stored analysis" in text_of(app, "#analyze-status"),
                       what="the stored analysis")
        assert "99 files (741.0 MiB) in 14 folders" in text_of(app, "#analyze-summary")
        assert ".pdf" in text_of(app, "#chart-by_extension")
        assert "Drawings" in text_of(app, "#chart-by_folder")
        assert not world.service._analyses  # nothing walked
        estimate = text_of(app, "#analyze-estimate")
        assert "about 142 Procore API calls" in estimate and "\\n" not in estimate
        assert "48.0 MiB  /Drawings/A-001 Site Plan.dwg\n" in estimate
        tabs = screen.query_one(TabbedContent)
        for _ in range(8):  # keyboard only: Tab to the row of tabs, then → to Flagged
            if app.focused is tabs.query_one("Tabs"):
                break
            await pilot.press("tab")
        await pilot.press("right")
        await wait_for(lambda: tabs.active == "tab-flagged", what="the Flagged tab")
        table = screen.query_one("#analyze-flagged", DataTable)
        table.focus()
        await pilot.press("down")
        await pilot.pause(2 * POLL + 0.1)  # the polls read it again, and leave it as it was
        assert table.cursor_row == 1
        rows = table_rows(app, "#analyze-flagged")
        assert len(rows) == 3 and EVIL in rows[0][0] and "flagged for a person" in rows[2][2]
        assert str(screen.query_one(TabbedContent).get_tab("tab-flagged").label) == (
            "Flagged (3)")


async def test_r_walks_the_folder_and_stores_it(world: World) -> None:
    write_files(world.source, 120, size=2048, per_folder=40)
    (world.source / "folder-000" / "bad:name?.pdf").write_bytes(b"x" * 10)
    async with analyzing(world) as (app, pilot, screen):
        await choose(pilot, screen, "plans")
        await wait_for(lambda: "Not analyzed yet" in text_of(app, "#analyze-status"))
        screen.query_one("#analyze-tabs").focus()
        await pilot.press("r")
        await wait_for(lambda: "✓ Analyzed" in text_of(app, "#analyze-status"),
                       what="the analysis")
        assert "121 files" in text_of(app, "#analyze-summary")
        assert ".bin" in text_of(app, "#chart-by_extension")
        rows = table_rows(app, "#analyze-flagged")
        assert any("bad:name?.pdf" in row[0] for row in rows)  # Procore's rules: no ':'
    plans = await world.state.find_connection("plans")
    assert plans is not None
    stored = await latest_analysis(world.state, plans.id, "")
    assert stored is not None and stored.files == 121


async def test_the_service_reports_progress_and_cancels(world: World) -> None:
    """The walk belongs to the service (no screen here): its progress, then a cancel."""
    write_files(world.source, WIDE_TREE, size=64, per_folder=1)
    target = AnalysisTarget("plans")
    await world.service.analyze(target)

    async def progressed() -> bool:
        return "so far" in (await world.service.analysis(target)).progress

    await wait_for(progressed, what="a progress report")
    view = await world.service.analysis(target)
    assert view.running and view.progress.endswith("0 API calls")
    await world.service.cancel_analysis(target)
    view = await world.service.analysis(target)
    assert not view.running and view.analysis is None
    assert view.error == "cancelled: nothing was stored"


async def test_x_cancels_and_nothing_is_stored(world: World) -> None:
    write_files(world.source, WIDE_TREE, size=64, per_folder=1)
    target = AnalysisTarget("plans")
    async with analyzing(world) as (app, pilot, screen):
        await screen.show_target(target, start=True)
        screen.query_one("#analyze-tabs").focus()
        await pilot.press("x")
        await wait_for(lambda: "cancelled" in text_of(app, "#analyze-status"),
                       what="the cancel")
    plans = await world.state.find_connection("plans")
    assert plans is not None and await latest_analysis(world.state, plans.id, "") is None


async def test_the_browser_analyzes_the_highlighted_folder(world: World) -> None:
    write_files(world.source, 30, size=100, per_folder=10)
    async with browsing(world, "plans") as (app, pilot, browser):
        await open_folder(pilot, browser, "")
        tree = browser.remote_tree
        assert tree is not None
        tree.move_cursor(node_at(browser, "folder-001"))
        await pilot.press("a")
        await wait_for(lambda: isinstance(app.screen, AnalyzeScreen), what="Analyze")
        await wait_for(lambda: "✓ Analyzed" in text_of(app, "#analyze-status"),
                       what="the analysis")
        assert text_of(app, "#analyze-summary").startswith("plans:/folder-001: 10 files")
        screen = app.screen
        assert isinstance(screen, AnalyzeScreen)
        assert screen.query_one("#analyze-path").value == "/folder-001"
        assert not screen.query_one(TabbedContent).get_tab("tab-compared").display

