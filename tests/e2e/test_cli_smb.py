"""SMB connections through the real `dryviq-tui` command, against a real Samba server: adding
one (a wrong password or share saves nothing), and copy jobs from a local folder to the share
and back, checked byte for byte on the share's disk and with Samba's own smbclient."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    Cli,
    assert_same_tree,
    clean_env,
    describe,
    dryviq_command,
    part_files,
    set_mtime,
)
from tests.samba import SmbFolder

pytestmark = pytest.mark.slow

BASE_MTIME_NS = 1_600_000_000_123_456_700  # SMB keeps time to 100 ns


def add_smb(cli: Cli, folder: SmbFolder, name: str = "share", *, password: str | None = None,
            share: str | None = None, check: bool | int = True, debug: bool = False,
            ) -> subprocess.CompletedProcess[str]:
    server = folder.server
    env = clean_env(SMB_TEST_PASSWORD=server.password if password is None else password)
    return cli(*(["-vv"] if debug else []), "connections", "add", "smb", name, "--server",
               server.host, "--port",
               str(server.port), "--share", share or server.share, "--path", folder.path,
               "--username", server.username, "--password-env", "SMB_TEST_PASSWORD",
               check=check, env=env)


def job_json(name: str, source: str, destination: str, into: str = "/",
             **transfer: object) -> str:
    return json.dumps({
        "name": name, "kind": "transfer",
        "transfer": {"transfer_type": "copy",
                     "source": {"connection": {"id": source}, "target": {"path": "/"}},
                     "destination": {"connection": {"id": destination},
                                     "target": {"path": into}},
                     **transfer},
        "schedule": {"mode": "manual"},
    })


def create_job(cli: Cli, tmp_path: Path, text: str) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(text, encoding="utf-8")
    cli("jobs", "create", "--file", job_file)


def write_tree(root: Path) -> None:
    files = {
        "Drawings/Schéma élévation.pdf": b"%PDF-1.7 elevation\n" * 300,
        "Drawings/図面.pdf": "図面 A-101\n".encode() * 50,
        "Specs/Level 2/empty.txt": b"",
        "Photos/site photo.jpg": os.urandom(3 << 20),
        "README.txt": b"sample\n",
    }
    for index, (rel, data) in enumerate(sorted(files.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        set_mtime(path, BASE_MTIME_NS + index * 1_000_000_100)
    (root / "Empty Folder").mkdir()


def test_adding_a_share_checks_it_and_keeps_the_password_secret(
        cli: Cli, smb_folder: SmbFolder) -> None:
    server = smb_folder.server
    # with the debug log on stderr too: the password is in none of it
    wrong = add_smb(cli, smb_folder, password="wrong-" + server.password, check=2, debug=True)
    assert "the server refused the username or password" in wrong.stderr, describe(wrong)
    missing = add_smb(cli, smb_folder, share="nosuchshare", check=2)
    assert "share 'nosuchshare' not found" in missing.stderr, describe(missing)
    assert cli.json("connections", "list") == []  # nothing saved
    add_smb(cli, smb_folder)
    shown = cli("connections", "show", "share", "--json")
    listed = cli("connections", "list", "--json")
    for output in (wrong.stdout + wrong.stderr, shown.stdout, listed.stdout):
        assert server.password not in output
    assert json.loads(shown.stdout)["config"]["share"] == server.share
    for log in (cli.home / "logs").rglob("*"):
        if log.is_file():
            assert server.password not in log.read_text(errors="replace"), log


def test_copy_local_to_the_share_and_back(cli: Cli, smb_folder: SmbFolder,
                                          tmp_path: Path) -> None:
    source = tmp_path / "site"
    write_tree(source)
    back = tmp_path / "back"
    back.mkdir()
    cli("connections", "add", "local", "site", "--path", source)
    cli("connections", "add", "local", "back", "--path", back)
    add_smb(cli, smb_folder)
    create_job(cli, tmp_path, job_json("up", "site", "share"))
    result = cli.json("jobs", "run", "up")
    assert (result["status"], result["stats"]["failed"]) == ("completed", 0), result
    assert_same_tree(source, smb_folder.local)
    # Samba's own client reads the same bytes
    fetched = tmp_path / "fetched.jpg"
    smb_folder.server.smbclient(f'get "{smb_folder.path}/Photos/site photo.jpg" {fetched}')
    assert fetched.read_bytes() == (source / "Photos/site photo.jpg").read_bytes()
    assert cli.json("jobs", "run", "up")["status"] == "no_changes"

    create_job(cli, tmp_path, job_json("down", "share", "back"))
    result = cli.json("jobs", "run", "down")
    assert (result["status"], result["stats"]["failed"]) == ("completed", 0), result
    assert_same_tree(source, back)


def test_windows_names_and_case_collisions_on_the_way_to_the_share(
        cli: Cli, smb_folder: SmbFolder, tmp_path: Path) -> None:
    source = tmp_path / "site"
    source.mkdir()
    for name, data in {"case.txt": b"lower", "Case.txt": b"Upper", "CON.txt": b"device",
                       "plan.": b"dot", "a:b.pdf": b"colon"}.items():
        (source / name).write_bytes(data)
    cli("connections", "add", "local", "site", "--path", source)
    add_smb(cli, smb_folder)
    create_job(cli, tmp_path, job_json("up", "site", "share", duplicate_names="rename"))
    result = cli.json("jobs", "run", "up")
    assert (result["status"], result["stats"]["failed"]) == ("completed", 0), result
    there = {p.name: p.read_bytes() for p in smb_folder.local.iterdir()}
    assert there == {"Case.txt": b"Upper", "case (1).txt": b"lower", "CON_.txt": b"device",
                     "plan_": b"dot", "a_b.pdf": b"colon"}
    assert cli.json("jobs", "run", "up")["stats"]["transferred"] == 0

    # duplicate_names "warn": the second name is flagged, never written over the first
    create_job(cli, tmp_path, job_json("flagged", "site", "share", "/again",
                                       duplicate_names="warn"))
    result = cli.json("jobs", "run", "flagged", check=4)
    assert (result["status"], result["stats"]["flagged"]) == ("warn", 1), result
    again = {p.name: p.read_bytes() for p in (smb_folder.local / "again").iterdir()}
    assert there.items() - again.items() == {("case (1).txt", b"lower")}


def test_a_killed_upload_leaves_no_partial_file_and_the_next_run_finishes(
        cli: Cli, smb_folder: SmbFolder, tmp_path: Path) -> None:
    source = tmp_path / "site"
    source.mkdir()
    data = os.urandom(40 << 20)
    (source / "big.bin").write_bytes(data)
    cli("connections", "add", "local", "site", "--path", source)
    add_smb(cli, smb_folder)
    create_job(cli, tmp_path, job_json("up", "site", "share"))
    with (tmp_path / "run.log").open("w") as log:
        proc = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run",
                                 "up"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=clean_env())
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > (1 << 20) for p in smb_folder.local.glob(".dryviq-*")):
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "no temporary file grew on the share"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (smb_folder.local / "big.bin").exists()
    assert part_files(smb_folder.local), "the killed writer's temporary file is there"
    result = cli.json("jobs", "run", "up")
    assert (result["status"], result["stats"]["failed"]) == ("completed", 0), result
    assert (smb_folder.local / "big.bin").read_bytes() == data
    assert not part_files(smb_folder.local), "the leftover was cleaned up"
