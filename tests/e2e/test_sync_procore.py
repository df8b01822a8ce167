"""Two-way sync with Procore on either side, against the embedded sandbox over real HTTP.

The CLI runs in this process (`core.cli.main`, the code `dryviq-tui` runs) so the tests can
look inside the sandbox between runs: a file's versions, the Recycle Bin, the writes made.
The interrupted sync kills a real `dryviq-tui jobs run` subprocess.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.auth import OOB_REDIRECT
from core.cli import jobs as cli_jobs
from core.cli import main
from core.cli.output import ProgressReporter
from core.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SandboxConfig, World
from core.sandbox.samples import SECOND_PROJECT
from tests.e2e.conftest import clean_env, dryviq_command
from tests.e2e.test_procore import COMPANY, PROJECT, SECRET_ENV, local, project_id

WRITES = ("POST", "PATCH", "PUT", "DELETE")
CONFLICT = " (conflict "


@dataclass
class Cli:
    """`dryviq-tui --home HOME ...`, run in this process; checks the exit code."""

    home: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *args: str | os.PathLike[str], input: str = "", check: int = 0) -> str:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        code = main(["--home", str(self.home), *map(str, args)])
        out, err = self.capsys.readouterr()
        assert code == check, f"{args}: exit code {code}\n--- stdout\n{out}\n--- stderr\n{err}"
        return out

    def json(self, *args: str | os.PathLike[str], check: int = 0) -> Any:
        return json.loads(self(*args, "--json", check=check))

    def run(self, job: str, check: int = 0, *options: str) -> dict[str, Any]:
        return self.json("jobs", "run", job, *options, check=check)


@dataclass
class Procore:
    """A sandbox project seen from the test: its documents, versions and Recycle Bin."""

    world: World
    project: str = PROJECT

    @property
    def id(self) -> int:
        return project_id(self.world, self.project)

    def files(self, folder: str) -> dict[str, bytes]:
        """The live files under `folder`, by path relative to it, with their bytes."""
        prefix = folder.strip("/") + "/"
        return {path[len(prefix):]: data for path, data in self.world.tree(self.id).items()
                if path.startswith(prefix) and data is not None}

    def folders(self, folder: str) -> set[str]:
        prefix = folder.strip("/") + "/"
        return {path[len(prefix):] for path, data in self.world.tree(self.id).items()
                if path.startswith(prefix) and data is None}

    def put(self, path: str, data: bytes, at: float | None = None) -> None:
        """A user's upload in Procore: a new document, or a new version of the one there
        (`at`: when, if not now)."""
        self.world.add_file(self.id, path, data, at=at)

    def versions(self, path: str) -> list[bytes]:
        with self.world.lock:
            return [v.blob.data for v in self.world.node_at(self.id, path).versions]

    def updated_at(self, path: str) -> float:
        with self.world.lock:
            return self.world.node_at(self.id, path).updated_at

    def delete(self, path: str) -> None:
        """A user's delete in Procore: to the Recycle Bin."""
        self.world.delete(self.world.node_at(self.id, path))

    def recycled(self) -> dict[str, bytes | None]:
        """What the Recycle Bin holds, by name: a file's latest bytes, None for a folder."""
        with self.world.lock:
            bin_ = self.world.projects[self.id].recycle_bin
            return {n.name: None if n.is_folder else n.latest.blob.data
                    for n in bin_.children.values()}

    def writes(self) -> int:
        """Requests that change something in Procore or its storage."""
        return sum(count for key, count in self.world.requests.items()
                   if key.split()[0] in WRITES)


@pytest.fixture
def cli(tmp_path: Path, capsys, monkeypatch) -> Cli:
    monkeypatch.setenv(SECRET_ENV, SANDBOX_CLIENT_SECRET)
    monkeypatch.delenv("DRYVIQ_HOME", raising=False)
    # ProgressReporter's default stream is the sys.stderr of when it was imported: a closed
    # capture by now; give it this test's
    monkeypatch.setattr(cli_jobs, "ProgressReporter",
                        lambda **options: ProgressReporter(sys.stderr, **options))
    return Cli(tmp_path / "home", capsys, monkeypatch)


