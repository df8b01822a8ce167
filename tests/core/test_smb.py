"""The SMB connector against a real Samba server (tests/samba.py): every method, checked on the
share's disk or with Samba's own smbclient, its naming rules, and its failures."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import signal
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from smbclient._io import SMBRawIO
from smbprotocol.exceptions import SMBConnectionClosed

from core.connectors import parts
from core.connectors import smb as smb_module
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
)
from core.connectors.smb import SmbConnector
from tests.processes import children_of, serving_process, wait_until_exited
from tests.samba import READ_ONLY_SHARE, SambaServer, SmbFolder


def connector(samba: SambaServer, path: str = "", **overrides: object) -> SmbConnector:
    options: dict = {"server": samba.host, "port": samba.port, "share": samba.share,
                     "username": samba.username, "password": samba.password, "path": path}
    options.update(overrides)
    return SmbConnector(**options)


@pytest.fixture
async def smb(smb_folder: SmbFolder) -> AsyncIterator[SmbConnector]:
    opened = connector(smb_folder.server, smb_folder.path)
    yield opened
    await opened.close()


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(smb: SmbConnector, path: str) -> bytes:
    return b"".join([chunk async for chunk in smb.read(path, Entry(path, False))])


async def test_write_read_list_stat(smb: SmbConnector, smb_folder: SmbFolder) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    entry = await smb.write("big.bin", chunks_of(data[:1000], data[1000:]), size=len(data),
                            mtime=1_600_000_000.25)
    assert (entry.name, entry.size, entry.mtime) == ("big.bin", len(data), 1_600_000_000.25)
    on_disk = smb_folder.local / "big.bin"
    assert on_disk.read_bytes() == data
    assert on_disk.stat().st_mtime_ns == 1_600_000_000_250_000_000
    assert entry.native_id == str(on_disk.stat().st_ino)
    assert await read_all(smb, "big.bin") == data
    listed = {e.name: e for e in await smb.list_dir("")}
    assert listed == {"big.bin": entry}
    # listed to the microsecond, rounded down: within the precision the connector declares
    os.utime(on_disk, ns=(0, 1_600_000_000_123_456_999))
    [relisted] = await smb.list_dir("")
    assert relisted.mtime == 1_600_000_000.123456
    assert abs(relisted.mtime - 1_600_000_000.123456999) <= smb.features.mtime_precision
    os.utime(on_disk, ns=(0, 1_600_000_000_250_000_000))
    assert await smb.stat("big.bin") == entry
    assert (await smb.stat("")).is_dir
    # Samba's own client sees the same bytes
    got = smb_folder.local.parent / f"{smb_folder.local.name}.check"
    smb_folder.server.smbclient(f"get {smb_folder.path}/big.bin {got}")
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(data).digest()
    got.unlink()


async def test_folders_remove_rename_move_and_mtime(smb: SmbConnector,
                                                     smb_folder: SmbFolder) -> None:
    local = smb_folder.local
    made = await smb.mkdir("Plans")
    assert made.is_dir and (local / "Plans").is_dir()
    assert (await smb.mkdir("Plans")).is_dir  # made meanwhile by another job: the one wanted
    file = await smb.write("Plans/a.txt", chunks_of(b"abc"), size=3, mtime=None)
    with pytest.raises(AlreadyExists):
        await smb.mkdir("Plans/a.txt")
    await smb.set_mtime("Plans/a.txt", 1_500_000_000.5)
    assert (local / "Plans/a.txt").stat().st_mtime_ns == 1_500_000_000_500_000_000
    renamed = await smb.rename("Plans/a.txt", file, "b.txt")
    assert (renamed.name, renamed.native_id) == ("b.txt", file.native_id)  # the same file
    await smb.write("Plans/c.txt", chunks_of(b"c"), size=1, mtime=None)
    with pytest.raises(AlreadyExists):
        await smb.rename("Plans/b.txt", renamed, "c.txt")
    for bad in ("../b.txt", "x/b.txt", "..", "b:txt", "NUL"):
        with pytest.raises(InvalidPath):
            await smb.rename("Plans/b.txt", renamed, bad)
    await smb.mkdir("Other")
    moved = await smb.move("Plans/b.txt", renamed, "Other/b.txt")
    assert moved.native_id == file.native_id and (local / "Other/b.txt").read_bytes() == b"abc"
    with pytest.raises(AlreadyExists):
        await smb.move("Plans/c.txt", Entry("c.txt", False), "Other/b.txt")
    await smb.remove("Other/b.txt", moved)
    await smb.remove("Plans/c.txt", Entry("c.txt", False))
    await smb.rmdir("Plans", made)
    assert sorted(os.listdir(local)) == ["Other"]
    with pytest.raises(NotFound):
        await smb.stat("Plans")
    with pytest.raises(NotFound):
        await smb.list_dir("Plans")
    with pytest.raises(NotFound):
        await read_all(smb, "gone.txt")


async def test_trash_keeps_everything_trashed_on_one_day(smb: SmbConnector,
                                                         smb_folder: SmbFolder) -> None:
    await smb.mkdir("A")
    for content in (b"first", b"second"):
        await smb.write("A/x.txt", chunks_of(content), size=len(content), mtime=None)
        await smb.trash("A/x.txt", Entry("x.txt", False))
    [day] = os.listdir(smb_folder.local / TRASH_FOLDER)
    trashed = smb_folder.local / TRASH_FOLDER / day / "A"
    assert {p.name: p.read_bytes() for p in trashed.iterdir()} == {
        "x.txt": b"first", "x (1).txt": b"second"}
    assert os.listdir(smb_folder.local / "A") == []
    await smb.trash("A", Entry("A", True))  # a folder goes whole
    assert sorted(os.listdir(smb_folder.local / TRASH_FOLDER / day)) == ["A", "A (1)"]
    assert sorted(os.listdir(smb_folder.local)) == [TRASH_FOLDER]


async def test_unicode_names_and_case_insensitive_matching(smb: SmbConnector,
                                                          smb_folder: SmbFolder) -> None:
    names = ["Ünïcödé – plan.pdf", "日本語の図面.dwg", "emoji 🏗️.txt"]
    for name in names:
        await smb.write(name, chunks_of(name.encode()), size=len(name.encode()), mtime=None)
    assert sorted(e.name for e in await smb.list_dir("")) == sorted(names)
    assert sorted(p.name for p in smb_folder.local.iterdir()) == sorted(names)
    listing = smb_folder.server.smbclient(f"ls {smb_folder.path}/*").stdout
    assert all(name in listing for name in names)
    # Samba matches names regardless of case: a second name differing in case is the same file
    await smb.write("case.txt", chunks_of(b"lower"), size=5, mtime=None)
    assert (await smb.stat("CASE.TXT")).size == 5
    await smb.write("Case.txt", chunks_of(b"Upper!"), size=6, mtime=None)
    assert [p.read_bytes() for p in smb_folder.local.iterdir() if p.name.lower() == "case.txt"
            ] == [b"Upper!"]
    assert smb.features.case_insensitive


async def test_mkdir_of_a_folder_there_in_another_case_gives_its_name(
        smb: SmbConnector, smb_folder: SmbFolder) -> None:
    made = await smb.mkdir("Docs")
    again = await smb.mkdir("docs")
    assert again == made and again.name == "Docs"
    await smb.mkdir("Docs/Sub")
    assert (await smb.mkdir("DOCS/sub")).name == "Sub"
    assert os.listdir(smb_folder.local) == ["Docs"]


@pytest.mark.parametrize("name", [
    "CON", "con.txt", "Nul.tar.gz", "COM1", "lpt9.pdf", "aux .txt", "CONIN$", "conout$.log",
    "COM¹", "lpt³.txt", "a:b.txt", "a*b", "q?",
    'say "hi"', "a<b", "a>b", "a|b", "tab\there", "bell\x07", "ends.", "ends ", "a\\b",
])
async def test_windows_names_are_refused_and_nothing_is_created(
        smb: SmbConnector, smb_folder: SmbFolder, name: str) -> None:
    with pytest.raises(InvalidPath):
        await smb.write(name, chunks_of(b"x"), size=1, mtime=None)
    with pytest.raises(InvalidPath):
        await smb.mkdir(name)
    assert os.listdir(smb_folder.local) == []


@pytest.mark.parametrize("path", ["..", "../x", "a/../../x", "a\\..\\..\\x", "/etc", "a//b",
                                  "."])
async def test_paths_never_leave_the_connection_folder(smb: SmbConnector, path: str) -> None:
    with pytest.raises(InvalidPath):
        await smb.list_dir(path)
    with pytest.raises(InvalidPath):
        await smb.write(path, chunks_of(b"x"), size=1, mtime=None)


async def test_a_failed_write_leaves_nothing_and_keeps_the_old_file(
        smb: SmbConnector, smb_folder: SmbFolder) -> None:
    await smb.write("keep.bin", chunks_of(b"old"), size=3, mtime=None)

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(2 << 20)  # enough to reach the share before the failure
        raise RuntimeError("the source went away")

    for name in ("new.bin", "keep.bin"):
        with pytest.raises(RuntimeError):
            await smb.write(name, broken(), size=4 << 20, mtime=None)
    with pytest.raises(ConnectorError, match="source changed"):
        await smb.write("short.bin", chunks_of(b"ab"), size=3, mtime=None)
    assert {p.name: p.read_bytes() for p in smb_folder.local.iterdir()} == {"keep.bin": b"old"}


async def test_a_cancelled_write_leaves_nothing(smb: SmbConnector,
                                                smb_folder: SmbFolder) -> None:
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield os.urandom(1 << 20)
            started.set()

    task = asyncio.create_task(smb.write("x.bin", endless(), size=1 << 40, mtime=None))
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert os.listdir(smb_folder.local) == []


def _temp(folder: SmbFolder, host: str, pid: int) -> str:
    name = f".dryviq-{host}-{pid}-0000abcd.part"
    (folder.local / name).write_bytes(b"partial")
    return name


async def test_leftover_temporary_files_are_listed_as_such(
        smb: SmbConnector, smb_folder: SmbFolder, monkeypatch: pytest.MonkeyPatch) -> None:
    # a pid beyond pid_max: no such process on this machine
    dead = _temp(smb_folder, parts.HOST, 4_000_000)
    _temp(smb_folder, parts.HOST, os.getpid())  # ours, being written
    other = _temp(smb_folder, "0badc0de", 12)  # another machine's, touched just now
    listed = {e.name: e.skip_reason for e in await smb.list_dir("")}
    assert listed == {dead: LEFTOVER_PART}
    await smb.remove(dead, Entry(dead, False))
    assert len(os.listdir(smb_folder.local)) == 2
    # another machine's writer is judged by the age of its file's last change
    monkeypatch.setattr(parts, "LEFTOVER_AGE", 0)
    listed = {e.name: e.skip_reason for e in await smb.list_dir("")}
    assert listed == {other: LEFTOVER_PART}


def smbd_pid(samba: SambaServer) -> int:
    return int((samba.root.parent / "pid" / "smbd.pid").read_text())


async def serving_us(smb: SmbConnector, server: SambaServer) -> int:
    """The smbd process serving the connector's connection (made now, if it has none)."""
    await smb.close()  # a new connection, so the process serving it is the new one
    before = set(children_of(smbd_pid(server)))
    await smb.list_dir("")
    # smbd forks short-lived helpers too: ours is the new child at the other end of our socket
    ours = serving_process(set(children_of(smbd_pid(server))) - before, server.port)
    assert len(ours) == 1, "the connector opened one connection"
    return ours[0]


