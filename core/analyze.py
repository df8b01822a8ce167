"""Analyze before moving: one walk of a connection's folder (listings only, never a download)
that says what is there, what the destination would refuse, and what a job would cost.

The result is an `Analysis`, stored in the state DB as JSON so the app and the reports show it
again without spending API calls; a rerun replaces what is shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Bucket:
    """One bar of a breakdown: files (and their bytes) whose extension, top-level folder,
    size or age falls under `label`."""

    label: str
    files: int
    bytes: int


@dataclass(frozen=True)
class PathSize:
    """A path with a number that ranks it: bytes (largest files) or depth (deepest paths)."""

    path: str
    value: int


@dataclass(frozen=True)
class Duplicates:
    """Files that are probably the same: `reason` is "hash" or "name and size"."""

    reason: str
    size: int
    paths: tuple[str, ...]


@dataclass(frozen=True)
class FlaggedName:
    """An item the destination's platform would refuse: what is wrong, and the name the
    job's default policies would give it (None: it would be flagged for a person)."""

    path: str
    problem: str
    fix: str | None


@dataclass(frozen=True)
class Estimate:
    """What a copy of the analyzed tree would cost: Procore API calls, and hours under the
    client's hourly budget (None where no Procore side is involved or nothing is known)."""

    api_calls: int
    hourly_limit: int | None = None
    remaining_now: int | None = None  # the budget's remaining calls when analyzed
    reset_at: float | None = None  # epoch seconds when the current hourly window resets
    hours: float | None = None  # hours the calls take under the hourly budget


@dataclass(frozen=True)
class Comparison:
    """`--against`: the analyzed side (A) against another (B), as DryvIQ's platform
    comparison shows them; each count is (files, bytes), each list a sample of paths."""

    only_here: Bucket
    only_there: Bucket
    different: Bucket
    identical: Bucket
    samples: dict[str, tuple[str, ...]] = field(default_factory=dict)  # same keys as above
    first_sync: dict[str, int] = field(default_factory=dict)  # action -> items


@dataclass(frozen=True)
class Analysis:
    """Everything one analysis found. Lists are bounded (the top N); totals are exact."""

    connection: str  # the connection's name
    path: str  # connector form: "" for the root
    platform: str
    started_at: float
    finished_at: float
    api_calls: int  # calls the analysis itself made
    files: int
    folders: int
    bytes: int
    by_extension: tuple[Bucket, ...]
    by_folder: tuple[Bucket, ...]
    by_size: tuple[Bucket, ...]
    by_age: tuple[Bucket, ...]
    largest: tuple[PathSize, ...]
    deepest: tuple[PathSize, ...]
    empty_folders: tuple[str, ...]
    empty_folder_count: int
    duplicates: tuple[Duplicates, ...]
    flagged: tuple[FlaggedName, ...]
    flagged_count: int
    destination_platform: str | None  # whose rules `flagged` checks; None: none given
    estimate: Estimate
    against: str | None = None  # the other connection's name (--against)
    against_path: str | None = None
    comparison: Comparison | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analysis:
        raise NotImplementedError("being written (issue 14)")
