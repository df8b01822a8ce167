"""The march: merge one folder's source and destination listings into pairs.

Both listings are sorted by the same normalised key (Unicode NFC, case-folded when either side
ignores case) and merge-joined, as rclone does. Only one folder is held at a time, so memory
follows the largest folder, never the whole tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


def _numbered(name: str, n: int) -> str:
    stem, ext = os.path.splitext(name)
    return f"{stem} ({n}){ext}"


def _fit_sources(sources: list[Entry], parent: str, policy: NamePolicy,
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
    if len({key for key, _ in keyed}) < len(keyed):
        keyed = _separate(keyed, policy, refused)
    keyed.sort(key=lambda kp: kp[0])
    refused.sort(key=lambda pair: pair.name)
    return keyed, refused


def _separate(keyed: list[tuple[str, Pair]], policy: NamePolicy, refused: list[Pair],
              ) -> list[tuple[str, Pair]]:
    """Give source items that land on the same destination name distinct names (" (1)"), or
    refuse all but one. A name that needed no fixing keeps it; the rest go in name order."""
    keyed.sort(key=lambda kp: (kp[1].note is not None, kp[1].source.name))  # type: ignore[union-attr]
    taken = {key for key, _ in keyed}
    seen: set[str] = set()
    separated = []
    for key, pair in keyed:
        if key in seen:
            if not policy.rename_duplicates:
                pair.refusal = f"another source item also becomes {pair.name!r} at the destination"
                refused.append(pair)
                continue
            n = 1
            while match_key(_numbered(pair.name, n), policy.case_insensitive) in taken:
                n += 1
            renamed = _numbered(pair.name, n)
            pair.note = "; ".join(filter(None, [
                pair.note, f"renamed to {renamed!r}: another source item has the same name "
                           "at the destination"]))
            pair.name = renamed
            key = match_key(renamed, policy.case_insensitive)
            taken.add(key)
        seen.add(key)
        separated.append((key, pair))
    return separated


def pair_folder(sources: list[Entry], destinations: list[Entry], parent: str,
                policy: NamePolicy) -> Iterator[Pair]:
    """Pairs for one folder: refused sources first, then the merge in key order.
    `parent` is the destination folder's path (for path-length rules)."""
    keyed, refused = _fit_sources(sources, parent, policy)
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
