"""One execution of a job, start to finish: lock, march, plan, execute, record, report.

The march walks the source one folder at a time (depth first, an explicit stack), pairs each
folder with its destination counterpart, plans every pair and hands file writes to the
executor; folders are created inline so their children always have a parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.connections import overlap
from core.connectors import Opening, open_connector
from core.connectors.base import (
    ENGINE_FOLDERS,
    LEFTOVER_PART,
    AuthExpired,
    BudgetSpent,
    Connector,
    ConnectorError,
    Entry,
    Fatal,
    NotFound,
    Vanished,
)
from core.control import RunControl
from core.engine.executor import VANISHED, DeleteTask, Executor, FileTask, MoveTask
from core.engine.march import NamePolicy, Pair, pair_folder
from core.engine.planner import KINDS, SENT, Action, Plan, Rules, unchanged_since
from core.engine.stats import ExecutionStats, Throughput
from core.engine.throttle import JobThrottles
from core.home import Home
from core.item_actions import is_ignored
from core.jobs import Job, Transfer, parse_job
from core.leases import holding
from core.logs import logged_events
from core.paths import fit_name, join, match_key, valid_utf8
from core.schedule import apply_stop_policy
from core.state import Forgotten, ItemLog, ItemRecord, JobRecord, State

EXIT_CODES = {"completed": 0, "no_changes": 0, "warn": 4, "failed": 1, "paused": 3,
              "interrupted": 3, "guarded": 1}
PROGRESS_INTERVAL = 0.5  # seconds between progress callbacks
HEARTBEAT_INTERVAL = 1.0  # seconds between stats written to the state DB
LOOKAHEAD = 8  # folders listed ahead of the one being planned, where listing is slow
SLOW_LISTING = 0.02  # seconds: a folder listed faster gains nothing from listing ahead;
# its thread hops at once only fight over Python's GIL (measured: 20% slower on a disk)
log = logging.getLogger(__name__)  # helper `state`: the log file records every event


@dataclass
class RunResult:
    execution_id: int
    status: str
    stats: ExecutionStats
    error: str | None = None
    stopped_by: str | None = None  # "pause" or "cancel": a request (core.control) stopped it

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict[str, object]:
        return {"id": self.execution_id, "status": self.status, "error": self.error,
                "stats": self.stats.as_dict()}


Progress = Callable[[ExecutionStats, Throughput], None]
EventSink = Callable[[str, str], None]  # (kind, message): kind is info, flagged, failed


_Listing = tuple[list[Entry], list[Entry], dict[str, ItemRecord]]


@dataclass
class _Folder:
    source_path: str  # relative to the source connection's root
    destination_path: str  # relative to the destination connection's root
    destination_exists: bool
    # destination folders still to create before the first write below them
    # (empty_containers "skip": a folder that stays empty is never created)
    missing: tuple[str, ...] = ()
    listing: asyncio.Task[_Listing | ConnectorError] | None = None  # started ahead of a visit
    source_exists: bool = True
    missing_source: tuple[str, ...] = ()  # the same at the source, for a sync writing back


async def _no_entries() -> list[Entry]:
    return []  # a folder this run creates has nothing in it yet


def _content(entries: list[Entry]) -> list[Entry]:
    """A listing without the engine's own folders (trash, preserved versions)."""
    return [e for e in entries if not (e.is_dir and e.name in ENGINE_FOLDERS)]


@dataclass(slots=True)
class _MakeFolder:
    path: str
    to_source: bool


_Change = FileTask | DeleteTask | MoveTask | _MakeFolder


