"""kill -9 of `dryviq-tui jobs run` while a large file is on its way to an SMB share or an S3
bucket, then a second run: nothing partial was ever visible under a file's real name, the
second run completes with every byte in place, and files finished before the kill are not
sent again (same inode on the share, a single version in the versioned bucket).

The source is a local folder, so the test can see the large file in flight: the position of
the descriptor reading it, in the killed process or any process it started (rclone)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e import other_sides
from tests.e2e.conftest import Cli, clean_env, dryviq_command
from tests.e2e.other_sides import (
    CONNECTION,
    MIB,
    OtherSide,
    files,
)
from tests.e2e.test_procore import job

pytestmark = pytest.mark.slow
side, rclone_environment = other_sides.side, other_sides.rclone_environment  # the fixtures

BIG = "z/Model.ifc"
BIG_SIZE = 24 * MIB
RATE = 12 * MIB  # bytes a second: the large file is in flight for about two seconds
GIVE_UP = 60  # seconds without the large file in flight: the test fails, it does not hang


def children(pid: int) -> list[int]:
    """Every process descended from `pid`."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError):
                found += map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return found + [grandchild for child in found for grandchild in children(child)]


def read_position(pids: list[int], path: Path) -> int:
    """How far any of `pids` has read into the file at `path` (0 if none has it open)."""
    furthest = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                        info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                        furthest = max(furthest, int(info.split()[1]))  # "pos: N"
    return furthest


def gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return status.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie waiting to be reaped


def kill_mid_file(cli: Cli, source: Path, tmp_path: Path) -> tuple[int, list[int]]:
    """Start the run, kill -9 it once the large file is partly read; (bytes read by then,
    the processes it had started)."""
    log = tmp_path / "killed-run.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run",
                                 "resume"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=clean_env())
    try:
        deadline = time.monotonic() + GIVE_UP
        while (position := read_position([proc.pid, *children(proc.pid)], source / BIG)
               ) < 4 * MIB or position >= BIG_SIZE:
            assert proc.poll() is None, f"the run ended before the kill:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"never saw {BIG} in flight:\n{log.read_text()}"
            time.sleep(0.005)
        started = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()  # no-op once dead; never leave a run behind a failed assertion
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return position, started


def test_kill_mid_file_then_resume(cli: Cli, tmp_path: Path, side: OtherSide) -> None:
    source = tmp_path / "files"
    tree = {f"a/Sheet {n}.pdf": os.urandom(4000 + n) for n in range(6)}
    tree[BIG] = os.urandom(BIG_SIZE)
    for rel, data in tree.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(data)
    cli("connections", "add", "local", "files", "--path", source)
    job(cli, tmp_path, "resume", ("files", "/"), (CONNECTION, "/"),
        performance={"upload": {"bytes_per_second": RATE}})

    position, started = kill_mid_file(cli, source, tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not all(map(gone, started)) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in started if not gone(pid)]
        assert not left, f"processes the killed run started outlived it: {left}"
    finally:
        for pid in started:  # ours (started by the run this test started): end them
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    visible = files(side)  # temporary files under other names may remain until the next run
    assert BIG not in visible, f"{BIG} visible with {len(visible[BIG])} of {BIG_SIZE} bytes"
    finished = {rel: data for rel, data in visible.items() if rel in tree}
    leftovers = sorted(set(visible) - set(tree))  # the next run clears them
    for rel, data in finished.items():
        assert data == tree[rel], f"{rel} visible with {len(data)} bytes, not its own"
    before = side.identities()

    done = cli.json("jobs", "run", "resume")
    assert done["status"] == "completed" and done["stats"]["failed"] == 0, done
    assert files(side) == tree  # every byte, and no temporary file left behind
    after = side.identities()
    again = sorted(rel for rel in finished if after[rel] != before[rel])
    assert not again, f"finished before the kill, sent again: {again}"

    # the next run sends what was not finished, and only that (a file finished just before
    # the kill, its record not yet written, is found in step instead of sent again)
    assert done["stats"]["transferred"] == len(tree) - len(finished), done
    killed = cli.json("jobs", "history", "resume")[1]
    assert killed["status"] == "interrupted", killed
    print(f"\n{side.name}: killed with {position:,} of {BIG_SIZE:,} bytes read; "
          f"{len(finished)} files complete at the kill, other files there {leftovers}; the "
          f"killed run counted {killed['stats']['transferred']}, the next "
          f"{done['stats']['transferred']}")
