"""Connections over the API: the platforms there are, the connections (list, show, add,
remove), and one folder of a connection (`v1/connections/{id}/items?path=`).

Adding and removing go through core.connections, as `dryviq-tui connections add|remove` do:
the same checks and messages, and a share or remote is saved only once its root lists. A
Procore connection is made on the sign-in page (signin.py) that `v1/connections/platforms/
procore/new` points to. Secrets (passwords, Procore tokens, client secrets) live in the state's
secrets table and appear in no answer. A local folder is added only inside the folders the
installation allows (config.toml `[api] local_roots`) and never around or in the home: a
write token must not reach every file the server's user can."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.api import signin
from core.api.context import api_of
from core.api.envelope import (
    ApiError,
    by_method,
    json_body,
    listing,
    not_found,
    page_of,
    single,
)
from core.connections import (
    ConnectionInputError,
    add_checked,
    add_local,
    check_name,
    check_new_name,
    describe,
    rclone_config,
    remove_connection,
    smb_config,
)
from core.connectors import Opening, open_connector
from core.connectors.base import (
    AuthExpired,
    ConnectorError,
    Entry,
    Features,
    InvalidPath,
    NotFound,
    PathRules,
)
from core.connectors.local import LOCAL_FEATURES
from core.connectors.procore import PROCORE_FEATURES
from core.home import ConfigError, Home
from core.paths import join, normalize_path, printable, valid_utf8
from core.state import Connection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Platform:
    """A kind of storage one can connect to, as `v1/connections/platforms` describes it."""

    id: str
    name: str
    method: str  # how a connection is made: "prompt" (POST the fields) or "oauth2" (a page)
    # the fields POST v1/connections takes in "auth": name -> (type, required, caption)
    fields: dict[str, tuple[str, bool, str]] = field(default_factory=dict)
    features: Features | None = None  # None: known only once connected (an rclone remote)


def _smb_features() -> Features:
    from core.connectors.smb import SMB_FEATURES  # smbprotocol loads only when asked for

    return SMB_FEATURES


PLATFORMS = {platform.id: platform for platform in (
    Platform("local", "Local folder", "prompt", {
        "path": ("string", True, "A folder on the machine that serves this API (or a share "
                                 "mounted there), inside a folder its config.toml allows "
                                 "([api] local_roots)"),
        "fsync": ("boolean", False, "Flush each file to disk before publishing it (default: "
                                    "true)")}, LOCAL_FEATURES),
    Platform("smb", "SMB file share", "prompt", {
        "server": ("string", True, "Host name or address of the file server"),
        "port": ("integer", False, "Default: 445"),
        "share": ("string", True, "The share's name, as in Projects"),
        "path": ("string", False, "A folder inside the share (default: its root)"),
        "username": ("string", True, "DOMAIN\\user, user@domain or user"),
        "password": ("password", True, "Stored with the connection's secrets, never shown"),
        "encrypt": ("boolean", False, "Require SMB 3 encryption (default: false)")}),
    Platform("rclone", "rclone remote", "prompt", {
        "remote": ("string", True, "A remote from the server's rclone config and a folder "
                                   "in it, as in s3:bucket/folder")}),
    Platform("procore", "Procore", "oauth2", {}, PROCORE_FEATURES),
)}
# DryvIQ's id for its network file system connector (a UNC path): here, an SMB share
ALIASES = {"nfs": "smb"}


def _validation(rules: PathRules) -> dict[str, Any]:
    return {"invalid_characters": rules.invalid_chars, "max_name_length": rules.max_name_length,
            "name_length_in_bytes": rules.name_length_in_bytes,
            "max_path_length": rules.max_path_length,
            "no_leading_whitespace": rules.no_leading_whitespace,
            "no_trailing_whitespace": rules.no_trailing_whitespace,
            "no_trailing_dot_or_space": rules.no_trailing_dot_or_space,
            "reserved_names": sorted(rules.reserved_names)}


def _platform_body(platform: Platform) -> dict[str, Any]:
    features = _smb_features() if platform.id == "smb" else platform.features
    return {
        "id": platform.id, "name": platform.name, "disabled": False,
        "authorize": {"methods": [platform.method]},
        "features": None if features is None else {
            "mtime_precision": features.mtime_precision,
            "can_set_mtime": features.can_set_mtime,
            "case_insensitive": features.case_insensitive, "empty_dirs": features.empty_dirs,
            "hashes": sorted(features.hashes), "max_file_size": features.max_file_size,
            "versions": features.versions},
        "path": None if features is None else {"validation": _validation(features.path_rules)},
    }


def _platform_of(request: Request) -> Platform:
    wanted = request.path_params["platform"]
    platform = PLATFORMS.get(ALIASES.get(wanted, wanted))
    if platform is None:
        raise not_found("platform", printable(wanted), "platform")
    return platform


async def _platforms(request: Request) -> Response:
    page = page_of(request)
    every = [_platform_body(p) for p in PLATFORMS.values()]
    return listing("platforms", every[page.offset:page.offset + page.limit], page, len(every),
                   request)


async def _platform(request: Request) -> Response:
    return single("platform", _platform_body(_platform_of(request)))


async def _new(request: Request) -> Response:
    """How to make a connection of this platform: Procore's sign-in page (a one-time link),
    or the fields to POST to v1/connections."""
    platform = _platform_of(request)
    if platform.method == "oauth2":
        target, expires_on = await signin.begin(request)
        return single("authorize", {"method": "oauth2", "target": target,
                                    "expires_on": expires_on})
    attributes = {name: {"id": name, "type": kind, "required": required, "caption": caption}
                  for name, (kind, required, caption) in platform.fields.items()}
    return single("authorize", {"method": "prompt",
                                "target": f"{api_of(request).public_url}/v1/connections",
                                "attributes": attributes})


def connection_body(connection: Connection) -> dict[str, Any]:
    """A connection as the API shows it: its settings (`auth`), never its secrets, which the
    state keeps apart from them."""
    platform = PLATFORMS.get(connection.platform)
    return {"id": connection.id, "name": connection.name, "disabled": False,
            "platform": {"id": connection.platform,
                         "name": platform.name if platform else connection.platform},
            "location": describe(connection), "auth": connection.config,
            "created_on": int(connection.created_at)}


async def _connection_of(request: Request) -> Connection:
    wanted = request.path_params["id"]
    connection = await api_of(request).state.find_connection(wanted)
    if connection is None:
        raise not_found("connection", printable(wanted))
    return connection


async def _list(request: Request) -> Response:
    page = page_of(request)
    every = await api_of(request).state.list_connections()
    return listing("connections", [connection_body(c) for c in
                                   every[page.offset:page.offset + page.limit]],
                   page, len(every), request)


async def _show(request: Request) -> Response:
    return single("connection", connection_body(await _connection_of(request)))


_KINDS = {str: "a string", bool: "true or false", int: "a whole number"}


def _setting(auth: dict[str, Any], key: str, kind: type, *, required: bool = False) -> Any:
    """auth[key], checked to be a `kind` (a bool is no integer here); None when absent."""
    value = auth.get(key)
    if value is None:
        if required:
            raise ApiError(400, f"auth.{key} is required", field=f"auth.{key}")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(400, f"auth.{key} must be {_KINDS[kind]}", field=f"auth.{key}")
    return value


def _refused(exc: ConnectionInputError, fields: tuple[str, ...]) -> ApiError:
    """core.connections' message, naming the field it starts with ("share 'x': ...")."""
    said = printable(str(exc))
    first = re.match(r"\w+", said)
    named = first.group(0) if first and first.group(0) in fields else None
    return ApiError(400, said, field=f"auth.{named}" if named else "auth")


