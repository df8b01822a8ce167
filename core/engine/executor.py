"""The executor: carries out planned writes with bounded concurrency.

Every change to the destination passes through `_apply`, the one choke point where a
simulation records what it would do and stops. Finished items go to the item log; a failed
item is recorded for the next run and the run goes on (unless the job's failure policy halts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

from core.connectors.base import (
    AlreadyExists,
    AuthExpired,
    BudgetSpent,
    Connector,
    ConnectorError,
    Entry,
    Fatal,
    NotFound,
    Retryable,
    RetryAfter,
    Vanished,
)
from core.engine.planner import Action, Plan
from core.engine.stats import ExecutionStats
from core.engine.throttle import JobThrottles, throttled
from core.engine.versions import carry_older_versions
from core.paths import join
from core.state import Forgotten, ItemLog, ItemRecord

log = logging.getLogger("dryviq.engine")
T = TypeVar("T")

MAX_ATTEMPTS = 3  # DryvIQ retries an item on 3 runs, then flags it
IN_RUN_RETRIES = 2  # extra tries within one run for transient failures
RETRY_DELAY = 0.5  # seconds, doubled per try
SMALL_FILE = 1 << 20  # bytes: up to this size, local-to-local copies go in batches
# Small files copied in one step, and made durable with one flush: on a disk, the number of
# flushes is what a durable copy of many small files costs (10,000 files of 4 KiB on ext4:
# 1.25 s in batches of 64, 0.81 s in batches of 256).
BATCH = 256
BACKLOG = 10_000  # small files queued ahead of the workers (rclone's --max-backlog)
VANISHED = "vanished during the run"  # the note of a source file deleted after its listing


def _open_files_allowed() -> int:
    """How many temporary files batches may hold open at once: from its copy to its
    publishing, each file of a batch is open. Half of what this process may open (its soft
    RLIMIT_NOFILE, often 1024), so the rest of the run never runs out."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 512 if soft == resource.RLIM_INFINITY else soft // 2


@dataclass(slots=True)
class FileTask:
    """One file to write: read from one side, written to the other (the destination, or the
    source where a sync sends a change back), and its pending record."""

    from_path: str
    entry: Entry  # the file read
    to_path: str
    replacing: Entry | None  # what stands at `to_path` now
    action: Action
    record: ItemRecord
    to_source: bool = False
    move: bool = False  # the file read is removed once the written copy is verified


@dataclass(slots=True)
class DeleteTask:
    """One file or empty folder to delete (to the trash, unless the job opts out)."""

    path: str
    entry: Entry
    record: ItemRecord | None  # what the item's record says once it is gone (`jobs items`)
    to_source: bool = False


@dataclass(slots=True)
class MoveTask:
    """A file moved or renamed on one side since the last run, content unchanged: the same
    move made on the other side, instead of a new transfer there and a delete."""

    path: str  # where the file still is on the side changed
    entry: Entry
    to_path: str
    gone: ItemRecord  # the record of its old place
    record: ItemRecord  # the pending record of its new place
    moved: Entry  # the file the user moved, at its new place on the other side
    moved_path: str  # and that place's path there
    to_source: bool = False


def conflict_name(name: str, mtime: float | None, label: str = "source conflict") -> str:
    """The name of a conflict copy: the file's own name, then the label and the date (of the
    copied version's modification time), so it sorts beside its file."""
    stem, ext = os.path.splitext(name)
    stamp = time.strftime("%Y-%m-%d %H%M%S", time.gmtime(mtime or time.time()))
    return f"{stem} ({label} {stamp}){ext}"


def _in_step(record: ItemRecord, there: Entry, here: Entry) -> None:
    """Set what each side holds now (`there`: the source, `here`: the destination): what the
    next run compares with."""
    record.size, record.mtime = there.size, there.mtime
    record.source_id, record.source_version = there.native_id, there.version
    record.destination_id, record.destination_version = here.native_id, here.version
    record.destination_mtime = here.mtime
    record.last_error = None
    record.updated_at = time.time()


