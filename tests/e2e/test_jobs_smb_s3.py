"""Procore <-> SMB share and Procore <-> S3 (through rclone) jobs, through the real
`dryviq-tui` command against the embedded sandbox, a real smbd and moto's S3 server. Every
test runs once per other side (`side`); what arrives there is read back with smbclient or
rclone itself, never through our connectors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from core.sandbox import SandboxConfig
from tests.e2e import other_sides
from tests.e2e.conftest import Cli
from tests.e2e.other_sides import (
    CONNECTION,
    MIB,
    OtherSide,
    SmbSide,
    files,
    removed,
    sha256,
)
from tests.e2e.test_procore import add_procore, job, run
from tests.e2e.test_sync_procore import Procore

pytestmark = pytest.mark.slow
side, rclone_environment = other_sides.side, other_sides.rclone_environment  # the fixtures

FOLDER = "Docs"  # the Procore side's folder in every job
TREE = {
    "Drawings/A-101 Floor Plan.pdf": os.urandom(70_000),
    "Drawings/Détails façade №2.pdf": b"unicode names travel intact",
    "Drawings/Structural/S-201 Framing.pdf": os.urandom(300_000),
    "Specifications/empty.txt": b"",
    "図面/平面図 🏗.pdf": "二階".encode(),
}


@pytest.fixture
def procore(cli: Cli, sandbox) -> Procore:
    """The sandbox's project, added as connection 'procore'."""
    add_procore(cli, sandbox)
    return Procore(sandbox.world)


def put(procore: Procore, tree: dict[str, bytes]) -> None:
    for rel, data in tree.items():
        procore.put(f"{FOLDER}/{rel}", data)


def make(cli: Cli, tmp_path: Path, transfer_type: str, to_procore: bool,
         **transfer: object) -> str:
    """A job of `transfer_type` between /Docs in Procore and the other side's root."""
    ends = [("procore", f"/{FOLDER}"), (CONNECTION, "/")]
    source, destination = ends[::-1] if to_procore else ends
    job(cli, tmp_path, transfer_type, source, destination, transfer_type=transfer_type,
        **transfer)
    return transfer_type


def test_copy_from_procore_and_back(cli: Cli, tmp_path: Path, procore: Procore,
                                    side: OtherSide) -> None:
    put(procore, TREE)
    procore.world.add_folder(procore.id, f"{FOLDER}/Photos")  # an empty folder
    job(cli, tmp_path, "down", ("procore", f"/{FOLDER}"), (CONNECTION, "/"))
    first = run(cli, "down")
    assert first["status"] == "completed", first
    assert files(side) == TREE
    if side.empty_folders:
        assert "Photos" in side.folders()
    assert run(cli, "down")["status"] == "no_changes"  # S3: the empty folder too

    job(cli, tmp_path, "up", (CONNECTION, "/"), ("procore", "/Back"))
    back = run(cli, "up")
    assert back["status"] == "completed" and back["stats"]["failed"] == 0, back
    assert procore.files("Back") == TREE
    assert run(cli, "up")["status"] == "no_changes"


def test_sync_carries_a_change_made_on_each_side(cli: Cli, tmp_path: Path, procore: Procore,
                                                 side: OtherSide) -> None:
    put(procore, {"from procore.pdf": b"procore's"})
    side.put({"Folder/from the other side.pdf": b"the other side's"})
    make(cli, tmp_path, "sync", to_procore=False)
    assert run(cli, "sync")["status"] == "completed"
    both = {"from procore.pdf": b"procore's", "Folder/from the other side.pdf": b"the other side's"}
    assert files(side) == procore.files(FOLDER) == both

    side.put({"from procore.pdf": b"edited on the other side"})
    put(procore, {"Folder/new in procore.pdf": b"new in procore"})
    result = run(cli, "sync")
    assert result["stats"]["transferred"] == 2, result
    assert files(side) == procore.files(FOLDER) == {
        **both, "from procore.pdf": b"edited on the other side",
        "Folder/new in procore.pdf": b"new in procore"}
    assert run(cli, "sync")["status"] == "no_changes"


