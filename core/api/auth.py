"""Who may call the API: every request carries `Authorization: Bearer <token>` (401 without a
valid one; 403 for a read-only token on anything but a read). Bound to loopback, the server
also refuses requests from other addresses and with a Host that is not a loopback name (a web
page on another site that resolves its name to 127.0.0.1 cannot reach it: DNS rebinding).
A pure ASGI middleware, so Server-Sent Events stream through it untouched."""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from core.api.envelope import Problem, error_response
from core.api.tokens import ApiToken, TokenChecker

READS = frozenset({"GET", "HEAD", "OPTIONS"})
# what needs no token: the API's description, and the sign-in page (which checks its own
# one-time link, core/api/signin.py)
PUBLIC_PATHS = frozenset({"/v1/openapi.json"})
PUBLIC_PREFIXES = ("/signin/",)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_NAMES


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _host_name(headers: dict[bytes, bytes]) -> str:
    host = headers.get(b"host", b"").decode("latin-1")
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Authenticate:
    """Checks each HTTP request before the routes see it; the token found is in
    `scope["state"]["token"]` for the handlers."""

    def __init__(self, app: ASGIApp, checker: TokenChecker, *, loopback_only: bool) -> None:
        self.app = app
        self.checker = checker
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        refused = self._refusal(scope, headers)
        token: ApiToken | None = None
        if refused is None and not _public(scope["path"]):
            token, refused = await self._token(scope, headers)
        if refused is not None and scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        if refused is not None:
            await refused(scope, receive, send)
            return
        scope.setdefault("state", {})["token"] = token
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> Any:
        if not self.loopback_only:
            return None
        client = scope.get("client")
        if client and not is_loopback(client[0]):
            return error_response(403, [Problem(
                "not_loopback", "this server answers only this machine (it is bound to "
                "loopback); serve with --host and TLS to reach it from elsewhere")])
        if not is_loopback(_host_name(headers)):
            return error_response(403, [Problem(
                "bad_host", "the Host header names another machine; this server is bound to "
                "loopback and answers only a loopback name (127.0.0.1, localhost, [::1])")])
        return None

    async def _token(self, scope: Scope,
                     headers: dict[bytes, bytes]) -> tuple[ApiToken | None, Any]:
        scheme, _, secret = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="dryviq-tui"'}
        if scheme.lower() != "bearer" or not secret.strip():
            return None, error_response(401, [Problem(
                "unauthorized", "send a token: Authorization: Bearer <token> (make one with "
                "`dryviq-tui tokens create NAME`)")], challenge)
        token = await self.checker.check(secret.strip())
        if token is None:
            return None, error_response(401, [Problem(
                "unauthorized", "that token is not valid (revoked, or mistyped)")], challenge)
        if token.read_only and scope.get("method", "GET") not in READS:
            return token, error_response(403, [Problem(
                "read_only", f"the token {token.name!r} is read-only: it may not "
                f"{scope.get('method')} (make one without --read-only)")])
        return token, None
