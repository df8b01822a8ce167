"""The connections list and the Add connection dialog, driven with Pilot over a real state
file, real local folders and the Procore sandbox over HTTP."""

from __future__ import annotations

import json
import shutil
import webbrowser
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RadioButton, Select

from core.auth import OOB_REDIRECT
from core.connections import add_local
from core.sandbox import (
    DEMO_COMPANY,
    DEMO_PROJECT,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SERVICE_CLIENT_ID,
    SERVICE_CLIENT_SECRET,
    SandboxThread,
)
from tests.core.test_auth import registered_callback, sign_in_in_browser
from tests.tui.conftest import (
    World,
    add_sandbox_procore,
    running,
    table_rows,
    text_of,
    wait_for,
)
from tui.app import DryvIQApp
from tui.screens.add_connection import AddConnectionScreen, can_open_browser
from tui.screens.browser import BrowserScreen
from tui.screens.connections import ConfirmRemoveScreen, ConnectionsScreen
from tui.screens.jobs import JobsScreen

PAT = "Pat Morgan (pm@summit-builders.example)"


@pytest.fixture(autouse=True)
def _no_default_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CLIENT_ID", "CLIENT_SECRET", "DOMAIN", "LOGIN_URL"):
        monkeypatch.delenv(f"DRYVIQ_PROCORE_{key}", raising=False)


@asynccontextmanager
async def on_connections(world: World) -> AsyncIterator[tuple[DryvIQApp, Pilot[int]]]:
    async with running(world) as (app, pilot):
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="connections")
        await pilot.pause()
        yield app, pilot


def rows(app: DryvIQApp) -> list[list[str]]:
    return table_rows(app, "#connections-table")


async def highlight_row(app: DryvIQApp, pilot: Pilot[int], name: str) -> None:
    table = app.screen.query_one("#connections-table", DataTable)
    table.focus()
    table.move_cursor(row=[r[0] for r in rows(app)].index(name))
    await pilot.pause()


async def open_dialog(app: DryvIQApp, pilot: Pilot[int]) -> AddConnectionScreen:
    await pilot.press("a")
    await wait_for(lambda: isinstance(app.screen, AddConnectionScreen), what="the dialog")
    await pilot.pause()
    dialog = app.screen
    assert isinstance(dialog, AddConnectionScreen)
    return dialog


async def fill(pilot: Pilot[int], values: dict[str, str]) -> None:
    for selector, value in values.items():
        pilot.app.screen.query_one(selector, Input).value = value
    await pilot.pause()


async def click(pilot: Pilot[int], selector: str) -> None:
    """Click a button as a user does: scrolled into view first, and once its press effect from
    the last click is over (until then, Textual takes a click as the same press)."""
    button = pilot.app.screen.query_one(selector)
    button.scroll_visible(animate=False)
    await wait_for(lambda: not button.has_class("-active"), what=f"{selector} released")
    await pilot.pause()
    await pilot.click(selector)


async def pick_option(pilot: Pilot[int], selector: str, label: str) -> None:
    """Open the Select, type to find the option, take it: as at the keyboard."""
    pilot.app.screen.query_one(selector, Select).focus()
    await pilot.press("enter", *label, "enter")
    await pilot.pause()


def selected(dialog: AddConnectionScreen, selector: str) -> str:
    """What a Select shows: its choice, or its prompt."""
    return str(dialog.query_one(selector, Select).query_one("SelectCurrent #label").render())


async def custom_credentials(pilot: Pilot[int], sandbox: SandboxThread, secret: str) -> None:
    await click(pilot, "#procore-custom")
    await fill(pilot, {"#procore-domain": sandbox.url, "#procore-client-id": SANDBOX_CLIENT_ID,
                       "#procore-client-secret": secret})


async def paste_code(pilot: Pilot[int], sandbox: SandboxThread) -> str:
    """Sign in with Procore, then paste a code as the sign-in page would show it."""
    await click(pilot, "#procore-sign-in")
    await pilot.pause()
    url = text_of(pilot.app, "#procore-url")
    await fill(pilot, {"#procore-code": sandbox.world.issue_code(SANDBOX_CLIENT_ID,
                                                                 OOB_REDIRECT)})
    await click(pilot, "#procore-finish")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    return url


