"""A real S3 endpoint (moto's server) on a loopback port, and an rclone config naming it, so
the rclone connector's tests go through real rclone to real S3 requests.

The config also has a `local` remote and a `crypt` remote over it (rclone's encryption), so a
test can show that any rclone remote works, not only S3. Known traps (engineering notes):
rclone 1.60's S3 backend fails when AWS_CA_BUNDLE is set, so `rclone_env()` drops it; moto
answers a completed multipart upload to an unversioned bucket with version id "null" and then
refuses rclone's follow-up request for it, so every test bucket is versioned.
`running_s3` is the same server as a plain context manager, for the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

S3_REMOTE = "s3test"
LOCAL_REMOTE = "localtest"
CRYPT_REMOTE = "crypttest"


def rclone_env(**extra: str) -> dict[str, str]:
    """The environment for an rclone process started by a test (see the module's note)."""
    env = {key: value for key, value in os.environ.items()
           if key != "AWS_CA_BUNDLE" and not key.startswith("RCLONE_")}
    env.update(extra)
    return env


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    config: Path  # an rclone.conf with S3_REMOTE, LOCAL_REMOTE and CRYPT_REMOTE
    local_root: Path  # the folder behind LOCAL_REMOTE (and, encrypted, CRYPT_REMOTE)

    def rclone(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run rclone itself with this config: an independent look at a remote."""
        return subprocess.run(["rclone", "--config", str(self.config), *args],
                              capture_output=True, text=True, check=check, timeout=300,
                              env=rclone_env())

    def new_bucket(self) -> str:
        """A fresh, versioned bucket (see the module's note); returns its name."""
        import boto3

        name = f"t-{uuid.uuid4().hex[:12]}"
        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        client.create_bucket(Bucket=name)
        client.put_bucket_versioning(Bucket=name,
                                     VersioningConfiguration={"Status": "Enabled"})
        return name


@dataclass(frozen=True)
class S3Bucket:
    server: S3Server
    name: str

    @property
    def remote(self) -> str:
        """The rclone remote path of the bucket's root, as `--remote` takes it."""
        return f"{S3_REMOTE}:{self.name}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class S3Unavailable(Exception):
    """rclone is not installed: a reason to skip."""


@contextmanager
def running_s3(base: Path) -> Iterator[S3Server]:
    """A moto S3 server in this process, and its rclone config in `base` (an empty folder),
    until the block ends."""
    if shutil.which("rclone") is None:
        raise S3Unavailable("rclone is not installed (apt-get install rclone)")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        local_root = base / "local"
        local_root.mkdir()
        obscured = subprocess.run(["rclone", "obscure", "-"], input="crypt-test-password",
                                  capture_output=True, text=True, check=True,
                                  env=rclone_env()).stdout.strip()
        config = base / "rclone.conf"
        config.write_text(
            f"[{S3_REMOTE}]\ntype = s3\nprovider = Other\n"
            f"endpoint = http://127.0.0.1:{port}\nregion = us-east-1\n"
            "access_key_id = test\nsecret_access_key = test\n\n"
            f"[{LOCAL_REMOTE}]\ntype = local\n\n"
            f"[{CRYPT_REMOTE}]\ntype = crypt\nremote = {LOCAL_REMOTE}:{local_root}/crypt\n"
            f"password = {obscured}\n")
        config.chmod(0o600)
        yield S3Server(f"http://127.0.0.1:{port}", config, local_root)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto S3 server and rclone config per test worker."""
    try:
        with running_s3(tmp_path_factory.mktemp("s3")) as server:
            yield server
    except S3Unavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> S3Bucket:
    return S3Bucket(s3_server, s3_server.new_bucket())
