"""Analyze before moving: one walk of a connection's folder (listings only, never a download)
that says what is there, what the destination would refuse, and what a job would cost.

The result is an `Analysis`, stored in the state DB as JSON so the app and the reports show it
again without spending API calls; a rerun replaces what is shown. The walk itself is
core/analysis_walk.py (listings paired as the march pairs them, the planner's decisions), its
counters core/analysis_tally.py (bounded: memory stays flat in the number of items).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from core.connectors.base import Connector, NotFound, PathRules

if TYPE_CHECKING:
    from core.analysis_tally import Limits, Tally
    from core.analysis_walk import Walk, WalkProgress
    from core.home import Home
    from core.state import Connection, State


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
    # the same from the moment of the analysis: the calls that fit in what is left now (less
    # the reserve kept for browsing), then a wait for the reset, then full windows
    hours_from_now: float | None = None
    basis: str = ""  # what is estimated: "a copy into an empty Procore project", ...
    listing_calls: int = 0  # of api_calls: listing both sides (as this analysis did)
    folder_calls: int = 0  # of api_calls: folders created at a Procore destination
    transfer_calls: int = 0  # of api_calls: per-file uploads to, downloads from Procore
    files: int = 0  # files the copy would write
    bytes: int = 0  # and their bytes
    reserve: float | None = None  # share of the hourly limit a job leaves for browsing


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
    """Everything one analysis found. Lists are bounded (the top N); totals are exact. Paths
    are relative to the analyzed folder (or the one compared with, for what only it has),
    '/'-joined, without a leading slash; a FlaggedName's `fix` is the item's new name."""

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
    skipped: int = 0  # listed but not content (a symlink leading out, a leftover part file)
    duplicate_groups: int = 0  # all groups of duplicate candidates (`duplicates`: the top)
    duplicate_bytes: int = 0  # bytes taken by every copy but one in each group
    unreadable_count: int = 0  # folders whose listing failed: nothing under them is counted
    unreadable_folders: tuple[str, ...] = ()  # "path: why", a sample
    against_platform: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analysis:
        """An Analysis from `as_dict()`'s output (after a JSON round trip); keys this version
        does not know are left out, so an older dryviq-tui reads a newer one's analyses."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("by_extension", "by_folder", "by_size", "by_age"):
            values[key] = tuple(_bucket(b) for b in values.get(key) or ())
        for key in ("largest", "deepest"):
            values[key] = tuple(PathSize(p["path"], p["value"]) for p in values.get(key) or ())
        values["duplicates"] = tuple(
            Duplicates(d["reason"], d["size"], tuple(d["paths"]))
            for d in values.get("duplicates") or ())
        values["flagged"] = tuple(FlaggedName(f["path"], f["problem"], f["fix"])
                                  for f in values.get("flagged") or ())
        for key in ("empty_folders", "unreadable_folders"):
            values[key] = tuple(values.get(key) or ())
        estimate = values.get("estimate") or {"api_calls": 0}
        values["estimate"] = Estimate(**{k: v for k, v in estimate.items()
                                         if k in {f.name for f in fields(Estimate)}})
        comparison = values.get("comparison")
        if comparison is not None:
            values["comparison"] = Comparison(
                *(_bucket(comparison[key]) for key in COMPARISON_KEYS),
                samples={k: tuple(v) for k, v in (comparison.get("samples") or {}).items()},
                first_sync=dict(comparison.get("first_sync") or {}))
        return cls(**values)


COMPARISON_KEYS = ("only_here", "only_there", "different", "identical")


def _bucket(data: dict[str, Any]) -> Bucket:
    return Bucket(data["label"], data["files"], data["bytes"])


# -- storage ------------------------------------------------------------------------------


