"""Older versions of a file, carried before its latest (versioning `"select": "all"`).

A source whose connector keeps versions (`Features.versions`: Procore) lists a file's history
with `versions(path, entry)` (oldest first) and streams any of them with
`read_version(path, entry, version)`. Before the engine writes a file's latest version, the
versions older than it that are not yet at the destination go there first, oldest first:

- to a destination that keeps versions too (Procore to Procore), into the file itself: the
  first creates the file where it is new, each next adds a version, and the engine's write of
  the latest adds the last one, so the destination's history follows the source's order;
- to any other destination (a folder, a share), beside the file's folder as
  `<folder>/.dryviq-versions/<stem> (v<N>)<ext>`, N the source's version number, the file's
  mtime the version's creation time. Nothing else there changes: a version carried by an
  earlier run stays as it is, and when a later run sees a new version, the one it replaces
  (the previous latest) joins them. A `(vN)` file someone deleted is not written again.

What is already at the destination is told by `already`: the number of the source's newest
version an earlier run left there (0: none). A versions folder may take the same version
twice without harm (it is replaced by the same bytes), a file that keeps versions may not (it
would gain a duplicate), so progress into such a file is reported through `on_carried` after
every version, for the caller to record before anything else can fail.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from core.connectors.base import (
    VERSIONS_FOLDER,
    Connector,
    Entry,
    InvalidPath,
    NotFound,
    PathRules,
    Vanished,
)
from core.paths import fit_name, join


class SourceVersion(Protocol):
    """One version of a file, as a source that keeps versions lists it."""

    @property
    def number(self) -> int: ...  # 1 for the first, growing with each new version

    @property
    def size(self) -> int: ...

    @property
    def mtime(self) -> float | None: ...  # when the version was made

    @property
    def version(self) -> str: ...  # its id: the `version` of an Entry listed when it was latest


class KeepsVersions(Protocol):
    """What a source connector with `Features.versions` offers beside the Connector protocol."""

    async def versions(self, path: str, entry: Entry) -> Sequence[SourceVersion]: ...

    def read_version(self, path: str, entry: Entry,
                     version: SourceVersion) -> AsyncIterator[bytes]: ...


@dataclass(slots=True)
class Carried:
    """What carrying a file's older versions did, and what the latest's write needs."""

    replacing: Entry | None  # pass as `replacing=` to the write of the latest version
    latest: int  # the source's latest version number: `already` once that write has landed
    versions: int = 0  # older versions written now
    bytes: int = 0  # their bytes


def version_name(name: str, number: int, folder: str, rules: PathRules) -> str:
    """`<stem> (v<N>)<ext>` for version `number` of the file `name`, in `folder`; the stem is
    shortened where the destination's length limits need it (the suffix always stays)."""
    stem, ext = os.path.splitext(name)
    suffix = f" (v{number}){ext}"
    for keep in range(len(stem), 0, -1):
        candidate = stem[:keep] + suffix
        if fit_name(candidate, folder, rules, transform=False).refusal is None:
            return candidate
    raise InvalidPath(f"/{join(folder, name)}: no name for its version {number} fits the "
                      "destination's length limits")


def versions_folder(destination_path: str) -> str:
    """The folder that holds the older versions of the file at `destination_path`."""
    return join(destination_path.rpartition("/")[0], VERSIONS_FOLDER)


async def carry_older_versions(
    source: Connector, destination: Connector, source_path: str, source_entry: Entry,
    destination_path: str, destination_entry: Entry | None, *, already: int = 0,
    on_carried: Callable[[int, Entry], Awaitable[None]] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Carried:
    """Write the versions of the source file older than `source_entry` (its latest) that are
    not yet at the destination, oldest first, before the engine writes the latest.

    `destination_entry` is the file at `destination_path` now (None where it is new);
    `already` the number of the source's newest version an earlier run left there (0: none).
    For a destination that keeps versions, `on_carried(number, entry)` follows each version
    written into the file: the file now stands as `entry` and holds the source's versions
    up to `number` (record both before going on). `on_bytes` counts bytes as they are sent.
    Raises what the connectors raise, the source's NotFound as Vanished (the file is gone
    since it was listed); a caller that retries passes what it recorded."""
    keeper = cast(KeepsVersions, source)
    try:
        history = await keeper.versions(source_path, source_entry)
    except NotFound as exc:
        raise Vanished(str(exc)) from exc
    latest = next((v for v in history if v.version == source_entry.version),
                  history[-1] if history else None)
    if latest is None:
        return Carried(destination_entry, already)
    into_file = destination.features.versions
    # a versions folder also needs the version the destination file holds now, which the
    # write of the latest is about to replace
    older = [v for v in history if v.number < latest.number
             and (v.number > already if into_file else v.number >= already)]
    carried = Carried(destination_entry, latest.number)
    if not older:
        return carried
    if not into_file:  # a folder already there is returned as if made now
        await destination.mkdir(versions_folder(destination_path))
    for version in older:
        sent = 0

        async def chunks(version: SourceVersion = version) -> AsyncIterator[bytes]:
            nonlocal sent
            reading = keeper.read_version(source_path, source_entry, version)
            try:
                async with contextlib.aclosing(reading) as stream:
                    async for chunk in stream:
                        sent += len(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
                        yield chunk
            except NotFound as exc:  # told apart here from the destination's NotFound
                raise Vanished(str(exc)) from exc

        if into_file:
            carried.replacing = await destination.write(
                destination_path, chunks(), size=version.size, mtime=version.mtime,
                replacing=carried.replacing)
            if on_carried is not None:
                await on_carried(version.number, carried.replacing)
        else:
            name = destination_path.rpartition("/")[2]
            folder = versions_folder(destination_path)
            await destination.write(
                join(folder, version_name(name, version.number, folder,
                                          destination.features.path_rules)),
                chunks(), size=version.size, mtime=version.mtime)
        carried.versions += 1
        carried.bytes += sent
    return carried
