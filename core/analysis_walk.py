"""The analysis walk: one pass over a folder tree (and, for `--against`, the other side's
tree beside it), listings only, as the march walks a job's two sides.

Each folder's listings are paired with the march's own `pair_folder`, under the destination's
rules and a job's default segment policies, so a name is flagged or renamed here exactly as a
copy would; the planner's pure functions then say what a first copy or sync would do with
each pair. Memory follows the folders listed ahead (LOOKAHEAD) and the tally's bounded
counters, never the tree.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from core.analysis_tally import Tally
from core.analyze import Bucket, FlaggedName
from core.connectors.base import (
    ENGINE_FOLDERS,
    AuthExpired,
    BudgetSpent,
    Connector,
    ConnectorError,
    Entry,
    Fatal,
    PathRules,
)
from core.engine.march import NamePolicy, Pair, pair_folder
from core.engine.planner import Action, Plan, Rules, plan_copy, plan_sync
from core.paths import fit_name, join, name_problems

LOOKAHEAD = 8  # folders listed while one is counted (latency overlaps on slow platforms)
SAMPLES = 10  # paths kept per comparison class
PROGRESS_INTERVAL = 0.25  # seconds between progress callbacks


@dataclass(frozen=True)
class WalkProgress:
    """How far an analysis has got, for a live line or a progress bar."""

    folders: int
    files: int
    bytes: int
    api_calls: int


@dataclass
class _Side:
    files: int = 0
    bytes: int = 0
    samples: list[str] = field(default_factory=list)

    def add(self, path: str, size: int) -> None:
        self.files += 1
        self.bytes += size
        if len(self.samples) < SAMPLES:
            self.samples.append(path)

    def bucket(self, label: str) -> Bucket:
        return Bucket(label, self.files, self.bytes)


@dataclass
class Comparing:
    """The two sides' files sorted into only here, only there, different and identical
    (identical: a first copy would leave the file as it is), and the first sync's actions."""

    only_here: _Side = field(default_factory=_Side)
    only_there: _Side = field(default_factory=_Side)
    different: _Side = field(default_factory=_Side)
    identical: _Side = field(default_factory=_Side)
    first_sync: Counter[str] = field(default_factory=Counter)


@dataclass
class CopyCost:
    """What a first copy of the walked tree would do: folders made and files written at the
    destination (with each file's size, for its upload's calls), files read at the source."""

    folders: int = 0
    files: int = 0
    bytes: int = 0
    sizes: Counter[int] = field(default_factory=Counter)  # files written, by size class

    def write(self, size: int, size_class: Callable[[int], int]) -> None:
        self.files += 1
        self.bytes += size
        self.sizes[size_class(size)] += 1


@dataclass
class _Folder:
    here: str | None  # its path on the analyzed connector; None where only the other side has it
    there: str | None  # its path on the other connector; None where it has none
    relative: str  # below the analyzed (or compared) folder, for reports
    destination: str  # where a copy would put it (its name fitted), for path-length rules
    blocked: bool = False  # a copy would not get here (a folder above it is flagged)
    listing: asyncio.Task[tuple[list[Entry], list[Entry]]] | None = None


def _content(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if not (e.is_dir and e.name in ENGINE_FOLDERS)]


def action_code(plan: Plan) -> str:
    """An action as an item record names it: a change made at the source ends in _source."""
    return f"{plan.action}_source" if plan.to_source else str(plan.action)


