"""Worker processes that copy batches of small files from local folders to a local folder.

Copying a small file takes a handful of system calls, each wrapped in Python, so one process
copies about as fast as one core runs Python, and the march, the planner and the item log need
that core too. Each worker runs the very same LocalConnector code (path checks, unnamed
temporary files, one flush per batch, publishing) on whole batches, so a copy of many small
files uses the machine's other cores, as rclone's goroutines do.

The protocol is private to this module: length-prefixed pickles over the worker's stdin and
stdout, one reply per batch, in order. A worker exits when its stdin closes, or before its next
batch once the process that started it is gone (a SIGKILLed job does not keep copying).
SIGUSR1 is a graceful stop: the worker begins no file after it (each such file's result is
None), and finishes and publishes those begun.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pickle
import queue
import signal
import struct
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO

from core.connectors.base import ConnectorError, Entry

if TYPE_CHECKING:
    from core.connectors.local import LocalConnector

_LENGTH = struct.Struct("!I")
_READY = "ready"  # a worker's first message
# The worker imports this package as the job did: installed, or (appended to its path, so
# that it shadows nothing) from the folder holding `core`.
_PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_START = ("import sys; sys.path.append(sys.argv[1]); "
          "from core.connectors.copy_workers import main; main(sys.argv[2], sys.argv[3])")

# (source root, source path, size, destination path, mtime)
SmallFile = tuple[str, str, int, str, float | None]
Result = Entry | ConnectorError | None  # None: not begun, the copies were stopped first


class WorkersGone(Exception):
    """A worker process exited mid-batch (or before it): the batch's outcome is unknown."""


def worker_count() -> int:
    """Workers worth starting: two where this process may use two cores or more (a worker
    waits on the disk part of the time), none on one core, where they would only add hand-offs
    between processes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(2, cores) if cores and cores > 1 else 0


class CopyWorkers:
    """A few worker processes copying into one destination root; batches go to the least busy."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers

    @classmethod
    async def start(cls, destination_root: str, *, fsync: bool, count: int) -> CopyWorkers:
        workers = cls([])
        try:
            for _ in range(count):
                workers._workers.append(await _Worker.start(destination_root, fsync))
        except BaseException:
            await workers.close()
            raise
        return workers

    @property
    def alive(self) -> bool:
        return all(worker.alive for worker in self._workers)

    @property
    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers]

    async def copy(self, files: Sequence[SmallFile]) -> list[Result]:
        """Copy, make durable and publish a batch; each file's entry or error, in order.
        Raises WorkersGone if the worker died before replying."""
        worker = min(self._workers, key=lambda worker: len(worker.waiting))
        return await worker.request(files)

    def stop(self) -> None:
        """A graceful stop: each worker finishes the files it has begun and begins no other."""
        for worker in self._workers:
            with contextlib.suppress(ProcessLookupError):  # exited: nothing left to stop
                worker.process.send_signal(signal.SIGUSR1)

    async def close(self) -> None:
        """Let each worker finish what it was sent, then exit."""
        await asyncio.gather(*(worker.close() for worker in self._workers))


