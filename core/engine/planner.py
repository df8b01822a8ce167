"""The planner: decide what one pair needs, from the listings, the item's record and the policies.

Pure functions, so every rule here is tested without touching storage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from core.connectors.base import Entry
from core.engine.march import Pair
from core.jobs import Filters
from core.state import ItemRecord


class Action(StrEnum):
    """What a pair needs. Writes and deletes happen on the side `Plan.to_source` names: the
    destination, unless a two-way sync sends a change back to the source."""

    CREATE = "create"  # file missing on the written side
    UPDATE = "update"  # file changed on the other side
    KEEP_BOTH = "keep_both"  # copy: changed on both sides, the source version written beside
    CONFLICT = "conflict"  # sync: changed on both sides; the newer keeps the name on both, the
    # older becomes a conflict copy beside it on both (written side: the older one's)
    MKDIR = "mkdir"  # folder missing on the written side
    DELETE = "delete"  # gone from the other side: a file goes to the trash; a folder is
    # walked (each file decides for itself) and goes when nothing is left in it
    NONE = "none"  # already in step (a folder: walk into it)
    SKIP = "skip"  # deliberately not transferred (filtered, not transferable, policy)
    FLAG = "flag"  # needs a person
    FORGET = "forget"  # gone from both sides: only the record is left, and it goes
    OMIT = "omit"  # not part of this job at all (a taxonomy job's files): not even counted


@dataclass(frozen=True, slots=True)
class Plan:
    action: Action
    reason: str | None = None
    # decided for want of a record that this job sent the file: where it has one, the planner
    # decides again with it
    unrecorded: bool = False
    to_source: bool = False  # the change is made at the source (sync sending a change back)
    move: bool = False  # the source file goes once the written copy is verified (move jobs)
    conflict: bool = False  # changed on both sides (however the policy resolves it)

    @property
    def writes(self) -> bool:
        return self.action in (Action.CREATE, Action.UPDATE, Action.KEEP_BOTH, Action.CONFLICT,
                               Action.MKDIR)


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
    destination_filters: Filters = field(default_factory=Filters)
    # the coarser of both sides' mtime precisions; None when either side keeps no mtime
    mtime_precision: float | None = 1.0
    # False where a file's mtime at the destination is when it was stored, not the source's
    # (Procore's updated_at): there, mtimes cannot show that unrecorded files match
    destination_sets_mtime: bool = True
    source_sets_mtime: bool = True  # the same of the source, where a sync writes to it
    propagation: tuple[str, ...] = ("ignore_source",)  # the job's delete propagation
    # the largest file each side takes (Features.max_file_size), and the large_item policy
    max_to_destination: int | None = None
    max_to_source: int | None = None
    skip_large: bool = False


def _close(a: float | None, b: float | None, precision: float | None) -> bool:
    return a is not None and b is not None and precision is not None and abs(a - b) <= precision


def same_content(source: Entry, destination: Entry, rules: Rules) -> bool:
    """rclone's equality: same size, and modification times within both sides' precision.
    Only where the side written keeps the mtime it is given: Procore's is when it stored the
    file, and a file stored within a second of the other's mtime is no proof of anything."""
    if not rules.destination_sets_mtime:
        return False
    return source.size == destination.size and _close(source.mtime, destination.mtime,
                                                     rules.mtime_precision)


def _sent_across(source: Entry, destination: Entry, rules: Rules) -> bool:
    """Whether a sync's two files are one file sent across: the same size, and the mtime
    written with it. Where both sides keep the mtimes they are given, rclone's equality;
    where only the source does (the destination is Procore), the source's mtime must be the
    destination's to the microsecond, as a write from there sets it: so a file a killed run
    brought down, its record lost, is met again in step, not as an edit on both sides."""
    if not rules.source_sets_mtime:
        return False
    if rules.destination_sets_mtime:
        return same_content(source, destination, rules)
    return source.size == destination.size and _close(source.mtime, destination.mtime, 1e-6)


def _source_unchanged(source: Entry, record: ItemRecord) -> bool:
    if source.version is not None and record.source_version is not None:
        return source.version == record.source_version
    # the record holds the source's own size and mtime as they were sent, at full precision
    return record.size == source.size and _close(source.mtime, record.mtime, 1e-6)


def _destination_unchanged(destination: Entry, record: ItemRecord, rules: Rules) -> bool:
    if destination.version is not None and record.destination_version is not None:
        return destination.version == record.destination_version
    if record.destination_mtime is not None:  # as the destination itself last reported it
        return destination.size == record.size and _close(destination.mtime,
                                                          record.destination_mtime, 1e-6)
    return destination.size == record.size and _close(destination.mtime, record.mtime,
                                                      rules.mtime_precision)


