"""The Add connection dialog's SMB share and Cloud storage (rclone remote) forms, driven from
the keyboard at 80x24 against a real smbd (tests/samba.py) and real rclone over moto's S3
(tests/s3.py): saved only once the connection answers, errors under the field they concern,
the password never on screen; then the new connection's folders in the browser."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select

from tests.s3 import CRYPT_REMOTE, LOCAL_REMOTE, S3_REMOTE, S3Bucket
from tests.samba import SHARE, SmbFolder
from tests.tui.conftest import World, table_rows, text_of, wait_for
from tests.tui.test_browser import children, highlight, open_folder
from tests.tui.test_dialogs_fit_and_focus import assert_fits
from tui.app import DryvIQApp
from tui.screens.add_connection import AddConnectionScreen
from tui.screens.browser import BrowserScreen
from tui.screens.connections import ConnectionsScreen
from tui.screens.jobs import JobsScreen
from tui.widgets.confirm import ConfirmScreen

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


async def browse_new(app: DryvIQApp, pilot: Pilot[int], folder: str) -> list[str]:
    """From the connections list, browse the highlighted connection (o) and open its top
    folder and `folder` in it, as a user does; what `folder` holds."""
    await pilot.press("o")
    await wait_for(lambda: isinstance(app.screen, BrowserScreen), what="the browser")
    browser = app.screen
    assert isinstance(browser, BrowserScreen)
    await wait_for(lambda: browser.remote_tree is not None, what="the tree")
    await open_folder(pilot, browser, "")
    assert folder in children(browser, "")
    await open_folder(pilot, browser, folder)
    return children(browser, folder)


async def test_an_smb_share_is_added_listed_with_where_it_points_and_browsed(
        world: World, smb_folder: SmbFolder) -> None:
    samba = smb_folder.server
    (smb_folder.local / "Drawings").mkdir()
    (smb_folder.local / "Drawings" / "A-101 Floor Plan.pdf").write_bytes(b"%PDF" * 1000)
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
        assert await browse_new(app, pilot, "Drawings") == ["A-101 Floor Plan.pdf  3.9 KiB"]
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        await highlight(pilot, browser, "Drawings/A-101 Floor Plan.pdf")
        details = text_of(app, "#browse-details")
        assert "Size       3.9 KiB (4,000 bytes)" in details
        assert "✓ The name fits Procore" in details  # where a share's files are headed
        assert "Id " not in details  # a file index on the server tells the user nothing
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
        assert_fits(app, "#add-done", "#add-cancel", "#smb-password-error")

        await pilot.press("x")  # typing in the field takes its error away
        assert not dialog.query_one("#smb-password-error").display

        dialog.query_one("#smb-password", Input).value = smb_folder.server.password
        dialog.query_one("#smb-share", Input).value = "no-such-share"
        await pilot.press("enter")
        await wait_for(lambda: dialog.query_one("#smb-share-error").display,
                       what="the error under the share")
        assert "share 'no-such-share' not found" in text_of(app, "#smb-share-error")
        assert focused_id(app) == "smb-share"
        assert not dialog.query_one("#smb-password-error").display
    assert [c.name for c in await world.state.list_connections()] == ["plans", "share"]


async def pick_remote(pilot: Pilot[int], config: Path, name: str) -> None:
    """Give the config file, Tab on to the list of its remotes once read, pick `name`."""
    app = pilot.app
    await pilot.press("tab")
    assert focused_id(app) == "rclone-config"
    app.screen.query_one("#rclone-config", Input).value = str(config)
    await pilot.press("tab", "tab")  # Read again, then the remotes
    assert focused_id(app) == "rclone-remote"
    remotes = app.screen.query_one("#rclone-remote", Select)
    await wait_for(lambda: len(remotes._options) > 1, what="the config's remotes")
    await pilot.press("enter", *name, "enter")
    assert remotes.value == f"{name}:"


async def test_an_rclone_remote_is_picked_from_the_configs_list_and_browsed(
        world: World, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    server = s3_bucket.server
    (tmp_path / "Drawings").mkdir()
    (tmp_path / "Drawings" / "S-101 Foundation Plan.pdf").write_bytes(b"%PDF" * 500)
    server.rclone("copy", str(tmp_path / "Drawings"), f"{s3_bucket.remote}/Drawings")
    async with add_dialog(world, "Cloud") as (app, pilot):
        await pilot.press("tab", *"site")
        await pick_remote(pilot, server.config, S3_REMOTE)
        remotes = app.screen.query_one("#rclone-remote", Select)
        offered = [value for _, value in remotes._options if isinstance(value, str)]
        assert offered == [f"{CRYPT_REMOTE}:", f"{LOCAL_REMOTE}:", f"{S3_REMOTE}:"]

        dialog = app.screen
        await pilot.press("tab", *"no-such-bucket", "enter")
        await wait_for(lambda: dialog.query_one("#rclone-path-error").display,
                       what="the error under the folder")
        assert "no-such-bucket does not exist" in text_of(app, "#rclone-path-error")
        assert focused_id(app) == "rclone-path" and remotes.value == f"{S3_REMOTE}:"

        dialog.query_one("#rclone-path", Input).value = s3_bucket.name
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="saved")
        where = f"{s3_bucket.remote} ({server.config})"
        await wait_for(lambda: text_of(app, "#connections-detail").startswith(
            f"site: {where}\n"), what="the new connection highlighted, its place below")
        assert ["site", "Cloud (rclone)", "untested", where] in table_rows(
            app, "#connections-table")
        assert await browse_new(app, pilot, "Drawings") == [
            "S-101 Foundation Plan.pdf  2.0 KiB"]
    connection = await world.state.find_connection("site")
    assert connection is not None and connection.platform == "rclone"
    assert connection.config == {"remote": s3_bucket.remote, "config": str(server.config)}


async def test_without_rclone_the_form_says_how_to_install_it(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no rclone there
    async with add_dialog(world, "Cloud") as (app, pilot):
        await wait_for(lambda: app.screen.query_one("#rclone-note").display, what="the note")
        note = text_of(app, "#rclone-note")
        assert "rclone is not installed" in note and "apt-get install rclone" in note
        assert app.screen.query_one("#rclone-remote", Select).is_blank()
        await pilot.press("enter")  # on the platform list: Done is not ready, nothing saved
        await pilot.press("escape")
    assert [c.name for c in await world.state.list_connections()] == ["plans", "share"]


async def test_a_config_without_remotes_says_how_to_make_one(
        world: World, tmp_path: Path) -> None:
    empty = tmp_path / "rclone.conf"
    empty.write_text("")
    async with add_dialog(world, "Cloud") as (app, pilot):
        await pilot.press("tab", "tab")
        app.screen.query_one("#rclone-config", Input).value = str(empty)
        await wait_for(lambda: str(empty) in text_of(app, "#rclone-note"), what="the note")
        assert "rclone config" in text_of(app, "#rclone-note")
        app.screen.query_one("#rclone-config", Input).value = str(tmp_path / "missing.conf")
        await wait_for(lambda: app.screen.query_one("#rclone-config-error").display,
                       what="the error under the config")
        assert "no such file" in text_of(app, "#rclone-config-error")
        assert focused_id(app) == "rclone-config"  # the user is typing there: it stays


async def test_the_dialog_stays_live_while_a_share_is_tried_and_esc_stops_the_try(
        world: World, smb_folder: SmbFolder) -> None:
    """A server that takes the connection and never answers: the dialog says it is
    connecting, Esc stops the try (the input kept, nothing saved), a second Esc asks."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        async with add_dialog(world, "SMB") as (app, pilot):
            await type_smb(pilot, "tower", smb_folder, "any")
            dialog = app.screen
            dialog.query_one("#smb-port", Input).value = str(silent.getsockname()[1])
            await pilot.press("enter")
            await wait_for(lambda: dialog.query_one("#add-status").display, what="connecting")
            assert text_of(app, "#add-status") == f"Connecting to //127.0.0.1/{SHARE}…"
            await pilot.press("tab")  # the keys still work meanwhile
            assert focused_id(app) == "smb-encrypt"
            await pilot.press("escape")
            assert not dialog.query_one("#add-status").display  # at once
            assert "nothing was saved" in text_of(app, "#add-error")
            silent.close()  # the connect given up on ends (else it waits for its timeout)
            assert app.screen is dialog
            assert dialog.query_one("#smb-path", Input).value == smb_folder.path
            await pilot.press("escape")
            await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the question")
    assert [c.name for c in await world.state.list_connections()] == ["plans", "share"]


async def test_e_on_a_share_says_how_its_password_changes(world: World) -> None:
    """A share has no sign-in to renew; its expired password is what a user comes to change."""
    from core.connections import smb_config
    from tests.tui.test_connections_screens import highlight_row

    await world.state.add_connection(
        "office", "smb", smb_config(server="files.example", share="Projects", username="ana"),
        {"password": "not shown"})
    app = DryvIQApp(world.service)
    async with app.run_test(size=SSH) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="connections")
        await highlight_row(app, pilot, "office")
        await pilot.press("e")
        await wait_for(lambda: bool(app._notifications), what="the hint")
        assert [str(n.message) for n in app._notifications] == [
            "office takes a new password from the command line: dryviq-tui connections "
            "password 'office'"]
        assert isinstance(app.screen, ConnectionsScreen)  # no dialog for a share
