"""SIGKILL `dryviq-tui jobs run` at 10 random moments of a 2,000-file copy, resume each time.

After every kill, each file visible under its real name at the destination must already be
complete (a partial file only ever exists as an unnamed file on Linux, or as a hidden
`.dryviq-*.part` where the file system has no unnamed files). A file that was
complete at a kill and is written again by the next run gets a new inode (writes publish a new
file by rename), so inodes count the files copied again per kill; at most `parallel_writes`
may be.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, assert_same_tree, dryviq_command, is_part, part_files

pytestmark = pytest.mark.slow

SEED = 20_240_611
FILES = 2_000
FOLDERS = 20  # 4 groups of 5 folders
BIG_FILES = 12  # 1-4 MiB each, so some kills land in the middle of a file
BIG_WITHIN = 1_200  # ... placed among the first files in march order, which the kills reach
MID_FILE_KILLS = (1, 4, 7)  # these kills wait until a big file is partly written
PARALLEL_WRITES = 2
KILLS = 10
KIB, MIB = 1 << 10, 1 << 20

JOB = "Resume after kill"
JOB_JSON = """{
  "name": "Resume after kill",
  "kind": "transfer",
  "transfer": {
    "transfer_type": "copy",
    "source": {"connection": {"id": "site files"}, "target": {"path": "/Project"}},
    "destination": {"connection": {"id": "office share"}, "target": {"path": "/Backup/Project"}},
    "performance": {"parallel_writes": {"requested": 2}}
  },
  "schedule": {"mode": "manual"}
}
"""


def write_source(root: Path, rnd: random.Random) -> dict[str, bytes]:
    contents = {}
    big = set(rnd.sample(range(BIG_WITHIN), BIG_FILES))
    per_folder = FILES // FOLDERS
    for i in range(FILES):
        folder = f"Group {i // (per_folder * 5)}/Folder {i // per_folder:02d}"
        size = rnd.randint(MIB, 4 * MIB) if i in big else rnd.randint(KIB, 64 * KIB)
        rel = f"{folder}/Document {i:04d}.pdf"
        contents[rel] = rnd.randbytes(size)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[rel])
    return contents


def scan(root: Path, pid: int) -> tuple[int, int]:
    """(files visible under a real name, bytes in the largest file process `pid` is writing:
    an unnamed one it holds open, or one of its named temporary files)."""
    visible = largest = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if not is_part(name):
                visible += 1
                continue
            if not name.startswith(f".dryviq-{pid}-"):
                continue
            with contextlib.suppress(FileNotFoundError):  # published or reaped meanwhile
                largest = max(largest, os.stat(os.path.join(folder, name)).st_size)
    with contextlib.suppress(FileNotFoundError):  # the process ended
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(FileNotFoundError):  # closed meanwhile
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(str(root)) and target.endswith(" (deleted)"):
                    largest = max(largest, os.stat(f"/proc/{pid}/fd/{fd}").st_size)
    return visible, largest


def visible_files(root: Path) -> list[str]:
    """Relative paths of the files at the destination under a real name."""
    return [os.path.relpath(os.path.join(folder, name), root)
            for folder, _, names in os.walk(root) for name in names if not is_part(name)]


def complete_files(destination: Path, source: Path, contents: dict[str, bytes],
                   ) -> dict[str, int]:
    """Check every visible destination file is complete; return their inodes by path."""
    inodes = {}
    for rel in visible_files(destination):
        path = destination / rel
        assert rel in contents, f"{rel} at the destination is not a source file"
        data = path.read_bytes()
        assert data == contents[rel], (
            f"{rel} is visible with {len(data)} bytes but the source has "
            f"{len(contents[rel])}: a partial or wrong file under its real name")
        info = path.stat()
        assert abs(info.st_mtime_ns - (source / rel).stat().st_mtime_ns) <= 1000, (
            f"{rel} is visible before its mtime was set")
        inodes[rel] = info.st_ino
    return inodes


def copied_again(before: dict[str, int], destination: Path) -> list[str]:
    """Files complete at a kill that the following run wrote again."""
    again = []
    for rel, inode in before.items():
        try:
            now = (destination / rel).stat().st_ino
        except FileNotFoundError:
            again.append(rel)  # complete at the kill, gone since: never acceptable
            continue
        if now != inode:
            again.append(rel)
    return sorted(again)


def wait_for_execution(home: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until the run has recorded its execution, so each kill leaves one in the history: the
    killed run's copy workers finish their batch after it, and the files they publish would
    otherwise count as this run's progress and bring its kill before it started."""
    while True:
        with contextlib.closing(sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True,
                                                timeout=10)) as db:
            if db.execute("SELECT 1 FROM executions WHERE pid = ?", (proc.pid,)).fetchone():
                return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before it started an execution")
        time.sleep(0.002)


