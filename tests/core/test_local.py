"""LocalConnector against real files: listing, symlink and path safety, atomic writes."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.connectors import local
from core.connectors.base import (
    LEFTOVER_PART,
    AlreadyExists,
    Connector,
    ConnectorError,
    Entry,
    Fatal,
    InvalidPath,
    LocalFile,
    NotFound,
)
from core.connectors.local import CHUNK, LocalConnector

MTIME = 1_600_000_000.123456


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_bytes(b"secret")
    return path


@pytest.fixture(params=["unnamed", "named"])
def temporary_files(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the connector's temporary files are made: unnamed (O_TMPFILE, Linux), or named, as
    on a file system that refuses O_TMPFILE (an SMB mount, macOS)."""
    if request.param == "named":
        real_open = os.open

        def no_unnamed_files(path: str, flags: int, *args: int, **kwargs: int) -> int:
            if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
                raise OSError(errno.EOPNOTSUPP, "Operation not supported")
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", no_unnamed_files)
    elif not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE here")
    return str(request.param)


@pytest.fixture
def conn(root: Path, temporary_files: str) -> LocalConnector:
    return LocalConnector(root, workers=0)  # the monkeypatched calls run in this process


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(conn: LocalConnector, path: str) -> list[bytes]:
    return [chunk async for chunk in conn.read(path, await conn.stat(path))]


def temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".dryviq-")]


async def write_small(
    destination: LocalConnector, files: list[tuple[str, LocalFile, float | None]],
) -> list[Entry | ConnectorError]:
    return await destination.copy_small(files)


def by_name(entries: list[Entry]) -> dict[str, Entry]:
    return {entry.name: entry for entry in entries}


def test_is_a_connector(conn: LocalConnector) -> None:
    assert isinstance(conn, Connector)
    assert conn.features.can_set_mtime and conn.features.path_rules.max_name_length == 255


async def test_list_dir_files_and_folders(conn: LocalConnector, root: Path) -> None:
    (root / "a.txt").write_bytes(b"hello")
    os.utime(root / "a.txt", ns=(0, 1_500_000_000_250_000_000))
    (root / "sub").mkdir()
    (root / "sub" / "b.bin").write_bytes(b"x" * 3000)

    top = by_name(await conn.list_dir(""))
    assert set(top) == {"a.txt", "sub"}
    assert top["a.txt"] == Entry("a.txt", False, 5, 1_500_000_000.25,
                                 str((root / "a.txt").stat().st_ino))  # the inode: its id
    assert top["sub"].is_dir and top["sub"].mtime == (root / "sub").stat().st_mtime_ns / 10**9
    assert await conn.list_dir("sub") == [
        Entry("b.bin", False, 3000, (root / "sub" / "b.bin").stat().st_mtime_ns / 10**9,
              str((root / "sub" / "b.bin").stat().st_ino))
    ]
    assert await conn.list_dir("sub") == await LocalConnector(str(root)).list_dir("sub")


async def test_list_dir_missing_or_file(conn: LocalConnector, root: Path) -> None:
    (root / "f").write_bytes(b"")
    with pytest.raises(NotFound, match="'missing'"):
        await conn.list_dir("missing")
    with pytest.raises(NotFound, match="folder"):
        await conn.list_dir("f")


async def test_symlinks(conn: LocalConnector, root: Path, outside: Path) -> None:
    (root / "real.txt").write_bytes(b"12345678")
    (root / "folder").mkdir()
    (root / "inside.txt").symlink_to("real.txt")
    (root / "folder" / "up.txt").symlink_to("../real.txt")
    (root / "out.txt").symlink_to(outside / "secret.txt")
    (root / "to_folder").symlink_to("folder")
    (root / "to_outside_folder").symlink_to(outside)
    (root / "dangling").symlink_to("nowhere")
    (root / "loop").symlink_to("loop")

    entries = by_name(await conn.list_dir(""))
    real = (root / "real.txt").stat()
    assert entries["inside.txt"] == Entry("inside.txt", False, 8, real.st_mtime_ns / 10**9,
                                          str(real.st_ino))
    assert (await conn.list_dir("folder"))[0].size == 8
    assert "outside" in (entries["out.txt"].skip_reason or "")
    assert "outside" in (entries["to_outside_folder"].skip_reason or "")
    assert "folder" in (entries["to_folder"].skip_reason or "")
    assert entries["dangling"].skip_reason
    assert entries["loop"].skip_reason
    assert all(not e.is_dir for e in entries.values() if e.skip_reason)

    assert await conn.stat("out.txt") == entries["out.txt"]
    assert await conn.stat("inside.txt") == entries["inside.txt"]
    assert b"".join(await read_all(conn, "inside.txt")) == b"12345678"
    with pytest.raises(InvalidPath, match="outside"):
        await read_all(conn, "out.txt")


