"""The sandbox over HTTP: Procore's login and REST API, its download host, its object store.

One ASGI app serves all three and tells them apart by each request's Host: the object store is
the one in `world.storage_url` (uploads and pre-signed blobs; it refuses any Authorization),
the download host the one in `world.download_url` (version URLs, as `storage.procore.com`
serves them: it needs the token and redirects to the object store), anything else is Procore.
API and download requests pass a gate first (Bearer token, rate windows, injected faults and
latency), before routing, so even a request for an unknown route counts as Procore counts it.
Handlers are small: they parse, then hold the world's lock while they ask the world and render
its objects in Procore's shapes.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import html
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.sandbox.world import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    OOB_REDIRECT,
    REFRESH_TOKEN,
    SANDBOX_LOGIN,
    SANDBOX_PASSWORD,
    Blob,
    Client,
    Company,
    Denied,
    Invalid,
    Mismatch,
    Node,
    Project,
    Rate,
    SandboxError,
    Token,
    Upload,
    User,
    Version,
    World,
    guess_type,
    iso_time,
    name_key,
)

GATED = ("/rest/", "/fas/")
MUTATING = ("POST", "PATCH", "DELETE")
DOWNLOADS = "/fas/api/v5/file_versions/"  # on the download host
DOCUMENTS = ("/rest/v1.0/folders", "/rest/v1.0/files")  # project Documents folder and file calls
TOKEN_KEY = "sandbox.token"  # where the gate leaves the request's token in the ASGI scope

INVALID_CLIENT = ("invalid_client", "Client authentication failed due to unknown client, no "
                  "client authentication included, or unsupported authentication method.")
INVALID_GRANT = ("invalid_grant", "The provided authorization grant is invalid, expired, "
                 "revoked, does not match the redirection URI used in the authorization "
                 "request, or was issued to another client.")
INVALID_REFRESH = ("invalid_grant", "The refresh token is invalid")
UNAUTHORIZED_CLIENT = ("unauthorized_client", "The client is not authorized to perform this "
                       "request using this method.")
UNSUPPORTED_GRANT = ("unsupported_grant_type", "The authorization grant type is not supported "
                     "by the authorization server.")
FAULT_TEXT = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}

T = TypeVar("T")


class ResponseDropped(Exception):
    """Raised on purpose right after a response's status line and headers went out: the HTTP
    server (uvicorn) then closes the connection mid-response, so the client sees a connection
    or protocol error although the change was made, as when a connection drops on the way
    back. (Over an in-process ASGI transport the exception reaches the client instead.)"""


class ApiError(Exception):
    """A ready answer that ends a request early (bad parameters, missing header)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _errors(status: int, errors: Any) -> ApiError:
    return ApiError(JSONResponse({"errors": errors}, status))


def _sending(send: Send, headers: Sequence[tuple[bytes, bytes]], *, drop: bool = False) -> Send:
    """`send` that adds `headers` to the response and, with `drop`, loses its body."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)
            if drop:
                raise ResponseDropped("the sandbox dropped this response on purpose")
            return
        await send(message)

    return wrapped


class _Dropped:
    """A response whose body never arrives (see ResponseDropped)."""

    def __init__(self, response: Response) -> None:
        self.response = response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.response(scope, receive, _sending(send, [], drop=True))


def _bearer(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _rate_headers(rate: Rate) -> list[tuple[bytes, bytes]]:
    """The window most likely to bind (doc: plan_your_app/rate_limiting.md), and on a 429 how
    many seconds to wait (doc: api_essentials/error_reference.md, "Rate limiting")."""
    headers = [(b"x-rate-limit-limit", str(rate.limit).encode()),
               (b"x-rate-limit-remaining", str(rate.remaining).encode()),
               (b"x-rate-limit-reset", str(rate.reset).encode())]
    if not rate.allowed:
        headers.append((b"retry-after", str(rate.retry_after).encode()))
    return headers


def _dated(send: Send, world: World) -> Send:
    """`send` that stamps the response with `Date` from the sandbox's clock as it starts
    (uvicorn's own, from the machine's clock, is off), so a sandbox with a clock offset looks
    like a server whose clock differs from ours."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            date = email.utils.formatdate(world.clock(), usegmt=True).encode()
            message = {**message, "headers": [*message.get("headers", []), (b"date", date)]}
        await send(message)

    return wrapped


def _period(seconds: float) -> str:
    return "an hour" if seconds == 3600 else f"{seconds:g} seconds"


