"""How big a request body the API takes: bodies are JSON handlers read and parse whole, so
without a cap one request could make the server hold any amount of memory. A body over the cap
is a 413 in DryvIQ's error envelope: at once when its Content-Length says so (nothing read), or
once a body sent without a length (chunked) has passed the cap. A pure ASGI middleware, so
Server-Sent Events stream through it untouched."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.api.envelope import Problem, error_response

# a job or a connection is a few KB of JSON (the largest, a job with many filters, stays far
# under 100 KB): 1 MiB leaves room for any honest request and keeps a bad one cheap
MAX_BODY = 1024 * 1024


def _too_large(cap: int) -> Problem:
    return Problem("too_large", f"the request body is over {cap} bytes, the most this API "
                                "takes (a job or a connection is a few KB)")


class LimitBody:
    """Refuses request bodies over `cap` bytes before the routes read them."""

    def __init__(self, app: ASGIApp, cap: int = MAX_BODY) -> None:
        self.app = app
        self.cap = cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length is not None:  # the server has checked it is a number and holds to it
            if int(length) > self.cap:
                await error_response(413, [_too_large(self.cap)])(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)  # no body
            return
        messages = await self._read(receive)
        if messages is None:
            await error_response(413, [_too_large(self.cap)])(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _read(self, receive: Receive) -> list[Message] | None:
        """The body's messages, read to its end; None once they pass the cap (the rest is
        left unread)."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.cap:
                return None
            if message["type"] != "http.request" or not message.get("more_body", False):
                return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` for the routes: the messages already read, then the server's own."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
