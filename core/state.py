"""The durable state of an installation, in one SQLite file (WAL, versioned migrations).

Connections (secrets in their own table), jobs (the JSON kept verbatim), executions, per-item
progress and audit events live here, so an interrupted run resumes from what is recorded and
another process (the TUI reconnecting over SSH) can watch a job that is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite
import orjson

from core.home import Home
from core.jobs import Job
from core.secret_box import SecretBox

# v6, in three parts (one per feature of issue 14; joined into one migration below):
# stored analyses, so the app and reports show one again without spending API calls
_V6_ANALYSES = """
    CREATE TABLE analyses (
        id INTEGER PRIMARY KEY,
        connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        against_connection_id TEXT REFERENCES connections(id) ON DELETE CASCADE,
        against_path TEXT,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        result TEXT NOT NULL
    );
    CREATE INDEX analyses_by_target ON analyses(connection_id, path, id);
"""
# a job's DryvIQ status (idle until a stop policy or an ad-hoc run completes it), why, and
# the newest execution before it was last saved (those after it count toward its schedule
# and stop policy: an edit starts both afresh); the agents (and apps) running the scheduler
# on this home, with their heartbeats; which agent ran an execution, and whether it was
# started by the schedule
_V6_SCHEDULES = """
    ALTER TABLE jobs ADD COLUMN status TEXT NOT NULL DEFAULT 'idle';
    ALTER TABLE jobs ADD COLUMN status_reason TEXT;
    ALTER TABLE jobs ADD COLUMN counts_after INTEGER NOT NULL DEFAULT 0;
    -- counting starts at the upgrade: v5 applied no stop policy, so no earlier run counted
    UPDATE jobs SET counts_after = COALESCE(
        (SELECT MAX(id) FROM executions WHERE executions.job_id = jobs.id), 0);
    ALTER TABLE executions ADD COLUMN agent TEXT;
    ALTER TABLE executions ADD COLUMN scheduled INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        kind TEXT NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    );
"""
# Jobs whose category_id does not name the category they keep by name (every job, when v6
# adds the column; those whose category a repair lost) join the category of that name, made
# when missing: a job's category name is what it was given, its id only links it.
RELINK_CATEGORIES = """
    INSERT INTO categories (name, created_at)
        SELECT category, MIN(created_at) FROM jobs WHERE NOT EXISTS (
            SELECT 1 FROM categories c WHERE c.id = jobs.category_id AND c.name = jobs.category)
        GROUP BY category COLLATE NOCASE ORDER BY MIN(created_at)
        ON CONFLICT DO NOTHING;
    UPDATE jobs SET category_id = (SELECT id FROM categories c WHERE c.name = jobs.category)
        WHERE NOT EXISTS (SELECT 1 FROM categories c
                          WHERE c.id = jobs.category_id AND c.name = jobs.category);
"""
# categories (DryvIQ's reports): a job joins one by name or id; -1 is DryvIQ's "Default", the
# others count from 1 and an id is never given twice; each job's category, linked by id
_V6_REPORTS = """
    CREATE TABLE categories (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        description TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    INSERT INTO categories (id, name, created_at) VALUES (-1, 'Default', 0);
    ALTER TABLE jobs ADD COLUMN category_id INTEGER NOT NULL DEFAULT -1;
""" + RELINK_CATEGORIES
# v7, for the REST API (`serve`): its bearer tokens, kept as SHA-256 hashes only (core/api/
# tokens.py); and requests to start, pause or cancel a job (core/control.py), written by the API
# or the app and carried out by whichever process schedules or runs that job
_V7_API = """
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        hash TEXT NOT NULL UNIQUE,
        read_only INTEGER NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL
    );
    CREATE TABLE job_requests (
        job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
        action TEXT NOT NULL,
        requested_at REAL NOT NULL,
        requested_by TEXT NOT NULL
    );
"""
# v8, for several agents over one shared state (core/leases.py): which process holds each job
# it runs, until when; its heartbeat renews the lease, and another agent may take a job whose
# lease ran out (its holder died) and resume it
_V8_LEASES = """
    CREATE TABLE job_leases (
        job_id TEXT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
        holder TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        kind TEXT NOT NULL,
        claimed_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
"""
# v9, for secrets in a shared state (core/secret_box.py): a known text sealed with the key
# the secrets are sealed with, so a host holding another key is refused before it reads or
# writes any (one row; a state.db, whose secrets are not sealed, leaves it empty)
_V9_SECRET_KEY_CHECK = """
    CREATE TABLE secret_key_check (
        id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        token TEXT NOT NULL,
        sealed_at REAL NOT NULL
    );
"""

# Each entry upgrades the schema by one version; PRAGMA user_version records how far a file is.
MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE connections (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        platform TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE secrets (
        connection_id TEXT PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
        data TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        transfer_type TEXT NOT NULL,
        source_connection_id TEXT NOT NULL REFERENCES connections(id),
        source_path TEXT NOT NULL,
        destination_connection_id TEXT NOT NULL REFERENCES connections(id),
        destination_path TEXT NOT NULL,
        simulation_mode INTEGER NOT NULL,
        schedule_mode TEXT NOT NULL,
        category TEXT NOT NULL,
        parallel_writes INTEGER NOT NULL,
        definition TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE executions (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        phase TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        heartbeat_at REAL NOT NULL,
        pid INTEGER NOT NULL,
        stats TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        resume_at REAL
    );
    CREATE INDEX executions_by_job ON executions(job_id, id);
    CREATE TABLE items (
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        parent TEXT NOT NULL,
        is_dir INTEGER NOT NULL,
        source_id TEXT,
        destination_id TEXT,
        destination_path TEXT,
        size INTEGER NOT NULL,
        mtime REAL,
        destination_version TEXT,
        action TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        note TEXT,
        execution_id INTEGER,
        updated_at REAL NOT NULL,
        PRIMARY KEY (job_id, path)
    ) WITHOUT ROWID;
    CREATE INDEX items_by_parent ON items(job_id, parent);
    CREATE INDEX items_by_status ON items(job_id, status);
    CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        job_id TEXT,
        execution_id INTEGER,
        level TEXT NOT NULL,
        event TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_by_execution ON audit_events(execution_id);
    """,
    # v2: the rate-limit budget of each API client, shared by every process using it
    """
    CREATE TABLE rate_budgets (
        client_key TEXT PRIMARY KEY,
        hourly_limit INTEGER NOT NULL,
        hourly_remaining INTEGER NOT NULL,
        hourly_reset REAL NOT NULL DEFAULT 0,
        spike_limit INTEGER,
        spike_remaining INTEGER,
        spike_reset REAL NOT NULL DEFAULT 0,
        next_call_at REAL NOT NULL DEFAULT 0,
        blocked_until REAL NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    """,
    # v3: segmented uploads under way, so a killed run resumes one where it stopped
    """
    CREATE TABLE segmented_uploads (
        destination TEXT NOT NULL,
        path TEXT NOT NULL,
        uuid TEXT NOT NULL UNIQUE,
        segments TEXT NOT NULL,
        started_at REAL NOT NULL,
        PRIMARY KEY (destination, path)
    );
    CREATE TABLE uploaded_segments (
        uuid TEXT NOT NULL REFERENCES segmented_uploads(uuid) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        etag TEXT NOT NULL,
        PRIMARY KEY (uuid, number)
    );
    """,
    # v4: what the pacer learns of the hourly window besides its limit (its length and when the
    # current one started), and a count of calls taken, to discount calls still in flight
    """
    ALTER TABLE rate_budgets ADD COLUMN hourly_window REAL NOT NULL DEFAULT 0;
    ALTER TABLE rate_budgets ADD COLUMN hourly_started REAL NOT NULL DEFAULT 0;
    ALTER TABLE rate_budgets ADD COLUMN calls_taken INTEGER NOT NULL DEFAULT 0;
    """,
    # v5: what a two-way sync compares each side with: the source's version as last in step,
    # and the destination's modification time (Procore's is when it was stored); and the
    # number of the source's newest version at the destination (versioning "select": "all")
    """
    ALTER TABLE items ADD COLUMN source_version TEXT;
    ALTER TABLE items ADD COLUMN destination_mtime REAL;
    ALTER TABLE items ADD COLUMN source_versions INTEGER NOT NULL DEFAULT 0;
    """,
    # v6: analyses, schedules and the agent, categories
    _V6_ANALYSES + _V6_SCHEDULES + _V6_REPORTS,
    # v7: the REST API's tokens, and job control requests
    _V7_API,
    # v8: job leases
    _V8_LEASES,
    # v9: the shared state's secret key check
    _V9_SECRET_KEY_CHECK,
)