def _unauthorized() -> Response:
    return JSONResponse({"errors": "The access token is invalid"}, 401,
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class _Gate:
    """Bearer check, rate windows, faults and latency in front of the API and downloads."""

    def __init__(self, world: World, app: ASGIApp) -> None:
        self.world = world
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] != "http" or not path.startswith(GATED):
            await self.app(scope, receive, send)
            return
        world = self.world
        if world.config.latency:
            await asyncio.sleep(world.config.latency)
        bearer = _bearer(Headers(scope=scope))
        token = world.authenticate(bearer)
        # Every request counts, a 401 too (Procore's Rate Limiting page: each response carries
        # the rate headers): an expired or revoked token still names its client. A token this
        # sandbox never issued (or none) names no client, so it counts against nobody's windows
        # and its 401 carries no rate headers; the docs are silent on how Procore counts those.
        client_id = token.client_id if token is not None else world.issuer(bearer)
        if client_id is None:
            await _unauthorized()(scope, receive, send)
            return
        rate = world.charge(client_id)
        headers = _rate_headers(rate)
        fault = world.fault() if rate.allowed and token is not None else None
        if not rate.allowed:
            response: Response = PlainTextResponse(
                f"You have surpassed the max number of requests for {_period(rate.window)}. "
                "Please wait until your limit resets.", 429)
        elif token is None:
            response = _unauthorized()
        elif fault is not None:
            response = PlainTextResponse(FAULT_TEXT[fault], fault,
                                         headers={"Retry-After": "1"} if fault == 503 else None)
        else:
            scope[TOKEN_KEY] = token
            drop = scope["method"] in MUTATING and path.startswith("/rest/") and world.drops()
            await self.app(scope, receive, _sending(send, headers, drop=drop))
            return
        await response(scope, receive, _sending(send, headers))


# -- the API ----------------------------------------------------------------------------------


def _to_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _int_field(value: Any, name: str) -> int | None:
    """An optional id from a body; '' and null mean absent."""
    if value in (None, ""):
        return None
    number = _to_int(value)
    if number is None:
        raise Invalid(name, "is not a number")
    return number


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "yes")


@dataclass
class Call:
    """One API request that passed the gate, its body already read."""

    request: Request
    world: World
    token: Token
    body: Any  # a JSON value, FormData, or None

    @property
    def user(self) -> User:
        return self.token.user

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def query_int(self, name: str) -> int:
        """A required integer query parameter."""
        raw = self.query(name)
        if not raw:
            raise _errors(400, f"param is missing or the value is empty: {name}")
        number = _to_int(raw)
        if number is None:
            raise _errors(400, f"{name} must be an integer")
        return number

    def path_int(self, name: str) -> int:
        number = _to_int(self.request.path_params[name])
        if number is None:
            raise _errors(404, "Not Found")
        return number

    def company(self, company_id: int | None = None) -> Company:
        """The header's company (and `company_id`'s, when given), if this user may use it."""
        raw = self.request.headers.get("procore-company-id")
        if not raw:
            raise ApiError(PlainTextResponse("Missing Procore-Company-Id header!", 400))
        company = self.world.company_for(self.user, _to_int(raw))
        return company if company_id is None else self.world.company_for(self.user, company_id)

    def project(self, project_id: int | None = None) -> Project:
        """The project of `project_id` (else the query's), in the header's company."""
        company = self.company()
        if project_id is None:
            project_id = self.query_int("project_id")
        return self.world.project_for(self.user, company, project_id)

    def fields(self, key: str) -> dict[str, Any]:
        """`{"key": {...}}` from JSON, or `key[field]` parts from a form."""
        if isinstance(self.body, FormData):
            prefix = f"{key}["
            return {name[len(prefix):-1]: value for name, value in self.body.multi_items()
                    if name.startswith(prefix) and name.endswith("]")}
        inner = self.body.get(key) if isinstance(self.body, dict) else None
        if not isinstance(inner, dict):
            raise _errors(400, f"param is missing or the value is empty: {key}")
        return inner


async def _read_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            return await request.json()
        except ValueError:
            raise _errors(400, "The request body is not valid JSON") from None
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return await request.form()
    return None


def _api(handler: Callable[[Call], Response]) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that reads the body, then runs `handler` holding the world's lock."""

    async def endpoint(request: Request) -> Response:
        world: World = request.app.state.world
        body = await _read_body(request)
        try:
            with world.lock:
                return handler(Call(request, world, request.scope[TOKEN_KEY], body))
        finally:
            if isinstance(body, FormData):
                await body.close()

    return endpoint


def _paginated(call: Call, items: Sequence[T], render: Callable[[T], Any], *,
               default_per_page: int | None = None,
               max_per_page: int | None = None) -> JSONResponse:
    """One page of `items`, with Procore's Total, Per-Page and Link headers (page sizes are
    the sandbox's unless this endpoint documents its own)."""
    config = call.world.config
    page = max(1, _to_int(call.query("page")) or 1)
    per_page = min(max(1, _to_int(call.query("per_page"))
                       or default_per_page or config.default_per_page),
                   max_per_page or config.max_per_page)
    last = max(1, math.ceil(len(items) / per_page))
    links = []
    if page > 1:
        links += [("first", 1), ("prev", min(page - 1, last))]
    if page < last:
        links += [("next", page + 1), ("last", last)]
    headers = {"Total": str(len(items)), "Per-Page": str(per_page)}
    if links:
        url = call.request.url
        headers["Link"] = ", ".join(
            f'<{url.include_query_params(page=number, per_page=per_page)}>; rel="{rel}"'
            for rel, number in links)
    chunk = items[(page - 1) * per_page:page * per_page]
    return JSONResponse([render(item) for item in chunk], headers=headers)


def _user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "login": user.login, "name": user.name}


def _version_url(world: World, version: Version) -> str:
    return f"{world.download_url}{DOWNLOADS}{version.id}/download"


