"""SVG snapshots of the connections list, the Add connection dialog and the browser, at the
size of a roomy terminal and at the 80×24 of an SSH session without a pty.

The data is fixed: a local connection shown with a fixed path (its files, with fixed names,
sizes and times, live under the test's tmp_path, where the browser finds them), and a Procore
connection stored as it would be after a sign-in (no network: the list and the dialog make no
call). Create the baselines once with `pytest --snapshot-update`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from core.home import Home
from core.state import State
from tests.tui.conftest import wait_for
from tui.app import DryvIQApp
from tui.screens.add_connection import AddConnectionScreen
from tui.screens.browser import BrowserScreen
from tui.screens.connections import ConnectionsScreen
from tui.screens.jobs import JobsScreen

SHOWN_PATH = "/srv/projects/site-share"  # what the list shows; it need not exist
SHARE = Path("the test's tmp_path/share")  # where the files are: set by the app fixture
MTIME = 1_750_000_000  # 2025-06-15 15:06:40 UTC
FILES = {"Drawings/Architectural/A-101 Floor Plan Level 1.pdf": 734_003,
         "Drawings/Architectural/A-201 Exterior Elevations.pdf": 512_118,
         "Drawings/Site plan.pdf": 1_258_291,
         "Drawings/Structural/S-101 Foundation Plan.pdf": 401_557,
         "Specifications/03 30 00 Cast-in-Place Concrete.pdf": 88_412,
         "RFI Log.xlsx": 20_480}
PROCORE_CONFIG = {
    "domain": "https://api.procore.com", "login_url": None, "credentials": "custom",
    "client_id": "snapshot-client", "grant": "authorization_code", "company_id": 8089,
    "company_name": "Summit Builders", "project_id": 562949953421312,
    "project_name": "Riverside Medical Center",
    "user": {"id": 1, "login": "pm@summit-builders.example", "name": "Pat Morgan"}}
SIZES = [(100, 32), (80, 24)]


def _share() -> None:
    for name, size in FILES.items():
        path = SHARE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
    for path in sorted(SHARE.rglob("*"), reverse=True):
        os.utime(path, (MTIME, MTIME))


async def _connections(home: Home) -> None:
    home.ensure()
    state = await State.open(home.state_path)
    try:
        await state.add_connection("Riverside", "procore", PROCORE_CONFIG,
                                   {"client_secret": "not-shown"})
        await state.add_connection("site-share", "local", {"path": SHOWN_PATH, "fsync": True})
    finally:
        await state.close()


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DryvIQApp:
    """The app over a home holding the fixed connections."""
    for key in ("CLIENT_ID", "CLIENT_SECRET", "DOMAIN", "LOGIN_URL"):
        monkeypatch.delenv(f"DRYVIQ_PROCORE_{key}", raising=False)
    monkeypatch.setattr(sys.modules[__name__], "SHARE", tmp_path / "share")
    _share()
    home = Home(tmp_path / "home")
    asyncio.run(_connections(home))
    return DryvIQApp(home=home)


async def _still(pilot: Pilot[int]) -> None:
    """No blinking cursor in a snapshot."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def _mode(pilot: Pilot[int], mode: str, screen: type) -> None:
    await wait_for(lambda: isinstance(pilot.app.screen, JobsScreen), what="the jobs screen")
    await pilot.app.switch_mode(mode)
    await wait_for(lambda: isinstance(pilot.app.screen, screen), what=mode)
    await pilot.pause()


async def show_connections(pilot: Pilot[int]) -> None:
    await _mode(pilot, "connections", ConnectionsScreen)
    await _still(pilot)


async def show_add_dialog(pilot: Pilot[int]) -> None:
    await show_connections(pilot)
    await pilot.press("a")
    await wait_for(lambda: isinstance(pilot.app.screen, AddConnectionScreen), what="dialog")
    await pilot.pause()
    await pilot.click("#procore-custom")
    screen = pilot.app.screen
    screen.query_one("#add-name", Input).value = "Riverside Medical"
    screen.query_one("#procore-client-id", Input).value = "my-client-id"
    screen.query_one("#procore-client-secret", Input).value = "s3cret-never-shown"
    screen.query_one("#procore-client-secret", Input).focus()
    await _still(pilot)


async def show_browser(pilot: Pilot[int]) -> None:
    await _mode(pilot, "browser", BrowserScreen)
    browser = pilot.app.screen
    assert isinstance(browser, BrowserScreen)
    state = browser.service.state
    share = await state.find_connection("site-share")
    assert share is not None
    await state.update_connection_config(share.id, share.config | {"path": str(SHARE)})
    await browser.browse("site-share")
    await wait_for(lambda: browser.remote_tree is not None, what="the tree")
    tree = browser.remote_tree
    assert tree is not None
    drawings = await tree.expand_path("Drawings")
    await pilot.pause()  # the tree lays out its new lines
    tree.move_cursor(next(n for n in drawings.children
                          if n.data and n.data.path == "Drawings/Site plan.pdf"))
    await _still(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("show", [show_connections, show_add_dialog, show_browser],
                         ids=["connections", "add_dialog", "browser"])
def test_snapshot(snap_compare: Callable[..., bool], app: DryvIQApp,
                  show: Callable[[Pilot[int]], object], size: tuple[int, int]) -> None:
    assert snap_compare(app, terminal_size=size, run_before=show)
