"""The SMB connector against a real Samba server (tests/samba.py): every method, checked on the
share's disk or with Samba's own smbclient, its naming rules, and its failures."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from core.connectors.base import (
    LEFTOVER_PART,
    TRASH_FOLDER,
    AlreadyExists,
    AuthExpired,
    ConnectorError,
    Entry,
    Fatal,
    InvalidPath,
    NotFound,
)
from core.connectors.smb import SmbConnector
from tests.samba import READ_ONLY_SHARE, SambaServer, SmbFolder


def connector(samba: SambaServer, path: str = "", **overrides: object) -> SmbConnector:
    options: dict = {"server": samba.host, "port": samba.port, "share": samba.share,
                     "username": samba.username, "password": samba.password, "path": path}
    options.update(overrides)
    return SmbConnector(**options)


@pytest.fixture
async def smb(smb_folder: SmbFolder) -> AsyncIterator[SmbConnector]:
    opened = connector(smb_folder.server, smb_folder.path)
    yield opened
    await opened.close()


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(smb: SmbConnector, path: str) -> bytes:
    return b"".join([chunk async for chunk in smb.read(path, Entry(path, False))])


async def test_write_read_list_stat(smb: SmbConnector, smb_folder: SmbFolder) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    entry = await smb.write("big.bin", chunks_of(data[:1000], data[1000:]), size=len(data),
                            mtime=1_600_000_000.25)
    assert (entry.name, entry.size, entry.mtime) == ("big.bin", len(data), 1_600_000_000.25)
    on_disk = smb_folder.local / "big.bin"
    assert on_disk.read_bytes() == data
    assert on_disk.stat().st_mtime_ns == 1_600_000_000_250_000_000
    assert entry.native_id == str(on_disk.stat().st_ino)
    assert await read_all(smb, "big.bin") == data
    listed = {e.name: e for e in await smb.list_dir("")}
    assert listed == {"big.bin": entry}
    assert await smb.stat("big.bin") == entry
    assert (await smb.stat("")).is_dir
    # Samba's own client sees the same bytes
    got = smb_folder.local.parent / f"{smb_folder.local.name}.check"
    smb_folder.server.smbclient(f"get {smb_folder.path}/big.bin {got}")
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(data).digest()
    got.unlink()