class Executor:
    """Runs file tasks with at most `parallel` files in flight; `make_folder` runs inline for
    the march."""

    def __init__(
        self, source: Connector, destination: Connector, *, items: ItemLog,
        stats: ExecutionStats, parallel: int, simulate: bool, halt_on_failure: bool,
        stop: asyncio.Event, on_event: Callable[[str, str], None], trash: bool = True,
        carry_versions: bool = False, throttles: JobThrottles | None = None,
    ) -> None:
        self.source = source
        self.destination = destination
        self.items = items
        self.stats = stats
        self.simulate = simulate
        self.halt_on_failure = halt_on_failure
        self.trash = trash
        # versioning "select": "all": a file's older versions go first (to the destination
        # only: a sync sends a change back to the source as its latest version alone)
        self.carry_versions = carry_versions and source.features.versions
        self.throttles = throttles or JobThrottles()  # the job's bandwidth limits
        self.stop = stop
        self.on_event = on_event
        self.halted = False
        # what made the run stop, when a connection failed (or its sign-in died)
        self.fatal: Fatal | AuthExpired | None = None
        self.paused: BudgetSpent | None = None  # the API budget ran out and the run won't wait
        # set by the run: the plan for a file when something turned up at its destination
        # after the folder was listed (another job writing there), as if it had been listed
        self.decide_again: Callable[[FileTask, Entry], Plan] | None = None
        # per direction (to the destination, to the source): whether the side written reads
        # each file from this machine's disk itself, the bytes never passing through here
        self._reads_itself = (self._shortcut(source, destination),
                              self._shortcut(destination, source))
        # Two lanes, so large files start while thousands of small ones wait their turn;
        # `parallel` slots bound the files in flight across both, as parallel_writes says.
        self._slots = asyncio.Semaphore(parallel)
        self._batch_size = max(1, min(BATCH, _open_files_allowed() // parallel))
        self._files: asyncio.Queue[FileTask | DeleteTask | None] = asyncio.Queue(
            maxsize=parallel * 4)
        self._small: asyncio.Queue[FileTask | None] = asyncio.Queue(maxsize=BACKLOG)
        self._workers = [asyncio.create_task(work()) for work in (self._work, self._work_small)
                         for _ in range(parallel)]
        self._stopper = asyncio.create_task(self._stop_copies())

    async def _apply(self, description: str, change: Callable[[], Awaitable[T]],
                     simulated: T) -> T:
        """The one place the destination is changed; a simulation only logs what it would do."""
        if self.simulate:
            log.debug("simulation: would %s", description)
            return simulated
        return await change()

    def _shortcut(self, reader: Connector, writer: Connector) -> bool:
        """Whether `writer` may read files of `reader` itself (write_local, copy_small):
        `reader` hands out files of this machine's disk and `writer` takes them, and no
        throttle applies (a copy made by the writer itself cannot be throttled)."""
        return (reader.features.local_files and writer.features.reads_local_files
                and not self.throttles.between(reader.features, writer.features))

    def _ends(self, to_source: bool) -> tuple[Connector, Connector]:
        """(the side read, the side written)."""
        return (self.destination, self.source) if to_source else (self.source, self.destination)

    def _durable(self, writer: Connector) -> bool:
        """A side that cannot be re-checked by mtime: a finished item's record must be on disk
        before the next one starts, or a crash would make the rerun send it again."""
        return not writer.features.can_set_mtime

    async def make_folder(self, path: str, *, to_source: bool = False) -> Entry:
        writer = self._ends(to_source)[1]
        entry = await self._apply(f"create folder {path}", lambda: writer.mkdir(path),
                                  Entry(path.rpartition("/")[2], is_dir=True))
        # where folders are only their files' prefix (S3), an empty one is "made" again,
        # unseen, on every run: not counted, so a run with nothing to do says so
        if writer.features.empty_dirs:
            self.stats.folders_created += 1
        return entry

    async def move_now(self, task: MoveTask) -> None:
        side = self._ends(task.to_source)[1]
        try:
            moved = await self._apply(f"move {task.path} to {task.to_path}",
                                      lambda: side.move(task.path, task.entry, task.to_path),
                                      task.entry)
        except ConnectorError as exc:
            if isinstance(exc, BudgetSpent | Fatal | AuthExpired):
                await self._failed(None, exc)
                return
            self.stats.failed += 1  # the next run sends it as a new file instead
            self.on_event("failed", f"{task.path}: cannot move to {task.to_path}: {exc}")
            return
        self.stats.moved += 1
        if self.simulate:
            return
        self.items.record(Forgotten(task.gone.job_id, task.gone.path))
        record = task.record
        there, here = (moved, task.moved) if task.to_source else (task.moved, moved)
        _in_step(record, there, here)
        record.destination_path = task.moved_path if task.to_source else task.to_path
        record.status = "success"
        self.items.record(record)

    async def delete(self, task: DeleteTask) -> None:
        """Queue a delete; it is no file to transfer, so the progress line's "files of N"
        leaves it out (the per-side counts say what was deleted)."""
        await self._files.put(task)

    async def delete_now(self, task: DeleteTask) -> None:
        """Delete a file (or an emptied folder) on one side; its record goes with it."""
        side = self._ends(task.to_source)[1]
        gone = side.trash if self.trash else (side.rmdir if task.entry.is_dir else side.remove)
        try:
            with contextlib.suppress(NotFound):  # gone already: the outcome wanted
                await self._apply(f"delete {task.path}", lambda: gone(task.path, task.entry),
                                  None)
        except ConnectorError as exc:
            if isinstance(exc, BudgetSpent | Fatal | AuthExpired):
                await self._failed(None, exc)
                return
            self.stats.failed += 1
            self.on_event("failed", f"{task.path}: cannot delete: {exc}")
            return
        if task.to_source:
            self.stats.deleted_source += 1
        else:
            self.stats.deleted_destination += 1
        if task.record is not None and not self.simulate:
            task.record.updated_at = time.time()
            self.items.record(task.record)

    async def remove_leftover(self, path: str, entry: Entry) -> None:
        """Delete a partial file an interrupted run left at the destination."""
        async def remove() -> Entry:
            await self.destination.remove(path, entry)
            return entry

        try:
            await self._apply(f"remove leftover {path}", remove, entry)
        except ConnectorError as exc:  # harmless if it stays: it is never taken for content
            log.warning("cannot remove the leftover partial file %s: %s", path, exc)

    async def submit(self, task: FileTask) -> None:
        self.stats.planned_files += 1
        self.stats.planned_bytes += task.entry.size
        if not task.to_source:
            task.record.destination_path = self._target(task)[0]
        self.items.record(task.record)
        await (self._small if self._batchable(task) else self._files).put(task)

    async def drain(self) -> None:
        """Wait for the workers to finish what was submitted (or to drop it after a stop)."""
        for _ in range(len(self._workers) // 2):
            await self._files.put(None)
            await self._small.put(None)
        await asyncio.gather(*self._workers)
        self._stopper.cancel()
        await asyncio.gather(self._stopper, return_exceptions=True)

    async def cancel(self) -> None:
        for worker in (*self._workers, self._stopper):
            worker.cancel()
        await asyncio.gather(*self._workers, self._stopper, return_exceptions=True)

    def _stopping(self) -> bool:
        return self.stop.is_set() or self.halted  # what is queued stays pending for next run

    async def _stop_copies(self) -> None:
        """On a stop, the batches of small files handed to the destination begin no more
        files: a batch holds hundreds, and those not begun stay pending for the next run."""
        await self.stop.wait()
        stop_copies = getattr(self.destination, "stop_copies", None)
        if stop_copies is not None and not self.simulate:
            stop_copies()

    async def _work(self) -> None:
        while (task := await self._files.get()) is not None:
            async with self._slots:  # the stop is checked once the task may start
                if not self._stopping():
                    if isinstance(task, DeleteTask):
                        await self.delete_now(task)
                        continue
                    with self._flying(1):
                        await (self._conflict(task) if task.action is Action.CONFLICT
                               else self._run(task))

    async def _work_small(self) -> None:
        while (task := await self._small.get()) is not None:
            batch = [task]
            while len(batch) < self._batch_size and not self._small.empty():
                following = self._small.get_nowait()
                if following is None:
                    self._small.put_nowait(None)  # another worker's signal to end
                    break
                batch.append(following)
            async with self._slots:
                if self._stopping():
                    continue
                with self._flying(len(batch)):
                    await self._run_batch(batch)

    @contextlib.contextmanager
    def _flying(self, files: int) -> Iterator[None]:
        """Count the files being written now, for the monitor's 'in flight'."""
        self.stats.in_flight += files
        try:
            yield
        finally:
            self.stats.in_flight -= files

    def _batchable(self, task: FileTask) -> bool:
        return (self._reads_itself[0] and not self.simulate and task.entry.size <= SMALL_FILE
                and task.action is not Action.CONFLICT and task.to_source is False)

    @staticmethod
    def _target(task: FileTask) -> tuple[str, Entry | None]:
        """Where the file goes, and what it replaces there."""
        if task.action is Action.KEEP_BOTH:
            parent, _, name = task.to_path.rpartition("/")
            return join(parent, conflict_name(name, task.entry.mtime)), None
        return task.to_path, task.replacing

    async def _run_batch(self, batch: list[FileTask]) -> None:
        """Small files from a local disk to a destination that reads them itself: it copies
        the whole batch at once, with no round trip per file through here."""
        targets = [self._target(task)[0] for task in batch]
        files = [(path, self.source.local_file(task.from_path, task.entry),  # type: ignore[attr-defined]
                  task.entry.mtime) for path, task in zip(targets, batch, strict=True)]

        def write() -> Awaitable[list[Entry | ConnectorError | None]]:
            return self.destination.copy_small(files)  # type: ignore[no-any-return, attr-defined]

        simulated: list[Entry | ConnectorError | None] = [task.entry for task in batch]
        results = await self._apply(f"write {len(batch)} small files", write, simulated)
        for task, path, result in zip(batch, targets, results, strict=True):
            if result is None:
                continue  # not begun: a stop came first; pending for the next run
            if isinstance(result, Retryable):
                await self._run(task)  # the one-file path retries with backoff
            elif isinstance(result, ConnectorError):
                await self._not_written(task, result)
            else:
                self.stats.bytes += task.entry.size
                await self._succeeded(task, path, result)

    async def _conflict(self, task: FileTask) -> None:
        """Changed on both sides, `copy` policy: the older file (at `to_path`) is renamed to a
        conflict copy where it is, the newer is written under the name, and the conflict copy
        is copied to the other side. Each step leaves both versions on disk somewhere."""
        writer = self._ends(task.to_source)[1]
        older = task.replacing
        assert older is not None
        parent, _, name = task.to_path.rpartition("/")
        copy_path = join(parent, conflict_name(name, older.mtime, "conflict"))
        other_parent, _, other_name = task.from_path.rpartition("/")
        other_copy = join(other_parent, conflict_name(other_name, older.mtime, "conflict"))
        try:
            renamed = await self._apply(f"rename {task.to_path} to a conflict copy",
                                        lambda: writer.rename(task.to_path, older,
                                                              copy_path.rpartition("/")[2]),
                                        older)
        except ConnectorError as exc:
            await self._failed(task, exc)
            return
        await self._run(replace(task, replacing=None, action=Action.UPDATE))
        if self.simulate or task.record.status not in ("success", "processed"):
            return
        # the older version, now beside the newer on its own side, goes to the other side too
        copied = ItemRecord(
            job_id=task.record.job_id,
            path=join(task.record.parent, conflict_name(
                task.record.path.rpartition("/")[2], older.mtime, "conflict")),
            parent=task.record.parent, is_dir=False, size=renamed.size, mtime=None,
            action="create_source" if not task.to_source else "create", status="pending",
            execution_id=task.record.execution_id)
        await self._run(FileTask(copy_path, renamed, other_copy, None, Action.CREATE, copied,
                                 to_source=not task.to_source))

    async def _run(self, task: FileTask) -> None:
        sent = 0
        reader, writer = self._ends(task.to_source)

        def count(size: int) -> None:
            nonlocal sent
            sent += size
            self.stats.bytes += size

        # the job's limits on this direction (none between two local folders)
        limits = self.throttles.between(reader.features, writer.features)

        async def counted() -> AsyncIterator[bytes]:
            try:
                async with contextlib.aclosing(throttled(
                        reader.read(task.from_path, task.entry), *limits)) as it:
                    async for chunk in it:
                        count(len(chunk))
                        yield chunk
            except NotFound as exc:  # told apart here from a destination's NotFound
                raise Vanished(str(exc)) from exc

        path, replacing = self._target(task)
        entry = task.entry
        carry = (self.carry_versions and not task.to_source and not self.simulate
                 and task.action in (Action.CREATE, Action.UPDATE))

        async def carried_one(number: int, written: Entry) -> None:
            # into a file that keeps versions, each carried version is recorded before the
            # next: a rerun must not add one twice, nor take it for an edit made there
            task.record.source_versions = number
            task.record.destination_id = written.native_id
            task.record.destination_version = written.version
            await self.items.record_durably(task.record)

        if self._durable(writer) and replacing is not None and not self.simulate:
            # on disk before the new version can land: a run killed after it landed leaves
            # a record that tells the next run so, not one that reads as a change made there
            await self.items.record_durably(task.record)

        def write() -> Awaitable[Entry]:
            if self._reads_itself[task.to_source]:  # the bytes do not pass through here
                return writer.write_local(  # type: ignore[attr-defined]
                    path, reader.local_file(task.from_path, entry),  # type: ignore[attr-defined]
                    mtime=entry.mtime, on_copied=count)
            return writer.write(path, counted(), size=entry.size, mtime=entry.mtime,
                                replacing=replacing)

        for attempt in range(IN_RUN_RETRIES + 1):
            try:
                if carry:
                    carried = await carry_older_versions(
                        reader, writer, task.from_path, entry, path, replacing,
                        already=task.record.source_versions, on_carried=carried_one,
                        on_bytes=count)
                    replacing = carried.replacing  # the file the first older version made
                    self.stats.versions += carried.versions
                    task.record.source_versions = carried.latest
                written = await self._apply(f"{task.action} {path}", write,
                                            replace(entry, native_id=None, version=None))
                break
            except Retryable as exc:
                self.stats.bytes -= sent
                sent = 0
                if attempt == IN_RUN_RETRIES:
                    await self._failed(task, exc)
                    return
                delay = RETRY_DELAY * 2 ** attempt
                if isinstance(exc, RetryAfter):
                    delay = max(delay, exc.until - time.time())
                self.on_event("retry", f"{task.from_path}: {exc}; trying again in "
                                       f"{delay:.1f} s")
                await asyncio.sleep(delay)
            except ConnectorError as exc:
                self.stats.bytes -= sent
                await self._not_written(task, exc)
                return
        if self.simulate:
            self.stats.bytes += entry.size
        await self._succeeded(task, path, written)

    async def _remove_moved(self, task: FileTask, written: Entry) -> None:
        """A move job's last step: the source file goes once its copy is confirmed (same size,
        and the same hash where both sides give one of the same kind)."""
        mismatch = written.size != task.entry.size
        theirs = dict(written.hashes)
        mismatch = mismatch or any(theirs.get(kind, digest) != digest
                                   for kind, digest in task.entry.hashes)
        if mismatch:
            task.record.status = "remediation"
            task.record.note = "the copy at the destination does not match; the source is kept"
            self.stats.flagged += 1
            self.on_event("flagged", f"{task.from_path}: {task.record.note}")
            self.items.record(task.record)
            return
        task.record.action = "move"  # what `jobs items` shows once the source is gone
        await self.delete_now(DeleteTask(task.from_path, task.entry, task.record,
                                         to_source=True))

    async def _succeeded(self, task: FileTask, path: str, written: Entry) -> None:
        self.stats.transferred += 1
        # a conflict's newer file replaces the older one renamed away just before: an update
        new = task.action in (Action.CREATE, Action.KEEP_BOTH)
        if task.to_source:
            self.stats.bytes_to_source += task.entry.size
            self.stats.added_source += new
            self.stats.updated_source += not new
        else:
            self.stats.added_destination += new
            self.stats.updated_destination += not new
        if self.simulate:
            return  # recorded as pending when planned: that is all a simulation leaves
        record = task.record
        record.status = "processed" if record.note else "success"
        there, here = (written, task.entry) if task.to_source else (task.entry, written)
        _in_step(record, there, here)
        record.destination_path = task.from_path if task.to_source else path
        if self._durable(self._ends(task.to_source)[1]):
            await self.items.record_durably(record)
        else:
            self.items.record(record)
        if task.move:
            await self._remove_moved(task, written)

    async def _not_written(self, task: FileTask, exc: ConnectorError) -> None:
        """A write that did not happen: the source file gone, something new at the
        destination, or a failure."""
        if isinstance(exc, Vanished):
            self._decided(task, Action.SKIP, "skipped", VANISHED)
        elif (isinstance(exc, AlreadyExists) and exc.existing is not None
              and task.replacing is None and not task.to_source
              and self.decide_again is not None):
            await self._appeared(task, exc.existing)
        else:
            await self._failed(task, exc)

    async def _appeared(self, task: FileTask, found: Entry) -> None:
        """Something stands at the destination that was not there when its folder was
        listed: decide again with it, as if it had been listed then. Only connectors that
        refuse to replace a file raise this (Procore); a local write replaces what appeared,
        which is what plan_copy decides for a file this job has no record of. A planner that
        decides otherwise for unrecorded files needs the local connector to refuse too."""
        assert self.decide_again is not None
        plan = self.decide_again(task, found)
        if plan.action in (Action.UPDATE, Action.KEEP_BOTH):
            task.record.action = str(plan.action)
            task.record.note = "; ".join(filter(None, [task.record.note, plan.reason])) or None
            task.record.destination_version = found.version  # what it replaces
            await self._run(replace(task, replacing=found, action=plan.action))
            return
        status = {Action.SKIP: "skipped", Action.FLAG: "remediation"}.get(
            plan.action, "processed" if task.record.note or plan.reason else "success")
        self._decided(task, plan.action, status, plan.reason, found)

    def _decided(self, task: FileTask, action: Action, status: str, reason: str | None,
                 found: Entry | None = None) -> None:
        """Record and count a file planned for writing that is not written after all."""
        self.stats.planned_files -= 1
        self.stats.planned_bytes -= task.entry.size
        record = task.record
        if status == "remediation":
            self.stats.flagged += 1
            self.on_event("flagged", f"{task.from_path}: {reason}")
        else:
            self.stats.skipped += 1
        record.action, record.status = str(action), status
        record.note = "; ".join(filter(None, [record.note, reason])) or None
        if found is not None and action is Action.NONE:  # what a later run compares with
            record.destination_id, record.destination_version = found.native_id, found.version
        record.last_error = None
        record.updated_at = time.time()
        self.items.record(record)

    async def _failed(self, task: FileTask | None, exc: ConnectorError) -> None:
        if isinstance(exc, BudgetSpent):
            # not the item's fault either: it stays pending for the run after the reset
            self.paused, self.halted = self.paused or exc, True
            return
        if isinstance(exc, Fatal | AuthExpired):
            # the connection is gone (disk full, share unmounted), not this item at fault:
            # stop the run and leave the item to the next one without spending an attempt
            self.fatal, self.halted = self.fatal or exc, True
            return
        assert task is not None
        record = task.record
        record.attempts += 1
        # a destination's NotFound (the source's is Vanished): removed by someone meanwhile
        error = record.last_error = (f"gone from the destination during the run: {exc}"
                                     if isinstance(exc, NotFound) else str(exc))
        record.updated_at = time.time()
        if record.attempts >= MAX_ATTEMPTS:
            record.status = "remediation"
            self.stats.flagged += 1
            self.on_event("flagged", f"{task.from_path}: {error} (gave up after "
                                     f"{record.attempts} attempts)")
        else:
            record.status = "retry"
            self.stats.failed += 1
            self.on_event("failed", f"{task.from_path}: {error}")
        self.items.record(record)
        if self.halt_on_failure:
            self.halted = True
