"""What one execution changed on each side of a job, in the words the monitor, `jobs history`
and `jobs run` share: ↑ is toward the destination, ↓ toward the source (a two-way sync, or a
move that removes what it delivered)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from core.cli.output import count
from core.engine.stats import ExecutionStats

UP, DOWN, CONFLICT = "↑", "↓", "⚡"
# the counters of each side and of what a two-way run resolved, as ExecutionStats names them
SIDE_COUNTERS = ("added_destination", "updated_destination", "deleted_destination",
                 "added_source", "updated_source", "deleted_source", "bytes_to_source",
                 "conflicts", "moved", "versions")
# what an item's planned action says to people where its code does not (`jobs items`; CSV
# and JSON keep the codes); an action on the source ends in "_source" (delete_source)
_ACTION_WORDS = {"keep_both": "keep both (conflict)", "conflict": "conflict, both kept",
                 "none": "in step"}
_STATS_FIELDS = {f.name for f in dataclasses.fields(ExecutionStats)}


def action_words(code: str, versions: int = 0) -> str:
    """"delete_source" -> "delete at source", "keep_both" -> "keep both (conflict)"; with
    the versions carried of the file (versioning select "all"): "update, 3 versions"."""
    base = code.removesuffix("_source")
    words = _ACTION_WORDS.get(base, base.replace("_", " "))
    words = f"{words} at source" if base != code else words
    return f"{words}, {count(versions, 'version')}" if versions else words


def recorded_stats(stats: Mapping[str, Any]) -> ExecutionStats:
    """An execution's stats as the state DB holds them (keys this version does not know are
    left out, keys an older version did not write read as zero)."""
    return ExecutionStats(**{k: v for k, v in stats.items() if k in _STATS_FIELDS})


def wrote_source(stats: ExecutionStats) -> bool:
    return bool(stats.added_source or stats.updated_source or stats.deleted_source
                or stats.bytes_to_source)


def two_sided(stats: ExecutionStats, transfer_type: str) -> bool:
    """Whether the ↓ side is worth a line: a sync, or a run that changed the source."""
    return transfer_type == "sync" or wrote_source(stats)


def to_destination(stats: ExecutionStats) -> str:
    return (f"{UP} to destination: {stats.added_destination:,} added, "
            f"{stats.updated_destination:,} updated, {stats.deleted_destination:,} deleted")


def to_source(stats: ExecutionStats) -> str:
    return (f"{DOWN} to source: {stats.added_source:,} added, {stats.updated_source:,} updated, "
            f"{stats.deleted_source:,} deleted")


def side_lines(stats: ExecutionStats, transfer_type: str) -> list[str]:
    """The ↑ line, and the ↓ line when the job is two-sided."""
    lines = [to_destination(stats)]
    if two_sided(stats, transfer_type):
        lines.append(to_source(stats))
    return lines


def outcomes(stats: ExecutionStats, transfer_type: str) -> str:
    """Conflicts, moves and preserved versions ("2 conflicts · 1 moved · 3 versions
    preserved"); a sync always says its conflicts, the rest only when there were some."""
    parts = []
    if stats.conflicts or transfer_type == "sync":
        parts.append(count(stats.conflicts, "conflict"))
    if stats.moved:
        parts.append(f"{stats.moved:,} moved")
    if stats.versions:
        parts.append(f"{count(stats.versions, 'version')} preserved")
    return " · ".join(parts)


def problems(stats: ExecutionStats) -> str:
    """"1 flagged, 2 failed", or "" when there were none."""
    return ", ".join(f"{n:,} {what}" for n, what in ((stats.flagged, "flagged"),
                                                      (stats.failed, "failed")) if n)


def _side(arrow: str, added: int, updated: int, deleted: int) -> str:
    marks = [f"{mark}{n:,}" for mark, n in (("+", added), ("~", updated), ("-", deleted)) if n]
    return arrow + " ".join(marks) if marks else ""


def compact(stats: ExecutionStats) -> str:
    """A table cell: "↑+3 ~1 ↓~2 -1 ⚡1" (added +, updated ~, deleted - toward the
    destination ↑ and the source ↓, then conflicts ⚡); counts of zero are left out, so it
    stays narrow; "—" for a run that changed nothing."""
    parts = [_side(UP, stats.added_destination, stats.updated_destination,
                   stats.deleted_destination),
             _side(DOWN, stats.added_source, stats.updated_source, stats.deleted_source),
             f"{CONFLICT}{stats.conflicts:,}" if stats.conflicts else ""]
    return " ".join(filter(None, parts)) or "—"