def _not_sent(pair: Pair, rules: Rules) -> Plan | None:
    """Why the source item of a pair is not transferred at all, if it is not."""
    source, destination = pair.source, pair.destination
    assert source is not None
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
    return None


def _too_large(entry: Entry, limit: int | None, rules: Rules, where: str) -> Plan | None:
    """The job's large_item policy for a file larger than the written side takes."""
    if entry.is_dir or limit is None or entry.size <= limit:
        return None
    reason = f"larger than the {where} takes ({entry.size:,} bytes; at most {limit:,})"
    return Plan(Action.SKIP if rules.skip_large else Action.FLAG, reason)


def unchanged_since(entry: Entry, record: ItemRecord, rules: Rules, *, at_source: bool) -> bool:
    """Whether a file on one side is as the record has it."""
    if at_source:
        return _source_unchanged(entry, record)
    return _destination_unchanged(entry, record, rules)


def _one_way(pair: Pair, rules: Rules) -> Plan | None:
    """What every one-way type decides alike for a source item: not sent, a folder, a file
    new at the destination, or one already in step; None when the type must decide."""
    source, destination = pair.source, pair.destination
    assert source is not None
    refused = _not_sent(pair, rules) or _too_large(source, rules.max_to_destination, rules,
                                                   "destination")
    if refused:
        return refused
    if source.is_dir:
        return IN_STEP if destination else NEW_FOLDER
    if destination is None:
        return NEW_FILE
    return IN_STEP if same_content(source, destination, rules) else None


def plan_copy(pair: Pair, record: ItemRecord | None, rules: Rules) -> Plan:
    """One-way copy: send new and changed source content, never touch the source, never
    propagate deletes (destination-only items are left alone)."""
    source, destination = pair.source, pair.destination
    if source is None:
        return Plan(Action.NONE, "only at the destination")
    settled = _one_way(pair, rules)
    if settled:
        return settled
    assert destination is not None
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
        return Plan(Action.UPDATE, f"{reason}; the source wins", conflict=True)
    if policy == "destination":
        return Plan(Action.SKIP, f"{reason}; the destination wins", conflict=True)
    if policy == "latest":
        if (source.mtime or 0) > (destination.mtime or 0):
            return Plan(Action.UPDATE, f"{reason}; the source is newer", conflict=True)
        return Plan(Action.SKIP, f"{reason}; the destination is newer", conflict=True)
    if policy == "failure":
        return Plan(Action.FLAG, reason, conflict=True)
    return Plan(Action.KEEP_BOTH, f"{reason}; both kept", conflict=True)


def plan_migrate(pair: Pair, record: ItemRecord | None, rules: Rules) -> Plan:
    """One way, the source always wins, and a file migrated once is not looked at again: no
    change or delete detection on later runs (so conflict and delete policies do not apply)."""
    source, destination = pair.source, pair.destination
    if source is None:
        return Plan(Action.NONE, "only at the destination")
    if (record is not None and record.status in SENT and not source.is_dir
            and _not_sent(pair, rules) is None):
        return Plan(Action.NONE, None)  # migrated by an earlier run: not looked at again
    settled = _one_way(pair, rules)
    if settled:
        return settled
    assert destination is not None
    return _unrecorded(source, destination, record, rules)


def plan_publish(pair: Pair, record: ItemRecord | None, rules: Rules) -> Plan:
    """A one-way mirror: the destination becomes what the source is. Items only at the
    destination are deleted (to the trash, under the delete guard) and destination edits
    are reverted."""
    source, destination = pair.source, pair.destination
    if source is None:
        if destination is None:
            return Plan(Action.FORGET)
        if destination.skip_reason:
            return Plan(Action.NONE, destination.skip_reason)
        if _excluded(destination, rules):  # as rclone: what the filters exclude is left
            return Plan(Action.NONE, "excluded by the job's filters: left where it is")
        return Plan(Action.DELETE, "not at the source: a publish job removes it")
    settled = _one_way(pair, rules)
    if settled:
        return settled
    assert destination is not None
    if record is None or record.status not in SENT:
        return _unrecorded(source, destination, record, rules)
    if _destination_unchanged(destination, record, rules):
        return IN_STEP if _source_unchanged(source, record) else CHANGED_FILE
    return Plan(Action.UPDATE, "changed at the destination: a publish job reverts it")


