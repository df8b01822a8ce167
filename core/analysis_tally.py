"""The counters an analysis keeps while it walks: breakdowns, top-N lists, duplicate candidates.

Memory stays flat in the number of items: breakdowns are counters over a bounded set of
labels, the largest files and deepest paths are heaps of N, samples stop at their limit, and
duplicate candidates go to a temporary SQLite table on disk (deleted when the tally closes),
which is grouped once at the end.
"""

from __future__ import annotations

import heapq
import os
import shutil
import sqlite3
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from core.analyze import Bucket, Duplicates, FlaggedName, PathSize

MIB = 1 << 20
GIB = 1 << 30
DAY = 86400.0
YEAR = 365.25 * DAY
# (upper bound in bytes, exclusive; None: no bound) and the bar's label
SIZE_BUCKETS: tuple[tuple[int | None, str], ...] = (
    (MIB, "< 1 MiB"), (10 * MIB, "1-10 MiB"), (100 * MIB, "10-100 MiB"),
    (GIB, "100 MiB-1 GiB"), (None, ">= 1 GiB"))
# (upper bound of the age in seconds, exclusive; None: no bound) and the bar's label
AGE_BUCKETS: tuple[tuple[float | None, str], ...] = (
    (30 * DAY, "< 30 days"), (YEAR, "30 days-1 year"), (3 * YEAR, "1-3 years"),
    (None, "> 3 years"))
UNKNOWN_AGE = "unknown"  # a platform that keeps no modification time
NO_EXTENSION = "(none)"
ROOT_FILES = "(files at the top)"
OTHER = "(other)"
MAX_LABELS = 1000  # distinct extensions or top-level folders counted; the rest go to OTHER
MAX_EXTENSION = 12  # characters: a longer "extension" is part of a name ("report.final-v2")


@dataclass(frozen=True)
class Limits:
    """How many of each list an analysis keeps (totals stay exact)."""

    top: int = 20  # largest files, deepest paths, duplicate groups
    bars: int = 20  # extensions and top-level folders shown; the rest summed as "(other)"
    samples: int = 200  # empty folders and flagged names kept as examples
    duplicate_paths: int = 10  # paths shown per duplicate group


class _Counts:
    """Files and bytes per label, for at most MAX_LABELS labels (the rest as OTHER)."""

    def __init__(self) -> None:
        self.files: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()

    def add(self, label: str, size: int) -> None:
        if label not in self.files and len(self.files) >= MAX_LABELS:
            label = OTHER
        self.files[label] += 1
        self.bytes[label] += size

    def buckets(self, labels: tuple[str, ...]) -> tuple[Bucket, ...]:
        """Every label given, in that order, zero where nothing fell under it."""
        return tuple(Bucket(label, self.files[label], self.bytes[label]) for label in labels)

    def largest(self, bars: int) -> tuple[Bucket, ...]:
        """The `bars` labels with the most bytes, then the rest summed as OTHER."""
        ranked = sorted(self.files, key=lambda label: (-self.bytes[label], label))
        shown = [label for label in ranked if label != OTHER][:bars]
        rest = [label for label in ranked if label not in shown]
        found = [Bucket(label, self.files[label], self.bytes[label]) for label in shown]
        if rest:
            found.append(Bucket(OTHER, sum(self.files[label] for label in rest),
                                sum(self.bytes[label] for label in rest)))
        return tuple(found)


def extension(name: str) -> str:
    """A file's extension as its type: ".pdf" for "A-101.PDF", NO_EXTENSION where it has none
    or the dot is part of the name."""
    ext = os.path.splitext(name)[1].lower()
    if not ext or len(ext) > MAX_EXTENSION or not ext[1:].replace("-", "").isalnum():
        return NO_EXTENSION
    return ext


def size_label(size: int) -> str:
    return next(label for bound, label in SIZE_BUCKETS if bound is None or size < bound)


def age_label(mtime: float | None, now: float) -> str:
    if mtime is None:
        return UNKNOWN_AGE
    age = now - mtime
    return next(label for bound, label in AGE_BUCKETS if bound is None or age < bound)


