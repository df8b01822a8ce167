"""Signing in to Procore with OAuth 2.0, and keeping the sign-in alive.

authlib does the protocol (authorization URLs, token requests with the client credentials in the
body, as Procore's docs do); this module adds what Procore needs around it. Procore rotates the
refresh token on every refresh and the old one dies at once, even when the answer is lost, so a
refresh is serialized within the process and across processes, the new pair is on disk before its
access token is used, and a process that finds the token already rotated by another uses the
stored one instead of spending a dead refresh token.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import hashlib
import html
import importlib.metadata
import logging
import os
import secrets
import socket
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.client import OAuth2Client

from core.connectors.base import AuthExpired, Retryable
from core.home import Home
from core.state import State, StateError

# authlib 1.9 warns (with an "always" filter of its own) that its httpx support will move to a
# fork; we keep httpx (engineering notes), and users should not see the warning on every command
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

log = logging.getLogger(__name__)

OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"


def _version() -> str:
    try:
        return importlib.metadata.version("dryviq-tui")
    except importlib.metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"dryviq-tui/{_version()} (+https://github.com/dryviq-tui)"

DEFAULT_DOMAIN = "https://api.procore.com"
# Procore's documented lifetime, for an answer that does not state one
DEFAULT_LIFETIME = 5400.0
TIMEOUT = httpx.Timeout(30.0, connect=15.0)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

_LOGIN_HOSTS = {
    "https://api.procore.com": "https://login.procore.com",
    "https://sandbox.procore.com": "https://login-sandbox.procore.com",
    "https://api-monthly.procore.com": "https://login-sandbox-monthly.procore.com",
    # the Federal Zone: its own tenants, apps and credentials (federal_zone_overview.md)
    "https://api.procoregov.com": "https://login.procoregov.com",
}
# where a loopback listener answers for each host a redirect URI may name: `localhost` on both
# loopback addresses, since a browser may resolve it to either
_LISTEN_ON = {"localhost": ("127.0.0.1", "::1"), "127.0.0.1": ("127.0.0.1",), "::1": ("::1",)}
EXAMPLE_REDIRECT = "http://localhost:8765/callback"

CLIENT_REFUSED = ("Procore refused the client credentials: check the Client ID and Client "
                  "Secret")
HOW_TO_SIGN_IN = "(dryviq-tui connections signin NAME, or Sign in again in the app)"
REFRESH_DEAD = ("The Procore sign-in for this connection is no longer valid (the refresh token "
                f"was revoked or already used): sign in again {HOW_TO_SIGN_IN}")
NO_SIGN_IN = f"This connection has no Procore sign-in stored: sign in again {HOW_TO_SIGN_IN}"


class SignInError(Exception):
    """Signing in failed for a reason the user can fix; the message says how (no secrets)."""


class SignInRequired(SignInError, AuthExpired):
    """The stored sign-in is dead: the connector stops, and the user has to sign in again.
    Also a SignInError, so a command that signs in reports both alike."""


def login_base(api_base: str, override: str | None = None) -> str:
    """The OAuth host for an API base: Procore's login hosts are separate from its API hosts,
    while a local sandbox serves both on one address."""
    if override:
        return normalize_domain(override)
    base = api_base.rstrip("/")
    return _LOGIN_HOSTS.get(base.lower(), base)


def normalize_domain(domain: str) -> str:
    """'api.procore.com' or 'https://api.procore.com/' -> 'https://api.procore.com'. Plain http
    is refused except on loopback (the local sandbox): the client secret travels to this host."""
    text = domain.strip()
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if parts.username or parts.password:  # not echoed: it may hold a password
        raise SignInError("A Procore address carries no user name or password: give one like "
                          "https://api.procore.com")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        host = ""
    if not host or parts.path.strip("/") or parts.query or parts.fragment:
        raise SignInError(f"{domain!r} is not a Procore address: give one like "
                          "https://api.procore.com (no path)")
    if scheme != "https" and not (scheme == "http" and host in LOOPBACK_HOSTS):
        raise SignInError(f"{domain!r} does not use https: Procore addresses must, and plain "
                          "http is only allowed for a local sandbox on 127.0.0.1")
    return f"{scheme}://{parts.netloc.lower()}"


@dataclass(frozen=True)
class ClientApp:
    """An API client registered with Procore: the installation's default one or a connection's
    custom one."""

    domain: str  # normalized API base URL
    client_id: str
    client_secret: str = field(repr=False)
    login_url: str | None = None  # override of the login host
    # the loopback redirect URI registered on this app (the installation's [procore] setting)
    redirect_uri: str | None = None

    @property
    def login(self) -> str:
        return login_base(self.domain, self.login_url)

    @property
    def budget_key(self) -> str:
        """One rate-limit budget per client and API host (the port too: sandboxes differ)."""
        return f"{self.client_id}@{urlsplit(self.domain).netloc}"


def system_default_app(config: Mapping[str, Any],
                       environ: Mapping[str, str] = os.environ) -> ClientApp | None:
    """The installation's default client; each DRYVIQ_PROCORE_* variable wins over its key in
    config.toml's [procore] table. None when no client id and secret are configured."""
    table = config.get("procore") or {}

    def setting(key: str) -> str | None:
        value = environ.get(f"DRYVIQ_PROCORE_{key.upper()}") or table.get(key)
        return str(value) if value else None

    client_id, client_secret = setting("client_id"), setting("client_secret")
    if not client_id or not client_secret:
        return None
    return ClientApp(normalize_domain(setting("domain") or DEFAULT_DOMAIN), client_id,
                     client_secret, setting("login_url"), setting("redirect_uri"))


