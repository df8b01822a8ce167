"""Another job writing into the same destination, and source files deleted, during a run.

A hook in a connector plays the other party: it makes a folder or a file at the destination,
or deletes a source file, between the listing that planned an item and the write that carries
it out. Real folders on disk, and the Procore sandbox over real HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from core.connectors.base import Entry
from core.connectors.local import LocalConnector
from core.connectors.procore import ProcoreConnector
from core.engine import runner
from core.engine.executor import SMALL_FILE, VANISHED
from core.home import Home
from core.job_store import create_job
from core.state import State
from tests.core.test_procore import open_procore

BIG = SMALL_FILE + 1  # copied by itself rather than in a batch of small files
DAY_AGO = time.time() - 86_400


def job_json(destination: str = "/Backup") -> str:
    return json.dumps({"name": "copy", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "src"}, "target": {"path": "/Project"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": destination}}}})


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    """The files, last changed a day ago (before anything the other job writes)."""
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
        os.utime(root / rel, (DAY_AGO, DAY_AGO))


def tree(root: Path) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in names:
            found[os.path.relpath(os.path.join(folder, name), root)] = \
                Path(folder, name).read_bytes()
    return found


class OtherJobLocal(LocalConnector):
    """A local destination where another job gets there first: it makes each folder this one
    is about to make, and writes its own version of each file this one is about to write
    (or a folder of that name, for paths in `folders_instead`)."""

    def __init__(self, root: str, folders_instead: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__(root, fsync=False, workers=0)
        self.folders_instead = folders_instead

    def _beat(self, path: str) -> None:
        full = Path(self._root, path)
        full.parent.mkdir(parents=True, exist_ok=True)
        if path in self.folders_instead:
            full.mkdir(exist_ok=True)
        else:
            full.write_bytes(b"the other job's version of " + path.encode())

    async def mkdir(self, path: str) -> Entry:
        Path(self._root, path).mkdir(parents=True, exist_ok=True)
        return await super().mkdir(path)

    async def copy_small(self, files: Any) -> Any:
        for path, _, _ in files:
            self._beat(path)
        return await super().copy_small(files)

    async def write_local(self, path: str, file: Any, **options: Any) -> Entry:
        self._beat(path)
        return await super().write_local(path, file, **options)


class VanishingSource(LocalConnector):
    """A local source whose files and folders named `gone*` are deleted right after each
    listing."""

    async def list_dir(self, path: str) -> list[Entry]:
        entries = await super().list_dir(path)
        for entry in entries:
            if entry.name.startswith("gone"):
                full = os.path.join(self._root, path, entry.name)
                if entry.is_dir:
                    shutil.rmtree(full)
                else:
                    os.unlink(full)
        return entries


@pytest.fixture
async def opened(tmp_path) -> AsyncIterator[tuple[Home, State]]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    yield home, state
    await state.close()


@pytest.fixture
async def local_pair(tmp_path, opened, monkeypatch,
                     ) -> Callable[[Callable[[str], Any], Callable[[str], Any]], None]:
    """Connections 'src' (tmp_path/src) and 'dst' (tmp_path/dst); the test picks the class
    that opens each side."""
    _, state = opened
    for name in ("src", "dst"):
        (tmp_path / name).mkdir()
        await state.add_connection(name, "local", {"path": str(tmp_path / name)})

    def use(source: Callable[[str], Any], destination: Callable[[str], Any]) -> None:
        def open_connector(connection, secrets, opening=None):
            side = source if connection.name == "src" else destination
            return side(connection.config["path"])
        monkeypatch.setattr(runner, "open_connector", open_connector)
    return use


async def test_folders_another_job_made_meanwhile_are_used(tmp_path, opened, local_pair) -> None:
    home, state = opened
    files = {"Project/A/B/C/plan.pdf": b"plan", "Project/A/spec.docx": b"spec",
             "Project/D/E/big.bin": os.urandom(BIG)}
    write_tree(tmp_path / "src", files)
    local_pair(LocalConnector, OtherJobLocal)
    job, _ = await create_job(state, job_json("/Backup/Project"))
    result = await runner.run_job(state, home, job)
    assert (result.status, result.stats.failed, result.stats.flagged) == ("completed", 0, 0)
    # the other job's files were there first, unrecorded: the source is what the job delivers
    assert tree(tmp_path / "dst" / "Backup") == tree(tmp_path / "src")
    statuses = {i.path: i.status for i in await state.items(job.id)}
    assert set(statuses.values()) == {"success"}, statuses


async def test_a_folder_where_a_file_goes_is_flagged_not_failed(tmp_path, opened,
                                                                local_pair) -> None:
    home, state = opened
    write_tree(tmp_path / "src", {"Project/a.txt": b"a", "Project/b.txt": b"b",
                                  "Project/big.bin": os.urandom(BIG)})
    local_pair(LocalConnector, lambda root: OtherJobLocal(
        root, folders_instead={"Backup/a.txt", "Backup/big.bin"}))
    job, _ = await create_job(state, job_json())
    result = await runner.run_job(state, home, job)
    assert (result.status, result.stats.failed, result.stats.flagged) == ("warn", 0, 2)
    flagged = {i.path: i.note for i in await state.items(job.id, status="remediation")}
    assert flagged == dict.fromkeys(
        ["a.txt", "big.bin"], "a folder with this name is already at the destination")
    assert (tmp_path / "dst" / "Backup" / "b.txt").read_bytes() == b"b"


async def test_source_files_deleted_during_the_run_are_skipped(tmp_path, opened,
                                                               local_pair) -> None:
    home, state = opened
    write_tree(tmp_path / "src", {"Project/kept.txt": b"kept", "Project/gone small.txt": b"x",
                                  "Project/Sub/gone big.bin": os.urandom(BIG),
                                  "Project/gone folder/inside.txt": b"y"})
    local_pair(VanishingSource, LocalConnector)
    job, _ = await create_job(state, job_json())
    result = await runner.run_job(state, home, job)
    assert (result.status, result.stats.failed, result.stats.skipped) == ("completed", 0, 3)
    assert result.stats.transferred == 1
    skipped = {i.path: i.note for i in await state.items(job.id, status="skipped")}
    assert skipped == {"gone small.txt": VANISHED, "Sub/gone big.bin": VANISHED}
    assert tree(tmp_path / "dst" / "Backup") == {"kept.txt": b"kept", "Sub": None,
                                                 "gone folder": None}


# -- Procore ------------------------------------------------------------------------------


@pytest.fixture
async def to_procore(tmp_path, opened, sandbox, monkeypatch) -> AsyncIterator[ProcoreConnector]:
    """Connections 'src' (a VanishingSource at tmp_path/src) and 'dst' (the sandbox's demo
    project, through a connector the test can hook)."""
    home, state = opened
    (tmp_path / "src").mkdir()
    await state.add_connection("src", "local", {"path": str(tmp_path / "src")})
    await state.add_connection("dst", "procore", {})
    procore = await open_procore(sandbox, state, home)
    monkeypatch.setattr(runner, "open_connector", lambda connection, secrets, opening=None: (
        procore if connection.platform == "procore"
        else VanishingSource(connection.config["path"])))
    yield procore


async def test_procore_folders_and_files_made_meanwhile(tmp_path, opened, sandbox,
                                                        to_procore) -> None:
    home, state = opened
    world, project = sandbox.world, to_procore.sandbox_project  # type: ignore[attr-defined]
    write_tree(tmp_path / "src", {
        "Project/Sub/Deeper/changed.pdf": b"the source's version",
        "Project/Sub/same size.pdf": b"0123456789",
        "Project/Sub/gone.pdf": b"deleted from the source during the run",
        "Project/new.pdf": b"nobody else wrote this"})
    theirs = {"Backup/Sub/Deeper/changed.pdf": b"another job's version, longer",
              "Backup/Sub/same size.pdf": b"abcdefghij"}
    made, written = to_procore.mkdir, to_procore.write

    async def mkdir(path: str) -> Entry:
        world.add_folder(project, path)  # the other job is a moment faster
        return await made(path)

    async def write(path: str, chunks: Any, **options: Any) -> Entry:
        if path in theirs:  # once: the write planned again is this job's alone
            world.add_file(project, path, theirs.pop(path))
        return await written(path, chunks, **options)

    to_procore.mkdir, to_procore.write = mkdir, write  # type: ignore[method-assign]
    job, _ = await create_job(state, job_json())
    result = await runner.run_job(state, home, job)
    assert (result.status, result.stats.failed, result.stats.flagged) == ("completed", 0, 0)
    documents = {path: content for path, content in world.tree(project).items()
                 if path.startswith("Backup")}
    assert documents == {
        "Backup": None, "Backup/Sub": None, "Backup/Sub/Deeper": None,
        # unrecorded and different in size: the source's content, as a new version
        "Backup/Sub/Deeper/changed.pdf": b"the source's version",
        # the same size, and Procore keeps no checksum: assumed identical, not sent again
        "Backup/Sub/same size.pdf": b"abcdefghij",
        "Backup/new.pdf": b"nobody else wrote this"}
    assert world.versions(project, "Backup/Sub/Deeper/changed.pdf") == 2
    items = {i.path: (i.status, i.note) for i in await state.items(job.id) if not i.is_dir}
    assert items["Sub/gone.pdf"] == ("skipped", VANISHED)
    assert items["Sub/same size.pdf"][0] == "processed"
    assert "assumed identical" in (items["Sub/same size.pdf"][1] or "")
    assert items["Sub/Deeper/changed.pdf"][0] == "success"
    assert result.stats.skipped == 2 and result.stats.transferred == 2


class FolderRemovedLocal(LocalConnector):
    """A local destination whose folder `Backup/Sub` someone removes just before this job
    writes its first file there."""

    def __init__(self, root: str) -> None:
        super().__init__(root, fsync=False, workers=0)
        self.removed = False

    def _remove(self) -> None:
        if not self.removed:
            self.removed = True
            shutil.rmtree(Path(self._root, "Backup", "Sub"))

    async def copy_small(self, files: Any) -> Any:
        self._remove()
        return await super().copy_small(files)

    async def write_local(self, path: str, file: Any, **options: Any) -> Entry:
        self._remove()
        return await super().write_local(path, file, **options)


async def test_a_destination_folder_removed_meanwhile_fails_its_files_with_a_reason(
        tmp_path, opened, local_pair) -> None:
    home, state = opened
    write_tree(tmp_path / "src", {"Project/Sub/a.txt": b"a", "Project/Sub/big.bin": b"b" * BIG})
    local_pair(LocalConnector, FolderRemovedLocal)
    job, _ = await create_job(state, job_json())
    result = await runner.run_job(state, home, job)
    assert (result.status, result.stats.failed) == ("warn", 2)
    errors = {i.path: i.last_error for i in await state.items(job.id, status="retry")}
    assert set(errors) == {"Sub/a.txt", "Sub/big.bin"}
    assert all(e.startswith("gone from the destination during the run: not found: ")
               for e in errors.values()), errors
    # the next run makes the folder again
    local_pair(LocalConnector, LocalConnector)
    assert (await runner.run_job(state, home, job)).status == "completed"
    assert tree(tmp_path / "dst" / "Backup") == tree(tmp_path / "src" / "Project")


async def test_procore_folder_or_file_removed_meanwhile_fails_with_a_reason(
        tmp_path, opened, sandbox, to_procore, monkeypatch) -> None:
    home, state = opened
    world, project = sandbox.world, to_procore.sandbox_project  # type: ignore[attr-defined]
    write_tree(tmp_path / "src", {"Project/Sub/new.pdf": b"new",
                                  "Project/old.pdf": b"changed at the source"})
    world.add_file(project, "Backup/Sub/other.pdf", b"there before")
    world.add_file(project, "Backup/old.pdf", b"there before")
    written = to_procore.write

    async def write(path: str, chunks: Any, **options: Any) -> Entry:
        for gone in ("Backup/Sub", "Backup/old.pdf"):
            if gone.startswith(path) or path.startswith(gone + "/"):
                world.delete(world.node_at(project, gone))
        return await written(path, chunks, **options)

    to_procore.write = write  # type: ignore[method-assign]
    job, _ = await create_job(state, job_json())
    result = await runner.run_job(state, home, job)
    assert (result.status, result.stats.failed) == ("warn", 2)
    errors = {i.path: i.last_error for i in await state.items(job.id, status="retry")}
    assert set(errors) == {"Sub/new.pdf", "old.pdf"}
    assert all(e.startswith("gone from the destination during the run: ")
               for e in errors.values()), errors
    # the next run makes the folder and the file again
    fresh = await open_procore(sandbox, state, home)
    monkeypatch.setattr(runner, "open_connector", lambda connection, secrets, opening=None: (
        fresh if connection.platform == "procore" else LocalConnector(connection.config["path"])))
    assert (await runner.run_job(state, home, job)).status == "completed"
    assert world.tree(project)["Backup/Sub/new.pdf"] == b"new"
    assert world.tree(project)["Backup/old.pdf"] == b"changed at the source"