class _Worker:
    """One worker process, its requests in flight (answered in order) and their reader."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.waiting: collections.deque[asyncio.Future[list[Result]]] = collections.deque()
        self.alive = True
        self._replies = asyncio.create_task(self._read_replies())

    @classmethod
    async def start(cls, destination_root: str, fsync: bool) -> _Worker:
        # A process group of its own: Ctrl-C on a terminal reaches the job only, which then
        # decides how to stop; a batch is never cut short by it.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _START, _PROJECT, destination_root,
            "fsync" if fsync else "no-fsync",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, process_group=0)
        assert process.stdout is not None
        ready = False
        try:  # a worker that cannot start (say, cannot import) is found out here
            ready = await _read_message(process.stdout) == _READY
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            if not ready:  # or the job is done before the worker is ready
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                status = await process.wait()
        if not ready:
            raise WorkersGone(f"the copy worker did not start (status {status})")
        return cls(process)

    async def request(self, files: Sequence[SmallFile]) -> list[Result]:
        if not self.alive:
            raise WorkersGone("the copy worker has exited")
        assert self.process.stdin is not None
        reply = asyncio.get_running_loop().create_future()
        self.waiting.append(reply)
        message = pickle.dumps(list(files))
        self.process.stdin.write(_LENGTH.pack(len(message)) + message)
        with contextlib.suppress(OSError):  # the worker is gone: its reader fails the replies
            await self.process.stdin.drain()
        return await reply

    async def _read_replies(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                results = await _read_message(stdout)
                reply = self.waiting.popleft()
                if reply.cancelled():  # its caller stopped waiting; the files are published
                    continue
                if isinstance(results, str):  # the worker's own failure, as text
                    reply.set_exception(WorkersGone(results))
                else:
                    reply.set_result(results)  # type: ignore[arg-type]
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self.alive = False
            for reply in self.waiting:
                if not reply.done():
                    reply.set_exception(WorkersGone("the copy worker exited before replying"))

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()
        await self._replies


async def _read_message(stream: asyncio.StreamReader) -> object:
    length, = _LENGTH.unpack(await stream.readexactly(_LENGTH.size))
    return pickle.loads(await stream.readexactly(length))


def _receive(stream: BinaryIO) -> list[SmallFile] | None:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    files: list[SmallFile] = pickle.loads(stream.read(_LENGTH.unpack(header)[0]))
    return files


def _send(stream: BinaryIO, reply: object) -> None:
    message = pickle.dumps(reply)
    stream.write(_LENGTH.pack(len(message)) + message)
    stream.flush()


def main(destination_root: str, fsync: str) -> None:
    """The worker: copy each batch it receives until its stdin closes or the job is gone. One
    thread copies batches into temporary files while another makes the one before durable
    and names it."""
    from core.connectors.local import LocalConnector

    destination = LocalConnector(destination_root, fsync=fsync == "fsync", workers=0)
    sources: dict[str, LocalConnector] = {}
    parent = os.getppid()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer

    def stop(signum: int, frame: object) -> None:
        destination.copies_stopped = True  # read by stage_now between files

    signal.signal(signal.SIGUSR1, stop)  # before the job may send it: ready
    _send(replies, _READY)
    publisher = _Publisher(destination, replies)
    while (files := _receive(requests)) is not None and os.getppid() == parent \
            and publisher.replying:
        try:
            batch = []
            for root, path, size, destination_path, mtime in files:
                source = sources.get(root) or sources.setdefault(root, LocalConnector(root))
                batch.append((destination_path, source.local_file(path, Entry("", False, size)),
                              mtime))
            staged: object = destination.stage_now(batch)
        except Exception as exc:  # reported to the job, which then copies in its own process
            staged = f"the copy worker failed: {exc!r}"
        publisher.batches.put(staged)
    publisher.batches.put(None)
    publisher.join()


class _Publisher(threading.Thread):
    """A worker's second thread: makes staged batches durable, names them and replies, in
    the order they were received. Once the job cannot be told (it is gone), it publishes
    nothing more: what is staged is discarded."""

    def __init__(self, destination: LocalConnector, replies: BinaryIO) -> None:
        super().__init__()
        self.batches: queue.Queue[object] = queue.Queue(maxsize=1)
        self.replying = True
        self._destination, self._replies = destination, replies
        self.start()

    def run(self) -> None:
        while (staged := self.batches.get()) is not None:
            if not self.replying:
                if not isinstance(staged, str):
                    staged.discard()  # type: ignore[attr-defined]
                continue
            try:
                reply = staged if isinstance(staged, str) else \
                    self._destination.publish_now(staged)  # type: ignore[arg-type]
            except Exception as exc:
                reply = f"the copy worker failed: {exc!r}"
            try:
                _send(self._replies, reply)
            except OSError:
                self.replying = False