def _version_json(world: World, version: Version) -> dict[str, Any]:
    # prostore_file is the stored file behind the version, {id, name, url, filename}, with
    # `filename` the deprecated twin of `name` (OpenAPI: Project Folders and Files, File)
    url = _version_url(world, version)
    return {"id": version.id, "file_id": version.file.id, "number": version.number,
            "notes": version.notes, "url": url, "size": version.size,
            "created_at": iso_time(version.created_at),
            "created_by": _user_json(version.created_by),
            "prostore_file": {"id": version.blob.id, "name": version.filename, "url": url,
                              "filename": version.filename}}


def _parent_id(node: Node) -> int | None:
    return node.parent.id if node.parent is not None else None


def _extension(name: str) -> str | None:
    return name.rpartition(".")[2].lower() if "." in name else None


def _file_json(world: World, node: Node, *, latest_only: bool = False) -> dict[str, Any]:
    versions = node.versions[::-1][:1] if latest_only else node.versions[::-1]
    extension = _extension(node.name)
    return {"id": node.id, "name": node.name, "parent_id": _parent_id(node),
            "size": node.latest.size, "description": node.description,
            "created_at": iso_time(node.created_at), "updated_at": iso_time(node.updated_at),
            "name_with_path": node.name_with_path, "private": node.private,
            "file_type": extension, "file_versions": [_version_json(world, v) for v in versions],
            "is_deleted": node.is_deleted, "checked_out_until": None}


def _sort_key(node: Node) -> str:
    return node.name.casefold()


def _folder_json(world: World, node: Node, *, listed: bool = False, folders: bool = True,
                 files: bool = True, latest_only: bool = False) -> dict[str, Any]:
    """A folder; `listed` includes its direct children (theirs come back empty)."""
    children = sorted(node.children.values(), key=_sort_key) if listed else []
    kids = node.children.values()
    return {
        "id": node.id, "name": node.name, "parent_id": _parent_id(node),
        "private": node.private, "updated_at": iso_time(node.updated_at), "is_tracked": False,
        "name_with_path": node.name_with_path,
        "folders": [_folder_json(world, c) for c in children if c.is_folder] if folders else [],
        "files": [_file_json(world, c, latest_only=latest_only) for c in children
                  if not c.is_folder] if files else [],
        "read_only": node.read_only, "is_deleted": node.is_deleted,
        "is_recycle_bin": node.is_recycle_bin, "has_children": bool(kids),
        "has_children_files": any(not c.is_folder for c in kids),
        "has_children_folders": any(c.is_folder for c in kids),
    }


def _listing(call: Call, node: Node) -> JSONResponse:
    return JSONResponse(_folder_json(
        call.world, node, listed=True, folders=not _truthy(call.query("exclude_folders")),
        files=not _truthy(call.query("exclude_files")),
        latest_only=_truthy(call.query("show_latest_file_version_only"))))


def _document_type(node: Node) -> str:
    return "folder" if node.is_folder else "file"


def _document_json(world: World, node: Node, *, extended: bool) -> dict[str, Any]:
    item = {"id": node.id, "name": node.name, "name_with_path": node.name_with_path,
            "parent_id": _parent_id(node), "document_type": _document_type(node),
            "private": node.private, "read_only": node.read_only, "is_deleted": node.is_deleted,
            "is_recycle_bin": node.is_recycle_bin, "created_at": iso_time(node.created_at),
            "updated_at": iso_time(node.updated_at), "created_by": _user_json(node.created_by)}
    if extended and not node.is_folder:
        latest = node.latest
        item["file"] = {"size": latest.size, "current_version": {
            "id": latest.id, "number": latest.number, "size": latest.size,
            "url": _version_url(world, latest), "created_at": iso_time(latest.created_at)}}
    return item


def _service_account_company(call: Call) -> None:
    """A service account's token (DMSA) must name its company on `/me` and `/companies`, the
    two calls a user's token makes without one (oauth/oauth_client_credentials.md, "Using
    DMSAs with MPR"; plan_your_app/developer_managed_service_accounts.md, FAQ). The docs do
    not say how Procore answers without it: the sandbox answers as for any other call that
    lacks the header (400), and 403 for a company the account is not installed in."""
    if call.token.service_account:
        call.company()


def _me(call: Call) -> Response:
    _service_account_company(call)
    return JSONResponse(_user_json(call.user))


def _companies(call: Call) -> Response:
    _service_account_company(call)
    user = call.user
    companies = [call.world.companies[cid] for cid in user.company_ids]
    return _paginated(call, companies, lambda c: {
        "id": c.id, "name": c.name, "is_active": True, "my_company": c.id == user.company_ids[0]})


def _project_json(company: Company, project: Project, *,
                  fields: Sequence[str] | None = None) -> dict[str, Any]:
    """A project as the projects lists show it; `fields` picks a compact view's few."""
    display = f"{project.number} - {project.name}" if project.number else project.name
    shown = {"id": project.id, "name": project.name, "display_name": display,
             "project_number": project.number, "active": project.active,
             "company": {"id": company.id, "name": company.name},
             "created_at": iso_time(project.created_at),
             "updated_at": iso_time(project.updated_at)}
    return shown if fields is None else {key: shown[key] for key in fields}