def plan_move(pair: Pair, record: ItemRecord | None, rules: Rules) -> Plan:
    """Transfer, verify, then remove from the source. A name already taken at the destination
    is flagged and the source kept (DryvIQ: move jobs warn and skip duplicates)."""
    source, destination = pair.source, pair.destination
    if source is None:
        return Plan(Action.NONE, "only at the destination")
    refused = _not_sent(pair, rules) or _too_large(source, rules.max_to_destination, rules,
                                                   "destination")
    if refused:
        return refused
    if source.is_dir:  # emptied by the move, it goes too (the job's own folder stays)
        return Plan(Action.NONE if destination else Action.MKDIR, move=True)
    if destination is None:
        return Plan(Action.CREATE, move=True)
    if (record is not None and record.status in SENT and _source_unchanged(source, record)
            and _destination_unchanged(destination, record, rules)):
        # delivered and verified by a run that stopped before removing the source
        return Plan(Action.DELETE, "delivered by an earlier run", to_source=True)
    if (record is not None and record.action == "create" and record.status not in SENT
            and _source_unchanged(source, record) and source.size == destination.size
            and (same_content(source, destination, rules)
                 or not rules.destination_sets_mtime)):
        # this job's own copy, landed before its run stopped and not recorded
        return Plan(Action.DELETE, "delivered by an earlier run that stopped before saying "
                                   "so", to_source=True)
    return Plan(Action.FLAG, "a file of this name is already at the destination; a move "
                             "job does not replace it, and keeps the source")


def plan_taxonomy(pair: Pair, record: ItemRecord | None, rules: Rules) -> Plan:
    """Folder structure only: folders are created, files are not part of the job."""
    source = pair.source
    if source is None:
        return Plan(Action.NONE, "only at the destination")
    if not source.is_dir:
        return Plan(Action.OMIT)
    return _not_sent(pair, rules) or (IN_STEP if pair.destination else NEW_FOLDER)


CONFLICT = "changed on both sides since the last sync"


def plan_sync(pair: Pair, record: ItemRecord | None, rules: Rules) -> Plan:
    """Two way: each side is compared with the record of the last time both were in step (a
    three-way comparison). A change on one side goes to the other; a change on both follows
    conflict_resolution; a delete on one side follows delete_propagation, but never over a
    change on the other side (an edit is never lost)."""
    source, destination = pair.source, pair.destination
    if source is None and destination is None:
        return Plan(Action.FORGET)
    if source is not None:
        refused = _not_sent(pair, rules)
    else:
        assert destination is not None
        refused = _not_sent_back(destination, pair, rules)
    if refused:
        return refused
    base = record if record is not None and _in_step_before(record) else None
    if source is None or destination is None:
        return _one_sided(source, destination, base, rules)
    if source.is_dir or _sent_across(source, destination, rules):
        return IN_STEP
    if base is None:
        return _first_meeting(source, destination, record, rules)
    source_changed = not _source_unchanged(source, base)
    destination_changed = not _destination_unchanged(destination, base, rules)
    if source_changed and destination_changed and _own_write(base, source, destination, rules):
        # a write of this job's own that landed before its run stopped, unrecorded
        return Plan(Action.NONE, None, unrecorded=True)
    if not destination_changed:
        return IN_STEP if not source_changed else _sized(CHANGED_FILE, source, rules)
    if not source_changed:
        return _sized(Plan(Action.UPDATE, to_source=True), destination, rules)
    return _sync_conflict(source, destination, rules)


# The actions whose pending record still holds the last in-step state (a write over an item
# both sides had): an interrupted run's record is still the base for the next
_BASED = frozenset({"update", "update_source", "conflict", "conflict_source"})
DELETED = frozenset({"delete", "delete_source"})  # the record of an item deleted on both sides


def _in_step_before(record: ItemRecord) -> bool:
    if record.action in DELETED:
        return False  # gone from both sides: whatever stands there now is new
    # a pending write's record keeps the in-step state only where there was one, and then
    # the destination's mtime with it; a first meeting's holds one side's file, no base
    return record.status in SENT or (record.action in _BASED
                                     and record.destination_mtime is not None)


def _own_write(record: ItemRecord, source: Entry, destination: Entry, rules: Rules) -> bool:
    """Whether two files that differ may be a write of this job's own that landed before its
    run stopped, unrecorded: its record is not sent, the sizes match, and the side written
    keeps no mtime. A side that keeps it would have matched by mtime: there, a file of the
    same size is a user's, and taking it for the job's own lost it."""
    written_keeps_mtime = (rules.source_sets_mtime if record.action.endswith("_source")
                           else rules.destination_sets_mtime)
    return (record.status not in SENT and source.size == destination.size
            and not written_keeps_mtime)


def _excluded(entry: Entry, rules: Rules) -> bool:
    """Whether a destination item is outside the job: excluded by either side's filters."""
    return any(f.filters and not f.admits(entry.name, entry.is_dir, entry.size, entry.mtime)
               for f in (rules.source_filters, rules.destination_filters))


