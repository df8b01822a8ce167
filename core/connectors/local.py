"""A folder on this machine, or a network share mounted on it, as a Connector.

Every path is checked before use: each segment must be a plain name, and the real path of the
folder it lives in must be the root or inside it, so neither a crafted name nor a symlinked
folder can lead a read or a write outside. Writes stream into a temporary file beside the
destination and are published by one rename, so a partial file is never visible. On Linux the
temporary file has no name at all (O_TMPFILE) until it is linked under its final one: a killed
run leaves nothing behind, and publishing costs one change to the folder instead of two.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import itertools
import logging
import os
import re
import stat
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from core.connectors.base import (
    LEFTOVER_PART,
    TRASH_FOLDER,
    AlreadyExists,
    ConnectorError,
    Entry,
    Fatal,
    Features,
    InvalidPath,
    LocalFile,
    NotFound,
    PathRules,
    Vanished,
)
from core.paths import segment_problem

if TYPE_CHECKING:  # imported where first needed: a command that copies nothing skips it
    from core.connectors.copy_workers import CopyWorkers

CHUNK = 1 << 20  # bytes per read and per write hop: few thread hops, bounded memory
COPY_STEP = 16 << 20  # bytes the kernel copies per thread hop, from one local file to another
FOLDER_CACHE = 4096  # resolved folders remembered
# A batch whose files take less than this each is disk-speed work: copied in this process,
# batches running at once only make threads fight over Python's GIL (measured: 1.5x slower
# with four), so such batches take turns. Slower files (a share mounted over the network) run
# in parallel.
FAST_FILE = 0.0005  # seconds
INLINE_LISTING = 0.002  # seconds: a listing this quick is cheaper than a thread hop
FAST_LISTINGS_TO_INLINE = 3  # quick listings in a row before they run on the event loop

# Temporary files: ".dryviq-<pid>-<8 hex>.part". The length does not depend on the final name,
# so a 255-character name still has room, and the pid tells a listing whether the writer lives.
_TEMP_PREFIX = ".dryviq-"
_TEMP_NAME = re.compile(r"\.dryviq-(\d{1,7})-[0-9a-f]{8}\.part")
# unique in this process, random across processes
_temp_tokens = itertools.count(int.from_bytes(os.urandom(4)))

_LINK_OUTSIDE = "symbolic link leading outside the connection root is not followed"
_LINK_TO_FOLDER = "symbolic link to a folder is not followed"
_LINK_DANGLING = "symbolic link whose target does not exist"
_NOT_REGULAR = "not a regular file or folder"

_FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})

T = TypeVar("T")
log = logging.getLogger("dryviq.local")


def _temp_name() -> str:
    return f"{_TEMP_PREFIX}{os.getpid()}-{next(_temp_tokens) & 0xFFFFFFFF:08x}.part"


def _writer_alive(pid: int) -> bool:
    """Whether the process that owns a temporary file is still running."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # PermissionError: alive, owned by another user
    return True


def _segments(path: str) -> list[str]:
    """`path` split into plain names ('' is the root); anything else is refused."""
    if not path:
        return []
    segments = path.split("/")
    for segment in segments:
        problem = segment_problem(segment)
        if problem:
            raise InvalidPath(f"path {path!r}: {problem}")
    return segments


def _named(path: str) -> list[str]:
    """Like `_segments`, for calls that act on a named file or folder, never the root."""
    segments = _segments(path)
    if not segments:
        raise InvalidPath("path '': the connection root itself cannot be used here")
    return segments


def _mtime(info: os.stat_result) -> float:
    return info.st_mtime_ns / 1_000_000_000  # int / int rounds once; / 1e9 would round twice


def _utime(file: str | int, mtime: float) -> None:
    """Set a file's mtime (and atime) by path, or by descriptor (one path lookup fewer)."""
    ns = round(mtime * 1e9)
    os.utime(file, ns=(ns, ns))


def _source_changed(path: str, expected: int, got: int) -> ConnectorError:
    return ConnectorError(f"source changed while reading {path!r}: expected {expected} bytes, "
                          f"got {got}")