class _Top:
    """The N items with the largest value (among equal values, the one met first)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.heap: list[tuple[int, int, str]] = []
        self.seen = 0

    def offer(self, value: int, path: str) -> None:
        self.seen += 1
        item = (value, -self.seen, path)
        if len(self.heap) < self.n:
            heapq.heappush(self.heap, item)
        elif item > self.heap[0]:
            heapq.heapreplace(self.heap, item)

    def ranked(self) -> tuple[PathSize, ...]:
        return tuple(PathSize(path, value) for value, _, path in sorted(self.heap, reverse=True))


class _Candidates:
    """Files by (name, size) and by hash, in a SQLite table in a temporary folder, so finding
    the ones that are probably the same holds no more than one batch in memory."""

    BATCH = 5000

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="dryviq-analysis-")
        # used by one thread at a time: the walk's, then the one grouping at the end
        self.db = sqlite3.connect(os.path.join(self.folder, "candidates.db"),
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE files (name TEXT, size INTEGER, hash TEXT, path TEXT)")
        self.pending: list[tuple[str, int, str | None, str]] = []

    def add(self, name: str, size: int, hash_: str | None, path: str) -> None:
        self.pending.append((name, size, hash_, path))
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        self.db.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", self.pending)
        self.pending = []

    def groups(self, limits: Limits) -> tuple[tuple[Duplicates, ...], int, int]:
        """The groups that waste the most bytes (limits.top of them), how many groups there
        are, and the bytes all copies but one of each take. A file that shares its hash with
        another is counted there, not again by its name and size."""
        self.flush()
        db = self.db
        db.execute("CREATE INDEX by_hash ON files (hash, size) WHERE hash IS NOT NULL")
        db.execute("CREATE INDEX by_name ON files (name, size)")
        hashed = ("SELECT 'hash' AS reason, hash AS k1, size, COUNT(*) AS n FROM files "
                  "WHERE hash IS NOT NULL GROUP BY hash, size HAVING n > 1")
        named = ("SELECT 'name and size', name, size, COUNT(*) AS n FROM files f WHERE NOT "
                 "EXISTS (SELECT 1 FROM files g WHERE g.hash = f.hash AND g.size = f.size "
                 "AND g.path != f.path) GROUP BY name, size HAVING n > 1")
        db.execute(f"CREATE TEMP TABLE groups AS {hashed} UNION ALL {named}")
        count, wasted = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size * (n - 1)), 0) FROM groups").fetchone()
        found = []
        for reason, key, size, _ in db.execute(
                "SELECT reason, k1, size, n FROM groups ORDER BY size * (n - 1) DESC, k1 "
                "LIMIT ?", (limits.top,)).fetchall():
            column = "hash" if reason == "hash" else "name"
            paths = [p for (p,) in db.execute(
                f"SELECT path FROM files WHERE {column} = ? AND size = ? ORDER BY path "
                "LIMIT ?", (key, size, limits.duplicate_paths))]
            found.append(Duplicates(reason, size, tuple(paths)))
        return tuple(found), count, wasted

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Tally:
    """Everything counted about one side of an analysis, item by item. Paths are relative to
    the analyzed folder, '/'-joined, without a leading slash ("Drawings/A-101.pdf"): whoever
    shows them adds it."""

    now: float
    limits: Limits = field(default_factory=Limits)
    files: int = 0
    folders: int = 0
    bytes: int = 0
    skipped: int = 0  # listed, but not content (a symlink out of the root, a leftover part)
    empty_folder_count: int = 0
    flagged_count: int = 0
    empty_folders: list[str] = field(default_factory=list)
    flagged: list[FlaggedName] = field(default_factory=list)
    unreadable_count: int = 0  # folders whose listing failed (not counted below them)
    unreadable_folders: list[str] = field(default_factory=list)  # "path: why"

    def __post_init__(self) -> None:
        self._extensions = _Counts()
        self._folders = _Counts()
        self._sizes = _Counts()
        self._ages = _Counts()
        self._largest = _Top(self.limits.top)
        self._deepest = _Top(self.limits.top)
        self._candidates = _Candidates()

    def file(self, path: str, name: str, size: int, mtime: float | None,
             hashes: tuple[tuple[str, str], ...]) -> None:
        self.files += 1
        self.bytes += size
        self._extensions.add(extension(name), size)
        top, _, rest = path.partition("/")
        self._folders.add(top if rest else ROOT_FILES, size)
        self._sizes.add(size_label(size), size)
        self._ages.add(age_label(mtime, self.now), size)
        self._largest.offer(size, path)
        self._deepest.offer(path.count("/") + 1, path)
        if size:  # empty files are all alike, and take no room
            hash_ = f"{hashes[0][0]}:{hashes[0][1]}" if hashes else None
            key = unicodedata.normalize("NFC", name).casefold()
            self._candidates.add(key, size, hash_, path)

    def folder(self, path: str) -> None:
        self.folders += 1
        self._deepest.offer(path.count("/") + 1, path)

    def empty_folder(self, path: str) -> None:
        self.empty_folder_count += 1
        if len(self.empty_folders) < self.limits.samples:
            self.empty_folders.append(path)

    def unreadable(self, path: str, why: str) -> None:
        self.unreadable_count += 1
        if len(self.unreadable_folders) < self.limits.samples:
            self.unreadable_folders.append(f"{path}: {why}")

    def flag(self, found: FlaggedName) -> None:
        self.flagged_count += 1
        if len(self.flagged) < self.limits.samples:
            self.flagged.append(found)

    def by_extension(self) -> tuple[Bucket, ...]:
        return self._extensions.largest(self.limits.bars)

    def by_folder(self) -> tuple[Bucket, ...]:
        return self._folders.largest(self.limits.bars)

    def by_size(self) -> tuple[Bucket, ...]:
        return self._sizes.buckets(tuple(label for _, label in SIZE_BUCKETS))

    def by_age(self) -> tuple[Bucket, ...]:
        labels = [label for _, label in AGE_BUCKETS]
        if self._ages.files[UNKNOWN_AGE]:
            labels.append(UNKNOWN_AGE)
        return self._ages.buckets(tuple(labels))

    def largest(self) -> tuple[PathSize, ...]:
        return self._largest.ranked()

    def deepest(self) -> tuple[PathSize, ...]:
        return self._deepest.ranked()

    def duplicates(self) -> tuple[tuple[Duplicates, ...], int, int]:
        return self._candidates.groups(self.limits)

    def close(self) -> None:
        self._candidates.close()

