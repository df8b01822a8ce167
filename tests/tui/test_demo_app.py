"""`dryviq-tui demo` in-process (core.cli.main with the app driven by Pilot at 80×24): adding a
Procore connection with the default client credentials works against the embedded sandbox,
whose sign-in page tells the sample login; the welcome does not hide the History panel and
no notification is drawn over a dialog; the throwaway home goes when the demo ends."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Input, RadioButton, Select
from textual.widgets._toast import Toast

from core.cli import main
from core.home import Home
from core.sandbox import DEMO_COMPANY, DEMO_PROJECT
from tests.core.test_auth import _SignInForm, shown_code
from tests.tui.conftest import text_of, wait_for
from tui.app import DryvIQApp
from tui.screens.add_connection import AddConnectionScreen
from tui.screens.connections import ConnectionsScreen
from tui.screens.jobs import JobsScreen

Drive = Callable[[DryvIQApp, Pilot[int]], Awaitable[None]]
DEFAULTS = ("CLIENT_ID", "CLIENT_SECRET", "DOMAIN", "LOGIN_URL", "REDIRECT_URI")


@pytest.fixture(autouse=True)
def _own_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's throwaway home under tmp_path; no default client of the machine's."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for key in DEFAULTS:
        monkeypatch.delenv(f"DRYVIQ_PROCORE_{key}", raising=False)


def run_demo(drive: Drive, *argv: str) -> tuple[int, Path]:
    """Run `dryviq-tui demo ARGV` with the app under Pilot; returns its exit code and home."""
    homes: list[Path] = []

    async def open_app(home: Home, *, mouse: bool = True, greeting: str | None = None,
                       background_runs: bool = True) -> int:
        homes.append(home.root)
        assert not background_runs, "the demo's sandbox would end with the app"
        app = DryvIQApp(home=home, greeting=greeting, background_runs=background_runs)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
            await pilot.pause()
            await drive(app, pilot)
        return 0

    code = main(["demo", *argv], open_app=open_app)
    return code, homes[0]


async def sign_in_with_the_sample_login(url: str) -> str:
    """A person in a browser: reads the sample login off the page, signs in, copies the code."""
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        page = await browser.get(url)
        hint = re.search(r'id="sample-login">.*?<code>([^<]+)</code>.*?<code>([^<]+)</code>',
                         page.text)
        assert hint is not None, page.text
        form = _SignInForm()
        form.feed(page.text)
        answer = await browser.post(urljoin(str(page.url), form.action), data={
            **form.hidden, "login": hint.group(1), "password": hint.group(2)})
    return shown_code(answer)


async def pick(pilot: Pilot[int], selector: str, typed: str) -> None:
    pilot.app.screen.query_one(selector, Select).focus()
    await pilot.press("enter", *typed, "enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_the_demo_adds_a_procore_connection_with_the_default_credentials() -> None:
    async def add_with_defaults(app: DryvIQApp, pilot: Pilot[int]) -> None:
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="connections")
        await pilot.press("a")
        await wait_for(lambda: isinstance(app.screen, AddConnectionScreen), what="the dialog")
        await pilot.pause()
        dialog = app.screen
        default = dialog.query_one("#procore-default", RadioButton)
        assert default.value and not default.disabled
        assert "none here" not in str(default.label)
        dialog.query_one("#add-name", Input).value = "Riverside again"
        dialog.query_one("#procore-sign-in").focus()
        await pilot.press("enter")
        await pilot.pause()
        code = await sign_in_with_the_sample_login(text_of(app, "#procore-url"))
        dialog.query_one("#procore-code", Input).value = code
        dialog.query_one("#procore-code", Input).focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pick(pilot, "#procore-company", DEMO_COMPANY[:6])
        await pick(pilot, "#procore-project", "2024")
        assert text_of(app, "#procore-result").startswith("✓ Connection test succeeded")
        dialog.query_one("#add-done").focus()
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="the list")
        saved = await app.service.state.find_connection("Riverside again")
        assert saved is not None and saved.config["credentials"] == "default"
        assert saved.config["project_name"] == DEMO_PROJECT

    code, _ = run_demo(add_with_defaults)
    assert code == 0
    assert not any(f"DRYVIQ_PROCORE_{key}" in os.environ for key in DEFAULTS), (
        "the sandbox is the default client only while the demo runs")


def test_the_welcome_leaves_the_history_visible_and_no_toast_covers_a_dialog() -> None:
    async def look(app: DryvIQApp, pilot: Pilot[int]) -> None:
        await wait_for(lambda: bool(app.screen.query(Toast)), what="the welcome")
        await pilot.pause()
        toasts = list(app.screen.query(Toast))
        history = app.screen.query_one("#jobs-history").region.union(
            app.screen.query_one("#jobs-history-title").region)
        for toast in toasts:
            assert not toast.region.overlaps(history), (toast.region, history)
        app.push_screen(AddConnectionScreen(app.service))
        await wait_for(lambda: isinstance(app.screen, AddConnectionScreen), what="dialog")
        app.notify("something happened meanwhile")
        await pilot.pause()
        shown = [t for t in app.screen.query(Toast) if t.display and t.region.area]
        assert shown == [], "no notification over the dialog"

    run_demo(look)


def test_the_throwaway_home_is_removed_unless_kept(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    async def quit_at_once(app: DryvIQApp, pilot: Pilot[int]) -> None:
        return None

    code, home = run_demo(quit_at_once)
    assert code == 0 and home.parent == tmp_path and not home.exists()

    code, home = run_demo(quit_at_once, "--keep")
    assert code == 0 and (home / "state.db").exists()
    assert f"The demo's home is kept in {home}" in capsys.readouterr().err

    given = tmp_path / "mine"
    code, home = run_demo(quit_at_once, "--home", str(given))
    assert home == given and (given / "state.db").exists(), "a home the user named stays"
