"""SVG snapshots of the Analyze screen showing a stored analysis (the hand-made one of
tests/analyses.py, compared with an office share): the charts at 80x24 and 120x40, the
flagged names and the comparison at 80x24. Regenerate after a deliberate change with
`python -m pytest tests/tui/test_snapshots_analyze.py --snapshot-update`, and look at them.

Deterministic: fixed names, sizes and times, UTC, no blinking cursor, no walk (the stored
analysis is shown without one)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from core.analyze import save_analysis
from core.connections import add_local
from core.home import Home
from core.state import State
from tests.analyses import compared
from tests.tui.conftest import text_of, wait_for
from tui.app import DryvIQApp
from tui.screens.analyze import AnalyzeScreen
from tui.screens.jobs import JobsScreen
from tui.service import AnalysisTarget

TARGET = AnalysisTarget("procore-demo", "", "office-share", "Projects/Riverside")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("analyze-snapshots")
    home = Home(root / "home")

    async def build() -> None:
        home.ensure()
        state = await State.open(home.state_path)
        for name in ("procore-demo", "office-share"):
            (root / name).mkdir()
            await add_local(state, name, str(root / name))
        demo = await state.find_connection("procore-demo")
        share = await state.find_connection("office-share")
        assert demo is not None and share is not None
        await save_analysis(state, compared(), demo.id, share.id)
        await state.close()

    asyncio.run(build())
    return home


def shown(tab: str = "tab-charts") -> Callable[[Pilot[int]], Awaitable[None]]:
    async def run_before(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, DryvIQApp)
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")
        await pilot.press("A")
        await wait_for(lambda: isinstance(app.screen, AnalyzeScreen), what="Analyze")
        screen = app.screen
        assert isinstance(screen, AnalyzeScreen)
        await screen.show_target(TARGET)
        await wait_for(lambda: "Stored analysis" in text_of(app, "#analyze-status"),
                       what="the stored analysis")
        for field in screen.query(Input):
            field.cursor_blink = False
        screen.query_one(TabbedContent).active = tab
        screen.query_one("#analyze-tabs Tabs").focus()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", [pytest.param((80, 24), id="80x24"),
                                  pytest.param((120, 40), id="120x40")])
def test_charts(snap_compare, home: Home, size: tuple[int, int]) -> None:
    assert snap_compare(DryvIQApp(home=home), terminal_size=size, run_before=shown())


@pytest.mark.parametrize("tab", ["tab-flagged", "tab-compared"])
def test_tabs_at_80x24(snap_compare, home: Home, tab: str) -> None:
    assert snap_compare(DryvIQApp(home=home), terminal_size=(80, 24), run_before=shown(tab))