async def test_a_procore_connection_is_added_by_pasting_the_code(
        world: World, sandbox: SandboxThread) -> None:
    async with on_connections(world) as (app, pilot):
        dialog = await open_dialog(app, pilot)
        assert str(dialog.query_one("#procore-default").label).endswith("(none here)")
        assert "none are set up on this machine" in text_of(app, "#procore-no-default")
        assert dialog.query_one("#procore-client-secret", Input).password
        await custom_credentials(pilot, sandbox, SANDBOX_CLIENT_SECRET)
        await click(pilot, "#add-done")  # too early: said, and cleared once it succeeds
        assert "Not saved: Sign in with Procore first" in text_of(app, "#add-error")
        url = await paste_code(pilot, sandbox)
        assert url.startswith(f"{sandbox.url}/oauth/authorize?")
        assert app.clipboard == url  # copied with OSC 52 for the user's own browser
        assert "Copied to your clipboard" in text_of(app, "#procore-url-note")
        shown_url = dialog.query_one("#procore-url")
        assert shown_url.size.height == 1 and shown_url.size.width == len(url), (
            "one line, never wrapped, so a terminal selection copies it whole")
        assert selected(dialog, "#procore-company") == "(choose one)"  # not "sign in first"
        assert not dialog.query_one("#procore-company", Select).disabled

        await pick_option(pilot, "#procore-company", "Summit")  # typed until it is found
        assert str(dialog.query_one("#procore-company", Select).selection) == str(
            next(c.id for c in sandbox.world.companies.values() if c.name == DEMO_COMPANY))
        await app.workers.wait_for_complete()
        await pick_option(pilot, "#procore-project", "2024")  # 2024-017 - Riverside …
        assert text_of(app, "#procore-result") == (
            f"✓ Connection test succeeded: signed in as {PAT}")
        assert not dialog.query_one("#add-error").display, "no ⚠ Not saved under the ✓"
        assert selected(dialog, "#procore-project").startswith("2024")
        await click(pilot, "#add-done")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="the list")
        await pilot.pause()
        assert ["Procore", "Procore", "untested",
                f"{DEMO_COMPANY} / {DEMO_PROJECT} ({sandbox.url.split('://')[1]}) · {PAT}",
                ] in rows(app)

    connection = await world.state.find_connection("Procore")
    assert connection is not None
    project = next(p for p in sandbox.world.projects.values() if p.name == DEMO_PROJECT)
    assert connection.config["project_id"] == project.id
    assert connection.config["credentials"] == "custom"
    assert SANDBOX_CLIENT_SECRET not in json.dumps(connection.config)
    secrets = await world.state.connection_secrets(connection.id)
    assert secrets["client_secret"] == SANDBOX_CLIENT_SECRET


async def test_a_wrong_secret_or_domain_is_said_in_the_dialog_and_nothing_is_saved(
        world: World, sandbox: SandboxThread) -> None:
    async with on_connections(world) as (app, pilot):
        dialog = await open_dialog(app, pilot)
        await custom_credentials(pilot, sandbox, "not-the-secret")
        await paste_code(pilot, sandbox)
        assert text_of(app, "#procore-error") == (
            "⚠ Sign-in failed: Procore refused the client credentials: check the Client ID and "
            "Client Secret")
        assert "not-the-secret" not in text_of(app, "#procore-error")

        await fill(pilot, {"#procore-domain": "ftp://files.example.com"})
        await click(pilot, "#procore-sign-in")
        await pilot.pause()
        assert "is not a Procore address" in text_of(app, "#procore-error") or (
            "does not use https" in text_of(app, "#procore-error"))

        await click(pilot, "#add-done")
        await pilot.pause()
        assert app.screen is dialog, "the dialog stays open to correct and retry"
        assert "Not saved: Sign in with Procore first" in text_of(app, "#add-error")

        await fill(pilot, {"#procore-domain": sandbox.url,
                           "#procore-client-secret": SANDBOX_CLIENT_SECRET})
        await paste_code(pilot, sandbox)  # corrected: the same dialog signs in
        assert "Sign-in failed" not in text_of(app, "#procore-error")
        assert not dialog.query_one("#procore-error").display
        await pilot.press("escape")
        await pilot.pause()
    assert [c.name for c in await world.state.list_connections()] == ["plans", "share"]


