"""Temporary files of writes in progress on storage that several machines may write at once
(an SMB share, an rclone remote): `.dryviq-<host>-<pid>-<8 hex>.part`.

A temporary file whose writer is gone is a leftover, which the engine lists as such and
removes. On this machine the pid tells whether its writer lives; a pid of another machine
means nothing here, so another machine's file is a leftover only once nothing has changed it
for LEFTOVER_AGE (a writer at work sends a chunk every second or so, and one that has sent
nothing for an hour is gone or will fail anyway). The local connector keeps a pid-only
scheme: a local disk has one host.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import socket
import time

from core.connectors.local import _writer_alive

TEMP_PREFIX = ".dryviq-"
LEFTOVER_AGE = 3600  # seconds
_TEMP_NAME = re.compile(r"\.dryviq-([0-9a-f]{8})-(\d{1,7})-[0-9a-f]{8}\.part")
_tokens = itertools.count(int.from_bytes(os.urandom(4)))  # unique here, random across processes


def _host_id() -> str:
    """This machine, in 8 hex digits: whose writers a temporary file's pid belongs to."""
    try:
        with open("/etc/machine-id", "rb") as file:
            machine = file.read().strip()
    except OSError:
        machine = b""
    return hashlib.sha256(machine + socket.gethostname().encode()).hexdigest()[:8]


HOST = _host_id()


def temp_name() -> str:
    """A new temporary file's name, for a write of this process."""
    return f"{TEMP_PREFIX}{HOST}-{os.getpid()}-{next(_tokens) & 0xFFFFFFFF:08x}.part"


def writer_at_work(name: str, last_change: float | None) -> bool | None:
    """None when `name` is not a temporary file's; else whether its writer may still be at
    work. `last_change` is the file's latest write or change (epoch seconds), None where the
    storage keeps no time: another machine's file is then never taken for a leftover."""
    match = _TEMP_NAME.fullmatch(name) if name.startswith(TEMP_PREFIX) else None
    if match is None:
        return None
    if match[1] == HOST:
        return _writer_alive(int(match[2]))
    return last_change is None or time.time() - last_change < LEFTOVER_AGE
