"""`dryviq-tui connections ...` and `dryviq-tui ls`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.cli import UsageError, opened_state, procore, read_secret
from core.cli.output import emit_json, reply, size, table, when
from core.connections import (
    ConnectionInputError,
    add_checked,
    add_local,
    change_password,
    describe,
    rclone_config,
    remove_connection,
    smb_config,
    test_connection,
)
from core.connectors import Opening, open_connector
from core.connectors.base import Connector, ConnectorError, Entry
from core.paths import join, normalize_path, printable
from core.state import Connection, State


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    group = commands.add_parser("connections", help="add, list, test and remove connections")
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add a connection")
    platforms = add.add_subparsers(dest="platform", metavar="PLATFORM", required=True)
    local = platforms.add_parser("local", help="a folder on this machine or a mounted share",
                                 **leaf)
    local.add_argument("name")
    local.add_argument("--path", required=True, help="the folder")
    local.add_argument("--no-fsync", dest="fsync", action="store_false",
                       help="do not flush files to disk before publishing them (faster for "
                            "many small files; files are still published whole, but a power "
                            "cut may leave recent ones empty)")
    local.set_defaults(handler=_add_local)
    smb = platforms.add_parser("smb", help="an SMB 2/3 file share (Windows, Samba, a NAS), "
                                           "without mounting it", **leaf)
    smb.add_argument("name")
    smb.add_argument("--server", required=True, help="host name or address of the file server")
    smb.add_argument("--port", type=int, default=445, help="default: 445")
    smb.add_argument("--share", required=True, help="the share's name, as in Projects")
    smb.add_argument("--path", default="", help="a folder inside the share (default: its root)")
    smb.add_argument("--username", required=True, help="DOMAIN\\user, user@domain or user")
    smb.add_argument("--password-env", metavar="VAR",
                     help="environment variable holding the password (else: prompt, or the "
                          "first line of stdin)")
    smb.add_argument("--encrypt", action="store_true",
                     help="require SMB 3 encryption of everything sent")
    smb.set_defaults(handler=_add_smb)
    rclone = platforms.add_parser(
        "rclone", help="any rclone remote: S3, SharePoint/OneDrive, Google Drive, Box, Dropbox, "
                       "SFTP, WebDAV, ... (needs rclone 1.60 or newer)", **leaf)
    rclone.add_argument("name")
    rclone.add_argument("--remote", required=True, metavar="REMOTE:path",
                        help="a remote from rclone's config and a folder in it")
    rclone.add_argument("--config", metavar="FILE",
                        help="rclone's config file (default: rclone's own, as `rclone config "
                             "file` shows)")
    rclone.set_defaults(handler=_add_rclone)
    procore.register(platforms, leaf)
    procore.register_signin(sub, leaf)
    password = sub.add_parser("password", help="give an SMB connection its new password (its "
                                                "jobs keep using it)", **leaf)
    password.add_argument("name", help="connection name or id")
    password.add_argument("--password-env", metavar="VAR",
                          help="environment variable holding the password (else: prompt, or "
                               "the first line of stdin)")
    password.set_defaults(handler=_password)
    sub.add_parser("list", help="list connections", **leaf).set_defaults(handler=_list)
    for action, handler, text in (("show", _show, "show one connection"),
                                  ("test", _test, "check that a connection works"),
                                  ("remove", _remove, "remove a connection")):
        one = sub.add_parser(action, help=text, **leaf)
        one.add_argument("name", help="connection name or id")
        one.set_defaults(handler=handler)
    ls = commands.add_parser("ls", help="list a folder of a connection", **leaf)
    ls.add_argument("target", metavar="NAME[:/path]")
    ls.add_argument("-R", "--recursive", action="store_true", help="list subfolders too")
    ls.set_defaults(handler=_ls)


def _summary(connection: Connection) -> dict[str, Any]:
    return {"id": connection.id, "name": connection.name, "platform": connection.platform,
            "location": describe(connection), "config": connection.config,
            "created_at": connection.created_at}


async def find(state: State, name: str) -> Connection:
    connection = await state.find_connection(name)
    if connection is None:
        known = ", ".join(c.name for c in await state.list_connections()) or "none yet"
        raise UsageError(f"no connection named or with id {name!r} (connections: {known})")
    return connection


async def _add_local(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        try:
            connection = await add_local(state, args.name, args.path, fsync=args.fsync)
        except ConnectionInputError as exc:
            raise UsageError(str(exc)) from None
    return _added(args, connection)


def _added(args: argparse.Namespace, connection: Connection) -> int:
    reply(args, _summary(connection), printable(
        f"Added connection {connection.name} ({connection.id}): {describe(connection)}"))
    return 0


async def _add_smb(args: argparse.Namespace) -> int:
    try:
        config = smb_config(server=args.server, port=args.port, share=args.share,
                            path=args.path, username=args.username, encrypt=args.encrypt)
    except ConnectionInputError as exc:
        raise UsageError(str(exc)) from None
    password = read_secret("--password-env", args.password_env, "Password: ")
    return await _add_checked(args, "smb", config, {"password": password})


async def _add_rclone(args: argparse.Namespace) -> int:
    try:
        config = rclone_config(remote=args.remote, config=args.config)
    except ConnectionInputError as exc:
        raise UsageError(str(exc)) from None
    return await _add_checked(args, "rclone", config)


async def _add_checked(args: argparse.Namespace, platform: str, config: dict[str, Any],
                       secrets: dict[str, Any] | None = None) -> int:
    async with opened_state(args) as (home, state):
        try:
            connection = await add_checked(state, home, args.name, platform, config, secrets)
        except ConnectionInputError as exc:
            raise UsageError(str(exc)) from None
    return _added(args, connection)


async def _password(args: argparse.Namespace) -> int:
    async with opened_state(args) as (home, state):
        connection = await find(state, args.name)
        if connection.platform != "smb":
            raise UsageError(f"{connection.name} is not an SMB share: only shares have a "
                             "password here (Procore: `connections signin`)")
        password = read_secret("--password-env", args.password_env, "New password: ")
        try:
            await change_password(state, home, connection, password)
        except ConnectionInputError as exc:
            raise UsageError(str(exc)) from None
    reply(args, _summary(connection), printable(
        f"Changed the password of {connection.name}: {describe(connection)} accepts it"))
    return 0


async def _list(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        connections = await state.list_connections()
    if args.json:
        emit_json([_summary(c) for c in connections])
    elif connections:
        print(table([(c.name, c.platform, describe(c), c.id) for c in connections],
                    ("NAME", "PLATFORM", "LOCATION", "ID")))
    else:
        print("No connections yet: dryviq-tui connections add local NAME --path FOLDER")
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        connection = await find(state, args.name)
        jobs = await state.jobs_using(connection.id)
    summary = _summary(connection) | {"jobs": [{"id": j.id, "name": j.name} for j in jobs]}
    if args.json:
        emit_json(summary)
        return 0
    print(table([("name", connection.name), ("id", connection.id),
                 ("platform", connection.platform), ("location", describe(connection)),
                 ("created", when(connection.created_at)),
                 ("jobs", ", ".join(j.name for j in jobs) or "none")], ("FIELD", "VALUE")))
    return 0


async def _test(args: argparse.Namespace) -> int:
    async with opened_state(args) as (home, state):
        connection = await find(state, args.name)
        try:
            message, ok = await test_connection(state, home, connection), True
        except ConnectorError as exc:
            message, ok = f"Connection test failed: {exc}", False
    reply(args, {"id": connection.id, "name": connection.name, "ok": ok, "message": message},
          printable(message))
    return 0 if ok else 1


async def _remove(args: argparse.Namespace) -> int:
    async with opened_state(args) as (home, state):
        connection = await find(state, args.name)
        try:
            warning = await remove_connection(state, home, connection)
        except ConnectionInputError as exc:
            raise UsageError(str(exc)) from None
    if warning:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    reply(args, {"id": connection.id, "name": connection.name, "removed": True},
          f"Removed connection {printable(connection.name)}")
    return 0


def _entry_json(path: str, entry: Entry) -> dict[str, Any]:
    return {"path": "/" + path, "name": entry.name, "is_dir": entry.is_dir,
            "size": entry.size, "mtime": entry.mtime, "native_id": entry.native_id,
            "skip_reason": entry.skip_reason}


async def _walk(connector: Connector, path: str, recursive: bool,
                ) -> list[tuple[str, Entry]]:
    found = []
    pending = [path]
    while pending:
        folder = pending.pop()
        for entry in sorted(await connector.list_dir(folder), key=lambda e: e.name):
            child = join(folder, entry.name)
            found.append((child, entry))
            if recursive and entry.is_dir and not entry.skip_reason:
                pending.append(child)
    return sorted(found, key=lambda pe: pe[0])


async def _ls(args: argparse.Namespace) -> int:
    name, _, raw_path = args.target.partition(":")
    try:
        path = normalize_path(raw_path)
    except ConnectorError as exc:
        raise UsageError(str(exc)) from None
    async with opened_state(args) as (home, state):
        connection = await find(state, name)
        try:
            connector = open_connector(connection,
                                       await state.connection_secrets(connection.id),
                                       Opening(state, home, interactive=True))
        except ConnectorError as exc:
            raise UsageError(f"{connection.name}: {exc}") from None
        try:
            found = await _walk(connector, path, args.recursive)
        except ConnectorError as exc:
            raise UsageError(f"{connection.name}:/{path}: {exc}") from None
        finally:
            await connector.close()
    if args.json:
        emit_json([_entry_json(p, e) for p, e in found])
        return 0
    rows = [("dir" if e.is_dir else "", "" if e.is_dir else size(e.size), when(e.mtime),
             "/" + p + ("/" if e.is_dir else "") + (f"  ({e.skip_reason})" if e.skip_reason
                                                    else "")) for p, e in found]
    print(table(rows, ("TYPE", "SIZE", "MODIFIED", "PATH")) if rows else "(empty folder)")
    return 0
