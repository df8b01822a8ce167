"""The app in a browser: textual-serve's Server (one `dryviq-tui` process per browser session,
driven over a websocket) behind a gate. Nothing of the app is served to a browser that has
not signed in, with the one-time link printed at start or with an API token that may write
(`dryviq-tui tokens create`); signing in sets a session cookie. A session ends (its open
pages closed) when its token is revoked, after 12 hours unused, and 7 days after sign-in. Our
page uses textual-serve's local copy of its font and our own script (focus.js: keys reach the
app without a click first); the Content-Security-Policy forbids every other host and inline
scripts."""

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server

from core.api.auth import is_loopback
from core.api.tokens import TokenChecker, list_tokens
from core.cli import UsageError, opened_state, stop_on_signals
from core.cli.listening import checked_tls, listening_socket, reachable_name
from core.home import Home
from core.state import State

log = logging.getLogger(__name__)

COOKIE = "dryviq_web"
LINK_LIFETIME = 600.0  # seconds the printed link stays valid (it also works only once)
IDLE_LIMIT = 12 * 3600.0  # a session with no request and no open page this long ends
SESSION_LIMIT = 7 * 86400.0  # every session ends this long after its sign-in
WATCH_EVERY = 2.0  # seconds between checks that end lapsed sessions' open pages
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


@dataclass
class _Session:
    """A browser signed in: how (the API token's id, None for the printed link), when, and
    its open app pages (the websocket handlers' tasks)."""

    token_id: str | None
    started: float
    seen: float
    pages: set[asyncio.Task[object]] = field(default_factory=set)


class Gate:
    """The aiohttp middleware in front of every route. It keeps the printed link's secret
    (hashed) until it is used or expires, and the browser sessions signed in. A session ends,
    its open pages closed, when its API token is revoked, after IDLE_LIMIT without a request
    or an open page, and SESSION_LIMIT after sign-in; ending them is `watching`'s job."""

    __middleware_version__ = 1  # a new-style aiohttp middleware

    def __init__(self, state: State, *, loopback_only: bool, secure: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.checker = TokenChecker(state)
        self.loopback_only = loopback_only
        self.secure = secure
        self.clock = clock
        self._link: tuple[str, float] | None = None  # the link secret's digest, its expiry
        self._sessions: dict[str, _Session] = {}  # by session cookie

    def new_link_secret(self) -> str:
        """A secret for the printed link, replacing any earlier one."""
        secret = secrets.token_urlsafe(32)
        self._link = (_digest(secret), self.clock() + LINK_LIFETIME)
        return secret

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self._loopback_refusal(request)
        if refusal is not None:
            return refusal
        if "token" in request.query:
            return await self._sign_in(request, request.query["token"])
        session = await self._session(request.cookies.get(COOKIE))
        if session is None:
            return _page(401, "Not signed in", NOT_SIGNED_IN)
        session.seen = self.clock()
        if request.path != "/ws":
            return await handler(request)
        if request.headers.get("Origin") != f"{request.scheme}://{request.host}":
            return _page(403, "Refused", "The app's websocket answers only its own pages.")
        page = asyncio.current_task()
        assert page is not None
        session.pages.add(page)
        try:
            return await handler(request)
        finally:
            session.pages.discard(page)
            session.seen = self.clock()

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
                and self.clock() < self._link[1]:
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
        now = self.clock()
        self._sessions[cookie] = _Session(token_id, started=now, seen=now)
        log.info("web: a browser signed in (%s)",
                 "the printed link" if token_id is None else f"API token {token_id}")
        kept = [(name, value) for name, value in request.query.items() if name != "token"]
        response = web.Response(status=303, headers={
            "Location": str(request.rel_url.with_query(kept or None))})
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict",
                            secure=self.secure, path="/")
        return response

    async def _session(self, cookie: str | None) -> _Session | None:
        """The live session of `cookie`; one that has lapsed ends here."""
        session = self._sessions.get(cookie or "")
        if session is None:
            return None
        tokens = await self._token_ids([session])
        reason = self._lapse(session, tokens)
        if reason is None:
            return session
        self._end(cookie or "", reason)
        return None

    async def _token_ids(self, sessions: Iterable[_Session]) -> set[str]:
        """The ids of the API tokens not revoked (asked only if a session has a token)."""
        if not any(session.token_id for session in sessions):
            return set()
        return {token.id for token in await list_tokens(self.state)}

    def _lapse(self, session: _Session, tokens: set[str]) -> str | None:
        """Why the session must end, or None while it may go on."""
        now = self.clock()
        if session.token_id is not None and session.token_id not in tokens:
            return "its API token was revoked"
        if now - session.started > SESSION_LIMIT:
            return f"signed in {SESSION_LIMIT / 86400:.0f} days ago"
        if not session.pages and now - session.seen > IDLE_LIMIT:
            return f"unused for {IDLE_LIMIT / 3600:.0f} hours"
        return None

    def _end(self, cookie: str, reason: str) -> None:
        """Forget the session and close its open pages (textual-serve then stops their apps)."""
        session = self._sessions.pop(cookie)
        for page in session.pages:
            page.cancel()
        log.info("web: a browser session ended: %s", reason)

    async def watching(self, app: web.Application) -> AsyncIterator[None]:
        """While the server runs (an aiohttp cleanup context), every WATCH_EVERY seconds end
        the sessions that lapsed: an open page sends no request a check could refuse."""
        async def watch() -> None:
            while True:
                await asyncio.sleep(WATCH_EVERY)
                try:
                    tokens = await self._token_ids(self._sessions.values())
                except Exception:  # a failed check must not end the watching
                    log.exception("web: cannot check the sessions' API tokens")
                    continue
                for cookie, session in list(self._sessions.items()):
                    reason = self._lapse(session, tokens)
                    if reason is not None:
                        self._end(cookie, reason)

        watcher = asyncio.create_task(watch(), name="web sessions")
        yield
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    async def end_all(self) -> None:
        """End every session now, waiting for their pages to close."""
        pages = [page for session in self._sessions.values() for page in session.pages]
        for cookie in list(self._sessions):
            self._end(cookie, "the server stops")
        await asyncio.gather(*pages, return_exceptions=True)