def test_move_to_procore_trashes_each_file_sent(cli: Cli, tmp_path: Path, procore: Procore,
                                                side: OtherSide) -> None:
    sent = {"d/one.pdf": b"one", "d/two.pdf": b"two", "top.pdf": b"top"}
    side.put(sent)
    make(cli, tmp_path, "move", to_procore=True)
    result = run(cli, "move")
    assert result["status"] == "completed" and result["stats"]["transferred"] == 3, result
    assert procore.files(FOLDER) == sent
    assert files(side) == {}
    assert removed(side) == sent  # recoverable from the side's trash
    assert run(cli, "move")["stats"]["transferred"] == 0


def test_migrate_sends_once_and_does_not_look_again(cli: Cli, tmp_path: Path,
                                                    procore: Procore, side: OtherSide) -> None:
    put(procore, {"d/one.pdf": b"one", "two.pdf": b"two"})
    make(cli, tmp_path, "migrate", to_procore=False)
    assert run(cli, "migrate")["status"] == "completed"
    put(procore, {"d/one.pdf": b"one, edited later", "new.pdf": b"new"})
    result = run(cli, "migrate")
    assert result["stats"]["transferred"] == 1, result
    assert files(side) == {"d/one.pdf": b"one", "two.pdf": b"two", "new.pdf": b"new"}


def test_publish_mirrors_procore_and_reverts_edits(cli: Cli, tmp_path: Path,
                                                   procore: Procore, side: OtherSide) -> None:
    published = {"d/one.pdf": b"one", "two.pdf": b"two"}
    put(procore, published)
    side.put({"theirs.pdf": b"theirs"})
    make(cli, tmp_path, "publish", to_procore=False, max_delete=100)
    assert run(cli, "publish")["status"] == "completed"
    assert files(side) == published
    assert removed(side) == {"theirs.pdf": b"theirs"}
    side.put({"d/one.pdf": b"edited on the other side"})
    result = run(cli, "publish")
    assert result["stats"]["updated_destination"] == 1, result
    assert files(side) == published
    assert run(cli, "publish")["status"] == "no_changes"


def test_taxonomy_copies_folders_only(cli: Cli, tmp_path: Path, procore: Procore,
                                      side: OtherSide) -> None:
    side.put({"Drawings/Civil/c.pdf": b"c", "Specs/s.pdf": b"s"})
    make(cli, tmp_path, "taxonomy", to_procore=True)
    result = run(cli, "taxonomy")
    assert result["status"] == "completed" and result["stats"]["files"] == 0, result
    assert procore.files(FOLDER) == {}
    assert procore.folders(FOLDER) == {"Drawings", "Drawings/Civil", "Specs"}
    assert run(cli, "taxonomy")["status"] == "no_changes"


# -- names -------------------------------------------------------------------------------

# Names Procore holds that Windows refuses: a reserved device name, a trailing dot, a quote
# (Procore itself refuses : < > | ? * \, so those cannot come from it)
WINDOWS_REFUSES = {"CON.pdf": b"reserved", "nul": b"reserved, no extension",
                   "trailing.": b"trailing dot", 'say "hi".pdf': b"quote"}
RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?", re.IGNORECASE)


def windows_accepts(name: str) -> bool:
    return (not RESERVED.fullmatch(name) and not name.endswith((".", " "))
            and not set(name) & set('\\/:*?"<>|'))


def test_names_windows_refuses_are_fixed_for_smb_and_kept_on_s3(
        cli: Cli, tmp_path: Path, procore: Procore, side: OtherSide) -> None:
    put(procore, {**WINDOWS_REFUSES, "plain.pdf": b"plain"})
    make(cli, tmp_path, "copy", to_procore=False)
    result = run(cli, "copy")
    assert result["stats"]["failed"] == 0 and result["stats"]["transferred"] == 5, result
    arrived = files(side)
    if not isinstance(side, SmbSide):  # S3 has no such rules: unchanged
        assert arrived == {**WINDOWS_REFUSES, "plain.pdf": b"plain"}
        assert result["status"] == "completed"
    else:  # fixed by the segment policy, and each rename named in the job's items
        items = {i["path"].lstrip("/"): i for i in cli.json("jobs", "items", "copy")}
        assert arrived["plain.pdf"] == b"plain"
        for name, data in WINDOWS_REFUSES.items():
            item = items[name]
            fitted = item["destination_path"].lstrip("/")
            assert fitted != name and windows_accepts(fitted), item
            assert item["status"] == "processed" and "renamed" in item["detail"], item
            assert arrived[fitted] == data
        assert len(arrived) == 5
    assert run(cli, "copy")["stats"]["transferred"] == 0  # found again under the fixed names


