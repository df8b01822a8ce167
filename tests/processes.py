"""Looking at other processes through /proc: which are a process's children, which are gone."""

from __future__ import annotations

import contextlib
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


def _sockets(pid: int) -> set[int]:
    """The inodes of the sockets `pid` holds open."""
    found = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    found.add(int(target[8:-1]))
    return found


def _tcp_connections() -> dict[int, tuple[int, int]]:
    """Every TCP socket of this machine by inode: (local port, remote port)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], int(fields[9])
                found[inode] = (int(local.rsplit(":", 1)[1], 16),
                                int(remote.rsplit(":", 1)[1], 16))
    return found


def serving_process(candidates: set[int], server_port: int) -> list[int]:
    """Of `candidates` (a server's worker processes), those holding the other end of a TCP
    connection this process made to `server_port`."""
    connections = _tcp_connections()
    ours = {connections[inode][0] for inode in _sockets(os.getpid())
            if inode in connections and connections[inode][1] == server_port}
    return [pid for pid in candidates
            if any(inode in connections and connections[inode][0] == server_port
                   and connections[inode][1] in ours for inode in _sockets(pid))]


def copy_workers_of(pid: int) -> list[int]:
    return [child for child, command in children_of(pid).items() if "copy_workers" in command]


def exited(pid: int) -> bool:
    """Whether the process is gone (or a zombie nobody has reaped yet)."""
    try:
        return _stat_fields(pid)[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # gone before or while it was read
        return True


def wait_until_exited(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not exited(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