async def test_a_local_folder_connection_is_added(world: World, tmp_path) -> None:
    folder = tmp_path / "site share"
    async with on_connections(world) as (app, pilot):
        dialog = await open_dialog(app, pilot)
        await pick_option(pilot, "#add-platform", "Local folder")
        assert dialog.query_one("#add-name", Input).placeholder == "a name for it"
        await fill(pilot, {"#add-name": "site", "#local-path": str(folder)})
        await click(pilot, "#add-done")
        await pilot.pause()
        assert "no such folder" in text_of(app, "#add-error")
        assert app.screen is dialog
        folder.mkdir()
        await click(pilot, "#add-done")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="the list")
        await pilot.pause()
        assert ["site", "Local folder", "untested", str(folder)] in rows(app)
    connection = await world.state.find_connection("site")
    assert connection is not None and connection.config["path"] == str(folder)


async def test_the_dialog_refuses_a_name_differing_only_in_case(world: World, tmp_path) -> None:
    async with on_connections(world) as (app, pilot):
        dialog = await open_dialog(app, pilot)
        await pick_option(pilot, "#add-platform", "Local folder")
        await fill(pilot, {"#add-name": "PLANS", "#local-path": str(tmp_path)})
        await click(pilot, "#add-done")
        await pilot.pause()
        assert "a connection named 'plans' already exists ('PLANS' differs from it only in " \
            "case or spacing)" in text_of(app, "#add-error")
        assert app.screen is dialog
    assert [c.name for c in await world.state.list_connections()] == ["plans", "share"]


async def test_a_connection_is_tested_from_the_list(world: World) -> None:
    async with on_connections(world) as (app, pilot):
        await highlight_row(app, pilot, "plans")
        await pilot.press("t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert rows(app)[0][2] == "ok"
        assert "Last test: Connection test succeeded: " in text_of(app, "#connections-detail")

        shutil.rmtree(world.destination)
        await highlight_row(app, pilot, "share")
        await pilot.press("t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert rows(app)[1][2] == "failed"
        assert "Last test: Connection test failed: " in text_of(app, "#connections-detail")


async def test_a_connection_a_job_uses_is_not_removed(world: World, tmp_path) -> None:
    await world.job()
    (tmp_path / "spare").mkdir()
    await add_local(world.state, "spare", str(tmp_path / "spare"))
    async with on_connections(world) as (app, pilot):
        await highlight_row(app, pilot, "plans")
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ConnectionsScreen), "no confirmation for a refusal"
        assert "Jobs using it: Tower A" in text_of(app, "#connections-detail")
        assert [str(n.message) for n in app._notifications] == [
            "Cannot remove: connection 'plans' is used by 1 job: 'Tower A'; remove it first"]

        await highlight_row(app, pilot, "spare")
        await pilot.press("x")
        await wait_for(lambda: isinstance(app.screen, ConfirmRemoveScreen), what="confirm")
        await click(pilot, "#remove-ok")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen)
                       and "spare" not in [r[0] for r in rows(app)], what="the row gone")
    assert [c.name for c in await world.state.list_connections()] == ["plans", "share"]


async def test_browse_opens_the_browser_on_the_connection(world: World) -> None:
    async with on_connections(world) as (app, pilot):
        await highlight_row(app, pilot, "share")
        await pilot.press("o")
        await wait_for(lambda: isinstance(app.screen, BrowserScreen), what="the browser")
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        await wait_for(lambda: browser.connection is not None, what="the open connection")
        assert browser.connection is not None and browser.connection.name == "share"