def _listed_projects(call: Call) -> tuple[Company, list[Project]]:
    """The `company_id` query's company (also the header's) and its projects this user may
    see, by `filters[by_status]` (Active by default, Inactive or All) and `filters[name]`."""
    company = call.company(call.query_int("company_id"))
    status = (call.query("filters[by_status]") or "Active").lower()
    name = (call.query("filters[name]") or "").casefold()
    return company, [p for p in call.world.visible_projects(call.user, company)
                     if (status == "all" or p.active == (status == "active"))
                     and name in p.name.casefold()]


def _projects(call: Call) -> Response:
    """List projects, v1.0 (`serializer_view=compact`: id, name and display_name)."""
    company, projects = _listed_projects(call)
    compact = ("id", "name", "display_name") if call.query("serializer_view") == "compact" else None
    return _paginated(call, projects, partial(_project_json, company, fields=compact))


def _portfolio_projects(call: Call) -> Response:
    """List projects, v1.1 (OpenAPI: Core, Portfolio, Projects): 100 a page by default and
    300 at most; `view=compact` gives id and name only. `normal` and `extended` both show
    every field the sandbox keeps (it has none of extended's addresses, dates or stages)."""
    company, projects = _listed_projects(call)
    compact = ("id", "name") if call.query("view") == "compact" else None
    return _paginated(call, projects, partial(_project_json, company, fields=compact),
                      default_per_page=100, max_per_page=300)


def _company_projects(call: Call) -> Response:
    """List company's projects (OpenAPI: Core, Company, Company Projects): every project of
    the company this user may see, active or not, in one unpaginated answer (the endpoint
    documents no page parameters and no pagination headers). The sandbox keeps no address,
    stage or type, so those are null; `created_by` is whoever made the Documents root."""
    company = call.company(call.path_int("company_id"))

    def render(project: Project) -> dict[str, Any]:
        creator = project.root.created_by
        return {"id": project.id, "name": project.name,
                "address": dict.fromkeys(("street", "city", "state_code", "zip",
                                          "country_code")),
                "stage_name": None, "status_name": "Active" if project.active else "Inactive",
                "type_name": None, "open_items": [],
                "created_by": {"id": creator.id, "email": creator.login}}

    return JSONResponse([render(p) for p in call.world.visible_projects(call.user, company)])


def _root_folder(call: Call) -> Response:
    return _listing(call, call.project().root)


def _show(call: Call, *, folder: bool) -> Response:
    node = call.world.node(call.project(), call.path_int("id"), folder=folder)
    if folder:
        return _listing(call, node)
    # show_latest_version_only (OpenAPI: Show project File) lists the newest version alone
    return JSONResponse(_file_json(call.world, node, latest_only=_truthy(
        call.query("show_latest_version_only"))))


def _create_folder(call: Call) -> Response:
    project = call.project()
    fields = call.fields("folder")
    node = call.world.create_folder(
        project, _int_field(fields.get("parent_id"), "parent_id"), str(fields.get("name") or ""),
        call.user, private=_truthy(fields.get("explicit_permissions")))
    return JSONResponse(_folder_json(call.world, node, listed=True), 201)


def _update_folder(call: Call) -> Response:
    node = call.world.node(call.project(), call.path_int("id"), folder=True)
    fields = call.fields("folder")
    name = fields.get("name")
    call.world.change(node, name=None if name is None else str(name),
                      parent_id=_int_field(fields.get("parent_id"), "parent_id"))
    return JSONResponse(_folder_json(call.world, node, listed=True))


def _delete(call: Call, *, folder: bool) -> Response:
    """Delete file / Delete folder: 200 and the item, moved to the project's Recycle Bin with
    everything under it (shared/reference/procore-api.md, Documents; Procore's support page
    "Delete Files and Folders in the Project Level Documents Tool": "The file is moved to the
    Recycle Bin", which cannot be emptied). The developer docs (procore/documentation) say no
    more: only document_management_metadata_details.md's recycled_at/recycled_by fields."""
    world = call.world
    node = world.node(call.project(), call.path_int("id"), folder=folder)
    world.delete(node)
    return JSONResponse(_folder_json(world, node) if folder else _file_json(world, node))


def _content(call: Call, project: Project, fields: Mapping[str, Any]) -> Blob | Upload | None:
    """A file's new content: the `data` part or an uploaded `upload_uuid`, never both."""
    data, uuid = fields.get("data"), fields.get("upload_uuid")
    if data is not None and uuid:
        raise Invalid("base", "send either file[data] or file[upload_uuid], not both")
    if uuid:
        return call.world.upload_for(project, str(uuid), call.token.client_id)
    if data is None:
        return None
    if not isinstance(data, UploadFile):
        raise Invalid("data", "must be a file")
    content_type = data.content_type or guess_type(data.filename or "")
    return call.world.add_blob(data.file.read(), content_type)


def _create_file(call: Call) -> Response:
    project = call.project()
    fields = call.fields("file")
    content = _content(call, project, fields)
    if content is None:
        raise Invalid("data", "can't be blank: send file[data] or file[upload_uuid]")
    fallback = content.filename if isinstance(content, Upload) else getattr(
        fields.get("data"), "filename", "")
    node = call.world.create_file(
        project, _int_field(fields.get("parent_id"), "parent_id"),
        str(fields.get("name") or fallback or ""), content, call.user,
        description=fields.get("description"), unique=_truthy(fields.get("unique_name")))
    return JSONResponse(_file_json(call.world, node), 201)


