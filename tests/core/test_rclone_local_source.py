"""A local folder copied to an rclone remote with rclone reading the files itself
(write_local / copy_small: operations/copyfile), never streamed through the engine: against
moto's S3, a local remote and a crypt remote (tests/s3.py), everything read back through rclone.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.connectors import rclone
from core.connectors.base import ConnectorError, Entry, InvalidPath, Vanished
from core.connectors.local import LocalConnector
from core.connectors.rclone import RcloneConnector, _epoch
from core.connectors.rclone_daemon import RcloneDaemon
from core.engine import runner
from core.home import Home
from core.job_store import create_job
from core.state import JobRecord, State
from tests.core.test_rclone import BIG, _fresh_remote, cat, listed
from tests.s3 import CRYPT_REMOTE, LOCAL_REMOTE, S3_REMOTE, S3Server

MTIME_NS = 1_600_000_000_123_456_789


@pytest.fixture(params=[S3_REMOTE, LOCAL_REMOTE, CRYPT_REMOTE])
def remote(request: pytest.FixtureRequest, s3_server: S3Server) -> str:
    return _fresh_remote(s3_server, request.param)


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names streamed into rclone (operations/uploadfile): none where rclone reads the
    files itself."""
    streamed: list[str] = []
    upload = RcloneDaemon.upload

    async def recorded(self: RcloneDaemon, params: dict[str, str], name: str,
                       chunks: AsyncIterator[bytes]) -> tuple[int, dict[str, object]]:
        streamed.append(name)
        return await upload(self, params, name, chunks)

    monkeypatch.setattr(RcloneDaemon, "upload", recorded)
    return streamed


def _put(folder: Path, path: str, data: bytes) -> None:
    file = folder / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(data)
    os.utime(file, ns=(MTIME_NS, MTIME_NS))


def _mtime_ns(item: dict[str, str]) -> int:
    """rclone's ModTime (RFC 3339, to the nanosecond, UTC) in nanoseconds."""
    stamp = item["ModTime"]
    seconds = int(_epoch(stamp.split(".")[0] + "Z") or 0)
    fraction = stamp.split(".")[1].rstrip("Z") if "." in stamp else "0"
    return seconds * 10**9 + int(fraction.ljust(9, "0"))


async def test_rclone_reads_local_files_itself(tmp_path: Path, s3_server: S3Server, remote: str,
                                               uploads: list[str]) -> None:
    big = os.urandom(BIG)  # over rclone's streaming cutoff: stored whole, with its length
    _put(tmp_path, "big.bin", big)
    for name in ("a.txt", "b.txt", "c.txt", "gone.txt", "grown.txt"):
        _put(tmp_path, name, name.encode() * 10)
    source = LocalConnector(tmp_path, workers=0)
    entries = {entry.name: entry for entry in await source.list_dir("")}
    (tmp_path / "gone.txt").unlink()
    with open(tmp_path / "grown.txt", "ab") as grown:
        grown.write(b"more")
    destination = RcloneConnector(remote, str(s3_server.config))
    try:
        await destination.connect()
        assert destination.features.reads_local_files
        copied: list[int] = []
        written = await destination.write_local(
            "big.bin", source.local_file("big.bin", entries["big.bin"]),
            mtime=MTIME_NS / 1e9, on_copied=copied.append)
        assert (written.size, sum(copied)) == (BIG, BIG)
        names = ["a.txt", "gone.txt", "b.txt", "grown.txt", "c.txt"]
        await destination.mkdir("sub")
        results = await destination.copy_small(
            [(f"sub/{name}", source.local_file(name, entries[name]), MTIME_NS / 1e9)
             for name in names]
            + [("../out.txt", source.local_file("a.txt", entries["a.txt"]), None)])
        stat_mtimes = {path: (await destination.stat(path)).mtime
                       for path in ("big.bin", "sub/a.txt")}
    finally:
        await destination.close()
    a, gone, b, grown, c, outside = results
    assert isinstance(gone, Vanished) and isinstance(outside, InvalidPath)
    assert isinstance(grown, ConnectorError) and "source changed" in str(grown)
    assert all(isinstance(entry, Entry) and entry.size == 50 for entry in (a, b, c))
    assert uploads == []  # every byte read by rclone itself
    # the bytes, read back through rclone; nothing under a temporary name, nothing partial
    assert cat(s3_server, remote, "big.bin") == big
    for name, result in zip(names, results, strict=False):
        if isinstance(result, Entry):
            assert cat(s3_server, remote, f"sub/{name}") == name.encode() * 10
    found = listed(s3_server, remote)
    assert sorted(path for path, item in found.items() if not item["IsDir"]) == [
        "big.bin", "sub/a.txt", "sub/b.txt", "sub/c.txt"]
    # the source's time, to the nanosecond, as rclone lists it and as the connector said
    assert {_mtime_ns(found[path]) for path in ("big.bin", "sub/a.txt", "sub/c.txt")} == {
        MTIME_NS}
    assert written.mtime == a.mtime == stat_mtimes["big.bin"] == stat_mtimes["sub/a.txt"]


async def _job(state: State, *, simulate: bool = False, upload: int | None = None,
               ) -> JobRecord:
    transfer: dict[str, object] = {
        "transfer_type": "copy",
        "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": "/"}},
        "simulation_mode": simulate}
    if upload:
        transfer["performance"] = {"upload": {"bytes_per_second": upload}}
    record, _ = await create_job(state, json.dumps({"name": f"j-{uuid.uuid4().hex[:6]}",
                                                    "transfer": transfer}))
    return record