@dataclass
class Token:
    """An access token and what renews it; stored as JSON in the state DB."""

    access_token: str = field(repr=False)
    expires_at: float  # epoch seconds
    refresh_token: str | None = field(default=None, repr=False)
    grant: str = "authorization_code"  # or "client_credentials"

    def to_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "expires_at": self.expires_at,
                "refresh_token": self.refresh_token, "grant": self.grant}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Token:
        return cls(str(data["access_token"]), float(data["expires_at"]),
                   data.get("refresh_token"), str(data.get("grant", "authorization_code")))


def _token(answer: Mapping[str, Any], grant: str) -> Token:
    """A Token from authlib's parse of a token answer; a refresh keeps the user's grant."""
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise ValueError("no access token")
    expires_at = answer.get("expires_at")
    return Token(access, float(expires_at) if expires_at else time.time() + DEFAULT_LIFETIME,
                 answer.get("refresh_token"),
                 "client_credentials" if grant == "client_credentials" else "authorization_code")


class _Through(httpx.AsyncBaseTransport):
    """Sends authlib's requests through the caller's client (its pool, proxies, hooks)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.http.send(request, auth=None, follow_redirects=False, stream=True)
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=response.stream, extensions=response.extensions)


@contextlib.asynccontextmanager
async def _oauth(app: ClientApp, http: httpx.AsyncClient | None,
                 ) -> AsyncIterator[AsyncOAuth2Client]:
    """A short-lived authlib client for one exchange with the login host: refreshes come every
    ninety minutes, so no connection is worth keeping open between them."""
    async with AsyncOAuth2Client(
            client_id=app.client_id, client_secret=app.client_secret,
            token_endpoint_auth_method="client_secret_post",
            revocation_endpoint_auth_method="client_secret_post",
            headers={"User-Agent": USER_AGENT}, timeout=TIMEOUT,
            transport=_Through(http) if http is not None else None) as oauth:
        yield oauth


def _scrub(text: str, hidden: tuple[str | None, ...]) -> str:
    """The server's words with any of our secrets it echoed taken out."""
    for secret in hidden:
        if secret:
            text = text.replace(secret, "…")
    return text


