"""Ids the API gives things that have none of their own in the state: a transfer item is one
path of one job, so its id is that pair, encoded (opaque to clients, stable across runs)."""

from __future__ import annotations

import base64
import binascii


def item_id(job_id: str, path: str) -> str:
    raw = f"{job_id}\0{path}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_item_id(text: str) -> tuple[str, str] | None:
    """(job id, path) of an item id; None when `text` is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        job_id, sep, path = raw.decode().partition("\0")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (job_id, path) if sep and job_id else None