def add_procore(cli: Cli, world: World, url: str, name: str = "procore",
                project: str = PROJECT) -> None:
    """A Procore connection, signed in the way a user over SSH does (code pasted on stdin)."""
    code = world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT)
    cli("connections", "add", "procore", name, "--domain", url, "--client-id",
        SANDBOX_CLIENT_ID, "--client-secret-env", SECRET_ENV, "--company", COMPANY,
        "--project", project, input=code + "\n")


def add_local(cli: Cli, root: Path, name: str = "files") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    cli("connections", "add", "local", name, "--path", root)
    return root


def make_job(cli: Cli, tmp_path: Path, name: str, source: tuple[str, str],
             destination: tuple[str, str], transfer_type: str = "sync",
             **transfer: object) -> str:
    definition = {"name": name, "kind": "transfer",
                  "transfer": {"transfer_type": transfer_type,
                               "source": {"connection": {"id": source[0]},
                                          "target": {"path": source[1]}},
                               "destination": {"connection": {"id": destination[0]},
                                               "target": {"path": destination[1]}},
                               **transfer},
                  "schedule": {"mode": "manual"}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(definition))
    cli("jobs", "create", "--file", path)
    return name


class Clock:
    """Local mtimes in the past, ten seconds apart: older than anything Procore stores now."""

    def __init__(self) -> None:
        self.now = time.time() - 100_000

    def put(self, root: Path, path: str, data: bytes, mtime: float | None = None) -> None:
        self.now += 10
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        os.utime(full, (mtime or self.now,) * 2)


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` but the engine's trash, by path, with its bytes."""
    return {k: v for k, v in local(root).items()
            if v is not None and not k.startswith(".dryviq-trash")}


def trashed(root: Path) -> dict[str, bytes]:
    """The trash's files, by their path below its date folder."""
    base = root / ".dryviq-trash"
    return {str(Path(*p.relative_to(base).parts[1:])): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file()} if base.exists() else {}


@pytest.fixture
def procore(sandbox) -> Procore:
    return Procore(sandbox.world)


# -- local <-> Procore ---------------------------------------------------------------------


@dataclass
class Synced:
    """A local folder synced with /Sync in Procore: which is the job's source, and both."""

    cli: Cli
    root: Path
    procore: Procore
    clock: Clock
    procore_first: bool  # Procore is the job's source

    def run(self, check: int = 0, *options: str) -> dict[str, Any]:
        return self.cli.run("sync", check, *options)

    def local_to_procore(self, stats: dict[str, Any], key: str) -> int:
        """A per-side counter of what the run did to Procore (`key`: added, updated,
        deleted), whichever side of the job it is."""
        return stats[f"{key}_{'source' if self.procore_first else 'destination'}"]

    def procore_to_local(self, stats: dict[str, Any], key: str) -> int:
        return stats[f"{key}_{'destination' if self.procore_first else 'source'}"]

    def in_step(self) -> dict[str, bytes]:
        mine = files(self.root)
        assert mine == self.procore.files("Sync")
        return mine


START = {"Drawings/A-101.pdf": b"a101 v1", "Specs/empty.txt": b"", "RFIs/RFI-1.pdf": b"rfi 1",
         "RFIs/RFI-2.pdf": b"rfi 2", "Plan.pdf": b"plan v1"}
FIELD = {"Field/Daily log.pdf": b"from the field", "Field/empty.log": b""}


@pytest.fixture(params=[False, True], ids=["local-source", "procore-source"])
def synced(request, cli: Cli, sandbox, procore: Procore, tmp_path: Path) -> Synced:
    """A local folder synced with /Sync in Procore, each side having started with files the
    other lacked (0-byte files among them), one run done. Either side is the job's source."""
    root = add_local(cli, tmp_path / "files")
    add_procore(cli, sandbox.world, sandbox.url)
    clock = Clock()
    for path, data in START.items():
        clock.put(root, path, data)
    (root / "Photos").mkdir()
    for path, data in FIELD.items():
        procore.put(f"Sync/{path}", data)
    ends = [("files", "/"), ("procore", "/Sync")]
    if request.param:
        ends.reverse()
    make_job(cli, tmp_path, "sync", *ends)
    done = Synced(cli, root, procore, clock, request.param)
    first = done.run()
    assert first["status"] == "completed", first
    stats = first["stats"]
    assert (done.local_to_procore(stats, "added"), done.procore_to_local(stats, "added")) == (
        5, 2), stats
    return done


def test_a_first_sync_merges_both_sides_and_a_rerun_writes_nothing(synced: Synced) -> None:
    procore = synced.procore
    assert synced.in_step() == START | FIELD
    assert "Photos" in procore.folders("Sync") and (synced.root / "Field").is_dir()
    writes = procore.writes()
    again = synced.run()
    assert again["status"] == "no_changes", again
    assert procore.writes() == writes
    print(f"\nno-change sync rerun: {again['stats']['api_calls']} API calls")
    assert again["stats"]["api_calls"] <= 10, again["stats"]


def test_changes_and_deletes_on_either_side_go_to_the_other(synced: Synced) -> None:
    procore, root, clock = synced.procore, synced.root, synced.clock
    clock.put(root, "Drawings/A-101.pdf", b"a101 v2, from the office")
    clock.put(root, "Specs/empty.txt", b"no longer empty")
    clock.put(root, "Specs/new empty.txt", b"")
    (root / "RFIs" / "RFI-2.pdf").unlink()
    procore.put("Sync/Field/Daily log.pdf", b"daily log, day 2")
    procore.put("Sync/Field/Photo 1.jpg", b"jpeg")
    procore.delete("Sync/RFIs/RFI-1.pdf")
    result = synced.run()
    assert result["status"] == "completed", result
    stats = result["stats"]
    assert synced.in_step() == {
        "Drawings/A-101.pdf": b"a101 v2, from the office", "Specs/empty.txt": b"no longer empty",
        "Specs/new empty.txt": b"", "Plan.pdf": b"plan v1",
        "Field/Daily log.pdf": b"daily log, day 2", "Field/Photo 1.jpg": b"jpeg",
        "Field/empty.log": b""}
    # a local edit is a new version of the document Procore holds, never a second document
    assert procore.versions("Sync/Drawings/A-101.pdf") == [b"a101 v1",
                                                           b"a101 v2, from the office"]
    assert procore.versions("Sync/Specs/empty.txt") == [b"", b"no longer empty"]
    assert procore.recycled() == {"RFI-2.pdf": b"rfi 2", "RFI-1.pdf": b"rfi 1"}
    assert trashed(root) == {"RFIs/RFI-1.pdf": b"rfi 1"}
    assert (synced.local_to_procore(stats, "added"), synced.local_to_procore(stats, "updated"),
            synced.local_to_procore(stats, "deleted")) == (1, 2, 1), stats
    assert (synced.procore_to_local(stats, "added"), synced.procore_to_local(stats, "updated"),
            synced.procore_to_local(stats, "deleted")) == (1, 1, 1), stats
    writes = procore.writes()
    again = synced.run()
    assert again["status"] == "no_changes", again
    assert procore.writes() == writes and again["stats"]["api_calls"] <= 10


def conflict_copies(names: dict[str, bytes]) -> dict[str, bytes]:
    return {name: data for name, data in names.items() if CONFLICT in name}


@pytest.mark.parametrize("newer", ["local", "procore"])
def test_changed_on_both_sides_keeps_the_older_as_a_conflict_copy_on_both(
        synced: Synced, newer: str) -> None:
    procore, root = synced.procore, synced.root
    if newer == "local":
        procore.put("Sync/Plan.pdf", b"plan, edited in Procore")
        synced.clock.put(root, "Plan.pdf", b"plan, edited at the office later",
                         mtime=time.time() + 60)
        kept, older = b"plan, edited at the office later", b"plan, edited in Procore"
    else:
        synced.clock.put(root, "Plan.pdf", b"plan, edited at the office")
        procore.put("Sync/Plan.pdf", b"plan, edited in Procore later")
        kept, older = b"plan, edited in Procore later", b"plan, edited at the office"
    result = synced.run()
    assert result["status"] == "completed", result
    assert result["stats"]["conflicts"] == 1
    mine = synced.in_step()
    assert mine["Plan.pdf"] == kept
    ((copy, data),) = conflict_copies(mine).items()
    assert data == older and copy.startswith("Plan (conflict ") and copy.endswith(".pdf")
    if newer == "local":  # Procore's document was renamed: its history goes with it
        assert procore.versions(f"Sync/{copy}") == [b"plan v1", older]
        assert procore.versions("Sync/Plan.pdf") == [kept]
    else:
        assert procore.versions("Sync/Plan.pdf") == [b"plan v1", kept]
        assert procore.versions(f"Sync/{copy}") == [older]
    writes = procore.writes()
    assert synced.run()["status"] == "no_changes"
    assert procore.writes() == writes


def test_names_that_differ_only_in_case_never_meet_in_one_procore_document(
        synced: Synced) -> None:
    """Procore ignores case; a local folder may hold Plan.pdf and plan.pdf. Sent to Procore,
    the second is renamed (duplicate_names: rename); sent back from a local destination to a
    Procore source it is flagged, and in no case is one written over the other."""
    procore, root, clock = synced.procore, synced.root, synced.clock
    clock.put(root, "plan.pdf", b"a second plan, lower case")  # Plan.pdf is there too
    result = synced.run(4 if synced.procore_first else 0)
    there = procore.files("Sync")
    assert procore.versions("Sync/Plan.pdf") == [b"plan v1"]
    assert files(root)["Plan.pdf"] == b"plan v1"
    if synced.procore_first:
        assert result["status"] == "warn" and result["stats"]["flagged"] == 1, result
        assert "plan (1).pdf" not in there
    else:
        assert result["status"] == "completed", result
        assert there["plan (1).pdf"] == b"a second plan, lower case"
    writes = procore.writes()
    again = synced.run(4 if synced.procore_first else 0)
    assert again["stats"]["transferred"] == 0 and procore.writes() == writes


def test_a_deleted_folder_goes_with_its_files_and_a_case_rename_is_no_change(
        synced: Synced) -> None:
    procore, root = synced.procore, synced.root
    for name in ("RFI-1.pdf", "RFI-2.pdf"):
        (root / "RFIs" / name).unlink()
    (root / "RFIs").rmdir()
    procore.delete("Sync/Field")
    os.rename(root / "Plan.pdf", root / "plan.pdf")  # the same file to Procore
    result = synced.run()
    assert result["status"] == "completed", result
    kept = {"Drawings/A-101.pdf": b"a101 v1", "Specs/empty.txt": b""}
    assert files(root) == kept | {"plan.pdf": b"plan v1"}
    assert procore.files("Sync") == kept | {"Plan.pdf": b"plan v1"}
    assert procore.versions("Sync/Plan.pdf") == [b"plan v1"]
    assert not (root / "RFIs").exists() and not (root / "Field").exists()
    assert "RFIs" not in procore.folders("Sync")
    assert procore.recycled() == {"RFI-1.pdf": b"rfi 1", "RFI-2.pdf": b"rfi 2", "RFIs": None,
                                  "Field": None}
    assert trashed(root) == {"Field/Daily log.pdf": b"from the field", "Field/empty.log": b""}
    writes = procore.writes()
    assert synced.run()["status"] == "no_changes"
    assert procore.writes() == writes


def test_an_edit_timed_like_procores_copy_is_still_sent(synced: Synced) -> None:
    """Procore's updated_at is when it stored the file: a local edit of the same size whose
    mtime falls within a second of it is still an edit."""
    procore, root = synced.procore, synced.root
    synced.clock.put(root, "Plan.pdf", b"plan v2", mtime=procore.updated_at("Sync/Plan.pdf"))
    result = synced.run()
    assert result["stats"]["transferred"] == 1, result
    assert procore.versions("Sync/Plan.pdf") == [b"plan v1", b"plan v2"]


def test_an_edit_with_a_case_only_rename_is_sent_as_a_version(synced: Synced) -> None:
    """Procore ignores case, so Plan.pdf renamed plan.pdf is still its document: an edit made
    with the rename is a change of that document, not a first meeting of two files."""
    procore, root = synced.procore, synced.root
    os.rename(root / "Plan.pdf", root / "plan.pdf")
    synced.clock.put(root, "plan.pdf", b"plan v2")  # the same size as v1
    procore.world.change(procore.world.node_at(procore.id, "Sync/Specs/empty.txt"),
                         name="EMPTY.txt")
    procore.put("Sync/Specs/EMPTY.txt", b"filled in Procore")
    result = synced.run()
    assert result["status"] == "completed", result
    assert result["stats"]["conflicts"] == 0
    assert procore.versions("Sync/Plan.pdf") == [b"plan v1", b"plan v2"]
    assert files(root)["Specs/empty.txt"] == b"filled in Procore"
    assert not conflict_copies(files(root)) and not conflict_copies(procore.files("Sync"))
    writes = procore.writes()
    assert synced.run()["status"] == "no_changes"
    assert procore.writes() == writes


def test_a_local_name_procore_refuses_syncs_under_its_fitted_name(synced: Synced) -> None:
    procore, root = synced.procore, synced.root
    synced.clock.put(root, "RFIs/RFI-3: beam?.pdf", b"rfi 3")
    synced.clock.put(root, "Phase 1: Site/log.pdf", b"site log")
    first = synced.run()
    assert first["status"] == "completed", first
    assert procore.files("Sync/RFIs")["RFI-3_ beam_.pdf"] == b"rfi 3"
    assert procore.files("Sync/Phase 1_ Site") == {"log.pdf": b"site log"}
    writes = procore.writes()
    again = synced.run()
    assert again["status"] == "no_changes", again
    assert procore.writes() == writes
    assert set(files(root / "RFIs")) == {"RFI-1.pdf", "RFI-2.pdf", "RFI-3: beam?.pdf"}
    assert not (root / "Phase 1_ Site").exists()
    procore.put("Sync/RFIs/RFI-3_ beam_.pdf", b"rfi 3, answered in Procore")
    assert synced.run()["stats"]["transferred"] == 1
    assert files(root / "RFIs")["RFI-3: beam?.pdf"] == b"rfi 3, answered in Procore"
    assert procore.versions("Sync/RFIs/RFI-3_ beam_.pdf") == [b"rfi 3",
                                                              b"rfi 3, answered in Procore"]


@pytest.mark.parametrize("policy", ["latest", "source", "destination", "failure"])
def test_first_sync_over_two_full_sides(cli: Cli, sandbox, procore: Procore, tmp_path: Path,
                                        policy: str) -> None:
    """Same name and size on both sides: matched, nothing sent (Procore keeps no checksum
    to compare). Same name, different content: the conflict policy; Procore's is newer."""
    root = add_local(cli, tmp_path / "files")
    add_procore(cli, sandbox.world, sandbox.url)
    clock = Clock()
    clock.put(root, "same.pdf", b"same")
    clock.put(root, "differs.pdf", b"office version")
    procore.put("Sync/same.pdf", b"same")
    procore.put("Sync/differs.pdf", b"field version, newer")
    make_job(cli, tmp_path, "merge", ("files", "/"), ("procore", "/Sync"),
             conflict_resolution=policy)
    writes = procore.writes()
    result = cli.run("merge", 4 if policy == "failure" else 0)
    assert result["stats"]["conflicts"] == 1, result
    kept = {"latest": b"field version, newer", "source": b"office version",
            "destination": b"field version, newer"}.get(policy)
    if kept is None:  # failure: flagged, neither side changed
        assert (files(root)["differs.pdf"], procore.files("Sync")["differs.pdf"]) == (
            b"office version", b"field version, newer")
    else:
        assert files(root) == procore.files("Sync") == {"same.pdf": b"same",
                                                        "differs.pdf": kept}
    assert procore.versions("Sync/same.pdf") == [b"same"]
    assert (procore.writes() > writes) == (policy == "source")
    again = cli.run("merge", 4 if policy == "failure" else 0)
    assert again["stats"]["transferred"] == 0


def test_the_delete_guard_stops_a_sync_that_would_follow_an_emptied_procore_folder(
        synced: Synced) -> None:
    procore, root = synced.procore, synced.root
    with procore.world.lock:
        top = procore.world.node_at(procore.id, "Sync")
        children = list(top.children.values())
    for child in children:
        procore.world.delete(child)
    before = files(root)
    guarded = synced.run(1)
    assert guarded["status"] == "guarded", guarded
    assert "empty" in guarded["stats"]["delete_guard"]
    assert files(root) == before and not trashed(root)
    forced = synced.run(0, "--force")
    assert forced["status"] == "completed", forced
    assert files(root) == {} and trashed(root) == START | FIELD


# -- Procore <-> Procore, across two projects ---------------------------------------------


@pytest.fixture
def projects(cli: Cli, sandbox) -> tuple[Procore, Procore]:
    """Two projects of one company, each a connection; the first with a few documents."""
    world = sandbox.world
    add_procore(cli, world, sandbox.url, "riverside")
    add_procore(cli, world, sandbox.url, "harbor", SECOND_PROJECT)
    riverside, harbor = Procore(world), Procore(world, SECOND_PROJECT)
    for path, data in START.items():
        riverside.put(f"Sync/{path}", data)
    riverside.put("Sync/Plan.pdf", b"plan v2")
    world.add_folder(riverside.id, "Sync/Photos")
    return riverside, harbor


def test_copy_between_two_projects_sends_each_change_as_a_version(
        cli: Cli, projects: tuple[Procore, Procore], tmp_path: Path) -> None:
    riverside, harbor = projects
    make_job(cli, tmp_path, "across", ("riverside", "/Sync"), ("harbor", "/Copy"), "copy")
    first = cli.run("across")
    assert first["status"] == "completed", first
    assert harbor.files("Copy") == riverside.files("Sync")
    assert harbor.folders("Copy") == riverside.folders("Sync")
    writes = riverside.writes()
    again = cli.run("across")
    assert again["status"] == "no_changes", again
    assert riverside.writes() == writes and again["stats"]["api_calls"] <= 10, again["stats"]
    # an edit of the same size, stored in the very second the copy was made: the times of
    # two Procore documents say nothing about their content
    riverside.put("Sync/Drawings/A-101.pdf", b"a101 v2", at=harbor.updated_at(
        "Copy/Drawings/A-101.pdf"))
    assert cli.run("across")["stats"]["transferred"] == 1
    assert harbor.versions("Copy/Drawings/A-101.pdf") == [b"a101 v1", b"a101 v2"]
    assert harbor.files("Copy") == riverside.files("Sync")


def test_sync_between_two_projects(cli: Cli, projects: tuple[Procore, Procore],
                                   tmp_path: Path) -> None:
    riverside, harbor = projects
    make_job(cli, tmp_path, "both ways", ("riverside", "/Sync"), ("harbor", "/Synced"))
    assert cli.run("both ways")["status"] == "completed"
    assert harbor.files("Synced") == riverside.files("Sync")
    riverside.put("Sync/Drawings/A-101.pdf", b"a101 v2, riverside")
    harbor.put("Synced/RFIs/RFI-1.pdf", b"rfi 1, answered at harbor")
    harbor.put("Synced/New.pdf", b"new at harbor")
    riverside.delete("Sync/RFIs/RFI-2.pdf")
    riverside.put("Sync/Plan.pdf", b"plan, riverside edit")
    harbor.put("Synced/Plan.pdf", b"plan, harbor edit, later", at=time.time() + 5)
    result = cli.run("both ways")
    assert result["status"] == "completed", result
    assert result["stats"]["conflicts"] == 1
    mine = riverside.files("Sync")
    assert mine == harbor.files("Synced")
    assert mine["Plan.pdf"] == b"plan, harbor edit, later"
    assert list(conflict_copies(mine).values()) == [b"plan, riverside edit"]
    assert (mine["Drawings/A-101.pdf"], mine["RFIs/RFI-1.pdf"], mine["New.pdf"]) == (
        b"a101 v2, riverside", b"rfi 1, answered at harbor", b"new at harbor")
    assert "RFIs/RFI-2.pdf" not in mine and harbor.recycled() == {"RFI-2.pdf": b"rfi 2"}
    assert harbor.versions("Synced/Drawings/A-101.pdf") == [b"a101 v1", b"a101 v2, riverside"]
    assert riverside.versions("Sync/RFIs/RFI-1.pdf") == [b"rfi 1", b"rfi 1, answered at harbor"]
    writes = riverside.writes()
    again = cli.run("both ways")
    assert again["status"] == "no_changes", again
    assert riverside.writes() == writes and again["stats"]["api_calls"] <= 10


# -- an interrupted sync ------------------------------------------------------------------


def kill_after(home: Path, progress: Callable[[], int], target: int) -> int:
    """Start `dryviq-tui jobs run sync`, SIGKILL it once `progress()` reaches `target` (or
    it ends); the progress made by then."""
    proc = subprocess.Popen([*dryviq_command(), "--home", str(home), "jobs", "run", "sync"],
                            env=clean_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while proc.poll() is None and progress() < target and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return progress()


@pytest.mark.slow
def test_a_sync_killed_twice_finishes_without_conflicts_duplicates_or_lost_deletes(
        cli: Cli, make_sandbox, tmp_path: Path) -> None:
    sandbox = make_sandbox(SandboxConfig(spike_limit=10_000))  # no pacing: a quick test
    procore = Procore(sandbox.world)
    root = add_local(cli, tmp_path / "files")
    add_procore(cli, sandbox.world, sandbox.url)
    clock = Clock()
    start = {f"{folder}/Sheet {n:02d}.pdf": b"sheet %02d, v1" % n
             for n, folder in enumerate(["Drawings", "Specs"] * 20)}
    for path, data in start.items():
        clock.put(root, path, data)
    make_job(cli, tmp_path, "sync", ("files", "/"), ("procore", "/Sync"))
    assert cli.run("sync")["status"] == "completed"
    history = {path: procore.versions(f"Sync/{path}") for path in start}
    # edits on both sides (some of the same size, some not) and new files on both
    expected = dict(start)
    paths = sorted(start)
    for n, path in enumerate(paths[:10]):
        expected[path] = b"sheet, edited at the office" + b"!" * (n % 2)
        clock.put(root, path, expected[path])
    for n, path in enumerate(paths[10:20]):
        expected[path] = b"sheet %02d, v2" % n if n % 2 else b"sheet, edited in the field"
        procore.put(f"Sync/{path}", expected[path])
    for n, path in enumerate(paths[26:28]):  # changed on both sides: Procore's is newer
        clock.put(root, path, b"office conflict %d" % n)
        procore.put(f"Sync/{path}", b"field conflict, newer %d" % n)
        expected[path] = b"field conflict, newer %d" % n
    for path in paths[20:23]:  # deletes on both sides
        (root / path).unlink()
        del expected[path]
    for path in paths[23:26]:
        procore.delete(f"Sync/{path}")
        del expected[path]
    for n in range(10):
        expected[f"Office/New {n}.pdf"] = b"new at the office %d" % n
        clock.put(root, f"Office/New {n}.pdf", expected[f"Office/New {n}.pdf"])
        expected[f"Field/New {n}.pdf"] = b"new in the field %d" % n
        procore.put(f"Sync/Field/New {n}.pdf", expected[f"Field/New {n}.pdf"])

    def progress() -> int:  # files already as they should end, on both sides
        there, here = procore.files("Sync"), files(root)
        return sum((there.get(p), here.get(p)) == (data, data) for p, data in expected.items())

    before = progress()
    sandbox.world.config.latency = 0.02  # so a kill lands among the writes
    reached = [kill_after(cli.home, progress, before + 8),
               kill_after(cli.home, progress, before + 25)]
    sandbox.world.config.latency = 0.0
    assert before < reached[0] < reached[1] < len(expected), (before, reached)
    done = cli.run("sync")
    assert done["status"] == "completed", done
    mine = files(root)
    assert mine == procore.files("Sync")
    copies = conflict_copies(mine)  # one for each real conflict, none of the run's own
    assert sorted(copies.values()) == [b"office conflict 0", b"office conflict 1"], copies
    assert {k: v for k, v in mine.items() if k not in copies} == expected  # no twin
    assert procore.recycled() == {Path(p).name: start[p] for p in paths[20:26]}
    assert trashed(root) == {p: start[p] for p in paths[23:26]}
    for path, versions in history.items():  # one new version per edit, none twice
        if path not in expected or path in paths[26:28]:
            continue
        want = versions + ([expected[path]] if expected[path] != start[path] else [])
        assert procore.versions(f"Sync/{path}") == want, path
    for n in range(10):
        assert len(procore.versions(f"Sync/Office/New {n}.pdf")) == 1
    writes = procore.writes()
    assert cli.run("sync")["status"] == "no_changes"
    assert procore.writes() == writes
