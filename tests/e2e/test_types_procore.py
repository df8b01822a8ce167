"""Move, migrate, publish and taxonomy with Procore as the destination and as the source,
against the embedded sandbox over real HTTP, through the CLI (run in this process, as in
test_sync_procore). Each test runs both ways over the same starting trees: the source has a
folder of two files and an empty folder; the destination a file of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import test_sync_procore
from tests.e2e.test_sync_procore import (
    Cli,
    Clock,
    Procore,
    add_local,
    add_procore,
    files,
    make_job,
    trashed,
)

cli, procore = test_sync_procore.cli, test_sync_procore.procore  # the fixtures
FOLDER = "Docs"  # the Procore side's folder


@dataclass
class Local:
    """The local side: a connection's whole folder."""

    root: Path
    clock: Clock
    connection: str = "files"
    path: str = "/"

    def put(self, path: str, data: bytes) -> None:
        self.clock.put(self.root, path, data)

    def mkdir(self, path: str) -> None:
        (self.root / path).mkdir(parents=True, exist_ok=True)

    def files(self) -> dict[str, bytes]:
        return files(self.root)

    def folders(self) -> set[str]:
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*")
                if p.is_dir() and ".dryviq-trash" not in p.parts}

    def delete(self, path: str) -> None:
        (self.root / path).unlink()

    def removed(self) -> dict[str, bytes]:
        """What the run deleted here, by path: the trash's files."""
        return trashed(self.root)


@dataclass
class InProcore:
    """The Procore side: the project's FOLDER."""

    procore: Procore
    connection: str = "procore"
    path: str = f"/{FOLDER}"

    def put(self, path: str, data: bytes) -> None:
        self.procore.put(f"{FOLDER}/{path}", data)

    def mkdir(self, path: str) -> None:
        self.procore.world.add_folder(self.procore.id, f"{FOLDER}/{path}")

    def files(self) -> dict[str, bytes]:
        return self.procore.files(FOLDER)

    def folders(self) -> set[str]:
        return self.procore.folders(FOLDER)

    def delete(self, path: str) -> None:
        self.procore.delete(f"{FOLDER}/{path}")

    def removed(self) -> dict[str, bytes]:
        """What the run deleted here, by name: the Recycle Bin's files."""
        return {name: data for name, data in self.procore.recycled().items()
                if data is not None}


Side = Local | InProcore


@dataclass
class Ends:
    cli: Cli
    tmp_path: Path
    source: Side
    destination: Side

    def job(self, transfer_type: str, **transfer: object) -> str:
        return make_job(self.cli, self.tmp_path, transfer_type,
                        (self.source.connection, self.source.path),
                        (self.destination.connection, self.destination.path), transfer_type,
                        **transfer)


@pytest.fixture(params=["to-procore", "from-procore"])
def ends(request, cli: Cli, sandbox, procore: Procore, tmp_path: Path) -> Ends:
    """Local and Procore connections, one the source, the other the destination, with the
    starting trees."""
    local = Local(add_local(cli, tmp_path / "files"), Clock())
    add_procore(cli, sandbox.world, sandbox.url)
    remote = InProcore(procore)
    source, destination = ((local, remote) if request.param == "to-procore"
                           else (remote, local))
    if isinstance(destination, InProcore):
        destination.mkdir("")
    source.put("d/one.pdf", b"one")
    source.put("d/two.pdf", b"two")
    source.mkdir("empty")
    destination.put("theirs.pdf", b"theirs")
    return Ends(cli, tmp_path, source, destination)


def test_move_removes_each_source_file_after_its_copy(ends: Ends) -> None:
    source, destination = ends.source, ends.destination
    source.put("taken.pdf", b"source's taken.pdf")
    destination.put("TAKEN.pdf", b"the destination's own")  # the same name to Procore
    if isinstance(destination, Local):
        destination.mkdir("d/two.pdf")  # a folder where a file would go: not copied
    result = ends.cli.run(ends.job("move"), 4)
    flagged = 2 if isinstance(destination, Local) else 1
    assert result["status"] == "warn" and result["stats"]["flagged"] == flagged, result
    moved = {"d/one.pdf": b"one"} if isinstance(destination, Local) else {
        "d/one.pdf": b"one", "d/two.pdf": b"two"}
    assert destination.files() == {"theirs.pdf": b"theirs",
                                   "TAKEN.pdf": b"the destination's own", **moved}
    kept = {"taken.pdf": b"source's taken.pdf"}
    if isinstance(destination, Local):
        kept["d/two.pdf"] = b"two"
    assert source.files() == kept  # a file not delivered stays at the source
    assert {Path(p).name: data for p, data in source.removed().items()} == {
        Path(p).name: data for p, data in moved.items()}  # to the trash, the Recycle Bin
    assert "empty" in destination.folders() and "empty" not in source.folders()
    again = ends.cli.run("move", 4)
    assert again["stats"]["transferred"] == 0 and source.files() == kept


def test_migrate_sends_once_and_does_not_look_again(ends: Ends) -> None:
    source, destination = ends.source, ends.destination
    job = ends.job("migrate")
    assert ends.cli.run(job)["status"] == "completed"
    source.put("d/one.pdf", b"one, edited later")
    source.put("new.pdf", b"new")
    destination.delete("d/two.pdf")
    result = ends.cli.run(job)
    assert result["stats"]["transferred"] == 1, result
    assert destination.files() == {"d/one.pdf": b"one", "new.pdf": b"new",
                                   "theirs.pdf": b"theirs"}
    assert "empty" in destination.folders()


def test_publish_mirrors_the_source_and_reverts_destination_edits(ends: Ends) -> None:
    source, destination = ends.source, ends.destination
    job = ends.job("publish", max_delete=100)
    assert ends.cli.run(job)["status"] == "completed"
    assert destination.files() == source.files() == {"d/one.pdf": b"one", "d/two.pdf": b"two"}
    assert destination.removed() == {"theirs.pdf": b"theirs"}
    assert "empty" in destination.folders()
    destination.put("d/one.pdf", b"edited at the destination")
    result = ends.cli.run(job)
    assert result["stats"]["updated_destination"] == 1, result
    assert destination.files() == source.files()
    if isinstance(destination, InProcore):  # reverted by a new version: the edit is kept
        assert destination.procore.versions(f"{FOLDER}/d/one.pdf") == [
            b"one", b"edited at the destination", b"one"]
    assert ends.cli.run(job)["status"] == "no_changes"


def test_taxonomy_copies_folders_only(ends: Ends) -> None:
    source, destination = ends.source, ends.destination
    result = ends.cli.run(ends.job("taxonomy"))
    assert result["status"] == "completed", result
    assert destination.files() == {"theirs.pdf": b"theirs"}
    assert {"d", "empty"} <= destination.folders()
    assert result["stats"]["files"] == 0
    assert ends.cli.run("taxonomy")["status"] == "no_changes"
    assert len(source.files()) == 2