def _update_file(call: Call) -> Response:
    """Rename, move, describe, and/or a new version of the same file."""
    world = call.world
    project = call.project()
    node = world.node(project, call.path_int("id"), folder=False)
    fields = call.fields("file")
    content = _content(call, project, fields)
    name, description = fields.get("name"), fields.get("description")
    world.change(node, name=None if name is None else str(name),
                 parent_id=_int_field(fields.get("parent_id"), "parent_id"),
                 description=None if description is None else str(description))
    if content is not None:
        world.add_version(node, content, call.user)
    return JSONResponse(_file_json(world, node))


# The documents index's `sort` fields. The OpenAPI (Core, Documents, Project Folder and File
# index) documents the parameter and a leading "-" for reverse order (its example is
# -updated_at) but lists no fields; these are the index's own scalar fields. Several fields,
# comma-separated, sort in order of importance (doc: Filtering and Sorting on List Actions).
DOCUMENT_SORTS: dict[str, Callable[[Node], Any]] = {
    "id": lambda node: node.id,
    "name": lambda node: name_key(node.name),
    "name_with_path": lambda node: name_key(node.name_with_path),
    "document_type": _document_type,
    "created_at": lambda node: node.created_at,
    "updated_at": lambda node: node.updated_at,
}
FOLDER_FILTER_DEPTH = 100  # filters[folder_id] reaches this many levels down (OpenAPI)


def _sorted(call: Call, items: list[Node]) -> list[Node]:
    """`items` (in id order) by the `sort` query, ties kept in id order."""
    fields = [f.strip() for f in (call.query("sort") or "").split(",") if f.strip()]
    for field in reversed(fields):  # stable sorts, the least important first
        key = DOCUMENT_SORTS.get(field.removeprefix("-"))
        if key is None:
            raise _errors(400, f"sort: cannot sort by {field.removeprefix('-')!r}; use one "
                          f"of {', '.join(DOCUMENT_SORTS)} (a leading - reverses)")
        items = sorted(items, key=key, reverse=field.startswith("-"))
    return items


def _under_folder(project: Project, raw: str) -> set[int]:
    """The ids `filters[folder_id]` selects: the folder itself and everything under it, to
    FOLDER_FILTER_DEPTH levels (OpenAPI: Project Folder and File index). An id that is no
    folder of this project selects nothing (the docs are silent on that case)."""
    folder_id = _to_int(raw)
    if folder_id is None:
        raise _errors(400, "filters[folder_id] must be an integer")
    folder = project.nodes.get(folder_id)
    if folder is None or not folder.is_folder:
        return set()
    return {node.id for node in folder.walk(FOLDER_FILTER_DEPTH)}


def _documents(call: Call) -> Response:
    project = call.project(call.path_int("project_id"))
    items: list[Node] = list(project.nodes.values())
    in_bin = call.query("filters[is_in_recycle_bin]")
    if in_bin is not None:
        wanted = _truthy(in_bin)
        items = [n for n in items if (n.is_deleted or n.is_recycle_bin) == wanted]
    kind = call.query("filters[document_type]")
    if kind in ("file", "folder"):
        items = [n for n in items if _document_type(n) == kind]
    folder_id = call.query("filters[folder_id]")
    if folder_id:
        under = _under_folder(project, folder_id)
        items = [n for n in items if n.id in under]
    query = call.request.query_params
    file_types = {t.lower().lstrip(".") for t in [*query.getlist("filters[file_type]"),
                                                  *query.getlist("filters[file_type][]")]}
    if file_types:  # by extension (OpenAPI); folders have none
        items = [n for n in items if not n.is_folder and _extension(n.name) in file_types]
    extended = call.query("view") == "extended"
    return _paginated(call, _sorted(call, items),
                      partial(_document_json, call.world, extended=extended))


def _create_upload(call: Call) -> Response:
    """Uploads API v1.1: a form to POST the file with, or (given `segments`) a signed URL per
    segment (doc: tutorials/tutorial_uploads.md)."""
    project = call.project(call.path_int("project_id"))
    body = call.body if isinstance(call.body, dict) else {}
    world, client_id = call.world, call.token.client_id
    if "segments" in body:
        upload = world.create_segmented_upload(project, client_id, body["segments"])
    else:
        upload = world.create_upload(
            project, client_id, str(body.get("response_filename") or "upload"),
            str(body.get("response_content_type") or "application/octet-stream"))
    return JSONResponse(_upload_json(world, upload), 201)


def _upload_json(world: World, upload: Upload) -> dict[str, Any]:
    base = f"{world.storage_url}/uploads/{upload.uuid}"
    if upload.segments is None:
        return {"uuid": upload.uuid, "status": upload.status, "url": base,
                "fields": upload.fields}
    segments = []
    for index, segment in enumerate(upload.segments):
        signature = urlencode({"X-Amz-Signature": world.segment_signature(upload, index)})
        headers = {"x-amz-content-sha256": segment.sha256, "content-length": str(segment.size)}
        if segment.md5 is not None:
            headers["content-md5"] = base64.b64encode(bytes.fromhex(segment.md5)).decode()
        item = {"size": segment.size, "sha256": segment.sha256, "md5": segment.md5,
                "url": f"{base}/segments/{index}?{signature}", "headers": headers}
        if segment.etag is not None and upload.blob is not None:
            item["etag"] = segment.etag
        segments.append(item)
    return {"uuid": upload.uuid, "segments": segments, "status": upload.status}