class Walk:
    """One analysis walk. `there` is the other side (`--against`) or None; `policy` holds the
    destination's rules; `size_class` groups written files by what their upload costs."""

    def __init__(self, here: Connector, there: Connector | None, *, tally: Tally,
                 policy: NamePolicy, copy_rules: Rules, sync_rules: Rules,
                 here_rules: PathRules, size_class: Callable[[int], int],
                 calls: Callable[[], int],
                 on_progress: Callable[[WalkProgress], None] | None = None) -> None:
        self.here, self.there = here, there
        self.tally = tally
        self.policy = policy
        self.copy_rules, self.sync_rules = copy_rules, sync_rules
        self.here_rules = here_rules
        self.size_class = size_class
        self.calls = calls
        self.on_progress = on_progress
        self.comparing = Comparing() if there is not None else None
        self.copy = CopyCost()
        self._reported = 0.0

    async def run(self, here_root: str, there_root: str | None, destination_root: str) -> None:
        """Walk depth first from the roots, listing up to LOOKAHEAD folders ahead."""
        stack = [_Folder(here_root, there_root, "", destination_root)]
        try:
            while stack:
                folder = stack.pop()
                for upcoming in (folder, *stack[-LOOKAHEAD:]):
                    if upcoming.listing is None:
                        upcoming.listing = asyncio.create_task(self._list(upcoming))
                assert folder.listing is not None
                try:
                    sources, destinations = await folder.listing
                except (Fatal, AuthExpired, BudgetSpent):
                    raise
                except ConnectorError as exc:  # unreadable: counted, and the walk goes on
                    if not folder.relative:
                        raise
                    self.tally.unreadable(folder.relative, str(exc))
                    continue
                children = self._visit(folder, sources, destinations)
                stack.extend(reversed(children))
                self._progress(force=not stack)
        finally:
            for left in stack:
                if left.listing is not None:
                    left.listing.cancel()

    async def _list(self, folder: _Folder) -> tuple[list[Entry], list[Entry]]:
        async def nothing() -> list[Entry]:
            return []

        sources, destinations = await asyncio.gather(
            self.here.list_dir(folder.here) if folder.here is not None else nothing(),
            self.there.list_dir(folder.there)  # type: ignore[union-attr]
            if folder.there is not None else nothing())
        return _content(sources), _content(destinations)

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress is None or not (force or now - self._reported >= PROGRESS_INTERVAL):
            return
        self._reported = now
        self.on_progress(WalkProgress(self.tally.folders, self.tally.files, self.tally.bytes,
                                      self.calls()))

    def _visit(self, folder: _Folder, sources: list[Entry],
               destinations: list[Entry]) -> list[_Folder]:
        """Count one folder's items, and return its subfolders to walk."""
        if folder.here is not None and folder.relative and not sources:
            self.tally.empty_folder(folder.relative)
        children: list[_Folder] = []
        for pair in pair_folder(sources, destinations, folder.destination, self.policy):
            if pair.source is not None:
                self._count(folder, pair, pair.source)
            if self.comparing is not None:
                self._compare(folder, pair)
            child = self._child(folder, pair)
            if child is not None:
                children.append(child)
        return children

    def _count(self, folder: _Folder, pair: Pair, source: Entry) -> None:
        """The analyzed side's item: its tallies, its name against the destination's rules,
        and what a first copy would do with it."""
        path = join(folder.relative, source.name)
        if source.skip_reason:
            self.tally.skipped += 1
            return
        if source.is_dir:
            self.tally.folder(path)
        else:
            self.tally.file(path, source.name, source.size, source.mtime, source.hashes)
        if pair.refusal or pair.note:
            problems = [p for p in name_problems(source.name, self.policy.rules)
                        if not p.startswith("is longer")]
            problem = "; ".join(problems) if problems and not pair.refusal else (
                pair.refusal or pair.note or "")
            fix = None if pair.refusal else pair.name
            self.tally.flag(FlaggedName(path, problem, fix))
        if folder.blocked:
            return
        plan = plan_copy(pair, None, self.copy_rules)
        if plan.action is Action.MKDIR:
            self.copy.folders += 1
        elif plan.writes:
            self.copy.write(source.size, self.size_class)

    def _compare(self, folder: _Folder, pair: Pair) -> None:
        comparing = self.comparing
        assert comparing is not None
        source, destination = pair.source, pair.destination
        if (source and source.skip_reason) or (destination and destination.skip_reason):
            return
        here_file = source is not None and not source.is_dir
        there_file = destination is not None and not destination.is_dir
        if here_file and there_file:
            assert source is not None
            path = join(folder.relative, source.name)
            same = plan_copy(pair, None, self.copy_rules).action is Action.NONE
            (comparing.identical if same else comparing.different).add(path, source.size)
        else:
            if here_file:
                assert source is not None
                comparing.only_here.add(join(folder.relative, source.name), source.size)
            if there_file:
                assert destination is not None
                comparing.only_there.add(join(folder.relative, destination.name),
                                         destination.size)
        if source is None and destination is not None and folder.here is not None:
            # as the march of a sync: a name the analyzed side refuses is flagged there
            fit = fit_name(destination.name, folder.here, self.here_rules)
            pair.refusal = pair.refusal or fit.refusal
        comparing.first_sync[action_code(plan_sync(pair, None, self.sync_rules))] += 1

    def _child(self, folder: _Folder, pair: Pair) -> _Folder | None:
        """The subfolder a pair leads to, on whichever sides have it as a folder."""
        source, destination = pair.source, pair.destination
        here_dir = source is not None and source.is_dir and not source.skip_reason
        there_dir = (destination is not None and destination.is_dir
                     and not destination.skip_reason)
        if not (here_dir or there_dir):
            return None
        name = (source if here_dir else destination).name  # type: ignore[union-attr]
        return _Folder(
            join(folder.here, name) if here_dir and folder.here is not None else None,
            join(folder.there, destination.name)  # type: ignore[union-attr]
            if there_dir and folder.there is not None else None,
            join(folder.relative, name), join(folder.destination, pair.name),
            folder.blocked or bool(pair.refusal) or (here_dir and not there_dir
                                                      and destination is not None))