def drop(serving: int) -> None:
    """End the connection's server process (under load it may already have ended: the
    connection is gone either way)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(serving, signal.SIGKILL)
    assert wait_until_exited(serving)


async def test_reconnects_after_the_server_drops_the_connection(
        smb: SmbConnector, smb_folder: SmbFolder) -> None:
    await smb.write("a.txt", chunks_of(b"a"), size=1, mtime=None)
    drop(await serving_us(smb, smb_folder.server))
    assert [e.name for e in await smb.list_dir("")] == ["a.txt"]
    await smb.write("b.txt", chunks_of(b"b"), size=1, mtime=None)
    assert (smb_folder.local / "b.txt").read_bytes() == b"b"


@contextlib.contextmanager
def frozen(serving: int) -> Iterator[None]:
    """The smbd process serving a connection stopped: a server that hangs, not one that drops."""
    os.kill(serving, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(serving, signal.SIGCONT)


@pytest.mark.parametrize("call", ["list", "write"])
async def test_a_call_to_a_hung_server_can_be_cancelled_and_closed(
        smb: SmbConnector, smb_folder: SmbFolder, call: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smb_module, "GRACE", 1)  # seconds the cancelled call waits, not 5
    data = os.urandom(16 << 20)  # more than the socket's buffers: the sending thread blocks
    serving = await serving_us(smb, smb_folder.server)
    with frozen(serving):
        waiting = asyncio.create_task(
            smb.list_dir("") if call == "list"
            else smb.write("big.bin", chunks_of(data), size=len(data), mtime=None))
        await asyncio.sleep(0.5)  # sent and waiting for its answer
        waiting.cancel()
        # smbprotocol alone would wait for the server for 20 minutes
        done, _ = await asyncio.wait({waiting}, timeout=60)
        assert done and waiting.cancelled()
        await asyncio.wait_for(smb.close(), timeout=60)
    # Samba hands a new connection to the process serving ours (multichannel) while it lives
    assert wait_until_exited(serving)
    await smb.list_dir("")  # a new connection works


async def test_a_hung_server_is_given_up_on(smb_folder: SmbFolder,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that answers nothing, not even smbprotocol's echo, ends a call as Retryable
    (after twice the receive timeout, one second here)."""
    monkeypatch.setenv("SMB_EXPERIMENTAL_TRANSPORT_RECEIVE_TIMEOUT", "1")
    smb = connector(smb_folder.server, smb_folder.path)
    try:
        data = os.urandom(3 << 20)
        (smb_folder.local / "f.bin").write_bytes(data)
        serving = await serving_us(smb, smb_folder.server)
        reading = smb.read("f.bin", Entry("f.bin", False))
        await anext(reading)
        with frozen(serving), pytest.raises(Retryable, match=r"stopped answering .* 'f\.bin'"):
            await asyncio.wait_for(anext(reading), timeout=60)
    finally:
        await smb.close()


