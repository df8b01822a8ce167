"""SVG snapshots of the connections list, the Add connection dialog and the browser, at the
size of a roomy terminal and at the 80×24 of an SSH session without a pty; and the dialog's
SMB share and Cloud storage (rclone remote) forms at 80×24.

The data is fixed: a local connection shown with a fixed path (its files, with fixed names,
sizes and times, live under the test's tmp_path, where the browser finds them), a Procore
connection stored as it would be after a sign-in, an SMB share and an rclone remote (no
network: the list and the dialog make no call; the rclone form runs `rclone listremotes` on a
config of the test's own). Create the baselines once with `pytest --snapshot-update`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select

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
SMB_CONFIG = {"server": "fs01.summit-builders.example", "port": 445, "share": "Projects",
              "path": "/Riverside", "username": "SUMMIT\\pmorgan", "encrypt": True}
RCLONE_CONFIG = {"remote": "sharepoint:Riverside Medical", "config": None}
REMOTES = ("archive-s3", "gdrive", "sharepoint")  # in the rclone form's own config
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
        await state.add_connection("office-share", "smb", SMB_CONFIG, {"password": "not-shown"})
        await state.add_connection("sharepoint", "rclone", RCLONE_CONFIG)
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


async def _add_form(pilot: Pilot[int], platform: str) -> None:
    await show_connections(pilot)
    await pilot.press("a")
    await wait_for(lambda: isinstance(pilot.app.screen, AddConnectionScreen), what="dialog")
    await pilot.pause()
    await pilot.press("enter", *platform, "enter")
    await pilot.pause()


async def show_smb_form(pilot: Pilot[int]) -> None:
    """Every field given, the password in its masked field, which has the focus."""
    await _add_form(pilot, "SMB")
    screen = pilot.app.screen
    for field, value in (("add-name", "Riverside share"), ("smb-server", "fs01.example"),
                         ("smb-share", "Projects"), ("smb-path", "/Riverside Medical"),
                         ("smb-username", "SUMMIT\\pmorgan"),
                         ("smb-password", "s3cret-never-shown")):
        screen.query_one(f"#{field}", Input).value = value
    screen.query_one("#smb-password", Input).focus()
    await _still(pilot)


async def show_rclone_form(pilot: Pilot[int]) -> None:
    """The remotes of rclone's own config (the test's), one picked, a folder typed."""
    await _add_form(pilot, "Cloud")
    screen = pilot.app.screen
    remotes = screen.query_one("#rclone-remote", Select)
    await wait_for(lambda: len(remotes._options) > len(REMOTES), what="the remotes")
    remotes.value = "sharepoint:"
    screen.query_one("#add-name", Input).value = "Riverside SharePoint"
    path = screen.query_one("#rclone-path", Input)
    path.value = "Riverside Medical/Drawings"
    path.focus()
    await _still(pilot)


@pytest.fixture
def rclone_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rclone's own config, where rclone looks for it, holds the test's REMOTES."""
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed (apt-get install rclone)")
    monkeypatch.delenv("RCLONE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = tmp_path / "xdg" / "rclone" / "rclone.conf"
    config.parent.mkdir(parents=True)
    config.write_text("".join(f"[{name}]\ntype = local\n\n" for name in REMOTES))


def test_snapshot_of_the_smb_form(snap_compare: Callable[..., bool], app: DryvIQApp) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=show_smb_form)


def test_snapshot_of_the_rclone_form(snap_compare: Callable[..., bool], app: DryvIQApp,
                                     rclone_home: None) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=show_rclone_form)
