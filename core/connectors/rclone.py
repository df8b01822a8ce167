"""Any rclone remote, driven through `rclone rcd` on loopback. SKELETON: being written."""

from __future__ import annotations

from core.state import Connection


def open_rclone(connection: Connection):
    """The connector for a stored rclone connection: config keys remote ('name:path') and
    config (an rclone.conf path, or None for rclone's default)."""
    raise NotImplementedError


async def list_remotes(config: str | None = None) -> list[str]:
    """The remotes in rclone's config (`name:` each), for the app to offer; ConnectorError
    when rclone is missing (saying how to install it) or the config cannot be read."""
    raise NotImplementedError
