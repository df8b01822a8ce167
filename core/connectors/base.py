"""The interface every storage platform implements, modelled on rclone's Fs/Object/Features.

A connector lists one directory at a time, streams reads and writes, and describes what it
can do in `Features`, so the engine adapts to each platform instead of special-casing it.
Paths given to a connector are relative to its root, '/'-separated, '' for the root itself,
and every segment in them is a valid name on that platform.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(slots=True)  # not frozen: built by the ten thousand, and frozen costs 5x to build
class Entry:
    """One file or folder as a platform lists it; the parent is known to whoever listed it.
    Treat it as a value: nothing changes an Entry after a listing made it."""

    name: str
    is_dir: bool
    size: int = 0
    mtime: float | None = None  # seconds since the epoch, None where the platform has none
    native_id: str | None = None
    version: str | None = None
    hashes: tuple[tuple[str, str], ...] = ()  # (algorithm, hex digest) pairs
    # listed, but not something to transfer (say, a symlink leading out of the root)
    skip_reason: str | None = None


# Folders the engine keeps inside a connection, never part of any job's content: deleted items
# (`.dryviq-trash/DATE/path`, at the connection's root) and the older versions of files
# copied from a platform that keeps versions (`.dryviq-versions/`, beside the files)
TRASH_FOLDER = ".dryviq-trash"
VERSIONS_FOLDER = ".dryviq-versions"
ENGINE_FOLDERS = frozenset({TRASH_FOLDER, VERSIONS_FOLDER})


# The skip_reason of a connector's own temporary file whose writer is gone. The engine deletes
# such a file on the destination side (through its one choke point) and never touches it on
# the source side.
LEFTOVER_PART = "partial file left by an interrupted transfer"


@dataclass(frozen=True, slots=True)
class PathRules:
    """What a platform accepts as names and paths, so names are fixed before it refuses them."""

    invalid_chars: str = "/\0"
    max_name_length: int | None = None
    name_length_in_bytes: bool = False  # POSIX counts a name's UTF-8 bytes, not its characters
    max_path_length: int | None = None  # characters from the connection root, '/'-joined
    no_trailing_whitespace: bool = False  # also before the extension: "plan .pdf", "plan.pdf "
    no_leading_whitespace: bool = False
    # Windows: a name may not end in a dot or a space (it would silently drop them)
    no_trailing_dot_or_space: bool = False
    # device names the platform reserves, upper case, refused with any extension and in any
    # case: Windows' CON, NUL, COM1... ("con.txt" and "Nul.tar.gz" are reserved too)
    reserved_names: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Features:
    """What a connector can do; the engine falls back where a capability is missing."""

    mtime_precision: float | None = 1.0  # seconds; None when modification times are not kept
    can_set_mtime: bool = False
    case_insensitive: bool = False
    empty_dirs: bool = True
    hashes: frozenset[str] = frozenset()
    path_rules: PathRules = field(default_factory=PathRules)
    # its files are on this machine's disk, and it hands them out with `local_file()`
    local_files: bool = False
    # takes a file of this machine's disk (a LocalFile) and reads it itself: one with
    # `write_local()`, many small ones in one step with `copy_small()`, so the bytes do not
    # pass through the engine's hands
    reads_local_files: bool = False
    max_file_size: int | None = None  # bytes; larger files follow the job's large_item policy
    versions: bool = False  # keeps a file's earlier versions (a write adds one: Procore)


class LocalFile(Protocol):
    """A file on this machine's disk that a destination reads itself, in its own thread."""

    size: int

    def open(self) -> int:
        """A descriptor open for reading (the caller closes it); blocking; raises
        ConnectorError."""
        ...


class ConnectorError(Exception):
    """A classified platform failure; its message is safe to show to a user (no secrets)."""


class NotFound(ConnectorError):
    """The file or folder does not exist (or is not readable, which platforms often conflate)."""


class Vanished(NotFound):
    """The source file is gone since it was listed (deleted or moved during the run): raised
    where a source file is opened or read, so the engine skips it instead of failing it."""


