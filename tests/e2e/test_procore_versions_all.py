"""Versioning "select": "all" through the copy engine (run_job, in this process) against the
sandbox over real HTTP, with real temporary folders.

Local to Procore needs nothing of its own: each changed upload is a new version of the same
document. Procore to a folder and Procore to Procore carry the older versions first
(core/engine/versions.py); those two tests wait for the executor to call it (strict xfail:
they fail loudly once it does, so their marks come off with the wiring).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.connections import add_local
from core.demo import connect_sandbox
from core.engine.runner import run_job
from core.engine.versions import VERSIONS_FOLDER
from core.home import Home
from core.job_store import create_job
from core.sandbox import DEMO_PROJECT, World
from core.sandbox.samples import SECOND_PROJECT
from core.state import JobRecord, State

PLAN = "Drawings/Structural/S-101 Foundation Plan.pdf"  # three versions in the demo world


def project_id(world: World, name: str) -> int:
    return next(p.id for p in world.projects.values() if p.name == name)


def history(world: World, project: str, path: str) -> list[bytes]:
    """Every version's bytes of the Procore file at `path`, oldest first."""
    with world.lock:
        return [v.blob.data for v in world.node_at(project_id(world, project), path).versions]


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[State, Home]]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    yield state, home
    await state.close()


async def all_versions_job(state: State, source: tuple[str, str],
                           destination: tuple[str, str]) -> JobRecord:
    job, _ = await create_job(state, json.dumps({"name": "history", "transfer": {
        "transfer_type": "copy", "versioning": {"preserve": "native", "select": "all"},
        "source": {"connection": {"id": source[0]}, "target": {"path": source[1]}},
        "destination": {"connection": {"id": destination[0]},
                        "target": {"path": destination[1]}}}}))
    return job


def edit(path: Path, data: bytes) -> None:
    """A user's edit, saved a minute later than the last one."""
    path.write_bytes(data)
    later = path.stat().st_mtime + 60
    os.utime(path, (later, later))


async def test_local_to_procore_each_changed_upload_is_a_new_version(
        sandbox, opened, tmp_path: Path) -> None:
    state, home = opened
    world = sandbox.world
    folder = tmp_path / "office"
    (folder / "Drawings").mkdir(parents=True)
    plan, notes = folder / "Drawings" / "A-101.pdf", folder / "notes.txt"
    edits = [b"A-101 issued for bid", b"A-101 revision 1: stair moved",
             b"A-101 revision 2 (same size)!"[:29]]
    plan.write_bytes(edits[0])
    notes.write_bytes(b"never edited")
    await connect_sandbox(state, home, sandbox.url, world, name="Procore")
    await add_local(state, "office", str(folder))
    job = await all_versions_job(state, ("office", "/"), ("Procore", "/Office"))

    for run, data in enumerate(edits):
        if run:
            edit(plan, data)
        result = await run_job(state, home, job)
        assert (result.status, result.stats.transferred) == ("completed", 2 if run == 0 else 1)
    assert history(world, DEMO_PROJECT, "Office/Drawings/A-101.pdf") == edits
    assert history(world, DEMO_PROJECT, "Office/notes.txt") == [b"never edited"]

    assert (await run_job(state, home, job)).status == "no_changes"  # no edit, no version
    assert len(history(world, DEMO_PROJECT, "Office/Drawings/A-101.pdf")) == 3


async def test_procore_to_a_folder_keeps_every_older_version_beside_the_file(
        sandbox, opened, tmp_path: Path) -> None:
    state, home = opened
    world = sandbox.world
    archive = tmp_path / "archive"
    archive.mkdir()
    await connect_sandbox(state, home, sandbox.url, world, name="Procore")
    await add_local(state, "archive", str(archive))
    job = await all_versions_job(state, ("Procore", "/Drawings/Structural"), ("archive", "/"))
    assert (await run_job(state, home, job)).status == "completed"
    kept = archive / VERSIONS_FOLDER
    versions = history(world, DEMO_PROJECT, PLAN)
    assert (archive / "S-101 Foundation Plan.pdf").read_bytes() == versions[-1]
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == {
        "S-101 Foundation Plan (v1).pdf": versions[0],
        "S-101 Foundation Plan (v2).pdf": versions[1]}

    world.add_file(project_id(world, DEMO_PROJECT), PLAN, b"v4: revised footings",
                   at=time.time() + 60)
    assert (await run_job(state, home, job)).status == "completed"
    versions = history(world, DEMO_PROJECT, PLAN)
    assert (archive / "S-101 Foundation Plan.pdf").read_bytes() == versions[-1]
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == {
        f"S-101 Foundation Plan (v{n}).pdf": versions[n - 1] for n in (1, 2, 3)}
    assert (await run_job(state, home, job)).status == "no_changes"


async def test_procore_to_procore_keeps_every_version_in_order(sandbox, opened) -> None:
    state, home = opened
    world = sandbox.world
    await connect_sandbox(state, home, sandbox.url, world, name="Riverside")
    harbor = await connect_sandbox(state, home, sandbox.url, world, name="Harbor")
    await state.update_connection_config(
        harbor.id, harbor.config | {"project_id": project_id(world, SECOND_PROJECT)})
    job = await all_versions_job(state, ("Riverside", "/Drawings/Structural"),
                                 ("Harbor", "/Structural"))
    assert (await run_job(state, home, job)).status == "completed"
    copied = "Structural/S-101 Foundation Plan.pdf"
    assert history(world, SECOND_PROJECT, copied) == history(world, DEMO_PROJECT, PLAN)

    world.add_file(project_id(world, DEMO_PROJECT), PLAN, b"v4: revised footings",
                   at=time.time() + 60)
    world.add_file(project_id(world, DEMO_PROJECT), PLAN, b"v5: issued for construction",
                   at=time.time() + 120)
    assert (await run_job(state, home, job)).status == "completed"
    assert history(world, SECOND_PROJECT, copied) == history(world, DEMO_PROJECT, PLAN)
    assert len(history(world, SECOND_PROJECT, copied)) == 5
    assert (await run_job(state, home, job)).status == "no_changes"