async def test_fifo_is_skipped(conn: LocalConnector, root: Path) -> None:
    os.mkfifo(root / "pipe")
    (entry,) = await conn.list_dir("")
    assert entry.skip_reason == "not a regular file or folder"
    assert await conn.stat("pipe") == entry


@pytest.mark.parametrize(
    "path", ["..", "a/../b", "/etc", "//etc", "a/", "a//b", ".", "x\0y", "../outside/new"]
)
async def test_invalid_paths_are_refused(conn: LocalConnector, root: Path, path: str) -> None:
    (root / "a").mkdir()
    before = sorted(p.name for p in root.parent.rglob("*"))
    for call in (
        conn.list_dir(path),
        conn.stat(path),
        read_all(conn, path),
        conn.write(path, chunks_of(b"x"), size=1, mtime=None),
        conn.mkdir(path),
        conn.remove(path, Entry("x", False)),
        conn.rmdir(path, Entry("x", True)),
        conn.set_mtime(path, MTIME),
    ):
        with pytest.raises(InvalidPath, match="path"):
            await call
    assert sorted(p.name for p in root.parent.rglob("*")) == before


async def test_root_is_refused_where_a_name_is_needed(conn: LocalConnector) -> None:
    for call in (
        read_all(conn, ""),
        conn.write("", chunks_of(), size=0, mtime=None),
        conn.mkdir(""),
        conn.remove("", Entry("", False)),
        conn.rmdir("", Entry("", True)),
        conn.set_mtime("", MTIME),
    ):
        with pytest.raises(InvalidPath):
            await call


async def test_symlinked_folder_cannot_lead_outside(
    conn: LocalConnector, root: Path, outside: Path
) -> None:
    (root / "out").symlink_to(outside)
    before = sorted(os.listdir(outside))
    for call in (
        conn.list_dir("out"),
        conn.stat("out/secret.txt"),
        read_all(conn, "out/secret.txt"),
        conn.write("out/new.txt", chunks_of(b"x"), size=1, mtime=None),
        conn.write("out/secret.txt", chunks_of(b"x"), size=1, mtime=None),
        conn.mkdir("out/newdir"),
        conn.remove("out/secret.txt", Entry("secret.txt", False)),
        conn.set_mtime("out/secret.txt", MTIME),
    ):
        with pytest.raises(InvalidPath, match="outside the connection root"):
            await call
    assert sorted(os.listdir(outside)) == before
    assert (outside / "secret.txt").read_bytes() == b"secret"


async def test_write_round_trip(conn: LocalConnector, root: Path) -> None:
    data = os.urandom(2 * CHUNK + 12345)
    parts = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]
    entry = await conn.write("big.bin", chunks_of(*parts), size=len(data), mtime=MTIME)

    assert (root / "big.bin").read_bytes() == data
    assert (root / "big.bin").stat().st_mtime_ns == round(MTIME * 1e9)
    assert entry == Entry("big.bin", False, len(data), round(MTIME * 1e9) / 10**9,
                          str((root / "big.bin").stat().st_ino))
    assert abs(entry.mtime - MTIME) < 1e-6
    assert await conn.stat("big.bin") == entry
    read = await read_all(conn, "big.bin")
    assert [len(c) for c in read] == [CHUNK, CHUNK, 12345]
    assert b"".join(read) == data
    assert temp_files(root) == []


async def test_write_small_empty_and_replace(conn: LocalConnector, root: Path) -> None:
    (root / "d").mkdir()
    entry = await conn.write("d/empty", chunks_of(), size=0, mtime=None)
    assert entry.size == 0 and (root / "d" / "empty").read_bytes() == b""
    assert await read_all(conn, "d/empty") == []

    (root / "d" / "f.txt").write_bytes(b"old content")
    await conn.write("d/f.txt", chunks_of(b"new", b"!"), size=4, mtime=MTIME,
                     replacing=await conn.stat("d/f.txt"))
    assert (root / "d" / "f.txt").read_bytes() == b"new!"
    assert temp_files(root / "d") == []


async def test_write_exact_chunk_file(conn: LocalConnector, root: Path) -> None:
    data = b"z" * CHUNK
    await conn.write("one", chunks_of(data), size=CHUNK, mtime=None)
    assert await read_all(conn, "one") == [data]


