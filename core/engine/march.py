"""The march: merge one folder's source and destination listings into pairs.

Both listings are sorted by the same normalised key (Unicode NFC, case-folded when either side
ignores case) and merge-joined, as rclone does. Only one folder is held at a time, so memory
follows the largest folder, never the whole tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from core.connectors.base import Entry, PathRules
from core.paths import fit_name, match_key


@dataclass(slots=True)
class Pair:
    """A source entry and the destination entry of the same name; either may be missing."""

    source: Entry | None
    destination: Entry | None
    name: str  # the name at the destination (the source name fitted to its rules)
    note: str | None = None  # how the name was changed to fit
    refusal: str | None = None  # why the source name cannot be used at all


@dataclass(frozen=True, slots=True)
class NamePolicy:
    """The job's segment and duplicate-name policies, with the destination's rules."""

    rules: PathRules
    case_insensitive: bool
    transform: bool = True
    encode: bool = False
    truncate: bool = False
    rename_duplicates: bool = True


def _numbered(name: str, n: int, parent: str, policy: NamePolicy) -> str | None:
    """`name` with " (n)" before its extension, its stem shortened where the destination's
    length rules need it and the job allows truncation; None when it cannot fit."""
    stem, ext = os.path.splitext(name)
    suffix = f" ({n}){ext}"
    for keep in range(len(stem), 0, -1):
        candidate = stem[:keep] + suffix
        if fit_name(candidate, parent, policy.rules, transform=False).refusal is None:
            return candidate
        if not policy.truncate:
            return None
    return None


def _renamed(name: str) -> str:
    return f"renamed to {name!r}: another source item has the same name at the destination"


def _fit_sources(sources: list[Entry], parent: str, policy: NamePolicy,
                 destinations: list[Entry], chosen: Mapping[str, str],
                 ) -> tuple[list[tuple[str, Pair]], list[Pair]]:
    """Source pairs keyed for merging, and the pairs refused outright."""
    keyed: list[tuple[str, Pair]] = []
    refused: list[Pair] = []
    for entry in sources:
        fit = fit_name(entry.name, parent, policy.rules, transform=policy.transform,
                       encode=policy.encode, truncate=policy.truncate)
        pair = Pair(entry, None, fit.name, fit.note, fit.refusal)
        if fit.refusal:
            refused.append(pair)
        else:
            keyed.append((match_key(fit.name, policy.case_insensitive), pair))
    renamed_before = any(  # an earlier run gave it another name (" (1)"): it keeps that
        match_key(chosen.get(pair.source.name, pair.name), policy.case_insensitive) != key  # type: ignore[union-attr]
        for key, pair in keyed) if chosen else False
    if renamed_before or len({key for key, _ in keyed}) < len(keyed):
        keyed = _separate(keyed, parent, policy, refused, destinations, chosen)
    keyed.sort(key=lambda kp: kp[0])
    refused.sort(key=lambda pair: pair.name)
    return keyed, refused


def _separate(keyed: list[tuple[str, Pair]], parent: str, policy: NamePolicy,
              refused: list[Pair], destinations: list[Entry], chosen: Mapping[str, str],
              ) -> list[tuple[str, Pair]]:
    """Give source items that land on the same destination name distinct names (" (1)"), or
    refuse all but one. The name an earlier run chose for an item stays its name (`chosen`:
    source name -> destination name, from the job's records), so a new collision never takes
    a number from a file already sent; then a name that needed no fixing keeps it, the rest
    go in name order. A number is never one a file only at the destination already has."""
    def key(name: str) -> str:
        return match_key(name, policy.case_insensitive)

    def rank(kp: tuple[str, Pair]) -> tuple[bool, bool, str]:
        source = kp[1].source
        assert source is not None
        return source.name not in chosen, kp[1].note is not None, source.name

    keyed.sort(key=rank)
    owned = {key(name) for name in chosen.values()}
    taken = {k for k, _ in keyed} | {key(e.name) for e in destinations} - owned
    seen: set[str] = set()
    separated = []
    for fitted, pair in keyed:
        source = pair.source
        assert source is not None
        earlier = chosen.get(source.name)
        if earlier is not None and key(earlier) != fitted and key(earlier) not in seen:
            fitted, pair.name = key(earlier), earlier  # the number an earlier run gave it
            pair.note = "; ".join(filter(None, [pair.note, _renamed(earlier)]))
        elif fitted in seen:
            if not policy.rename_duplicates:
                pair.refusal = f"another source item also becomes {pair.name!r} at the destination"
                refused.append(pair)
                continue
            renamed, n = None, 1
            while renamed is None or key(renamed) in taken or key(renamed) in seen:
                renamed = _numbered(pair.name, n, parent, policy)
                if renamed is None:
                    break
                n += 1
            if renamed is None:
                pair.refusal = (f"another source item also becomes {pair.name!r} at the "
                                f"destination, and there is no room for a number in its name")
                refused.append(pair)
                continue
            pair.note = "; ".join(filter(None, [pair.note, _renamed(renamed)]))
            pair.name, fitted = renamed, key(renamed)
        seen.add(fitted)
        separated.append((fitted, pair))
    return separated


def pair_folder(sources: list[Entry], destinations: list[Entry], parent: str,
                policy: NamePolicy, chosen: Mapping[str, str] | None = None) -> Iterator[Pair]:
    """Pairs for one folder: refused sources first, then the merge in key order.
    `parent` is the destination folder's path (for path-length rules); `chosen` the names
    earlier runs gave source items at the destination, by source name."""
    keyed, refused = _fit_sources(sources, parent, policy, destinations, chosen or {})
    yield from refused
    # where names differ only in case at the destination (the source ignores case), the one
    # of the source's own name pairs with it; the others cannot go to the source
    exact = {pair.name for _, pair in keyed}
    theirs = sorted(((match_key(e.name, policy.case_insensitive), e) for e in destinations),
                    key=lambda kp: (kp[0], kp[1].name not in exact))
    i = j = 0
    while i < len(keyed) or j < len(theirs):
        if j == len(theirs) or (i < len(keyed) and keyed[i][0] < theirs[j][0]):
            yield keyed[i][1]
            i += 1
        elif i == len(keyed) or theirs[j][0] < keyed[i][0]:
            pair = Pair(None, theirs[j][1], theirs[j][1].name)
            if j and theirs[j - 1][0] == theirs[j][0]:
                pair.refusal = (f"another item here is also named {theirs[j - 1][1].name!r} "
                                "apart from case, and the source does not tell names apart "
                                "by case")
            yield pair
            j += 1
        else:
            pair = keyed[i][1]
            pair.destination = theirs[j][1]
            pair.name = pair.destination.name  # update what is there, even if it differs in case
            yield pair
            i += 1
            j += 1
