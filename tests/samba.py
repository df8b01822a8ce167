"""A real Samba server (Debian's `smbd`) on a loopback port, with its whole state in a
temporary folder: the SMB connector's tests talk to it as to an office file share.

Samba users must be Unix users, so the test user is created once with `useradd` (CI runs as
root); without smbd, or without root to create the user, the tests that need it are skipped.
`running_samba` is the same server as a plain context manager, for the benchmarks.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "dryviqsmb"
SHARE = "docs"
READ_ONLY_SHARE = "readonly"


class SambaUnavailable(Exception):
    """smbd cannot run here (not installed, or no root to create its user): a reason to skip."""


@dataclass(frozen=True)
class SambaServer:
    host: str
    port: int
    share: str
    username: str
    password: str
    root: Path  # the folder on this machine that the share `share` serves
    readonly_root: Path  # the folder behind READ_ONLY_SHARE
    auth_file: Path  # smbclient's -A file (the password never goes on argv)

    def smbclient(self, *commands: str, share: str | None = None,
                  check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run Samba's own client against the share: an independent check of what is there."""
        return subprocess.run(
            ["smbclient", f"//{self.host}/{share or self.share}", "-p", str(self.port),
             "-A", str(self.auth_file), "-c", "; ".join(commands)],
            capture_output=True, text=True, check=check, timeout=120)


@dataclass(frozen=True)
class SmbFolder:
    """A fresh folder on the test share: `path` as the connector names it, `local` on disk."""

    server: SambaServer
    path: str  # "/t-<hex>", the --path of a connection onto it
    local: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tool(name: str) -> str | None:
    """A Samba or system tool, also where a PATH without the sbin folders would miss it."""
    return shutil.which(name, path=os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"]))


def _ensure_user() -> None:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        if os.geteuid() != 0:
            raise SambaUnavailable(
                f"Samba needs a Unix user {USER!r}; creating it needs root") from None
        subprocess.run([_tool("useradd") or "useradd", "-M", "-s", "/usr/sbin/nologin", USER],
                       check=True)


def _config(base: Path, port: int) -> str:
    dirs = {name: base / name for name in ("private", "lock", "state", "cache", "pid", "log")}
    for folder in dirs.values():
        folder.mkdir()
    return f"""[global]
  smb ports = {port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  disable netbios = yes
  server role = standalone server
  map to guest = never
  load printers = no
  printcap name = /dev/null
  private dir = {dirs['private']}
  lock directory = {dirs['lock']}
  state directory = {dirs['state']}
  cache directory = {dirs['cache']}
  pid directory = {dirs['pid']}
  passdb backend = tdbsam:{dirs['private']}/passdb.tdb
  log file = {dirs['log']}/log.%m
  server min protocol = SMB2_02
[{SHARE}]
  path = {base / 'share'}
  read only = no
  force user = root
[{READ_ONLY_SHARE}]
  path = {base / 'readonly'}
  read only = yes
"""


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"smbd exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("smbd did not start listening in 30 s")


@contextmanager
def running_samba(base: Path) -> Iterator[SambaServer]:
    """An smbd serving folders under `base` (an empty folder) until the block ends."""
    smbd, smbpasswd = _tool("smbd"), _tool("smbpasswd")
    if smbd is None or smbpasswd is None:
        raise SambaUnavailable("Samba is not installed (apt-get install samba smbclient)")
    _ensure_user()
    (base / "share").mkdir()
    (base / "readonly").mkdir()
    port = _free_port()
    conf = base / "smb.conf"
    conf.write_text(_config(base, port))
    password = secrets.token_urlsafe(12)
    subprocess.run([smbpasswd, "-c", str(conf), "-s", "-a", USER],
                   input=f"{password}\n{password}\n", text=True, check=True,
                   capture_output=True)
    auth = base / "auth"
    auth.write_text(f"username = {USER}\npassword = {password}\n")
    auth.chmod(0o600)
    log = base / "smbd.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [smbd, "--foreground", "--no-process-group", "-s", str(conf), "--debug-stdout"],
            # its own process group: smbd ends by signalling its group, which would be ours
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        _wait_for_port(port, process, log)
        yield SambaServer("127.0.0.1", port, SHARE, USER, password, base / "share",
                          base / "readonly", auth)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaServer]:
    """One smbd per test worker; tests take their own folder on it (`smb_folder`)."""
    try:
        with running_samba(tmp_path_factory.mktemp("samba")) as server:
            yield server
    except SambaUnavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture
def smb_folder(samba: SambaServer) -> SmbFolder:
    name = f"t-{uuid.uuid4().hex[:12]}"
    local = samba.root / name
    local.mkdir()
    return SmbFolder(samba, "/" + name, local)