class _Run:
    """The state of one execution while it runs."""

    def __init__(self, state: State, record: JobRecord, transfer: Transfer, execution_id: int,
                 executor: Executor) -> None:
        self.state = state
        self.record = record
        self.transfer = transfer
        self.execution_id = execution_id
        self.executor = executor
        # the executor carries the run's connectors, item log, counters and stop signal
        self.source, self.destination = executor.source, executor.destination
        self.items, self.stats = executor.items, executor.stats
        self.stop, self.on_event = executor.stop, executor.on_event
        source, destination = self.source, self.destination
        precisions = (source.features.mtime_precision, destination.features.mtime_precision)
        self.kind = KINDS[transfer.transfer_type]
        self.planner = self.kind.plan
        self.rules = Rules(
            conflict_resolution=transfer.conflict_resolution,
            source_filters=transfer.source_filters,
            destination_filters=transfer.destination_filters,
            mtime_precision=None if None in precisions else max(precisions),  # type: ignore[type-var]
            destination_sets_mtime=destination.features.can_set_mtime,
            source_sets_mtime=source.features.can_set_mtime,
            propagation=transfer.propagation,
            max_to_destination=destination.features.max_file_size,
            max_to_source=source.features.max_file_size,
            skip_large=transfer.large_item == "skip")
        case_insensitive = source.features.case_insensitive or (
            destination.features.case_insensitive)
        self.names = NamePolicy(
            destination.features.path_rules, case_insensitive,
            transform=transfer.segment_transform, encode=transfer.encode_invalid_characters,
            truncate=transfer.segment_truncate,
            rename_duplicates=transfer.duplicate_names == "rename"
            and self.kind.renames_duplicates)
        self.source_rules = source.features.path_rules  # for names a sync sends back
        self.skip_empty = transfer.empty_containers == "skip"
        self.slow_listings = True  # until a listing shows otherwise
        # Changes held until the march is over, where the job may delete (see `hold`): the
        # delete guard sees every planned delete before anything changes. None: made at once.
        self.held: list[_Change] | None = None
        self.planned_deletes = {False: 0, True: 0}  # files to delete, by side (True: source)
        self.listed_files = {False: 0, True: 0}  # files each side has
        self.removals: list[DeleteTask] = []  # folders to delete if left empty, deepest last
        # the records of folders planned but not made yet, by (side is source, path)
        self.folder_records: dict[tuple[bool, str], ItemRecord] = {}
        executor.decide_again = self._decide_again

    def _decide_again(self, task: FileTask, found: Entry) -> Plan:
        """The plan for a file whose destination turned up after its folder was listed."""
        return self.planner(Pair(task.entry, found, found.name), task.record, self.rules)

    def _relative(self, source_path: str) -> str:
        """An item's key: its path below the job's source folder, as valid UTF-8."""
        root = self.transfer.source.path
        return valid_utf8(source_path[len(root) + 1:] if root else source_path)

    def _record(self, source_path: str, entry: Entry, plan: Plan, **fields: object) -> ItemRecord:
        relative = self._relative(source_path)
        return ItemRecord(
            job_id=self.record.id, path=relative, parent=relative.rpartition("/")[0],
            is_dir=entry.is_dir, size=entry.size, mtime=entry.mtime, action=_action(plan),
            status="pending", source_id=entry.native_id, execution_id=self.execution_id,
            source_version=entry.version, **fields)  # type: ignore[arg-type]

    async def hold(self) -> None:
        """Hold this run's changes for the delete guard where it may delete: a publish, or a
        sync that propagates deletes and has records (without them nothing reads as deleted,
        so a first sync of a million files does not hold a million changes in memory)."""
        deletes = self.kind.deletes == "always" or (
            self.kind.deletes == "recorded" and "ignore_both" not in self.rules.propagation
            and await self.state.has_items(self.record.id))
        self.held = [] if deletes else None

    async def _change(self, change: _Change) -> None:
        """Make a change now, or hold it for after the delete guard's check."""
        if self.held is not None:
            self.held.append(change)
        elif isinstance(change, FileTask):
            await self.executor.submit(change)
        elif isinstance(change, DeleteTask):
            await self.executor.delete(change)
        elif isinstance(change, MoveTask):
            await self.executor.move_now(change)
        else:
            await self._make_folder(change.path, change.to_source)

    async def destination_root(self) -> _Folder:
        """Check the source folder exists and find (or plan) the destination folder."""
        source_root = self.transfer.source.path
        try:
            entry = await self.source.stat(source_root)
        except NotFound:
            raise ConnectorError(f"the source folder /{source_root} does not exist") from None
        if not entry.is_dir:
            raise ConnectorError(f"the source /{source_root} is a file, not a folder")
        path, missing = "", []
        for segment in filter(None, self.transfer.destination.path.split("/")):
            path = join(path, segment)
            if missing:
                missing.append(path)
                continue
            try:
                found = await self.destination.stat(path)
            except NotFound:
                missing.append(path)
                continue
            if not found.is_dir:
                raise ConnectorError(f"the destination /{path} is a file, not a folder")
        return _Folder(source_root, path, not missing, tuple(missing))

    async def _ensure(self, folder: _Folder, *, to_source: bool = False) -> bool:
        """Create the folder's missing ancestors on the side written; False if that failed."""
        missing = folder.missing_source if to_source else folder.missing
        for path in missing:
            if self.held is not None:
                self.held.append(_MakeFolder(path, to_source))
            elif not await self._make_folder(path, to_source):
                return False
        made = bool(missing) and self.held is None and not self.transfer.simulation_mode
        if to_source:
            folder.missing_source = ()
            folder.source_exists = folder.source_exists or made
        else:
            folder.missing = ()
            # another job may have made it first, with content: list it like any other
            folder.destination_exists = folder.destination_exists or made
        return True

    async def _make_folder(self, path: str, to_source: bool) -> bool:
        try:
            await self.executor.make_folder(path, to_source=to_source)
        except (Fatal, AuthExpired, BudgetSpent):
            raise
        except ConnectorError as exc:
            self.stats.failed += 1
            side = "source" if to_source else "destination"
            self.on_event("failed", f"cannot create {side} folder /{path}: {exc}")
            return False
        made = self.folder_records.pop((to_source, path), None)
        if made is not None:
            self.items.record(made)
        return True

    async def march(self, root: _Folder) -> None:
        """Walk the tree depth first. Where listing is slow, the next LOOKAHEAD folders are
        listed while one is planned (as rclone's checkers do), so latency overlaps; memory
        stays bounded by LOOKAHEAD folders per level of depth, never by the tree."""
        if not self.skip_empty and not await self._ensure(root):
            return
        stack = [root]
        try:
            while stack and not (self.stop.is_set() or self.executor.halted):
                folder = stack.pop()
                window = LOOKAHEAD if self.slow_listings else 0
                for upcoming in (folder, *stack[max(0, len(stack) - window):]):
                    if upcoming.listing is None:
                        upcoming.listing = asyncio.create_task(self._list(upcoming))
                assert folder.listing is not None
                children = await self._visit(folder, await folder.listing)
                stack.extend(reversed(children))
        finally:
            for left in stack:
                if left.listing is not None:
                    left.listing.cancel()
        self.stats.listing_done = not stack

    async def _list(self, folder: _Folder) -> _Listing | ConnectorError:
        """Both sides' listings of one folder and the items recorded under it, at once."""
        started = time.monotonic()
        try:
            # the state query first: it goes to SQLite's thread while the listings run (where
            # they are quick, they run right here and never yield until done)
            records, sources, destinations = await asyncio.gather(
                self.state.item_records(self.record.id, self._relative(folder.source_path)),
                self._list_source(folder.source_path) if folder.source_exists
                else _no_entries(),
                self.destination.list_dir(folder.destination_path)
                if folder.destination_exists else _no_entries())
        except ConnectorError as exc:
            return exc
        self.slow_listings = time.monotonic() - started > SLOW_LISTING
        return _content(sources), _content(destinations), records

    async def _list_source(self, path: str) -> list[Entry]:
        try:
            return await self.source.list_dir(path)
        except NotFound as exc:  # listed in its parent a moment ago
            raise Vanished(str(exc)) from exc

    def _pairs(self, folder: _Folder, sources: list[Entry], destinations: list[Entry],
               records: dict[str, ItemRecord]) -> list[tuple[Pair, str]]:
        """The folder's pairs, each with its item's source-side name. A destination item whose
        name the source refuses went there under a fitted name (a sync sent it back): the
        source item of that name is its pair, not an item only at the source."""
        chosen = {r.path.rpartition("/")[2]: r.destination_path.rpartition("/")[2]
                  for r in records.values() if r.destination_path}
        merged = list(pair_folder(sources, destinations, folder.destination_path, self.names,
                                  chosen))
        key = functools.partial(match_key, case_insensitive=self.names.case_insensitive)
        both = self.kind.walks_destination
        alone = {key(p.source.name): p for p in merged if both and p.source  # type: ignore[union-attr]
                 and p.destination is None and not p.refusal}
        pairs: list[tuple[Pair, str]] = []
        for pair in merged:
            if pair.source is not None:
                pairs.append((pair, pair.source.name))
                continue
            assert pair.destination is not None
            if pair.destination.skip_reason == LEFTOVER_PART or not both:
                pairs.append((pair, pair.name))
                continue
            fit = fit_name(pair.name, folder.source_path, self.source_rules,
                           transform=self.names.transform, encode=self.names.encode,
                           truncate=self.names.truncate)
            pair.refusal = pair.refusal or fit.refusal
            mate = alone.pop(key(fit.name), None) if fit.name != pair.name else None
            if mate is not None and mate.source.is_dir == pair.destination.is_dir:  # type: ignore[union-attr]
                mate.destination, mate.name = pair.destination, pair.name
            else:
                pairs.append((pair, fit.name))
        return pairs

    async def _visit(self, folder: _Folder, listing: _Listing | ConnectorError,
                     ) -> list[_Folder]:
        """Plan one folder's pairs, make (or hold) its changes, and return its subfolders."""
        if isinstance(listing, Fatal | AuthExpired | BudgetSpent):
            raise listing
        if isinstance(listing, Vanished):
            self.stats.skipped += 1
            self.on_event("info", f"/{folder.source_path}: skipped, {VANISHED}")
            return []
        if isinstance(listing, ConnectorError):
            # a copy skips a folder it cannot read, with its subtree, and goes on
            self.stats.failed += 1
            self.on_event("failed", f"/{folder.source_path}: cannot list: {listing}")
            return []
        sources, destinations, records = listing
        self.listed_files[True] += sum(not e.is_dir for e in sources)
        self.listed_files[False] += sum(not e.is_dir for e in destinations)
        children: list[_Folder] = []
        renamed = self._renamed_records(folder, sources, records)
        for pair, source_name in self._pairs(folder, sources, destinations, records):
            if self.stop.is_set() or self.executor.halted:
                return children
            source_path = join(folder.source_path, source_name)
            if pair.source is None:
                assert pair.destination is not None
                if pair.destination.skip_reason == LEFTOVER_PART:
                    await self.executor.remove_leftover(
                        join(folder.destination_path, pair.name), pair.destination)
                    continue
                if not self.kind.walks_destination:
                    continue
            relative = self._relative(source_path)
            record = records.pop(relative, None) or records.pop(
                renamed.get(match_key(relative, True), ""), None)
            if is_ignored(record) and pair.source is not None:
                self.stats.skipped += 1  # a person chose to ignore it: left as it is
                continue
            plan = self.planner(pair, record, self.rules)
            await self._carry_out(folder, pair, source_path, record, plan, children)
        for record in records.values():  # recorded, and now on neither side
            if self.planner(Pair(None, None, ""), record, self.rules).action is Action.FORGET:
                self.items.record(Forgotten(record.job_id, record.path))
        return children

    def _renamed_records(self, folder: _Folder, sources: list[Entry],
                         records: dict[str, ItemRecord]) -> dict[str, str]:
        """Where names ignore case, a source item renamed only in case (Plan.pdf, now
        plan.pdf) is still the item recorded: the records no source item has by its exact
        name, by their case-folded path."""
        if not self.names.case_insensitive:
            return {}
        listed = {self._relative(join(folder.source_path, e.name)) for e in sources}
        return {match_key(path, True): path for path in records if path not in listed}

    async def _carry_out(self, folder: _Folder, pair: Pair, source_path: str,
                         record: ItemRecord | None, plan: Plan,
                         children: list[_Folder]) -> None:
        """Count one pair, and make, hold or record what its plan says."""
        entry = pair.source or pair.destination
        assert entry is not None
        action = plan.action
        if action is Action.OMIT:
            return
        if entry.is_dir:
            self.stats.folders += 1
        else:
            self.stats.files += 1
        self.stats.conflicts += plan.conflict
        destination_path = join(folder.destination_path, pair.name)
        sent = record is not None and record.status in SENT
        if action is Action.SKIP and sent:
            assert record is not None
            self._leave(record, plan, pair.note)
        elif action in (Action.SKIP, Action.FLAG):
            self._settle(source_path, entry, plan, record, pair.note)
        elif entry.is_dir:
            child = await self._folder(folder, source_path, destination_path, pair, plan,
                                       record)
            if child:
                children.append(child)
        elif action is Action.NONE:
            self.stats.skipped += 1
            if pair.source is not None and pair.destination is not None:
                self._in_step(source_path, pair, plan, record, destination_path)
        elif action is Action.DELETE:
            self.planned_deletes[plan.to_source] += 1
            path = source_path if plan.to_source else destination_path
            await self._change(DeleteTask(path, entry, self._deleted(record, plan),
                                          plan.to_source))
        else:
            await self._write(folder, pair, source_path, destination_path, record, plan)

    async def _write(self, folder: _Folder, pair: Pair, source_path: str,
                     destination_path: str, record: ItemRecord | None, plan: Plan) -> None:
        if not await self._ensure(folder, to_source=plan.to_source):
            return
        if plan.to_source:
            assert pair.destination is not None
            task = FileTask(destination_path, pair.destination, source_path, pair.source,
                            plan.action, record, to_source=True)  # type: ignore[arg-type]
        else:
            assert pair.source is not None
            task = FileTask(source_path, pair.source, destination_path, pair.destination,
                            plan.action, record, move=plan.move)  # type: ignore[arg-type]
        task.record = self._pending(task, pair, plan, record)
        await self._change(task)

    def _deleted(self, record: ItemRecord | None, plan: Plan) -> ItemRecord | None:
        """The record an item keeps once deleted: listed by `jobs items` until a later run
        finds it gone from both sides and drops it."""
        if record is None:
            return None
        where = "source" if plan.to_source else "destination"
        kept = ", recoverable from its trash" if self.transfer.trash else ""
        return replace(record, action=_action(plan), status="success", last_error=None,
                       note="; ".join(filter(None, [plan.reason,
                                                    f"deleted at the {where}{kept}"])),
                       execution_id=self.execution_id)

    def _pending(self, task: FileTask, pair: Pair, plan: Plan,
                 record: ItemRecord | None) -> ItemRecord:
        """The record of a write about to be made. Over an item both sides had, it keeps
        what both held then (the base a later run compares with, if this one stops short)
        and the version it replaces, so the next run can tell whether the write landed."""
        note = pair.note or plan.reason
        if record is not None and plan.action is not Action.CREATE:
            return replace(record, action=_action(plan), status="pending", note=note,
                           execution_id=self.execution_id, updated_at=time.time())
        source = pair.source or task.entry
        replaced = pair.destination.version if pair.destination else None
        # versions an earlier run carried of this same source file (not of one deleted and
        # made again under its name)
        carried = record.source_versions if (
            record is not None and record.source_id == source.native_id) else 0
        return self._record(task.to_path if task.to_source else task.from_path, source, plan,
                            note=note, attempts=record.attempts if record else 0,
                            destination_version=replaced, source_versions=carried)

    def _in_step(self, source_path: str, pair: Pair, plan: Plan, record: ItemRecord | None,
                 destination_path: str) -> None:
        """Record a file found in step on both sides, where the record says otherwise: what
        is there now is what a later run compares with. A record with nothing else to change
        keeps its note (why the file was adopted, say) when the plan gives no reason."""
        source, found = pair.source, pair.destination
        assert source is not None and found is not None
        note = "; ".join(filter(None, [pair.note, plan.reason])) or None
        if (record is not None and record.status in SENT and note in (None, record.note)
                and (record.size, record.mtime, record.source_version,
                     record.destination_version) == (source.size, source.mtime, source.version,
                                                     found.version)
                and record.destination_mtime in (None, found.mtime)):
            return
        item = self._record(source_path, source, plan, note=note,
                            destination_path=destination_path,
                            destination_id=found.native_id, destination_version=found.version,
                            destination_mtime=found.mtime)
        item.status = "processed" if note else "success"
        self.items.record(item)

    async def _folder(self, parent: _Folder, source_path: str, destination_path: str,
                      pair: Pair, plan: Plan, record: ItemRecord | None) -> _Folder | None:
        """The folder to walk next for a folder pair, created where its plan says."""
        source, destination = pair.source, pair.destination
        entry = source or destination
        assert entry is not None
        child = _Folder(source_path, destination_path, destination is not None,
                        source_exists=source is not None)
        if destination is None:
            child.missing = (*parent.missing, destination_path)
        if source is None:
            child.missing_source = (*parent.missing_source, source_path)
        if plan.action is Action.DELETE or (plan.move and source is not None):
            side = plan.to_source or plan.move
            self.removals.append(DeleteTask(source_path if side else destination_path, entry,
                                            self._deleted(record, plan), side))
        if plan.action is not Action.MKDIR:
            if record is None and source is not None and destination is not None:
                self._settle(source_path, entry, plan, None, pair.note)
            return child
        # recorded once made: now, or with its first file (empty_containers "skip"), or
        # when the held changes are made
        note = "; ".join(filter(None, [pair.note, plan.reason])) or None
        item = self._record(source_path, entry, plan, note=note,
                            destination_path=destination_path)
        item.status = ("pending" if self.transfer.simulation_mode
                       else "processed" if note else "success")
        self.folder_records[plan.to_source, source_path if plan.to_source
                            else destination_path] = item
        if not self.skip_empty and not await self._ensure(child, to_source=plan.to_source):
            return None
        return child

    def _leave(self, sent: ItemRecord, plan: Plan, note: str | None) -> None:
        """Count a file left as it is at the destination although this job sent it before.
        The record of what it sent stays, so later runs still judge both sides against it
        (a new record would read as never sent, and the next run would overwrite); only its
        note says why the file was left."""
        self.stats.skipped += 1
        reason = "; ".join(filter(None, [note, plan.reason]))
        if sent.note != reason:
            self.items.record(replace(sent, note=reason, execution_id=self.execution_id,
                                      updated_at=time.time()))

    def _settle(self, source_path: str, source: Entry, plan: Plan, known: ItemRecord | None,
                note: str | None, status: str | None = None, **found: object) -> None:
        """Count and record an item decided without a transfer (unless nothing changed);
        `found`: the record's fields about the file already at the destination."""
        status = status or {Action.SKIP: "skipped", Action.FLAG: "remediation"}.get(
            plan.action, "processed" if note or plan.reason else "success")
        if plan.action is Action.SKIP:
            self.stats.skipped += 1
        elif plan.action is Action.FLAG:
            self.stats.flagged += 1
            self.on_event("flagged", f"/{self._relative(source_path)}: {plan.reason}")
        reason = "; ".join(filter(None, [note, plan.reason])) or None
        if known is not None and (known.status, known.note) == (status, reason):
            return
        item = self._record(source_path, source, plan, note=reason, **found)
        item.status = status
        self.items.record(item)

    def guard(self, force: bool) -> str | None:
        """Why the held changes must not be made: more of a side to delete than max_delete
        allows, or a side found empty that had files (an unmounted share, a wrong folder)."""
        if force or self.held is None:
            return None
        limit = self.transfer.max_delete
        for to_source, side in ((False, "destination"), (True, "source")):
            deletes, listed = self.planned_deletes[to_source], self.listed_files[to_source]
            if not deletes:
                continue
            other = self.listed_files[not to_source]
            if other == 0:
                return (f"the {'destination' if to_source else 'source'} is empty, and "
                        f"{deletes:,} of {listed:,} files would be deleted from the {side}")
            if deletes * 100 > limit * listed:
                return (f"{deletes:,} of {listed:,} files at the {side} would be "
                        f"deleted ({deletes * 100 // max(listed, 1)}%), more than max_delete "
                        f"{limit}% allows")
        return None

    def pair_moves(self) -> None:
        """Find files moved or renamed on one side, unchanged: their planned delete (at the
        old place on the other side) and create (at the new place) become one move there,
        which costs Procore one call instead of an upload, and keeps the file's versions. A
        file is known again by its native id (an inode on a disk, Procore's file id)."""
        if not self.held:
            return
        deletes: dict[tuple[bool, str], int] = {}
        paired: set[int] = set()  # the deletes that became moves
        for i, change in enumerate(self.held):
            if (isinstance(change, DeleteTask) and not change.entry.is_dir
                    and change.record is not None):
                # deleted at the destination: the source lost the file (and the other way)
                known = (change.record.destination_id if change.to_source
                         else change.record.source_id)
                if known:
                    deletes.setdefault((change.to_source, known), i)
        for i, change in enumerate(self.held):
            if not (isinstance(change, FileTask) and change.action is Action.CREATE
                    and change.entry.native_id):
                continue
            j = deletes.get((change.to_source, change.entry.native_id))
            if j is None:
                continue
            delete = self.held[j]
            assert isinstance(delete, DeleteTask) and delete.record is not None
            if not unchanged_since(change.entry, delete.record, self.rules,
                                   at_source=not change.to_source):
                continue
            del deletes[(change.to_source, change.entry.native_id)]
            self.held[i] = MoveTask(delete.path, delete.entry, change.to_path, delete.record,
                                    change.record, change.entry, change.from_path,
                                    change.to_source)
            paired.add(j)
            self.planned_deletes[change.to_source] -= 1
        self.held = [c for n, c in enumerate(self.held) if n not in paired]

    async def make_held_changes(self) -> None:
        changes, self.held = self.held or [], None
        for change in changes:
            if self.stop.is_set() or self.executor.halted:
                return
            await self._change(change)

    async def remove_emptied_folders(self) -> None:
        """Folders deleted on the other side (or moved out of): each goes once nothing is
        left in it, deepest first; one with something kept in it stays."""
        for task in reversed(self.removals):
            if self.stop.is_set() or self.executor.halted:
                return
            side = self.source if task.to_source else self.destination
            try:
                if await side.list_dir(task.path):
                    continue
            except NotFound:
                continue
            except ConnectorError as exc:
                self.on_event("failed", f"/{task.path}: cannot list: {exc}")
                continue
            await self.executor.delete_now(task)


