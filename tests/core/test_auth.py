"""Signing in to Procore: the pure rules, then every flow against the sandbox over real HTTP.

The sandbox follows Procore's OAuth endpoints (sign-in form, codes, rotating refresh tokens,
revocation), and its world can expire access tokens or revoke refresh tokens on demand, so each
way a sign-in dies is played out for real rather than mocked.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest

from core.auth import (
    CLIENT_REFUSED,
    OOB_REDIRECT,
    USER_AGENT,
    Authenticator,
    ClientApp,
    MemoryTokenStore,
    SignInError,
    SignInRequired,
    StateTokenStore,
    Token,
    authorization_url,
    client_credentials_token,
    exchange_code,
    login_base,
    loopback_redirect,
    loopback_sign_in,
    normalize_domain,
    revoke,
    system_default_app,
)
from core.connectors.base import AuthExpired, Retryable
from core.home import Home
from core.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_LOGIN,
    SANDBOX_PASSWORD,
    SERVICE_CLIENT_ID,
    SERVICE_CLIENT_SECRET,
)
from core.state import State

# -- the pure rules ------------------------------------------------------------------------


@pytest.mark.parametrize(("api", "login"), [
    ("https://api.procore.com", "https://login.procore.com"),
    ("https://api.procore.com/", "https://login.procore.com"),
    ("https://sandbox.procore.com", "https://login-sandbox.procore.com"),
    ("https://api-monthly.procore.com", "https://login-sandbox-monthly.procore.com"),
    ("https://api.procoregov.com", "https://login.procoregov.com"),  # the Federal Zone
    ("https://API.procoregov.com/", "https://login.procoregov.com"),
    ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
    ("https://procore.example.com/", "https://procore.example.com"),
])
def test_login_base_maps_procore_api_hosts_to_their_login_hosts(api: str, login: str) -> None:
    assert login_base(api) == login


def test_login_base_override_wins() -> None:
    assert login_base("https://api.procore.com", "https://login.example.com/") == \
        "https://login.example.com"
    app = ClientApp("https://api.procore.com", "id", "secret", "https://login.example.com")
    assert app.login == "https://login.example.com"
    assert app.budget_key == "id@api.procore.com"


@pytest.mark.parametrize(("given", "normal"), [
    ("api.procore.com", "https://api.procore.com"),
    ("https://api.procore.com/", "https://api.procore.com"),
    (" HTTPS://API.Procore.com ", "https://api.procore.com"),
    ("http://127.0.0.1:8123/", "http://127.0.0.1:8123"),
    ("http://localhost:8123", "http://localhost:8123"),
    ("http://[::1]:8123", "http://[::1]:8123"),
])
def test_normalize_domain(given: str, normal: str) -> None:
    assert normalize_domain(given) == normal


@pytest.mark.parametrize("bad", ["http://api.procore.com", "http://10.0.0.5:8080",
                                 "ftp://api.procore.com", "https://api.procore.com/rest/v1.0",
                                 "https://user:pw@api.procore.com", "https://x.com:port", ""])
def test_normalize_domain_refuses_plain_http_off_loopback_and_odd_urls(bad: str) -> None:
    with pytest.raises(SignInError) as refused:
        normalize_domain(bad)
    assert ":pw@" not in str(refused.value)


def test_system_default_app_environment_wins_over_config() -> None:
    config = {"procore": {"client_id": "from-config", "client_secret": "config-secret",
                          "domain": "sandbox.procore.com"}}
    app = system_default_app(config, {})
    assert app == ClientApp("https://sandbox.procore.com", "from-config", "config-secret")
    assert app.login == "https://login-sandbox.procore.com"

    environ = {"DRYVIQ_PROCORE_CLIENT_ID": "from-env", "DRYVIQ_PROCORE_CLIENT_SECRET": "env-secret",
               "DRYVIQ_PROCORE_LOGIN_URL": "https://login.example.com"}
    app = system_default_app(config, environ)
    assert app == ClientApp("https://sandbox.procore.com", "from-env", "env-secret",
                            "https://login.example.com")

    app = system_default_app({}, {"DRYVIQ_PROCORE_CLIENT_ID": "a",
                                  "DRYVIQ_PROCORE_CLIENT_SECRET": "b"})
    assert app is not None and app.domain == "https://api.procore.com"


def test_system_default_app_reads_the_redirect_uri() -> None:
    config = {"procore": {"client_id": "a", "client_secret": "b",
                          "redirect_uri": "http://localhost:8765/callback"}}
    app = system_default_app(config, {})
    assert app is not None and app.redirect_uri == "http://localhost:8765/callback"
    app = system_default_app(config, {"DRYVIQ_PROCORE_REDIRECT_URI": "http://127.0.0.1:9/cb"})
    assert app is not None and app.redirect_uri == "http://127.0.0.1:9/cb"
    app = system_default_app({"procore": {"client_id": "a", "client_secret": "b"}}, {})
    assert app is not None and app.redirect_uri is None


@pytest.mark.parametrize(("uri", "host", "port", "path"), [
    ("http://localhost:8765/callback", "localhost", 8765, "/callback"),
    ("http://localhost", "localhost", 80, "/"),  # Procore's default registration: port 80
    ("http://127.0.0.1:9000", "127.0.0.1", 9000, "/"),
    ("http://[::1]:9000/oauth/cb?app=x", "::1", 9000, "/oauth/cb"),
    (" http://LocalHost:8765/callback ", "localhost", 8765, "/callback"),
])
def test_loopback_redirect_takes_a_loopback_uri_as_registered(uri: str, host: str, port: int,
                                                              path: str) -> None:
    redirect = loopback_redirect(uri)
    assert (redirect.uri, redirect.host, redirect.port, redirect.path) == (
        uri.strip(), host, port, path)


@pytest.mark.parametrize(("uri", "says"), [
    ("http://example.com:8765/callback", "only answer on this machine"),
    ("http://10.0.0.5:8765/callback", "only answer on this machine"),
    ("https://localhost:8765/callback", "speaks plain http"),
    (OOB_REDIRECT, "not a loopback address"),
    ("localhost:8765", "not a loopback address"),
    ("http://localhost:http/cb", "invalid port"),
    ("http://user:pw@localhost:8765/cb", "user name"),
])
def test_loopback_redirect_refuses_what_cannot_reach_this_machine(uri: str, says: str) -> None:
    with pytest.raises(SignInError, match=says) as refused:
        loopback_redirect(uri)
    assert "pw@" not in str(refused.value)


def test_system_default_app_is_none_without_credentials() -> None:
    assert system_default_app({}, {}) is None
    assert system_default_app({"procore": {"client_id": "only-id"}}, {}) is None


def test_token_round_trips_and_no_secret_is_in_a_repr() -> None:
    token = Token("access-SECRET", 1234.5, "refresh-SECRET", "authorization_code")
    assert Token.from_dict(token.to_dict()) == token
    assert Token.from_dict({"access_token": "a", "expires_at": 1}) == Token("a", 1.0)
    app = ClientApp("https://api.procore.com", "id", "client-SECRET")
    for text in (repr(token), str(token), repr(app), repr(MemoryTokenStore(token))):
        assert "SECRET" not in text
    assert isinstance(SignInRequired("x"), AuthExpired)
    assert isinstance(SignInRequired("x"), SignInError)


def test_user_agent_names_the_app() -> None:
    assert re.fullmatch(r"dryviq-tui/\S+ \(\+https://github\.com/dryviq-tui\)", USER_AGENT)


def test_authorization_url_carries_a_fresh_state() -> None:
    app = ClientApp("https://api.procore.com", "the-id", "the-secret")
    url, state = authorization_url(app)
    _, other = authorization_url(app)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "login.procore.com",
                                                        "/oauth/authorize")
    assert query == {"response_type": ["code"], "client_id": ["the-id"],
                     "redirect_uri": [OOB_REDIRECT], "state": [state]}
    assert state != other and len(state) >= 20
    assert "the-secret" not in url


# -- the token store's cross-process lock --------------------------------------------------


async def test_state_store_lock_excludes_another_store_without_blocking_the_loop(
        tmp_path: Path) -> None:
    state = await State.open(tmp_path / "state.db")
    try:
        connection = await state.add_connection("p", "procore", {})
        home = Home(tmp_path)
        first, second = (StateTokenStore(state, home, connection.id) for _ in range(2))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        async with first.lock():
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    async with second.lock():
                        pass
        ticker.cancel()
        assert ticks >= 10  # the loop ran while the second store waited for the lock
        # the abandoned wait let go of the lock once it got it: it can be taken again
        async with asyncio.timeout(5), second.lock():
            pass
    finally:
        await state.close()


# -- against the sandbox -------------------------------------------------------------------


class _SignInForm(HTMLParser):
    """Where the sign-in page's form posts, and its hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.action = found.get("action") or ""
        elif tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.hidden[str(found["name"])] = found.get("value") or ""


