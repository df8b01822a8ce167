"""Older versions carried before the latest (versioning "select": "all"): the Procore
connector's version listing and downloads, and `carry_older_versions` into a real temporary
folder and into a second project of the sandbox, over real HTTP."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.connectors.base import Entry, PathRules, Vanished
from core.connectors.local import LocalConnector
from core.connectors.procore import ProcoreConnector
from core.engine.versions import (
    VERSIONS_FOLDER,
    Carried,
    carry_older_versions,
    version_name,
)
from core.sandbox import DEMO_PROJECT, World
from core.sandbox.samples import SECOND_PROJECT
from tests.core.test_procore import chunks, open_procore, opened  # noqa: F401 (a fixture)

PLAN = "Drawings/Structural/S-101 Foundation Plan.pdf"  # three versions in the demo world
SHOW_FILE = "GET /rest/v1.0/files/{id}"


def project_id(world: World, name: str) -> int:
    return next(p.id for p in world.projects.values() if p.name == name)


def history(world: World, project: str, path: str) -> list[bytes]:
    """Every version's bytes of the file at `path`, oldest first."""
    with world.lock:
        return [v.blob.data for v in world.node_at(project_id(world, project), path).versions]


def downloads(world: World) -> int:
    return sum(n for key, n in world.requests.items() if key.endswith("/download"))


@pytest.fixture
async def riverside(sandbox, opened) -> AsyncIterator[ProcoreConnector]:  # noqa: F811
    connector = await open_procore(sandbox, *opened)
    yield connector
    await connector.close()


@pytest.fixture
async def harbor(sandbox, opened) -> AsyncIterator[ProcoreConnector]:  # noqa: F811
    """The same sign-in, on the company's second project."""
    connector = await open_procore(sandbox, *opened)
    connector.project_id = project_id(sandbox.world, SECOND_PROJECT)
    yield connector
    await connector.close()


async def latest(source: ProcoreConnector, destination, source_path: str, entry: Entry,
                 destination_path: str, carried: Carried) -> Entry:
    """What the engine does after carrying: write the latest version over what it returned."""
    data = b"".join([c async for c in source.read(source_path, entry)])
    return await destination.write(destination_path, chunks(data), size=len(data),
                                   mtime=entry.mtime, replacing=carried.replacing)


async def test_versions_are_listed_oldest_first_without_a_call_after_a_folder_listing(
        riverside, sandbox) -> None:
    world = sandbox.world
    entry = await riverside.stat(PLAN)
    shown = world.requests[SHOW_FILE]
    listed = await riverside.versions(PLAN, entry)
    assert world.requests[SHOW_FILE] == shown  # the folder's listing held them
    assert [v.number for v in listed] == [1, 2, 3]
    assert listed[-1].version == entry.version
    assert all(a.mtime < b.mtime for a, b in itertools.pairwise(listed))
    expected = history(world, DEMO_PROJECT, PLAN)
    assert [v.size for v in listed] == [len(data) for data in expected]
    for version, data in zip(listed, expected, strict=True):
        assert b"".join([c async for c in riverside.read_version(PLAN, entry, version)]) == data


async def test_after_an_index_walk_only_files_with_several_versions_cost_a_call(
        riverside, sandbox) -> None:
    world = sandbox.world
    await riverside.begin_walk("")  # the demo project is small: one page of the flat index
    shown = world.requests[SHOW_FILE]
    single = "Drawings/Structural/S-201 Level 2 Framing Plan.pdf"
    assert world.versions(project_id(world, DEMO_PROJECT), single) == 1
    one = await riverside.versions(single, await riverside.stat(single))
    assert [v.number for v in one] == [1] and world.requests[SHOW_FILE] == shown
    several = await riverside.versions(PLAN, await riverside.stat(PLAN))
    assert [v.number for v in several] == [1, 2, 3]
    assert world.requests[SHOW_FILE] == shown + 1


async def test_procore_to_a_folder_keeps_older_versions_beside_the_file(
        riverside, sandbox, tmp_path: Path) -> None:
    world = sandbox.world
    folder = LocalConnector(tmp_path)
    await folder.mkdir("Structural")
    target = "Structural/S-101 Foundation Plan.pdf"
    entry = await riverside.stat(PLAN)
    calls = world.api_calls
    carried = await carry_older_versions(riverside, folder, PLAN, entry, target, None)
    assert (carried.versions, carried.latest, carried.replacing) == (2, 3, None)
    assert world.api_calls == calls + 2  # one download call per older version, no listing
    written = await latest(riverside, folder, PLAN, entry, target, carried)

    first = history(world, DEMO_PROJECT, PLAN)
    kept = tmp_path / "Structural" / VERSIONS_FOLDER
    assert (tmp_path / target).read_bytes() == first[2]
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == {
        "S-101 Foundation Plan (v1).pdf": first[0], "S-101 Foundation Plan (v2).pdf": first[1]}
    assert carried.bytes == len(first[0]) + len(first[1])
    listed = await riverside.versions(PLAN, entry)
    assert os.stat(kept / "S-101 Foundation Plan (v1).pdf").st_mtime == listed[0].mtime
    before = {p.name: p.stat().st_mtime_ns for p in kept.iterdir()}

    # two new versions in Procore: the next run carries the one the file held (v3) and v4
    world.add_file(project_id(world, DEMO_PROJECT), PLAN, b"v4: revised footings")
    world.add_file(project_id(world, DEMO_PROJECT), PLAN, b"v5: issued for construction")
    riverside.forget()
    entry, fetched = await riverside.stat(PLAN), downloads(world)
    again = await carry_older_versions(riverside, folder, PLAN, entry, target, written,
                                       already=carried.latest)
    assert (again.versions, again.latest) == (2, 5)
    assert downloads(world) == fetched + 2  # only the new older ones
    await latest(riverside, folder, PLAN, entry, target, again)
    now = history(world, DEMO_PROJECT, PLAN)
    assert (tmp_path / target).read_bytes() == now[4]
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == {
        f"S-101 Foundation Plan (v{n}).pdf": now[n - 1] for n in range(1, 5)}
    assert {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in kept.iterdir())
            if n in before} == before  # those carried before are left as they were

    # nothing new: nothing carried, nothing downloaded
    fetched = downloads(world)
    none = await carry_older_versions(riverside, folder, PLAN, entry, target, None,
                                      already=again.latest)
    assert (none.versions, downloads(world)) == (0, fetched)


