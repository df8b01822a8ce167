"""The rclone connector against real rclone: moto's S3 behind an S3 remote, a local remote and a
crypt remote over it (tests/s3.py). What the connector wrote is read back through rclone
itself; what rclone's server accepts is tried over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from core.connectors import parts
from core.connectors.base import (
    LEFTOVER_PART,
    TRASH_FOLDER,
    AlreadyExists,
    AuthExpired,
    ConnectorError,
    Entry,
    Fatal,
    InvalidPath,
    NotFound,
    Retryable,
    Vanished,
)
from core.connectors.rclone import MAX_RESTARTS, RcloneConnector, list_remotes
from core.paths import fix_name
from tests.s3 import CRYPT_REMOTE, LOCAL_REMOTE, S3_REMOTE, S3Server, rclone_env

MTIME = 1_600_000_000.123456  # 2020-09-13T12:26:40.123456Z
# over the 1 MiB the connector sends in one piece, and over rclone's streaming cutoff (100 KiB):
# streamed all the way
BIG = (1 << 20) + 300_000


def _fresh_remote(server: S3Server, kind: str) -> str:
    """A new empty folder (or bucket) of the remote `kind`, as `--remote` takes it."""
    if kind == S3_REMOTE:
        return f"{S3_REMOTE}:{server.new_bucket()}"
    name = f"t-{uuid.uuid4().hex[:12]}"
    if kind == LOCAL_REMOTE:
        folder = server.local_root / name
        folder.mkdir()
        return f"{LOCAL_REMOTE}:{folder}"
    server.rclone("mkdir", f"{CRYPT_REMOTE}:{name}")
    return f"{CRYPT_REMOTE}:{name}"


@pytest.fixture(params=[S3_REMOTE, LOCAL_REMOTE, CRYPT_REMOTE])
def remote(request: pytest.FixtureRequest, s3_server: S3Server) -> str:
    return _fresh_remote(s3_server, request.param)


@pytest.fixture
async def connector(remote: str, s3_server: S3Server) -> AsyncIterator[RcloneConnector]:
    opened = RcloneConnector(remote, str(s3_server.config))
    yield opened
    await opened.close()


def _rclone(server: S3Server, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["rclone", "--config", str(server.config), *args],
                          capture_output=True, check=False, timeout=120, env=rclone_env())


def cat(server: S3Server, remote: str, path: str) -> bytes:
    """A file's bytes as rclone itself reads them."""
    proc = _rclone(server, "cat", f"{remote}/{path}")
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def listed(server: S3Server, remote: str) -> dict[str, dict]:
    """Every file and folder under the remote's folder, as rclone itself lists them."""
    proc = _rclone(server, "lsjson", "-R", remote)
    assert proc.returncode == 0, proc.stderr.decode()
    return {item["Path"]: item for item in json.loads(proc.stdout)}


