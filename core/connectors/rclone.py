"""Any rclone remote (S3, SharePoint/OneDrive, Google Drive, SFTP, ...) as a Connector, driven
through a private `rclone rcd` on loopback (rclone_daemon.py) started at first use.

What the remote can do comes from rclone itself (operations/fsinfo), so the engine adapts per
remote. Uploads stream into operations/uploadfile. On an object store (bucket-based) an object
appears only once complete, so a file is uploaded under its own name; anywhere else (local,
SFTP, SMB, crypt over those...) it is uploaded under a temporary name in the same folder and
then moved onto its name, so no partial file is ever visible under a real name. A temporary
file whose writer is gone is listed as LEFTOVER_PART (parts.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from core.connectors.base import (
    LEFTOVER_PART,
    TRASH_FOLDER,
    AlreadyExists,
    AuthExpired,
    ConnectorError,
    Entry,
    Fatal,
    Features,
    InvalidPath,
    LocalFile,
    NotFound,
    PathRules,
    Retryable,
    Vanished,
)

# paths are checked as the local connector checks them
from core.connectors.local import _named, _segments

# temporary files name their host: a remote may be written by several machines (parts.py)
from core.connectors.parts import TEMP_PREFIX, temp_name, writer_at_work
from core.connectors.rclone_daemon import (
    DaemonGone,
    RcloneDaemon,
    ca_cert,
    list_remote_names,
)
from core.paths import join, segment_problem
from core.state import Connection

CHUNK = 1 << 20  # bytes per chunk read from a download (or from a local file rclone cannot)
# small files rclone copies from this machine at once, across all batches (`copy_small`):
# each is a call of its own, more waiting on the remote than moving bytes
COPIES_IN_FLIGHT = 8
PROGRESS_FROM = 8 << 20  # bytes: rclone copying a file this large is asked how far it is...
PROGRESS_EVERY = 0.5  # ...this often (seconds)
_groups = itertools.count(1)  # rclone stats groups, one per file watched
MAX_RESTARTS = 3  # rclone restarted after it died, per connector, before it counts as Fatal
# an upload reaches rclone as a stream of unknown size, which its S3 backend sends in parts of
# its chunk_size (5 MiB unless configured), at most 10,000 of them: about 48.8 GiB
S3_STREAMED_MAX = 5 * (1 << 20) * 10_000
_NO_MTIME_NS = 10**18  # rclone's ModTimeNotSupported is a hundred years, in ns

_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
_NOT_FOUND = re.compile(r"not found|no such file|doesn't exist|does not exist|nosuchkey|"
                        r"nosuchbucket")
# matched against rclone's message with the remote and the paths taken out (a folder "Room
# 401" is no failed login): backend phrases, and HTTP statuses only where a backend names one
_HTTP_STATUS = r"(?:status code|http error|error|status):? "
_AUTH = re.compile(r"invalidaccesskeyid|signaturedoesnotmatch|invalid_grant|unauthori[sz]ed|"
                   rf"{_HTTP_STATUS}401\b|token (has )?expired|couldn't fetch token|"
                   r"invalid_client|authentication failed|unable to authenticate")
_RETRY = re.compile(rf"{_HTTP_STATUS}(?:429|50[0234])\b|too many requests|rate ?limit|"
                    r"slow ?down|service unavailable|bad gateway|internal server error|"
                    r"timeout|timed out|connection reset|connection refused|temporar")
_PATH_PARAMS = ("fs", "remote", "srcFs", "srcRemote", "dstFs", "dstRemote")
# characters rclone's local backend reads as standing for others (its encoding of what other
# systems refuse: ／ for /, ␀ for NUL, ‛ quoting them...), and the private-use characters it
# stands for bytes that are not UTF-8: a path with any of them is streamed to rclone instead
_RCLONE_ENCODED = re.compile("[\u201b\u2400-\u243f\uee80-\ueeff\uff00-\uffef]")

# rclone encodes what a backend refuses, but not control characters, which do not survive:
# a tab comes back as '␉' from a local disk, a newline fails on S3
_INVALID_CHARS = "/" + "".join(map(chr, range(0x20))) + "\x7f"
# What a connector says before rclone answered: nothing is assumed
_UNKNOWN = Features(mtime_precision=None, can_set_mtime=False, empty_dirs=False)

log = logging.getLogger("dryviq.rclone")


def _epoch(text: str | None) -> float | None:
    """rclone's RFC 3339 time (nanoseconds, any offset) as epoch seconds."""
    match = _TIME.match(text or "")
    if not match:
        return None
    offset = "+00:00" if match[3] == "Z" else match[3]
    seconds = datetime.fromisoformat(match[1] + offset).timestamp()
    return seconds + (int(match[2]) / 10 ** len(match[2]) if match[2] else 0.0)


