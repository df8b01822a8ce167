"""Uploads to Procore end to end: the real `dryviq-tui jobs run` against the sandbox over HTTP.

A 100 MiB file goes in 8 MiB segments (config.toml's `[procore] segment_size_mib`), the run is
killed with SIGKILL once some of its segment PUTs are stored, and the next run finishes it: it
sends only the segments the sandbox has not stored, or (when the upload expired meanwhile)
starts a fresh one. The sandbox holds the kill's next segment PUT unstored until the process
is dead, so what was stored at the kill is known exactly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.sandbox import SandboxThread
from tests.e2e.conftest import Cli, dryviq_command
from tests.e2e.test_procore import add_procore, env, job, project_id

pytestmark = pytest.mark.slow

MIB = 1 << 20
SIZE = 100 * MIB
SEGMENTS = 13  # 12 of 8 MiB and the last 4 MiB
STORED_AT_KILL = 5
UPLOADS = "POST /rest/v1.1/projects/{project_id}/uploads"
JOB = "large upload"


def configure(cli: Cli, text: str) -> None:
    """config.toml for the home (private, as dryviq-tui requires: it may hold secrets)."""
    cli.home.mkdir(parents=True, exist_ok=True)
    path = cli.home / "config.toml"
    path.write_text(text)
    path.chmod(0o600)


@pytest.fixture
def large(tmp_path: Path, cli: Cli, sandbox: SandboxThread) -> tuple[Path, bytes]:
    """A home whose config.toml sends files above 8 MiB in segments, a job copying a folder
    with one 100 MiB file to /Imports, and that file's bytes."""
    configure(cli, "[procore]\nsegment_size_mib = 8\n")
    root = tmp_path / "files"
    root.mkdir()
    data = os.urandom(SIZE)
    (root / "Model.rvt").write_bytes(data)
    cli("connections", "add", "local", "files", "--path", root)
    add_procore(cli, sandbox)
    job(cli, tmp_path, JOB, ("files", "/"), ("procore", "/Imports"))
    return root, data