@pytest.mark.parametrize("duplicate_names", ["rename", "warn"])
def test_names_differing_in_case_collide_on_smb(cli: Cli, tmp_path: Path, smb_folder,
                                                rclone_environment: None,
                                                duplicate_names: str) -> None:
    share = SmbSide(smb_folder)
    share.add(cli)
    source = tmp_path / "files"
    source.mkdir()
    (source / "case.txt").write_bytes(b"lower")
    (source / "Case.txt").write_bytes(b"upper")
    cli("connections", "add", "local", "files", "--path", source)
    job(cli, tmp_path, "cases", ("files", "/"), (CONNECTION, "/"),
        duplicate_names=duplicate_names)
    if duplicate_names == "rename":
        result = run(cli, "cases")
        assert (result["status"], result["stats"]["transferred"]) == ("completed", 2), result
        assert files(share) == {"Case.txt": b"upper", "case (1).txt": b"lower"}
    else:
        result = run(cli, "cases", check=4)
        assert (result["status"], result["stats"]["flagged"]) == ("warn", 1), result
        assert files(share) == {"Case.txt": b"upper"}
    assert run(cli, "cases", check=False)["stats"]["transferred"] == 0


# -- size and pace -----------------------------------------------------------------------

def test_a_file_over_100_mib_from_a_local_folder_to_smb(cli: Cli, tmp_path: Path, smb_folder,
                                                        rclone_environment: None) -> None:
    """From a local folder: the sandbox keeps every file in memory, a local file costs none."""
    share = SmbSide(smb_folder)
    share.add(cli)
    source = tmp_path / "files"
    source.mkdir()
    big = source / "Model.ifc"
    block = os.urandom(MIB)
    with big.open("wb") as out:  # every MiB different, so a misplaced block shows
        for n in range(100):
            out.write(n.to_bytes(8, "big") + block[8:])
        out.write(block[:12_345])
    cli("connections", "add", "local", "files", "--path", source)
    job(cli, tmp_path, "big", ("files", "/"), (CONNECTION, "/"))
    result = run(cli, "big")
    assert result["status"] == "completed" and result["stats"]["bytes"] == big.stat().st_size
    fetched = tmp_path / "fetched.ifc"
    share.smbclient(f'get "Model.ifc" "{fetched}"')
    assert sha256(fetched) == sha256(big) == sha256(smb_folder.local / "Model.ifc")


def test_the_pacer_governs_procore_in_a_job_to_smb(cli: Cli, tmp_path: Path, make_sandbox,
                                                   smb_folder, rclone_environment: None) -> None:
    """A call a file: 14 files spend a budget of 10 calls a 13-second window (long enough
    to read as the hourly one); the run waits for the reset instead of meeting 429s."""
    sandbox = make_sandbox(SandboxConfig(hourly_limit=10, hourly_window=13, spike_limit=1000))
    share = SmbSide(smb_folder)
    share.add(cli)
    add_procore(cli, sandbox)
    procore = Procore(sandbox.world)
    tree = {f"Sheet {n:02d}.pdf": b"%d" % n for n in range(14)}
    put(procore, tree)
    job(cli, tmp_path, "paced", ("procore", f"/{FOLDER}"), (CONNECTION, "/"))
    done = run(cli, "paced")
    assert done["status"] == "completed", done
    assert done["stats"]["rate_limit_waits"] >= 1 and done["stats"]["rate_limited"] == 0
    assert sandbox.world.rate_limited == 0
    assert files(share) == tree
