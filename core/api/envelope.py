"""DryvIQ's response shapes, and the errors every handler raises.

A single object comes wrapped as `{"status": 200, "type": "job", "job": {…}}`; a list as
`{"status": 200, "type": "jobs", "jobs": […], "meta": {offset, limit, total_count, has_more,
links}}` (the skysync-cli SDK reads `result[result.type]` and `meta`); an error as
`{"status": 400, "type": "error", "errors": [{"code", "description", "field"}]}` (the SDK shows
`errors[0].description`). Fields in errors are JSON paths of the request body (`transfer.source.
connection.id`) or query parameter names (`limit`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class FastJSON(JSONResponse):
    """JSON written by orjson: the same compact UTF-8 text as Starlette's (no NaN), in a tenth
    of the time, which a page of 100 items or executions spends mostly on. What orjson does
    not take (an integer past 64 bits, a key that is not a string) falls back to json."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(content)


class Serialized:
    """Objects of a list kept as their JSON (orjson fragments), by a key that holds everything
    each was made from: a page of 100 items or executions then costs a look-up per object
    instead of building and encoding it (two thirds of such a request's time). A changed
    record has another key, so nothing kept is ever stale; the oldest go past `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._kept: dict[Hashable, orjson.Fragment] = {}

    def get(self, key: Hashable, make: Callable[[], Any]) -> orjson.Fragment:
        kept = self._kept.get(key)
        if kept is None:
            kept = orjson.Fragment(orjson.dumps(make()))
            if len(self._kept) >= self.capacity:
                del self._kept[next(iter(self._kept))]
            self._kept[key] = kept
        return kept


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: a stable code, what is wrong, and where."""

    code: str
    description: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "description": self.description, "field": self.field}


class ApiError(Exception):
    """Raised by a handler; the app turns it into the error envelope with `status`."""

    def __init__(self, status: int, description: str, *, code: str | None = None,
                 field: str | None = None, problems: Sequence[Problem] = ()) -> None:
        super().__init__(description)
        self.status = status
        self.problems = list(problems) or [Problem(code or _CODES.get(status, "error"),
                                                   description, field)]


_CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid",
          500: "internal", 503: "unavailable"}


def not_found(what: str, value: str, field: str = "id") -> ApiError:
    return ApiError(404, f"no {what} {value!r}", field=field)


def error_response(status: int, problems: Sequence[Problem],
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": status, "type": "error",
                         "errors": [problem.as_dict() for problem in problems]},
                        status_code=status, headers=headers)


def single(kind: str, body: dict[str, Any], status: int = 200) -> JSONResponse:
    """One object of type `kind` ("job", "connection", "execution", …)."""
    return FastJSON({"status": status, "type": kind, kind: body}, status_code=status)


@dataclass(frozen=True)
class Page:
    """The offset and limit a list request asked for (`?offset=&limit=`)."""

    offset: int
    limit: int


def page_of(request: Request) -> Page:
    """The request's paging, checked: a bad value is a 400 naming the parameter."""
    offset = whole_number(request, "offset", 0)
    limit = whole_number(request, "limit", DEFAULT_LIMIT)
    if limit < 1 or limit > MAX_LIMIT:
        raise ApiError(400, f"limit must be from 1 to {MAX_LIMIT}", field="limit")
    return Page(offset, limit)


def whole_number(request: Request, name: str, default: int) -> int:
    """A query parameter that must be a whole number of at least 0 (or absent)."""
    text = request.query_params.get(name)
    if text is None:
        return default
    # ASCII digits only: "²" is a digit to str.isdigit, and not a number to int()
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ApiError(400, f"{name} must be a whole number of at least 0", field=name)
    return int(text)


def listing(kind: str, items: Sequence[dict[str, Any]], page: Page, total: int,
            request: Request) -> JSONResponse:
    """A page of a list: `items` are those from `page.offset`, `total` all there are."""
    has_more = page.offset + len(items) < total
    links: dict[str, Any] = {}
    base = dict(request.query_params)
    if has_more:
        links["next"] = {"href": _href(request, base, page.offset + page.limit, page.limit)}
    if page.offset > 0:
        links["prev"] = {"href": _href(request, base, max(0, page.offset - page.limit),
                                       page.limit)}
    meta = {"offset": page.offset, "limit": page.limit, "total_count": total,
            "has_more": has_more, "links": links}
    return FastJSON({"status": 200, "type": kind, kind: list(items), "meta": meta})


def _href(request: Request, query: dict[str, str], offset: int, limit: int) -> str:
    return f"{request.url.path}?{urlencode({**query, 'offset': offset, 'limit': limit})}"


async def json_body(request: Request) -> Any:
    """The request's JSON body; not JSON (or not UTF-8, or NaN and Infinity, which JSON has
    not and no answer could carry back, or nested past reason) is a 400."""
    raw = await request.body()
    try:
        return json.loads(raw, parse_constant=_not_json)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ApiError(400, f"the body is not JSON: {exc}", code="bad_json") from None
    except RecursionError:
        raise ApiError(400, "the body is not JSON we take: nested too deep",
                       code="bad_json") from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def flag(request: Request, name: str) -> bool:
    """A DryvIQ switch in the query (`?start=1`, `?retry=true`): present and not 0/false."""
    value = request.query_params.get(name)
    return value is not None and value.strip().lower() not in ("0", "false", "no", "off")


def by_method(**handlers: Callable[[Request], Awaitable[Response]],
              ) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint for several methods of a path, so a 405 lists all of them in Allow."""
    async def endpoint(request: Request) -> Response:
        return await handlers["GET" if request.method == "HEAD" else request.method](request)

    return endpoint