async def _focus_script(request: web.Request) -> web.FileResponse:
    """Our page's one script of its own, served from here since the CSP forbids inline ones."""
    return web.FileResponse(TEMPLATES / "focus.js")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


class WebServer(Server):
    """textual-serve's Server with the gate in front and our page template."""

    def __init__(self, command: str, gate: Gate) -> None:
        super().__init__(command, title="dryviq-tui", templates_path=TEMPLATES)
        self.gate = gate

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        # again, with `request` in the page's context: the websocket URL names the host the
        # browser used (its cookie is for that host)
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path),
                             context_processors=[aiohttp_jinja2.request_processor])
        app.middlewares.insert(0, self.gate)
        app.cleanup_ctx.append(self.gate.watching)
        app.router.add_get("/page/focus.js", _focus_script)
        app.on_response_prepare.append(_security_headers)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Silent: serve_web prints the link (textual-serve would print its banner)."""

    async def on_shutdown(self, app: web.Application) -> None:
        """End every browser session now (textual-serve then tells its app to quit), rather
        than after the runner's grace period."""
        await self.gate.end_all()


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
    with listening_socket(args.host, args.port) as sock:
        async with opened_state(args) as (home, state):
            gate = Gate(state, loopback_only=is_loopback(args.host), secure=tls is not None)
            server = WebServer(app_command(home, getattr(args, "log_level", "info")), gate)
            runner = web.AppRunner(await server._make_app(), access_log=None,
                                   shutdown_timeout=5)
            await runner.setup()
            try:
                await web.SockSite(runner, sock, ssl_context=tls).start()
                _say_where(args.host, sock.getsockname()[1], tls is not None,
                           gate.new_link_secret())
                stop = asyncio.Event()
                stop_on_signals(stop, lambda: print("stopping: ending the browser sessions",
                                                    file=sys.stderr, flush=True))
                await stop.wait()
            finally:
                await runner.cleanup()
    return 0


def _say_where(host: str, port: int, tls: bool, secret: str) -> None:
    """The sign-in link on stdout (alone, for scripts), how to use it on stderr."""
    log.info("web: serving the app on %s:%d", host, port)
    print(f"{'https' if tls else 'http'}://{reachable_name(host)}:{port}/?token={secret}",
          flush=True)
    print(f"Open that link in a browser within {LINK_LIFETIME / 60:.0f} minutes; it "
          "works once. Later, or in another browser, use ?token= with a token from "
          "`dryviq-tui tokens create NAME`. Ctrl-C stops.", file=sys.stderr, flush=True)