async def save_analysis(state: State, analysis: Analysis, connection_id: str,
                        against_id: str | None = None) -> None:
    """Keep `analysis` as the one shown for its folder (and the folder compared with): a
    rerun replaces the earlier one."""
    key = (connection_id, analysis.path, against_id, analysis.against_path)
    await state.db.execute(
        "DELETE FROM analyses WHERE connection_id = ? AND path = ? AND "
        "against_connection_id IS NOT DISTINCT FROM ? AND against_path IS NOT DISTINCT FROM ?",
        key)
    await state.db.execute(
        "INSERT INTO analyses (connection_id, path, against_connection_id, against_path, "
        "started_at, finished_at, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (*key, analysis.started_at, analysis.finished_at, json.dumps(analysis.as_dict())))
    await state.db.commit()


async def latest_analysis(state: State, connection_id: str, path: str,
                          against_id: str | None = None,
                          against_path: str | None = None) -> Analysis | None:
    """The newest analysis of a connection's folder (compared with `against_id`'s folder, or
    with nothing), without an API call; None if it was never analyzed."""
    rows = await state.db.execute_fetchall(
        "SELECT result FROM analyses WHERE connection_id = ? AND path = ? AND "
        "against_connection_id IS NOT DISTINCT FROM ? AND "
        "against_path IS NOT DISTINCT FROM ? ORDER BY id DESC LIMIT 1",
        (connection_id, path, against_id, against_path if against_id else None))
    rows = list(rows)
    return Analysis.from_dict(json.loads(rows[0][0])) if rows else None


# -- the analysis -------------------------------------------------------------------------

# Whose rules names are checked against without --against (`rules=`): the platforms' own
RULES = ("procore", "smb", "local")
_CASE_INSENSITIVE = frozenset({"procore", "smb"})


@dataclass(frozen=True)
class _Budget:
    limit: int
    remaining: int | None
    reset_at: float | None
    reserve: float


async def analyze(
    state: State, home: Home, connection: Connection, path: str = "", *,
    against: Connection | None = None, against_path: str = "", rules: str | None = None,
    on_progress: Callable[[WalkProgress], None] | None = None, limits: Limits | None = None,
    save: bool = True,
) -> Analysis:
    """Walk `connection`'s folder at `path` once (listings only, never a download) and say
    what it holds. With `against`, walk that connection's folder beside it: names are checked
    against its rules and the two are compared. Without it, names are checked against
    `rules` (one of RULES), or Procore's where the analyzed side is not Procore. The result
    is saved as the one shown for this folder (`save`). Raises NotFound where a folder is
    missing, another ConnectorError where a platform cannot be reached or read."""
    from core.analysis_tally import Limits, Tally
    from core.connectors import Opening, open_connector

    started = time.time()
    opening = Opening(state, home)
    installation = home.config()
    here = open_connector(connection, await state.connection_secrets(connection.id), opening)
    there: Connector | None = None
    try:
        if against is not None:
            there = open_connector(against, await state.connection_secrets(against.id),
                                   opening)
        for connector, root in ((here, path), (there, against_path)):
            if connector is not None:
                await connector.connect()
                # as a job's march: a cheaper whole-tree listing first (Procore's documents
                # index), which also answers the checks of the roots below
                begin_walk = getattr(connector, "begin_walk", None)
                if begin_walk is not None:
                    await begin_walk(root)
        await _folder_root(here, path, connection.name)
        there_root, missing = (await _destination_root(there, against_path, against.name)
                               if there is not None and against is not None else (None, 0))
        destination = (against.platform if against is not None else rules
                       or ("procore" if connection.platform != "procore" else None))
        destination_rules = (there.features.path_rules if there is not None
                             else _rules(destination))
        tally = Tally(started, limits or Limits())
        try:
            walk = _walk(here, there, tally, destination_rules, installation,
                         destination in _CASE_INSENSITIVE, destination == "procore",
                         on_progress)
            await walk.run(path, there_root, against_path if there is not None else "")
            duplicates, groups, wasted = await asyncio.to_thread(tally.duplicates)
        finally:
            await asyncio.to_thread(tally.close)
        calls = _calls(here, there)
        budget = await _budget(state, installation, here, there)
    finally:
        for connector in filter(None, (here, there)):
            await connector.close()
    estimate = _estimate(walk, calls, missing, budget, here_procore=connection.platform
                         == "procore", destination=destination, against=against is not None,
                         now=started)
    comparing = walk.comparing
    analysis = Analysis(
        connection=connection.name, path=path, platform=connection.platform,
        started_at=started, finished_at=time.time(), api_calls=sum(calls),
        files=tally.files, folders=tally.folders, bytes=tally.bytes,
        by_extension=tally.by_extension(), by_folder=tally.by_folder(),
        by_size=tally.by_size(), by_age=tally.by_age(), largest=tally.largest(),
        deepest=tally.deepest(), empty_folders=tuple(tally.empty_folders),
        empty_folder_count=tally.empty_folder_count, duplicates=duplicates,
        flagged=tuple(tally.flagged), flagged_count=tally.flagged_count,
        destination_platform=destination, estimate=estimate,
        against=against.name if against is not None else None,
        against_path=against_path if against is not None else None,
        comparison=None if comparing is None else Comparison(
            *(getattr(comparing, key).bucket(key) for key in COMPARISON_KEYS),
            samples={key: tuple(getattr(comparing, key).samples) for key in COMPARISON_KEYS},
            first_sync=dict(sorted(comparing.first_sync.items()))),
        skipped=tally.skipped, duplicate_groups=groups, duplicate_bytes=wasted,
        unreadable_count=tally.unreadable_count,
        unreadable_folders=tuple(tally.unreadable_folders),
        against_platform=against.platform if against is not None else None)
    if save:
        await save_analysis(state, analysis, connection.id,
                            against.id if against is not None else None)
    return analysis


async def _folder_root(connector: Connector, path: str, name: str) -> None:
    """Check the analyzed folder is there and is a folder."""
    try:
        entry = await connector.stat(path)
    except NotFound:
        raise NotFound(f"{name}:/{path}: no such folder") from None
    if not entry.is_dir:
        raise NotFound(f"{name}:/{path} is a file, not a folder")


async def _destination_root(there: Connector, path: str,
                            name: str) -> tuple[str | None, int]:
    """The compared folder, or None where it is missing (a copy would create it), and how
    many folders a copy would create down to it."""
    segments = [s for s in path.split("/") if s]
    for depth in range(len(segments), -1, -1):
        try:
            entry = await there.stat("/".join(segments[:depth]))
        except NotFound:
            continue
        if not entry.is_dir:
            raise NotFound(f"{name}:/{'/'.join(segments[:depth])} is a file, not a folder")
        return (path if depth == len(segments) else None), len(segments) - depth
    return None, len(segments)


def _rules(platform: str | None) -> PathRules:
    """A platform's naming rules (PathRules() for None: nothing beyond '/' and NUL)."""
    if platform == "procore":
        from core.connectors.procore import PROCORE_RULES

        return PROCORE_RULES
    if platform == "smb":
        from core.connectors.smb import SMB_RULES

        return SMB_RULES
    if platform == "local":
        from core.connectors.local import LocalConnector

        return LocalConnector(".").features.path_rules
    return PathRules()


def _walk(here: Connector, there: Connector | None, tally: Tally, rules: PathRules,
          installation: dict[str, Any], ignores_case: bool, to_procore: bool,
          on_progress: Callable[[WalkProgress], None] | None) -> Walk:
    """The walk, with a job's default policies between the two sides."""
    from core.analysis_walk import Walk
    from core.engine.march import NamePolicy
    from core.engine.planner import Rules

    features = (here.features, there.features if there is not None else None)
    if features[1] is None:
        copy_rules = Rules()
        case_insensitive = here.features.case_insensitive or ignores_case
    else:
        precisions = (features[0].mtime_precision, features[1].mtime_precision)
        copy_rules = Rules(
            mtime_precision=None if None in precisions else max(precisions),  # type: ignore[type-var]
            destination_sets_mtime=features[1].can_set_mtime,
            source_sets_mtime=features[0].can_set_mtime,
            max_to_destination=features[1].max_file_size,
            max_to_source=features[0].max_file_size)
        case_insensitive = features[0].case_insensitive or features[1].case_insensitive
    return Walk(here, there, tally=tally,
                policy=NamePolicy(rules, case_insensitive),
                copy_rules=copy_rules,
                sync_rules=dataclasses.replace(copy_rules, propagation=("mirror",)),
                here_rules=here.features.path_rules,
                size_class=_upload_calls(installation) if to_procore else lambda size: 0,
                calls=lambda: sum(_calls(here, there)), on_progress=on_progress)


def _upload_calls(installation: dict[str, Any]) -> Callable[[int], int]:
    """The Procore API calls one file's upload makes, by its size (core/connectors/procore.py):
    the deprecated direct upload one (the create with the bytes), the Uploads API two (the
    upload slot, the create), a segmented upload three (the slot, its completion, the
    create). The bytes to the storage host are no API call."""
    from core.connectors.procore import direct_upload_max, segment_size

    direct, segment = direct_upload_max(installation), segment_size(installation)

    def calls(size: int) -> int:
        if direct and size <= direct:
            return 1
        return 3 if size > segment else 2

    return calls


def _calls(here: Connector, there: Connector | None) -> tuple[int, int]:
    """The API calls each side's connector has made (0 where it counts none)."""
    return tuple(getattr(getattr(c, "usage", None), "api_calls", 0)  # type: ignore[return-value]
                 for c in (here, there))


async def _budget(state: State, installation: dict[str, Any], here: Connector,
                  there: Connector | None) -> _Budget:
    """The hourly budget of the Procore client involved, as the pacers last recorded it
    (the limit assumed, and nothing known of what is left, where none was recorded)."""
    from core.pacer import DEFAULT_HOURLY_LIMIT, DEFAULT_RESERVE, pacer_settings
    from core.readout import BudgetReadout

    pacer = next((c.client.pacer for c in (here, there)  # type: ignore[union-attr]
                  if getattr(c, "client", None) is not None), None)
    if pacer is None:
        settings = pacer_settings(installation)
        return _Budget(settings.get("default_hourly", DEFAULT_HOURLY_LIMIT), None, None,
                       settings.get("reserve", DEFAULT_RESERVE))
    row = (await state.rate_budgets()).get(pacer.key)
    if row is None:
        return _Budget(pacer.default_hourly, None, None, pacer.reserve)
    readout = BudgetReadout.from_row(pacer.key, row, pacer.default_hourly)
    now = time.time()
    return _Budget(readout.limit, readout.left(now),
                   readout.reset_at if readout.reset_at > now else None, pacer.reserve)


def _estimate(walk: Walk, calls: tuple[int, int], missing: int, budget: _Budget, *,
              here_procore: bool, destination: str | None, against: bool,
              now: float) -> Estimate:
    """The calls a first copy of the walked tree makes: listing both sides as this analysis
    did (into a Procore project not compared with: its documents index, one call), the
    destination folders a copy creates, each upload's calls by the file's size, and one
    download call per file read from Procore."""
    to_procore = destination == "procore"
    if not (here_procore or to_procore):
        return Estimate(0, basis="no Procore side: no API budget involved")
    copy = walk.copy
    listing = sum(calls) + (1 if to_procore and not against else 0)
    folders = (copy.folders + missing) if to_procore else 0
    transfers = (sum(k * n for k, n in copy.sizes.items())
                 + (copy.files if here_procore else 0))
    total = listing + folders + transfers
    per_hour = max(1, budget.limit - math.ceil(budget.reserve * budget.limit))
    hours = total / per_hour
    if budget.remaining is None:
        from_now = None
    else:
        usable = max(0, budget.remaining - math.ceil(budget.reserve * budget.limit))
        wait = (budget.reset_at - now) / 3600 if budget.reset_at else 1.0
        from_now = total / per_hour if total <= usable else wait + (total - usable) / per_hour
    where = ("a copy into the Procore folder it was compared with" if to_procore and against
             else "a copy into an empty Procore project" if to_procore
             else "a copy out of Procore")
    return Estimate(total, budget.limit, budget.remaining, budget.reset_at, hours, from_now,
                    basis=where, listing_calls=listing, folder_calls=folders,
                    transfer_calls=transfers, files=copy.files, bytes=copy.bytes,
                    reserve=budget.reserve)
