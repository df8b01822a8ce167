"""Never a version nobody changed: copies into Procore documents this job has no record of.

Procore keeps no checksum on a file or a version and its `updated_at` is the upload time, so
the size is all that tells an unrecorded document from the source file without downloading
it. Here, against the sandbox over real HTTP with the real command: a second job, and a job
whose state DB was lost, adopt what is already there instead of adding identical versions,
and a copy killed again and again (some kills land right after a create, before the run
could record it) ends with one version per document.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.sandbox import World
from core.sandbox.world import Missing
from tests.e2e import test_procore
from tests.e2e.conftest import Cli, dryviq_command
from tests.e2e.test_procore import add_procore, env, job, local, project_id, remote, run

pytestmark = pytest.mark.slow
files = test_procore.files  # the fixture: a local connection "files" over an empty folder

ADOPTED = "assumed identical, not uploaded"
SENT = ("success", "processed")


def write_files(root: Path, rnd: random.Random, count: int) -> None:
    """`count` files of a few KiB spread over nested folders, a few at the top."""
    for n in range(count):
        folder = ["", "Drawings", "Drawings/Structural", "Specifications", "RFIs"][n % 5]
        path = root / folder / f"Sheet {n:03d}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rnd.randbytes(rnd.randint(200, 20_000)))


def uploads(world: World) -> int:
    """Requests that store content: upload slots, storage posts, creates and new versions."""
    return sum(count for key, count in world.requests.items()
               if key.split()[0] in ("POST", "PATCH", "PUT")
               and any(part in key for part in ("/files", "/uploads", "/file_versions")))


def versions(world: World, folder: str) -> dict[str, list[int]]:
    """Each live document under `folder` (by path relative to it) and its version ids."""
    with world.lock:
        top = world.node_at(project_id(world), folder)
        return {node.path[len(folder) + 1:]: [v.id for v in node.versions]
                for node in top.walk()
                if not node.is_folder and not node.is_deleted and not node.is_recycle_bin}


def recorded_versions(home: Path, job_name: str) -> dict[str, str | None]:
    """The destination version id each file's item record holds, from the state DB itself."""
    with sqlite3.connect(home / "state.db") as db:
        rows = db.execute(
            "SELECT items.path, items.destination_version FROM items JOIN jobs "
            "ON jobs.id = items.job_id WHERE jobs.name = ? AND NOT items.is_dir",
            (job_name,)).fetchall()
    return dict(rows)


def file_items(cli: Cli, job_name: str) -> dict[str, dict[str, Any]]:
    return {i["path"][1:]: i for i in cli.json("jobs", "items", job_name) if not i["is_dir"]}


def assert_one_version_each(world: World, folder: str, source: Path) -> dict[str, list[int]]:
    found = versions(world, folder)
    assert remote(world, folder) == local(source)  # every document once, bytes as the source
    several = {path: ids for path, ids in found.items() if len(ids) != 1}
    assert not several, f"documents with more than one version: {several}"
    return found


def test_jobs_without_a_record_adopt_identical_documents_instead_of_new_versions(
        cli: Cli, sandbox, files: Path, tmp_path: Path) -> None:
    world = sandbox.world
    write_files(files, random.Random(10), 36)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "first", ("files", "/"), ("procore", "/Shared"))
    assert run(cli, "first")["stats"]["transferred"] == 36
    first = assert_one_version_each(world, "Shared", files)
    assert recorded_versions(cli.home, "first") == {  # each create's version id is kept
        path: str(ids[-1]) for path, ids in first.items()}
    sent = uploads(world)

    # another job copying the same tree into the same folder: nothing to send
    job(cli, tmp_path, "second", ("files", "/"), ("procore", "/Shared"))
    for _ in range(2):  # the first run adopts, the next one goes by its records
        second = run(cli, "second")
        assert second["status"] == "no_changes", second
        assert uploads(world) == sent
        print(f"\nsecond job: {second['stats']['api_calls']} API calls, no uploads")
    items = file_items(cli, "second")
    assert {i["status"] for i in items.values()} == {"processed"}
    assert all(ADOPTED in i["note"] for i in items.values())
    assert versions(world, "Shared") == first
    assert recorded_versions(cli.home, "second") == {
        path: str(ids[-1]) for path, ids in first.items()}

    # the state DB lost: a fresh one, connections and job made again; one file has grown
    for db in cli.home.glob("state.db*"):
        db.unlink()
    cli("connections", "add", "local", "files", "--path", files)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "third", ("files", "/"), ("procore", "/Shared"))
    grown = files / "RFIs" / "Sheet 004.pdf"
    grown.write_bytes(grown.read_bytes() + b" answered")
    third = run(cli, "third")
    assert (third["status"], third["stats"]["transferred"]) == ("completed", 1), third
    after = versions(world, "Shared")
    assert len(after.pop("RFIs/Sheet 004.pdf")) == 2  # a real difference: a new version
    assert after == {path: ids for path, ids in first.items() if path != "RFIs/Sheet 004.pdf"}
    assert remote(world, "Shared") == local(files)

    # an edit that keeps the size is still seen: by the source's mtime in the record
    edited = files / "Drawings" / "Sheet 001.pdf"
    edited.write_bytes(bytes(b ^ 0xFF for b in edited.read_bytes()))
    os.utime(edited, (time.time() + 60, time.time() + 60))
    assert run(cli, "third")["stats"]["transferred"] == 1
    assert len(versions(world, "Shared")["Drawings/Sheet 001.pdf"]) == 2
    assert remote(world, "Shared") == local(files)
    assert run(cli, "third")["status"] == "no_changes"
    now = versions(world, "Shared")
    assert recorded_versions(cli.home, "third") == {
        path: str(ids[-1]) for path, ids in now.items()}

    # someone adds a version in Procore: the job leaves it there, run after run
    world.add_file(project_id(world), "Shared/Specifications/Sheet 003.pdf", b"marked up")
    for _ in range(2):
        assert run(cli, "third")["status"] == "no_changes"
        assert len(versions(world, "Shared")["Specifications/Sheet 003.pdf"]) == 2
    note = file_items(cli, "third")["Specifications/Sheet 003.pdf"]["note"]
    assert "changed only at the destination" in note