class AlreadyExists(ConnectorError):
    """Something already stands at that path; `existing`, where the connector looked, is what
    stands there now (another writer put it there since the folder was listed)."""

    def __init__(self, message: str, existing: Entry | None = None) -> None:
        super().__init__(message)
        self.existing = existing

    def __reduce__(self) -> tuple[object, ...]:  # copy workers send errors back pickled
        return AlreadyExists, (str(self), self.existing)


class InvalidPath(ConnectorError):
    """A name or path the connector refuses: it leaves the root or breaks the platform's rules."""


class Retryable(ConnectorError):
    """A transient failure: the same call may succeed if tried again."""


class RetryAfter(Retryable):
    """The platform asked us to wait until `until` (epoch seconds) before calling again."""

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


class BudgetSpent(ConnectorError):
    """The API budget is spent until `until` (epoch seconds) and the run chose not to wait:
    the job stops as paused, and its next run continues where it stopped."""

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


class AuthExpired(ConnectorError):
    """The credentials no longer work; the user has to sign in again."""


class Fatal(ConnectorError):
    """Nothing more can be done with this connection in this run (root gone, disk unreadable)."""


@runtime_checkable
class Connector(Protocol):
    """One connection's storage. All methods are coroutines except `read`, an async iterator."""

    features: Features

    async def connect(self) -> None:
        """Be ready for calls, with `features` known: a job awaits it before it reads them
        (rclone starts and asks its remote here; most connectors have nothing to do)."""
        ...

    async def list_dir(self, path: str) -> list[Entry]:
        """The direct children of the folder at `path`, in any order. NotFound if it is missing."""
        ...

    async def stat(self, path: str) -> Entry:
        """The file or folder at `path`. NotFound if it is missing."""
        ...

    def read(self, path: str, entry: Entry) -> AsyncIterator[bytes]:
        """Stream the content of the file `entry` listed at `path`; NotFound if it is gone."""
        ...

    async def write(
        self, path: str, chunks: AsyncIterable[bytes], *, size: int, mtime: float | None,
        replacing: Entry | None = None,
    ) -> Entry:
        """Store `chunks` at `path` so no partial file is ever visible there; `replacing` is the
        file already at that path (a platform with versions adds a version to it). A file
        that appeared there since the listing is replaced, or, where the platform refuses
        (Procore), AlreadyExists names it as `existing` for the engine to decide again."""
        ...

    async def mkdir(self, path: str) -> Entry:
        """Create the folder at `path` (its parent exists). A folder of that name already
        there (another job made it since the parent was listed) is returned as if made now;
        AlreadyExists if a file stands there."""
        ...

    async def remove(self, path: str, entry: Entry) -> None:
        """Delete the file at `path`."""
        ...

    async def rmdir(self, path: str, entry: Entry) -> None:
        """Delete the empty folder at `path`."""
        ...

    async def set_mtime(self, path: str, mtime: float) -> None:
        """Set a file's modification time (only where `features.can_set_mtime`)."""
        ...

    async def trash(self, path: str, entry: Entry) -> None:
        """Delete the file or folder at `path` so it can be recovered: Procore's Recycle Bin,
        elsewhere moved to `.dryviq-trash/DATE/path` at the connection's root."""
        ...

    async def rename(self, path: str, entry: Entry, new_name: str) -> Entry:
        """Rename a file or folder within its folder; AlreadyExists if the name is taken."""
        ...

    async def move(self, path: str, entry: Entry, new_path: str) -> Entry:
        """Move a file to `new_path` (its folder exists), keeping what the platform keeps
        with it (Procore: its versions); AlreadyExists if something stands there."""
        ...

    async def close(self) -> None:
        """Release sessions and files."""
        ...

    # Optional, where `features.local_files`:
    #   local_file(path, entry) -> LocalFile
    # and where `features.reads_local_files` (each as `write` would: published whole, a
    # source changed or gone meanwhile refused, Vanished where it is gone):
    #   async copy_small(files: list[tuple[path, LocalFile, mtime]])
    #       -> list[Entry | error | None], in the order of the files (None: not begun)
    #   stop_copies() -> None: a graceful stop; copy_small begins no more files
    #   async write_local(path, LocalFile, *, mtime, on_copied: (bytes) -> None) -> Entry
