"""SMB 2/3 file shares without mounting them (smbprotocol). SKELETON: being written."""

from __future__ import annotations

from typing import Any

from core.state import Connection


def open_smb(connection: Connection, secrets: dict[str, Any]):
    """The connector for a stored SMB connection: config keys server, port, share, path
    ('' or '/sub/folder'), username, encrypt; secrets {'password': ...}."""
    raise NotImplementedError