async def test_a_procore_connection_signs_in_again_in_place(
        world: World, sandbox: SandboxThread) -> None:
    connection = await add_sandbox_procore(world.state, world.home, sandbox)
    before = await world.state.connection_secrets(connection.id)
    async with on_connections(world) as (app, pilot):
        await highlight_row(app, pilot, "riverside")
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, AddConnectionScreen), what="the dialog")
        await pilot.pause()
        await paste_code(pilot, sandbox)
        assert text_of(app, "#procore-result") == (
            f"✓ Connection test succeeded: signed in as {PAT}")
        await click(pilot, "#add-done")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="the list")
    after = await world.state.connection_secrets(connection.id)
    assert after["token"] != before["token"]
    assert after["client_secret"] == SANDBOX_CLIENT_SECRET
    again = await world.state.find_connection(connection.id)
    assert again is not None and again.config["project_id"] == connection.config["project_id"]
    assert [c.name for c in await world.state.list_connections()] == [
        "plans", "riverside", "share"]


async def test_a_browser_on_this_machine_finishes_the_sign_in(
        world: World, sandbox: SandboxThread) -> None:
    redirect = registered_callback(sandbox)
    async with on_connections(world) as (app, pilot):
        dialog = await open_dialog(app, pilot)
        await custom_credentials(pilot, sandbox, SANDBOX_CLIENT_SECRET)
        await click(pilot, "#procore-loopback")  # no Redirect URI typed yet
        await wait_for(lambda: "Redirect URI" in text_of(app, "#procore-error"),
                       what="the missing Redirect URI named")
        assert not dialog.query_one("#procore-url-box").display
        await fill(pilot, {"#procore-redirect-uri": redirect})
        await click(pilot, "#procore-loopback")
        await wait_for(lambda: text_of(app, "#procore-url") != "", what="the sign-in URL")
        url = text_of(app, "#procore-url")
        assert parse_qs(urlsplit(url).query)["redirect_uri"] == [redirect]
        assert app.clipboard == url
        assert not dialog.query_one("#procore-code-row").display  # nothing to paste
        page = await sign_in_in_browser(url)
        assert page.status_code == 200
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert f"Signed in as {PAT}" in text_of(app, "#procore-status")
        assert dialog.query_one("#procore-company", Select).has_focus


async def test_a_service_account_signs_in_without_a_code(
        world: World, sandbox: SandboxThread) -> None:
    async with on_connections(world) as (app, pilot):
        await open_dialog(app, pilot)
        await pilot.click("#procore-custom")
        await fill(pilot, {"#add-name": "service", "#procore-domain": sandbox.url,
                           "#procore-client-id": SERVICE_CLIENT_ID,
                           "#procore-client-secret": SERVICE_CLIENT_SECRET})
        await click(pilot, "#procore-service")  # the company comes first
        await wait_for(lambda: "Company ID" in text_of(app, "#procore-error"),
                       what="the missing Company ID named")
        assert sandbox.world.requests["POST /oauth/token"] == 0
        company = sandbox.world.service_user.company_ids[0]
        await fill(pilot, {"#procore-company-id": str(company)})
        await click(pilot, "#procore-service")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await app.workers.wait_for_complete()  # its only company, then its only project
        await pilot.pause()
        assert text_of(app, "#procore-result") == (
            "✓ Connection test succeeded: signed in as DryvIQ Service Account "
            "(service-account@dryviq.example)")
        await click(pilot, "#add-done")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="the list")
    connection = await world.state.find_connection("service")
    assert connection is not None and connection.config["grant"] == "client_credentials"
    assert connection.config["company_id"] == sandbox.world.service_user.company_ids[0]


async def test_the_system_default_credentials_need_no_typing(
        world: World, sandbox: SandboxThread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRYVIQ_PROCORE_CLIENT_ID", SANDBOX_CLIENT_ID)
    monkeypatch.setenv("DRYVIQ_PROCORE_CLIENT_SECRET", SANDBOX_CLIENT_SECRET)
    monkeypatch.setenv("DRYVIQ_PROCORE_DOMAIN", sandbox.url)
    async with on_connections(world) as (app, pilot):
        dialog = await open_dialog(app, pilot)
        assert dialog.query_one("#procore-default", RadioButton).value
        assert not dialog.query_one("#procore-custom-fields").display
        await paste_code(pilot, sandbox)
        await pick_option(pilot, "#procore-company", "Summit")
        await app.workers.wait_for_complete()
        await pick_option(pilot, "#procore-project", "2024")
        await click(pilot, "#add-done")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="the list")
    connection = await world.state.find_connection("Procore")
    assert connection is not None and connection.config["credentials"] == "default"
    assert "client_secret" not in await world.state.connection_secrets(connection.id)


