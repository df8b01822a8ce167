"""Storage platforms behind one small interface (see base.py), opened from a connection."""

from __future__ import annotations

from typing import Any

from core.connectors.base import Connector


def open_connector(connection: Any, secrets: dict[str, Any]) -> Connector:
    """The connector for a stored connection (`core.state.Connection`) and its secrets."""
    if connection.platform == "local":
        from core.connectors.local import LocalConnector

        return LocalConnector(connection.config["path"],
                              fsync=connection.config.get("fsync", True))
    raise ValueError(f"connection {connection.name!r}: unknown platform {connection.platform!r}")
