"""`dryviq-tui web`: the real command serving the app, a browser signing in with the printed
link (headless Chromium, Debian's), and the gate seen over plain HTTP: no token, a bad one, a
read-only one, a used link, a revoked token, a foreign websocket Origin or Host all get
nothing of the app."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import aiohttp.web
import httpx
import pytest
from aiohttp.test_utils import TestServer

from core.api.tokens import create_token, revoke_token
from core.state import State
from tests.e2e.conftest import Cli, clean_env, dryviq_command
from tests.processes import children_of, wait_until_exited
from tui.web_server import Gate

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("web")]

CHROMIUM = "/usr/bin/chromium"
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"]
JOBS = ("Nightly drawings copy", "Submittals to archive")
UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
CSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]")


@dataclass
class Home:
    path: Path
    token: str  # may write
    read_only_token: str


@dataclass
class Web:
    process: subprocess.Popen[str]
    link: str  # the printed one-time link
    url: str  # http://127.0.0.1:PORT
    home: Home


async def _tokens(home: Path) -> tuple[str, str]:
    state = await State.open(home / "state.db")
    try:
        _, token = await create_token(state, "browser", read_only=False)
        _, read_only = await create_token(state, "viewer", read_only=True)
    finally:
        await state.close()
    return token, read_only


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home with two local folders and a job for each direction."""
    root = tmp_path_factory.mktemp("web")
    cli = Cli(root / "home")
    for name in ("site", "archive"):
        (root / name).mkdir()
        cli("connections", "add", "local", name, "--path", root / name)
    for job, (source, destination) in zip(JOBS, (("site", "archive"), ("archive", "site")),
                                          strict=True):
        cli("jobs", "create", "--file", "-", input=json.dumps({"name": job, "transfer": {
            "transfer_type": "copy",
            "source": {"connection": {"id": source}, "target": {"path": "/"}},
            "destination": {"connection": {"id": destination}, "target": {"path": "/"}}},
            "schedule": {"mode": "manual"}}))
    return Home(cli.home, *asyncio.run(_tokens(cli.home)))


