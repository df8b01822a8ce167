"""Storage platforms behind one small interface (see base.py), opened from a connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.connectors.base import Connector

if TYPE_CHECKING:
    from core.home import Home
    from core.state import Connection, State


@dataclass(frozen=True)
class Opening:
    """What a connector needs beyond its connection: the installation, and what it is for."""

    state: State
    home: Home
    interactive: bool = False  # browsing: may spend the API budget's reserve
    wait_for_budget: bool = True  # a job waits for a spent budget's reset (else: paused)
    stop: asyncio.Event | None = None  # a job's stop signal: it also ends a wait for the budget
    # tells the user running a job something, and records it in the audit log: (kind, message)
    # with kind "info" or "warning"
    notify: Callable[[str, str], Awaitable[None]] | None = None


def open_connector(connection: Connection, secrets: dict[str, Any],
                   opening: Opening | None = None) -> Connector:
    """The connector for a stored connection and its secrets."""
    if connection.platform == "local":
        from core.connectors.local import LocalConnector

        return LocalConnector(connection.config["path"],
                              fsync=connection.config.get("fsync", True))
    if connection.platform == "procore":
        from core.connectors.procore import open_procore

        if opening is None:
            raise ValueError("a Procore connection needs the installation's state and home")
        return open_procore(connection, secrets, opening)
    if connection.platform == "smb":
        from core.connectors.smb import open_smb

        return open_smb(connection, secrets)
    if connection.platform == "rclone":
        from core.connectors.rclone import open_rclone

        return open_rclone(connection)
    raise ValueError(f"connection {connection.name!r}: unknown platform {connection.platform!r}")