async def sign_in_in_browser(url: str) -> httpx.Response:
    """What the user does in a browser: open the URL, fill in the sign-in form, follow where
    Procore sends the browser (its code page, or the app's loopback address)."""
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        page = await browser.get(url)
        assert page.status_code == 200, page.text
        form = _SignInForm()
        form.feed(page.text)
        return await browser.post(urljoin(str(page.url), form.action), data={
            **form.hidden, "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD})


def shown_code(page: httpx.Response) -> str:
    found = re.search(r'<code id="authorization-code">([^<]+)</code>', page.text)
    assert found is not None, page.text
    return html.unescape(found.group(1))


async def me(sandbox, access_token: str, company: int | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access_token}"}
    if company is not None:
        headers["Procore-Company-Id"] = str(company)
    async with httpx.AsyncClient() as client:
        return await client.get(f"{sandbox.url}/rest/v1.0/me", headers=headers)


class LoginTraffic:
    """An HTTP client for the module to send through, recording what reached the login host."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.http = httpx.AsyncClient(event_hooks={"request": [self._record]})

    async def _record(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def grants(self, grant: str) -> int:
        return sum(f"grant_type={grant}".encode() in r.content for r in self.requests)


@pytest.fixture
async def traffic() -> AsyncIterator[LoginTraffic]:
    recorder = LoginTraffic()
    yield recorder
    await recorder.http.aclose()


@pytest.fixture
def app(sandbox) -> ClientApp:
    return ClientApp(normalize_domain(sandbox.url), SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)


@pytest.fixture
def service(sandbox) -> ClientApp:
    return ClientApp(normalize_domain(sandbox.url), SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET)


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[State]:
    opened = await State.open(tmp_path / "state.db")
    yield opened
    await opened.close()


async def signed_in(sandbox, app: ClientApp) -> Token:
    """A fresh sign-in, as if the user had pasted the code."""
    return await exchange_code(app, sandbox.world.issue_code(app.client_id, OOB_REDIRECT))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def registered_callback(sandbox, host: str = "localhost") -> str:
    """A loopback redirect URI on a free port, registered on the sandbox's app as its
    developer would in Procore's portal."""
    uri = f"http://{host}:{free_port()}/callback"
    sandbox.world.register_redirect_uri(SANDBOX_CLIENT_ID, uri)
    return uri


async def test_out_of_band_sign_in_gives_a_token_that_works(sandbox, app: ClientApp,
                                                            traffic: LoginTraffic) -> None:
    url, _ = authorization_url(app)
    code = shown_code(await sign_in_in_browser(url))
    token = await exchange_code(app, f" {code}\n", http=traffic.http)  # as pasted
    assert token.grant == "authorization_code" and token.refresh_token
    assert 5300 < token.expires_at - time.time() <= 5400
    answer = await me(sandbox, token.access_token)
    assert answer.status_code == 200 and answer.json()["login"] == SANDBOX_LOGIN
    # the client credentials travel in the body (client_secret_post), never as Basic auth
    [sent] = traffic.requests
    assert sent.url.path == "/oauth/token" and "authorization" not in sent.headers
    assert parse_qs(sent.content.decode())["client_secret"] == [SANDBOX_CLIENT_SECRET]
    # a code works once
    with pytest.raises(SignInError, match="sign-in code") as refused:
        await exchange_code(app, code, http=traffic.http)
    assert code not in str(refused.value)
    assert {r.headers["user-agent"] for r in traffic.requests} == {USER_AGENT}


async def test_loopback_sign_in_takes_the_code_from_the_browser_redirect(
        sandbox, app: ClientApp) -> None:
    browser: list[asyncio.Task[httpx.Response]] = []
    shown: list[str] = []

    async def stray_then_sign_in(url: str) -> httpx.Response:
        callback = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        async with httpx.AsyncClient() as client:  # a browser asks for a favicon too
            assert (await client.get(urljoin(callback, "/favicon.ico"))).status_code == 404
        return await sign_in_in_browser(url)

    def show_url(url: str) -> None:
        shown.append(url)
        browser.append(asyncio.create_task(stray_then_sign_in(url)))

    callback = registered_callback(sandbox)
    token = await loopback_sign_in(app, show_url, callback, timeout=30)
    page = await browser[0]
    assert page.status_code == 200 and "You can close this tab" in page.text
    assert parse_qs(urlsplit(shown[0]).query)["redirect_uri"] == [callback]  # as registered
    assert (await me(sandbox, token.access_token)).status_code == 200


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_a_localhost_redirect_is_answered_on_both_loopback_addresses(
        sandbox, app: ClientApp, address: str) -> None:
    """A browser may resolve localhost to either; the code arrives by whichever it picks."""
    if address == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    callback = registered_callback(sandbox)
    port = urlsplit(callback).port
    browser: list[asyncio.Task[httpx.Response]] = []

    async def sign_in_then_visit(url: str) -> httpx.Response:
        async with httpx.AsyncClient() as web:
            page = await web.get(url)
            form = _SignInForm()
            form.feed(page.text)
            signed = await web.post(urljoin(str(page.url), form.action), data={
                **form.hidden, "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD})
            location = urlsplit(signed.headers["location"])
            host = f"[{address}]" if ":" in address else address
            return await web.get(location._replace(netloc=f"{host}:{port}").geturl())

    token = await loopback_sign_in(
        app, lambda url: browser.append(asyncio.create_task(sign_in_then_visit(url))),
        callback, timeout=30)
    assert (await browser[0]).status_code == 200
    assert (await me(sandbox, token.access_token)).status_code == 200


async def test_an_unregistered_redirect_uri_gets_an_error_page_and_no_code(
        sandbox, app: ClientApp) -> None:
    callback = f"http://localhost:{free_port()}/callback"  # not registered on the app
    pages: list[httpx.Response] = []

    async def open_in_browser(url: str) -> None:
        async with httpx.AsyncClient() as web:
            pages.append(await web.get(url))

    def show_url(url: str) -> None:
        asyncio.get_running_loop().create_task(open_in_browser(url))

    with pytest.raises(SignInError, match="No sign-in arrived"):
        await loopback_sign_in(app, show_url, callback, timeout=1)
    [page] = pages
    assert page.status_code == 400 and "redirect uri" in page.text.lower()
    assert not sandbox.world.codes


async def test_a_port_in_use_is_named(app: ClientApp) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SignInError, match=f"127.0.0.1 port {port}.*another program"):
            await loopback_sign_in(app, lambda url: None, f"http://127.0.0.1:{port}/cb")


def loopback_addresses(host: str) -> list[str]:
    """The addresses a listener for `host` binds on this machine (::1 only with IPv6)."""
    if host != "localhost":
        return [host]
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return ["127.0.0.1"]
    return ["127.0.0.1", "::1"]


def assert_port_free(addresses: list[str], port: int) -> None:
    """Binding the port again works on every address: nothing of the sign-in holds it."""
    for address in addresses:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
            probe.bind((address, port))
            probe.listen()


async def test_a_cancelled_loopback_sign_in_frees_its_port_wherever_it_stops(
        app: ClientApp) -> None:
    """The app restarts a sign-in when its button is pressed again: cancelled at any point
    before the browser answers, the sign-in leaves the port free for the retry."""
    port = free_port()
    addresses = loopback_addresses("localhost")
    steps = 0
    while True:
        shown: list[str] = []
        task = asyncio.create_task(
            loopback_sign_in(app, shown.append, f"http://localhost:{port}/cb", timeout=30))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert_port_free(addresses, port)
        if shown:  # cancelled while waiting for the browser: every earlier point is covered
            break
        steps += 1
    assert steps > len(addresses), steps  # it stopped inside the start of each server


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_server_that_fails_to_start_leaves_no_port_bound(
        app: ClientApp, host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last listener's server fails to start (the others started): every socket closes."""
    addresses = loopback_addresses(host)
    real_start, started = asyncio.start_server, []

    async def start_or_fail(*args: Any, **kwargs: Any) -> asyncio.Server:
        started.append(kwargs["sock"])
        if len(started) == len(addresses):
            raise OSError(24, "Too many open files")
        return await real_start(*args, **kwargs)

    monkeypatch.setattr(asyncio, "start_server", start_or_fail)
    port = free_port()
    with pytest.raises(OSError, match="Too many open files"):
        await loopback_sign_in(app, lambda url: None, f"http://{host}:{port}/cb", timeout=30)
    assert len(started) == len(addresses)
    assert_port_free(addresses, port)


def test_port_80_without_privileges_says_so(tmp_path: Path) -> None:
    """Procore registers http://localhost (port 80) by default; an unprivileged user cannot
    listen there, and is told why and what to register instead."""
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 80:
        pytest.skip("this machine lets anyone listen on port 80")
    script = ("from core.auth import SignInError, _listeners, loopback_redirect\n"
              "try:\n    _listeners(loopback_redirect('http://localhost/callback'))\n"
              "except SignInError as exc:\n    print(exc)\n")
    argv = [sys.executable, "-c", script]
    if os.getuid() == 0:  # root may bind low ports: take that privilege away, as a user lacks it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop the privilege")
        argv = ["setpriv", "--bounding-set=-net_bind_service", *argv]
    root = Path(__file__).parents[2]
    done = subprocess.run(argv, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert "localhost port 80" in done.stdout and "administrator privileges" in done.stdout
    assert "http://localhost:8765/callback" in done.stdout


async def test_loopback_sign_in_refuses_an_answer_for_another_state(
        sandbox, app: ClientApp) -> None:
    browser: list[asyncio.Task[httpx.Response]] = []

    def show_url(url: str) -> None:
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"state": "förged"}
        forged = urlunsplit(parts._replace(query=urlencode(query)))
        browser.append(asyncio.create_task(sign_in_in_browser(forged)))

    with pytest.raises(SignInError, match="state mismatch"):
        await loopback_sign_in(app, show_url, registered_callback(sandbox), timeout=30)
    page = await browser[0]
    assert page.status_code == 400 and "state mismatch" in page.text


async def test_loopback_sign_in_gives_up_when_no_answer_comes(app: ClientApp) -> None:
    with pytest.raises(SignInError, match="No sign-in arrived"):
        await loopback_sign_in(app, lambda url: None, f"http://127.0.0.1:{free_port()}/",
                               timeout=0.2)


async def test_refresh_rotates_the_pair_and_stores_it_before_use(
        sandbox, app: ClientApp, state: State, tmp_path: Path, traffic: LoginTraffic) -> None:
    connection = await state.add_connection("site", "procore", {})
    await state.save_connection_secrets(connection.id, {"client_secret": "kept"})
    store = StateTokenStore(state, Home(tmp_path), connection.id)
    signed = await signed_in(sandbox, app)
    await store.save(replace(signed, expires_at=time.time() + 60))  # inside the margin
    auth = Authenticator(app, store, http=traffic.http)

    access = await auth.access_token()
    stored = await store.load()
    assert stored is not None and access == stored.access_token != signed.access_token
    assert stored.refresh_token and stored.refresh_token != signed.refresh_token
    assert stored.grant == "authorization_code"
    assert (await state.connection_secrets(connection.id))["client_secret"] == "kept"
    assert (await me(sandbox, access)).status_code == 200
    assert await auth.access_token() == access and traffic.grants("refresh_token") == 1
    # the old refresh token died with the rotation
    stale = Authenticator(app, MemoryTokenStore(replace(signed, expires_at=0)))
    with pytest.raises(SignInRequired, match="no longer valid"):
        await stale.access_token()


async def test_after_unauthorized_refreshes_once_and_hands_out_the_new_token(
        sandbox, app: ClientApp, traffic: LoginTraffic) -> None:
    auth = Authenticator(app, MemoryTokenStore(await signed_in(sandbox, app)), http=traffic.http)
    first = await auth.access_token()
    sandbox.world.expire_access_tokens()
    assert (await me(sandbox, first)).status_code == 401

    renewed = await auth.after_unauthorized(first)
    assert renewed != first and (await me(sandbox, renewed)).status_code == 200
    # other requests that failed with the old token get the new one without a second refresh
    assert await auth.after_unauthorized(first) == renewed
    assert await auth.access_token() == renewed
    assert traffic.grants("refresh_token") == 1


async def test_two_processes_on_one_sign_in_both_survive_a_rotation(
        sandbox, app: ClientApp, tmp_path: Path, traffic: LoginTraffic) -> None:
    home = Home(tmp_path)
    states = [await State.open(tmp_path / "state.db") for _ in range(2)]
    try:
        connection = await states[0].add_connection("site", "procore", {})
        stores = [StateTokenStore(s, home, connection.id) for s in states]
        await stores[0].save(await signed_in(sandbox, app))
        first, second = (Authenticator(app, store, http=traffic.http) for store in stores)
        old = await first.access_token()
        assert await second.access_token() == old

        sandbox.world.expire_access_tokens()
        renewed = await asyncio.gather(first.after_unauthorized(old),
                                       second.after_unauthorized(old))
        assert renewed[0] == renewed[1] != old
        assert traffic.grants("refresh_token") == 1  # the second took the stored token

        # the same when the margin, not a 401, triggers it: one refreshes, the other follows
        stored = await stores[0].load()
        assert stored is not None
        await stores[0].save(replace(stored, expires_at=time.time() + 60))
        later = [Authenticator(app, store, http=traffic.http) for store in stores]
        newest = await asyncio.gather(*(auth.access_token() for auth in later))
        assert newest[0] == newest[1] != renewed[0]
        assert traffic.grants("refresh_token") == 2
        assert (await me(sandbox, newest[0])).status_code == 200
    finally:
        for opened in states:
            await opened.close()


async def test_a_revoked_refresh_token_asks_for_a_new_sign_in(sandbox, app: ClientApp) -> None:
    signed = await signed_in(sandbox, app)
    auth = Authenticator(app, MemoryTokenStore(signed))
    sandbox.world.expire_access_tokens()
    sandbox.world.revoke_refresh_tokens()
    with pytest.raises(SignInRequired) as dead:
        await auth.after_unauthorized(signed.access_token)
    message = str(dead.value)
    assert isinstance(dead.value, AuthExpired)
    assert "no longer valid" in message and "sign in again" in message
    assert signed.refresh_token is not None and signed.refresh_token not in message
    assert signed.access_token not in message


async def test_revoke_ends_the_sign_in(sandbox, app: ClientApp, traffic: LoginTraffic) -> None:
    signed = await signed_in(sandbox, app)
    await revoke(app, signed, http=traffic.http)
    assert (await me(sandbox, signed.access_token)).status_code == 401
    with pytest.raises(SignInRequired):
        await Authenticator(app, MemoryTokenStore(replace(signed, expires_at=0))).access_token()
    assert [r.url.path for r in traffic.requests] == ["/oauth/revoke"]
    assert traffic.requests[0].headers["user-agent"] == USER_AGENT
    # the access token while it is valid, as Procore's docs and its SDK send it (no hint);
    # the pair dies together
    assert parse_qs(traffic.requests[0].content.decode()) == {
        "token": [signed.access_token], "client_id": [app.client_id],
        "client_secret": [app.client_secret]}
    assert not sandbox.world.tokens[signed.access_token].refresh_alive


DAY = 86400.0


async def test_the_sandbox_like_procore_revokes_nothing_for_an_expired_access_token(
        sandbox, app: ClientApp) -> None:
    """Doorkeeper, which Procore's login service behaves like, revokes an access token only
    while it is valid and still answers 200: the refresh token of the pair lives on."""
    signed = await signed_in(sandbox, app)
    sandbox.world.clock = lambda: time.time() + DAY
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{sandbox.url}/oauth/revoke", data={
            "token": signed.access_token, "client_id": app.client_id,
            "client_secret": app.client_secret})
    assert answer.status_code == 200
    renewed = await Authenticator(app, MemoryTokenStore(replace(signed, expires_at=0))
                                  ).access_token()
    assert (await me(sandbox, renewed)).status_code == 200


@pytest.mark.parametrize("left", [-DAY, 30.0], ids=["expired a day ago", "about to expire"])
async def test_revoke_without_a_valid_access_token_ends_the_sign_in_by_its_refresh_token(
        sandbox, app: ClientApp, traffic: LoginTraffic, left: float) -> None:
    """A connection removed long after its last run: the refresh token ends the pair."""
    signed = await signed_in(sandbox, app)
    aged = replace(signed, expires_at=time.time() + left)
    sandbox.world.clock = lambda: signed.expires_at - left  # the same moment at Procore
    await revoke(app, aged, http=traffic.http)
    sent = parse_qs(traffic.requests[0].content.decode())
    assert sent["token"] == [signed.refresh_token]
    assert sent["token_type_hint"] == ["refresh_token"]
    with pytest.raises(SignInRequired, match="no longer valid"):
        await Authenticator(app, MemoryTokenStore(aged)).access_token()


async def test_a_wrong_client_secret_is_named_without_echoing_it(sandbox, app: ClientApp,
                                                                 service: ClientApp) -> None:
    secret = "wrong-secret-0123456789"
    code = sandbox.world.issue_code(app.client_id, OOB_REDIRECT)
    with pytest.raises(SignInError) as refused:
        await exchange_code(replace(app, client_secret=secret), code)
    assert str(refused.value) == CLIENT_REFUSED
    assert "Client ID and Client Secret" in str(refused.value)
    for text in (str(refused.value), repr(refused.value)):
        assert secret not in text and code not in text

    with pytest.raises(SignInError, match="client credentials"):
        await client_credentials_token(replace(service, client_secret=secret))
    # while renewing a stored sign-in, the connector is told the sign-in no longer works
    stored = replace(await signed_in(sandbox, app), expires_at=0)
    auth = Authenticator(replace(app, client_secret=secret), MemoryTokenStore(stored))
    with pytest.raises(SignInRequired, match="Client ID and Client Secret") as required:
        await auth.access_token()
    assert secret not in str(required.value)


async def test_client_credentials_grant_works_and_is_repeated_on_expiry(
        sandbox, service: ClientApp, app: ClientApp, traffic: LoginTraffic) -> None:
    token = await client_credentials_token(service, http=traffic.http)
    assert token.grant == "client_credentials" and token.refresh_token is None
    company = sandbox.world.service_user.company_ids[0]
    # a service account names its company even on /me (DMSA); without it, refused
    assert (await me(sandbox, token.access_token, company)).status_code == 200
    missing = await me(sandbox, token.access_token)
    assert (missing.status_code, missing.text) == (400, "Missing Procore-Company-Id header!")

    auth = Authenticator(service, MemoryTokenStore(token), http=traffic.http)
    sandbox.world.expire_access_tokens()
    again = await auth.after_unauthorized(token.access_token)
    assert again != token.access_token
    assert (await me(sandbox, again, company)).status_code == 200

    expiring = Authenticator(service, MemoryTokenStore(replace(token, expires_at=time.time())),
                             http=traffic.http)
    third = await expiring.access_token()
    assert third not in (token.access_token, again)
    assert traffic.grants("client_credentials") == 3 and traffic.grants("refresh_token") == 0
    # a user's app may not use the grant: the message says so
    with pytest.raises(SignInError, match="client_credentials grant"):
        await client_credentials_token(app)


async def test_no_stored_sign_in_asks_for_one(app: ClientApp) -> None:
    with pytest.raises(SignInRequired, match="sign in"):
        await Authenticator(app, MemoryTokenStore()).access_token()


async def test_an_unreachable_login_host_during_refresh_is_retryable() -> None:
    port = free_port()
    app = ClientApp(f"http://127.0.0.1:{port}", "id", "client-secret-value")
    stored = Token("access-token-value", 0, "refresh-token-value")
    with pytest.raises(Retryable, match=f"127.0.0.1:{port}") as failed:
        await Authenticator(app, MemoryTokenStore(stored)).access_token()
    for secret in ("client-secret-value", "access-token-value", "refresh-token-value"):
        assert secret not in str(failed.value)


class _FailingStore(MemoryTokenStore):
    async def save(self, token: Token) -> None:
        raise OSError("disk full")


async def test_a_token_that_could_not_be_saved_is_not_used(sandbox, app: ClientApp) -> None:
    signed = replace(await signed_in(sandbox, app), expires_at=0)
    store = _FailingStore(signed)
    auth = Authenticator(app, store)
    with pytest.raises(OSError, match="disk full"):
        await auth.access_token()
    assert store.token == signed
    # nothing was handed out: the next call tries the stored (now rotated away) refresh token
    with pytest.raises(SignInRequired):
        await auth.access_token()
