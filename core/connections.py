"""Adding, describing and testing connections: shared by the CLI and the TUI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.cli.output import count
from core.connectors import Opening, open_connector
from core.connectors.base import ConnectorError, InvalidPath
from core.home import ConfigError, Home
from core.paths import name_key, name_problem, normalize_path, segment_problem
from core.state import Connection, State, StateError


class ConnectionInputError(ValueError):
    """What the user gave cannot make a connection; the message says what to fix."""


def check_name(name: str) -> str:
    """Connection names appear in `NAME:/path` and in job JSON, so they avoid ':', and in
    tables, so they hold no control characters and are at most NAME_MAX long."""
    name = name.strip()
    if not name:
        raise ConnectionInputError("a connection needs a name")
    problem = name_problem(name)
    if problem:
        raise ConnectionInputError(f"connection name: {problem}")
    if ":" in name:
        raise ConnectionInputError(f"connection name {name!r}: ':' is not allowed "
                                   "(it separates the name from a path, as in NAME:/folder)")
    return name


async def check_new_name(state: State, name: str) -> str:
    """`name` checked (check_name) and free: no connection's name equals it as name_key
    compares them, so a person never has to tell "Plans" from "plans" (lookups by name stay
    exact; the state file only refuses an exact twin)."""
    name = check_name(name)
    key = name_key(name)
    taken = next((c for c in await state.list_connections() if name_key(c.name) == key), None)
    if taken is None:
        return name
    same = "" if taken.name == name else f" ({name!r} differs from it only in case or spacing)"
    raise ConnectionInputError(f"a connection named {taken.name!r} already exists{same}; "
                               "choose another name")


def describe(connection: Connection) -> str:
    """Where a connection points, in one short line (no secrets)."""
    config = connection.config
    if connection.platform == "local":
        flush = "" if config.get("fsync", True) else " (no fsync)"
        return config["path"] + flush
    if connection.platform == "procore":
        host = config["domain"].split("://", 1)[-1]
        return f"{config['company_name']} / {config['project_name']} ({host})"
    if connection.platform == "smb":
        port = "" if config["port"] == 445 else f":{config['port']}"
        sealed = ", encrypted" if config.get("encrypt") else ""
        return (f"//{config['server']}{port}/{config['share']}{config['path']} "
                f"(as {config['username']}{sealed})")
    if connection.platform == "rclone":
        where = f" ({config['config']})" if config.get("config") else ""
        return f"{config['remote']}{where}"
    return connection.platform


def _location(connection: Connection, path: str) -> tuple[str, str]:
    """Where a folder of a connection really is: local folders by their real path, so two
    connections onto the same disk compare; anything else by connection and path."""
    config = connection.config
    if connection.platform == "local":
        return "local", os.path.realpath(os.path.join(config["path"], path))
    if connection.platform == "smb":
        share = f"smb://{config['server'].lower()}:{config['port']}/{config['share'].lower()}"
        return share, "/" + normalize_path(f"{config['path']}/{path}").lower()
    if connection.platform == "rclone":  # regardless of case, as OneDrive and Drive compare
        remote, _, under = config["remote"].partition(":")
        return (f"rclone:{config.get('config')}:{remote}",
                "/" + normalize_path(f"{under}/{path}").lower())
    return connection.id, "/" + path


def overlap(source: Connection, source_path: str, destination: Connection,
            destination_path: str) -> str | None:
    """Why a transfer between these folders would feed on itself, or None if it would not."""
    (a_key, a), (b_key, b) = _location(source, source_path), _location(destination,
                                                                        destination_path)
    if a_key != b_key:
        return None
    if a == b:
        return "the destination is the source folder itself"
    if b.startswith(a.rstrip("/") + "/"):
        return "the destination is inside the source folder, so a run would copy its own output"
    if a.startswith(b.rstrip("/") + "/"):
        return "the source is inside the destination folder"
    return None


async def add_local(state: State, name: str, path: str, *, fsync: bool = True) -> Connection:
    name = await check_new_name(state, name)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConnectionInputError(f"no such folder: {path}")
    config = {"path": str(folder.resolve()), "fsync": fsync}
    try:
        return await state.add_connection(name, "local", config)
    except StateError as exc:
        raise ConnectionInputError(str(exc)) from None


def smb_config(*, server: str, share: str, username: str, port: int = 445, path: str = "",
               encrypt: bool = False) -> dict[str, Any]:
    """The stored config of an SMB connection, checked; ConnectionInputError names the field."""
    server, share, username = server.strip(), share.strip().strip("/\\"), username.strip()
    if not server or any(c in server for c in "/\\@ "):
        raise ConnectionInputError(f"server {server!r}: give a host name or address, as in "
                                   "fileserver.example.com or 10.0.0.5")
    if not share or any(c in share for c in "/\\"):
        raise ConnectionInputError(f"share {share!r}: give one share name, as in Projects "
                                   "(a folder inside it goes in the path)")
    if not username:
        raise ConnectionInputError("username: give the account, as in DOMAIN\\user or user")
    if not 0 < port < 65536:
        raise ConnectionInputError(f"port {port}: give a number from 1 to 65535")
    try:
        folder = normalize_path(path.replace("\\", "/"))
    except InvalidPath as exc:
        raise ConnectionInputError(f"path: {exc}") from None
    return {"server": server, "port": port, "share": share, "path": "/" + folder if folder else "",
            "username": username, "encrypt": encrypt}


def rclone_config(*, remote: str, config: str | None = None) -> dict[str, Any]:
    """The stored config of an rclone connection, checked; ConnectionInputError names the field."""
    remote = remote.strip()
    name, colon, under = remote.partition(":")
    if not colon or not name:
        raise ConnectionInputError(f"remote {remote!r}: give REMOTE:path, as in "
                                   "sharepoint:Projects or s3:bucket/folder (the remote as "
                                   "`rclone listremotes` names it)")
    if "," in name:  # rclone's inline options: a key given there would sit in plain sight
        raise ConnectionInputError(f"remote {name!r}: set a remote's options in rclone's "
                                   "config (`rclone config`), not in the connection's name")
    problem = next(filter(None, map(segment_problem, filter(None, under.split("/")))), None)
    if problem:
        raise ConnectionInputError(f"remote {remote!r}: {problem}")
    if config is not None:
        file = Path(config).expanduser()
        if not file.is_file():
            raise ConnectionInputError(f"config {config}: no such file")
        config = str(file.resolve())
    return {"remote": remote, "config": config}


async def _probe(state: State, home: Home, connection: Connection,
                 secrets: dict[str, Any]) -> None:
    """List the connection's root: ConnectionInputError, saying why, when that fails."""
    connector = open_connector(connection, secrets, Opening(state, home, interactive=True))
    try:
        await connector.list_dir("")
    except ConnectorError as exc:  # its message names the share or remote
        raise ConnectionInputError(str(exc)) from None
    finally:
        await connector.close()


