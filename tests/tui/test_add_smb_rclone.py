"""The Add connection dialog's SMB share and Cloud storage (rclone remote) forms, driven from
the keyboard at 80x24 against a real smbd (tests/samba.py) and real rclone over moto's S3
(tests/s3.py): saved only once the connection answers, errors under the field they concern,
the password never on screen; then the new connection's folders in the browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select

from tests.s3 import CRYPT_REMOTE, LOCAL_REMOTE, S3_REMOTE, S3Bucket, S3Server
from tests.samba import SmbFolder
from tests.tui.conftest import World, table_rows, text_of, wait_for
from tui.app import DryvIQApp
from tui.screens.add_connection import AddConnectionScreen
from tui.screens.browser import BrowserScreen
from tui.screens.connections import ConnectionsScreen
from tui.screens.jobs import JobsScreen

SSH = (80, 24)


@asynccontextmanager
async def add_dialog(world: World, platform: str) -> AsyncIterator[tuple[DryvIQApp, Pilot[int]]]:
    """The app at 80x24 with the Add connection dialog open on `platform`, chosen by typing
    its title into the platform list, as at the keyboard."""
    app = DryvIQApp(world.service)
    async with app.run_test(size=SSH) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="connections")
        await pilot.press("a")
        await wait_for(lambda: isinstance(app.screen, AddConnectionScreen), what="the dialog")
        await pilot.pause()
        await pilot.press("enter", *platform, "enter")
        await pilot.pause()
        yield app, pilot


def focused_id(app: DryvIQApp) -> str | None:
    return app.focused.id if app.focused else None


async def type_smb(pilot: Pilot[int], name: str, folder: SmbFolder, password: str) -> None:
    """Tab from the platform through every field in order, filling each. The name is typed
    key by key; the others are set once focused (a key press costs ~0.2 s on a busy machine,
    and Input's typing is Textual's own)."""
    samba = folder.server
    await pilot.press("tab", *name)
    for field, text in (("smb-server", samba.host), ("smb-port", str(samba.port)),
                        ("smb-share", samba.share), ("smb-path", folder.path),
                        ("smb-username", samba.username), ("smb-password", password)):
        await pilot.press("tab")
        assert focused_id(pilot.app) == field
        pilot.app.screen.query_one(f"#{field}", Input).value = text
    assert pilot.app.screen.query_one("#add-name", Input).value == name


def screen_text(app: DryvIQApp) -> str:
    """Everything the terminal shows now."""
    return app.export_screenshot()


async def test_an_smb_share_is_added_and_listed_with_where_it_points(
        world: World, smb_folder: SmbFolder) -> None:
    samba = smb_folder.server
    async with add_dialog(world, "SMB") as (app, pilot):
        await type_smb(pilot, "tower", smb_folder, samba.password)
        assert samba.password not in screen_text(app)  # the field shows dots
        await pilot.press("enter")  # every field given: Enter in the password saves
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="saved")
        where = f"//{samba.host}:{samba.port}/docs{smb_folder.path} (as {samba.username})"
        await wait_for(lambda: text_of(app, "#connections-detail").startswith(
            f"tower: {where}\n"), what="the new connection highlighted, its place below")
        assert table_rows(app, "#connections-table")[2] == ["tower", "SMB share", "untested",
                                                             where]
        assert samba.password not in screen_text(app)
    connection = await world.state.find_connection("tower")
    assert connection is not None and connection.platform == "smb"
    assert connection.config == {"server": samba.host, "port": samba.port, "share": "docs",
                                 "path": smb_folder.path, "username": samba.username,
                                 "encrypt": False}
    assert await world.state.connection_secrets(connection.id) == {"password": samba.password}


async def test_a_wrong_password_is_said_under_it_the_input_kept_nothing_saved(
        world: World, smb_folder: SmbFolder) -> None:
    async with add_dialog(world, "SMB") as (app, pilot):
        await type_smb(pilot, "office", smb_folder, "not-the-password")
        await pilot.press("enter")
        dialog = app.screen
        await wait_for(lambda: dialog.query_one("#smb-password-error").display,
                       what="the error under the password")
        assert "username or password" in text_of(app, "#smb-password-error")
        assert app.screen is dialog and focused_id(app) == "smb-password"
        values = {field.id: field.value for field in dialog.query(Input)}
        assert values["smb-server"] == smb_folder.server.host
        assert values["smb-path"] == smb_folder.path
        assert values["smb-password"] == "not-the-password"
        assert "not-the-password" not in screen_text(app)
        assert not dialog.query_one("#add-error").display  # said once, where it belongs

        await pilot.press("x")  # typing in the field takes its error away
        assert not dialog.query_one("#smb-password-error").display
    assert [c.name for c in await world.state.list_connections()] == ["plans", "share"]