@pytest.mark.parametrize("operation", ["rename", "move", "remove", "rmdir", "trash"])
async def test_work_done_before_a_drop_is_not_reported_as_not_found(
        smb: SmbConnector, smb_folder: SmbFolder, monkeypatch: pytest.MonkeyPatch,
        operation: str) -> None:
    """The server renames or deletes, then the connection drops before its answer arrives:
    the call runs again on a new connection, finds the item gone, and reports success."""
    if operation == "rmdir":
        item = await smb.mkdir("old")
    else:
        item = await smb.write("old", chunks_of(b"x"), size=1, mtime=None)
    await smb.mkdir("sub")
    serving = await serving_us(smb, smb_folder.server)
    function = {"rename": "rename", "move": "rename", "trash": "rename"}.get(operation, operation)
    done_by_server = getattr(smb_module.smbclient, function)

    def answer_lost(*args: object, **kwargs: object) -> None:
        done_by_server(*args, **kwargs)
        monkeypatch.setattr(smb_module.smbclient, function, done_by_server)
        drop(serving)
        raise SMBConnectionClosed("SMB socket was closed, cannot send or receive any more data")

    monkeypatch.setattr(smb_module.smbclient, function, answer_lost)
    calls = {"rename": lambda: smb.rename("old", item, "new"),
             "move": lambda: smb.move("old", item, "sub/old"),
             "remove": lambda: smb.remove("old", item), "rmdir": lambda: smb.rmdir("old", item),
             "trash": lambda: smb.trash("old", item)}
    result = await calls[operation]()
    left = {p.relative_to(smb_folder.local).as_posix() for p in smb_folder.local.rglob("*")}
    if operation == "rename":
        assert result.name == "new" and "new" in left
    elif operation == "move":
        assert result.name == "old" and "sub/old" in left
    assert "old" not in left