async def add_checked(state: State, home: Home, name: str, platform: str,
                      config: dict[str, Any], secrets: dict[str, Any] | None = None,
                      ) -> Connection:
    """Save a connection only once it works (its root lists), so a wrong password, a missing
    share or an unreachable host is reported now and nothing is saved."""
    name = await check_new_name(state, name)
    await _probe(state, home, Connection("", name, platform, config, 0.0), secrets or {})
    try:
        return await state.add_connection(name, platform, config, secrets)
    except StateError as exc:
        raise ConnectionInputError(str(exc)) from None


async def change_password(state: State, home: Home, connection: Connection,
                          password: str) -> None:
    """Store an SMB connection's new password once the share accepts it (office passwords
    expire; the connection's jobs keep their connection)."""
    secrets = {**await state.connection_secrets(connection.id), "password": password}
    await _probe(state, home, connection, secrets)
    await state.save_connection_secrets(connection.id, secrets)


async def test_connection(state: State, home: Home, connection: Connection) -> str:
    """List the connection's root (and, where there is a sign-in, say who is signed in);
    returns a success message or raises ConnectorError."""
    connector = open_connector(connection, await state.connection_secrets(connection.id),
                               Opening(state, home, interactive=True))
    try:
        identity = getattr(connector, "identity", None)
        who = f"signed in as {await identity()}; " if identity else ""
        entries = await connector.list_dir("")
    finally:
        await connector.close()
    return (f"Connection test succeeded: {who}{describe(connection)} "
            f"({count(len(entries), 'item')} at the top)")


async def removal_refusal(state: State, connection: Connection) -> str | None:
    """Why a connection cannot be removed now (jobs use it), or None."""
    jobs = await state.jobs_using(connection.id)
    if not jobs:
        return None
    return (f"connection {connection.name!r} is used by {count(len(jobs), 'job')}: "
            f"{', '.join(repr(j.name) for j in jobs)}; remove {'it' if len(jobs) == 1 else 'them'}"
            " first")


async def remove_connection(state: State, home: Home, connection: Connection) -> str | None:
    """Remove a connection no job uses, revoking a Procore sign-in so the token dies at
    Procore too. Returns a warning when the revocation failed (the connection is removed
    anyway); raises ConnectionInputError when jobs use it."""
    refusal = await removal_refusal(state, connection)
    if refusal:
        raise ConnectionInputError(refusal)
    warning = None
    if connection.platform == "procore":
        warning = await _revoke_sign_in(state, home, connection)
    await state.remove_connection(connection.id)
    return warning


async def _revoke_sign_in(state: State, home: Home, connection: Connection) -> str | None:
    """Forget the stored tokens first, so they are gone here whatever Procore answers (or if
    the revocation is interrupted), then revoke the pair at Procore."""
    from core.auth import SignInError, Token, revoke
    from core.connectors.procore import procore_app

    secrets = await state.connection_secrets(connection.id)
    stored = secrets.pop("token", None)
    if stored is None:
        return None
    await state.save_connection_secrets(connection.id, secrets)
    try:
        await revoke(procore_app(connection.config, secrets, home.config()),
                     Token.from_dict(stored))
    except (SignInError, ConnectorError, ConfigError, KeyError, TypeError, ValueError) as exc:
        return (f"the Procore sign-in could not be revoked ({exc}); it was forgotten here and "
                "expires on its own (or revoke it in Procore's App Management)")
    return None