class StateError(Exception):
    """The state file cannot be used as it is (made by a newer dryviq-tui, unreadable)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class StateDamaged(StateError):
    """SQLite found the state file damaged (corrupt pages, not a database)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"the state file {path} is damaged ({problem}); nothing was changed. Run "
            f"`dryviq-tui doctor` to check it and `dryviq-tui doctor --repair` to back it up "
            "and rebuild what can be read", path)


class StateReadOnly(StateError):
    """The state file cannot be written and the command needs to write it."""

    def __init__(self, path: Path, purpose: str | None = None) -> None:
        super().__init__(
            f"the state file {path} is read-only and {purpose or 'dryviq-tui'} needs to write "
            f"it; make it writable (chmod u+w {path}, in a folder you can write) or use a "
            "command that only reads (jobs list/show/history/items, connections list/show)",
            path)


# SQLite's words for a file it cannot trust (sqlite3 gives no error codes before Python 3.11's
# sqlite_errorname, and aiosqlite passes the exception through unchanged)
_DAMAGED = ("malformed", "not a database", "file is encrypted", "disk image")
_READ_ONLY = ("readonly database", "read-only", "attempt to write a readonly")


def translate_db_error(exc: Exception, path: Path) -> Exception:
    """SQLite's report of a damaged or read-only state file as StateDamaged or StateReadOnly;
    any other error as it is."""
    text = str(exc).lower()
    if any(words in text for words in _DAMAGED):
        return StateDamaged(path, str(exc))
    if any(words in text for words in _READ_ONLY):
        return StateReadOnly(path)
    return exc


class StateBusy(StateError):
    """Another process holds the state file in a way that excludes this one (a repair under
    way, or processes using it while a repair was asked for)."""


def lock_path(path: Path) -> Path:
    """The lock file beside the state file: every process holding the state open holds it
    shared, and `doctor --repair` holds it exclusive while it replaces the file."""
    return path.with_name(f"{path.name}.lock")


def _open_lock(path: Path, *, required: bool) -> int | None:
    """A descriptor on the state's lock file (created 0600), or None when it neither exists nor
    can be created and is not `required` (a read-only home, which nobody can repair either)."""
    lock = lock_path(path)
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        try:
            return os.open(lock, os.O_RDONLY)  # flock needs no write access
        except OSError as exc:
            if required:
                raise StateError(f"cannot create the state's lock file {lock}: "
                                 f"{exc.strerror or exc}", path) from None
            return None


def share_state_lock(path: Path, *, read_only: bool) -> int | None:
    """Hold the state's lock shared (the returned descriptor keeps it until closed), so that
    `doctor --repair` cannot replace the file under this process. A read-only open in a home
    where the lock file cannot be made goes without. StateBusy while a repair is under way."""
    fd = _open_lock(path, required=not read_only)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateBusy(f"`dryviq-tui doctor --repair` is rebuilding the state file {path}; "
                        "try again when it has finished", path) from None
    return fd


@contextlib.contextmanager
def exclusive_state_lock(path: Path) -> Iterator[int]:
    """Hold the state's lock exclusive (for a repair); StateBusy, naming how many processes
    have the state open, when any does."""
    fd = _open_lock(path, required=True)
    assert fd is not None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = _lock_holders(fd)
            raise StateBusy(
                f"close the app and stop running jobs first: "
                f"{_processes(holders)} the state file {path} open"
                + (f" (pid {', '.join(map(str, holders))})" if holders else "")
                + "; nothing was changed", path) from None
        yield fd
    finally:
        os.close(fd)


def _processes(holders: list[int]) -> str:
    if not holders:
        return "other processes have"
    return f"{len(holders)} process{'' if len(holders) == 1 else 'es'} " \
           f"{'has' if len(holders) == 1 else 'have'}"


def _lock_holders(fd: int) -> list[int]:
    """The processes holding a lock on this file, as Linux's /proc/locks lists them ([] where
    it cannot be read)."""
    inode = os.fstat(fd).st_ino
    holders: set[int] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields:  # a process waiting for the lock, not holding it
                continue
            if len(fields) >= 6 and fields[1] == "FLOCK" and \
                    fields[5].rsplit(":", 1)[-1] == str(inode):
                holders.add(int(fields[4]))
    return sorted(holders)