async def _token_request(app: ClientApp, http: httpx.AsyncClient | None, grant: str,
                         call: Callable[[AsyncOAuth2Client], Awaitable[Mapping[str, Any]]], *,
                         renewing: bool, hidden: tuple[str | None, ...] = ()) -> Token:
    """Run one token request and classify its failure once: SignInError while the user signs
    in; SignInRequired or Retryable while a stored sign-in is renewed in the background."""
    host = urlsplit(app.login).netloc
    refused: type[SignInError] = SignInRequired if renewing else SignInError
    hidden = (app.client_secret, *hidden)
    try:
        async with _oauth(app, http) as oauth:
            return _token(await call(oauth), grant)
    except OAuthError as exc:
        if exc.error == "invalid_client":
            raise refused(CLIENT_REFUSED) from None
        said = _scrub(f"{exc.error}: {exc.description}", hidden)
        if grant == "refresh_token" and (exc.error == "invalid_grant"
                                         or "refresh token is invalid" in said.lower()):
            raise SignInRequired(REFRESH_DEAD) from None
        if exc.error == "invalid_grant" and grant == "authorization_code":
            raise SignInError("Procore refused the sign-in code (it is single-use, valid for 10 "
                              "minutes, and only for the sign-in that made it): sign in again"
                              ) from None
        raise refused(f"Procore refused the {grant} grant ({said}): check that this client "
                      "may use it, and sign in again") from None
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        if status >= 500 or status == 429:
            message = f"Procore's login host {host} answered HTTP {status}: try again shortly"
            raise (Retryable if renewing else SignInError)(message) from None
        raise refused(f"Procore's login host {host} refused the {grant} request (HTTP "
                      f"{status}): check the domain and the client credentials") from None
    except httpx.TransportError as exc:
        message = (f"could not reach Procore's login host {host} ({type(exc).__name__}): "
                   "check the network and the domain")
        raise (Retryable if renewing else SignInError)(message) from None
    except ValueError:  # a 2xx answer that is not a token: a proxy's page, a wrong host
        message = f"{host} did not answer like a Procore login host: check the domain"
        raise (Retryable if renewing else SignInError)(message) from None


def authorization_url(app: ClientApp, redirect_uri: str = OOB_REDIRECT) -> tuple[str, str]:
    """(url, state): the URL the user opens to sign in, with a fresh random state. Building a
    URL needs no HTTP client, so authlib's protocol class does it without one."""
    oauth = OAuth2Client(None, client_id=app.client_id, redirect_uri=redirect_uri)
    url, state = oauth.create_authorization_url(f"{app.login}/oauth/authorize")
    return url, state


async def exchange_code(app: ClientApp, code: str, redirect_uri: str = OOB_REDIRECT, *,
                        http: httpx.AsyncClient | None = None) -> Token:
    """Trade the code from the sign-in page (pasted, or from the loopback redirect) for tokens."""
    code = code.strip()
    if not code:
        raise SignInError("No sign-in code was given: paste the code Procore shows after you "
                          "sign in")
    return await _token_request(
        app, http, "authorization_code",
        lambda oauth: oauth.fetch_token(f"{app.login}/oauth/token",
                                        grant_type="authorization_code", code=code,
                                        redirect_uri=redirect_uri),
        renewing=False, hidden=(code,))


async def client_credentials_token(app: ClientApp, *, http: httpx.AsyncClient | None = None,
                                   ) -> Token:
    """A service account's token: no user, no refresh token; the grant is repeated on expiry."""
    return await _grant_client_credentials(app, http, renewing=False)


async def _grant_client_credentials(app: ClientApp, http: httpx.AsyncClient | None, *,
                                    renewing: bool) -> Token:
    return await _token_request(
        app, http, "client_credentials",
        lambda oauth: oauth.fetch_token(f"{app.login}/oauth/token",
                                        grant_type="client_credentials"),
        renewing=renewing)