_UNC = re.compile(r"^(?:smb:)?[\\/]{2}([^\\/]+)[\\/]+([^\\/]+)(.*)$")


def _smb_settings(auth: dict[str, Any]) -> dict[str, Any]:
    """Server, share and folder: given apart, or as DryvIQ's `uri` (\\\\server\\share\\path)."""
    uri = _setting(auth, "uri", str)
    if uri is None:
        return {"server": _setting(auth, "server", str, required=True),
                "share": _setting(auth, "share", str, required=True),
                "path": _setting(auth, "path", str) or ""}
    found = _UNC.match(uri.strip())
    if found is None:
        raise ApiError(400, "auth.uri: give the share as \\\\server\\share (a folder may follow)",
                       field="auth.uri")
    return {"server": found.group(1), "share": found.group(2), "path": found.group(3)}


def local_roots(config: dict[str, Any]) -> list[str]:
    """config.toml's `[api] local_roots`: the folders under which a local connection may be
    added over the API, by their real paths (symlinks resolved); [] when none are set."""
    table = config.get("api") or {}
    roots = table.get("local_roots", []) if isinstance(table, dict) else None
    if not isinstance(roots, list) or not all(
            isinstance(r, str) and os.path.isabs(r) and "\0" not in r for r in roots):
        raise ConfigError(f"config.toml [api] local_roots = {roots!r}: give a list of absolute "
                          'paths, as in ["/srv/projects"]')
    return [os.path.realpath(root) for root in roots]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _allowed_folder(home: Home, path: str) -> str:
    """`path`'s real path, once it lies inside a folder config.toml allows and neither holds
    the home nor lies in it: a write token must not reach every file the server's user can
    (the home's state.db holds every connection's secrets). Checked before the folder is
    looked at, so a refusal says nothing of what exists outside the allowed folders."""
    try:
        roots = local_roots(home.config())
    except ConfigError as exc:
        raise ApiError(403, printable(str(exc)), code="local_roots", field="auth.path") from None
    if not roots:
        raise ApiError(403, "local folders cannot be added over the API until the installation "
                            "allows some: in config.toml in dryviq-tui's home, set [api] "
                            'local_roots = ["/srv/projects"] (or add the connection on the '
                            "server: dryviq-tui connections add local)",
                       code="local_roots", field="auth.path")
    if "\0" in path:
        raise ApiError(400, "auth.path: a path holds no NUL character", field="auth.path")
    real = os.path.realpath(os.path.expanduser(path))
    if not any(_inside(real, root) for root in roots):
        raise ApiError(403, f"{printable(path)} is outside the folders this installation allows "
                            f"for local connections: {', '.join(map(printable, roots))}",
                       code="local_roots", field="auth.path")
    home_root = os.path.realpath(home.root)
    if _inside(real, home_root) or _inside(home_root, real):
        raise ApiError(403, f"{printable(path)} holds or lies in dryviq-tui's home (its state "
                            "and secrets): choose another folder",
                       code="dryviq_home", field="auth.path")
    return real