async def test_write_respects_umask(conn: LocalConnector, root: Path) -> None:
    old = os.umask(0o027)
    try:
        await conn.write("f", chunks_of(b"x"), size=1, mtime=None)
    finally:
        os.umask(old)
    assert (root / "f").stat().st_mode & 0o777 == 0o640


async def test_write_failing_source_leaves_nothing(conn: LocalConnector, root: Path) -> None:
    (root / "keep.txt").write_bytes(b"old")

    async def failing() -> AsyncIterator[bytes]:
        yield b"a" * (CHUNK + 1)  # enough to open and fill the temporary file first
        raise RuntimeError("source broke")

    for name in ("keep.txt", "new.txt"):
        with pytest.raises(RuntimeError, match="source broke"):
            await conn.write(name, failing(), size=2 * CHUNK, mtime=None)
    assert sorted(os.listdir(root)) == ["keep.txt"]
    assert (root / "keep.txt").read_bytes() == b"old"


async def test_write_cancelled_leaves_nothing(conn: LocalConnector, root: Path,
                                             temporary_files: str) -> None:
    (root / "keep.txt").write_bytes(b"old")
    blocked = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield b"a" * CHUNK  # a full chunk: written to the temporary file before the next pull
        blocked.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(conn.write("keep.txt", stalling(), size=CHUNK + 5, mtime=None))
    await blocked.wait()
    assert len(temp_files(root)) == (temporary_files == "named")  # an unnamed one is unseen
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(os.listdir(root)) == ["keep.txt"]
    assert (root / "keep.txt").read_bytes() == b"old"


async def test_write_cancelled_during_a_hop_leaves_nothing(
    conn: LocalConnector, root: Path
) -> None:
    task = asyncio.create_task(
        conn.write("f", chunks_of(b"a" * 8 * CHUNK), size=8 * CHUNK, mtime=None)
    )
    await asyncio.sleep(0)  # let it start its first thread hop
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert os.listdir(root) == []


async def test_write_size_mismatch_is_refused(conn: LocalConnector, root: Path) -> None:
    with pytest.raises(ConnectorError, match="expected 10 bytes, got 5"):
        await conn.write("f", chunks_of(b"12345"), size=10, mtime=None)
    with pytest.raises(ConnectorError, match=f"expected 1 bytes, got {CHUNK + 1}"):
        await conn.write("f", chunks_of(b"x" * (CHUNK + 1)), size=1, mtime=None)
    assert os.listdir(root) == []


async def test_write_onto_folder_or_missing_parent(conn: LocalConnector, root: Path) -> None:
    (root / "dir").mkdir()
    with pytest.raises(AlreadyExists, match="'dir'"):
        await conn.write("dir", chunks_of(b"x"), size=1, mtime=None)
    with pytest.raises(NotFound):
        await conn.write("nope/f", chunks_of(b"x"), size=1, mtime=None)
    assert os.listdir(root) == ["dir"] and os.listdir(root / "dir") == []


async def test_long_name(conn: LocalConnector, root: Path) -> None:
    name = "n" * 251 + ".txt"
    entry = await conn.write(name, chunks_of(b"data"), size=4, mtime=MTIME)
    assert entry.name == name and (root / name).read_bytes() == b"data"
    with pytest.raises(InvalidPath, match="too long"):
        await conn.write(name + "x", chunks_of(b"data"), size=4, mtime=MTIME)
    assert os.listdir(root) == [name]


async def test_read_closed_when_consumer_stops(conn: LocalConnector, root: Path) -> None:
    (root / "f").write_bytes(b"q" * (3 * CHUNK))
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    stream = conn.read("f", await conn.stat("f"))
    assert await anext(stream) == b"q" * CHUNK
    await stream.aclose()
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds
    with pytest.raises(NotFound):
        await read_all(conn, "missing")