async def _refresh(app: ClientApp, token: Token, http: httpx.AsyncClient | None) -> Token:
    return await _token_request(
        app, http, "refresh_token",
        lambda oauth: oauth.refresh_token(f"{app.login}/oauth/token",
                                          refresh_token=token.refresh_token),
        renewing=True, hidden=(token.refresh_token, token.access_token))


# an access token this close to expiry may be dead at Procore when the revocation arrives
REVOKE_MARGIN = 60.0


def revocable_credential(token: Token) -> tuple[str, str | None]:
    """(value, token_type_hint) that ends this sign-in at Procore. Its login service revokes an
    access token only while it is valid, answering 200 for an expired one and leaving the
    refresh token of the pair alive; given the refresh token it revokes the pair (RFC 7009
    accepts either). So the access token while it lives, as Procore's docs send it, else the
    refresh token; a service account's token has no refresh token and expires on its own. The
    access token goes without a hint, exactly as the docs send it."""
    if token.refresh_token and token.expires_at - time.time() <= REVOKE_MARGIN:
        return token.refresh_token, "refresh_token"
    return token.access_token, None


async def revoke(app: ClientApp, token: Token, *, http: httpx.AsyncClient | None = None) -> None:
    """End a sign-in at Procore: the access and refresh pair dies together
    (oauth/oauth_endpoints.md), whichever of the two revocable_credential picks."""
    host = urlsplit(app.login).netloc
    value, hint = revocable_credential(token)
    try:
        async with _oauth(app, http) as oauth:
            response = await oauth.revoke_token(f"{app.login}/oauth/revoke", token=value,
                                                token_type_hint=hint)
    except httpx.TransportError as exc:
        raise SignInError(f"could not reach Procore's login host {host} to end the sign-in "
                          f"({type(exc).__name__}): check the network") from None
    if not response.is_success:
        raise SignInError(f"Procore's login host {host} did not end the sign-in (HTTP "
                          f"{response.status_code}): revoke it from Procore's App Management")


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dryviq-tui</title></head>
<body style="font-family: sans-serif; margin: 3em"><h1>{title}</h1><p>{text}</p></body></html>
"""


async def _answer(writer: asyncio.StreamWriter, status: str, title: str, text: str) -> None:
    body = _PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
    writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
                 f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                 "Connection: close\r\n\r\n".encode() + body)
    await writer.drain()


async def _request_target(reader: asyncio.StreamReader) -> str:
    """The target of one HTTP request ('/callback?code=…'); the headers are read and dropped."""
    request_line = (await reader.readline()).decode("latin-1")
    while (await reader.readline()).strip():
        pass
    method, target, _ = request_line.split(" ", 2)
    if method != "GET":
        raise ValueError("not a GET")
    return target


@dataclass(frozen=True)
class LoopbackRedirect:
    """A redirect URI this machine can answer: Procore sends the browser there with the code."""

    uri: str  # exactly as registered on the Procore app: Procore matches it character for
    host: str  # character (oauth/oauth_keys.md), so it is never rewritten
    port: int
    path: str


def loopback_redirect(uri: str) -> LoopbackRedirect:
    """Check that `uri` is a plain-http address on this machine; SignInError says what to fix.
    No port means port 80, as a browser reads it."""
    text = uri.strip()
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    if parts.username or parts.password or parts.fragment:  # not echoed: it may hold a password
        raise SignInError("a redirect URI carries no user name, password or #fragment: give "
                          f"one like {EXAMPLE_REDIRECT}")
    try:
        port = parts.port or 80
    except ValueError:
        raise SignInError(f"the redirect URI {text!r} has an invalid port") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise SignInError(f"the redirect URI {text!r} is not a loopback address: give the "
                          f"http:// address registered on the Procore app, such as "
                          f"{EXAMPLE_REDIRECT}")
    if host not in _LISTEN_ON:
        raise SignInError(f"the redirect URI {text!r} names the host {host!r}: dryviq-tui "
                          "can only answer on this machine (localhost, 127.0.0.1 or [::1]); "
                          f"register one such as {EXAMPLE_REDIRECT} on the Procore app, or "
                          "sign in by pasting the code instead")
    if parts.scheme.lower() != "http":
        raise SignInError(f"the redirect URI {text!r} uses https: the listener on this machine "
                          f"speaks plain http (the code never leaves the machine); register "
                          f"one such as {EXAMPLE_REDIRECT} on the Procore app")
    return LoopbackRedirect(text, host, port, parts.path or "/")


def _bind_failure(redirect: LoopbackRedirect, exc: OSError) -> SignInError:
    where = f"{redirect.host} port {redirect.port}"
    elsewhere = (f"register another redirect URI on the Procore app (such as "
                 f"{EXAMPLE_REDIRECT}) and sign in with that one")
    if exc.errno == errno.EACCES and redirect.port < 1024:
        return SignInError(f"cannot listen on {where} for the sign-in: ports below 1024 need "
                           f"administrator privileges; {elsewhere}")
    if exc.errno == errno.EADDRINUSE:
        return SignInError(f"cannot listen on {where} for the sign-in: another program uses "
                           f"it; stop that program, or {elsewhere}")
    return SignInError(f"cannot listen on {where} for the sign-in ({exc.strerror}); "
                       f"{elsewhere}")


def _listeners(redirect: LoopbackRedirect) -> list[socket.socket]:
    """Sockets bound to every address the redirect's host names. `localhost` needs only one
    of its two (a machine without IPv6 has no ::1), but the first always."""
    bound: list[socket.socket] = []
    for index, address in enumerate(_LISTEN_ON[redirect.host]):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            listener = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # no IPv6 on this machine
            if index == 0:
                raise _bind_failure(redirect, exc) from None
            continue
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            listener.bind((address, redirect.port))
        except OSError as exc:
            listener.close()
            if index == 0 or exc.errno != errno.EADDRNOTAVAIL:
                for other in bound:
                    other.close()
                raise _bind_failure(redirect, exc) from None
            continue
        bound.append(listener)
    return bound


async def loopback_sign_in(app: ClientApp, show_url: Callable[[str], None], redirect_uri: str,
                           *, timeout: float = 300) -> Token:
    """Sign in through a browser on this machine: listen where the registered `redirect_uri`
    points (Procore accepts only registered URIs, exactly, so no port of our choosing), show
    the sign-in URL, and take the code from Procore's redirect, after checking that its state
    is the one this sign-in made (anything else may be a forged or stale answer)."""
    redirect = loopback_redirect(redirect_uri)
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    connections: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(writer)
        try:
            target = urlsplit(await asyncio.wait_for(_request_target(reader), 30))
            query = dict(parse_qsl(target.query))
            if target.path != redirect.path:
                await _answer(writer, "404 Not Found", "Not found", "Nothing here.")
            elif outcome.done():
                await _answer(writer, "409 Conflict", "Sign-in already finished",
                              "dryviq-tui has already had its answer; you can close this tab.")
            # the outcome is settled before the page is written: a browser that leaves early
            # loses its page, not the sign-in
            elif not secrets.compare_digest(query.get("state", "").encode(), state.encode()):
                outcome.set_exception(SignInError(
                    "The sign-in answer did not match this sign-in (state mismatch): it may be "
                    "forged or from an older attempt; sign in again"))
                await _answer(writer, "400 Bad Request", "Sign-in refused",
                              "This answer does not belong to the sign-in dryviq-tui started "
                              "(state mismatch). Start the sign-in again from dryviq-tui.")
            elif "error" in query or not query.get("code"):
                said = query.get("error_description") or query.get("error") or "no code"
                outcome.set_exception(SignInError(
                    f"Procore did not sign you in ({said}): sign in again"))
                await _answer(writer, "400 Bad Request", "Sign-in failed",
                              f"Procore did not sign you in: {said}. Return to dryviq-tui.")
            else:
                outcome.set_result(query["code"])
                await _answer(writer, "200 OK", "Signed in",
                              "dryviq-tui received the sign-in. You can close this tab.")
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError):
            pass  # a stray or broken connection; keep waiting for the real answer
        finally:
            connections.discard(writer)
            writer.close()

    async with contextlib.AsyncExitStack() as servers:
        # each socket's close is on the stack before anything can fail or be cancelled, so no
        # path leaves the port bound (a retry would find it taken)
        listeners = _listeners(redirect)
        for listener in listeners:
            servers.callback(listener.close)
        url, state = authorization_url(app, redirect.uri)
        for listener in listeners:
            # not serving until its close is on the stack too: starting yields to the loop
            server = await asyncio.start_server(serve, sock=listener, start_serving=False)
            await servers.enter_async_context(server)
            await server.start_serving()
        show_url(url)
        try:
            async with asyncio.timeout(timeout):
                code = await outcome
        except TimeoutError:
            raise SignInError(f"No sign-in arrived within {timeout:g} seconds: sign in again "
                              "and finish in the browser sooner") from None
        finally:
            for writer in list(connections):
                writer.close()
    return await exchange_code(app, code, redirect.uri)


class TokenStore(Protocol):
    """Where a connection's token lives between runs."""

    async def load(self) -> Token | None: ...

    async def save(self, token: Token) -> None:
        """Durable when it returns."""
        ...

    def lock(self) -> AbstractAsyncContextManager[None]:
        """Excludes other processes refreshing the same sign-in."""
        ...


