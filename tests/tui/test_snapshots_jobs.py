"""SVG snapshots of the jobs list, the monitor of a finished job and the job builder, at
100x32 and at 80x24 (an SSH session without a pty). Regenerate after a deliberate change
with `python -m pytest tests/tui/test_snapshots_jobs.py --snapshot-update`, and look at them.

Deterministic: the sample project (fixed names, sizes and bytes), one file name that is not
UTF-8 (so a flagged item shows), fixed execution times, UTC, no blinking cursor."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from core.connections import add_local
from core.demo import write_sample_project
from core.engine.runner import run_job
from core.home import Home
from core.job_store import create_job
from core.state import State
from tests.tui.conftest import job_json, wait_for
from tui.app import DryvIQApp
from tui.screens.job_builder import JobBuilderScreen
from tui.screens.jobs import JobsScreen
from tui.screens.monitor import MonitorScreen

STARTED = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
TOOK = 42.0
SIZES = [pytest.param((100, 32), id="100x32"), pytest.param((80, 24), id="80x24")]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """Two jobs: one run once (45 files copied, one flagged), one never run."""
    root = tmp_path_factory.mktemp("snapshots")
    source, destination = root / "Sample Project", root / "Office Share"
    write_sample_project(source)
    bad_name = os.fsencode(source / "RFIs") + b"/RFI 004 \xff draft.pdf"
    with open(bad_name, "wb") as file:
        file.write(b"%PDF-1.7 draft")
    destination.mkdir()
    home = Home(root / "home")

    async def build() -> None:
        home.ensure()
        state = await State.open(home.state_path)
        await add_local(state, "procore-demo", str(source))
        await add_local(state, "office-share", str(destination))
        job, _ = await create_job(state, job_json(
            "Sample project to office share", "procore-demo", "office-share"))
        await create_job(state, job_json("Nightly check (simulation)", "procore-demo",
                                         "office-share", parallel=2, simulation_mode=True))
        await run_job(state, home, job)
        await state.db.execute("UPDATE executions SET started_at = ?, ended_at = ?, "
                               "heartbeat_at = ?", (STARTED, STARTED + TOOK, STARTED + TOOK))
        await state.db.commit()
        await state.close()

    asyncio.run(build())
    return home


def steady(*keys: str, until: Callable[[DryvIQApp], bool],
           opened: Callable[[DryvIQApp], bool] | None = None,
           ) -> Callable[[Pilot[int]], Awaitable[None]]:
    """Wait for the jobs list, press `keys`, wait for `until`, and stop cursors blinking. With
    `opened`, the first key opens a screen and the others wait for it (on a busy machine a key
    typed before the screen has its focus is lost)."""
    async def run_before(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, DryvIQApp)
        await wait_for(lambda: isinstance(app.screen, JobsScreen) and app.selected_job is not None,
                       what="the jobs list")
        rest = keys
        if opened is not None:
            await pilot.press(keys[0])
            await wait_for(lambda: opened(app), what="the screen to open")
            rest = keys[1:]
        await pilot.press(*rest)
        await wait_for(lambda: until(app), what="the screen to settle")
        for field in app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", [*SIZES, pytest.param((120, 40), id="120x40")])
def test_jobs_list(snap_compare, home: Home, size: tuple[int, int]) -> None:
    def loaded(app: DryvIQApp) -> bool:
        return "completed, flagged" in str(app.screen.query_one("#jobs-table").get_row_at(0))

    assert snap_compare(DryvIQApp(home=home), terminal_size=size,
                        run_before=steady(until=loaded))


@pytest.mark.parametrize("size", SIZES)
def test_monitor_of_a_finished_job(snap_compare, home: Home, size: tuple[int, int]) -> None:
    def finished(app: DryvIQApp) -> bool:
        screen = app.screen
        return (isinstance(screen, MonitorScreen)
                and "flagged" in str(screen.query_one("#monitor-status").render())
                and screen.query_one("#monitor-problems").row_count == 1)

    assert snap_compare(DryvIQApp(home=home), terminal_size=size,
                        run_before=steady("m", until=finished))


@pytest.mark.parametrize("size", SIZES)
def test_builder_with_inline_errors(snap_compare, home: Home, size: tuple[int, int]) -> None:
    def checked(app: DryvIQApp) -> bool:
        screen = app.screen
        return (isinstance(screen, JobBuilderScreen)
                and bool(screen.query_one("#error-source_path").display))

    def name_focused(app: DryvIQApp) -> bool:
        focused = app.screen.focused
        return isinstance(app.screen, JobBuilderScreen) and focused is not None and (
            focused.id == "field-name")

    assert snap_compare(DryvIQApp(home=home), terminal_size=size,
                        run_before=steady("n", *"Tower A", "tab", "ctrl+s", until=checked,
                                          opened=name_focused))