def _show_upload(call: Call) -> Response:
    upload = call.world.upload(call.project(call.path_int("project_id")),
                               call.request.path_params["uuid"])
    return JSONResponse(_upload_json(call.world, upload))


def _complete_upload(call: Call) -> Response:
    """The segments' ETags, in order, complete a segmented upload."""
    project = call.project(call.path_int("project_id"))
    body = call.body if isinstance(call.body, dict) else {}
    upload = call.world.complete_upload(project, call.request.path_params["uuid"],
                                        call.token.client_id, body.get("segments"))
    return JSONResponse(_upload_json(call.world, upload))


def _download(call: Call) -> Response:
    """Procore's opaque version URL, on the download host: with the token, a redirect to a
    pre-signed object-store URL (doc: best_practices/secure_file_access_tips.md)."""
    world = call.world
    blob = world.version_for(call.user, call.path_int("id")).blob
    location = (f"{world.storage_url}/blobs/{blob.id}?"
                f"{urlencode({'X-Amz-Signature': world.blob_signature(blob)})}")
    return RedirectResponse(location, 302)


def _api_routes() -> list[Route]:
    def api(path: str, handler: Callable[[Call], Response], method: str) -> Route:
        return Route(path, _api(handler), methods=[method])

    folder, file = "/rest/v1.0/folders", "/rest/v1.0/files"
    uploads = "/rest/v1.1/projects/{project_id}/uploads"
    return [
        api("/rest/v1.0/me", _me, "GET"),
        api("/rest/v1.0/companies", _companies, "GET"),
        api("/rest/v1.0/projects", _projects, "GET"),
        api("/rest/v1.1/projects", _portfolio_projects, "GET"),
        api("/rest/v1.0/companies/{company_id}/projects", _company_projects, "GET"),
        api("/rest/v1.0/projects/{project_id}/documents", _documents, "GET"),
        api(folder, _root_folder, "GET"),
        api(folder, _create_folder, "POST"),
        api(folder + "/{id}", partial(_show, folder=True), "GET"),
        api(folder + "/{id}", _update_folder, "PATCH"),
        api(folder + "/{id}", partial(_delete, folder=True), "DELETE"),
        api(file, _create_file, "POST"),
        api(file + "/{id}", partial(_show, folder=False), "GET"),
        api(file + "/{id}", _update_file, "PATCH"),
        api(file + "/{id}", partial(_delete, folder=False), "DELETE"),
        api(uploads, _create_upload, "POST"),
        api(uploads + "/{uuid}", _show_upload, "GET"),
        api(uploads + "/{uuid}", _complete_upload, "PATCH"),
        api(DOWNLOADS + "{id}/download", _download, "GET"),
    ]


# -- OAuth ------------------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} · Procore sandbox</title></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n", status)


def _authorize_problem(world: World, params: Mapping[str, Any]) -> str | None:
    """Why this sign-in request is refused before anyone signs in, or None."""
    client = world.clients.get(str(params.get("client_id") or ""))
    if params.get("response_type") != "code":
        return "The authorization server does not support this response type."
    if client is None or AUTHORIZATION_CODE not in client.grants:
        return "Client authentication failed due to unknown client."
    # only a redirect URI registered on the app, exactly (oauth/oauth_keys.md); the docs do not
    # show Procore's page for another, so this is Doorkeeper's wording, and no code is made
    if str(params.get("redirect_uri") or "") not in client.redirect_uris:
        return "The redirect uri included is not valid."
    return None


def _sample_login(world: World) -> str:
    """The sample user's email and password, said on the sign-in page: this is a sandbox, and
    a person trying the demo has no other way to learn them."""
    if world.sign_in(SANDBOX_LOGIN, SANDBOX_PASSWORD) is None:
        return ""
    return (f'<p id="sample-login">Sample login: email <code>{html.escape(SANDBOX_LOGIN)}'
            f'</code>, password <code>{html.escape(SANDBOX_PASSWORD)}</code></p>')


def _sign_in_form(world: World, params: Mapping[str, Any], error: str | None = None,
                  status: int = 200) -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(str(params.get(name) or ""))}">'
        for name in ("response_type", "client_id", "redirect_uri", "state"))
    problem = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    app = html.escape(str(params.get("client_id") or ""))
    return _page("Sign in to Procore", f"""<p>The application <b>{app}</b> asks to use your
Procore account.</p>{problem}
<form method="post" action="/oauth/authorize">{hidden}
<label>Email <input type="email" name="login" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password"
required></label>
<button type="submit">Sign in and allow</button></form>
{_sample_login(world)}<p>This is the DryvIQ sandbox, not Procore.</p>""", status)


