"""Looking at other processes through /proc: which are a process's children, which are gone."""

from __future__ import annotations

import os
import time


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): state, ppid, ..."""
    with open(f"/proc/{pid}/stat") as status:
        return status.read().rsplit(")", 1)[1].split()


def children_of(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry))[1]) == pid:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    found[int(entry)] = cmdline.read().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # ended while we looked
    return found


def copy_workers_of(pid: int) -> list[int]:
    return [child for child, command in children_of(pid).items() if "copy_workers" in command]


def exited(pid: int) -> bool:
    """Whether the process is gone (or a zombie nobody has reaped yet)."""
    try:
        return _stat_fields(pid)[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_until_exited(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not exited(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