def _copy_fd(source: int, target: int, limit: int) -> int:
    """Copy up to `limit` bytes from one descriptor to another; the number copied. The kernel
    copies (a reflink or a server-side copy where the file system has one), with no buffer in
    Python; where it cannot, the bytes pass through a buffer here."""
    copied = 0
    kernel = _KERNEL_COPY
    while copied < limit:
        copy = os.copy_file_range if kernel else _copy_by_reading
        try:
            count = copy(source, target, limit - copied)
        except OSError as err:
            if not kernel or err.errno not in _NO_KERNEL_COPY:
                raise
            kernel = False
            continue
        if count == 0:
            break
        copied += count
    return copied


def _copy_by_reading(source: int, target: int, limit: int) -> int:
    data = os.read(source, min(limit, CHUNK))
    view = memoryview(data)
    while view:
        view = view[os.write(target, view):]
    return len(data)


# copy_file_range is Linux's; it refuses some pairs of file systems (before Linux 5.19, any
# two) and some special files, whose bytes then pass through a buffer.
_KERNEL_COPY = hasattr(os, "copy_file_range")
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                             errno.ETXTBSY, errno.EPERM})


def _read_chunk(file: BinaryIO) -> bytes:
    """The next chunk; a short one means the end, so the file is closed in the same hop."""
    data = file.read(CHUNK)  # buffered read: loops until CHUNK bytes or the end of the file
    if len(data) < CHUNK:
        file.close()
    return data


class _Part:
    """The temporary file a write streams into, until it is published or discarded."""

    __slots__ = ("fd", "folder", "path")

    def __init__(self) -> None:
        self.fd: int | None = None  # a raw descriptor: no buffering layer, fewer system calls
        self.folder: str | None = None  # the real path of the folder it is published in
        # its name, once it has one: set only once we created it, so we never delete another's
        self.path: str | None = None

    def discard(self) -> None:
        """Close and delete; best effort, because it runs while another error propagates.
        An unnamed file vanishes when closed."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


@functools.cache
def _any_folder_fd() -> int:
    """A descriptor of a folder, any folder: passing one makes os.link call linkat(2), which
    follows /proc/self/fd/N to an unnamed file (plain link(2) would not)."""
    return os.open("/", os.O_RDONLY | os.O_DIRECTORY)


def _link_unnamed(fd: int, name: str) -> None:
    """Give the unnamed file open on `fd` a name (FileExistsError if it is taken)."""
    os.link(f"/proc/self/fd/{fd}", name, src_dir_fd=_any_folder_fd(), follow_symlinks=True)


@functools.cache
def _syncfs() -> Callable[[int], None] | None:
    """Linux's syncfs(2), which the os module lacks: it makes everything written to one file
    system durable with a single disk flush. Looked up at the first batch that needs it:
    loading ctypes would slow every command's start."""
    import ctypes

    release = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if not sys.platform.startswith("linux") or not release or (
            int(release[1]), int(release[2])) < (5, 8):
        return None  # before 5.8, syncfs does not report write errors; fsync does
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int

    def syncfs(fd: int) -> None:  # any descriptor open on the file system
        if function(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return syncfs


# Unnamed temporary files need O_TMPFILE (Linux) and /proc to link them; a file system without
# them (an SMB mount, say) is found out at the first write, which then names its files.
_UNNAMED_TEMPS = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
_NO_UNNAMED_TEMPS = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})


class _Staged:
    """A batch of small files on its way: `waiting` to be copied (or already refused), then
    `sealed` in temporary files until they are made durable and named. `results` holds, in
    order, each file's failure or (once published) its entry, or None for a file not begun
    because the copies were stopped first."""

    __slots__ = ("flush", "results", "sealed", "waiting")

    def __init__(self, flush: Callable[[int], None] | None) -> None:
        self.flush = flush  # the one flush for the whole batch, if any
        self.waiting: list[tuple[list[str], str, LocalFile, float | None] | ConnectorError] = []
        self.results: list[Entry | ConnectorError | None] = []
        self.sealed: list[tuple[int, _Part, list[str], str, os.stat_result]] = []

    def discard(self) -> None:
        for _, part, _, _, _ in self.sealed:
            part.discard()  # nothing left to do for one already published


