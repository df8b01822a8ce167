"""Check a state file with SQLite's own checks, and rebuild a damaged one from what still reads.

The repair first backs the file up (`state.db.corrupt-DATE`, with its WAL beside it), then tries
`VACUUM INTO`, which copies everything when only indexes are damaged. Otherwise it copies table
by table: each table is read forwards and backwards up to its damaged pages, and the rows in
between are looked up one by one by the keys its indexes still hold. Rows whose parent is lost
(items and executions of a lost job, secrets of a lost connection) go too. Then the usual
migrations bring the new file to the current schema. sqlite3's `.recover` is not available
from Python; this is the part of it that matters here.

Blocking sqlite3 calls: callers run these functions in a thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.state import MIGRATIONS, RELINK_CATEGORIES

# Rows that mean nothing once what they belong to is lost.
ORPHANS = {
    "secrets": "connection_id NOT IN (SELECT id FROM connections)",
    "executions": "job_id NOT IN (SELECT id FROM jobs)",
    "items": "job_id NOT IN (SELECT id FROM jobs)",
    "uploaded_segments": "uuid NOT IN (SELECT uuid FROM segmented_uploads)",
}


@dataclass
class CheckReport:
    """What SQLite's checks found: [] in `problems` when the file is sound."""

    path: Path
    schema: int | None
    problems: list[str]
    read_only: bool

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "ok": self.ok, "schema": self.schema,
                "problems": self.problems, "read_only": self.read_only}


@dataclass
class TableSalvage:
    """One table's rows: how many the rebuilt file holds, how many are known to be lost, and
    whether more may be lost than are known (a damaged table with no intact index to count)."""

    table: str
    recovered: int = 0
    lost: int = 0
    maybe_more_lost: bool = False

    def describe(self) -> str:
        text = f"{self.table}: {_rows(self.recovered)} kept"
        if self.lost:
            text += f", {_rows(self.lost)} lost"
        if self.maybe_more_lost:
            text += ", and rows on damaged pages that could not be counted"
        return text


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


@dataclass
class RepairReport:
    path: Path
    backups: list[Path]
    method: str  # "vacuum": nothing lost; "copy": table by table; "empty": nothing read
    tables: list[TableSalvage] = field(default_factory=list)
    unreadable: str | None = None  # why nothing could be read, for "empty"

    @property
    def lossless(self) -> bool:
        return self.method == "vacuum" or not any(t.lost or t.maybe_more_lost
                                                  for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "backups": [str(b) for b in self.backups],
                "method": self.method, "lossless": self.lossless, "unreadable": self.unreadable,
                "tables": [{"table": t.table, "recovered": t.recovered, "lost": t.lost,
                            "maybe_more_lost": t.maybe_more_lost} for t in self.tables]}


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool = False,
             immutable: bool = False) -> Iterator[sqlite3.Connection]:
    uri = path.absolute().as_uri() + ("?immutable=1" if immutable else "?mode=ro")
    db = sqlite3.connect(uri if read_only else path, uri=read_only)
    try:
        yield db
    finally:
        db.close()


def check(path: Path) -> CheckReport:
    """SQLite's quick_check, then (when that passes) its full integrity_check. Always read-only:
    a connection that can write checkpoints the WAL into the file as it closes, which would
    change a damaged file before any backup of it exists."""
    read_only = not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    # in a folder it cannot write, SQLite reads a WAL file only as immutable (see State.open)
    immutable = read_only and not os.access(path.parent, os.W_OK)
    schema = None
    try:
        with _connect(path, read_only=True, immutable=immutable) as db:
            (schema,) = db.execute("PRAGMA user_version").fetchone()
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            if problems == ["ok"]:
                problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    return CheckReport(path, schema, [] if problems == ["ok"] else problems, read_only)