def _action(plan: Plan) -> str:
    """An item record's action: a change made at the source says so."""
    return f"{plan.action}_source" if plan.to_source else str(plan.action)


def final_status(stats: ExecutionStats, *, stopped: bool, halted: bool,
                 simulate: bool) -> str:
    if halted:
        return "failed"
    if stopped:
        return "interrupted"
    if stats.flagged or stats.failed:
        return "warn"
    if simulate:
        return "completed" if stats.planned_files or stats.folders_created else "no_changes"
    return "completed" if stats.changed else "no_changes"


async def run_job(
    state: State, home: Home, record: JobRecord, *, parallel: int | None = None,
    stop: asyncio.Event | None = None, on_progress: Progress | None = None,
    on_event: EventSink | None = None, wait_for_budget: bool = True, force: bool = False,
    scheduled_by: str | None = None, requested: bool = False, kind: str = "jobs run",
) -> RunResult:
    """Run one execution of `record`, resuming from what earlier executions recorded. When an
    API budget runs out it waits for the reset, or with `wait_for_budget` off stops as paused.
    `scheduled_by`: the scheduler (`host:pid`) starting it, by the job's schedule or, with
    `requested`, because a person asked it to start. Pause and cancel requests for the job
    (core.control) are obeyed while it runs; a cancelled run still returns its result. The
    run holds the job's lease (core.leases; `kind` says who runs it): one that loses it
    stops at once, interrupted and resumable.
    Raises JobBusy (from core.home), naming the holder, if the job runs elsewhere."""
    job = parse_job(record.definition)
    stop = stop or asyncio.Event()
    emit = logged_events(on_event, log)
    since = time.time()  # requests made before the lock is taken were for an earlier run
    lost: list[str] = []  # why the lease was lost, if it was
    work: asyncio.Task[tuple[str, str | None, float | None]] | None = None

    def lose(why: str) -> None:
        """Another process has the job now (or may have): stop at once, files in flight
        rolled back, as two runs of one job must never write side by side."""
        lost.append(why)
        emit("warning", why)
        stop.set()
        if work is not None:
            work.cancel()

    async with holding(state, home, record.id, kind=kind, on_lost=lose):
        emit("info", f"running job {record.name} ({record.transfer_type}"
                     f"{', simulation' if record.simulation_mode else ''})")
        interrupted = await state.mark_interrupted(record.id)
        if interrupted:
            emit("info", "the previous execution was interrupted; continuing where it stopped")
        execution = await state.start_execution(record.id, agent=scheduled_by,
                                                 scheduled=not requested)
        stats = ExecutionStats()
        await state.audit("info", "execution started", job_id=record.id,
                          execution_id=execution.id)
        async def notify(kind: str, message: str) -> None:
            emit(kind, message)
            await state.audit("warn" if kind == "warning" else "info", f"connector {kind}",
                              message, job_id=record.id, execution_id=execution.id)

        opening = Opening(state, home, wait_for_budget=wait_for_budget, stop=stop,
                          notify=notify)
        work = asyncio.create_task(_execute(
            state, opening, record, job, execution.id, stats, parallel, stop, on_progress,
            emit, force))
        control = RunControl(state, record.id, since, stop, emit)
        watch = asyncio.create_task(control.watch(work))
        try:
            status, error, resume_at = await work
        except asyncio.CancelledError:
            if _cancelling() or not (lost or control.obeyed == "cancel"):
                await _left_interrupted(state, execution.id, stats)
                raise
            status, error, resume_at = ("interrupted", "cancelled on request: the files in "
                                        "flight were rolled back", None)
        except BaseException:
            await _left_interrupted(state, execution.id, stats)
            raise
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        if lost and status == "interrupted":
            error = lost[0]
        await state.update_execution(execution.id, status=status, phase="complete",
                                     ended_at=time.time(), stats=stats.as_dict(), error=error,
                                     resume_at=resume_at)
        await state.audit("error" if error else "info", f"execution {status}", error or "",
                          job_id=record.id, execution_id=execution.id)
        if completed := await apply_stop_policy(state, record):
            emit("info", f"job complete: {completed}")
        log.info("job %s: execution %d %s: %s%s", record.name, execution.id, status,
                 stats.as_dict(), f" ({error})" if error else "")
        return RunResult(execution.id, status, stats, error, stopped_by=control.obeyed)