def _not_sent_back(destination: Entry, pair: Pair, rules: Rules) -> Plan | None:
    """Why a destination-only item is not sent to the source, if it is not."""
    if destination.skip_reason:
        return Plan(Action.SKIP, destination.skip_reason)
    if rules.destination_filters.filters and not rules.destination_filters.admits(
            destination.name, destination.is_dir, destination.size, destination.mtime):
        return Plan(Action.SKIP, "excluded by the job's destination filter")
    if pair.refusal:
        return Plan(Action.FLAG, pair.refusal)
    return None


def _sized(plan: Plan, entry: Entry, rules: Rules) -> Plan:
    """The plan, unless the file is larger than the side it goes to takes."""
    if plan.to_source:
        return _too_large(entry, rules.max_to_source, rules, "source") or plan
    return _too_large(entry, rules.max_to_destination, rules, "destination") or plan


def _propagates(deleted_at: str, rules: Rules) -> bool:
    return f"ignore_{deleted_at}" not in rules.propagation and (
        "ignore_both" not in rules.propagation)


def _one_sided(source: Entry | None, destination: Entry | None, base: ItemRecord | None,
               rules: Rules) -> Plan:
    """An item on one side only: new there, or deleted on the other side since the base."""
    entry = source or destination
    assert entry is not None
    here, there = ("source", "destination") if source else ("destination", "source")
    back = source is None  # the change, if any, is made at the source
    if base is None:
        if entry.is_dir:
            return Plan(Action.MKDIR, to_source=back)
        return _sized(Plan(Action.CREATE, to_source=back), entry, rules)
    if not _propagates(there, rules):
        return Plan(Action.NONE, f"deleted at the {there}; delete_propagation keeps it at the "
                                 f"{here}")
    if entry.is_dir:  # each file below decides for itself; the folder goes if left empty
        return Plan(Action.DELETE, f"deleted at the {there}", to_source=not back)
    changed = (not _source_unchanged(entry, base) if source
               else not _destination_unchanged(entry, base, rules))
    if changed:
        return _sized(Plan(Action.CREATE, f"deleted at the {there} but changed at the {here} "
                                          "since: the change is kept and sent again",
                           to_source=back), entry, rules)
    return Plan(Action.DELETE, f"deleted at the {there}", to_source=not back)


def _first_meeting(source: Entry, destination: Entry, record: ItemRecord | None,
                   rules: Rules) -> Plan:
    """Both sides have a file of this name that no sync has seen in step: a first sync over
    two full folders, or a create of this job's that landed before its run stopped."""
    if record is not None and _own_write(record, source, destination, rules):
        return Plan(Action.NONE, None, unrecorded=True)  # its own create, unrecorded
    if (not (rules.destination_sets_mtime and rules.source_sets_mtime)
            and source.size == destination.size):
        return ASSUMED_SAME
    return _sync_conflict(source, destination, rules)


def _sync_conflict(source: Entry, destination: Entry, rules: Rules) -> Plan:
    policy = rules.conflict_resolution
    source_newer = (source.mtime or 0) >= (destination.mtime or 0)
    if policy == "failure":
        return Plan(Action.FLAG, CONFLICT, conflict=True)
    if policy == "copy":
        # the older one is renamed to a conflict copy where it is, then both are exchanged
        return Plan(Action.CONFLICT, f"{CONFLICT}; the newer keeps the name, the older is "
                                     "kept beside it as a conflict copy",
                    to_source=not source_newer, conflict=True)
    source_wins = {"source": True, "destination": False, "latest": source_newer}[policy]
    winner = "the source" if source_wins else "the destination"
    why = f"{CONFLICT}; {winner} {'is newer' if policy == 'latest' else 'wins'}"
    if source_wins:
        return _sized(Plan(Action.UPDATE, why, conflict=True), source, rules)
    return _sized(Plan(Action.UPDATE, why, to_source=True, conflict=True), destination, rules)


@dataclass(frozen=True, slots=True)
class TransferKind:
    """A transfer type: its planner, and the two things the runner must know of it."""

    plan: Callable[[Pair, ItemRecord | None, Rules], Plan]
    walks_destination: bool = False  # items only at the destination are planned too
    # when it may delete: "never", "recorded" (what a side lost since the last run, so only
    # with records, and unless delete_propagation ignores both sides) or "always"
    deletes: str = "never"
    renames_duplicates: bool = True  # False: duplicate_names is "warn" whatever the job says


KINDS = {
    "copy": TransferKind(plan_copy),
    "sync": TransferKind(plan_sync, walks_destination=True, deletes="recorded"),
    # it removes sources it delivered (not a delete to guard); DryvIQ: move jobs always warn
    # and skip duplicate names
    "move": TransferKind(plan_move, renames_duplicates=False),
    "migrate": TransferKind(plan_migrate),
    "publish": TransferKind(plan_publish, walks_destination=True, deletes="always"),
    "taxonomy": TransferKind(plan_taxonomy),
}