class StateTokenStore:
    """A connection's token in the state DB's secrets table (key "token" inside the secrets
    JSON, other keys such as "client_secret" preserved), with a lock that every process that
    may refresh it takes: on a shared state, a PostgreSQL advisory lock (other hosts refresh
    the same sign-in); else a flock on home.root/"locks"/f"token-{connection_id}.lock" taken in
    a thread, so the event loop never blocks while another process refreshes."""

    def __init__(self, state: State, home: Home, connection_id: str) -> None:
        self.state = state
        self.connection_id = connection_id
        self.lock_path = home.root / "locks" / f"token-{connection_id}.lock"

    async def load(self) -> Token | None:
        data = (await self.state.connection_secrets(self.connection_id)).get("token")
        if data is None:
            return None
        try:
            return Token.from_dict(data)
        except (KeyError, TypeError, ValueError):
            raise SignInRequired("The stored Procore sign-in is unreadable: sign in again "
                                 f"{HOW_TO_SIGN_IN}") from None

    async def save(self, token: Token) -> None:
        """Call inside lock() when another process may refresh: it rewrites the secrets JSON."""
        data = await self.state.connection_secrets(self.connection_id)
        data["token"] = token.to_dict()
        await self.state.save_connection_secrets(self.connection_id, data)

    def lock(self) -> AbstractAsyncContextManager[None]:
        return self._database_lock() if self.state.shared else self._file_lock()

    @contextlib.asynccontextmanager
    async def _database_lock(self) -> AsyncIterator[None]:
        """An advisory lock on a connection of its own, held while the lock is: the State's
        connection is shared by this process's coroutines, and a session lock taken there
        would be theirs too. Closing the connection ends the session and lets the lock go,
        also when this process dies."""
        from core import postgres

        assert self.state.url is not None
        try:
            db = await postgres.PostgresConnection.connect(self.state.url)
        except postgres.psycopg.Error as exc:
            raise StateError(f"cannot connect to the {self.state.shared}: "
                             f"{postgres.reason(exc)}") from None
        try:
            await db.execute("SELECT pg_advisory_lock(?, ?)",
                             (TOKEN_LOCK_CLASS, token_lock_key(self.connection_id)))
            yield
        finally:
            await asyncio.shield(db.close())

    @contextlib.asynccontextmanager
    async def _file_lock(self) -> AsyncIterator[None]:
        self.lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        taking = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(taking)
        except BaseException:
            # cancelled while the thread waits: it may still get the lock, and closing the file
            # once it returns lets the lock go
            taking.add_done_callback(functools.partial(_close_when_taken, fd))
            raise
        try:
            yield
        finally:
            os.close(fd)  # releases the flock