def _cancelling() -> bool:
    """Whether this task itself was cancelled (a second Ctrl-C, the app's cancel)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _left_interrupted(state: State, execution_id: int, stats: ExecutionStats) -> None:
    """Cancelled (a second Ctrl-C) or crashed: leave the execution resumable and say so."""
    with contextlib.suppress(Exception):
        await asyncio.shield(state.update_execution(
            execution_id, status="interrupted", phase="complete", ended_at=time.time(),
            stats=stats.as_dict(), error="stopped before finishing"))


async def _execute(
    state: State, opening: Opening, record: JobRecord, job: Job, execution_id: int,
    stats: ExecutionStats, parallel: int | None, stop: asyncio.Event,
    on_progress: Progress | None, emit: EventSink, force: bool,
) -> tuple[str, str | None, float | None]:
    """March and execute; returns the final status, the error that failed or paused the run,
    and when a paused run can continue."""
    connections = []
    for connection_id in (record.source_connection_id, record.destination_connection_id):
        connection = await state.find_connection(connection_id)
        if connection is None:
            return "failed", f"connection {connection_id} no longer exists", None
        connections.append((connection, await state.connection_secrets(connection.id)))
    clash = overlap(connections[0][0], record.source_path, connections[1][0],
                    record.destination_path)
    if clash:
        return "failed", clash, None
    try:
        source = open_connector(*connections[0], opening)
    except ConnectorError as exc:
        return "failed", str(exc), None
    try:
        destination = open_connector(*connections[1], opening)
    except ConnectorError as exc:
        await source.close()
        return "failed", str(exc), None
    pair = (source, destination)
    try:
        for connector in pair:
            await connector.connect()  # features known before the executor reads them
    except ConnectorError as exc:
        for connector in pair:
            await connector.close()
        return "failed", str(exc), None
    throughput = Throughput()
    reporter = asyncio.create_task(_report(state, execution_id, stats, throughput, on_progress,
                                           pair))
    error = None
    halted = False
    paused: BudgetSpent | None = None
    try:
        async with ItemLog(state) as items:
            executor = Executor(
                source, destination, items=items, stats=stats,
                parallel=parallel or job.transfer.parallel_writes,
                simulate=job.transfer.simulation_mode,
                halt_on_failure=job.transfer.failure_policy == "halt", stop=stop,
                on_event=emit, trash=job.transfer.trash,
                carry_versions=job.transfer.versions == "all",
                throttles=JobThrottles.of(job.transfer.upload_bytes_per_second,
                                          job.transfer.download_bytes_per_second))
            run = _Run(state, record, job.transfer, execution_id, executor)
            try:
                await state.update_execution(execution_id, phase="executing")
                await _begin_walks(pair, record)
                await run.hold()
                await run.march(await run.destination_root())
                run.pair_moves()
                stats.delete_guard = run.guard(force) if stats.listing_done else None
                if stats.delete_guard is None:
                    await run.make_held_changes()
            except BudgetSpent as exc:
                paused, executor.halted = exc, True
            except ConnectorError as exc:  # the source or destination root, or a Fatal
                error = str(exc)
                executor.halted = True  # what is queued stays pending for the next run
            except BaseException:
                await executor.cancel()
                raise
            try:
                await executor.drain()
            except BaseException:  # cancelled while the queue was full: writers stop too
                await executor.cancel()
                raise
            if not (executor.halted or stop.is_set() or stats.delete_guard or error):
                await run.remove_emptied_folders()
            halted = executor.halted
            paused = paused or executor.paused
            if executor.fatal and error is None:
                error = f"stopped: {executor.fatal}"
            elif halted and error is None and paused is None:
                error = "stopped at the first failure (failure_policy: halt)"
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        await source.close()
        await destination.close()
    _count_usage(stats, pair)
    if on_progress:
        throughput.sample(stats.bytes)
        on_progress(stats, throughput)
    if error:
        return "failed", error, None
    if paused:
        emit("info", f"paused: {paused}; run the job again after that to continue")
        return "paused", f"paused: {paused}", paused.until
    if stats.delete_guard:
        emit("warning", f"stopped by the delete guard before changing anything: "
                        f"{stats.delete_guard}; `jobs run --force` proceeds")
        return "guarded", f"delete guard: {stats.delete_guard}", None
    return final_status(stats, stopped=stop.is_set(), halted=halted,
                        simulate=job.transfer.simulation_mode), None, None


async def _begin_walks(pair: tuple[Connector, Connector], record: JobRecord) -> None:
    """Tell connectors with a cheaper whole-tree listing (Procore's documents index) that
    the march is about to walk their tree."""
    for connector, path in zip(pair, (record.source_path, record.destination_path),
                               strict=True):
        begin_walk = getattr(connector, "begin_walk", None)
        if begin_walk is not None:
            await begin_walk(path)


def _count_usage(stats: ExecutionStats, pair: tuple[Connector, Connector]) -> None:
    """API calls and rate-limit waits of connectors that count them (one client may serve
    both sides of a job)."""
    usages = {id(u): u for u in (getattr(c, "usage", None) for c in pair) if u is not None}
    stats.api_calls = sum(u.api_calls for u in usages.values())
    stats.rate_limited = sum(u.rate_limited for u in usages.values())
    stats.rate_limit_waits = sum(u.rate_limit_waits for u in usages.values())
    stats.rate_limit_wait_seconds = round(
        sum(u.rate_limit_wait_seconds for u in usages.values()), 3)
    stats.waiting_until = max((u.waiting_until for u in usages.values() if u.waiting_until),
                              default=None)


async def _report(state: State, execution_id: int, stats: ExecutionStats,
                  throughput: Throughput, on_progress: Progress | None,
                  pair: tuple[Connector, Connector]) -> None:
    """Progress callbacks twice a second; stats and heartbeat to the state DB every second."""
    last_write = 0.0
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL)
        _count_usage(stats, pair)
        throughput.sample(stats.bytes)
        if on_progress:
            on_progress(stats, throughput)
        now = time.monotonic()
        if now - last_write >= HEARTBEAT_INTERVAL:
            last_write = now
            await state.update_execution(execution_id, stats=stats.as_dict())
