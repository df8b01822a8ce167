"""The other side of a Procore job in end-to-end tests: an SMB share (real smbd) or an S3
bucket (moto behind rclone), added as a connection through the real `dryviq-tui` command and
read back independently of our connectors: the share with Samba's own `smbclient` (and on the
disk behind it), the bucket with rclone itself.

`side` is the fixture: parametrized over both, so a test written once runs against each.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from core.connectors.base import ENGINE_FOLDERS, TRASH_FOLDER
from tests.e2e.conftest import Cli, clean_env
from tests.s3 import S3Bucket, rclone_env
from tests.samba import SmbFolder

PASSWORD_ENV = "DRYVIQ_TEST_SMB_PASSWORD"
CONNECTION = "other"  # the other side's connection name in every job
MIB = 1 << 20


class OtherSide(Protocol):
    """What a test needs of the other side; paths are '/'-joined, relative to its root."""

    name: str
    empty_folders: bool  # empty folders exist there (not on S3, where folders are prefixes)

    def add(self, cli: Cli) -> None:
        """`connections add` it as CONNECTION."""
        ...

    def put(self, files: dict[str, bytes]) -> None:
        """Files written there by someone else (a user of the share, another S3 client)."""
        ...

    def delete(self, path: str) -> None: ...

    def everything(self, into: Path) -> dict[str, Path]:
        """Download every file, engine folders too, into `into`: local paths by path."""
        ...

    def folders(self) -> set[str]: ...

    def identities(self) -> dict[str, object]:
        """Something for each file that changes whenever the file is written again."""
        ...


def _read(downloaded: dict[str, Path]) -> dict[str, bytes]:
    return {rel: path.read_bytes() for rel, path in downloaded.items()}


def files(side: OtherSide) -> dict[str, bytes]:
    """Every file there but the engine's own folders, with its bytes, as read back
    independently."""
    with tempfile.TemporaryDirectory() as into:
        return {rel: data for rel, data in _read(side.everything(Path(into))).items()
                if rel.split("/", 1)[0] not in ENGINE_FOLDERS}


def removed(side: OtherSide) -> dict[str, bytes]:
    """What runs deleted there: the trash's files by their path below its date folder."""
    with tempfile.TemporaryDirectory() as into:
        everything = _read(side.everything(Path(into)))
    return {rel.split("/", 2)[2]: data for rel, data in everything.items()
            if rel.startswith(TRASH_FOLDER + "/")}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def _walk(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class SmbSide:
    """A fresh folder on the test share: the connection's root."""

    folder: SmbFolder
    name: str = "smb"
    empty_folders: bool = True

    def add(self, cli: Cli) -> None:
        server = self.folder.server
        cli("connections", "add", "smb", CONNECTION, "--server", server.host,
            "--port", str(server.port), "--share", server.share, "--path", self.folder.path,
            "--username", server.username, "--password-env", PASSWORD_ENV,
            env=clean_env(**{PASSWORD_ENV: server.password}))

    def put(self, files: dict[str, bytes]) -> None:
        for rel, data in files.items():
            (self.folder.local / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.folder.local / rel).write_bytes(data)

    def delete(self, path: str) -> None:
        (self.folder.local / path).unlink()

    def smbclient(self, *commands: str) -> subprocess.CompletedProcess[str]:
        """Samba's own client, in this side's folder."""
        return self.folder.server.smbclient(f'cd "{self.folder.path}"', *commands)

    def everything(self, into: Path) -> dict[str, Path]:
        """Through smbclient (`mget` of the whole folder), checked against the disk behind
        the share: both must show the same files with the same bytes."""
        self.smbclient(f'lcd "{into}"', "prompt OFF", "recurse ON", "mget *")
        shared = _walk(into)
        on_disk = _walk(self.folder.local)
        assert sorted(shared) == sorted(on_disk), (
            f"smbclient shows {sorted(shared)}, the disk holds {sorted(on_disk)}")
        for rel, path in on_disk.items():
            assert sha256(path) == sha256(shared[rel]), f"{rel}: smbclient read other bytes"
        return shared

    def folders(self) -> set[str]:
        return {str(p.relative_to(self.folder.local)) for p in self.folder.local.rglob("*")
                if p.is_dir() and not set(p.relative_to(self.folder.local).parts)
                & ENGINE_FOLDERS}

    def identities(self) -> dict[str, object]:
        """Inodes on the disk behind the share: a file written again (to a temporary name,
        then renamed over the old one) has a new one."""
        return {rel: path.stat().st_ino for rel, path in _walk(self.folder.local).items()}


@dataclass
class S3Side:
    """A fresh versioned bucket: the connection's root."""

    bucket: S3Bucket
    name: str = "s3"
    empty_folders: bool = False

    def add(self, cli: Cli) -> None:
        cli("connections", "add", "rclone", CONNECTION, "--remote", self.bucket.remote,
            "--config", str(self.bucket.server.config))

    def remote(self, path: str = "") -> str:
        return f"{self.bucket.remote}/{path}" if path else self.bucket.remote

    def put(self, files: dict[str, bytes]) -> None:
        with tempfile.TemporaryDirectory() as staging:
            for rel, data in files.items():
                (Path(staging) / rel).parent.mkdir(parents=True, exist_ok=True)
                (Path(staging) / rel).write_bytes(data)
            self.bucket.server.rclone("copy", staging, self.remote())

    def delete(self, path: str) -> None:
        self.bucket.server.rclone("deletefile", self.remote(path))

    def listing(self) -> dict[str, int]:
        """Every object rclone lists, by path, with its size."""
        listed = json.loads(self.bucket.server.rclone("lsjson", "-R", "--files-only",
                                                      self.remote()).stdout)
        return {entry["Path"]: entry["Size"] for entry in listed}

    def everything(self, into: Path) -> dict[str, Path]:
        """Through rclone: its listing, and each object's bytes as `rclone copy` fetches."""
        listed = self.listing()
        self.bucket.server.rclone("copy", self.remote(), str(into))
        fetched = _walk(into)
        assert sorted(fetched) == sorted(listed)
        assert {rel: path.stat().st_size for rel, path in fetched.items()} == listed
        return fetched

    def folders(self) -> set[str]:
        listed = json.loads(self.bucket.server.rclone("lsjson", "-R", "--dirs-only",
                                                      self.remote()).stdout)
        return {entry["Path"] for entry in listed
                if not set(entry["Path"].split("/")) & ENGINE_FOLDERS}

    def identities(self) -> dict[str, object]:
        """Each object's versions (the bucket keeps them all): a write adds one."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.bucket.server.endpoint,
                              region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test")
        found: dict[str, list[str]] = {}
        for page in client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket.name):
            for version in page.get("Versions", []):
                found.setdefault(version["Key"], []).append(version["VersionId"])
        return {key: sorted(ids) for key, ids in found.items()}


@pytest.fixture
def rclone_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every dryviq-tui subprocess runs in rclone's environment (tests.s3: no AWS_CA_BUNDLE,
    which rclone 1.60's S3 backend cannot load; none of the caller's RCLONE_ settings)."""
    for key in set(os.environ) - set(rclone_env()):
        monkeypatch.delenv(key)


@pytest.fixture(params=["smb", "s3"])
def side(request: pytest.FixtureRequest, rclone_environment: None, cli: Cli) -> Iterator[OtherSide]:
    """The other side, added as connection CONNECTION: SMB or S3."""
    made: OtherSide = (SmbSide(request.getfixturevalue("smb_folder")) if request.param == "smb"
                       else S3Side(request.getfixturevalue("s3_bucket")))
    made.add(cli)
    yield made
