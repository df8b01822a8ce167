"""The API as an ASGI app: the areas' routes under /v1, the OpenAPI document, DryvIQ's error
envelope for every failure (a bug is a 500 that says only that, logged with its stack), and
the token check and the body size cap (limits.py) in front of it all."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.api import connections, events, jobs, reports, signin, transfers
from core.api.auth import Authenticate
from core.api.context import Api
from core.api.envelope import ApiError, Problem, error_response
from core.api.limits import LimitBody
from core.api.openapi import document
from core.api.tokens import TokenChecker

log = logging.getLogger(__name__)


async def _openapi(request: Request) -> Response:
    return JSONResponse(document(request.app.state.api.public_url))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.problems)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    description = {404: f"no such path: {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(
        exc.status_code, str(exc.detail))
    return error_response(exc.status_code, [Problem(
        {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error"),
        description)], dict(exc.headers or {}))


async def _bug(request: Request, exc: Exception) -> Response:
    log.exception("API %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, [Problem(
        "internal", "the server failed on this request; its log has the details")])


def routes() -> list[BaseRoute]:
    return [Route("/v1/openapi.json", _openapi, methods=["GET"]),
            *connections.routes, *jobs.routes, *events.routes, *transfers.routes,
            *reports.routes, *signin.routes]


def build_app(api: Api) -> Authenticate:
    """The API over `api`'s state, behind the token check and the body size cap."""
    app = Starlette(routes=routes(), exception_handlers={
        ApiError: _api_error, HTTPException: _http_error, Exception: _bug})
    app.state.api = api
    return Authenticate(LimitBody(app), TokenChecker(api.state), loopback_only=api.loopback_only)
