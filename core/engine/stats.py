"""Counters of one execution, shared by the engine, the progress line and the state DB."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field


@dataclass
class ExecutionStats:
    """What an execution has seen and done so far; `--json` prints these."""

    files: int = 0  # files examined (on either side, once per pair)
    folders: int = 0  # folders examined
    bytes: int = 0  # bytes written to either side (or that would be, in a simulation)
    transferred: int = 0  # files created or updated on either side
    folders_created: int = 0
    skipped: int = 0  # unchanged, filtered out, or not transferable
    revised: int = 0  # renamed or truncated to fit the destination's rules
    flagged: int = 0  # need a person: names that cannot be fixed, conflicts, repeated failures
    failed: int = 0  # errors this run; retried on the next run
    api_calls: int = 0
    rate_limit_waits: int = 0  # times a call waited for a rate-limit window to reset
    rate_limit_wait_seconds: float = 0.0  # time calls spent in those waits (overlaps once)
    rate_limited: int = 0  # 429 answers received (the pacer aims for none)
    waiting_until: float | None = None  # epoch seconds: paused for the hourly API budget
    in_flight: int = 0  # files being written right now
    planned_files: int = 0  # files found to need a transfer (grows while listing)
    planned_bytes: int = 0
    listing_done: bool = False
    # each side's changes (a two-way sync writes to the source too): `transferred` and
    # `bytes` count both directions; these say where
    added_destination: int = 0
    updated_destination: int = 0
    deleted_destination: int = 0  # files and folders deleted (to the trash, by default)
    added_source: int = 0
    updated_source: int = 0
    deleted_source: int = 0
    bytes_to_source: int = 0  # of `bytes`, those written to the source
    conflicts: int = 0  # files changed on both sides, however the policy resolved them
    moved: int = 0  # renames and moves made in place instead of a new transfer
    versions: int = 0  # older versions preserved (versioning select "all")
    delete_guard: str | None = None  # why the delete guard stopped the run before any change

    def as_dict(self) -> dict[str, int | bool | float | None]:
        return asdict(self)

    @property
    def changed(self) -> bool:
        return bool(self.transferred or self.folders_created or self.deleted_destination
                    or self.deleted_source or self.moved)


@dataclass
class Throughput:
    """Rolling byte rate over the last `window` seconds, for a steady ETA."""

    window: float = 10.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def sample(self, total_bytes: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.samples.append((now, total_bytes))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()

    @property
    def rate(self) -> float:
        """Bytes per second over the window (0 until there are two samples)."""
        if len(self.samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    def eta(self, stats: ExecutionStats) -> float | None:
        """Seconds left, or None while unknown (listing still running, or no rate yet)."""
        rate = self.rate
        if not stats.listing_done or rate <= 0:
            return None
        return max(0.0, (stats.planned_bytes - stats.bytes) / rate)