@contextmanager
def killing_at(world: World, change: str, *, lands: bool = True) -> Iterator[dict[str, Any]]:
    """While `armed["pid"]` is set, SIGKILL that process at the `armed["after"]`-th time the
    sandbox makes a `change` ("create_file", "add_version"): after it is made (`lands`), so
    the run never hears of it, or instead of making it."""
    armed: dict[str, Any] = {"pid": None, "after": 0, "fired": 0}
    make = getattr(world, change)

    def kill_then_make(*args: Any, **kwargs: Any) -> Any:
        if armed["pid"] is not None:
            armed["after"] -= 1
            if armed["after"] == 0:
                os.kill(armed["pid"], signal.SIGKILL)
                armed["pid"], armed["fired"] = None, armed["fired"] + 1
                if not lands:
                    raise Missing("the caller is gone")
        return make(*args, **kwargs)

    setattr(world, change, kill_then_make)
    try:
        yield armed
    finally:
        setattr(world, change, make)


def start_run(cli: Cli, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run", name],
                            env=env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def run_until_killed(cli: Cli, name: str, armed: dict[str, Any], after: int) -> None:
    proc = start_run(cli, name)
    try:
        armed["after"], armed["pid"] = after, proc.pid
        proc.wait()
    finally:
        armed["pid"] = None
        proc.kill()  # no-op once dead; never leave a copy running behind a failure
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{name} finished before its kill"


KILLS = 14
FILES = 60


def test_a_copy_killed_again_and_again_leaves_one_version_per_document(
        cli: Cli, sandbox, files: Path, tmp_path: Path) -> None:
    world = sandbox.world
    rnd = random.Random(25)
    write_files(files, rnd, FILES)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "killed", ("files", "/"), ("procore", "/Killed"))
    landed_unrecorded = []  # per kill: documents in Procore the job has no sent record of
    with killing_at(world, "create_file") as armed:
        for kill in range(KILLS):
            if kill % 2 == 0:  # as a document is made, else at a random moment
                run_until_killed(cli, "killed", armed, rnd.randint(1, 3))
            else:
                proc = start_run(cli, "killed")
                time.sleep(rnd.uniform(0.3, 1.2))
                proc.kill()
                proc.wait()
                assert proc.returncode == -signal.SIGKILL, f"run {kill} finished before its kill"
            present = versions(world, "Killed")
            several = {path: ids for path, ids in present.items() if len(ids) != 1}
            assert not several, f"after kill {kill}: {several}"
            items = file_items(cli, "killed")
            landed_unrecorded.append(sum(
                1 for path in present
                if path not in items or items[path]["status"] not in SENT))
    print(f"\ndocuments landed but unrecorded after each kill: {landed_unrecorded}")
    assert armed["fired"] == KILLS // 2, armed  # every kill at a create came
    assert all(n >= 1 for n in landed_unrecorded[::2]), landed_unrecorded

    done = run(cli, "killed")
    assert done["status"] == "completed" and done["stats"]["failed"] == 0, done
    assert len(assert_one_version_each(world, "Killed", files)) == FILES
    items = file_items(cli, "killed")
    assert {i["status"] for i in items.values()} <= set(SENT)
    assert sum(ADOPTED in (i["note"] or "") for i in items.values()) >= KILLS // 2
    assert run(cli, "killed")["status"] == "no_changes"
    assert len(assert_one_version_each(world, "Killed", files)) == FILES


def test_a_new_version_killed_before_or_after_it_lands_ends_as_one_new_version(
        cli: Cli, sandbox, files: Path, tmp_path: Path) -> None:
    world = sandbox.world
    write_files(files, random.Random(3), 12)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "edits", ("files", "/"), ("procore", "/Edits"))
    run(cli, "edits")
    edited = sorted(files.rglob("*.pdf"))[::2]
    for path in edited:  # same size, other bytes: only the mtime shows the change
        path.write_bytes(bytes(b ^ 0x5A for b in path.read_bytes()))
        os.utime(path, (time.time() + 60, time.time() + 60))
    with killing_at(world, "add_version") as armed:
        run_until_killed(cli, "edits", armed, 1)  # landed, never heard of
    with killing_at(world, "add_version", lands=False) as armed:
        run_until_killed(cli, "edits", armed, 1)  # died before it landed
    done = run(cli, "edits")
    assert done["status"] == "completed" and done["stats"]["failed"] == 0, done
    assert remote(world, "Edits") == local(files)  # no "(source conflict ...)" copies either
    counts = {path: len(ids) for path, ids in versions(world, "Edits").items()}
    changed = {str(path.relative_to(files)) for path in edited}
    assert counts == {path: 2 if path in changed else 1 for path in counts}