def backup(path: Path, now: float | None = None) -> list[Path]:
    """Copy the state file, and its write-ahead log and shared-memory index if there are any,
    beside it as `state.db.corrupt-DATE` (and `-wal`, `-shm`), private like the file."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    copies = []
    for source, copy in [(path, target)] + [(Path(f"{path}{end}"), Path(f"{target}{end}"))
                                            for end in ("-wal", "-shm")]:
        if source.exists():
            fd = os.open(copy, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as out, open(source, "rb") as into:
                shutil.copyfileobj(into, out)
            copies.append(copy)
    return copies


def repair(path: Path, now: float | None = None) -> RepairReport:
    """Back the state file up and replace it with a rebuilt one holding every row that reads.
    The caller makes sure no other process has it open."""
    backups = backup(path, now)
    rebuilt = path.with_name(f"{path.name}.rebuilding")
    rebuilt.unlink(missing_ok=True)
    report = RepairReport(path, backups, "vacuum")
    try:
        with _connect(path) as source:
            try:
                source.execute("VACUUM INTO ?", (str(rebuilt),))
                with _connect(rebuilt) as copy:
                    sound = [r[0] for r in copy.execute("PRAGMA integrity_check")] == ["ok"]
                if not sound:
                    raise sqlite3.DatabaseError("the copy is not sound")
            except sqlite3.DatabaseError:
                rebuilt.unlink(missing_ok=True)
                report.method = "copy"
                report.tables = _copy_tables(source, rebuilt)
    except sqlite3.DatabaseError as exc:  # not even the schema reads
        rebuilt.unlink(missing_ok=True)
        report.method, report.unreadable, report.tables = "empty", str(exc), []
    if rebuilt.exists():
        os.chmod(rebuilt, 0o600)
    else:  # an empty file, which the migrations turn into a new state
        os.close(os.open(rebuilt, os.O_CREAT | os.O_WRONLY, 0o600))
    for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)  # they belong to the damaged file (and are backed up)
    os.replace(rebuilt, path)
    return report


def _copy_tables(source: sqlite3.Connection, target_path: Path) -> list[TableSalvage]:
    (version,) = source.execute("PRAGMA user_version").fetchone()
    tables = [row[0] for row in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    found = []
    with _connect(target_path) as target:
        target.executescript("".join(MIGRATIONS[:version]) +
                             f"\nPRAGMA user_version = {version};")
        known = {row[0] for row in target.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in tables:
            if table in known:
                found.append(_copy_table(source, target, table))
        for table, orphan in ORPHANS.items():
            if table in known:
                dropped = target.execute(f"DELETE FROM {table} WHERE {orphan}").rowcount
                for salvage in found:
                    if salvage.table == table and dropped:
                        salvage.recovered -= dropped
                        salvage.lost += dropped
        if "categories" in known:  # jobs whose category was lost join one of its name again
            target.executescript(RELINK_CATEGORIES)
        target.commit()
    return found


def _copy_table(source: sqlite3.Connection, target: sqlite3.Connection,
                table: str) -> TableSalvage:
    columns = [row[1] for row in target.execute(f"PRAGMA table_info({table})")]
    key = _key_columns(source, table)
    listed = ", ".join(key + columns)
    rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    salvage = TableSalvage(table)
    damaged = False
    for order in ("ASC", "DESC"):
        by = ", ".join(f"{k} {order}" for k in key)
        try:
            for row in source.execute(f"SELECT {listed} FROM {table} ORDER BY {by}"):
                rows[row[:len(key)]] = row[len(key):]
        except sqlite3.DatabaseError:
            damaged = True
        if not damaged:
            break
    if damaged:
        keys, counted = _keys_from_indexes(source, table, key)
        for wanted in keys - rows.keys():
            where = " AND ".join(f"{k} = ?" for k in key)
            try:
                found = source.execute(f"SELECT {', '.join(columns)} FROM {table} "
                                       f"WHERE {where}", wanted).fetchone()
            except sqlite3.DatabaseError:
                found = None
            if found is None:
                salvage.lost += 1
            else:
                rows[wanted] = found
        salvage.maybe_more_lost = not counted
    target.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
                       f"VALUES ({', '.join('?' for _ in columns)})", rows.values())
    salvage.recovered = len(rows)
    return salvage


def _key_columns(source: sqlite3.Connection, table: str) -> list[str]:
    """The columns that name a row: the primary key of a WITHOUT ROWID table, else rowid."""
    without_rowid = "WITHOUT ROWID" in (source.execute(
        "SELECT upper(sql) FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0] or "")
    if not without_rowid:
        return ["rowid"]
    info = sorted((row[5], row[1]) for row in source.execute(f"PRAGMA table_info({table})")
                  if row[5])
    return [name for _, name in info]


def _keys_from_indexes(source: sqlite3.Connection, table: str,
                       key: list[str]) -> tuple[set[tuple[Any, ...]], bool]:
    """Every row key the table's indexes still hold (an index holds its table's key), and
    whether one index read to its end, so that the keys are all there are."""
    keys: set[tuple[Any, ...]] = set()
    complete = False
    indexes = [row[1] for row in source.execute(f"PRAGMA index_list({table})")]
    for index in indexes:
        try:
            for row in source.execute(f"SELECT {', '.join(key)} FROM {table} "
                                      f"INDEXED BY {index}"):
                keys.add(tuple(row))
            complete = True
        except sqlite3.DatabaseError:
            continue
    return keys, complete