class _SourceFile:
    """A file of a LocalConnector, read by a destination in its own worker thread (or its
    copy worker process, which reopens it by `origin`)."""

    __slots__ = ("_connector", "_path", "size")

    def __init__(self, connector: LocalConnector, path: str, size: int) -> None:
        self._connector, self._path, self.size = connector, path, size

    @property
    def origin(self) -> tuple[str, str]:
        """The connection root and the path under it."""
        return self._connector._root, self._path

    def open(self) -> int:
        """A descriptor open for reading; the caller closes it. InvalidPath for a path that
        is not a plain path under the root."""
        try:
            return self._connector._open_fd(_named(self._path), self._path)
        except OSError as err:
            error = self._connector._error(err, self._path)
            if isinstance(error, NotFound):  # read by the destination: say it is the source's
                raise Vanished(f"the source file is gone: {error}") from err
            raise error from err


# what a folder on this machine can do (the API's platform list shows it too)
LOCAL_FEATURES = Features(
    mtime_precision=1e-6,
    can_set_mtime=True,
    case_insensitive=False,
    empty_dirs=True,
    path_rules=PathRules(invalid_chars="/\0", max_name_length=255, name_length_in_bytes=True),
    local_files=True,
    reads_local_files=True,
)


class LocalConnector:
    """A local folder: listing, streamed reads and atomic writes that never leave the root."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True,
                 workers: int | None = None) -> None:
        """`fsync`: flush each file to disk before it is published (small files copied from
        this machine: a batch at a time, by one syncfs), so even a power cut never leaves an
        empty or partial file under a real name. Off, a file is still published
        whole (a crashed or killed run leaves none half-written), but the operating system
        writes it to disk later, as rclone and cp do: much faster for many small files.
        `workers`: how many copy worker processes copy batches of small files (`copy_small`);
        None decides by the cores this process may use, 0 copies in this process."""
        self.features = LOCAL_FEATURES
        self._root = os.path.abspath(os.fspath(root))
        self._fsync = fsync
        self._folders: dict[str, str] = {}  # real paths of folders, by connector path
        self._fast_listings = 0  # quick listings in a row (see list_dir)
        self._real_root: tuple[str, str] | None = None  # (real path, prefix of what is inside)
        self._unnamed_temps = _UNNAMED_TEMPS  # until this file system refuses them
        self._workers_wanted = workers  # None until the first batch decides
        self._small_batches = 0  # copy_small calls so far
        self._workers_starting: asyncio.Task[CopyWorkers] | None = None
        self._batch_turns = asyncio.Lock()  # batches copied in this process take turns...
        self._seconds_per_file = 0.0  # ...where the last one took less than FAST_FILE a file
        self.copies_stopped = False  # set by stop_copies; read between files by batches

    # -- the Connector protocol

    async def connect(self) -> None:
        pass  # nothing to start: features are known from the start

    async def list_dir(self, path: str) -> list[Entry]:
        """A folder listing. Where listings have proved fast (a local disk), they run right
        here: a thread hop would cost more than the listing. One slow listing sends them all
        back to a worker thread, so a slow share never blocks the event loop for long."""
        segments = _segments(path)
        started = time.monotonic()
        if self._fast_listings >= FAST_LISTINGS_TO_INLINE:
            try:
                entries = self._list_dir(segments, path)
            except OSError as err:
                raise self._error(err, path) from err
        else:
            entries = await self._run(path, self._list_dir, segments, path)
        fast = time.monotonic() - started < INLINE_LISTING
        self._fast_listings = self._fast_listings + 1 if fast else 0
        return entries

    async def stat(self, path: str) -> Entry:
        return await self._run(path, self._stat, _segments(path), path)

    async def read(self, path: str, entry: Entry) -> AsyncIterator[bytes]:
        segments = _named(path)
        opened: list[BinaryIO] = []  # filled by the worker thread, so a cancelled open is closed
        try:
            data = await self._run(path, self._read_first, segments, path, opened)
            while True:
                if data:
                    yield data
                if len(data) < CHUNK:
                    return
                data = await self._run(path, _read_chunk, opened[0])
        finally:
            for file in opened:
                file.close()

    async def write(
        self, path: str, chunks: AsyncIterable[bytes], *, size: int, mtime: float | None,
        replacing: Entry | None = None,
    ) -> Entry:
        segments = _named(path)
        part = _Part()
        buffer: list[bytes] = []
        buffered = received = 0
        try:
            async for chunk in chunks:
                buffer.append(chunk)
                buffered += len(chunk)
                received += len(chunk)
                if buffered >= CHUNK:
                    await self._run(path, self._write_part, part, segments, path, buffer)
                    buffer, buffered = [], 0
            if received != size:
                raise _source_changed(path, size, received)
            # A small file is opened, written and published in this one hop.
            return await self._run(path, self._publish, part, segments, path, buffer, mtime)
        except BaseException:
            part.discard()
            raise

    def local_file(self, path: str, entry: Entry) -> _SourceFile:
        return _SourceFile(self, path, entry.size)

    async def copy_small(self, files: Sequence[tuple[str, LocalFile, float | None]],
                         ) -> list[Entry | ConnectorError | None]:
        """Copy small files from this machine, each made durable (where fsync is on) and
        published whole; each file's entry or error, in order, or None for one not begun
        because `stop_copies` came first. Batches go to the copy worker
        processes once they run, and are copied here meanwhile or where there are none. The
        second call starts them: a job of one batch is done before they could help."""
        from core.connectors import copy_workers

        if self.copies_stopped:  # copy workers started since the stop were not told of it
            return [None] * len(files)
        self._small_batches += 1
        workers = self._copy_workers(start=self._small_batches > 1)
        if workers is not None and all(isinstance(file, _SourceFile) for _, file, _ in files):
            try:
                return await workers.copy([(*file.origin, file.size, path, mtime)  # type: ignore[attr-defined]
                                           for path, file, mtime in files])
            except copy_workers.WorkersGone as exc:
                log.warning("copying in this process from now on: %s", exc)
        return await self._copy_small_here(files)

    def stage_now(self, files: Sequence[tuple[str, LocalFile, float | None]]) -> _Staged:
        """The first half of `copy_small`, in the calling thread: copy into temporary files.
        A copy worker runs this while its other thread publishes the batch before."""
        staged = self._staged(files)
        try:
            self._stage_small(staged)
        except BaseException:
            staged.discard()
            raise
        return staged

    def stop_copies(self) -> None:
        """A graceful stop: the files of `copy_small` batches already begun are finished and
        published, the others are not begun (None), here and in the copy workers."""
        self.copies_stopped = True
        workers = self._copy_workers(start=False)
        if workers is not None:
            workers.stop()

    def publish_now(self, staged: _Staged) -> list[Entry | ConnectorError | None]:
        """The second half of `copy_small`, in the calling thread: flush, then name."""
        try:
            return self._publish_staged(staged)
        finally:
            staged.discard()  # what could not be published

    async def start_copy_workers(self) -> CopyWorkers | None:
        """Start the copy workers now and wait until they run (None where there are none);
        otherwise the second `copy_small` starts them and does not wait."""
        self._copy_workers(start=True)
        if self._workers_starting is not None:
            await asyncio.wait([self._workers_starting])
        return self._copy_workers(start=False)

    def _copy_workers(self, *, start: bool) -> CopyWorkers | None:
        """The copy worker processes, once running and while they all live; `start` starts
        them if they are not (yet) starting."""
        from core.connectors.copy_workers import CopyWorkers, worker_count

        if self._workers_wanted is None:
            self._workers_wanted = worker_count()
        if start and self._workers_wanted and self._workers_starting is None:
            self._workers_starting = asyncio.create_task(CopyWorkers.start(
                self._root, fsync=self._fsync, count=self._workers_wanted))
        starting = self._workers_starting
        if starting is None or not starting.done():
            return None
        if starting.cancelled() or starting.exception() is not None:
            log.warning("copying in this process: the copy workers did not start: %s",
                        "cancelled" if starting.cancelled() else starting.exception())
            self._workers_wanted, self._workers_starting = 0, None
            return None
        workers = starting.result()
        return workers if workers.alive else None

    def _staged(self, files: Sequence[tuple[str, LocalFile, float | None]]) -> _Staged:
        staged = _Staged(flush=_syncfs() if self._fsync else None)
        for path, file, mtime in files:
            try:
                staged.waiting.append((_named(path), path, file, mtime))
            except InvalidPath as exc:
                staged.waiting.append(exc)
        return staged

    async def _copy_small_here(self, files: Sequence[tuple[str, LocalFile, float | None]],
                               ) -> list[Entry | ConnectorError | None]:
        """Copy into temporary files in one thread hop (taking turns with other batches where
        files are quick), then flush and name them in another while the next batch copies."""
        staged = self._staged(files)
        try:
            fast = self._seconds_per_file < FAST_FILE
            async with self._batch_turns if fast else contextlib.nullcontext():
                started = time.monotonic()
                # the worker thread fills `staged`, so a cancelled copy still closes it all
                await self._run("", self._stage_small, staged)
                self._seconds_per_file = (time.monotonic() - started) / max(1, len(files))
            return await self._run("", self._publish_staged, staged)
        finally:
            staged.discard()  # what could not be published

    async def write_local(self, path: str, file: LocalFile, *, mtime: float | None,
                          on_copied: Callable[[int], None]) -> Entry:
        """Copy one file from this machine, `COPY_STEP` bytes per thread hop, copied by the
        kernel: progress is reported and a stop is seen between steps."""
        segments = _named(path)
        part = _Part()
        opened: list[int] = []  # filled by the worker thread, so a cancelled open is closed
        try:
            await self._run(path, lambda: opened.append(file.open()))
            copied, limit = 0, file.size + 1  # one byte more: enough to see that it grew
            while copied < limit:
                count = await self._run(path, self._copy_step, part, segments, path, opened[0],
                                        min(COPY_STEP, limit - copied))
                if count == 0:
                    break
                copied += count
                on_copied(count)
            if copied != file.size:
                raise _source_changed(path, file.size, copied)
            return await self._run(path, self._publish, part, segments, path, [], mtime)
        except BaseException:
            part.discard()
            raise
        finally:
            for fd in opened:
                os.close(fd)

    async def mkdir(self, path: str) -> Entry:
        return await self._run(path, self._mkdir, _named(path), path)

    async def remove(self, path: str, entry: Entry) -> None:
        await self._run(path, self._remove, _named(path), path, os.unlink)

    async def rmdir(self, path: str, entry: Entry) -> None:
        await self._run(path, self._remove, _named(path), path, os.rmdir)

    async def set_mtime(self, path: str, mtime: float) -> None:
        await self._run(path, self._set_mtime, _named(path), path, mtime)

    async def trash(self, path: str, entry: Entry) -> None:
        await self._run(path, self._trash, _named(path), path)

    async def rename(self, path: str, entry: Entry, new_name: str) -> Entry:
        return await self._run(path, self._rename, _named(path), path, new_name)

    async def move(self, path: str, entry: Entry, new_path: str) -> Entry:
        return await self._run(path, self._move, _named(path), path, _named(new_path),
                               new_path)

    async def close(self) -> None:
        """Stop the copy workers once they finish what they were sent; every file is closed by
        the call that opened it."""
        starting, self._workers_starting = self._workers_starting, None
        if starting is None:
            return
        if not starting.done():
            starting.cancel()  # the job ends before they are ready: not worth the wait
        await asyncio.wait([starting])
        if not starting.cancelled() and starting.exception() is None:
            await starting.result().close()

    # -- path checks

    def _root_paths(self) -> tuple[str, str]:
        """The root's real path and the prefix of every real path inside it. Resolved once
        (in a worker thread) and cached; not cached while the root is missing."""
        if self._real_root is None:
            try:
                real = os.path.realpath(self._root, strict=True)
            except OSError as err:
                raise Fatal(f"the connection root {self._root} cannot be reached: "
                            f"{err.strerror}") from err
            if not os.path.isdir(real):
                raise Fatal(f"the connection root {self._root} is not a folder")
            self._real_root = (real, real if real.endswith(os.sep) else real + os.sep)
        return self._real_root

    def _resolve(self, segments: list[str], path: str) -> str:
        """The real path of `segments` under the root; InvalidPath unless it stays inside."""
        root, inside = self._root_paths()
        if not segments:
            return root
        real = os.path.realpath(os.path.join(root, *segments))
        if real != root and not real.startswith(inside):
            raise InvalidPath(f"path {path!r} leads outside the connection root")
        return real

    def _folder(self, segments: list[str], path: str) -> str:
        """`_resolve` for the folder a file lives in, remembered: a copy puts hundreds of files
        in one folder, and resolving costs a system call per level of depth each time."""
        key = "/".join(segments)
        real = self._folders.get(key)
        if real is None:
            if len(self._folders) >= FOLDER_CACHE:
                self._folders.clear()
            real = self._folders[key] = self._resolve(segments, path)
        return real

    def _open_fd(self, segments: list[str], path: str) -> int:
        """Open a file for reading; one that is a symlink is opened only if its target is
        inside the root."""
        full = os.path.join(self._folder(segments[:-1], path), segments[-1])
        try:
            return os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise
            return os.open(self._resolve(segments, path), os.O_RDONLY)

    def _where(self, path: str) -> str:
        return f"{path!r} in {self._root}" if path else self._root

    # -- worker-thread bodies: each is one hop

    def _list_dir(self, segments: list[str], path: str) -> list[Entry]:
        entries = []
        with os.scandir(self._resolve(segments, path)) as items:
            for item in items:
                if item.name.startswith(_TEMP_PREFIX):
                    match = _TEMP_NAME.fullmatch(item.name)
                    if match and _writer_alive(int(match[1])):
                        continue  # being written right now: not content yet
                    if match:
                        entries.append(Entry(item.name, False, skip_reason=LEFTOVER_PART))
                        continue
                try:
                    info = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted while we were listing
                if stat.S_ISREG(info.st_mode):  # the common case, without a call
                    entries.append(Entry(item.name, False, info.st_size, _mtime(info),
                                         str(info.st_ino)))
                else:
                    entries.append(self._entry(item.name, item.path, info))
        return entries

    def _stat(self, segments: list[str], path: str) -> Entry:
        if not segments:
            return Entry("", True, mtime=_mtime(os.stat(self._resolve(segments, path))))
        full = os.path.join(self._resolve(segments[:-1], path), segments[-1])
        return self._entry(segments[-1], full, os.lstat(full))

    def _entry(self, name: str, full: str, info: os.stat_result) -> Entry:
        """The entry for `full` from its lstat; a symlink stands for its target only when that
        is a regular file inside the root."""
        if stat.S_ISLNK(info.st_mode):
            root, inside = self._root_paths()
            real = os.path.realpath(full)
            if real != root and not real.startswith(inside):
                return Entry(name, False, skip_reason=_LINK_OUTSIDE)
            try:
                info = os.stat(real)
            except OSError:
                return Entry(name, False, skip_reason=_LINK_DANGLING)
            if stat.S_ISDIR(info.st_mode):
                return Entry(name, False, skip_reason=_LINK_TO_FOLDER)
        if stat.S_ISREG(info.st_mode):
            return Entry(name, False, info.st_size, _mtime(info), str(info.st_ino))
        if stat.S_ISDIR(info.st_mode):
            return Entry(name, True, mtime=_mtime(info))
        return Entry(name, False, skip_reason=_NOT_REGULAR)

    def _read_first(self, segments: list[str], path: str, opened: list[BinaryIO]) -> bytes:
        file = os.fdopen(self._open_fd(segments, path), "rb")
        opened.append(file)
        return _read_chunk(file)

    def _create_part(self, part: _Part, segments: list[str], path: str) -> int:
        if part.fd is not None:
            return part.fd
        folder = self._folder(segments[:-1], path)
        if self._unnamed_temps:
            try:
                part.fd = os.open(folder, os.O_WRONLY | os.O_TMPFILE, 0o666)  # less umask
            except OSError as err:
                if err.errno not in _NO_UNNAMED_TEMPS:
                    raise
                self._unnamed_temps = False
            else:
                part.folder = folder
                return part.fd
        temp = os.path.join(folder, _temp_name())
        part.fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        part.folder, part.path = folder, temp
        return part.fd

    def _copy_step(self, part: _Part, segments: list[str], path: str, source: int,
                   limit: int) -> int:
        return _copy_fd(source, self._create_part(part, segments, path), limit)

    def _write_part(self, part: _Part, segments: list[str], path: str, data: list[bytes]) -> None:
        fd = self._create_part(part, segments, path)
        for chunk in data:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]

    def _publish(
        self, part: _Part, segments: list[str], path: str, data: list[bytes],
        mtime: float | None,
    ) -> Entry:
        self._write_part(part, segments, path, data)
        return self._name(part, segments, path, self._seal(part, mtime, fsync=self._fsync))

    def _seal(self, part: _Part, mtime: float | None, *, fsync: bool) -> os.stat_result:
        """Finish a complete temporary file's content and mtime, on disk if `fsync`."""
        assert part.fd is not None
        if mtime is not None:
            _utime(part.fd, mtime)
        if fsync:
            os.fsync(part.fd)
        return os.fstat(part.fd)

    def _name(self, part: _Part, segments: list[str], path: str,
              info: os.stat_result) -> Entry:
        """Publish a sealed temporary file under its final name, in one step."""
        fd, folder = part.fd, part.folder
        assert fd is not None and folder is not None
        final = os.path.join(folder, segments[-1])
        try:
            if part.path is None:  # unnamed: linked under the final name, unless it is taken
                try:
                    _link_unnamed(fd, final)
                except FileExistsError:  # a file to replace: named first, then renamed over
                    temp = os.path.join(folder, _temp_name())
                    _link_unnamed(fd, temp)
                    part.path = temp
                else:
                    part.fd = None
                    os.close(fd)
            if part.path is not None:
                if part.fd is not None:
                    # closed before it is named: a network share reports write errors here
                    part.fd = None
                    os.close(fd)
                os.replace(part.path, final)
        except IsADirectoryError as err:
            raise AlreadyExists(f"a folder already stands at {self._where(path)}",
                                Entry(segments[-1], True)) from err
        part.path = None  # published: nothing left to delete
        return Entry(segments[-1], False, info.st_size, _mtime(info), str(info.st_ino))

    def _stage_small(self, staged: _Staged) -> None:
        for item in staged.waiting:
            if self.copies_stopped:  # set from the event loop (or a signal) meanwhile
                staged.results.append(None)
                continue
            if isinstance(item, ConnectorError):
                staged.results.append(item)
                continue
            segments, path, file, mtime = item
            part = _Part()
            try:
                source = file.open()
                try:
                    # one byte more than expected: enough to see that the file grew
                    copied = self._copy_step(part, segments, path, source, file.size + 1)
                finally:
                    os.close(source)
                if copied != file.size:
                    raise _source_changed(path, file.size, copied)
                # a named temporary file means a file system without unnamed ones (a network
                # share, FUSE), where a syncfs may not reach the storage: it gets an fsync
                batched = staged.flush is not None and part.path is None
                info = self._seal(part, mtime, fsync=self._fsync and not batched)
            except (OSError, ConnectorError) as err:
                part.discard()
                staged.results.append(self._error(err, path) if isinstance(err, OSError)
                                      else err)
                continue
            except BaseException:
                part.discard()
                raise
            staged.sealed.append((len(staged.results), part, segments, path, info))
            staged.results.append(None)

    def _publish_staged(self, staged: _Staged) -> list[Entry | ConnectorError | None]:
        results, sealed = staged.results, staged.sealed
        try:
            self._flush_staged(staged)
        except OSError as err:
            for index, _, _, path, _ in sealed:
                results[index] = self._error(err, path)
            sealed = []
        for index, part, segments, path, info in sealed:
            try:
                results[index] = self._name(part, segments, path, info)
            except OSError as err:
                results[index] = self._error(err, path)
            except ConnectorError as err:
                results[index] = err
        return results

    @staticmethod
    def _flush_staged(staged: _Staged) -> None:
        """Put the batch's unnamed files on disk: one syncfs per file system they are on (a
        folder inside the root may be another disk), or an fsync each where syncfs is
        refused (a sandbox)."""
        if staged.flush is None:
            return
        unnamed = [(part.fd, info.st_dev) for _, part, _, _, info in staged.sealed
                   if part.path is None and part.fd is not None]
        try:
            for fd in {device: fd for fd, device in unnamed}.values():
                staged.flush(fd)
        except OSError as err:
            if err.errno not in (errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP):
                raise
            for fd, _ in unnamed:
                os.fsync(fd)

    def _mkdir(self, segments: list[str], path: str) -> Entry:
        full = os.path.join(self._resolve(segments[:-1], path), segments[-1])
        try:
            os.mkdir(full)
        except FileExistsError:
            info = os.lstat(full)  # a folder made meanwhile (another job) is the one wanted
            if not stat.S_ISDIR(info.st_mode):
                raise
            return Entry(segments[-1], True, mtime=_mtime(info))
        return Entry(segments[-1], True, mtime=_mtime(os.stat(full)))

    def _set_mtime(self, segments: list[str], path: str, mtime: float) -> None:
        _utime(self._resolve(segments, path), mtime)

    def _trash(self, segments: list[str], path: str) -> None:
        """Move the item to `.dryviq-trash/DATE/path` (UTC date); a name already in today's
        trash gets " (1)", " (2)" …, so nothing trashed twice in a day is lost."""
        full = os.path.join(self._resolve(segments[:-1], path), segments[-1])
        root, _ = self._root_paths()
        day = time.strftime("%Y-%m-%d", time.gmtime())
        folder = os.path.join(root, TRASH_FOLDER, day, *segments[:-1])
        os.makedirs(folder, exist_ok=True)
        stem, ext = os.path.splitext(segments[-1])
        target = os.path.join(folder, segments[-1])
        for n in itertools.count(1):
            if not os.path.lexists(target):
                break
            target = os.path.join(folder, f"{stem} ({n}){ext}")
        os.rename(full, target)
        self._folders.clear()

    def _rename(self, segments: list[str], path: str, new_name: str) -> Entry:
        problem = segment_problem(new_name)
        if problem:
            raise InvalidPath(f"name {new_name!r}: {problem}")
        return self._move(segments, path, [*segments[:-1], new_name], path)

    def _move(self, segments: list[str], path: str, new: list[str], new_path: str) -> Entry:
        """Rename within the root, never over something already there."""
        target = os.path.join(self._resolve(new[:-1], new_path), new[-1])
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", target)
        os.rename(os.path.join(self._resolve(segments[:-1], path), segments[-1]), target)
        self._folders.clear()
        info = os.lstat(target)
        if stat.S_ISDIR(info.st_mode):
            return Entry(new[-1], True, mtime=_mtime(info))
        return Entry(new[-1], False, info.st_size, _mtime(info), str(info.st_ino))

    def _remove(self, segments: list[str], path: str, delete: Callable[[str], None]) -> None:
        delete(os.path.join(self._resolve(segments[:-1], path), segments[-1]))
        self._folders.clear()  # a removed folder may come back as something else

    # -- threads and errors

    async def _run(self, path: str, func: Callable[..., T], *args: object) -> T:
        """Run `func` in a worker thread and map its OS errors. A cancelled caller still waits
        for the thread to finish, so its cleanup never races a file the thread is using."""
        future = asyncio.get_running_loop().run_in_executor(None, func, *args)
        try:
            return await asyncio.shield(future)
        except OSError as err:
            raise self._error(err, path) from err
        except asyncio.CancelledError:
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait((future,))
            raise

    def _error(self, err: OSError, path: str) -> ConnectorError:
        """The one place OS errors become connector errors."""
        where = self._where(path)
        if isinstance(err, FileNotFoundError):
            return NotFound(f"not found: {where}")
        if isinstance(err, NotADirectoryError):
            return NotFound(f"not found: {where} (a file stands where a folder is expected)")
        if isinstance(err, FileExistsError):
            return AlreadyExists(f"already exists: {where}")
        if isinstance(err, PermissionError):
            return ConnectorError(f"permission denied: {where}")
        if err.errno == errno.ENAMETOOLONG:
            return InvalidPath(f"name or path too long: {where}")
        if err.errno == errno.ENOTEMPTY:
            return ConnectorError(f"folder is not empty: {where}")
        if err.errno in _FATAL_ERRNOS:
            return Fatal(f"{err.strerror}: {where}")
        return ConnectorError(f"{err.strerror or err}: {where}")
