"""A real PostgreSQL for the tests: a throwaway cluster on a loopback port, one per test worker.

`postgres_server` initialises a cluster (Debian's postgresql package: initdb and pg_ctl under
/usr/lib/postgresql/N/bin) in a temporary folder, starts it on a free loopback port with
password authentication, and removes it after the session; as root (CI), the server runs as
the `postgres` user, as PostgreSQL refuses root. `postgres_url` gives each test a database of
its own, dropped after it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "dryviq"


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parent.parent.name))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    port: int
    password: str
    bin_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def psql(self, command: str, database: str = "postgres") -> str:
        return subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-c", command,
             self.url(database)], check=True, capture_output=True, text=True).stdout


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL will not run as root: as root, run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class NotInstalled(Exception):
    """No PostgreSQL server binaries on this machine."""


@contextlib.contextmanager
def cluster() -> Iterator[PostgresServer]:
    """A throwaway cluster in a temporary folder on a free loopback port, removed after."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise NotInstalled("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="dryviq-pg-"))
    password = secrets.token_urlsafe(16)
    (folder / "pw").write_text(password)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(folder / "pw", "postgres", "postgres")
    data = folder / "data"
    subprocess.run(_as_server_user(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(folder / "pw"),
         "--auth=scram-sha-256", "--no-locale", "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True)
    port = _free_port()
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run(_as_server_user(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"),
         "-w", "start"]), check=True, capture_output=True)
    try:
        yield PostgresServer(port, password, bin_dir)
    finally:
        subprocess.run(_as_server_user(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with cluster() as server:
            yield server
    except NotInstalled as exc:
        pytest.fail(str(exc))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database for one test, as a URL with its password."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.psql(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