@pytest.mark.parametrize("throttled", [False, True], ids=["shortcut", "throttled"])
async def test_a_job_from_a_local_folder_to_s3(tmp_path: Path, s3_server: S3Server,
                                               throttled: bool, uploads: list[str]) -> None:
    """The engine hands local files to rclone (small ones in batches), records what rclone
    stored, counts every byte; a dry run writes nothing; a throttled job streams the bytes
    through its throttle instead (rclone's own copy cannot be throttled)."""
    source = tmp_path / "src"
    files = {"a.pdf": b"a" * 3000, "docs/b.pdf": b"b" * 500, "model.ifc": os.urandom(BIG)}
    for path, data in files.items():
        _put(source, path, data)
    remote = _fresh_remote(s3_server, S3_REMOTE)
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    try:
        await state.add_connection("src", "local", {"path": str(source)})
        await state.add_connection("dst", "rclone", {"remote": remote,
                                                     "config": str(s3_server.config)})
        dry = await _job(state, simulate=True)
        result = await runner.run_job(state, home, dry)
        assert (result.status, listed(s3_server, remote), uploads) == ("completed", {}, [])
        job = await _job(state, upload=(1 << 30) if throttled else None)
        result = await runner.run_job(state, home, job)
        items = {item.path: item for item in await state.items(job.id) if not item.is_dir}
        again = await runner.run_job(state, home, job)  # what was recorded is what is there
    finally:
        await state.close()
    assert (result.status, again.status, again.stats.transferred) == ("completed", "no_changes", 0)
    assert (result.stats.transferred, result.stats.bytes) == (3, sum(map(len, files.values())))
    assert sorted(uploads) == ([] if not throttled else ["a.pdf", "b.pdf", "model.ifc"])
    found = listed(s3_server, remote)
    for path, data in files.items():
        assert cat(s3_server, remote, path) == data
        # streamed, the time goes as the engine's float seconds: to the microsecond
        assert abs(_mtime_ns(found[path]) - MTIME_NS) < (1000 if throttled else 1)
        item = items[f"/{path}"] if f"/{path}" in items else items[path]
        assert (item.status, item.size, item.destination_mtime) == (
            "success", len(data), MTIME_NS / 1e9)


async def _write_one(folder: Path, server: S3Server, kind: str, name: str,
                     data: bytes) -> tuple[str, Entry, list[int], list[str]]:
    """`name` (holding `data`) written from a local folder into a fresh folder of the remote
    `kind` by write_local: the remote, the entry written, the progress steps reported, and
    the stats groups rclone still had after the copy."""
    _put(folder, name, data)
    source = LocalConnector(folder, workers=0)
    [entry] = await source.list_dir("")
    remote = _fresh_remote(server, kind)
    destination = RcloneConnector(remote, str(server.config))
    copied: list[int] = []
    try:
        written = await destination.write_local(name, source.local_file(name, entry),
                                                mtime=entry.mtime, on_copied=copied.append)
        _, groups = await destination._daemon.call("core/group-list", {})
    finally:
        await destination.close()
    assert cat(server, remote, name) == data
    return remote, written, copied, groups.get("groups") or []


async def test_a_path_rclone_would_read_as_another_is_streamed_instead(
        tmp_path: Path, s3_server: S3Server, uploads: list[str]) -> None:
    """rclone's local backend reads '／' in a path as '/' (its encoding of what other systems
    refuse): such a file is streamed to rclone as `write` streams it, not named to it."""
    _, written, copied, _ = await _write_one(tmp_path, s3_server, LOCAL_REMOTE, "RFI 12／A.pdf",
                                             b"fullwidth solidus")
    assert (written.size, sum(copied), len(uploads)) == (17, 17, 1)


async def test_a_large_file_reports_progress_as_rclone_counts_it(
        tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rclone, "PROGRESS_FROM", 0)  # every file watched, often
    monkeypatch.setattr(rclone, "PROGRESS_EVERY", 0.01)
    _, written, copied, groups = await _write_one(tmp_path, s3_server, S3_REMOTE, "model.ifc",
                                                  os.urandom(BIG))
    assert written.size == sum(copied) == BIG and all(step > 0 for step in copied)
    assert not [group for group in groups if group.startswith("dryviq-")]  # dropped after


async def test_a_stopped_copy_small_begins_no_more_files(
        tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = _fresh_remote(s3_server, LOCAL_REMOTE)
    names = [f"f{i:02d}.txt" for i in range(rclone.COPIES_IN_FLIGHT + 4)]
    for name in names:
        _put(tmp_path, name, name.encode() * 10)
    source = LocalConnector(tmp_path, workers=0)
    entries = {entry.name: entry for entry in await source.list_dir("")}
    destination = RcloneConnector(remote, str(s3_server.config))
    write_local = RcloneConnector.write_local

    async def stop_after_the_first(self: RcloneConnector, *args: object, **kwargs: object
                                   ) -> Entry:
        written = await write_local(self, *args, **kwargs)  # type: ignore[arg-type]
        self.stop_copies()  # a graceful stop, with the first batch's copies in flight
        return written

    monkeypatch.setattr(RcloneConnector, "write_local", stop_after_the_first)
    try:
        await destination.connect()
        results = await destination.copy_small(
            [(name, source.local_file(name, entries[name]), None) for name in names])
    finally:
        await destination.close()
    begun = rclone.COPIES_IN_FLIGHT  # those in flight finish; no other begins
    assert all(isinstance(result, Entry) for result in results[:begun]), results
    assert results[begun:] == [None] * 4
    assert sorted(listed(s3_server, remote)) == names[:begun]
