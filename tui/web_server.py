"""The app in a browser: textual-serve's Server (one `dryviq-tui` process per browser session,
driven over a websocket) behind a gate. Nothing of the app is served to a browser that has
not signed in, with the one-time link printed at start or with an API token that may write
(`dryviq-tui tokens create`); signing in sets a session cookie. Our page uses textual-serve's
local copy of its font, and the Content-Security-Policy forbids every other host."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import html
import logging
import secrets
import shlex
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server

from core.api.auth import is_loopback
from core.api.tokens import TokenChecker, list_tokens
from core.cli import CommandFailed, UsageError, opened_state, stop_on_signals
from core.cli.listening import checked_tls, reachable_name
from core.home import Home
from core.state import State

log = logging.getLogger(__name__)

COOKIE = "dryviq_web"
LINK_LIFETIME = 600.0  # seconds the printed link stays valid (it also works only once)
TEMPLATES = Path(__file__).with_name("web_templates")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _page(status: int, title: str, message: str) -> web.Response:
    """A short page saying why the app is not shown (never any of the app)."""
    body = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1><p>"
            f"{html.escape(message)}</p></body></html>")
    return web.Response(status=status, text=body, content_type="text/html")


NOT_SIGNED_IN = ("Open the link that `dryviq-tui web` printed when it started (it works once), "
                 "or add ?token= with a token from `dryviq-tui tokens create NAME`.")


class Gate:
    """The aiohttp middleware in front of every route. It keeps the printed link's secret
    (hashed) until it is used or expires, and the browser sessions signed in; a session
    opened with an API token ends when that token is revoked."""

    __middleware_version__ = 1  # a new-style aiohttp middleware

    def __init__(self, state: State, *, loopback_only: bool, secure: bool) -> None:
        self.state = state
        self.checker = TokenChecker(state)
        self.loopback_only = loopback_only
        self.secure = secure
        self._link: tuple[str, float] | None = None  # the link secret's digest, its expiry
        self._cookies: dict[str, str | None] = {}  # session cookie -> id of the API token, if any

    def new_link_secret(self) -> str:
        """A secret for the printed link, replacing any earlier one."""
        secret = secrets.token_urlsafe(32)
        self._link = (_digest(secret), time.monotonic() + LINK_LIFETIME)
        return secret

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self._loopback_refusal(request)
        if refusal is not None:
            return refusal
        if "token" in request.query:
            return await self._sign_in(request, request.query["token"])
        if not await self._signed_in(request.cookies.get(COOKIE)):
            return _page(401, "Not signed in", NOT_SIGNED_IN)
        if request.path == "/ws" and request.headers.get("Origin") != \
                f"{request.scheme}://{request.host}":
            return _page(403, "Refused", "The app's websocket answers only its own pages.")
        return await handler(request)

    def _loopback_refusal(self, request: web.Request) -> web.Response | None:
        """Bound to loopback: only this machine, by a loopback name (as core/api/auth.py)."""
        if not self.loopback_only:
            return None
        if not is_loopback(request.remote or ""):
            return _page(403, "Refused", "This server answers only this machine (it is bound "
                                         "to loopback).")
        try:
            host = request.url.host or ""
        except ValueError:
            host = ""
        if not is_loopback(host):
            return _page(403, "Refused", "The Host header names another machine; this server "
                                         "answers only a loopback name (127.0.0.1, localhost, "
                                         "[::1]).")
        return None

    async def _sign_in(self, request: web.Request, secret: str) -> web.StreamResponse:
        token_id: str | None = None
        if self._link is not None and hmac.compare_digest(_digest(secret), self._link[0]) \
                and time.monotonic() < self._link[1]:
            self._link = None  # once only
        else:
            token = await self.checker.check(secret)
            if token is None:
                return _page(401, "Not signed in", "That link or token is not valid: the link "
                             "works once and for 10 minutes; a token may have been revoked. "
                             + NOT_SIGNED_IN)
            if token.read_only:
                return _page(403, "Read-only token", f"The token {token.name!r} is read-only, "
                             "and the app can change things: use a token made without "
                             "--read-only.")
            token_id = token.id
        cookie = secrets.token_urlsafe(32)
        self._cookies[cookie] = token_id
        log.info("web: a browser signed in (%s)",
                 "the printed link" if token_id is None else f"API token {token_id}")
        kept = [(name, value) for name, value in request.query.items() if name != "token"]
        response = web.HTTPSeeOther(str(request.rel_url.with_query(kept or None)))
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict",
                            secure=self.secure, path="/")
        return response

    async def _signed_in(self, cookie: str | None) -> bool:
        if cookie is None or cookie not in self._cookies:
            return False
        token_id = self._cookies[cookie]
        if token_id is None or any(t.id == token_id for t in await list_tokens(self.state)):
            return True
        del self._cookies[cookie]  # its token was revoked
        return False


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


class WebServer(Server):
    """textual-serve's Server with the gate in front and our page template."""

    def __init__(self, command: str, gate: Gate) -> None:
        super().__init__(command, title="dryviq-tui", templates_path=TEMPLATES)
        self.gate = gate
        self._sessions: set[asyncio.Task[object]] = set()  # one per open browser session

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        # again, with `request` in the page's context: the websocket URL names the host the
        # browser used (its cookie is for that host)
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path),
                             context_processors=[aiohttp_jinja2.request_processor])
        app.middlewares.insert(0, self.gate)
        app.on_response_prepare.append(_security_headers)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Silent: serve_web prints the link (textual-serve would print its banner)."""

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        session = asyncio.current_task()
        assert session is not None
        self._sessions.add(session)
        try:
            return await super().handle_websocket(request)
        finally:
            self._sessions.discard(session)

    async def on_shutdown(self, app: web.Application) -> None:
        """End every browser session now (textual-serve then tells its app to quit), rather
        than after the runner's grace period."""
        sessions = list(self._sessions)
        for session in sessions:
            session.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)