def test_sigkill_at_random_moments_then_resume(tmp_path: Path, cli: Cli) -> None:
    rnd = random.Random(SEED)
    source_root, destination_root = tmp_path / "site", tmp_path / "share"
    source = source_root / "Project"
    destination = destination_root / "Backup" / "Project"
    contents = write_source(source, rnd)
    destination_root.mkdir()
    cli("connections", "add", "local", "site files", "--path", source_root)
    cli("connections", "add", "local", "office share", "--path", destination_root)
    job_file = tmp_path / "job.json"
    job_file.write_text(JOB_JSON, encoding="utf-8")
    cli("jobs", "create", "--file", job_file)

    recopies: list[int] = []  # per kill: files complete at the kill that were written again
    progress: list[int] = []  # complete files after each kill
    parts_left: list[int] = []  # temporary files present right after each kill
    in_flight: list[int] = []  # bytes of the largest file being written when it was killed
    complete: dict[str, int] | None = None
    for kill in range(KILLS):
        done = len(visible_files(destination))
        # Kill once this run has published some new files, then after a random pause, so the
        # kill lands while files are being written; some kills wait instead for a large file
        # to be partly written (past 64 KiB, the largest small file).
        mid_file = kill in MID_FILE_KILLS
        target = done + (150 if mid_file else rnd.randint(10, 40))
        pause = rnd.uniform(0.0, 0.02)
        log = (tmp_path / f"run-{kill}.log").open("w")
        proc = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run",
                                 JOB], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            wait_for_execution(cli.home, proc)
            target += len(visible_files(destination)) - done  # what the last workers added
            while True:
                visible, largest = scan(destination, proc.pid)
                if visible >= target or (mid_file and largest > 64 * KIB):
                    break
                if proc.poll() is not None:
                    pytest.fail(f"run {kill} ended (exit {proc.returncode}) before it could be "
                                f"killed:\n{(tmp_path / f'run-{kill}.log').read_text()}")
                time.sleep(0.001)
            if not mid_file:
                time.sleep(pause)
            assert proc.poll() is None, f"run {kill} finished before the kill"
            in_flight.append(scan(destination, proc.pid)[1])
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()  # no-op once dead; never leave a copy running behind a failure
            proc.wait()
            log.close()
        assert proc.returncode == -signal.SIGKILL

        now = complete_files(destination, source, contents)
        if complete is not None:
            recopies.append(len(copied_again(complete, destination)))
        complete = now
        progress.append(len(now))
        parts_left.append(len(part_files(destination)))

    final = cli.json("jobs", "run", JOB)
    assert complete is not None
    recopies.append(len(copied_again(complete, destination)))

    report = (f"complete files after each kill: {progress}; bytes of the largest file being "
              f"written at each kill: {in_flight}; temporary files left by each kill: "
              f"{parts_left}; files copied again after each kill: {recopies}")
    print("\n" + report)
    items = cli.json("jobs", "items", JOB)
    problems = [i for i in items if i["status"] != "success"]
    assert final["status"] == "completed", f"{final}\n{problems}"
    assert final["stats"]["failed"] == 0, f"{final}\n{problems}"
    assert_same_tree(source, destination)
    assert not part_files(destination_root), "temporary files remain"
    assert max(recopies) <= PARALLEL_WRITES, report
    assert progress == sorted(progress), report
    assert max(in_flight) > 64 * KIB, f"no kill landed in the middle of a large file: {report}"

    history = cli.json("jobs", "history", JOB)  # newest first
    assert [e["status"] for e in history] == ["completed"] + ["interrupted"] * KILLS, history
    # each killed run counts the files its items record as done (a file published just
    # before a kill, its record lost, is found in step by the next run)
    for execution in history[1:]:
        done = [i for i in items if i["execution_id"] == execution["id"]
                and not i["is_dir"] and i["action"] != "none"]
        assert execution["stats"]["transferred"] == len(done), execution
    files = [i for i in items if not i["is_dir"]]
    assert len(files) == FILES
    assert {i["status"] for i in files} == {"success"}, {
        i["path"]: i["status"] for i in files if i["status"] != "success"}


def committed_files(state_db: Path) -> int:
    """Files the running job's items record as copied, read beside it."""
    with contextlib.closing(sqlite3.connect(f"file:{state_db}?mode=ro", uri=True,
                                            timeout=30)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM items WHERE NOT is_dir AND "
                              "status = 'success' AND action != 'none'").fetchone()[0]
        except sqlite3.OperationalError:  # the tables are not made yet
            return 0


def test_history_counts_what_a_killed_run_committed(tmp_path: Path, cli: Cli) -> None:
    source = tmp_path / "site" / "Project"
    for i in range(3_000):
        path = source / f"Folder {i // 100:02d}" / f"Document {i:04d}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"%d" % i * 100)
    (tmp_path / "share").mkdir()
    cli("connections", "add", "local", "site files", "--path", tmp_path / "site")
    cli("connections", "add", "local", "office share", "--path", tmp_path / "share")
    job_file = tmp_path / "job.json"
    job_file.write_text(JOB_JSON, encoding="utf-8")
    cli("jobs", "create", "--file", job_file)
    proc = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run", JOB],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        while (committed := committed_files(cli.home / "state.db")) < 1_000:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()

    [killed] = cli.json("jobs", "history", JOB)
    assert killed["status"] == "interrupted"
    assert killed["stats"]["transferred"] >= committed, killed
    assert killed["stats"]["transferred"] == committed_files(cli.home / "state.db")
