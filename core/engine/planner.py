"""The planner: decide what one pair needs, from the listings, the item's record and the policies.

Pure functions, so every rule here is tested without touching storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.connectors.base import Entry
from core.engine.march import Pair
from core.jobs import Filters
from core.state import ItemRecord


class Action(StrEnum):
    CREATE = "create"  # file missing at the destination
    UPDATE = "update"  # file changed at the source
    KEEP_BOTH = "keep_both"  # changed on both sides: write the source version beside it
    MKDIR = "mkdir"  # folder missing at the destination
    NONE = "none"  # already in step (a folder: walk into it)
    SKIP = "skip"  # deliberately not transferred (filtered, not transferable, policy)
    FLAG = "flag"  # needs a person


@dataclass(frozen=True, slots=True)
class Plan:
    action: Action
    reason: str | None = None
    # decided for want of a record that this job sent the file: where it has one, the planner
    # decides again with it
    unrecorded: bool = False

    @property
    def writes(self) -> bool:
        return self.action in (Action.CREATE, Action.UPDATE, Action.KEEP_BOTH, Action.MKDIR)


SENT = ("success", "processed")  # item statuses of a file this job has delivered

# the plans of almost every pair, made once
IN_STEP, NEW_FILE, CHANGED_FILE, NEW_FOLDER = (
    Plan(Action.NONE), Plan(Action.CREATE), Plan(Action.UPDATE), Plan(Action.MKDIR))
UNSENT_FILE = Plan(Action.UPDATE, unrecorded=True)
ASSUMED_SAME = Plan(
    Action.NONE, "same size as the file already at the destination, which keeps neither the "
    "source's modification time nor a checksum: assumed identical, not uploaded",
    unrecorded=True)


@dataclass(frozen=True, slots=True)
class Rules:
    """What the planner needs to know about one job and its two connectors."""

    conflict_resolution: str = "copy"
    source_filters: Filters = field(default_factory=Filters)
    # the coarser of both sides' mtime precisions; None when either side keeps no mtime
    mtime_precision: float | None = 1.0
    # False where a file's mtime at the destination is when it was stored, not the source's
    # (Procore's updated_at): there, mtimes cannot show that unrecorded files match
    destination_sets_mtime: bool = True


def _close(a: float | None, b: float | None, precision: float | None) -> bool:
    return a is not None and b is not None and precision is not None and abs(a - b) <= precision


def same_content(source: Entry, destination: Entry, rules: Rules) -> bool:
    """rclone's equality: same size, and modification times within both sides' precision."""
    return source.size == destination.size and _close(source.mtime, destination.mtime,
                                                     rules.mtime_precision)


def _source_unchanged(source: Entry, record: ItemRecord) -> bool:
    # the record holds the source's own size and mtime as they were sent, at full precision
    return record.size == source.size and _close(source.mtime, record.mtime, 1e-6)


def _destination_unchanged(destination: Entry, record: ItemRecord, rules: Rules) -> bool:
    if destination.version is not None and record.destination_version is not None:
        return destination.version == record.destination_version
    return destination.size == record.size and _close(destination.mtime, record.mtime,
                                                      rules.mtime_precision)


def plan_copy(pair: Pair, record: ItemRecord | None, rules: Rules) -> Plan:
    """One-way copy: send new and changed source content, never touch the source, never
    propagate deletes (destination-only items are left alone)."""
    source, destination = pair.source, pair.destination
    if source is None:
        return Plan(Action.NONE, "only at the destination")
    if rules.source_filters.filters and not rules.source_filters.admits(
            source.name, source.is_dir, source.size, source.mtime):
        return Plan(Action.SKIP, "excluded by the job's source filter")
    if source.skip_reason:
        return Plan(Action.SKIP, source.skip_reason)
    if pair.refusal:
        return Plan(Action.FLAG, pair.refusal)
    if destination is not None and destination.is_dir != source.is_dir:
        kind = "folder" if destination.is_dir else "file"
        return Plan(Action.FLAG, f"a {kind} with this name is already at the destination")
    if source.is_dir:
        return IN_STEP if destination else NEW_FOLDER
    if destination is None:
        return NEW_FILE
    if same_content(source, destination, rules):
        return IN_STEP
    if record is None or record.status not in SENT:
        return _unrecorded(source, destination, record, rules)
    if _source_unchanged(source, record):
        if _destination_unchanged(destination, record, rules):
            return IN_STEP
        return Plan(Action.SKIP, "changed only at the destination; a copy job does not revert it")
    if _destination_unchanged(destination, record, rules):
        return CHANGED_FILE
    return _resolve_conflict(source, destination, rules.conflict_resolution)


def _unrecorded(source: Entry, destination: Entry, record: ItemRecord | None,
                rules: Rules) -> Plan:
    """A file at the destination that this job has no record of sending: another job's, one
    from before the state DB was lost, or a killed run's create or update that landed
    unrecorded. `record`, if any, is in no sent status: most often a write planned but not
    known to have landed, its destination_version the version it was to replace."""
    if (record is not None and destination.version is not None
            and record.destination_version == destination.version):
        # the version that write set out to replace is still there: it never landed
        return UNSENT_FILE
    if not rules.destination_sets_mtime and source.size == destination.size:
        # Nothing else to compare without downloading it (Procore keeps no checksum): a new
        # version of the same bytes is worse than trusting the size. The record made now
        # ties the source's size and mtime to the destination's version, so a later change
        # on either side is seen as for a file this job sent.
        return ASSUMED_SAME
    # the source is the content the job exists to deliver
    return UNSENT_FILE


def _resolve_conflict(source: Entry, destination: Entry, policy: str) -> Plan:
    reason = "changed on both sides since the last transfer"
    if policy == "source":
        return Plan(Action.UPDATE, f"{reason}; the source wins")
    if policy == "destination":
        return Plan(Action.SKIP, f"{reason}; the destination wins")
    if policy == "latest":
        if (source.mtime or 0) > (destination.mtime or 0):
            return Plan(Action.UPDATE, f"{reason}; the source is newer")
        return Plan(Action.SKIP, f"{reason}; the destination is newer")
    if policy == "failure":
        return Plan(Action.FLAG, reason)
    return Plan(Action.KEEP_BOTH, f"{reason}; both kept")