async def _authorize_page(request: Request) -> Response:
    params = request.query_params
    problem = _authorize_problem(request.app.state.world, params)
    if problem is not None:
        return _page("Sign-in refused", f"<p>{html.escape(problem)}</p>", 400)
    return _sign_in_form(request.app.state.world, params)


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = [*parse_qsl(parts.query), *((k, v) for k, v in params.items() if v)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _authorize(request: Request) -> Response:
    world: World = request.app.state.world
    form = await request.form()
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    problem = _authorize_problem(world, params)
    if problem is not None:
        return _page("Sign-in refused", f"<p>{html.escape(problem)}</p>", 400)
    user = world.sign_in(params.get("login", ""), params.get("password", ""))
    if user is None:
        return _sign_in_form(world, params, "Invalid email or password.", 401)
    redirect_uri = params["redirect_uri"]
    code = world.issue_code(params["client_id"], redirect_uri, user)
    if redirect_uri == OOB_REDIRECT:
        native = request.url.replace(path="/oauth/authorize/native", query=urlencode(
            {"code": code}))
        return RedirectResponse(str(native), 302)
    return RedirectResponse(
        _with_query(redirect_uri, {"code": code, "state": params.get("state", "")}), 302)


async def _native(request: Request) -> Response:
    code = html.escape(request.query_params.get("code", ""))
    return _page("Authorization code", f"""<p>Copy this code and paste it into the
application that asked for it:</p>
<p><code id="authorization-code">{code}</code></p>""")


async def _oauth_params(request: Request) -> dict[str, str]:
    """The token endpoints' parameters, from a JSON or a form body."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            body = None
        return {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _client(request: Request, params: Mapping[str, str]) -> Client | None:
    """The client authenticated by HTTP Basic, else by the body's id and secret."""
    world: World = request.app.state.world
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except ValueError:
            return None
        client_id, _, secret = decoded.partition(":")
        return world.client(unquote(client_id), unquote(secret))
    return world.client(params.get("client_id", ""), params.get("client_secret", ""))


def _oauth_error(status: int, error: tuple[str, str]) -> JSONResponse:
    return JSONResponse({"error": error[0], "error_description": error[1]}, status,
                        headers={"Cache-Control": "no-store"})


async def _token(request: Request) -> Response | _Dropped:
    world: World = request.app.state.world
    params = await _oauth_params(request)
    client = _client(request, params)
    if client is None:
        return _oauth_error(401, INVALID_CLIENT)
    grant = params.get("grant_type", "")
    if grant not in (AUTHORIZATION_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS):
        return _oauth_error(400, UNSUPPORTED_GRANT)
    if grant not in client.grants:
        return _oauth_error(400, UNAUTHORIZED_CLIENT)
    if grant == AUTHORIZATION_CODE:
        token = world.redeem_code(client, params.get("code", ""), params.get("redirect_uri", ""))
        if token is None:
            return _oauth_error(400, INVALID_GRANT)
    elif grant == REFRESH_TOKEN:
        token = world.refresh(client, params.get("refresh_token", ""))
        if token is None:
            return _oauth_error(401, INVALID_REFRESH)
    else:
        token = world.client_token(client)
    body: dict[str, Any] = {"access_token": token.access_token, "token_type": "bearer",
                            "expires_in": round(token.expires_at - token.created_at)}
    if token.refresh_token is not None:
        body["refresh_token"] = token.refresh_token
    body["created_at"] = int(token.created_at)
    response = JSONResponse(body, headers={"Cache-Control": "no-store"})
    return _Dropped(response) if grant == REFRESH_TOKEN and world.drops() else response


async def _token_info(request: Request) -> Response:
    world: World = request.app.state.world
    token = world.authenticate(_bearer(request.headers))
    if token is None:
        return _oauth_error(401, ("invalid_token", "The access token is invalid"))
    return JSONResponse({
        "resource_owner_id": token.user.id, "scopes": [],
        "expires_in_seconds": max(0, int(token.expires_at - world.clock())),
        "application": {"uid": token.client_id}, "created_at": int(token.created_at)})


async def _revoke(request: Request) -> Response:
    """Always 200, as Procore answers even for a bad token."""
    params = await _oauth_params(request)
    client = _client(request, params)
    if client is not None:
        request.app.state.world.revoke(client, params.get("token", ""))
    return JSONResponse({})


def _oauth_routes() -> list[Route]:
    return [
        Route("/oauth/authorize", _authorize_page, methods=["GET"]),
        Route("/oauth/authorize", _authorize, methods=["POST"]),
        Route("/oauth/authorize/native", _native, methods=["GET"]),
        Route("/oauth/token", _token, methods=["POST"]),
        Route("/oauth/token/info", _token_info, methods=["GET"]),
        Route("/oauth/revoke", _revoke, methods=["POST"]),
    ]


def _api_refusal(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return exc.response
    if isinstance(exc, Invalid):
        # Procore's OpenAPI lists 400 and never 422 for the Documents folder and file calls,
        # and a captured taken folder name came back 400; elsewhere the sandbox keeps 422
        documents = request.url.path.startswith(DOCUMENTS)
        return JSONResponse({"errors": {exc.field: [exc.reason]}}, 400 if documents else 422)
    if isinstance(exc, HTTPException) and exc.status_code not in (404, 405):
        return JSONResponse({"errors": exc.detail}, exc.status_code)
    status = 403 if isinstance(exc, Denied) else 404
    return JSONResponse({"errors": str(exc) if isinstance(exc, Denied) else "Not Found"}, status)


# -- the storage host -------------------------------------------------------------------------


def _s3_error(status: int, code: str, message: str) -> Response:
    return Response(f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>{html.escape(message)}</Message></Error>", status,
                    media_type="application/xml")


async def _store_upload(request: Request) -> Response:
    """The storage half of an upload: every field handed out, unchanged, plus `file`."""
    world: World = request.app.state.world
    async with request.form() as form:
        parts = form.multi_items()
        files = [value for name, value in parts if name == "file"]
        fields = {name: value for name, value in parts if name != "file" and isinstance(value, str)}
        if len(files) != 1 or not isinstance(files[0], UploadFile):
            return _s3_error(400, "InvalidArgument",
                             "POST requires exactly one file upload per request.")
        if len(fields) != len(parts) - 1:  # a repeated field, or a second file
            return _s3_error(403, "AccessDenied", "Invalid according to Policy")
        world.store_upload(request.path_params["uuid"], fields, await files[0].read())
    return Response(status_code=204)


async def _store_segment(request: Request) -> Response:
    """One segment's PUT to its signed URL: answered with its ETag (doc: tutorial_uploads.md,
    step 3). A test may hold segments from some index on, unstored, until it lets them go."""
    world: World = request.app.state.world
    index = _to_int(request.path_params["index"])
    if index is None:
        return _s3_error(404, "NoSuchUpload", "The specified upload does not exist.")
    if not world.begin_segment_put(index):
        while world.holding(index):
            await asyncio.sleep(0.01)
    data = bytearray()
    try:
        async for chunk in request.stream():
            data += chunk
    except ClientDisconnect:  # the client went away mid-segment: nothing is stored
        return Response(status_code=400)
    headers = {name: value for name, value in request.headers.items()
               if name in ("x-amz-content-sha256", "content-md5")}
    etag = world.store_segment(request.path_params["uuid"], index,
                               request.query_params.get("X-Amz-Signature", ""), headers,
                               bytes(data))
    return Response(status_code=200, headers={"ETag": etag})


async def _blob(request: Request) -> Response:
    world: World = request.app.state.world
    blob_id = _to_int(request.path_params["id"])
    blob = world.signed_blob(blob_id if blob_id is not None else -1,
                             request.query_params.get("X-Amz-Signature", ""))
    return Response(blob.data, media_type=blob.content_type)


def _storage_refusal(request: Request, exc: Exception) -> Response:
    if isinstance(exc, Denied):
        return _s3_error(403, "AccessDenied", str(exc))
    if isinstance(exc, Mismatch):
        return _s3_error(400, exc.code, str(exc))
    if isinstance(exc, HTTPException) and exc.status_code == 400:
        return _s3_error(400, "MalformedPOSTRequest", str(exc.detail))
    return _s3_error(404, "NoSuchKey", "The specified key does not exist.")


# -- one app for both hosts -------------------------------------------------------------------


def _template(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    """The path template of the route this request is for (for `world.requests`)."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL and isinstance(route, Route):
            return route.path
    return None


class _Sandbox:
    """Procore (login, API, downloads) and its storage host, told apart by Host."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.procore = Starlette(routes=[*_oauth_routes(), *_api_routes()], exception_handlers={
            SandboxError: _api_refusal, ApiError: _api_refusal, HTTPException: _api_refusal})
        self.storage = Starlette(
            routes=[Route("/uploads/{uuid}", _store_upload, methods=["POST"]),
                    Route("/uploads/{uuid}/segments/{index}", _store_segment, methods=["PUT"]),
                    Route("/blobs/{id}", _blob, methods=["GET"])],
            exception_handlers={SandboxError: _storage_refusal,
                                HTTPException: _storage_refusal})
        for app in (self.procore, self.storage):
            app.state.world = world
        self.gated = _Gate(world, self.procore)

    def _host(self, headers: Headers) -> str:
        """'storage' (the object store), 'downloads' or 'procore', by the request's Host."""
        host = headers.get("host", "").lower()
        world = self.world
        if host == urlsplit(world.storage_url).netloc.lower():
            return "storage"
        if host == urlsplit(world.download_url).netloc.lower():
            return "downloads"
        return "procore"

    def _misdirected(self, host: str, path: str) -> bool:
        """Version downloads on the API host, or API calls on the download host, where the
        two are apart (as api.procore.com and storage.procore.com are)."""
        apart = urlsplit(self.world.download_url).netloc != urlsplit(self.world.base_url).netloc
        return apart and (host == "downloads") != path.startswith(DOWNLOADS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.procore(scope, receive, send)
            return
        send = _dated(send, self.world)
        headers = Headers(scope=scope)
        host = self._host(headers)
        app = self.storage if host == "storage" else self.procore
        template = _template(app.routes, scope)
        if host != "storage" and self._misdirected(host, scope["path"]):
            response: Response = JSONResponse({"errors": "Not Found"}, 404)
            await response(scope, receive, send)
            return
        if template is not None:
            self.world.count(scope["method"], template)
        if host != "storage":
            await self.gated(scope, receive, send)
        elif "authorization" in headers:
            with self.world.lock:
                self.world.storage_auth_refusals += 1
            response = _s3_error(400, "InvalidArgument", "Only one auth mechanism allowed")
            await response(scope, receive, send)
        else:
            await self.storage(scope, receive, send)


def create_app(world: World) -> ASGIApp:
    """The sandbox's ASGI app over `world` (see the module docstring)."""
    return _Sandbox(world)
