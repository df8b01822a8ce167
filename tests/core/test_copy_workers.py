"""Copy worker processes: batches of small files copied outside the job's process.

Real worker processes throughout. The test's own in-process copy is swapped for a failure
wherever a batch must have gone to a worker, so a silent fallback cannot pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.connectors import copy_workers
from core.connectors.base import Entry
from core.connectors.copy_workers import CopyWorkers
from core.connectors.local import LocalConnector
from tests.processes import copy_workers_of, exited, wait_until_exited

MTIME = 1_600_000_000.5


@pytest.fixture
def trees(tmp_path: Path) -> tuple[LocalConnector, Path, Path]:
    """A source connector holding a.txt, b.txt and c.txt, its folder, and an empty folder."""
    source_root, destination_root = tmp_path / "src", tmp_path / "dst"
    source_root.mkdir()
    destination_root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (source_root / name).write_bytes(name.encode() * 100)
    return LocalConnector(source_root), source_root, destination_root


async def batch_of(source: LocalConnector, *names: str) -> list[tuple[str, object, float]]:
    entries = {entry.name: entry for entry in await source.list_dir("")}
    return [(name, source.local_file(name, entries[name]), MTIME) for name in names]


def copied(destination_root: Path, source_root: Path) -> list[str]:
    """Names at the destination whose bytes and mtime match the source's."""
    return sorted(name for name in os.listdir(destination_root)
                  if (destination_root / name).read_bytes() == (source_root / name).read_bytes()
                  and (destination_root / name).stat().st_mtime_ns == round(MTIME * 1e9))


async def with_workers(root: Path, count: int) -> tuple[LocalConnector, CopyWorkers]:
    """A destination connector at `root` whose `count` copy workers are running."""
    destination = LocalConnector(root, workers=count)
    workers = await destination.start_copy_workers()
    assert workers is not None and len(workers.pids) == count
    return destination, workers


async def in_this_process_forbidden(*args: object) -> None:
    raise AssertionError("copied in the test's process, not in a copy worker")


async def test_a_batch_goes_to_a_worker(
        trees: tuple[LocalConnector, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    source, source_root, destination_root = trees
    destination, _ = await with_workers(destination_root, 1)
    monkeypatch.setattr(LocalConnector, "_copy_small_here", in_this_process_forbidden)
    try:
        results = await destination.copy_small(await batch_of(source, "a.txt", "b.txt"))
    finally:
        await destination.close()
    assert [r.name for r in results if isinstance(r, Entry)] == ["a.txt", "b.txt"]
    assert copied(destination_root, source_root) == ["a.txt", "b.txt"]


async def test_a_dead_worker_s_batches_are_copied_here(
        trees: tuple[LocalConnector, Path, Path]) -> None:
    source, source_root, destination_root = trees
    destination, workers = await with_workers(destination_root, 1)
    os.kill(workers.pids[0], signal.SIGKILL)
    try:
        first = await destination.copy_small(await batch_of(source, "a.txt", "b.txt"))
        second = await destination.copy_small(await batch_of(source, "c.txt"))
    finally:
        await destination.close()
    assert all(isinstance(result, Entry) for result in first + second), first + second
    assert not workers.alive
    assert copied(destination_root, source_root) == ["a.txt", "b.txt", "c.txt"]


async def test_a_job_done_before_its_workers_are_ready_leaves_none(
        trees: tuple[LocalConnector, Path, Path]) -> None:
    source, source_root, destination_root = trees
    destination = LocalConnector(destination_root, workers=2)
    first = await destination.copy_small(await batch_of(source, "a.txt"))
    second = await destination.copy_small(await batch_of(source, "b.txt"))  # starts them
    await destination.close()  # at once: they are not ready yet
    assert copy_workers_of(os.getpid()) == []
    assert all(isinstance(result, Entry) for result in first + second)
    assert copied(destination_root, source_root) == ["a.txt", "b.txt"]


async def test_close_waits_for_the_workers_to_exit(
        trees: tuple[LocalConnector, Path, Path]) -> None:
    source, _, destination_root = trees
    destination, workers = await with_workers(destination_root, 2)
    await destination.copy_small(await batch_of(source, "a.txt"))
    await destination.close()
    assert all(exited(pid) for pid in workers.pids)


WORKERS_OF_A_JOB = """
import asyncio, signal, sys
from core.connectors.local import LocalConnector
from tests.processes import copy_workers_of, exited, wait_until_exited

async def main():
    # the job's own Ctrl-C handler (a handler, not SIG_IGN, which its children would inherit)
    signal.signal(signal.SIGINT, lambda signum, frame: print("stopping", flush=True))
    destination = LocalConnector(sys.argv[1], workers=2)
    workers = await destination.start_copy_workers()
    print(*workers.pids, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_ctrl_c_reaches_the_job_only_and_a_killed_job_s_workers_exit(tmp_path: Path) -> None:
    # in a process group of its own, as a job started from a shell is
    job = subprocess.Popen([sys.executable, "-c", WORKERS_OF_A_JOB, str(tmp_path)],
                           stdout=subprocess.PIPE, text=True, process_group=0)
    try:
        assert job.stdout is not None
        pids = [int(pid) for pid in job.stdout.readline().split()]
        assert len(pids) == 2
        os.killpg(job.pid, signal.SIGINT)  # Ctrl-C on the job's terminal
        time.sleep(0.3)
        assert not any(exited(pid) for pid in pids)  # a batch is never cut short by it
    finally:
        job.kill()
        job.wait()
    assert all(wait_until_exited(pid) for pid in pids)


def test_no_workers_on_a_single_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert copy_workers.worker_count() == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert copy_workers.worker_count() == 2


async def test_a_stopped_worker_begins_no_more_files(
        trees: tuple[LocalConnector, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    source, source_root, destination_root = trees
    destination, workers = await with_workers(destination_root, 1)
    monkeypatch.setattr(LocalConnector, "_copy_small_here", in_this_process_forbidden)
    try:
        first = await destination.copy_small(await batch_of(source, "a.txt", "b.txt"))
        destination.stop_copies()  # a graceful stop reaches the worker as SIGUSR1
        after = await destination.copy_small(await batch_of(source, "c.txt"))
        assert workers.alive
    finally:
        await destination.close()
    assert all(isinstance(result, Entry) for result in first)
    assert after == [None]  # not begun: pending for the next run
    assert copied(destination_root, source_root) == ["a.txt", "b.txt"]
    assert sorted(os.listdir(destination_root)) == ["a.txt", "b.txt"]