def start_web(home: Home, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`dryviq-tui web --port 0 ARGS` and the link it printed."""
    started = time.monotonic()
    process = subprocess.Popen([*dryviq_command(), "--home", str(home.path), "web", "--port",
                                "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=clean_env())
    link = process.stdout.readline().strip() if process.stdout else ""
    if not link:
        process.kill()
        pytest.fail(f"dryviq-tui web printed no link: {process.communicate()}")
    print(f"dryviq-tui web printed its link after {time.monotonic() - started:.2f} s")
    return process, link


def stop_web(process: subprocess.Popen[str], home: Home, link: str) -> str:
    """SIGTERM: a clean stop (exit 0), no secret on stderr or in the log; returns stderr."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    secret = link.split("token=")[1]
    log = "".join(p.read_text() for p in (home.path / "logs").glob("*"))
    assert secret not in err + log and "dq_" not in err + log
    return err


@pytest.fixture
def web(home: Home) -> Iterator[Web]:
    process, link = start_web(home)
    try:
        yield Web(process, link, link.split("/?", 1)[0], home)
    finally:
        stop_web(process, home, link)


def client() -> httpx.Client:
    return httpx.Client(timeout=30, follow_redirects=False)


def test_without_a_valid_token_nothing_of_the_app_is_served(web: Web) -> None:
    with client() as http:
        for path in ("/", "/static/js/textual.js", "/static/", "/download/x", "/page/focus.js"):
            refused = http.get(web.url + path)
            assert refused.status_code == 401, path
            assert "textual" not in refused.text and "terminal" not in refused.text
            assert "dryviq-tui web" in refused.text  # it says how to sign in
        assert http.get(web.url + "/ws", headers=UPGRADE).status_code == 401
        assert http.get(web.url + "/?token=dq_mistyped").status_code == 401
        assert http.get(web.url + "/?token=" + web.link[-20:]).status_code == 401
        read_only = http.get(web.url + "/?token=" + web.home.read_only_token)
        assert read_only.status_code == 403 and "read-only" in read_only.text
        assert "set-cookie" not in read_only.headers
        # bound to loopback: a Host naming another machine (DNS rebinding) is refused
        assert http.get(web.link, headers={"Host": "dryviq.example"}).status_code == 403
    with client() as http:  # ...and the link was not used up by any of that
        assert http.get(web.link).status_code == 303


def test_the_printed_link_works_once_and_its_cookie_opens_the_app(web: Web) -> None:
    with client() as http:
        signed_in = http.get(web.link + "&fontsize=14")
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/?fontsize=14"  # the token is gone
        cookie = signed_in.headers["set-cookie"]
        assert re.fullmatch(r"dryviq_web=[\w-]{40,}; HttpOnly; Path=/; SameSite=Strict", cookie)
        page = http.get(web.url + "/")
        assert page.status_code == 200 and 'src="/static/js/textual.js"' in page.text
        assert 'src="/page/focus.js"' in page.text and "<script>" not in page.text
        assert f'data-session-websocket-url="ws://{urlsplit(web.url).netloc}/ws"' in page.text
        assert "https:" not in page.text and "googleapis" not in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        font = http.get(web.url + "/static/fonts/RobotoMono-VariableFont_wght.ttf")
        assert font.status_code == 200 and len(font.content) > 10_000
        # the websocket answers only the app's own pages (cross-site websocket hijacking)
        for origin in ("http://evil.example", "null", None):
            headers = UPGRADE | ({"Origin": origin} if origin else {})
            assert http.get(web.url + "/ws", headers=headers).status_code == 403, origin
    with client() as http:
        assert http.get(web.link).status_code == 401  # once only


def test_a_writing_api_token_signs_in_until_it_is_revoked(web: Web) -> None:
    """Revoking the token also closes the app page the browser has open, and its app ends."""
    token = asyncio.run(_tokens_named(web.home.path, "revoked-soon"))
    with client() as http:
        assert http.get(f"{web.url}/?token={token}").status_code == 303
        assert http.get(web.url + "/").status_code == 200
        cookie = http.cookies["dryviq_web"]
    closed, sessions = asyncio.run(_open_app_then_revoke(web, cookie, "revoked-soon"))
    assert closed == aiohttp.WSMsgType.CLOSE
    assert len(sessions) == 1 and all(wait_until_exited(pid, timeout=30) for pid in sessions)
    with client() as http:
        http.cookies.set("dryviq_web", cookie)
        assert http.get(web.url + "/").status_code == 401


async def _open_app_then_revoke(web: Web, cookie: str,
                                name: str) -> tuple[aiohttp.WSMsgType, dict[int, str]]:
    """Open the app's websocket as the page does, wait for the app to draw, revoke the token;
    what the websocket got next, and the app processes that were running."""
    async with aiohttp.ClientSession(cookies={"dryviq_web": cookie}) as session, \
            session.ws_connect(web.url.replace("http", "ws") + "/ws?width=100&height=30",
                               origin=web.url) as ws:
        screen = Screen()
        while JOBS[0] not in screen.since(0):
            screen.received((await asyncio.wait_for(ws.receive(), 60)).data)
        sessions = children_of(web.process.pid)
        await _revoke(web.home.path, name)
        while (message := await asyncio.wait_for(ws.receive(), 30)).type in (
                aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            pass  # the app may still draw until its page is closed
        return message.type, sessions


async def test_a_session_ends_after_12_hours_unused_and_7_days_after_sign_in(
        tmp_path: Path) -> None:
    """The gate itself, its clock moved on rather than waited for, before a stand-in app."""
    async def the_app(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="the app")

    state = await State.open(tmp_path / "state.db")
    now = [0.0]
    gate = Gate(state, loopback_only=True, secure=False, clock=lambda: now[0])
    app = aiohttp.web.Application(middlewares=[gate])
    app.router.add_get("/", the_app)
    try:
        async with TestServer(app) as server, \
                httpx.AsyncClient(base_url=str(server.make_url(""))) as http:
            assert (await http.get(f"/?token={gate.new_link_secret()}")).status_code == 303
            for _ in range(3):  # used every 11 hours: still signed in
                now[0] += 11 * 3600
                assert (await http.get("/")).status_code == 200
            now[0] += 12 * 3600 + 1
            assert (await http.get("/")).status_code == 401
            assert (await http.get(f"/?token={gate.new_link_secret()}")).status_code == 303
            signed_in = now[0]
            while now[0] + 11 * 3600 <= signed_in + 7 * 86400:
                now[0] += 11 * 3600
                assert (await http.get("/")).status_code == 200
            now[0] += 11 * 3600  # used all along, but 7 days are up
            refused = await http.get("/")
            assert refused.status_code == 401 and "Not signed in" in refused.text
    finally:
        await state.close()


async def _tokens_named(home: Path, name: str) -> str:
    state = await State.open(home / "state.db")
    try:
        return (await create_token(state, name, read_only=False))[1]
    finally:
        await state.close()


async def _revoke(home: Path, name: str) -> None:
    state = await State.open(home / "state.db")
    try:
        await revoke_token(state, name)
    finally:
        await state.close()


def test_another_address_needs_tls_or_insecure_http_said_out_loud(home: Home) -> None:
    refused = Cli(home.path)("web", "--host", "0.0.0.0", check=2)
    assert "--insecure-http" in refused.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = Cli(home.path)("web", "--port", str(taken.getsockname()[1]), check=1)
    assert "in use by another program" in busy.stderr
    process, link = start_web(home, "--host", "0.0.0.0", "--insecure-http")
    try:
        assert urlsplit(link).hostname == socket.gethostname()  # a name to browse to
        port = urlsplit(link).port
        with client() as http:  # not bound to loopback: any Host, still behind the gate
            assert http.get(f"http://127.0.0.1:{port}/").status_code == 401
            signed_in = http.get(f"http://127.0.0.1:{port}/?{urlsplit(link).query}",
                                 headers={"Host": f"dryviq.example:{port}"})
            assert signed_in.status_code == 303
    finally:
        err = stop_web(process, home, link)
    assert "warning: serving plain HTTP on 0.0.0.0" in err


def test_under_tls_the_cookie_is_secure_and_the_websocket_wss(home: Home,
                                                              tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    process, link = start_web(home, "--cert", str(cert), "--key", str(key))
    try:
        assert link.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=trusted, follow_redirects=False) as http:
            signed_in = http.get(link)
            assert signed_in.status_code == 303
            assert "; Secure" in signed_in.headers["set-cookie"]
            page = http.get(link.split("/?", 1)[0] + "/")
            assert f'"wss://{urlsplit(link).netloc}/ws"' in page.text
    finally:
        stop_web(process, home, link)


class Screen:
    """What the app drew, from the websocket's frames (the terminal is a canvas)."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    def received(self, payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            self.frames.append(CSI.sub("", payload.decode("utf-8", "replace")))

    def since(self, start: int) -> str:
        return "".join(self.frames[start:])


def wait_for(page, screen: Screen, text: str, start: int = 0, timeout: float = 60) -> float:
    """Seconds until `text` was drawn (frames from `start` on)."""
    began = time.monotonic()
    while text not in screen.since(start):
        assert time.monotonic() - began < timeout, f"{text!r} never drawn"
        page.wait_for_timeout(50)
    return time.monotonic() - began


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_chromium_shows_the_jobs_and_a_key_reaches_the_app(web: Web, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    requested: list[str] = []
    errors: list[str] = []
    screen = Screen()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which(CHROMIUM) or CHROMIUM,
                                             args=HEADLESS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("request", lambda r: requested.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("websocket", lambda ws: (requested.append(ws.url),
                                             ws.on("framereceived", screen.received)))
            opened = time.monotonic()
            page.goto(web.link)
            assert page.url == web.url + "/"  # signed in, the token gone from the address
            wait_for(page, screen, JOBS[0])
            print(f"the jobs screen rendered {time.monotonic() - opened:.2f} s after the "
                  "browser opened the link")
            page.wait_for_timeout(500)  # the fade-in
            page.screenshot(path=str(tmp_path / "web-jobs.png"))
            sessions = children_of(web.process.pid)
            drawn = len(screen.frames)
            page.keyboard.press("c")  # no click first: the page focused the terminal
            wait_for(page, screen, "Account / where", start=drawn)
            page.wait_for_timeout(300)
            page.screenshot(path=str(tmp_path / "web-connections.png"))
            print(f"screenshots: {tmp_path / 'web-jobs.png'}, {tmp_path / 'web-connections.png'}")
            web.process.send_signal(signal.SIGTERM)  # stopping `web` ends the session
            page.wait_for_selector("body.-closed", timeout=30_000)
            assert web.process.wait(timeout=30) == 0
        finally:
            browser.close()
    assert JOBS[1] in screen.since(0)
    assert errors == [], requested
    assert requested and {urlsplit(url).hostname for url in requested} == {"127.0.0.1"}
    assert len(sessions) == 1  # one app process for the browser's session...
    assert all(wait_until_exited(pid, timeout=30) for pid in sessions)  # ...ended with `web`
    assert (tmp_path / "web-jobs.png").stat().st_size > 10_000