def peak_memory(pid: int) -> int:
    """The process's peak resident memory so far in bytes (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in status.splitlines()
                 if line.startswith("VmHWM:")), 0)


def run_job(cli: Cli, tmp_path: Path) -> tuple[int, str, int]:
    """`jobs run` as a child process: its exit code, its output, and its peak memory as last
    seen while it ran (read from /proc, so 0 where there is none)."""
    log_path = tmp_path / "rerun.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run",
                                 JOB], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env())
        peak = 0
        while proc.poll() is None:
            peak = max(peak, peak_memory(proc.pid))
            time.sleep(0.01)
    return proc.returncode, log_path.read_text(), peak


@contextlib.contextmanager
def held_run(cli: Cli, world, log_path: Path) -> Iterator[subprocess.Popen]:
    """The job run in a child process, yielded once STORED_AT_KILL segments are stored and the
    next PUT is held by the sandbox, unstored; never left running after the block."""
    world.hold_segments_from = STORED_AT_KILL
    with log_path.open("w") as log:
        proc = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run",
                                 JOB], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env())
        try:
            while world.segment_puts_begun <= STORED_AT_KILL:
                if proc.poll() is not None:
                    pytest.fail(f"the run ended (exit {proc.returncode}) before the hold:\n"
                                f"{log_path.read_text()}")
                time.sleep(0.005)
            yield proc
        finally:
            proc.kill()  # no-op once it ended
            proc.wait()
            world.hold_segments_from = None


def killed_mid_upload(cli: Cli, sandbox: SandboxThread, tmp_path: Path) -> None:
    """Run the job and SIGKILL it once STORED_AT_KILL segments are stored (the next one is
    held by the sandbox, unstored, until the process is dead)."""
    world = sandbox.world
    with held_run(cli, world, tmp_path / "killed.log") as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert sorted(i for _, i in world.segment_puts) == list(range(STORED_AT_KILL))


def one_document(sandbox: SandboxThread, data: bytes) -> None:
    world = sandbox.world
    project = project_id(world)
    imported = {p: c for p, c in world.tree(project).items() if p.startswith("Imports")}
    assert imported == {"Imports": None, "Imports/Model.rvt": data}
    assert world.versions(project, "Imports/Model.rvt") == 1
    assert world.storage_auth_refusals == 0


def test_a_killed_segmented_upload_resumes_without_resending(cli: Cli, sandbox: SandboxThread,
                                                            large, tmp_path: Path) -> None:
    _, data = large
    killed_mid_upload(cli, sandbox, tmp_path)
    world = sandbox.world
    code, output, peak = run_job(cli, tmp_path)
    assert code == 0 and "completed: 1 file transferred" in output, output
    assert f"{STORED_AT_KILL} of {SEGMENTS} segments are already stored" in output
    one_document(sandbox, data)
    assert world.requests[UPLOADS] == 1  # the killed run's upload, resumed
    stored = sorted(world.segment_puts.items())
    assert [index for (_, index), _ in stored] == list(range(SEGMENTS))
    assert all(count == 1 for _, count in stored), stored  # no segment stored twice
    # memory stays flat: the file is spooled to disk and sent from there, never held whole
    assert peak < SIZE, f"the run's peak RSS was {peak / MIB:.0f} MiB"
    print(f"\nresumed run: {SEGMENTS - STORED_AT_KILL} of {SEGMENTS} segments sent, peak RSS "
          f"{peak / MIB:.0f} MiB for a {SIZE // MIB} MiB file")
    with sqlite3.connect(cli.home / "state.db") as db:  # the resume record is gone
        assert db.execute("SELECT count(*) FROM segmented_uploads").fetchone() == (0,)


def test_an_upload_that_expired_meanwhile_starts_again(cli: Cli, sandbox: SandboxThread,
                                                       large, tmp_path: Path) -> None:
    _, data = large
    killed_mid_upload(cli, sandbox, tmp_path)
    world = sandbox.world
    world.clock = lambda: time.time() + 3601  # an hour and a second later
    code, output, _ = run_job(cli, tmp_path)
    assert code == 0 and "completed: 1 file transferred" in output, output
    one_document(sandbox, data)
    assert world.requests[UPLOADS] == 2  # a fresh upload
    uploads = {uuid for uuid, _ in world.segment_puts}
    assert len(uploads) == 2
    assert sum(world.segment_puts.values()) == STORED_AT_KILL + SEGMENTS


def test_a_file_outlasting_the_upload_hour_fails_saying_so(cli: Cli, sandbox: SandboxThread,
                                                           large, tmp_path: Path) -> None:
    """The sandbox's clock passes the upload's hour while a segment PUT is held: the storage
    host refuses it, and the run reports the file as failed for the one-hour window."""
    world = sandbox.world
    log_path = tmp_path / "late.log"
    with held_run(cli, world, log_path) as proc:
        start = world.clock()
        world.clock = lambda: start + 3601
        world.hold_segments_from = None
        proc.wait()
    output = log_path.read_text()
    assert proc.returncode != 0, output
    assert "could not be sent within Procore's one-hour upload window" in output, output
    assert "cannot be sent this way" in output
    print(f"\nexit {proc.returncode}:\n{output}")
    project = project_id(world)
    assert "Imports/Model.rvt" not in world.tree(project)
    assert world.requests[UPLOADS] == 1  # no fresh upload after the hour
    with sqlite3.connect(cli.home / "state.db") as db:  # no record pretends to resume it
        assert db.execute("SELECT count(*) FROM segmented_uploads").fetchone() == (0,)


def test_the_deprecated_direct_path_warns_once_per_run(cli: Cli, sandbox: SandboxThread,
                                                       tmp_path: Path) -> None:
    configure(cli, "[procore]\ndirect_upload_max = 1024\n")
    root = tmp_path / "files"
    root.mkdir()
    for n in range(3):
        (root / f"note {n}.txt").write_bytes(b"small" * (n + 1))
    (root / "large.bin").write_bytes(os.urandom(4096))
    cli("connections", "add", "local", "files", "--path", root)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "direct", ("files", "/"), ("procore", "/Direct"))
    ran = cli("jobs", "run", "direct", env=env())
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "deprecated" in warnings[0], ran.stderr
    assert "direct_upload_max" in warnings[0]
    assert sandbox.world.requests[UPLOADS] == 1  # large.bin only
    with sqlite3.connect(cli.home / "state.db") as db:
        audited = db.execute("SELECT detail FROM audit_events WHERE level = 'warn'").fetchall()
    assert len(audited) == 1 and "deprecated" in audited[0][0]