def _writable(path: Path) -> bool:
    """Whether SQLite can write the file: the file itself, and its folder (for the WAL)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


@dataclass(frozen=True)
class Connection:
    id: str
    name: str
    platform: str
    config: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class JobRecord:
    id: str
    name: str
    kind: str
    transfer_type: str
    source_connection_id: str
    source_path: str
    destination_connection_id: str
    destination_path: str
    simulation_mode: bool
    schedule_mode: str
    category: str
    parallel_writes: int
    definition: str  # the job JSON exactly as it was given
    created_at: float
    status: str = "idle"  # DryvIQ's job status: idle, or complete (stop policy, ad-hoc run)
    status_reason: str | None = None  # why it is complete
    counts_after: int = 0  # executions with a larger id count toward schedule and stop policy
    category_id: int = -1  # its category (core/reports.py); `category` is that one's name


@dataclass(frozen=True)
class Category:
    """A group of jobs reported together (DryvIQ's job category; a report is one)."""

    id: int
    name: str
    description: str = ""
    created_at: float = 0.0


DEFAULT_CATEGORY = Category(-1, "Default")  # DryvIQ's, for jobs that name none


@dataclass
class JobTotals:
    """What a job's executions add up to, and its items that stand flagged or failed now."""

    job_id: str
    executions: int = 0
    by_status: dict[str, int] = field(default_factory=dict)  # executions by status
    files_moved: int = 0  # files transferred (none by a job in simulation mode)
    bytes_moved: int = 0
    flagged: int = 0  # items flagged now: they need a person
    failed: int = 0  # items whose last attempt failed: retried by the next run
    api_calls: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0


@dataclass(frozen=True)
class Execution:
    id: int
    job_id: str
    status: str
    phase: str
    started_at: float
    ended_at: float | None
    heartbeat_at: float
    pid: int
    stats: dict[str, Any]
    error: str | None
    resume_at: float | None
    agent: str | None = None  # the scheduler (`host:pid`) that started it; None: a person
    scheduled: bool = False  # started by the job's schedule, not by hand


@dataclass(frozen=True)
class AgentRow:
    """A process running the scheduler on this home (an agent, or an open app), as its last
    heartbeat left it."""

    id: str  # host:pid
    host: str
    pid: int
    kind: str  # agent | app
    started_at: float
    heartbeat_at: float


@dataclass(slots=True)
class ItemRecord:
    """One source path of one job: what was planned for it and how that went."""

    job_id: str
    path: str
    parent: str
    is_dir: bool
    size: int
    mtime: float | None
    action: str
    status: str  # DryvIQ item statuses: pending, success, skipped, processed, remediation, retry
    source_id: str | None = None
    destination_id: str | None = None
    destination_path: str | None = None
    destination_version: str | None = None
    attempts: int = 0
    last_error: str | None = None
    note: str | None = None  # why it was skipped, flagged or renamed
    execution_id: int | None = None
    updated_at: float = field(default_factory=time.time)
    source_version: str | None = None
    destination_mtime: float | None = None
    source_versions: int = 0  # the source's newest version number carried (versions "all")


@dataclass
class SegmentedUpload:
    """A segmented upload under way: where it goes (`destination`: the Procore project, as
    its connector names it; `path` in it), the upload's uuid, its segments as Procore handed
    them out (size, sha256, md5, url, headers), when it was made, and the ETags of the
    segments stored so far, by number."""

    destination: str
    path: str
    uuid: str
    segments: list[dict[str, Any]]
    started_at: float
    etags: dict[int, str] = field(default_factory=dict)


class Forgotten(NamedTuple):
    """An item gone from both sides: its record, and those of anything under it, are dropped."""

    job_id: str
    path: str


class ItemState(NamedTuple):
    status: str
    note: str | None
    attempts: int


MAX_COUNTS_KEPT = 256  # item counts remembered (one per job and status filter asked for)
ITEM_COLUMNS = (
    "job_id", "path", "parent", "is_dir", "size", "mtime", "action", "status", "source_id",
    "destination_id", "destination_path", "destination_version", "attempts", "last_error",
    "note", "execution_id", "updated_at", "source_version", "destination_mtime",
    "source_versions",
)
_ITEM_UPSERT = (
    f"INSERT INTO items ({', '.join(ITEM_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ITEM_COLUMNS)}) ON CONFLICT (job_id, path) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in ITEM_COLUMNS[2:])
)


def _item_row(item: ItemRecord) -> tuple[Any, ...]:
    return tuple(getattr(item, column) for column in ITEM_COLUMNS)


def item_of(row: Sequence[Any]) -> ItemRecord:
    """An item from a row of ITEM_COLUMNS (State.item_rows gives them)."""
    item = ItemRecord(*row)  # ITEM_COLUMNS are in the order of ItemRecord's fields
    item.is_dir = bool(item.is_dir)
    return item


# a LIMIT that keeps every row, in both stores (SQLite's -1 is an error in PostgreSQL)
NO_LIMIT = 2**63 - 1
EXECUTION_COLUMNS = ("id, job_id, status, phase, started_at, ended_at, heartbeat_at, pid, stats, "
                     "error, resume_at, agent, scheduled")


def execution_of(row: Sequence[Any]) -> Execution:
    """An execution from a row of EXECUTION_COLUMNS (the API pages them with its own query)."""
    return Execution(*row[:8], _stats_json(row[8]), *row[9:12], bool(row[12]))


def _stats_json(text: str) -> dict[str, Any]:
    """An execution's stats as stored: orjson reads them in a quarter of json's time (a page of
    history reads 100); json reads what orjson will not (NaN, Infinity)."""
    try:
        return orjson.loads(text)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError:
        return json.loads(text)  # type: ignore[no-any-return]


def _new_id() -> str:
    import uuid  # here: only creating a job or connection needs it, not every command

    return uuid.uuid4().hex


_JOB_COLUMNS = ("id", "name", "kind", "transfer_type", "source_connection_id", "source_path",
                "destination_connection_id", "destination_path", "simulation_mode",
                "schedule_mode", "category", "parallel_writes", "definition", "created_at",
                "category_id")


def _job_record(job_id: str, job: Job, definition: str, source_id: str, destination_id: str,
                created_at: float, category: Category) -> JobRecord:
    transfer = job.transfer
    return JobRecord(
        job_id, job.name, job.kind, transfer.transfer_type, source_id, transfer.source.path,
        destination_id, transfer.destination.path, transfer.simulation_mode, job.schedule_mode,
        category.name, transfer.parallel_writes, definition, created_at,
        category_id=category.id)


def _job_row(record: JobRecord) -> tuple[object, ...]:
    return (record.id, record.name, record.kind, record.transfer_type,
            record.source_connection_id, record.source_path, record.destination_connection_id,
            record.destination_path, int(record.simulation_mode), record.schedule_mode,
            record.category, record.parallel_writes, record.definition, record.created_at,
            record.category_id)


class State:
    """An open state file. One per process; every method is a coroutine on one connection."""

    # the store's errors, by one name whichever store it is (PostgreSQL's on a shared state):
    # `except state.IntegrityError` catches a broken constraint in either
    IntegrityError: type[Exception] = sqlite3.IntegrityError
    OperationalError: type[Exception] = sqlite3.OperationalError
    DatabaseError: type[Exception] = sqlite3.DatabaseError

    def __init__(self, db: aiosqlite.Connection, path: Path, *, read_only: bool = False,
                 shared: str | None = None, url: str | None = None) -> None:
        self.db = db
        if shared:
            self.IntegrityError = db.IntegrityError  # type: ignore[attr-defined]
            self.OperationalError = db.OperationalError  # type: ignore[attr-defined]
            self.DatabaseError = db.DatabaseError  # type: ignore[attr-defined]
        self.path = path  # for the pacer, which keeps its own connection to the same file
        # the shared PostgreSQL database (how messages name it), None for a state.db
        self.shared = shared
        # its URL, for connections of their own (the pacer's, the sign-in refresh lock's); it
        # may hold a password: never shown
        self.url = url
        # encrypts secrets in a shared database (core/secret_box.py); a state.db is the
        # user's own private file, and keeps them as they are
        self.secret_box: SecretBox | None = None
        self.read_only = read_only  # opened read-only: the file could not be written
        self._lock: int | None = None  # the state's lock, held shared while open
        # count_items' answers, while nothing has changed the file: (query, args) ->
        # ((data version, changes), count)
        self._counts: dict[tuple[str, tuple[Any, ...]], tuple[tuple[int, int], int]] = {}

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, read_only_ok: bool = False,
                   purpose: str | None = None, locked_by_caller: bool = False) -> State:
        """Open (creating and upgrading as needed) the state file at `path`, holding its lock
        shared until closed (unless `locked_by_caller`, a repair holding it exclusive). A file
        that cannot be written raises StateReadOnly (naming `purpose`, what wanted to write
        it), unless `read_only_ok`: then it is opened read-only if its schema is current."""
        path = Path(path)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        read_only = not _writable(path)
        if read_only and not read_only_ok:
            raise StateReadOnly(path, purpose)
        lock = None if locked_by_caller else share_state_lock(path, read_only=read_only)
        try:
            state = await cls._open_file(path, read_only=read_only)
        except BaseException:
            if lock is not None:
                os.close(lock)
            raise
        state._lock = lock
        return state

    @classmethod
    async def open_home(cls, home: Home, *, read_only_ok: bool = False,
                        purpose: str | None = None) -> State:
        """The home's state: its shared PostgreSQL database when one is configured
        (Home.state_url), else its state.db. A shared state's secrets are sealed with
        this host's key (core/secret_box.py), checked against the database's before anything
        is read or written."""
        url = home.state_url()
        if url is None:
            return await cls.open(home.state_path, read_only_ok=read_only_ok, purpose=purpose)
        if not url.startswith(("postgresql://", "postgres://")):
            raise StateError(f"[state] url must start with postgresql:// (it names "
                             f"{url.split(':', 1)[0]!r}): SQLite needs no url")
        state = await cls.open_url(url)
        try:
            from core.secret_box import open_box

            state.secret_box = await open_box(state.db, home, str(state.shared))
        except BaseException:
            await state.close()
            raise
        return state

    @classmethod
    async def open_url(cls, url: str) -> State:
        """Connect to a shared state in PostgreSQL, upgrading its schema as needed."""
        try:
            from core import postgres
        except ImportError:
            raise StateError("a PostgreSQL state needs the postgres extra: "
                             "pip install 'dryviq-tui[postgres]'") from None
        where = postgres.describe(url)
        try:
            db = await postgres.PostgresConnection.connect(url)
        except postgres.psycopg.Error as exc:
            raise StateError(f"cannot connect to the {where}: {postgres.reason(exc)}") from None
        state = cls(db, None, shared=where, url=url)  # type: ignore[arg-type]
        try:
            await db.migrate(MIGRATIONS)
        except postgres.NewerSchema as exc:
            await db.close()
            raise StateError(
                f"the {where} was upgraded by a newer dryviq-tui (schema {exc.version}, this "
                f"version knows up to {len(MIGRATIONS)}); upgrade dryviq-tui on this host"
            ) from None
        except BaseException:
            await db.close()
            raise
        return state

    @classmethod
    async def _open_file(cls, path: Path, *, read_only: bool) -> State:
        try:
            return await cls._open(path, read_only=read_only)
        except aiosqlite.OperationalError as exc:
            if not (read_only and "unable to open" in str(exc)
                    and not Path(f"{path}-wal").exists()):
                found = translate_db_error(exc, path)
                raise (found if isinstance(found, StateError) else StateError(
                    f"cannot open the state file {path}: {exc}", path)) from None
        # in a folder it cannot write, SQLite cannot make the shared-memory file a WAL file
        # needs even to be read; with no log pending the file alone is the whole state
        return await cls._open(path, read_only=True, immutable=True)

    @classmethod
    async def _open(cls, path: Path, *, read_only: bool, immutable: bool = False) -> State:
        """Connect and migrate (raising sqlite3's errors when the file cannot be opened)."""
        uri = path.absolute().as_uri() + ("?immutable=1" if immutable else "?mode=ro")
        db = await aiosqlite.connect(uri if read_only else path, uri=read_only)
        state = cls(db, path, read_only=read_only)
        try:
            await state._migrate(path)
        except aiosqlite.OperationalError:
            await db.close()
            raise
        except aiosqlite.DatabaseError as exc:
            await db.close()
            raise translate_db_error(exc, path) from None
        except BaseException:
            await db.close()
            raise
        return state

    async def _migrate(self, path: Path) -> None:
        """Refuse a file this version cannot read before touching it; then upgrade it."""
        await self.db.execute("PRAGMA busy_timeout=10000")
        (version,) = await (await self.db.execute("PRAGMA user_version")).fetchone()
        if version > len(MIGRATIONS):
            raise StateError(
                f"{path} was written by a newer dryviq-tui (schema {version}, this version "
                f"knows up to {len(MIGRATIONS)}); upgrade dryviq-tui to use it", path)
        if self.read_only:
            if version < len(MIGRATIONS):
                raise StateError(
                    f"the state file {path} is read-only and needs an upgrade (schema "
                    f"{version} to {len(MIGRATIONS)}), which writes it: make it writable "
                    f"(chmod u+w {path}) and run any command once", path)
            await self.db.execute("PRAGMA query_only=ON")
            return
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self.db.execute("PRAGMA foreign_keys=ON")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # the version bump is in the same transaction, so a crash leaves either the old
            # schema or the new one
            await self.db.executescript(
                f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    async def close(self) -> None:
        try:
            await self.db.close()
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None

    def translate(self, exc: Exception) -> Exception:
        """The store's error as the user should read it: a damaged or read-only state file
        as StateDamaged or StateReadOnly (translate_db_error); PostgreSQL's as a StateError
        naming the database, without the URL's password; any other as it is."""
        if not self.shared:
            return translate_db_error(exc, self.path)
        from core.postgres import reason

        return StateError(f"the {self.shared} failed: {reason(exc)}")

    def json_value(self, column: str, key: str) -> str:
        """SQL for the value at `key` of the JSON text in `column` (NULL where it has none):
        SQLite's json_extract, PostgreSQL's jsonb operator."""
        if self.shared:
            return f"({column}::jsonb -> '{key}')"
        return f"json_extract({column}, '$.{key}')"

    def json_number(self, column: str, key: str) -> str:
        """json_value of a number, as one SQL can add up (PostgreSQL's jsonb is no number)."""
        if self.shared:
            return f"CAST({column}::jsonb ->> '{key}' AS NUMERIC)"
        return self.json_value(column, key)

    async def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        # one job in aiosqlite's thread: a statement left open between an execute and its
        # fetch holds a read snapshot, and a write queued in between on this connection
        # then fails at once with "database is locked" if another connection (the pacer's)
        # has written since
        return list(await self.db.execute_fetchall(sql, tuple(args)))

    async def quick_check(self) -> list[str]:
        """SQLite's quick check of the whole file: [] when sound, else its findings
        (PostgreSQL checks its own pages: [] there)."""
        if self.shared:
            return []
        try:
            rows = await self._rows("PRAGMA quick_check")
        except aiosqlite.DatabaseError as exc:
            return [str(exc)]
        found = [str(row[0]) for row in rows]
        return [] if found == ["ok"] else found

    # -- connections ------------------------------------------------------------------------

    async def add_connection(
        self, name: str, platform: str, config: dict[str, Any],
        secrets: dict[str, Any] | None = None,
    ) -> Connection:
        now = time.time()
        connection = Connection(_new_id(), name, platform, config, now)
        try:
            await self.db.execute(
                "INSERT INTO connections VALUES (?, ?, ?, ?, ?, ?)",
                (connection.id, name, platform, json.dumps(config), now, now))
        except self.IntegrityError:
            raise StateError(f"a connection named {name!r} already exists") from None
        if secrets:
            await self.db.execute("INSERT INTO secrets VALUES (?, ?)",
                                  (connection.id, self._seal(secrets)))
        await self.db.commit()
        return connection

    async def find_connection(self, id_or_name: str) -> Connection | None:
        """The connection with this id, else the one with this name (job JSON allows both)."""
        rows = await self._rows(
            "SELECT id, name, platform, config, created_at FROM connections "
            "WHERE id = ? OR name = ? ORDER BY id = ? DESC", (id_or_name, id_or_name, id_or_name))
        if not rows:
            return None
        id_, name, platform, config, created = rows[0]
        return Connection(id_, name, platform, json.loads(config), created)

    async def list_connections(self) -> list[Connection]:
        rows = await self._rows(
            "SELECT id, name, platform, config, created_at FROM connections ORDER BY name")
        return [Connection(i, n, p, json.loads(c), t) for i, n, p, c, t in rows]

    async def connection_secrets(self, connection_id: str) -> dict[str, Any]:
        rows = await self._rows("SELECT data FROM secrets WHERE connection_id = ?",
                                (connection_id,))
        return self._open_secrets(rows[0][0]) if rows else {}

    def _seal(self, data: dict[str, Any]) -> str:
        text = json.dumps(data)
        return self.secret_box.seal(text) if self.secret_box else text

    def _open_secrets(self, stored: str) -> dict[str, Any]:
        return json.loads(self.secret_box.open(stored) if self.secret_box else stored)

    async def save_connection_secrets(self, connection_id: str, data: dict[str, Any]) -> None:
        """Replace a connection's secrets; committed before this returns (a rotated refresh
        token must be on disk before the access token that came with it is used)."""
        await self.db.execute("INSERT INTO secrets VALUES (?, ?) ON CONFLICT (connection_id) "
                              "DO UPDATE SET data = excluded.data",
                              (connection_id, self._seal(data)))
        await self.db.commit()

    async def update_connection_config(self, connection_id: str, config: dict[str, Any]) -> None:
        await self.db.execute("UPDATE connections SET config = ?, updated_at = ? WHERE id = ?",
                              (json.dumps(config), time.time(), connection_id))
        await self.db.commit()

    async def remove_connection(self, connection_id: str) -> None:
        await self.db.execute("DELETE FROM connections WHERE id = ?", (connection_id,))
        await self.db.commit()

    # -- jobs -------------------------------------------------------------------------------

    async def add_job(self, job: Job, definition: str, source_id: str, destination_id: str,
                      category: Category = DEFAULT_CATEGORY) -> JobRecord:
        record = _job_record(_new_id(), job, definition, source_id, destination_id, time.time(),
                             category)
        await self.db.execute(
            f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_JOB_COLUMNS))})", _job_row(record))
        await self.db.commit()
        return record

    async def update_job(self, old: JobRecord, job: Job, definition: str, source_id: str,
                         destination_id: str, category: Category) -> JobRecord:
        """The job `old` with a new definition (and category); its id, creation time and
        history stay. It is idle again (a complete job reopens) and its schedule and stop
        policy count afresh."""
        (newest,), = await self._rows(
            "SELECT COALESCE(MAX(id), 0) FROM executions WHERE job_id = ?", (old.id,))
        record = replace(_job_record(old.id, job, definition, source_id, destination_id,
                                     old.created_at, category), counts_after=newest)
        columns = ", ".join((*_JOB_COLUMNS, "status", "status_reason", "counts_after"))
        await self.db.execute(
            f"UPDATE jobs SET ({columns}) = ({', '.join('?' * (len(_JOB_COLUMNS) + 3))}) "
            "WHERE id = ?",
            (*_job_row(record), "idle", None, newest, old.id))
        await self.db.commit()
        return record

    async def set_job_status(self, job_id: str, status: str, reason: str | None) -> None:
        """Set a job's DryvIQ status (idle or complete) and why."""
        await self.db.execute("UPDATE jobs SET status = ?, status_reason = ? WHERE id = ?",
                              (status, reason, job_id))
        await self.db.commit()

    async def find_jobs(self, id_or_name: str | None = None) -> list[JobRecord]:
        """All jobs, or those whose id or name is `id_or_name` (names need not be unique)."""
        where, args = ("WHERE id = ? OR name = ?", (id_or_name, id_or_name)) if id_or_name else (
            "", ())
        rows = await self._rows(f"SELECT * FROM jobs {where} ORDER BY created_at", args)
        return [
            JobRecord(*row[:8], bool(row[8]), *row[9:]) for row in rows  # type: ignore[misc]
        ]

    async def jobs_using(self, connection_id: str) -> list[JobRecord]:
        return [j for j in await self.find_jobs()
                if connection_id in (j.source_connection_id, j.destination_connection_id)]

    async def remove_job(self, job_id: str) -> None:
        await self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        await self.db.commit()

    # -- categories ---------------------------------------------------------------------------

    async def categories(self) -> list[Category]:
        rows = await self._rows(
            "SELECT id, name, description, created_at FROM categories ORDER BY id = -1 DESC, "
            "name COLLATE NOCASE")
        return [Category(*row) for row in rows]

    async def add_category(self, name: str) -> Category:
        """The category named `name` (as SQLite's NOCASE compares), made if there is none."""
        await self.db.execute("INSERT INTO categories (name, created_at) VALUES (?, ?) "
                              "ON CONFLICT DO NOTHING", (name, time.time()))
        await self.db.commit()
        (row,) = await self._rows("SELECT id, name, description, created_at FROM categories "
                                  "WHERE name = ?", (name,))
        return Category(*row)

    async def job_totals(self) -> list[JobTotals]:
        """Every job's totals: sums of its executions' stats, and its items flagged or failed
        now (counted per job through the items_by_status index)."""
        def stat(key: str) -> str:
            return f"COALESCE({self.json_number('e.stats', key)}, 0)"

        executions = await self._rows(
            "SELECT e.job_id, e.status, COUNT(*), "
            f"SUM(CASE WHEN j.simulation_mode != 0 THEN 0 ELSE {stat('transferred')} END), "
            f"SUM(CASE WHEN j.simulation_mode != 0 THEN 0 ELSE {stat('bytes')} END), "
            f"SUM({stat('api_calls')}), SUM({stat('rate_limit_waits')}), "
            f"SUM(CAST({stat('rate_limit_wait_seconds')} AS DOUBLE PRECISION)) "
            "FROM executions e JOIN jobs j ON j.id = e.job_id GROUP BY e.job_id, e.status")
        items = await self._rows(
            "SELECT id, (SELECT COUNT(*) FROM items WHERE job_id = jobs.id AND "
            "status = 'remediation'), (SELECT COUNT(*) FROM items WHERE job_id = jobs.id AND "
            "status = 'retry') FROM jobs ORDER BY created_at")
        totals = {job_id: JobTotals(job_id, flagged=flagged, failed=failed)
                  for job_id, flagged, failed in items}
        for job_id, status, runs, files, sent, calls, waits, waited in executions:
            total = totals[job_id]
            total.by_status[status] = runs
            total.executions += runs
            total.files_moved += files
            total.bytes_moved += sent
            total.api_calls += calls
            total.rate_limit_waits += waits
            total.rate_limit_wait_seconds += waited
        return list(totals.values())

    # -- executions -------------------------------------------------------------------------

    async def start_execution(self, job_id: str, *, agent: str | None = None,
                              scheduled: bool = True) -> Execution:
        """Record a new running execution, after SQLite's quick check of the whole file: a
        damaged file raises StateDamaged before a run starts (and is left interrupted).
        `agent`: the scheduler (`host:pid`) starting it, by the job's schedule unless not
        `scheduled` (a person asked it to start)."""
        # Measured (2 shared cores, SSD) on a state of 1,000,000 item rows, 529 MB: 6.6 s with
        # a cold page cache, about 1 s warm; 500,000 rows, 265 MB: 2.8 s cold, 0.35 s warm.
        # Kept: a run reads every item of its job anyway (1M rows: 2.2 s warm), and catching
        # the damage later would leave a run that has already copied files half-recorded;
        # only checking what start_execution itself writes would miss damaged item pages.
        problems = await self.quick_check()
        if problems:
            raise StateDamaged(self.path, problems[0])
        now = time.time()
        by_schedule = agent is not None and scheduled
        # in one go (_rows): a RETURNING left unread would hold a write open, and another
        # run's commit on this connection would fail meanwhile
        ((execution_id,),) = await self._rows(
            "INSERT INTO executions (job_id, status, phase, started_at, heartbeat_at, pid, "
            "agent, scheduled) VALUES (?, 'running', 'initialize', ?, ?, ?, ?, ?) RETURNING id",
            (job_id, now, now, os.getpid(), agent, int(by_schedule)))
        await self.db.commit()
        return Execution(execution_id, job_id, "running", "initialize", now, None, now,
                         os.getpid(), {}, None, None, agent, by_schedule)

    async def update_execution(self, execution_id: int, **fields: Any) -> None:
        """Set some of status, phase, stats, error, ended_at, resume_at; refreshes the heartbeat."""
        allowed = {"status", "phase", "stats", "error", "ended_at", "resume_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not execution fields: {sorted(unknown)}")
        if "stats" in fields:
            fields["stats"] = json.dumps(fields["stats"])
        fields["heartbeat_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        await self.db.execute(f"UPDATE executions SET {assignments} WHERE id = ?",
                              (*fields.values(), execution_id))
        await self.db.commit()

    async def executions(self, job_id: str, limit: int | None = None, *,
                         after: int = 0) -> list[Execution]:
        """A job's executions (those with an id above `after`), newest first."""
        rows = await self._rows(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE job_id = ? AND id > ? "
            "ORDER BY id DESC LIMIT ?", (job_id, after, NO_LIMIT if limit is None else limit))
        return [execution_of(row) for row in rows]

    async def counted_executions(self, job: JobRecord, limit: int | None = None,
                                 ) -> list[Execution]:
        """The job's executions since it was last saved, newest first: those its schedule and
        stop policy count."""
        return await self.executions(job.id, limit, after=job.counts_after)

    async def mark_interrupted(self, job_id: str) -> int:
        """Executions left 'running' by a process that died. The caller holds the job's lease
        (core.leases), or saw that no process holds it: every execution still 'running' is a
        dead holder's, whatever its host or pid, and all are marked.
        What they did is counted again from the items they committed: their last stats may
        be a second old, or count a file whose record never landed. On a read-only file they
        stay as they are."""
        if self.read_only:
            return 0
        dead = await self._rows("SELECT id FROM executions WHERE job_id = ? AND "
                                "status = 'running'", (job_id,))
        cursor = await self.db.execute(
            "UPDATE executions SET status = 'interrupted', ended_at = heartbeat_at, "
            "error = 'the process running this execution stopped without finishing it' "
            "WHERE job_id = ? AND status = 'running'", (job_id,))
        for (execution_id,) in dead:
            await self._count_committed(job_id, execution_id)
        await self.db.commit()
        return cursor.rowcount

    async def _count_committed(self, job_id: str, execution_id: int) -> None:
        """Set a dead execution's counts of files and folders written to those its items
        record as done (a simulation's items record nothing done: its counts stay)."""
        rows = await self._rows(
            "SELECT e.stats, j.simulation_mode FROM executions e JOIN jobs j ON j.id = e.job_id "
            "WHERE e.id = ?", (execution_id,))
        if not rows or rows[0][1]:
            return
        stats = json.loads(rows[0][0])
        sent_file = "is_dir = 0 AND action != 'none' AND status IN ('success', 'processed')"
        (transferred, sent, folders, flagged, failed, last), = await self._rows(
            f"SELECT COUNT(CASE WHEN {sent_file} THEN 1 END), "
            f"COALESCE(SUM(CASE WHEN {sent_file} THEN size END), 0), "
            "COUNT(CASE WHEN is_dir != 0 AND action = 'mkdir' AND status = 'success' THEN 1 "
            "END), COUNT(CASE WHEN status = 'remediation' THEN 1 END), "
            "COUNT(CASE WHEN status = 'retry' THEN 1 END), "
            "MAX(updated_at) FROM items WHERE job_id = ? AND execution_id = ?",
            (job_id, execution_id))
        # folders and problems are also counted without an item (the destination folder
        # itself, a folder that cannot be read): those counts only grow
        stats.update(transferred=transferred, bytes=sent,
                     folders_created=max(folders, stats.get("folders_created", 0)),
                     flagged=max(flagged, stats.get("flagged", 0)),
                     failed=max(failed, stats.get("failed", 0)), in_flight=0)
        # it ran at least until its last item was committed
        await self.db.execute("UPDATE executions SET stats = ?, ended_at = CASE WHEN "
                              "ended_at < ? THEN ? ELSE ended_at END WHERE id = ?",
                              (json.dumps(stats), last, last, execution_id))

    # -- items ------------------------------------------------------------------------------

    async def item_states(self, job_id: str, parent: str) -> dict[str, ItemState]:
        """How the items directly under source folder `parent` stand, by path: the glance a
        run takes at every item (a whole record is read only where it is needed)."""
        rows = await self._rows(
            # without statistics SQLite would take the primary key and scan the whole job
            "SELECT path, status, note, attempts FROM items INDEXED BY items_by_parent "
            "WHERE job_id = ? AND parent = ?", (job_id, parent))
        return {path: ItemState(status, note, attempts) for path, status, note, attempts in rows}

    async def item_records(self, job_id: str, parent: str) -> dict[str, ItemRecord]:
        """The records of the items directly under source folder `parent`, by path: what a
        two-way sync compares both sides with."""
        rows = await self._rows(
            f"SELECT {', '.join(ITEM_COLUMNS)} FROM items INDEXED BY items_by_parent "
            "WHERE job_id = ? AND parent = ?", (job_id, parent))
        return {record.path: record for record in map(item_of, rows)}

    async def has_items(self, job_id: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM items WHERE job_id = ? LIMIT 1", (job_id,)))

    async def item(self, job_id: str, path: str) -> ItemRecord | None:
        rows = await self._rows(
            f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE job_id = ? AND path = ?",
            (job_id, path))
        return item_of(rows[0]) if rows else None

    async def items(self, job_id: str, status: str | None = None,
                    execution_id: int | None = None) -> list[ItemRecord]:
        where, args = ["job_id = ?"], [job_id]
        if status:
            where.append("status = ?")
            args.append(status)
        if execution_id is not None:
            where.append("execution_id = ?")
            args.append(execution_id)
        rows = await self._rows(
            f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE {' AND '.join(where)} "
            "ORDER BY path", args)
        return [item_of(row) for row in rows]

    @staticmethod
    def _items_of(job_ids: Sequence[str], statuses: Sequence[str]) -> tuple[str, list[str]]:
        where = f"job_id IN ({', '.join('?' * len(job_ids))})"
        if statuses:
            where += f" AND status IN ({', '.join('?' * len(statuses))})"
        return where, [*job_ids, *statuses]

    async def item_page(self, job_ids: Sequence[str], statuses: Sequence[str], *, offset: int,
                        limit: int) -> list[ItemRecord]:
        """One page of the items of some jobs (in some statuses, or any), in (job, path)
        order: read through the primary key (or the status index) with LIMIT/OFFSET, so a
        page costs about the same in a job of a million items."""
        return [item_of(row) for row in await self.item_rows(job_ids, statuses, offset=offset,
                                                           limit=limit)]

    async def item_rows(self, job_ids: Sequence[str], statuses: Sequence[str], *, offset: int,
                        limit: int) -> list[tuple[Any, ...]]:
        """item_page's rows, of ITEM_COLUMNS, as they are read (item_of makes a record of
        one): the API keeps the items it serves by them."""
        where, args = self._items_of(job_ids, statuses)
        return await self._rows(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE {where} "
                                "ORDER BY job_id, path LIMIT ? OFFSET ?", [*args, limit, offset])

    async def count_items(self, job_ids: Sequence[str], statuses: Sequence[str]) -> int:
        """How many items item_page pages through: counted again only when the file has
        changed since (a commit by another connection moves SQLite's data_version, a change
        on this one total_changes()), so paging a job that no run is changing costs no count
        (half a millisecond for 10,000 items, more for more)."""
        where, args = self._items_of(job_ids, statuses)
        if self.shared:  # other hosts write without telling: counted every time
            (total,), = await self._rows(f"SELECT COUNT(*) FROM items WHERE {where}", args)
            return int(total)
        changed, = await self._rows(
            "SELECT data_version, total_changes() FROM pragma_data_version")
        key = (where, tuple(args))
        known = self._counts.get(key)
        if known is not None and known[0] == tuple(changed):
            return known[1]
        (total,), = await self._rows(f"SELECT COUNT(*) FROM items WHERE {where}", args)
        if len(self._counts) >= MAX_COUNTS_KEPT:
            self._counts.clear()
        self._counts[key] = (tuple(changed), int(total))
        return int(total)

    async def save_items(self, items: Sequence[ItemRecord | Forgotten]) -> None:
        """Upsert records and drop forgotten ones (with everything under them), in order."""
        for forgetting, group in itertools.groupby(items, key=lambda i: isinstance(i, Forgotten)):
            if forgetting:
                await self.db.executemany(
                    # the path itself, and every path below it ('/' sorts just before '0')
                    "DELETE FROM items WHERE job_id = ? AND (path = ? OR (path >= ? || '/' "
                    "AND path < ? || '0'))",
                    [(f.job_id, f.path, f.path, f.path) for f in group])  # type: ignore[union-attr]
            else:
                await self.db.executemany(_ITEM_UPSERT, [_item_row(i) for i in group])  # type: ignore[arg-type]
        await self.db.commit()

    # -- agents -----------------------------------------------------------------------------

    async def beat(self, agent: AgentRow, *, stale_before: float) -> None:
        """Record a scheduler's heartbeat, and forget those whose last beat is older than
        `stale_before` (their process died without saying so)."""
        await self.db.execute("DELETE FROM agents WHERE heartbeat_at < ? AND id != ?",
                              (stale_before, agent.id))
        await self.db.execute("INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) "
                              "DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                              (agent.id, agent.host, agent.pid, agent.kind, agent.started_at,
                               agent.heartbeat_at))
        await self.db.commit()

    async def remove_agent(self, agent_id: str) -> None:
        await self.db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
        await self.db.commit()

    async def agents(self) -> list[AgentRow]:
        """The schedulers' heartbeat rows, the freshest first."""
        rows = await self._rows("SELECT id, host, pid, kind, started_at, heartbeat_at FROM "
                                "agents ORDER BY heartbeat_at DESC")
        return [AgentRow(*row) for row in rows]

    # -- rate limits ------------------------------------------------------------------------

    async def rate_budgets(self) -> dict[str, dict[str, Any]]:
        """Each API client's budget as the pacers last saw it (written by core.pacer), for
        showing: {client_key: {hourly_limit, hourly_remaining, hourly_reset, spike_limit,
        spike_remaining, spike_reset, blocked_until, updated_at}}."""
        rows = await self._rows(
            "SELECT client_key, hourly_limit, hourly_remaining, hourly_reset, spike_limit, "
            "spike_remaining, spike_reset, blocked_until, updated_at FROM rate_budgets")
        names = ("hourly_limit", "hourly_remaining", "hourly_reset", "spike_limit",
                 "spike_remaining", "spike_reset", "blocked_until", "updated_at")
        return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}

    # -- segmented uploads ------------------------------------------------------------------

    async def segmented_upload(self, destination: str, path: str) -> SegmentedUpload | None:
        rows = await self._rows(
            "SELECT uuid, segments, started_at FROM segmented_uploads "
            "WHERE destination = ? AND path = ?", (destination, path))
        if not rows:
            return None
        uuid, segments, started_at = rows[0]
        etags = await self._rows("SELECT number, etag FROM uploaded_segments WHERE uuid = ?",
                                 (uuid,))
        return SegmentedUpload(destination, path, uuid, json.loads(segments), started_at,
                               dict(etags))  # type: ignore[arg-type]

    async def start_segmented_upload(self, upload: SegmentedUpload) -> None:
        """Record a new upload for its destination path, replacing any earlier one."""
        await self.db.execute("DELETE FROM segmented_uploads WHERE destination = ? AND path = ?",
                              (upload.destination, upload.path))
        await self.db.execute("INSERT INTO segmented_uploads VALUES (?, ?, ?, ?, ?)",
                              (upload.destination, upload.path, upload.uuid,
                               json.dumps(upload.segments), upload.started_at))
        await self.db.commit()

    async def record_segment(self, uuid: str, number: int, etag: str) -> None:
        """A stored segment's ETag, committed before this returns."""
        await self.db.execute("INSERT INTO uploaded_segments VALUES (?, ?, ?) ON CONFLICT "
                              "(uuid, number) DO UPDATE SET etag = excluded.etag",
                              (uuid, number, etag))
        await self.db.commit()

    async def forget_segmented_upload(self, uuid: str) -> None:
        await self.db.execute("DELETE FROM segmented_uploads WHERE uuid = ?", (uuid,))
        await self.db.commit()

    # -- audit ------------------------------------------------------------------------------

    async def audit(self, level: str, event: str, detail: str = "", *, job_id: str | None = None,
                    execution_id: int | None = None) -> None:
        await self.db.execute(
            "INSERT INTO audit_events (at, job_id, execution_id, level, event, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)", (time.time(), job_id, execution_id, level, event, detail))
        await self.db.commit()

    # -- a job pointed elsewhere ----------------------------------------------------------------

    async def forget_items(self, job_id: str) -> None:
        """Drop a job's item records (its executions stay): they describe what was sent to the
        old source or destination, and would make the new one's files look in step."""
        await self.db.execute("DELETE FROM items WHERE job_id = ?", (job_id,))
        await self.db.commit()


class ItemLog:
    """Batches item updates into few commits (group commit), so recording 10,000 small files
    costs tens of transactions, not 10,000. `record_durably` waits until its batch is on disk."""

    def __init__(self, state: State, *, interval: float = 0.2, batch: int = 500) -> None:
        self._state = state
        self._interval = interval
        self._batch = batch
        self._pending: list[ItemRecord | Forgotten] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def __aenter__(self) -> ItemLog:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()

    def record(self, item: ItemRecord | Forgotten) -> None:
        self._pending.append(item)
        if len(self._pending) >= self._batch:
            self._wake.set()

    async def record_durably(self, item: ItemRecord) -> None:
        self.record(item)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        waiters, self._waiters = self._waiters, []
        try:
            if pending:
                await self._state.save_items(pending)
        except Exception as exc:  # those waiting for the batch hear why it failed
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()