# The advisory locks on Procore sign-ins in a shared state: (class, key) as PostgreSQL's
# two-key form takes them, apart from the one-key locks (the schema's migration lock)
TOKEN_LOCK_CLASS = 0x746F6B6E  # "tokn"


def token_lock_key(connection_id: str) -> int:
    """A connection's key in TOKEN_LOCK_CLASS: 32 bits of its id's SHA-256, signed."""
    return int.from_bytes(hashlib.sha256(connection_id.encode()).digest()[:4], "big",
                          signed=True)


def _close_when_taken(fd: int, taking: asyncio.Future[None]) -> None:
    os.close(fd)
    if not taking.cancelled():
        taking.exception()  # retrieved, so a failed flock is not reported as unhandled


class MemoryTokenStore:
    """A token kept in memory, for the sandbox demo and tests that need no file."""

    def __init__(self, token: Token | None = None) -> None:
        self.token = token
        self._lock = asyncio.Lock()

    async def load(self) -> Token | None:
        return self.token

    async def save(self, token: Token) -> None:
        self.token = token

    def lock(self) -> AbstractAsyncContextManager[None]:
        return self._lock


class Authenticator:
    """Hands out a valid access token for one connection."""

    def __init__(self, app: ClientApp, store: TokenStore, *,
                 http: httpx.AsyncClient | None = None, refresh_margin: float = 300.0) -> None:
        self.app = app
        self.store = store
        self.http = http
        self.refresh_margin = refresh_margin
        self._token: Token | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, token: Token) -> bool:
        return token.expires_at - time.time() > self.refresh_margin

    async def access_token(self) -> str:
        """A token valid for at least refresh_margin seconds: refreshes (or, for
        client_credentials, re-grants) when closer to expiry. SignInRequired when there is no
        token or the refresh token is dead."""
        token = self._token
        if token is not None and self._fresh(token):
            return token.access_token
        async with self._lock:
            token = self._token
            if token is None or not self._fresh(token):
                token = await self._stored_or_renewed(self._fresh)
            return token.access_token

    async def after_unauthorized(self, rejected: str) -> str:
        """Called when the API answered 401 to a request made with `rejected`: if the stored
        token is already a different one (another coroutine or process refreshed), use it;
        else refresh once and return the new token."""
        def usable(token: Token) -> bool:
            return token.access_token != rejected and token.expires_at > time.time()

        async with self._lock:
            token = self._token
            if token is None or not usable(token):
                token = await self._stored_or_renewed(usable)
            return token.access_token

    async def _stored_or_renewed(self, usable: Callable[[Token], bool]) -> Token:
        """Under the process lock: the stored token when usable (another process may have just
        rotated it), else a renewed one, saved before anyone uses it."""
        async with self.store.lock():
            token = await self.store.load()
            if token is None:
                raise SignInRequired(NO_SIGN_IN)
            if not usable(token):
                token = await self._renew(token)
                await self.store.save(token)
            self._token = token
            return token

    async def _renew(self, token: Token) -> Token:
        if token.grant == "client_credentials":
            log.info("re-granting the Procore service account token for %s", self.app.budget_key)
            return await _grant_client_credentials(self.app, self.http, renewing=True)
        if not token.refresh_token:
            raise SignInRequired(REFRESH_DEAD)
        log.info("refreshing the Procore sign-in for %s", self.app.budget_key)
        return await _refresh(self.app, token, self.http)
