"""rclone connections through the real `dryviq-tui` command: copy jobs between a local folder
and S3 (moto behind rclone), read back through rclone itself, and `connections add rclone`
refusing what cannot work before anything is saved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, assert_same_tree, clean_env, set_mtime
from tests.s3 import S3Bucket, S3Server, rclone_env

pytestmark = pytest.mark.slow

MTIME_NS = 1_600_000_000_123_456_789
FILES = {
    "Drawings/A-101 Schéma.pdf": b"%PDF-1.7 elevation\n" * 300,
    "Drawings/図面/S-201.pdf": os.urandom(1_500_000),  # streamed (over 1 MiB)
    "Specifications/empty.txt": b"",
    "readme.txt": b"project root\n",
}


def _job(name: str, source: str, source_path: str, destination: str,
         destination_path: str) -> str:
    return json.dumps({
        "name": name, "kind": "transfer",
        "transfer": {"transfer_type": "copy",
                     "source": {"connection": {"id": source},
                                "target": {"path": source_path}},
                     "destination": {"connection": {"id": destination},
                                     "target": {"path": destination_path}},
                     "simulation_mode": False},
        "schedule": {"mode": "manual"}})


def _rclone_bytes(server: S3Server, *args: str) -> bytes:
    proc = subprocess.run(["rclone", "--config", str(server.config), *args],
                          capture_output=True, timeout=120, env=rclone_env(), check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def test_copy_jobs_local_to_s3_and_back(cli: Cli, tmp_path: Path, s3_bucket: S3Bucket) -> None:
    server = s3_bucket.server
    source = tmp_path / "office" / "Project"
    for rel, data in FILES.items():
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        set_mtime(path, MTIME_NS)
    back = tmp_path / "back"
    back.mkdir()
    cli("connections", "add", "local", "office", "--path", tmp_path / "office")
    cli("connections", "add", "rclone", "cloud", "--remote", s3_bucket.remote,
        "--config", server.config)
    cli("connections", "add", "local", "back", "--path", back)
    for name, text in (("Up", _job("Up", "office", "/Project", "cloud", "/Archive")),
                       ("Down", _job("Down", "cloud", "/Archive", "back", "/Project"))):
        job_file = tmp_path / f"{name}.json"
        job_file.write_text(text)
        cli("jobs", "create", "--file", job_file)

    up = cli.json("jobs", "run", "Up")
    assert up["status"] == "completed", up
    listing = json.loads(_rclone_bytes(server, "lsjson", "-R", "--files-only",
                                       f"{s3_bucket.remote}/Archive"))
    assert sorted(item["Path"] for item in listing) == sorted(FILES)
    for rel, data in FILES.items():  # each object, read back by rclone itself
        assert _rclone_bytes(server, "cat", f"{s3_bucket.remote}/Archive/{rel}") == data

    down = cli.json("jobs", "run", "Down")
    assert down["status"] == "completed", down
    assert_same_tree(source, back / "Project")  # bytes, and mtimes kept both ways

    again = cli.json("jobs", "run", "Up")  # nothing changed: nothing sent
    assert again["stats"]["transferred"] == 0, again


def _refused(cli: Cli, *args: str | os.PathLike[str], env: dict[str, str] | None = None,
             ) -> str:
    proc = cli("connections", "add", "rclone", "cloud", *args, check=2, env=env)
    assert "Traceback" not in proc.stderr
    assert cli.json("connections", "list") == []  # nothing saved
    return proc.stderr


def test_add_rclone_refuses_what_cannot_work(cli: Cli, tmp_path: Path,
                                            s3_server: S3Server) -> None:
    config = str(s3_server.config)
    message = _refused(cli, "--remote", "nosuch:folder", "--config", config)
    assert "no remote 'nosuch'" in message and "rclone listremotes" in message, message
    message = _refused(cli, "--remote", "s3test:x", "--config", tmp_path / "missing.conf")
    assert "missing.conf: no such file" in message, message
    without = tmp_path / "bin"  # a PATH with no rclone on it
    without.mkdir()
    message = _refused(cli, "--remote", "s3test:x", "--config", config,
                       env=clean_env(PATH=str(without)))
    assert "rclone is not installed" in message and "apt-get install rclone" in message, message
    assert shutil.which("rclone", path=str(without)) is None