async def chunks_of(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def failing(data: bytes) -> AsyncIterator[bytes]:
    """Half of `data`, then the reader fails."""
    yield data[:len(data) // 2]
    raise RuntimeError("the source broke")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_every_method_against_rclone(connector: RcloneConnector, remote: str,
                                           s3_server: S3Server) -> None:
    files = {"a.txt": b"hello", "sub/b ü €.bin": os.urandom(BIG), "sub/empty": b"",
             "sub/A-1 [rev 2] #3 ?x %41.pdf": b"%PDF"}
    assert await connector.list_dir("") == []
    sub = await connector.mkdir("sub")
    assert sub.is_dir and sub.name == "sub"
    written = {}
    for path, data in files.items():
        written[path] = await connector.write(path, chunks_of(data), size=len(data),
                                              mtime=MTIME)
        assert written[path].size == len(data)
        assert cat(s3_server, remote, path) == data  # read back by rclone itself

    seen = listed(s3_server, remote)
    assert not [name for name in seen if ".dryviq-" in name]  # no temporary left over
    for path in files:  # the time given is kept (rclone's own listing)
        assert seen[path]["ModTime"].startswith("2020-09-13T12:26:40.123456"), seen[path]

    await connector.set_mtime("sub/empty", MTIME + 3600)
    assert listed(s3_server, remote)["sub/empty"]["ModTime"].startswith(
        "2020-09-13T13:26:40.123456")
    with pytest.raises(NotFound):
        await connector.set_mtime("missing.txt", MTIME)

    root = {entry.name: entry for entry in await connector.list_dir("")}
    assert set(root) == {"a.txt", "sub"} and root["sub"].is_dir
    assert root["a.txt"].size == 5 and abs(root["a.txt"].mtime - MTIME) < 1e-6
    entries = {entry.name: entry for entry in await connector.list_dir("sub")}
    assert {name: entry.size for name, entry in entries.items()} == {
        "b ü €.bin": BIG, "empty": 0, "A-1 [rev 2] #3 ?x %41.pdf": 4}
    if remote.startswith(S3_REMOTE):  # an object store lists its hashes for free
        assert dict(root["a.txt"].hashes)["md5"] == "5d41402abc4b2a76b9719d911017c592"
    stat_b = await connector.stat("sub/b ü €.bin")
    assert (stat_b.size, stat_b.is_dir) == (BIG, False)
    assert (await connector.stat("sub")).is_dir
    with pytest.raises(NotFound):
        await connector.stat("missing.txt")

    for path in ("sub/b ü €.bin", "sub/A-1 [rev 2] #3 ?x %41.pdf"):
        got = b"".join([chunk async for chunk in connector.read(path, stat_b)])
        assert got == files[path]
    with pytest.raises(Vanished):
        async for _ in connector.read("missing.txt", Entry("missing.txt", False)):
            pass

    # a file replaced: the new bytes, whole
    new = os.urandom(BIG + 7)
    await connector.write("a.txt", chunks_of(new), size=len(new), mtime=MTIME + 60,
                          replacing=root["a.txt"])
    assert cat(s3_server, remote, "a.txt") == new

    renamed = await connector.rename("a.txt", root["a.txt"], "c.txt")
    assert renamed.name == "c.txt" and renamed.size == len(new)
    with pytest.raises(AlreadyExists):
        await connector.rename("sub/empty", entries["empty"], "b ü €.bin")
    moved = await connector.move("c.txt", renamed, "sub/c.txt")
    assert moved.name == "c.txt"
    assert cat(s3_server, remote, "sub/c.txt") == new

    await connector.trash("sub/c.txt", moved)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert cat(s3_server, remote, f"{TRASH_FOLDER}/{day}/sub/c.txt") == new
    await connector.remove("sub/empty", entries["empty"])
    await connector.remove("sub/A-1 [rev 2] #3 ?x %41.pdf", entries["A-1 [rev 2] #3 ?x %41.pdf"])
    await connector.trash("sub", sub)  # a folder, with what is in it, beside the one trashed
    assert cat(s3_server, remote, f"{TRASH_FOLDER}/{day}/sub (1)/b ü €.bin") == files[
        "sub/b ü €.bin"]
    after = set(listed(s3_server, remote))
    assert not [path for path in after if not path.startswith(TRASH_FOLDER)], after

    await connector.mkdir("gone")
    await connector.rmdir("gone", Entry("gone", True))
    assert "gone" not in {entry.name for entry in await connector.list_dir("")}


async def test_features_come_from_the_remote(connector: RcloneConnector, remote: str) -> None:
    await connector.list_dir("")
    features = connector.features
    assert features.can_set_mtime and features.mtime_precision is not None
    if remote.startswith(S3_REMOTE):
        assert not features.empty_dirs  # folders exist only through the files in them
        assert "md5" in features.hashes
        # rclone streams an upload to S3 in at most 10,000 parts of 5 MiB
        assert features.max_file_size == 5 * (1 << 20) * 10_000
    else:
        assert features.empty_dirs
        assert features.max_file_size is None
        assert not features.hashes  # local hashes are computed by reading: not listed


@pytest.mark.parametrize("size", [1000, 3 * BIG])  # the larger fails mid-stream
async def test_a_failed_write_leaves_nothing_under_its_name(
        connector: RcloneConnector, remote: str, s3_server: S3Server, size: int) -> None:
    data = os.urandom(size)
    with pytest.raises(RuntimeError):
        await connector.write("doc.pdf", failing(data), size=size, mtime=MTIME)
    with pytest.raises(ConnectorError, match="source changed"):  # fewer bytes than promised
        await connector.write("doc.pdf", chunks_of(data[:-1]), size=size, mtime=MTIME)
    assert listed(s3_server, remote) == {}
    assert await connector.list_dir("") == []
    # the same file, replaced by a write that fails: the old one stays whole
    await connector.write("doc.pdf", chunks_of(data), size=size, mtime=MTIME)
    with pytest.raises(RuntimeError):
        await connector.write("doc.pdf", failing(os.urandom(size)), size=size, mtime=MTIME)
    assert cat(s3_server, remote, "doc.pdf") == data
    assert set(listed(s3_server, remote)) == {"doc.pdf"}


async def test_a_dead_writers_temporary_file_is_a_leftover(s3_server: S3Server) -> None:
    """Several machines may write one remote: this machine's temporary file is judged by its
    pid, another machine's by how long nothing has changed it."""
    remote = _fresh_remote(s3_server, LOCAL_REMOTE)
    folder = Path(remote.partition(":")[2])
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    ours_dead = f".dryviq-{parts.HOST}-{dead}-0000abcd.part"
    theirs_old = ".dryviq-0badc0de-12-0000abcd.part"
    for name in (ours_dead, f".dryviq-{parts.HOST}-{os.getpid()}-0000abcd.part",
                 ".dryviq-0badc0de-13-0000abcd.part", theirs_old):  # theirs: any pid
        (folder / name).write_bytes(b"half")
    old = time.time() - parts.LEFTOVER_AGE - 60
    os.utime(folder / theirs_old, (old, old))
    (folder / "real.txt").write_bytes(b"x")
    connector = RcloneConnector(remote, str(s3_server.config))
    try:
        entries = {entry.name: entry for entry in await connector.list_dir("")}
    finally:
        await connector.close()
    assert {name: entry.skip_reason for name, entry in entries.items()} == {
        ours_dead: LEFTOVER_PART, theirs_old: LEFTOVER_PART, "real.txt": None}


async def test_paths_never_leave_the_root(s3_server: S3Server) -> None:
    remote = _fresh_remote(s3_server, LOCAL_REMOTE)
    connector = RcloneConnector(remote, str(s3_server.config))
    try:
        for path in ("..", "../x", "a/../../x", "/etc", "a//b"):
            with pytest.raises(InvalidPath):
                await connector.list_dir(path)
            with pytest.raises(InvalidPath):
                await connector.write(path, chunks_of(b"x"), size=1, mtime=None)
        with pytest.raises(InvalidPath):
            await connector.rename("x", Entry("x", False), "../x")
    finally:
        await connector.close()
    assert not (Path(remote.partition(":")[2]).parent / "x").exists()


async def test_the_server_refuses_requests_without_its_credentials(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # the user's own rclone settings cannot open the server or log its password
    monkeypatch.setenv("RCLONE_RC_NO_AUTH", "true")
    monkeypatch.setenv("RCLONE_VERBOSE", "2")
    remote = _fresh_remote(s3_server, S3_REMOTE)
    connector = RcloneConnector(remote, str(s3_server.config))
    try:
        await connector.write("secret.txt", chunks_of(b"secret"), size=6, mtime=None)
        pid = connector.daemon_pid
        assert pid is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        port = next(arg for arg in cmdline if arg.startswith(b"127.0.0.1:"))
        assert port == b"127.0.0.1:0"  # rclone picked a free port and said which
        base = connector._daemon.base_url
        async with httpx.AsyncClient(base_url=base) as client:
            for auth in (None, ("admin", "admin"), ("", "")):
                for method, url in (("POST", "/operations/list"), ("POST", "/core/version"),
                                    ("POST", "/operations/fsinfo"),
                                    ("GET", f"/[{remote}]/secret.txt"), ("GET", "/")):
                    response = await client.request(
                        method, url, auth=auth,
                        json={"fs": remote, "remote": ""} if method == "POST" else None)
                    assert response.status_code == 401, (method, url, auth, response.text)
                    assert b"secret" not in response.content
        assert [entry.name for entry in await connector.list_dir("")] == ["secret.txt"]
        log = connector._daemon._log
        assert log is not None
        log.seek(0)
        assert connector._daemon._auth[1].encode() not in log.read()
    finally:
        await connector.close()


async def test_credentials_are_not_on_rclones_command_line(s3_server: S3Server) -> None:
    connector = RcloneConnector(_fresh_remote(s3_server, S3_REMOTE), str(s3_server.config))
    try:
        await connector.list_dir("")
        pid = connector.daemon_pid
        assert pid is not None
        user, password = connector._daemon._auth
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert user.encode() not in cmdline and password.encode() not in cmdline
        assert b"--rc-user" not in cmdline and b"--rc-pass" not in cmdline
        environ = Path(f"/proc/{pid}/environ")
        info = environ.stat()
        assert stat.S_IMODE(info.st_mode) == 0o400 and info.st_uid == os.getuid()
        assert f"RCLONE_RC_PASS={password}".encode() in environ.read_bytes().split(b"\0")
    finally:
        await connector.close()


async def test_rclone_stops_with_close_and_restarts_after_dying(s3_server: S3Server) -> None:
    connector = RcloneConnector(_fresh_remote(s3_server, LOCAL_REMOTE), str(s3_server.config))
    await connector.list_dir("")
    first = connector.daemon_pid
    assert first is not None and _alive(first)
    _kill_and_wait(connector)
    assert await connector.list_dir("") == []  # started again, once
    second = connector.daemon_pid
    assert second is not None and second != first
    await connector.close()
    assert connector.daemon_pid is None and not _alive(second)


async def test_rclone_that_keeps_dying_is_fatal(s3_server: S3Server) -> None:
    connector = RcloneConnector(_fresh_remote(s3_server, LOCAL_REMOTE), str(s3_server.config))
    try:
        for _ in range(MAX_RESTARTS):
            await connector.list_dir("")
            _kill_and_wait(connector)
        await connector.list_dir("")  # the last restart allowed
        _kill_and_wait(connector)
        with pytest.raises(Fatal, match="rclone keeps stopping"):
            await connector.list_dir("")
    finally:
        await connector.close()


def _kill_and_wait(connector: RcloneConnector) -> None:
    pid = connector.daemon_pid
    assert pid is not None
    os.kill(pid, 9)
    while connector._daemon.running:
        time.sleep(0.01)


@pytest.mark.slow
def test_rclone_dies_with_a_killed_process(s3_server: S3Server, tmp_path: Path) -> None:
    remote = _fresh_remote(s3_server, LOCAL_REMOTE)
    script = (
        "import asyncio, sys, time\n"
        "from core.connectors.rclone import RcloneConnector\n"
        "async def main():\n"
        f"    c = RcloneConnector({remote!r}, {str(s3_server.config)!r})\n"
        "    await c.list_dir('')\n"
        "    print(c.daemon_pid, flush=True)\n"
        "    time.sleep(300)\n"
        "asyncio.run(main())\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        assert process.stdout is not None
        pid = int(process.stdout.readline())
        assert _alive(pid)
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


@pytest.fixture
def no_rclone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A PATH without rclone (a folder to put a fake one in)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    yield folder


async def test_missing_rclone_says_how_to_install_it(no_rclone: Path) -> None:
    connector = RcloneConnector("s3test:bucket")
    assert not connector.features.can_set_mtime  # nothing assumed
    with pytest.raises(ConnectorError, match=r"not installed.*apt-get install rclone"):
        await connector.list_dir("")
    with pytest.raises(ConnectorError, match=r"rclone\.org/install"):
        await list_remotes(None)
    await connector.close()


async def test_too_old_rclone_says_how_to_install_a_new_one(no_rclone: Path) -> None:
    fake = no_rclone / "rclone"
    fake.write_text("#!/bin/sh\necho 'rclone v1.53.3'\n")
    fake.chmod(0o755)
    connector = RcloneConnector("s3test:bucket")
    with pytest.raises(ConnectorError, match=r"rclone 1\.53, too old.*1\.60 or newer"):
        await connector.list_dir("")
    await connector.close()


@pytest.mark.parametrize("remote, message", [
    ("nosuch:folder", "there is no remote 'nosuch' in .*rclone.conf.*rclone listremotes"),
    (f"{S3_REMOTE}:no-such-bucket", "does not exist"),
])
async def test_a_remote_that_does_not_work_is_named(s3_server: S3Server, remote: str,
                                                   message: str) -> None:
    connector = RcloneConnector(remote, str(s3_server.config))
    try:
        with pytest.raises(Fatal, match=message):
            await connector.list_dir("")
    finally:
        await connector.close()


async def test_a_missing_config_file_is_named(s3_server: S3Server, tmp_path: Path) -> None:
    connector = RcloneConnector(f"{S3_REMOTE}:x", str(tmp_path / "gone.conf"))
    with pytest.raises(Fatal, match=r"gone\.conf: no such file"):
        await connector.list_dir("")
    await connector.close()
    with pytest.raises(ConnectorError, match=r"gone\.conf: no such file"):
        await list_remotes(str(tmp_path / "gone.conf"))


async def test_list_remotes(s3_server: S3Server) -> None:
    assert sorted(await list_remotes(str(s3_server.config))) == sorted(
        f"{name}:" for name in (S3_REMOTE, LOCAL_REMOTE, CRYPT_REMOTE))


async def test_s3_works_where_aws_ca_bundle_is_set(s3_server: S3Server,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """rclone 1.60's S3 backend fails with AWS_CA_BUNDLE set: the connector gives the same
    bundle to rclone as --ca-cert instead."""
    import certifi

    monkeypatch.setenv("AWS_CA_BUNDLE", certifi.where())
    connector = RcloneConnector(_fresh_remote(s3_server, S3_REMOTE), str(s3_server.config))
    try:
        assert await connector.list_dir("") == []
        cmdline = Path(f"/proc/{connector.daemon_pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"--ca-cert") + 1] == certifi.where().encode()
    finally:
        await connector.close()


@pytest.mark.parametrize("status, message, kind", [
    (500, "multipart upload failed: 503 Service Unavailable", Retryable),
    (500, "couldn't list directory: 429 Too Many Requests", Retryable),
    (500, "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist", AuthExpired),
    (500, "couldn't fetch token: invalid_grant: maybe token expired", AuthExpired),
    (404, "object not found", NotFound),
    (500, "didn't find section in config file", Fatal),
    (500, "AccessDenied: Access Denied", ConnectorError),
    (500, "SlowDown: Please reduce your request rate.\n\tstatus code: 503, request id: 1",
     Retryable),
    (500, "googleapi: Error 401: Invalid Credentials, authError", AuthExpired),
    (500, "rmdir Projects/a/Room 401/Spec 503: directory not empty", ConnectorError),
])
def test_rclones_failures_are_classified(status: int, message: str, kind: type) -> None:
    """rclone's own messages (moto cannot be made to fail these ways) map to typed errors."""
    error = RcloneConnector("drive:Projects")._error(status, message, "a/Room 401/Spec 503")
    assert type(error) is kind, error
    assert "drive" in str(error)


@pytest.mark.parametrize("kind", [S3_REMOTE, LOCAL_REMOTE])
async def test_files_are_read_under_a_root_with_brackets(s3_server: S3Server, kind: str) -> None:
    """rclone's server takes the remote up to the first `]` of `[remote]/path`: a root folder
    named "Bids [2024]" must still be read, not taken for a vanished file."""
    remote = f"{_fresh_remote(s3_server, kind)}/Bids [2024]"
    connector = RcloneConnector(remote, str(s3_server.config))
    try:
        if kind == LOCAL_REMOTE:
            await connector.mkdir("[x] d")
        await connector.write("[x] d/a].txt", chunks_of(b"abc"), size=3, mtime=None)
        entry = await connector.stat("[x] d/a].txt")
        assert b"".join([c async for c in connector.read("[x] d/a].txt", entry)]) == b"abc"
        with pytest.raises(Vanished):
            async for _ in connector.read("[x] d/gone.txt", entry):
                pass
    finally:
        await connector.close()


async def test_calls_while_rclone_restarts_never_reach_its_old_port(s3_server: S3Server) -> None:
    """After rclone died, calls made while it starts again wait for the new one: none goes to
    the old port (where another process may listen now) with the new credentials, and the
    connector works afterwards."""
    remote = _fresh_remote(s3_server, LOCAL_REMOTE)
    connector = RcloneConnector(remote, str(s3_server.config))
    received = bytearray()

    async def squat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.extend(await reader.read(65536))
        writer.close()

    async def write_later(i: int) -> Entry:
        await asyncio.sleep(i * 0.02)  # calls keep coming while rclone starts again
        return await connector.write(f"f{i}.txt", chunks_of(b"confidential"), size=12,
                                     mtime=None)

    try:
        await connector.list_dir("")
        old_port = int(connector._daemon.base_url.rsplit(":", 1)[1])
        _kill_and_wait(connector)
        squatter = await asyncio.start_server(squat, "127.0.0.1", old_port)
        try:
            results = await asyncio.gather(*(write_later(i) for i in range(20)),
                                           return_exceptions=True)
        finally:
            squatter.close()
        assert not received, bytes(received[:200])
        assert [r for r in results if not isinstance(r, Entry | Retryable)] == []
        written = {f"f{i}.txt" for i, r in enumerate(results) if isinstance(r, Entry)}
        assert written and written <= {e.name for e in await connector.list_dir("")}
    finally:
        await connector.close()


async def test_numbers_and_words_in_names_do_not_decide_the_error(s3_server: S3Server) -> None:
    """rclone's message holds the paths: a folder "Room 401" under a root "Job 503" that is
    not empty is a plain failure, not an expired login nor a busy server."""
    remote = f"{_fresh_remote(s3_server, LOCAL_REMOTE)}/Job 503 timeout"
    folder = Path(remote.partition(":")[2])
    names = ("Room 401", "Spec 503", "timeout 429 not found")
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "plan.pdf").write_bytes(b"x")
    connector = RcloneConnector(remote, str(s3_server.config))
    try:
        for name in names:
            with pytest.raises(ConnectorError) as failure:
                await connector.rmdir(name, Entry(name, True))
            assert type(failure.value) is ConnectorError, failure.value
            assert "not empty" in str(failure.value)
    finally:
        await connector.close()


@pytest.mark.parametrize("kind", [S3_REMOTE, LOCAL_REMOTE])
async def test_names_with_control_characters_are_fixed_and_round_trip(
        s3_server: S3Server, kind: str) -> None:
    """rclone lists a tab as '␉' and S3 refuses a newline: the connector declares them
    invalid, so the name the engine fixes is written, listed and read back as it is."""
    connector = RcloneConnector(_fresh_remote(s3_server, kind), str(s3_server.config))
    try:
        await connector.connect()
        for name in ("tab\there.txt", "new\nline.txt", "del\x7fete.txt"):
            fixed = fix_name(name, connector.features.path_rules)
            assert fixed != name
            await connector.write(fixed, chunks_of(b"x"), size=1, mtime=None)
            assert fixed in {entry.name for entry in await connector.list_dir("")}
            entry = await connector.stat(fixed)
            assert b"".join([c async for c in connector.read(fixed, entry)]) == b"x"
    finally:
        await connector.close()


async def test_names_too_long_for_the_remote(connector: RcloneConnector, remote: str) -> None:
    """Each kind of remote declares how long a name may be (crypt over a local disk: about
    143 bytes, not 255), and a longer one rclone refuses is an invalid path that says so."""
    await connector.connect()
    rules = connector.features.path_rules
    longest = {S3_REMOTE: 1024, LOCAL_REMOTE: 255, CRYPT_REMOTE: 143}[remote.partition(":")[0]]
    assert (rules.max_name_length, rules.name_length_in_bytes) == (longest, True)
    fitting = "é" * ((longest - 4) // 2) + ".pdf"
    await connector.write(fitting, chunks_of(b"x"), size=1, mtime=None)
    assert [entry.name for entry in await connector.list_dir("")] == [fitting]
    if remote.startswith(S3_REMOTE):
        return  # moto takes longer keys than S3 does
    with pytest.raises(InvalidPath, match="file name too long"):
        await connector.write("a" * 252 + ".pdf", chunks_of(b"x"), size=1, mtime=None)
    assert [entry.name for entry in await connector.list_dir("")] == [fitting]


def test_a_long_message_keeps_its_end() -> None:
    message = f"movefile {'a/' * 200}x.pdf: file name too long"
    error = RcloneConnector("drive:Projects")._error(500, message, "x.pdf")
    assert type(error) is InvalidPath and str(error).endswith("file name too long)")


async def test_a_listed_file_rclone_cannot_serve_fails_rather_than_vanishes(
        s3_server: S3Server) -> None:
    """rclone 1.60 stats a local file named with a newline but its server answers 404 for it:
    a read that fails so is an error to report, never a file skipped as vanished."""
    connector = RcloneConnector(_fresh_remote(s3_server, LOCAL_REMOTE), str(s3_server.config))
    try:
        entry = await connector.write("new\nline.txt", chunks_of(b"x"), size=1, mtime=None)
        with pytest.raises(ConnectorError, match="cannot read it") as failure:
            async for _ in connector.read("new\nline.txt", entry):
                pass
        assert not isinstance(failure.value, NotFound)
    finally:
        await connector.close()


async def test_a_long_answer_from_rclone_arrives_whole(s3_server: S3Server) -> None:
    """An rc answer over rclone's 2 KiB buffer comes in HTTP chunks: read to its end."""
    remote = _fresh_remote(s3_server, LOCAL_REMOTE)
    folder = Path(remote.partition(":")[2])
    names = {f"drawing-{n:03d}-{'x' * 40}.pdf" for n in range(150)}
    for name in names:
        (folder / name).write_bytes(b"d")
    connector = RcloneConnector(remote, str(s3_server.config))
    try:
        first, again = await connector.list_dir(""), await connector.list_dir("")
    finally:
        await connector.close()
    assert {e.name for e in first} == {e.name for e in again} == names