def app_command(home: Home, log_level: str) -> str:
    """The shell command textual-serve runs for each browser session: this same dryviq-tui
    (this interpreter, this code) on the same home."""
    return shlex.join([sys.executable, "-m", "tui", "--home", str(home.root),
                       "--log-level", log_level])


def _tls_context(files: tuple[str, str] | None) -> ssl.SSLContext | None:
    if files is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(*files)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--cert/--key: cannot use them for TLS ({exc})") from None
    return context


async def serve_web(args: argparse.Namespace) -> int:
    tls = _tls_context(checked_tls(args))
    if args.insecure_http and not is_loopback(args.host):
        print(f"warning: serving plain HTTP on {args.host}: anyone on the network path can "
              "read the sign-in link and the session", file=sys.stderr)
    async with opened_state(args) as (home, state):
        gate = Gate(state, loopback_only=is_loopback(args.host), secure=tls is not None)
        server = WebServer(app_command(home, getattr(args, "log_level", "info")), gate)
        runner = web.AppRunner(await server._make_app(), access_log=None, shutdown_timeout=5)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, args.host, args.port, ssl_context=tls).start()
            except OSError as exc:
                raise CommandFailed("listen", f"cannot listen on {args.host}:{args.port}: "
                                    f"{exc.strerror or exc}") from None
            port = runner.addresses[0][1]
            scheme = "https" if tls else "http"
            log.info("web: serving the app on %s:%d", args.host, port)
            print(f"{scheme}://{reachable_name(args.host)}:{port}/?token={gate.new_link_secret()}",
                  flush=True)
            print(f"Open that link in a browser within {LINK_LIFETIME / 60:.0f} minutes; it "
                  "works once. Later, or in another browser, use ?token= with a token from "
                  "`dryviq-tui tokens create NAME`. Ctrl-C stops.", file=sys.stderr, flush=True)
            stop = asyncio.Event()
            stop_on_signals(stop, lambda: print("stopping: ending the browser sessions",
                                                file=sys.stderr, flush=True))
            await stop.wait()
        finally:
            await runner.cleanup()
    return 0