async def test_stale_temp_files(conn: LocalConnector, root: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = f".dryviq-{dead.pid}-0123abcd.part"
    mine = f".dryviq-{os.getpid()}-89abcdef.part"
    for name in (stale, mine, ".dryviq-notes.txt"):
        (root / name).write_bytes(b"partial")

    # a live writer's file is hidden; a dead one's is listed as a leftover, and never deleted
    # by a listing (the same folder may be some job's source)
    listed = {e.name: e.skip_reason for e in await conn.list_dir("")}
    assert listed == {stale: LEFTOVER_PART, ".dryviq-notes.txt": None}
    assert sorted(os.listdir(root)) == sorted([stale, mine, ".dryviq-notes.txt"])


async def test_mkdir(conn: LocalConnector, root: Path) -> None:
    entry = await conn.mkdir("new")
    assert entry == Entry("new", True, mtime=(root / "new").stat().st_mtime_ns / 10**9)
    assert (await conn.mkdir("new/inner")).name == "inner"
    # a folder already there (another job made it meanwhile) is the folder wanted
    assert await conn.mkdir("new") == Entry(
        "new", True, mtime=(root / "new").stat().st_mtime_ns / 10**9)
    (root / "file").write_bytes(b"")
    with pytest.raises(AlreadyExists):
        await conn.mkdir("file")
    with pytest.raises(NotFound):
        await conn.mkdir("missing/inner")


async def test_remove_and_rmdir(conn: LocalConnector, root: Path) -> None:
    (root / "d").mkdir()
    (root / "d" / "f").write_bytes(b"x")
    with pytest.raises(ConnectorError, match="not empty"):
        await conn.rmdir("d", await conn.stat("d"))
    await conn.remove("d/f", await conn.stat("d/f"))
    with pytest.raises(NotFound):
        await conn.remove("d/f", Entry("f", False))
    await conn.rmdir("d", await conn.stat("d"))
    assert os.listdir(root) == []
    with pytest.raises(NotFound):
        await conn.rmdir("d", Entry("d", True))


async def test_remove_symlink_removes_only_the_link(
    conn: LocalConnector, root: Path, outside: Path
) -> None:
    (root / "out.txt").symlink_to(outside / "secret.txt")
    await conn.remove("out.txt", await conn.stat("out.txt"))
    assert os.listdir(root) == [] and (outside / "secret.txt").exists()


async def test_set_mtime(conn: LocalConnector, root: Path) -> None:
    (root / "f").write_bytes(b"x")
    await conn.set_mtime("f", MTIME)
    assert (root / "f").stat().st_mtime_ns == round(MTIME * 1e9)
    assert abs((await conn.stat("f")).mtime - MTIME) < 1e-6
    with pytest.raises(NotFound):
        await conn.set_mtime("missing", MTIME)


async def test_stat(conn: LocalConnector, root: Path) -> None:
    assert await conn.stat("") == Entry("", True, mtime=root.stat().st_mtime_ns / 10**9)
    (root / "d").mkdir()
    assert (await conn.stat("d")).is_dir
    with pytest.raises(NotFound):
        await conn.stat("missing")
    with pytest.raises(NotFound):
        await conn.stat("d/missing/x")


async def test_missing_root_is_fatal(tmp_path: Path) -> None:
    conn = LocalConnector(tmp_path / "gone")  # the constructor touches nothing
    with pytest.raises(Fatal, match="gone"):
        await conn.list_dir("")
    (tmp_path / "gone").mkdir()
    assert await conn.list_dir("") == []
    await conn.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_permission_denied(conn: LocalConnector, root: Path) -> None:
    (root / "locked").mkdir(mode=0o000)
    try:
        with pytest.raises(ConnectorError, match="permission denied: 'locked'"):
            await conn.list_dir("locked")
    finally:
        (root / "locked").chmod(0o755)


def refuse_kernel_copy(source: int, target: int, count: int) -> int:
    raise OSError(errno.EXDEV, "Invalid cross-device link")  # as Linux before 5.19 across disks


async def only_in_copy_workers(*args: object) -> None:
    raise AssertionError("copied in the test's process, not in a copy worker")


@pytest.mark.parametrize("how", ["kernel copy", "kernel copy refused", "copy workers"])
async def test_copy_small_copies_a_batch_and_reports_each_failure(
        tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    source_root, destination_root = tmp_path / "src", tmp_path / "dst"
    source_root.mkdir()
    destination_root.mkdir()
    source = LocalConnector(source_root)
    destination = LocalConnector(destination_root, workers=2 if how == "copy workers" else 0)
    if how == "kernel copy refused":
        monkeypatch.setattr(os, "copy_file_range", refuse_kernel_copy, raising=False)
    if how == "copy workers":
        assert await destination.start_copy_workers() is not None
        monkeypatch.setattr(LocalConnector, "_copy_small_here", only_in_copy_workers)
    (source_root / "a.txt").write_bytes(b"alpha")
    (source_root / "b.txt").write_bytes(b"beta")
    (source_root / "c.bin").write_bytes(big := os.urandom(CHUNK - 1))
    entries = {e.name: e for e in await source.list_dir("")}
    (source_root / "b.txt").write_bytes(b"beta, longer now")  # changed after listing
    gone = Entry("gone.txt", False, size=3)
    results = await write_small(destination, [
        ("a.txt", source.local_file("a.txt", entries["a.txt"]), MTIME),
        ("b.txt", source.local_file("b.txt", entries["b.txt"]), MTIME),
        ("gone.txt", source.local_file("gone.txt", gone), MTIME),
        ("../escape.txt", source.local_file("a.txt", entries["a.txt"]), MTIME),
        ("c.bin", source.local_file("c.bin", entries["c.bin"]), MTIME),
    ])
    assert isinstance(results[0], Entry) and results[0].size == 5
    assert "source changed while reading" in str(results[1])
    assert isinstance(results[2], NotFound)
    assert isinstance(results[3], InvalidPath)
    assert replace(results[4], native_id=None) == Entry("c.bin", False, CHUNK - 1, MTIME)
    # no partial or temporary files
    assert sorted(os.listdir(destination_root)) == ["a.txt", "c.bin"]
    assert (destination_root / "a.txt").read_bytes() == b"alpha"
    assert (destination_root / "c.bin").read_bytes() == big
    assert (destination_root / "a.txt").stat().st_mtime_ns == round(MTIME * 1e9)
    assert not (tmp_path / "escape.txt").exists()
    await destination.close()


async def test_write_local_copies_in_steps_and_refuses_a_changed_source(
        conn: LocalConnector, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local, "COPY_STEP", 4096)
    source_root = tmp_path / "src"
    source_root.mkdir()
    data = os.urandom(10_000)
    (source_root / "big.bin").write_bytes(data)
    source = LocalConnector(source_root)
    entry = await source.stat("big.bin")
    steps: list[int] = []

    written = await conn.write_local("big.bin", source.local_file("big.bin", entry),
                                     mtime=MTIME, on_copied=steps.append)

    assert steps == [4096, 4096, 10_000 - 2 * 4096]  # progress after every step
    assert replace(written, native_id=None) == Entry("big.bin", False, 10_000, MTIME)
    assert (root / "big.bin").read_bytes() == data
    assert (root / "big.bin").stat().st_mtime_ns == round(MTIME * 1e9)

    with open(source_root / "big.bin", "ab") as grown:  # changed since it was listed
        grown.write(b"more")
    with pytest.raises(ConnectorError, match=r"source changed while reading 'again\.bin'"):
        await conn.write_local("again.bin", source.local_file("big.bin", entry), mtime=MTIME,
                               on_copied=steps.append)
    assert sorted(os.listdir(root)) == ["big.bin"]  # neither the file nor a temporary one


def two_files_to_copy(tmp_path: Path) -> tuple[LocalConnector, LocalConnector, Path]:
    """A source holding a.txt and b.txt, an empty destination, and the destination's folder."""
    source_root, destination_root = tmp_path / "src", tmp_path / "dst"
    source_root.mkdir()
    destination_root.mkdir()
    for name in ("a.txt", "b.txt"):
        (source_root / name).write_bytes(name.encode())
    return LocalConnector(source_root), LocalConnector(destination_root, workers=0), \
        destination_root


async def test_a_batch_is_published_only_once_it_is_on_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, destination, destination_root = two_files_to_copy(tmp_path)
    files = [(e.name, source.local_file(e.name, e), MTIME) for e in await source.list_dir("")]
    if local._syncfs() is None:
        pytest.skip("no syncfs here: each file is fsynced on its own")

    def disk_failed(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(local, "_syncfs", lambda: disk_failed)
    results = await write_small(destination, files)
    assert all(isinstance(result, Fatal) for result in results), results
    assert os.listdir(destination_root) == []  # nothing published that may not be on disk

    def refused(fd: int) -> None:  # as in a sandbox that forbids syncfs: an fsync each instead
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(local, "_syncfs", lambda: refused)
    results = await write_small(destination, files)
    assert sorted(r.name for r in results if isinstance(r, Entry)) == ["a.txt", "b.txt"]
    assert sorted(os.listdir(destination_root)) == ["a.txt", "b.txt"]


async def test_a_cancelled_batch_closes_what_it_opened(tmp_path: Path) -> None:
    source, destination, destination_root = two_files_to_copy(tmp_path)
    entries = by_name(await source.list_dir(""))
    reached, go_on = threading.Event(), threading.Event()

    class Stalling:  # the second file's open waits until the task has been cancelled
        size = entries["b.txt"].size

        def open(self) -> int:
            reached.set()
            go_on.wait(10)
            return source.local_file("b.txt", entries["b.txt"]).open()

    open_before = len(os.listdir("/proc/self/fd"))
    task = asyncio.create_task(destination.copy_small([
        ("a.txt", source.local_file("a.txt", entries["a.txt"]), MTIME),
        ("b.txt", Stalling(), MTIME),
    ]))
    await asyncio.to_thread(reached.wait, 10)  # a.txt is copied and its file is open
    task.cancel()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert os.listdir(destination_root) == []