async def test_procore_to_procore_keeps_every_version_in_order(
        riverside, harbor, sandbox) -> None:
    world = sandbox.world
    await harbor.mkdir("From Riverside")
    target = "From Riverside/S-101 Foundation Plan.pdf"
    entry = await riverside.stat(PLAN)
    seen: list[tuple[int, str | None]] = []

    async def on_carried(number: int, written: Entry) -> None:
        seen.append((number, written.version))

    calls = world.api_calls
    carried = await carry_older_versions(riverside, harbor, PLAN, entry, target, None,
                                         on_carried=on_carried)
    assert (carried.versions, carried.latest) == (2, 3)
    # per older version: its download, an upload slot, and the create or new version
    assert world.api_calls == calls + 2 * 3
    assert [n for n, _ in seen] == [1, 2] and seen[-1][1] == carried.replacing.version
    await latest(riverside, harbor, PLAN, entry, target, carried)
    assert history(world, SECOND_PROJECT, target) == history(world, DEMO_PROJECT, PLAN)

    # a later run: two new versions at the source, only the new older one is carried
    world.add_file(project_id(world, DEMO_PROJECT), PLAN, b"v4: revised footings")
    world.add_file(project_id(world, DEMO_PROJECT), PLAN, b"v5: issued for construction")
    riverside.forget()
    harbor.forget()
    entry, there = await riverside.stat(PLAN), await harbor.stat(target)
    again = await carry_older_versions(riverside, harbor, PLAN, entry, target, there,
                                       already=carried.latest)
    assert (again.versions, again.latest) == (1, 5)
    await latest(riverside, harbor, PLAN, entry, target, again)
    assert history(world, SECOND_PROJECT, target) == history(world, DEMO_PROJECT, PLAN)
    assert len(history(world, SECOND_PROJECT, target)) == 5


async def test_a_carry_cut_short_resumes_without_a_duplicate_version(
        riverside, harbor, sandbox) -> None:
    """A run that stopped after the first older version landed: the next one starts from
    what `on_carried` reported, and Procore ends with each version once."""
    world = sandbox.world
    target = "S-101 Foundation Plan.pdf"
    entry = await riverside.stat(PLAN)
    progress: dict[str, object] = {}

    async def stop_after_first(number: int, written: Entry) -> None:
        progress.update(number=number, entry=written)
        raise KeyboardInterrupt  # the run dies here

    with pytest.raises(KeyboardInterrupt):
        await carry_older_versions(riverside, harbor, PLAN, entry, target, None,
                                   on_carried=stop_after_first)
    assert len(history(world, SECOND_PROJECT, target)) == 1
    resumed = await carry_older_versions(riverside, harbor, PLAN, entry, target,
                                         progress["entry"],  # type: ignore[arg-type]
                                         already=progress["number"])  # type: ignore[arg-type]
    assert resumed.versions == 1
    await latest(riverside, harbor, PLAN, entry, target, resumed)
    assert history(world, SECOND_PROJECT, target) == history(world, DEMO_PROJECT, PLAN)


def test_version_names_keep_the_number_and_extension_within_the_length_limit() -> None:
    rules = PathRules(max_name_length=30)
    assert version_name("plan.pdf", 3, "A", rules) == "plan (v3).pdf"
    assert version_name(".env", 2, "", rules) == ".env (v2)"
    assert version_name("README", 12, "", rules) == "README (v12)"
    long = version_name("A-101 Floor Plan Level 1 Revised.pdf", 7, "", rules)
    assert long == "A-101 Floor Plan Leve (v7).pdf" and len(long) == 30


async def test_a_source_file_gone_since_its_listing_is_vanished_not_a_failure(
        riverside, tmp_path: Path) -> None:
    entry = await riverside.stat(PLAN)
    gone = Entry(entry.name, False, entry.size, entry.mtime, "999999999", "1")
    with pytest.raises(Vanished):
        await carry_older_versions(riverside, LocalConnector(tmp_path), PLAN, gone,
                                   "S-101 Foundation Plan.pdf", None)
