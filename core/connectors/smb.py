"""An SMB 2/3 file share (Windows, Samba, a NAS) as a Connector, without mounting it.

smbprotocol's `smbclient` API is synchronous, so every call runs in this connector's own small
thread pool: its size bounds the calls in flight on the one TCP connection (each costs SMB
credits), and the event loop never waits on the network. The connection and its session live
in a cache of this connector's own (never smbclient's process-wide one), are made at the first
call, and are made again after the server drops them: a call that finds its connection closed
drops the cached one and runs once more on a new one.

Writes stream into a temporary file in the destination folder; once complete, its mtime is
set and it is renamed over the final name, all on the same open handle in one round trip, so a
partial file is never visible under a real name. A small file takes one round trip in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import errno
import itertools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import smbclient
from smbclient._io import (
    SMBDirectoryIO,
    SMBFileTransaction,
    SMBRawIO,
    query_info,
    set_info,
)
from smbclient._pool import get_smb_tree
from smbprotocol.exceptions import SMBAuthenticationError, SMBConnectionClosed, SMBException
from smbprotocol.file_info import (
    FileAttributes,
    FileBasicInformation,
    FileInformationClass,
    FileInternalInformation,
    FileRenameInformation,
)
from smbprotocol.open import FilePipePrinterAccessMask

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
    NotFound,
    PathRules,
    Retryable,
)
from core.connectors.parts import TEMP_PREFIX, temp_name, writer_at_work
from core.paths import name_problems, segment_problem
from core.state import Connection

CHUNK = 1 << 20  # bytes per read and per write hop
CALLS_IN_FLIGHT = 8  # calls at once on one connection: SMB credits are per connection
# SMB credits: each request costs one per 64 KiB it carries, and the server keeps about 64 of
# them available to a connection. A call never has more than CREDITS_PER_CALL in flight, so
# CALLS_IN_FLIGHT calls at once never run out (smbprotocol then fails a request outright).
CREDITS_PER_CALL = 8
CREDIT_BYTES = 64 << 10
MAX_REQUEST = CREDITS_PER_CALL * CREDIT_BYTES  # bytes in one read or write request
# A file this small is created, written, dated, renamed and closed in one compound request (one
# round trip): its five other requests and its data stay within CREDITS_PER_CALL.
SMALL_FILE = (CREDITS_PER_CALL - 5) * CREDIT_BYTES
CONNECT_TIMEOUT = 20  # seconds to open the TCP connection
# smbprotocol sends an echo after this many seconds without a word from the server, and drops
# the connection when the echo has no answer as long again: a frozen server ends a call within
# two of these (smbprotocol's own default, 600 s, held a call twenty minutes). Read when each
# connection is made, so a value already in the environment wins.
RECEIVE_TIMEOUT = 30
os.environ.setdefault("SMB_EXPERIMENTAL_TRANSPORT_RECEIVE_TIMEOUT", str(RECEIVE_TIMEOUT))
# A cancelled call, or close(), waits this long for the server before its connection is cut
GRACE = 5  # seconds

# Windows' device names: refused with any extension, in any case ("con.txt", "Nul.tar.gz"),
# the superscript digits ¹ ² ³ included (Windows' "Naming Files, Paths, and Namespaces")
WINDOWS_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
     *(f"{port}{n}" for port in ("COM", "LPT") for n in [*"123456789", *"¹²³"])})
# Names: 255 UTF-16 units on Windows, 255 UTF-8 bytes on a Samba server over a Linux disk; a
# name's UTF-8 bytes are never fewer than its UTF-16 units, so counting bytes fits both.
# Paths: the 260 characters of MAX_PATH bind old Windows programs, not the share, which takes
# 32,767 UTF-16 units; the limit here leaves room for the share's name and the connection's
# folder in front (a Samba server over Linux has 4,096 bytes, see the README).
SMB_RULES = PathRules(
    invalid_chars='\\/:*?"<>|' + "".join(map(chr, range(0x20))),
    max_name_length=255, name_length_in_bytes=True, max_path_length=32_000,
    no_trailing_dot_or_space=True, reserved_names=WINDOWS_RESERVED_NAMES,
)
# what a share can do (the API's platform list shows it too)
SMB_FEATURES = Features(
    # SMB keeps 100 ns, but listings arrive rounded down to the microsecond, and a float near
    # 2026 holds about 0.25 µs: two microseconds cover both
    mtime_precision=2e-6,
    can_set_mtime=True, case_insensitive=True, empty_dirs=True, versions=False,
    path_rules=SMB_RULES,
)
# Characters no path handed to the share may hold, even to read what is there: a separator
# would reach another folder, ':' a named stream, '*' and '?' are patterns
_NEVER = re.compile(f"[{re.escape(SMB_RULES.invalid_chars)}]")

_EPOCH_FILETIME = 116_444_736_000_000_000  # 1970 in 100 ns since 1601
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)
_LISTING = FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION
_DIRECTORY = FileAttributes.FILE_ATTRIBUTE_DIRECTORY
_REPARSE = FileAttributes.FILE_ATTRIBUTE_REPARSE_POINT
_NOT_REGULAR = "symbolic link or other special file on the share, not followed"

# NTSTATUS codes, by what they mean to a user
_NOT_FOUND = {0xC0000034, 0xC000003A, 0xC0000225, 0xC000000F, 0xC0000103}
_EXISTS = {0xC0000035}
_IS_FOLDER = {0xC00000BA}
_LOGON = {0xC000006D, 0xC000006A, 0xC0000071, 0xC0000072, 0xC000006E, 0xC0000234,
          0xC0000224, 0xC000015B}
_NO_SHARE = {0xC00000CC}
_DENIED = {0xC0000022, 0xC00000A2, 0xC0000061}
_FULL = {0xC000007F, 0xC0000044}
_IN_USE = {0xC0000043, 0xC0000056}
_NOT_EMPTY = {0xC0000101}
_BAD_NAME = {0xC0000033, 0xC0000039, 0xC000003B}
_DROPPED = {0xC0000203, 0xC00000C9, 0xC000035C, 0xC000020C}

T = TypeVar("T")
log = logging.getLogger("dryviq.smb")


def _time_field(field: Any) -> float:
    """A time field of a listing as seconds since the epoch. The server sends 100 ns;
    smbprotocol's datetime keeps the microseconds, rounded down."""
    return ((field.get_value() - _EPOCH) // _MICROSECOND) / 1_000_000


def _filetime(seconds: float) -> int:
    """Seconds since the epoch as a Windows FILETIME (100 ns since 1601)."""
    return round(seconds * 10_000_000) + _EPOCH_FILETIME


def _status(err: BaseException) -> int | None:
    """The NTSTATUS an error carries, if any."""
    status = getattr(err, "ntstatus", None) or getattr(err, "status", None)
    return status if isinstance(status, int) else None


def _dropped(err: BaseException) -> bool:
    """Whether `err` says the connection is gone (so a new one may work), not the request."""
    if isinstance(err, SMBConnectionClosed | ConnectionError | BrokenPipeError):
        return True
    if isinstance(err, OSError) and err.errno == errno.EBADF:
        return True  # the socket was closed under a send (the only descriptor a call uses)
    return _status(err) in _DROPPED


def _segments(path: str, *, named: bool = False) -> list[str]:
    """A connector path split into plain names, refused if it could leave the root or reach
    a named stream; `named`: a call on a named file or folder, never the root."""
    segments = path.split("/") if path else []
    if named and not segments:
        raise InvalidPath("path '': the connection root itself cannot be used here")
    for segment in segments:
        problem = segment_problem(segment)
        if problem is None and _NEVER.search(segment):
            problem = f"{segment!r} holds a character an SMB share does not allow"
        if problem:
            raise InvalidPath(f"path {path!r}: {problem}")
    return segments


def _new_segments(path: str) -> list[str]:
    """`_segments` of a path to create something at: its name must follow Windows' rules."""
    segments = _segments(path, named=True)
    problems = name_problems(segments[-1], SMB_RULES)
    if problems:
        raise InvalidPath(f"name {segments[-1]!r} cannot be created on an SMB share: "
                          f"{'; '.join(problems)}")
    return segments


def _done_if_gone(func: Callable[..., T], outcome: Callable[[], T]) -> Callable[..., T]:
    """`func`, for a call that moves or deletes an item: when it runs again after a dropped
    connection and finds the item gone, the server did it before the drop, and `outcome` is
    the result (the new place's entry), not a NotFound for work that was done."""
    runs = 0

    def run(*args: Any, **kwargs: Any) -> T:
        nonlocal runs
        runs += 1
        try:
            return func(*args, **kwargs)
        except (SMBException, OSError) as err:
            gone = _status(err) in _NOT_FOUND or getattr(err, "errno", None) == errno.ENOENT
            if runs == 1 or not gone:
                raise
            return outcome()
    return run


class SmbConnector:
    """A folder on an SMB share: listings, streamed reads, whole-file writes, never outside
    its folder, on one connection of its own."""

    def __init__(self, *, server: str, share: str, username: str, password: str,
                 port: int = 445, path: str = "", encrypt: bool = False,
                 calls_in_flight: int = CALLS_IN_FLIGHT) -> None:
        self.features = SMB_FEATURES
        self._server, self._port, self._share = server, port, share
        self._username = username
        self._root_segments = _segments(path.strip("/"))
        self._share_unc = rf"\\{server}\{share}"
        self._cache: dict[str, Any] = {}  # smbclient's connection_cache, for this connector
        self._session_lock = threading.Lock()  # one thread makes the connection and session
        self._closed = False  # close() was called, and no call since: cleanups do nothing
        self._ending: list[Any] = []  # the connections close() is logging off
        self._calls_in_flight = calls_in_flight
        self._pool = self._threads()
        self._kwargs: dict[str, Any] = {
            "username": username, "password": password, "port": port, "encrypt": encrypt,
            "connection_cache": self._cache, "connection_timeout": CONNECT_TIMEOUT,
        }

    def _threads(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self._calls_in_flight, thread_name_prefix="smb")

    def __repr__(self) -> str:  # never the password
        return f"SmbConnector({self._where('')})"

    # -- the Connector protocol

    async def connect(self) -> None:
        pass  # the share is reached on the first call, which reports what stands in the way

    async def list_dir(self, path: str) -> list[Entry]:
        return await self._run(path, self._list_dir, _segments(path))

    async def stat(self, path: str) -> Entry:
        return await self._run(path, self._stat, _segments(path))

    async def read(self, path: str, entry: Entry) -> AsyncIterator[bytes]:
        segments = _segments(path, named=True)
        opened: list[SMBRawIO] = []  # filled by the worker thread, so a cancelled open closes
        try:
            await self._run(path, self._open_reading, segments, opened)
            while True:
                data = await self._run(path, self._read_chunk, opened[0], once=True,
                                       connect=False)
                if data:
                    yield data
                if len(data) < CHUNK:
                    return
        finally:
            if opened:
                await self._tidy(self._close_quietly, opened[0])

    async def write(
        self, path: str, chunks: AsyncIterable[bytes], *, size: int, mtime: float | None,
        replacing: Entry | None = None,
    ) -> Entry:
        segments = _new_segments(path)
        opened: list[SMBRawIO] = []
        buffer: list[bytes] = []
        buffered = received = 0
        try:
            async for chunk in chunks:
                buffer.append(chunk)
                buffered += len(chunk)
                received += len(chunk)
                if buffered >= CHUNK:
                    await self._run(path, self._write_part, segments, opened, buffer, once=True)
                    buffer, buffered = [], 0
            if received != size:
                raise ConnectorError(f"source changed while reading {path!r}: expected "
                                     f"{size} bytes, got {received}")
            # a small file is created, written, dated and published in this one hop
            return await self._run(path, self._publish, segments, opened, buffer, size,
                                   mtime, once=True)
        except BaseException:
            if opened:
                await self._tidy(self._discard, opened[0])
            raise

    async def mkdir(self, path: str) -> Entry:
        return await self._run(path, self._mkdir, _new_segments(path))

    async def remove(self, path: str, entry: Entry) -> None:
        await self._run(path, _done_if_gone(self._smb, lambda: None), smbclient.remove,
                        _segments(path, named=True))

    async def rmdir(self, path: str, entry: Entry) -> None:
        await self._run(path, _done_if_gone(self._smb, lambda: None), smbclient.rmdir,
                        _segments(path, named=True))

    async def set_mtime(self, path: str, mtime: float) -> None:
        ns = round(mtime * 1e9)
        await self._run(path, self._smb, smbclient.utime, _segments(path, named=True),
                        ns=(ns, ns))

    async def trash(self, path: str, entry: Entry) -> None:
        await self._run(path, _done_if_gone(self._trash, lambda: None),
                        _segments(path, named=True))

    async def rename(self, path: str, entry: Entry, new_name: str) -> Entry:
        segments = _segments(path, named=True)
        problem = segment_problem(new_name)
        if problem:
            raise InvalidPath(f"name {new_name!r}: {problem}")
        return await self._move_to(path, segments,
                                   _new_segments("/".join([*segments[:-1], new_name])))

    async def move(self, path: str, entry: Entry, new_path: str) -> Entry:
        return await self._move_to(path, _segments(path, named=True), _new_segments(new_path))

    async def _move_to(self, path: str, segments: list[str], new: list[str]) -> Entry:
        return await self._run(path, _done_if_gone(self._move, lambda: self._stat(new)),
                               segments, new)

    async def close(self) -> None:
        """Log off and close the connection; the threads end once their calls do. Handles
        still open are not closed again, but a later call connects again, in new threads."""
        self._closed = True
        logoff = asyncio.ensure_future(asyncio.to_thread(self._disconnect))
        if not await self._outlast(logoff, GRACE):
            log.warning("no answer from %s to the logoff; cutting the connection",
                        self._where(""))
            self._cut()
            await self._outlast(logoff, None)
        self._pool.shutdown(wait=False)
        self._pool = self._threads()

    # -- paths

    def _unc(self, segments: list[str]) -> str:
        return "\\".join([self._share_unc, *self._root_segments, *segments])

    def _inside_share(self, segments: list[str]) -> str:
        """A path as a rename names its target: from the share, without the server."""
        return "\\".join([*self._root_segments, *segments])

    def _where(self, path: str) -> str:
        port = "" if self._port == 445 else f":{self._port}"
        root = "".join(f"/{s}" for s in self._root_segments)
        return f"//{self._server}{port}/{self._share}{root}" + (f" at {path!r}" if path else "")

    # -- worker-thread bodies

    def _list_dir(self, segments: list[str]) -> list[Entry]:
        """The folder's entries from its directory listing alone (smbclient's scandir opens
        a path per entry, and its entries' stat() connects again, on port 445)."""
        entries = []
        with SMBDirectoryIO(self._unc(segments), share_access="rwd", **self._kwargs) as folder:
            for info in folder.query_directory("*", _LISTING):
                name = info["file_name"].get_value().decode("utf-16-le")
                if name in (".", ".."):
                    continue
                mtime = _time_field(info["last_write_time"])
                if name.startswith(TEMP_PREFIX):
                    # the last write or change (setting its mtime, just before it is
                    # published, is one)
                    writing = writer_at_work(
                        name, max(mtime, _time_field(info["change_time"])))
                    if writing:
                        continue  # being written right now: not content yet
                    if writing is not None:
                        entries.append(Entry(name, False, skip_reason=LEFTOVER_PART))
                        continue
                entries.append(self._entry(name, info["file_attributes"].get_value(),
                                           info["end_of_file"].get_value(), mtime,
                                           info["file_id"].get_value()))
        return entries

    @staticmethod
    def _entry(name: str, attributes: int, size: int, mtime: float, file_id: int) -> Entry:
        if attributes & _REPARSE:
            return Entry(name, False, skip_reason=_NOT_REGULAR)
        if attributes & _DIRECTORY:
            return Entry(name, True, mtime=mtime, native_id=str(file_id))
        return Entry(name, False, size, mtime, str(file_id))

    def _stat(self, segments: list[str]) -> Entry:
        info = smbclient.stat(self._unc(segments), follow_symlinks=False, **self._kwargs)
        return self._entry(segments[-1] if segments else "", info.st_file_attributes,
                           info.st_size, info.st_mtime_ns / 1_000_000_000, info.st_ino)

    def _open_reading(self, segments: list[str], opened: list[SMBRawIO]) -> None:
        raw = SMBRawIO(self._unc(segments), mode="rb", share_access="rwd", **self._kwargs)
        raw.open()
        opened.append(raw)

    @staticmethod
    def _read_chunk(raw: SMBRawIO) -> bytes:
        """Up to CHUNK bytes (less only at the end), MAX_REQUEST bytes per request."""
        buffer = bytearray(CHUNK)
        view, filled = memoryview(buffer), 0
        while filled < CHUNK:
            count = raw.readinto(view[filled:filled + MAX_REQUEST])
            if not count:
                break
            filled += count
        return bytes(view[:filled])

    @staticmethod
    def _close_quietly(raw: SMBRawIO) -> None:
        with contextlib.suppress(SMBException, OSError, ValueError):
            raw.close()

    def _part(self, segments: list[str], opened: list[SMBRawIO]) -> SMBRawIO:
        """The temporary file beside `segments`, not yet open; in `opened` from now on, so it
        is deleted if the write fails."""
        raw = SMBRawIO(
            self._unc([*segments[:-1], temp_name()]), mode="xb", share_access="rwd",
            desired_access=(FilePipePrinterAccessMask.FILE_WRITE_DATA
                            | FilePipePrinterAccessMask.FILE_WRITE_ATTRIBUTES
                            | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES
                            | FilePipePrinterAccessMask.DELETE),
            **self._kwargs)
        opened.append(raw)
        return raw

    def _write_part(self, segments: list[str], opened: list[SMBRawIO],
                    data: list[bytes]) -> None:
        if not opened:
            self._part(segments, opened).open()
        raw = opened[0]
        for chunk in data:
            view = memoryview(chunk)
            while view:
                view = view[raw.write(view[:MAX_REQUEST]):]

    def _publish(self, segments: list[str], opened: list[SMBRawIO], data: list[bytes],
                 size: int, mtime: float | None) -> Entry:
        """Write the last bytes, then date the file, rename it over the final name and close
        it in one compound request on its handle. A small file not yet begun is created and
        written in that same request."""
        if not opened and size <= SMALL_FILE:
            raw = self._part(segments, opened)
            transaction = SMBFileTransaction(raw)
            raw.open(transaction=transaction)
            if size:
                transaction += raw.fd.write(b"".join(data), 0, send=False)
        else:
            self._write_part(segments, opened, data)
            raw = opened[0]
            transaction = SMBFileTransaction(raw)
        if mtime is not None:
            basic = FileBasicInformation()
            basic["last_write_time"] = _filetime(mtime)
            set_info(transaction, basic)
        rename = FileRenameInformation()
        rename["replace_if_exists"] = True
        rename["file_name"] = self._inside_share(segments).encode("utf-16-le")
        set_info(transaction, rename)
        query_info(transaction, FileInternalInformation)
        raw.close(transaction=transaction)
        try:
            transaction.commit()
        except SMBException as err:
            if _status(err) in _DENIED and self._exists(raw.name):
                # the temporary file was made: the rename over the final name was refused
                raise Retryable(f"access denied, or the file is open in another program: "
                                f"{self._where('/'.join(segments))}") from err
            if _status(err) not in _EXISTS | _IS_FOLDER:
                raise
            # renamed over anything but a folder: one stands there
            raise AlreadyExists(f"a folder already stands at {self._where('/'.join(segments))}",
                                self._stat(segments)) from err
        internal = transaction.results[-2]
        opened.clear()
        if mtime is None:  # the server's, as it stands after the close
            return self._stat(segments)
        return Entry(segments[-1], False, size, mtime, str(internal["index_number"].get_value()))

    def _exists(self, unc: str) -> bool:
        """Whether the server finds something at `unc` (no error is raised for it)."""
        try:
            smbclient.stat(unc, follow_symlinks=False, **self._kwargs)
        except (SMBException, OSError):
            return False
        return True

    def _discard(self, raw: SMBRawIO) -> None:
        """Delete a temporary file that will not be published; best effort, since it runs
        while another error propagates. Never on a new connection: after a drop or a cut the
        server may not answer it either, and a later run cleans the leftover up."""
        if not raw.closed:
            self._close_quietly(raw)
        if any(connection.transport.connected for connection in self._cache.values()):
            with contextlib.suppress(SMBException, OSError, ValueError):
                smbclient.remove(raw.name, **self._kwargs)

    def _smb(self, func: Callable[..., T], segments: list[str], **kwargs: Any) -> T:
        """One of smbclient's path functions on `segments`, on this connector's connection."""
        return func(self._unc(segments), **kwargs, **self._kwargs)

    def _mkdir(self, segments: list[str]) -> Entry:
        try:
            smbclient.mkdir(self._unc(segments), **self._kwargs)
        except OSError as err:
            if err.errno != errno.EEXIST:
                raise
            found = self._stat(segments)  # a folder made meanwhile (another job) is the one
            if not found.is_dir:
                raise
            # under the name the server has: "Docs" when "docs" was asked for
            return dataclasses.replace(found, name=self._name_on_server(segments))
        return self._stat(segments)

    def _name_on_server(self, segments: list[str]) -> str:
        """The name of the item at `segments` as its folder lists it, whatever the case it
        was asked for in (a listing's pattern matches in any case; `segments` hold no
        pattern characters)."""
        with SMBDirectoryIO(self._unc(segments[:-1]), share_access="rwd",
                            **self._kwargs) as folder:
            [info] = folder.query_directory(segments[-1], _LISTING)
        return info["file_name"].get_value().decode("utf-16-le")

    def _move(self, segments: list[str], new: list[str]) -> Entry:
        """Rename within the share, never over something already there (the server refuses)."""
        smbclient.rename(self._unc(segments), self._unc(new), **self._kwargs)
        return self._stat(new)

    def _trash(self, segments: list[str]) -> None:
        """Move the item to `.dryviq-trash/DATE/path` at the connection's root (UTC date); a
        name already in today's trash gets " (1)", " (2)" …, so nothing is lost."""
        day = time.strftime("%Y-%m-%d", time.gmtime())
        folder = [TRASH_FOLDER, day, *segments[:-1]]
        smbclient.makedirs(self._unc(folder), exist_ok=True, **self._kwargs)
        stem, ext = os.path.splitext(segments[-1])
        for n in itertools.count():
            name = f"{stem} ({n}){ext}" if n else segments[-1]
            try:
                smbclient.rename(self._unc(segments), self._unc([*folder, name]),
                                 **self._kwargs)
                return
            except OSError as err:
                if err.errno != errno.EEXIST:
                    raise

    def _connect(self) -> None:
        """Make (or find) the connection, session and share before a call uses them, one
        thread at a time: smbclient's cache is not made for two threads opening one connection
        at once. A share that is not there is said so here, before a path on it is looked
        up (Samba answers a missing share's DFS referral with a path not found), and so is a
        server that hangs up on the first SMB request: it does not speak SMB 2 or 3."""
        key = f"{self._server.lower()}:{self._port}"  # smbclient's key in its cache
        with self._session_lock:
            before = self._cache.get(key)
            try:
                get_smb_tree(self._share_unc, **self._kwargs)
            except (SMBException, OSError) as err:
                if _status(err) in _NO_SHARE | _NOT_FOUND:
                    raise self._no_share() from None
                negotiating = before is None or not before.transport.connected
                if negotiating and self._cache.get(key) is before and _dropped(err):
                    raise Fatal(f"{self._server} on port {self._port} does not answer as an "
                                "SMB 2/3 server: check the port (SMB's is 445) and that the "
                                "server has SMB 2 or later enabled") from None
                raise

    def _disconnect(self) -> None:
        """Log off and close the connection. A server may refuse the logoff (Samba does after
        a refusal on a read-only share): the connection is closed all the same, or it and its
        receiving thread would outlive the connector."""
        with self._session_lock:
            connections = self._ending = list(self._cache.values())
            with contextlib.suppress(SMBException, OSError, ValueError):
                smbclient.delete_session(self._server, port=self._port,
                                         connection_cache=self._cache)
            for connection in connections:  # a no-op on one the logoff closed
                with contextlib.suppress(SMBException, OSError, ValueError):
                    connection.disconnect(close=False)
            self._cache.clear()
            self._ending = []

    def _cut(self) -> None:
        """Shut the connections' sockets down, from any thread and without waiting for a
        lock: smbprotocol's receiving thread sees the end and wakes every call waiting for an
        answer (SMBConnectionClosed), and a send stuck on a full socket fails."""
        for connection in [*self._cache.values(), *self._ending]:
            with contextlib.suppress(OSError, AttributeError):
                connection.transport._sock.shutdown(socket.SHUT_RDWR)

    def _call(self, func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any],
              once: bool, connect: bool, cancelled: threading.Event) -> T:
        """Run one call in a worker thread, connecting first unless it only uses a handle
        already open; after a dropped connection, once more on a new one (not `once` calls,
        which hold an open file the old connection took with it, nor after close() or a
        cancel)."""
        for attempt in range(1 if once else 2):
            try:
                if connect:
                    self._closed = False
                    self._connect()
                return func(*args, **kwargs)
            except (SMBException, OSError) as err:
                if not _dropped(err) or attempt or once or self._closed or cancelled.is_set():
                    raise
                log.info("connection to %s dropped; connecting again", self._where(""))
                self._disconnect()
        raise AssertionError("unreachable")

    async def _run(self, path: str, func: Callable[..., T], *args: Any, once: bool = False,
                   connect: bool = True, **kwargs: Any) -> T:
        """Run `func` in a worker thread and classify its failure. A cancelled caller still
        waits for the thread to finish, so its cleanup never races a file the thread uses;
        if the server leaves it waiting (GRACE), the connection is cut to end it."""
        cancelled = threading.Event()
        work = self._pool.submit(self._call, func, args, kwargs, once, connect, cancelled)
        future = asyncio.wrap_future(work)
        try:
            return await asyncio.shield(future)
        except ConnectorError:
            raise
        except (SMBException, OSError, ValueError) as err:
            raise self._error(err, path) from None
        except asyncio.CancelledError:
            cancelled.set()
            work.cancel()  # not begun yet: it never will
            if not await self._outlast(future, GRACE):
                log.warning("no answer from %s after a cancel; cutting the connection",
                            self._where(""))
                self._cut()
                await self._outlast(future, None)
            if not future.cancelled():
                future.exception()  # its failure is the cancel's to report, not asyncio's
            raise

    @staticmethod
    async def _outlast(future: asyncio.Future[Any], timeout: float | None) -> bool:
        """Wait up to `timeout` seconds (None: no limit) for `future`, through any further
        cancellation of the caller; whether it is done."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not future.done() and (deadline is None or loop.time() < deadline):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait((future,), timeout=None if deadline is None
                                   else deadline - loop.time())
        return future.done()

    async def _tidy(self, cleanup: Callable[[SMBRawIO], None], raw: SMBRawIO) -> None:
        """Close or discard a handle (best effort, errors suppressed) in a worker thread, to
        the end even if the caller is cancelled, cutting the connection if the server leaves
        it waiting (GRACE); nothing once close() has ended the connection: the handle went
        with it, and a new session would be left open."""
        def tidy() -> None:
            if not self._closed:
                cleanup(raw)
        task = asyncio.current_task()
        cancels = task.cancelling() if task else 0
        future = asyncio.get_running_loop().run_in_executor(self._pool, tidy)
        if not await self._outlast(future, GRACE):
            self._cut()
            await self._outlast(future, None)
        if task and task.cancelling() > cancels:  # cancelled meanwhile: that is not lost
            raise asyncio.CancelledError

    def _no_share(self) -> Fatal:
        return Fatal(f"share {self._share!r} not found on {self._server} (port {self._port}): "
                     "check the share's name")

    def _error(self, err: BaseException, path: str) -> ConnectorError:
        """The one place smbprotocol's failures become connector errors. The messages name the
        share and the path, never the password (smbprotocol's own text is not passed on,
        except the server's status name)."""
        status = _status(err)
        where = self._where(path)
        share = self._where("")
        if isinstance(err, SMBAuthenticationError) or status in _LOGON:
            return AuthExpired(f"the server refused the username or password for {share} (as "
                               f"{self._username}): check them, and that the account is "
                               "enabled")
        if status in _NO_SHARE:
            return self._no_share()
        if status in _FULL:
            return Fatal(f"the share {share} is full (or the account's quota is spent) "
                         f"while writing {path!r}: free some space on it")
        if status in _NOT_FOUND or getattr(err, "errno", None) == errno.ENOENT:
            return NotFound(f"not found: {where}")
        if status in _EXISTS:
            return AlreadyExists(f"already exists: {where}")
        if status in _DENIED:
            return ConnectorError(f"access denied: {where} (the account {self._username} may "
                                  "not do this there)")
        if status in _IN_USE:
            return Retryable(f"in use by another program: {where}")
        if status in _NOT_EMPTY:
            return ConnectorError(f"folder is not empty: {where}")
        if status in _BAD_NAME:
            return InvalidPath(f"the server refuses the name: {where}")
        if isinstance(err, ValueError) and str(err).startswith("Failed to connect"):
            reason = err.__cause__.strerror if isinstance(err.__cause__, OSError) else None
            return Fatal(f"cannot reach the SMB server {self._server} on port {self._port}: "
                         f"{reason or err.__cause__ or 'no answer'}; check the server's name, "
                         "the port, and that a firewall lets SMB through")
        if _dropped(err) and isinstance(err.__cause__, TimeoutError):
            return Retryable(f"the SMB server {share} stopped answering while working on "
                             f"{path!r}")
        if _dropped(err):
            return Retryable(f"the connection to {share} dropped while working on {path!r}")
        if status is not None:
            return ConnectorError(f"the server refused the request on {where} "
                                  f"(NTSTATUS {status:#010x})")
        return ConnectorError(f"SMB request failed on {where}: {type(err).__name__}")


def open_smb(connection: Connection, secrets: dict[str, Any]) -> SmbConnector:
    """The connector for a stored SMB connection: config keys server, port, share, path
    ('' or '/sub/folder'), username, encrypt; secrets {'password': ...}."""
    config = connection.config
    return SmbConnector(server=config["server"], port=int(config.get("port", 445)),
                        share=config["share"], path=config.get("path", ""),
                        username=config["username"], password=secrets.get("password", ""),
                        encrypt=bool(config.get("encrypt")))