async def _add_local(request: Request, name: str, auth: dict[str, Any]) -> Connection:
    path = _setting(auth, "path", str, required=True)
    fsync = _setting(auth, "fsync", bool)
    api = api_of(request)
    real = _allowed_folder(api.home, path)
    try:
        return await add_local(api.state, name, real, fsync=True if fsync is None else fsync)
    except ConnectionInputError as exc:
        raise ApiError(400, printable(str(exc)), field="auth.path") from None


async def _add_smb(request: Request, name: str, auth: dict[str, Any]) -> Connection:
    settings = _smb_settings(auth)
    username = _setting(auth, "username", str, required=True)
    password = _setting(auth, "password", str, required=True)
    port = _setting(auth, "port", int)
    try:
        config = smb_config(**settings, username=username, port=445 if port is None else port,
                            encrypt=bool(_setting(auth, "encrypt", bool)))
    except ConnectionInputError as exc:
        raise _refused(exc, ("server", "share", "username", "port", "path")) from None
    return await _add_checked(request, name, "smb", config, {"password": password})


async def _add_rclone(request: Request, name: str, auth: dict[str, Any]) -> Connection:
    if "config" in auth:
        # a config file named by a caller could define a `local` remote over any folder (one
        # dropped into an allowed local folder, say), and its answer would tell which files
        # exist: over the API only the server's own rclone config is used
        raise ApiError(403, "the rclone config file is chosen on the server (`dryviq-tui "
                            "connections add rclone --config`, or RCLONE_CONFIG for serve), "
                            "not over the API: leave out auth.config",
                       code="rclone_config", field="auth.config")
    try:
        config = rclone_config(remote=_setting(auth, "remote", str, required=True))
    except ConnectionInputError as exc:
        raise _refused(exc, ("remote",)) from None
    return await _add_checked(request, name, "rclone", config)


async def _add_checked(request: Request, name: str, platform: str, config: dict[str, Any],
                       secrets: dict[str, Any] | None = None) -> Connection:
    api = api_of(request)
    try:
        return await add_checked(api.state, api.home, name, platform, config, secrets)
    except ConnectionInputError as exc:  # the share or remote did not list: nothing saved
        raise ApiError(400, f"Connection test failed: {printable(str(exc))}",
                       code="connection_test", field="auth") from None


ADDERS = {"local": _add_local, "smb": _add_smb, "rclone": _add_rclone}


