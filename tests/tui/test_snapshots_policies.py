"""SVG snapshots of issue 12's screens: the monitor of a sync the delete guard stopped (after a
run that changed both sides), and the builder's policies with their explanations, at 80x24 and
wide. Regenerate after a deliberate change with `--snapshot-update`, and look at them.

Deterministic: recorded executions (nothing runs), fixed times, UTC, no blinking cursor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select, TabbedContent

from core.connections import add_local
from core.home import Home
from core.job_store import create_job
from core.state import State
from tests.tui.conftest import wait_for
from tui.app import DryvIQApp
from tui.screens.job_builder import JobBuilderScreen
from tui.screens.jobs import JobsScreen
from tui.screens.monitor import MonitorScreen

STARTED = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
GUARD = "would delete 40 of 50 files (80%) at the destination, more than max_delete 50%"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("policies")
    home = Home(root / "home")

    async def build() -> None:
        home.ensure()
        state = await State.open(home.state_path)
        for name in ("site-share", "office-share"):
            (root / name).mkdir()
            await add_local(state, name, str(root / name))
        job, _ = await create_job(state, json.dumps({"name": "Tower A two way", "transfer": {
            "transfer_type": "sync",
            "source": {"connection": {"id": "site-share"}, "target": {"path": "/"}},
            "destination": {"connection": {"id": "office-share"}, "target": {"path": "/"}},
            "performance": {"upload": {"bytes_per_second": 1_048_576}}}}))
        runs = (("completed", {"files": 50, "transferred": 6, "bytes": 61_440,
                               "added_destination": 3, "updated_destination": 1,
                               "updated_source": 2, "deleted_source": 1, "conflicts": 1}),
                ("guarded", {"files": 50, "delete_guard": GUARD}))
        for i, (status, stats) in enumerate(runs):
            execution = await state.start_execution(job.id)
            await state.update_execution(execution.id, status=status, phase="complete",
                                         stats=stats, error=None)
            at = STARTED + 3600 * i
            await state.db.execute("UPDATE executions SET started_at = ?, ended_at = ?, "
                                   "heartbeat_at = ?, pid = 0 WHERE id = ?",
                                   (at, at + 12, at + 12, execution.id))
        await state.db.commit()
        await state.close()

    asyncio.run(build())
    return home


def after(*keys: str, until: Callable[[DryvIQApp], bool],
          then: Callable[[Pilot[int]], Awaitable[None]] | None = None,
          ) -> Callable[[Pilot[int]], Awaitable[None]]:
    async def run_before(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, DryvIQApp)
        await wait_for(lambda: isinstance(app.screen, JobsScreen) and app.selected_job is not None,
                       what="the jobs list")
        await pilot.press(*keys)
        await wait_for(lambda: until(app), what="the screen to settle")
        if then is not None:
            await then(pilot)
        for field in app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_monitor_of_a_guarded_sync(snap_compare, home: Home, size: tuple[int, int]) -> None:
    def guarded(app: DryvIQApp) -> bool:
        screen = app.screen
        return (isinstance(screen, MonitorScreen)
                and GUARD in str(screen.query_one("#monitor-guard").render())
                and screen.query_one("#monitor-history").row_count == 2)

    assert snap_compare(DryvIQApp(home=home), terminal_size=size,
                        run_before=after("m", until=guarded))


@pytest.mark.parametrize("size", SIZES)
def test_monitor_history_of_a_sync(snap_compare, home: Home, size: tuple[int, int]) -> None:
    def loaded(app: DryvIQApp) -> bool:
        screen = app.screen
        return (isinstance(screen, MonitorScreen)
                and screen.query_one("#monitor-history").row_count == 2)

    async def history(pilot: Pilot[int]) -> None:
        pilot.app.screen.query_one("#monitor-tabs", TabbedContent).active = "tab-history"

    assert snap_compare(DryvIQApp(home=home), terminal_size=size,
                        run_before=after("m", until=loaded, then=history))


@pytest.mark.parametrize("size", SIZES)
def test_builder_policies(snap_compare, home: Home, size: tuple[int, int]) -> None:
    def opened(app: DryvIQApp) -> bool:
        return isinstance(app.screen, JobBuilderScreen)

    async def policies(pilot: Pilot[int]) -> None:
        screen = pilot.app.screen
        screen.query_one("#field-transfer_type", Select).value = "sync"
        conflicts = screen.query_one("#field-conflict_resolution", Select)
        conflicts.value = "latest"
        await wait_for(lambda: "newer file wins" in str(
            screen.query_one("#explain-conflict_resolution").render()), what="the line")
        await pilot.pause()
        form = screen.query_one("#builder-form")
        form.scroll_to_widget(conflicts, animate=False, top=True, immediate=True)
        await wait_for(lambda: form.scroll_y == form.scroll_target_y, what="the scroll")
        await pilot.pause()

    assert snap_compare(DryvIQApp(home=home), terminal_size=size,
                        run_before=after("n", until=opened, then=policies))