async def test_wrong_password(samba: SambaServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-" + samba.password
    bad = connector(samba, password=wrong)
    with pytest.raises(AuthExpired, match="refused the username or password") as failure:
        await bad.list_dir("")
    await bad.close()
    good = connector(samba)
    await good.list_dir("")
    await good.close()
    for secret in (wrong, samba.password):
        assert secret not in str(failure.value) and secret not in repr(failure.value)
        assert secret not in caplog.text
        assert secret not in repr(good)


async def test_missing_share_and_folder(samba: SambaServer) -> None:
    missing = connector(samba, share="nosuchshare")
    with pytest.raises(Fatal, match="share 'nosuchshare' not found"):
        await missing.list_dir("")
    await missing.close()
    no_folder = connector(samba, path="/no/such/folder")
    with pytest.raises(NotFound, match="no/such/folder"):
        await no_folder.list_dir("")
    await no_folder.close()


async def test_access_denied_on_a_read_only_share(samba: SambaServer) -> None:
    # the test user may not even look into this share's folder (only root may)
    readonly = connector(samba, share=READ_ONLY_SHARE)
    try:
        with pytest.raises(ConnectorError, match="access denied") as failure:
            await readonly.write("new.txt", chunks_of(b"x"), size=1, mtime=None)
        assert not isinstance(failure.value, Fatal | NotFound | Retryable)
        with pytest.raises(ConnectorError, match="access denied"):
            await readonly.mkdir("new")
    finally:
        await readonly.close()
    assert os.listdir(samba.readonly_root) == []


def connections_to(samba: SambaServer) -> int:
    """How many TCP connections this process has established to the Samba server."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor
            ours.add(os.readlink(f"/proc/self/fd/{fd}").removeprefix("socket:["))
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if row[3] == "01" and int(row[2].split(":")[1], 16) == samba.port
               and f"{row[9]}]" in ours)


@pytest.mark.parametrize("step", ["list", "write", "mkdir"])
async def test_close_ends_the_connection_even_when_logoff_is_refused(
        samba: SambaServer, step: str) -> None:
    """After a refusal on the read-only share Samba refuses the logoff too; close() still ends
    the connection (and smbprotocol's thread that receives on it)."""
    readonly = connector(samba, share=READ_ONLY_SHARE)
    before = connections_to(samba)
    refused = {"list": lambda: readonly.list_dir(""), "mkdir": lambda: readonly.mkdir("new"),
               "write": lambda: readonly.write("new.txt", chunks_of(b"x"), size=1, mtime=None)}
    with pytest.raises(ConnectorError, match="access denied"):
        await refused[step]()
    assert connections_to(samba) == before + 1
    await readonly.close()
    assert connections_to(samba) == before


async def test_a_read_ended_after_close_opens_no_session(smb: SmbConnector,
                                                         smb_folder: SmbFolder) -> None:
    data = os.urandom(3 << 20)
    await smb.write("f.bin", chunks_of(data), size=len(data), mtime=None)
    reading = smb.read("f.bin", Entry("f.bin", False))
    assert await anext(reading) == data[:1 << 20]
    await smb.close()
    before = connections_to(smb_folder.server)
    await reading.aclose()  # closing its handle, on the connection close() ended
    assert connections_to(smb_folder.server) == before
    assert await read_all(smb, "f.bin") == data  # a later call connects again


async def test_closed_port(samba: SambaServer) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = connector(samba, port=port)
    with pytest.raises(Fatal, match=f"cannot reach the SMB server 127.0.0.1 on port {port}"):
        await unreachable.list_dir("")
    await unreachable.close()


async def test_a_port_that_is_not_smb() -> None:
    """A web server on the port hangs up on smbprotocol's negotiate: said so, not retried."""
    with socket.socket() as web:
        web.bind(("127.0.0.1", 0))
        web.listen()

        def answer() -> None:
            client, _ = web.accept()
            with client:
                client.recv(4096)
                client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        answering = threading.Thread(target=answer)
        answering.start()
        port = web.getsockname()[1]
        not_smb = SmbConnector(server="127.0.0.1", port=port, share="docs", username="u",
                               password="p")
        with pytest.raises(Fatal, match=f"127.0.0.1 on port {port} does not answer as an SMB"):
            await not_smb.list_dir("")
        await not_smb.close()
        answering.join()


async def test_encrypted_session(smb_folder: SmbFolder) -> None:
    sealed = connector(smb_folder.server, smb_folder.path, encrypt=True)
    try:
        await sealed.write("secret.txt", chunks_of(b"sealed"), size=6, mtime=None)
        assert await read_all(sealed, "secret.txt") == b"sealed"
        [connection] = sealed._cache.values()
        [session] = connection.session_table.values()
        assert session.encrypt_data
    finally:
        await sealed.close()


@pytest.fixture
def small_disk(smb_folder: SmbFolder) -> Iterator[SmbFolder]:
    """The test folder on a 1 MiB disk of its own (a tmpfs), so the share fills up for real."""
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                              str(smb_folder.local)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small disk (needs root): {mounted.stderr.strip()}")
    try:
        yield smb_folder
    finally:
        subprocess.run(["umount", "--lazy", str(smb_folder.local)], check=True)


async def test_a_full_disk_stops_the_run_and_names_the_share(small_disk: SmbFolder) -> None:
    smb = connector(small_disk.server, small_disk.path)
    try:
        data = os.urandom(3 << 20)
        with pytest.raises(Fatal, match=r"the share //127\.0\.0\.1:\d+/docs/t-\w+ is full"):
            await smb.write("big.bin", chunks_of(data), size=len(data), mtime=None)
        assert os.listdir(small_disk.local) == []  # the temporary file is gone too
        await smb.write("small.txt", chunks_of(b"fits"), size=4, mtime=None)
    finally:
        await smb.close()
    assert (small_disk.local / "small.txt").read_bytes() == b"fits"


@pytest.mark.parametrize("size", [10, 1 << 20])  # one compound request, or several requests
async def test_a_folder_in_the_way_of_a_write(smb: SmbConnector, smb_folder: SmbFolder,
                                              size: int) -> None:
    await smb.mkdir("taken")
    with pytest.raises(AlreadyExists) as failure:
        await smb.write("taken", chunks_of(b"x" * size), size=size, mtime=None)
    assert failure.value.existing is not None and failure.value.existing.is_dir
    assert os.listdir(smb_folder.local) == ["taken"]


@pytest.mark.parametrize("size", [10, 1 << 20])  # one compound request, or several requests
async def test_replacing_a_file_open_in_another_program_is_tried_again(
        smb: SmbConnector, smb_folder: SmbFolder, size: int) -> None:
    await smb.write("plan.xlsx", chunks_of(b"old"), size=3, mtime=None)
    # another program holding the file open without sharing deletes, as Excel does
    office = connector(smb_folder.server, smb_folder.path)
    await office.list_dir("")
    excel = SMBRawIO(office._unc(["plan.xlsx"]), mode="rb", share_access="rw", **office._kwargs)
    excel.open()
    try:
        with pytest.raises(Retryable, match=r"or the file is open in another program: .*plan"):
            await smb.write("plan.xlsx", chunks_of(b"n" * size), size=size, mtime=None)
        assert os.listdir(smb_folder.local) == ["plan.xlsx"]
    finally:
        excel.close()
        await office.close()
    await smb.write("plan.xlsx", chunks_of(b"n" * size), size=size, mtime=None)
    assert (smb_folder.local / "plan.xlsx").read_bytes() == b"n" * size


async def test_many_calls_at_once_share_the_connection(smb: SmbConnector,
                                                       smb_folder: SmbFolder) -> None:
    """More calls than the connection takes at once, each moving more bytes than its share
    of the SMB credits: they queue, and none fails for want of credits."""
    contents = {f"f{i:02d}.bin": os.urandom((1 << 20) * (1 + i % 3) + i) for i in range(24)}
    await asyncio.gather(*(smb.write(name, chunks_of(data), size=len(data), mtime=None)
                           for name, data in contents.items()))
    got = await asyncio.gather(*(read_all(smb, name) for name in contents))
    assert dict(zip(contents, got, strict=True)) == contents
    assert {p.name: p.read_bytes() for p in smb_folder.local.iterdir()} == contents


async def test_a_transfer_cut_by_a_dropped_connection_can_be_tried_again(
        smb: SmbConnector, smb_folder: SmbFolder) -> None:
    data = os.urandom(3 << 20)
    await smb.write("src.bin", chunks_of(data), size=len(data), mtime=None)
    reading = smb.read("src.bin", Entry("src.bin", False))
    assert await anext(reading) == data[:1 << 20]
    drop(await serving_us(smb, smb_folder.server))
    with pytest.raises(Retryable, match=r"connection .* dropped"):
        async for _ in reading:
            pass
    assert await read_all(smb, "src.bin") == data  # on a new connection

    serving = await serving_us(smb, smb_folder.server)

    async def cut() -> AsyncIterator[bytes]:
        yield data[:2 << 20]
        drop(serving)
        yield data[2 << 20:]

    with pytest.raises(Retryable):
        await smb.write("copy.bin", cut(), size=len(data), mtime=None)
    await smb.write("copy.bin", chunks_of(data), size=len(data), mtime=None)
    assert (smb_folder.local / "copy.bin").read_bytes() == data


async def test_a_socket_closed_under_a_send_is_a_dropped_connection(smb: SmbConnector) -> None:
    """smbprotocol's receiver closes the socket when the server goes; a send racing it fails
    with EBADF, which is the connection gone (retried on a new one), not a failed request."""
    found = smb._error(OSError(errno.EBADF, "Bad file descriptor"), "copy.bin")
    assert isinstance(found, Retryable) and "dropped" in str(found)