async def _add(request: Request) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be a JSON object: {"name": ..., "platform": {"id": '
                            '...}, "auth": {...}}')
    name = body.get("name")
    if not isinstance(name, str):
        raise ApiError(400, "name is required: a string", field="name")
    try:
        check_name(name)
    except ConnectionInputError as exc:
        raise ApiError(400, printable(str(exc)), field="name") from None
    try:
        name = await check_new_name(api_of(request).state, name)
    except ConnectionInputError as exc:
        raise ApiError(409, printable(str(exc)), field="name") from None
    platform = body.get("platform")
    wanted = platform.get("id") if isinstance(platform, dict) else None
    if not isinstance(wanted, str):
        raise ApiError(400, 'platform is required: {"id": "local"}, "smb" or "rclone"',
                       field="platform.id")
    if ALIASES.get(wanted, wanted) == "procore":
        raise ApiError(400, "a Procore connection is made by signing in: GET v1/connections/"
                            "platforms/procore/new gives the page to open", field="platform.id")
    add = ADDERS.get(ALIASES.get(wanted, wanted))
    if add is None:
        raise ApiError(400, f"unknown platform {printable(wanted)!r}: local, smb or rclone",
                       field="platform.id")
    auth = body.get("auth", {})
    if not isinstance(auth, dict):
        raise ApiError(400, "auth must be a JSON object with the platform's fields (GET "
                            f"v1/connections/platforms/{wanted}/new lists them)", field="auth")
    connection = await add(request, name, auth)
    return single("connection", connection_body(connection), 201)


async def _remove(request: Request) -> Response:
    api = api_of(request)
    connection = await _connection_of(request)
    try:
        warning = await remove_connection(api.state, api.home, connection)
    except ConnectionInputError as exc:  # jobs use it
        raise ApiError(409, printable(str(exc)), field="id") from None
    if warning:
        log.warning("removed connection %s: %s", connection.id, warning)
    return Response(status_code=204)


def _item(folder: str, entry: Entry) -> dict[str, Any]:
    """One entry of a folder, as DryvIQ lists a platform's items (names that were not UTF-8
    on a disk shown with \\xNN escapes)."""
    path = valid_utf8("/" + join(folder, entry.name))
    return {"id": entry.native_id or path, "name": valid_utf8(entry.name), "path": path,
            "type": "folder" if entry.is_dir else "file",
            "bytes": 0 if entry.is_dir else entry.size,
            "modified_on": None if entry.mtime is None else int(entry.mtime),
            "version": entry.version, "skip_reason": entry.skip_reason}


async def _entries(request: Request, connection: Connection, path: str) -> list[Entry]:
    """The folder's entries; the platform's refusals as 4xx (a missing folder is a 404, a
    path that climbs out a 400), its failures as 502."""
    api = api_of(request)
    where = printable(f"{connection.name}:/{path}")
    try:
        connector = open_connector(connection, await api.state.connection_secrets(connection.id),
                                   Opening(api.state, api.home, interactive=True))
    except (ConnectorError, ConfigError, ValueError) as exc:
        raise ApiError(502, f"{printable(connection.name)}: {printable(str(exc))}",
                       code="platform") from None
    try:
        return await connector.list_dir(path)
    except NotFound:
        raise ApiError(404, f"no folder {where}", field="path") from None
    except InvalidPath as exc:
        raise ApiError(400, printable(str(exc)), field="path") from None
    except AuthExpired as exc:
        raise ApiError(409, f"{where}: {printable(str(exc))}", code="sign_in_required") from None
    except ConnectorError as exc:
        raise ApiError(502, f"{where}: {printable(str(exc))}", code="platform") from None
    finally:
        await connector.close()


async def _items(request: Request) -> Response:
    connection = await _connection_of(request)
    page = page_of(request)
    try:
        path = normalize_path(request.query_params.get("path", ""))
    except InvalidPath as exc:  # '..' and the like: never out of the connection's root
        raise ApiError(400, printable(str(exc)), field="path") from None
    entries = sorted(await _entries(request, connection, path),
                     key=lambda e: (not e.is_dir, e.name.casefold(), e.name))
    return listing("items", [_item(path, e) for e in entries[page.offset:page.offset
                                                                 + page.limit]],
                   page, len(entries), request)


routes: list[BaseRoute] = [
    Route("/v1/connections/platforms", _platforms, methods=["GET"]),
    Route("/v1/connections/platforms/{platform}", _platform, methods=["GET"]),
    Route("/v1/connections/platforms/{platform}/new", _new, methods=["GET"]),
    Route("/v1/connections", by_method(GET=_list, POST=_add), methods=["GET", "POST"]),
    Route("/v1/connections/{id}", by_method(GET=_show, DELETE=_remove),
          methods=["GET", "DELETE"]),
    Route("/v1/connections/{id}/items", _items, methods=["GET"]),
]