async def test_at_80x24_a_registered_redirect_uri_signs_in_and_is_kept_for_next_time(
        world: World, sandbox: SandboxThread) -> None:
    """Over SSH without a pty the terminal is 80×24: every new field is reachable there, and
    the connection's Redirect URI comes back when it signs in again."""
    redirect = registered_callback(sandbox)
    app = DryvIQApp(world.service)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="connections")
        await pilot.pause()
        await open_dialog(app, pilot)
        await custom_credentials(pilot, sandbox, SANDBOX_CLIENT_SECRET)
        await fill(pilot, {"#add-name": "riverside", "#procore-redirect-uri": redirect})
        await click(pilot, "#procore-loopback")
        await wait_for(lambda: text_of(app, "#procore-url") != "", what="the sign-in URL")
        assert (await sign_in_in_browser(text_of(app, "#procore-url"))).status_code == 200
        await wait_for(lambda: app.screen.query_one("#procore-company", Select).has_focus,
                       what="the companies")
        await pick_option(pilot, "#procore-company", "Summit")
        await app.workers.wait_for_complete()
        await pick_option(pilot, "#procore-project", "2024")
        assert app.screen.query_one("#add-done").region.bottom <= app.screen.query_one(
            "#add-dialog").content_region.bottom  # Done on screen, not cut off below
        await click(pilot, "#add-done")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="the list")
        connection = await world.state.find_connection("riverside")
        assert connection is not None and connection.config["redirect_uri"] == redirect

        await highlight_row(app, pilot, "riverside")
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, AddConnectionScreen), what="the dialog")
        await pilot.pause()
        assert app.screen.query_one("#procore-redirect-uri", Input).value == redirect
        await click(pilot, "#procore-loopback")
        await wait_for(lambda: text_of(app, "#procore-url") != "", what="the sign-in URL")
        assert (await sign_in_in_browser(text_of(app, "#procore-url"))).status_code == 200
        await wait_for(lambda: text_of(app, "#procore-result") != "", what="the result")
        await click(pilot, "#add-done")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="the list")


async def test_the_sign_in_address_opens_in_a_browser_only_when_asked_and_a_display_is_there(
        world: World, sandbox: SandboxThread, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    async with on_connections(world) as (app, pilot):
        dialog = await open_dialog(app, pilot)
        await custom_credentials(pilot, sandbox, SANDBOX_CLIENT_SECRET)
        await click(pilot, "#procore-sign-in")
        await pilot.pause()
        assert not dialog.query("#procore-open"), "over SSH no browser is offered"
        await pilot.press("escape")

    monkeypatch.setenv("DISPLAY", ":0")
    async with on_connections(world) as (app, pilot):
        dialog = await open_dialog(app, pilot)
        await custom_credentials(pilot, sandbox, SANDBOX_CLIENT_SECRET)
        await click(pilot, "#procore-sign-in")
        await pilot.pause()
        assert opened == [], "never opened by itself"
        await click(pilot, "#procore-open")
        await pilot.pause()
        assert opened == [text_of(app, "#procore-url")]

        await click(pilot, "#procore-show")  # the app cannot step aside under Pilot: said so
        await pilot.pause()
        assert "copy the address from the line above" in text_of(app, "#procore-error")


def test_a_browser_is_offered_on_a_desktop_not_over_plain_ssh() -> None:
    assert can_open_browser({"DISPLAY": ":0"}, "linux")
    assert can_open_browser({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert can_open_browser({}, "darwin") and can_open_browser({}, "win32")
    assert not can_open_browser({"SSH_CONNECTION": "10.0.0.1 22 10.0.0.2 22"}, "linux")