def _rfc3339(mtime: float) -> str:
    """Epoch seconds as RFC 3339 in UTC, to the nanosecond (the fraction taken apart from the
    seconds: mtime * 1e9 as a float would be off by up to 128 ns)."""
    seconds = math.floor(mtime)
    seconds, nanoseconds = divmod(seconds * 10**9 + round((mtime - seconds) * 1e9), 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanoseconds:09d}Z"


def _as_rclone_reads_it(real: str) -> tuple[str, str] | None:
    """The folder and name under which rclone's local backend finds the file at the absolute
    path `real`, or None where it would read the path as another (see _RCLONE_ENCODED)."""
    try:
        real.encode()
    except UnicodeEncodeError:  # bytes that are not UTF-8, kept as surrogates
        return None
    if _RCLONE_ENCODED.search(real):
        return None
    folder, _, name = real.rpartition("/")
    return folder or "/", name


def _source_changed(path: str, size: int, now: int) -> ConnectorError:
    return ConnectorError(f"source changed while reading {path!r}: expected {size} bytes, "
                          f"got {now}")


async def _chunks_of(fd: int, on_copied: Callable[[int], None]) -> AsyncIterator[bytes]:
    """A local file's bytes, read in a worker thread, each chunk counted as it goes."""
    while chunk := await asyncio.to_thread(os.read, fd, CHUNK):
        on_copied(len(chunk))
        yield chunk


def _one_line(message: str) -> str:
    """rclone's message on one line, at most 300 characters: its start and its end, where
    rclone says what went wrong ("...: file name too long")."""
    line = " ".join(message.split())
    return line if len(line) <= 300 else f"{line[:120]} ... {line[-175:]}"


def _max_name_length(info: dict[str, Any]) -> int:
    """A conservative limit on a name's UTF-8 bytes, by the kind of remote (rclone does not
    say): crypt's standard name encryption turns 143 bytes into the 255 its remote takes; an
    object store's key holds 1024 bytes; a file system or a drive takes 255."""
    if str(info.get("String", "")).startswith("Encrypted drive"):
        return 143
    return 1024 if (info.get("Features") or {}).get("BucketBased") else 255


class RcloneConnector:
    """A folder of an rclone remote (`name:path`), through the connector's own rclone."""

    def __init__(self, remote: str, config: str | None = None) -> None:
        self._remote = remote
        self._name = remote.partition(":")[0]
        self._config = config
        self._daemon = RcloneDaemon(config)
        self._features: Features | None = None
        self._atomic = False  # an upload is published whole by the remote itself
        self._list_options: dict[str, Any] = {"noMimeType": True}
        self._starting: asyncio.Lock | None = None
        self._restarts = 0
        self._ids = False  # whether the remote has shown native ids (Drive, OneDrive...)
        self._copies = asyncio.Semaphore(COPIES_IN_FLIGHT)
        self._copies_stopped = False  # see stop_copies

    @property
    def features(self) -> Features:
        """The remote's capabilities, from rclone once `connect` (or any call) has started it;
        nothing is assumed before."""
        return self._features or _UNKNOWN

    async def connect(self) -> None:
        await self._ensure_started()

    @property
    def daemon_pid(self) -> int | None:
        """The rclone process serving this connector, while there is one."""
        return self._daemon.pid

    # -- the Connector protocol

    async def list_dir(self, path: str) -> list[Entry]:
        _segments(path)
        try:
            answer = await self._rc("operations/list", {
                "fs": self._remote, "remote": path, "opt": self._list_options}, path)
        except NotFound as exc:
            if not path:
                raise Fatal(f"{self._remote} does not exist (no such folder or bucket)") from exc
            raise
        entries = []
        for item in answer.get("list") or []:
            name = item.get("Name", "")
            writing = None
            if name.startswith(TEMP_PREFIX) and not item.get("IsDir"):
                writing = writer_at_work(name, _epoch(item.get("ModTime")))
            if writing is False:
                entries.append(Entry(name, False, skip_reason=LEFTOVER_PART))
            if writing is not None:
                continue  # one being written now is not content yet
            entries.append(self._entry(item))
        return entries

    async def stat(self, path: str) -> Entry:
        _segments(path)
        answer = await self._rc("operations/stat", {
            "fs": self._remote, "remote": path, "opt": self._list_options}, path)
        item = answer.get("item")
        if not item:
            raise NotFound(f"not found: {self._where(path)}")
        return self._entry(item)

    async def read(self, path: str, entry: Entry) -> AsyncIterator[bytes]:
        _named(path)
        await self._ensure_started()
        try:
            async with self._daemon.download(self._remote, path) as response:
                if response.status_code == 404:
                    raise await self._unreadable(path)
                if response.status_code != 200:
                    text = (await response.aread()).decode(errors="replace")
                    raise self._error(response.status_code, text, path)
                async for chunk in response.aiter_bytes(CHUNK):
                    yield chunk
        except DaemonGone as exc:
            raise Retryable(f"rclone stopped while reading {self._where(path)}: "
                            f"{self._daemon.last_message()}") from exc

    async def write(
        self, path: str, chunks: AsyncIterable[bytes], *, size: int, mtime: float | None,
        replacing: Entry | None = None,
    ) -> Entry:
        segments = _named(path)
        features = await self._ensure_started()
        folder = "/".join(segments[:-1])
        staged = segments[-1] if self._atomic else temp_name()
        params = {"fs": self._remote, "remote": folder}
        if mtime is not None and features.can_set_mtime:
            params["_config"] = json.dumps({"Metadata": True,
                                            "MetadataSet": {"mtime": _rfc3339(mtime)}})

        async def counted() -> AsyncIterator[bytes]:
            received = 0
            async for chunk in chunks:
                received += len(chunk)
                yield chunk
            if received != size:  # raised before the body ends: rclone publishes nothing
                raise _source_changed(path, size, received)

        try:
            try:
                status, answer = await self._daemon.upload(params, staged, counted())
            except DaemonGone as exc:
                raise Retryable(f"rclone stopped while writing {self._where(path)}: "
                                f"{self._daemon.last_message()}") from exc
            if status != 200 or answer.get("error"):
                raise self._error(status, answer.get("error", ""), path, (folder, staged))
            if not self._atomic:
                await self._rc("operations/movefile", self._move_params(
                    join(folder, staged), path, {"IgnoreTimes": True}), path)
        except BaseException:
            if not self._atomic:  # rclone removes what it wrote on failure; this is in case
                with contextlib.suppress(ConnectorError, DaemonGone):
                    await self._daemon.call("operations/deletefile", {
                        "fs": self._remote, "remote": join(folder, staged)})
            raise
        if "_config" in params and not self._ids and features.mtime_precision is not None \
                and features.mtime_precision <= 1e-6:
            # what a stat would say, known already: rclone checked the size, the remote keeps
            # the time given to the microsecond, and it has no ids to learn (one call less)
            return Entry(segments[-1], False, size, mtime)
        return await self.stat(path)

    async def write_local(self, path: str, file: LocalFile, *, mtime: float | None,
                          on_copied: Callable[[int], None]) -> Entry:
        """Store a file of this machine's disk at `path`, rclone reading it itself
        (operations/copyfile from the local folder, as `rclone copy` would): published as
        `write` publishes, with the time of the file on disk (which the engine's `mtime` is,
        unless the file changed since it was listed) where the remote keeps times. A file
        whose size is no longer the one listed is refused, and rclone refuses one that
        changes while it reads it. Progress is reported as rclone counts it (a large file)
        or once the file is stored."""
        segments = _named(path)
        reported = 0

        def report(now: int) -> None:
            nonlocal reported
            if now > reported:
                on_copied(now - reported)
                reported = now

        features = await self._ensure_started()
        fd = await asyncio.to_thread(file.open)  # Vanished if gone; checked inside its root
        try:
            info = os.fstat(fd)
            if info.st_size != file.size:
                raise _source_changed(path, file.size, info.st_size)
            # the file opened, by its real path: no link is followed again by rclone
            real = os.readlink(f"/proc/self/fd/{fd}")
            source = _as_rclone_reads_it(real)
            if source is None:
                return await self.write(path, _chunks_of(fd, on_copied), size=file.size,
                                        mtime=mtime)
            group = f"dryviq-{next(_groups)}" if file.size >= PROGRESS_FROM else None
            async with self._watched(group, file.size, report):
                await self._copy_from_disk(source, real, segments, path, group)
        finally:
            os.close(fd)
        report(file.size)
        if not self._ids and features.mtime_precision is not None \
                and features.mtime_precision <= 1e-6:
            # as `write`: what a stat would say is known (rclone checked the size and kept
            # the file's time to the nanosecond), and there are no ids to learn
            return Entry(segments[-1], False, file.size, info.st_mtime_ns / 1_000_000_000)
        return await self.stat(path)

    def stop_copies(self) -> None:
        """A graceful stop: `copy_small` finishes the files it has begun and begins no other."""
        self._copies_stopped = True

    async def copy_small(self, files: Sequence[tuple[str, LocalFile, float | None]],
                         ) -> list[Entry | ConnectorError | None]:
        """`write_local` for each file, COPIES_IN_FLIGHT at once across all batches; each
        file's entry or error, in the order of the files, or None for one not begun because
        `stop_copies` came first."""
        async def one(path: str, file: LocalFile, mtime: float | None,
                      ) -> Entry | ConnectorError | None:
            async with self._copies:
                if self._copies_stopped:
                    return None
                try:
                    return await self.write_local(path, file, mtime=mtime,
                                                  on_copied=lambda _: None)
                except ConnectorError as exc:
                    return exc

        async with asyncio.TaskGroup() as group:
            copies = [group.create_task(one(*file)) for file in files]
        return [copy.result() for copy in copies]

    @contextlib.asynccontextmanager
    async def _watched(self, group: str | None, size: int,
                       report: Callable[[int], None]) -> AsyncIterator[None]:
        """While the body runs, report the bytes rclone counts in its stats `group` (none
        watched where `group` is None); the group is dropped after."""
        if group is None:
            yield
            return

        async def watch() -> None:
            while True:
                await asyncio.sleep(PROGRESS_EVERY)
                _, answer = await self._daemon.call("core/stats", {"group": group})
                report(min(int(answer.get("bytes") or 0), size))

        watcher = asyncio.create_task(watch())
        try:
            yield
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)  # DaemonGone too: ignored
            with contextlib.suppress(DaemonGone):
                await self._daemon.call("core/stats-delete", {"group": group})

    async def _copy_from_disk(self, source: tuple[str, str], real: str, segments: list[str],
                              path: str, group: str | None) -> None:
        """operations/copyfile from the local folder and name `source` to `path`: straight
        onto its name on an object store, elsewhere onto a temporary name then moved. Its
        bytes are counted in the stats `group` where one is given."""
        folder = "/".join(segments[:-1])
        staged = path if self._atomic else join(folder, temp_name())
        params: dict[str, Any] = {
            "srcFs": source[0], "srcRemote": source[1], "dstFs": self._remote,
            "dstRemote": staged,
            # nothing to compare with under a new name (and on an object store, the engine
            # decided already): no look-up first
            "_config": {"NoCheckDest": True}}
        if group is not None:
            params["_group"] = group
        try:
            try:
                await self._rc("operations/copyfile", params, path)
            except NotFound as exc:
                if not os.path.lexists(real):  # the source, not the destination, is gone
                    raise Vanished(f"the source file is gone: {path!r}") from exc
                raise
            if not self._atomic:
                await self._rc("operations/movefile", self._move_params(
                    staged, path, {"IgnoreTimes": True}), path)
        except BaseException:
            if not self._atomic:  # rclone removes what it wrote on failure; this is in case
                with contextlib.suppress(ConnectorError, DaemonGone):
                    await self._daemon.call("operations/deletefile", {
                        "fs": self._remote, "remote": staged})
            raise

    async def mkdir(self, path: str) -> Entry:
        segments = _named(path)
        try:
            await self._rc("operations/mkdir", {"fs": self._remote, "remote": path}, path)
        except ConnectorError:
            existing = await self._existing(path)
            if existing is not None and not existing.is_dir:
                raise AlreadyExists(f"a file already stands at {self._where(path)}",
                                    existing) from None
            if existing is None:
                raise
            return existing
        return Entry(segments[-1], True)

    async def remove(self, path: str, entry: Entry) -> None:
        _named(path)
        await self._rc("operations/deletefile", {"fs": self._remote, "remote": path}, path)

    async def rmdir(self, path: str, entry: Entry) -> None:
        _named(path)
        await self._rc("operations/rmdir", {"fs": self._remote, "remote": path}, path)

    async def set_mtime(self, path: str, mtime: float) -> None:
        """rclone's remote control has no call that only sets a time (1.60): `rclone touch`
        runs through core/command, with this connector's config."""
        _named(path)
        features = await self._ensure_started()
        if not features.can_set_mtime:
            raise ConnectorError(f"{self._remote} keeps no modification times it is given")
        options = {"timestamp": _rfc3339(mtime).rstrip("Z")}  # touch reads it as UTC
        for flag, value in (("config", self._config), ("ca-cert", ca_cert())):
            if value:  # the command is a new rclone process: it needs what ours was given
                options[flag] = value
        answer = await self._rc("core/command", {
            "command": "touch", "arg": ["--no-create", self._fs_at(path)], "opt": options},
            path)
        said = str(answer.get("result", ""))
        if answer.get("error") or "nonexistent" in said:
            raise self._error(404 if "nonexistent" in said else 500, said, path)

    async def trash(self, path: str, entry: Entry) -> None:
        """Move to `.dryviq-trash/DATE/path` (UTC date) at the root; a name already in
        today's trash gets " (1)", " (2)" ..."""
        segments = _named(path)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        folder = "/".join([TRASH_FOLDER, day, *segments[:-1]])
        await self._rc("operations/mkdir", {"fs": self._remote, "remote": folder}, folder)
        stem, ext = os.path.splitext(segments[-1])
        target = join(folder, segments[-1])
        for n in itertools.count(1):
            if await self._existing(target) is None:
                break
            target = join(folder, f"{stem} ({n}){ext}")
        await self._move(path, entry, target)

    async def rename(self, path: str, entry: Entry, new_name: str) -> Entry:
        segments = _named(path)
        problem = segment_problem(new_name)
        if problem:
            raise InvalidPath(f"name {new_name!r}: {problem}")
        return await self.move(path, entry, join("/".join(segments[:-1]), new_name))

    async def move(self, path: str, entry: Entry, new_path: str) -> Entry:
        _named(path)
        new = _named(new_path)
        features = await self._ensure_started()
        same_item = (features.case_insensitive
                     and path.casefold() == new_path.casefold())
        existing = None if same_item else await self._existing(new_path)
        if existing is not None:
            raise AlreadyExists(f"already exists: {self._where(new_path)}", existing)
        await self._move(path, entry, new_path)
        return Entry(new[-1], True) if entry.is_dir else await self.stat(new_path)

    async def close(self) -> None:
        """Stop this connector's rclone."""
        await self._daemon.stop()

    # -- rclone

    async def _ensure_started(self) -> Features:
        """rclone running and its remote described; started again if it died (at most
        MAX_RESTARTS times)."""
        if self._daemon.ready and self._features is not None:
            return self._features
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._daemon.ready and self._features is not None:
                return self._features
            if self._daemon.pid is not None:  # it ran, and died
                self._restarts += 1
                message = self._daemon.last_message()
                await self._daemon.stop()
                if self._restarts > MAX_RESTARTS:
                    raise Fatal(f"rclone keeps stopping: {message}")
                log.warning("rclone stopped (%s); starting it again", message)
            self._daemon.spawn()  # here: the event loop's thread lives as long as rclone
            try:
                await asyncio.to_thread(self._finish_start)
            except BaseException:
                self._daemon.kill()
                raise
            self._daemon.mark_ready()
        assert self._features is not None
        return self._features

    def _finish_start(self) -> None:
        """Wait for the spawned rclone to serve, and describe the remote (blocking)."""
        self._daemon.wait_ready()
        status, info = self._daemon.call_now("operations/fsinfo", {"fs": self._remote})
        if status != 200 or info.get("error"):
            raise self._error(status, str(info.get("error", "")), "")
        self._adopt(info)

    def _adopt(self, info: dict[str, Any]) -> None:
        """Features from operations/fsinfo. A time given on upload is kept where the remote
        keeps times and writes metadata (rclone sets it through the metadata `mtime`)."""
        flags = info.get("Features") or {}
        precision = info.get("Precision", _NO_MTIME_NS)
        mtime_precision = None if precision >= _NO_MTIME_NS else max(precision, 1) / 1e9
        hashes = [] if flags.get("SlowHash") else list(info.get("Hashes") or [])
        self._atomic = bool(flags.get("BucketBased"))
        on_s3 = str(info.get("String", "")).startswith("S3 ")  # "S3 bucket x", "S3 root"
        self._list_options = {"noMimeType": True, "showHash": bool(hashes)}
        self._features = Features(
            mtime_precision=mtime_precision,
            can_set_mtime=mtime_precision is not None and bool(flags.get("WriteMetadata")),
            case_insensitive=bool(flags.get("CaseInsensitive")),
            empty_dirs=bool(flags.get("CanHaveEmptyDirectories", True)),
            hashes=frozenset(hashes),
            max_file_size=S3_STREAMED_MAX if on_s3 else None,
            path_rules=PathRules(invalid_chars=_INVALID_CHARS,
                                 max_name_length=_max_name_length(info),
                                 name_length_in_bytes=True),
            reads_local_files=True,  # our rclone runs on this machine
        )

    async def _rc(self, method: str, params: dict[str, Any], path: str) -> dict[str, Any]:
        """One rc call, rclone started (again, once, if it died); errors classified."""
        for attempt in (1, 2):
            await self._ensure_started()
            try:
                status, answer = await self._daemon.call(method, params)
            except DaemonGone as exc:
                if attempt == 2 or self._daemon.ready:
                    raise Retryable(f"rclone is not answering ({exc}): "
                                    f"{self._where(path)}") from exc
                continue
            if status == 200 and not answer.get("error"):
                return answer
            named = [params.get(key) for key in _PATH_PARAMS] + list(params.get("arg", []))
            raise self._error(status, str(answer.get("error", "")), path,
                              [name for name in named if isinstance(name, str)])
        raise AssertionError("unreachable")

    def _error(self, status: int, message: str, path: str,
               names: Iterable[str] = ()) -> ConnectorError:
        """The one place rclone's failures become connector errors. rclone's status says
        little (404 or 500): its words decide, once the names in them are taken out."""
        text = self._without_names(message, [path, *names])
        where, said = self._where(path), _one_line(message)
        if "didn't find section in config file" in text:
            config = self._config or "rclone's default config (`rclone config file`)"
            return Fatal(f"there is no remote {self._name!r} in {config}; "
                         "`rclone listremotes` names the remotes it has")
        if "is a file not a directory" in text:
            return Fatal(f"{self._remote} is a file, not a folder")
        if status == 404:
            return NotFound(f"not found: {where}")
        if "file name too long" in text:
            return InvalidPath(f"name too long for {self._remote}: {where} ({said})")
        if _AUTH.search(text):  # before the words: "the key you provided does not exist"
            return AuthExpired(f"{self._name}: the storage refused rclone's credentials "
                               f"({said}); fix the remote with `rclone config reconnect "
                               f"{self._name}:` or `rclone config`")
        if _NOT_FOUND.search(text):
            return NotFound(f"not found: {where}")
        if _RETRY.search(text):
            return Retryable(f"{said}: {where}")
        return ConnectorError(f"{said}: {where}")

    # -- helpers

    def _without_names(self, message: str, names: Iterable[str]) -> str:
        """rclone's message, lower case, without the remote, its root and the paths named
        (each also as rclone shows it: under the root, or in full as `remote/path`)."""
        under = self._remote.partition(":")[2]
        texts = {self._remote, under}
        for name in names:
            if name:
                texts |= {name, join(under, name), self._fs_at(name)}
        for text in sorted(filter(None, texts), key=len, reverse=True):
            message = message.replace(text, " ")
        return message.lower()

    def _where(self, path: str) -> str:
        return f"{path!r} in {self._remote}" if path else self._remote

    def _fs_at(self, path: str) -> str:
        """The remote string of a folder or file inside the root."""
        if not path:
            return self._remote
        return f"{self._remote}{'' if self._remote.endswith((':', '/')) else '/'}{path}"

    def _entry(self, item: dict[str, Any]) -> Entry:
        is_dir = bool(item.get("IsDir"))
        self._ids = self._ids or bool(item.get("ID"))
        hashes = tuple(sorted((kind, digest) for kind, digest in
                              (item.get("Hashes") or {}).items() if digest))
        mtime = None if is_dir and self._atomic else _epoch(item.get("ModTime"))
        return Entry(item.get("Name", ""), is_dir, 0 if is_dir else max(item.get("Size", 0), 0),
                     mtime, item.get("ID") or None, hashes=hashes)

    def _move_params(self, path: str, new_path: str,
                     config: dict[str, Any] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"srcFs": self._remote, "srcRemote": path,
                                  "dstFs": self._remote, "dstRemote": new_path}
        if config:
            params["_config"] = config
        return params

    async def _move(self, path: str, entry: Entry, new_path: str) -> None:
        """A file by movefile; a folder with everything in it by sync/move (one rename where
        the backend can, object by object on an object store)."""
        if not entry.is_dir:
            await self._rc("operations/movefile", self._move_params(path, new_path), path)
            return
        await self._rc("sync/move", {"srcFs": self._fs_at(path), "dstFs": self._fs_at(new_path),
                                     "createEmptySrcDirs": True, "deleteEmptySrcDirs": True},
                       path)
        with contextlib.suppress(NotFound):
            await self._rc("operations/rmdir", {"fs": self._remote, "remote": path}, path)

    async def _unreadable(self, path: str) -> ConnectorError:
        """What a 404 on reading a listed file means: Vanished only if it is really gone (a
        file rclone lists but cannot serve must fail, never be skipped as vanished)."""
        if await self._existing(path) is None:
            return Vanished(f"the source file is gone: {self._where(path)}")
        return ConnectorError(f"rclone lists this file but cannot read it: {self._where(path)}")

    async def _existing(self, path: str) -> Entry | None:
        try:
            return await self.stat(path)
        except NotFound:
            return None


def open_rclone(connection: Connection) -> RcloneConnector:
    """The connector for a stored rclone connection: config keys remote ('name:path') and
    config (an rclone.conf path, or None for rclone's default)."""
    return RcloneConnector(connection.config["remote"], connection.config.get("config"))


async def list_remotes(config: str | None = None) -> list[str]:
    """The remotes in rclone's config (`name:` each), for the app to offer; ConnectorError
    when rclone is missing (saying how to install it) or the config cannot be read."""
    return await list_remote_names(config)
