"""The Procore connector against the sandbox over real HTTP: listing, transfers, changes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.responses import JSONResponse

import core.sandbox.app as sandbox_app
from core.auth import OOB_REDIRECT, ClientApp, MemoryTokenStore, exchange_code
from core.connectors import Opening
from core.connectors.base import AlreadyExists, ConnectorError, Fatal, InvalidPath, NotFound
from core.connectors.procore import (
    ProcoreConnector,
    direct_upload_max,
    procore_client,
    segment_size,
)
from core.connectors.procore_client import check_storage_url
from core.home import Home
from core.sandbox import (
    DEMO_COMPANY,
    DEMO_PROJECT,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SandboxConfig,
    SandboxThread,
)
from core.state import State

UPLOADS = "POST /rest/v1.1/projects/{project_id}/uploads"
UPLOAD_STATUS = "GET /rest/v1.1/projects/{project_id}/uploads/{uuid}"
SEGMENT = 64 << 10  # the tests' segment size: the sandbox's minimum is lowered to match


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1 << 16):
        yield data[start:start + (1 << 16)]


async def read_all(connector: ProcoreConnector, path: str) -> bytes:
    entry = await connector.stat(path)
    return b"".join([chunk async for chunk in connector.read(path, entry)])


async def open_procore(sandbox: SandboxThread, state: State, home: Home,
                       **options: object) -> ProcoreConnector:
    world = sandbox.world
    app = ClientApp(sandbox.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
    token = await exchange_code(app, world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT))
    company = next(c.id for c in world.companies.values() if c.name == DEMO_COMPANY)
    project = next(p.id for p in world.projects.values() if p.name == DEMO_PROJECT)
    client = procore_client(app, MemoryTokenStore(token), Opening(state, home),
                            company_id=company)
    connector = ProcoreConnector(client, project, state=state, **options)  # type: ignore[arg-type]
    connector.sandbox_project = project  # type: ignore[attr-defined]
    return connector


@pytest.fixture
async def opened(tmp_path) -> AsyncIterator[tuple[State, Home]]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    yield state, home
    await state.close()


@pytest.fixture
async def procore(sandbox, opened) -> AsyncIterator[ProcoreConnector]:
    connector = await open_procore(sandbox, *opened)
    yield connector
    await connector.close()


@pytest.fixture
async def segmenting(make_sandbox, opened) -> AsyncIterator[ProcoreConnector]:
    """A connector that sends files above 64 KiB in segments, to a sandbox that takes them."""
    sandbox = make_sandbox(SandboxConfig(min_segment_size=SEGMENT))
    connector = await open_procore(sandbox, *opened, segment_size=SEGMENT)
    connector.sandbox = sandbox  # type: ignore[attr-defined]
    yield connector
    await connector.close()


async def test_listing_shows_content_and_never_the_recycle_bin(procore, sandbox) -> None:
    top = {e.name: e for e in await procore.list_dir("")}
    assert {"Drawings", "Specifications", "RFIs"} <= set(top)
    assert "Recycle Bin" not in top and all(e.is_dir for e in top.values())
    files = await procore.list_dir("Drawings/Architectural")
    assert files and all(not e.is_dir and e.size > 0 and e.version for e in files)
    with pytest.raises(NotFound):
        await procore.list_dir("Drawings/Nowhere")


async def test_write_read_new_version_rename_and_delete(procore, sandbox) -> None:
    world, project = sandbox.world, procore.sandbox_project
    small, large = b"first version", os.urandom(300_000)
    scratch = await procore.mkdir("Scratch")
    # a folder already there (another job made it meanwhile) is the folder wanted
    assert (await procore.mkdir("Scratch")).native_id == scratch.native_id
    written = await procore.write("Scratch/note.txt", chunks(small), size=len(small), mtime=None)
    await procore.write("Scratch/big.bin", chunks(large), size=len(large), mtime=None)
    assert await read_all(procore, "Scratch/big.bin") == large
    assert world.requests[UPLOADS] == 2  # every file by the Uploads API

    newer = b"second version"
    updated = await procore.write("Scratch/note.txt", chunks(newer), size=len(newer),
                                  mtime=None, replacing=written)
    assert updated.native_id == written.native_id and updated.version != written.version
    assert world.requests[UPLOADS] == 3 and world.requests["PATCH /rest/v1.0/files/{id}"] == 1
    assert world.versions(project, "Scratch/note.txt") == 2
    assert await read_all(procore, "Scratch/note.txt") == newer

    renamed = await procore.rename("Scratch/note.txt", updated, "memo.txt")
    assert renamed.native_id == written.native_id
    assert world.tree(project)["Scratch/memo.txt"] == newer
    await procore.remove("Scratch/memo.txt", renamed)
    await procore.remove("Scratch/big.bin", await procore.stat("Scratch/big.bin"))
    await procore.rmdir("Scratch", await procore.stat("Scratch"))
    assert not any(path.startswith("Scratch") for path in world.tree(project))
    assert world.storage_auth_refusals == 0


async def test_a_name_procore_refuses_is_an_invalid_path(procore) -> None:
    with pytest.raises(InvalidPath, match="characters"):
        await procore.write("bad:name.pdf", chunks(b"x"), size=1, mtime=None)


async def test_the_token_goes_only_to_procore_hosts(procore, sandbox) -> None:
    client = procore.client
    assert client.may_carry_token(sandbox.url + "/rest/v1.0/me")
    assert client.may_carry_token(sandbox.download_url + "/fas/api/v5/file_versions/1/download")
    assert client.may_carry_token("https://app.procore.com/fas/api/v5/x")
    assert not client.may_carry_token(sandbox.storage_url + "/blobs/1")
    assert not client.may_carry_token("https://s3.amazonaws.com/bucket/x")
    assert not client.may_carry_token("http://app.procore.com/plain-http")
    assert not client.may_carry_token("https://procore.com.evil.example/x")


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://s3.amazonaws.com/pro-core.com/companies/1", True),
    ("https://uploads.storage-provider.example/bucket/key?sig=x", True),  # hosts may change
    ("http://127.0.0.1:9000/uploads/x", True),  # the local sandbox
    ("http://localhost:9000/uploads/x", True),
    ("http://s3.amazonaws.com/pro-core.com/x", False),  # never in the clear
    ("ftp://storage.example/x", False),
])
def test_any_https_storage_host_is_accepted_for_uploads(url: str, allowed: bool) -> None:
    if allowed:
        check_storage_url(url, "upload x")
    else:
        with pytest.raises(ConnectorError, match="not https"):
            check_storage_url(url, "upload x")


async def test_a_download_sends_the_token_to_the_download_host_only(procore, sandbox) -> None:
    path = "Specifications/03 30 00 Cast-in-Place Concrete.pdf"
    world = sandbox.world
    before = world.requests["GET /fas/api/v5/file_versions/{id}/download"]
    assert await read_all(procore, path) == world.tree(procore.sandbox_project)[path]
    assert world.requests["GET /fas/api/v5/file_versions/{id}/download"] == before + 1
    assert world.requests["GET /blobs/{id}"] == 1 and world.storage_auth_refusals == 0


async def test_a_walk_reads_the_index_instead_of_each_folder(procore, sandbox) -> None:
    world = sandbox.world
    before = world.api_calls
    await procore.begin_walk("")
    folders = [""]
    seen = 0
    while folders:
        folder = folders.pop()
        for entry in await procore.list_dir(folder):
            seen += 1
            if entry.is_dir:
                folders.append(f"{folder}/{entry.name}".lstrip("/"))
    assert seen > 40
    assert world.api_calls - before == 1  # the whole demo project fits one index page


def test_upload_settings_are_checked() -> None:
    assert direct_upload_max({}) == 0
    assert direct_upload_max({"procore": {"direct_upload_max": 4096}}) == 4096
    for bad in ("big", -1, True):
        with pytest.raises(Fatal, match="direct_upload_max"):
            direct_upload_max({"procore": {"direct_upload_max": bad}})
    assert segment_size({}) == 100 << 20
    assert segment_size({"procore": {"segment_size_mib": 8}}) == 8 << 20
    for bad in (4, 0, "8", 8.5, 5000):
        with pytest.raises(Fatal, match=r"segment_size_mib .* from 5"):
            segment_size({"procore": {"segment_size_mib": bad}})


async def test_every_file_goes_by_the_uploads_api_with_unique_name_false(procore, sandbox,
                                                                         ) -> None:
    sent: list[bytes] = []

    async def capture(request: httpx.Request) -> None:
        if request.url.path == "/rest/v1.0/files":
            sent.append(await request.aread())

    procore.client.http.event_hooks["request"].append(capture)
    await procore.write("tiny.txt", chunks(b"tiny"), size=4, mtime=None)
    await procore.write("empty.txt", chunks(b""), size=0, mtime=None)
    world = sandbox.world
    assert world.requests[UPLOADS] == 2 and world.requests["POST /uploads/{uuid}"] == 2
    assert world.tree(procore.sandbox_project)["tiny.txt"] == b"tiny"
    assert world.tree(procore.sandbox_project)["empty.txt"] == b""
    forms = [parse_qs(body.decode()) for body in sent]  # form-encoded: no file part
    assert len(forms) == 2 and all(form["file[unique_name]"] == ["false"]
                                   and form["file[upload_uuid]"] for form in forms)
    with pytest.raises(AlreadyExists):  # a clash, never a silent "tiny (1).txt"
        await procore.write("tiny.txt", chunks(b"other"), size=5, mtime=None)
    assert "tiny (1).txt" not in world.tree(procore.sandbox_project)


async def test_the_deprecated_direct_path_is_opt_in_and_warns_once(procore, sandbox) -> None:
    heard: list[tuple[str, str]] = []

    async def notify(kind: str, message: str) -> None:
        heard.append((kind, message))

    procore.direct_upload_max, procore.notify = 10, notify
    await procore.write("a.txt", chunks(b"direct"), size=6, mtime=None)
    await procore.write("b.txt", chunks(b"direct too"), size=10, mtime=None)
    await procore.write("c.txt", chunks(b"eleven byte"), size=11, mtime=None)
    world = sandbox.world
    assert world.requests[UPLOADS] == 1  # c.txt only
    assert [kind for kind, _ in heard] == ["warning"]
    assert "deprecated" in heard[0][1] and "direct_upload_max" in heard[0][1]
    assert world.tree(procore.sandbox_project)["b.txt"] == b"direct too"


def segment_puts(connector: ProcoreConnector) -> dict[int, int]:
    """How often each segment index was stored, over every upload."""
    found: dict[int, int] = {}
    for (_, index), count in connector.sandbox.world.segment_puts.items():  # type: ignore[attr-defined]
        found[index] = found.get(index, 0) + count
    return found


async def test_a_large_file_goes_in_segments(segmenting) -> None:
    data = os.urandom(3 * SEGMENT + 1000)
    entry = await segmenting.write("big.bin", chunks(data), size=len(data), mtime=None)
    world = segmenting.sandbox.world
    assert world.tree(segmenting.sandbox_project)["big.bin"] == data
    assert segment_puts(segmenting) == {0: 1, 1: 1, 2: 1, 3: 1}
    assert world.requests[UPLOADS] == 1
    assert world.requests["PATCH /rest/v1.1/projects/{project_id}/uploads/{uuid}"] == 1
    assert world.storage_auth_refusals == 0
    assert await segmenting.state.segmented_upload(segmenting._destination, "big.bin") is None
    newer = os.urandom(2 * SEGMENT + 5)
    await segmenting.write("big.bin", chunks(newer), size=len(newer), mtime=None,
                           replacing=entry)
    assert world.versions(segmenting.sandbox_project, "big.bin") == 2
    assert await read_all(segmenting, "big.bin") == newer


async def interrupted(connector: ProcoreConnector, data: bytes, stored: int) -> None:
    """Start writing `data` to big.bin and stop it once `stored` segments are stored."""
    world = connector.sandbox.world  # type: ignore[attr-defined]
    world.hold_segments_from = stored
    write = asyncio.create_task(connector.write("big.bin", chunks(data), size=len(data),
                                                mtime=None))
    while world.segment_puts_begun <= stored:
        assert not write.done()
        await asyncio.sleep(0.01)
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    world.hold_segments_from = None


async def resumed(make_sandbox, opened, change: Callable[[ProcoreConnector], None] | None,
                  ) -> tuple[ProcoreConnector, bytes]:
    sandbox = make_sandbox(SandboxConfig(min_segment_size=SEGMENT))
    data = os.urandom(5 * SEGMENT + 10)
    first = await open_procore(sandbox, *opened, segment_size=SEGMENT)
    first.sandbox = sandbox  # type: ignore[attr-defined]
    await interrupted(first, data, stored=3)
    await first.close()
    second = await open_procore(sandbox, *opened, segment_size=SEGMENT)
    second.sandbox = sandbox  # type: ignore[attr-defined]
    if change is not None:
        change(second)
    return second, data


async def test_an_interrupted_segmented_upload_resumes_without_resending(make_sandbox,
                                                                        opened) -> None:
    connector, data = await resumed(make_sandbox, opened, None)
    await connector.write("big.bin", chunks(data), size=len(data), mtime=None)
    world = connector.sandbox.world  # type: ignore[attr-defined]
    assert world.tree(connector.sandbox_project)["big.bin"] == data
    assert segment_puts(connector) == dict.fromkeys(range(6), 1)  # none sent twice
    assert world.requests[UPLOADS] == 1  # the first run's upload, resumed
    assert (connector.segments_resumed, connector.segments_sent) == (3, 3)
    await connector.close()


async def test_an_expired_upload_starts_again(make_sandbox, opened) -> None:
    def later(connector: ProcoreConnector) -> None:
        world = connector.sandbox.world  # type: ignore[attr-defined]
        start = world.clock()
        world.clock = lambda: start + 3601  # the segment URLs expired meanwhile

    connector, data = await resumed(make_sandbox, opened, later)
    await connector.write("big.bin", chunks(data), size=len(data), mtime=None)
    world = connector.sandbox.world  # type: ignore[attr-defined]
    assert world.tree(connector.sandbox_project)["big.bin"] == data
    assert world.requests[UPLOADS] == 2  # a fresh upload
    assert connector.segments_sent == 6 and world.versions(connector.sandbox_project,
                                                           "big.bin") == 1
    await connector.close()


async def test_changed_content_starts_a_new_upload(make_sandbox, opened) -> None:
    connector, data = await resumed(make_sandbox, opened, None)
    changed = data[:-1] + bytes([data[-1] ^ 1])
    await connector.write("big.bin", chunks(changed), size=len(changed), mtime=None)
    world = connector.sandbox.world  # type: ignore[attr-defined]
    assert world.tree(connector.sandbox_project)["big.bin"] == changed
    assert world.requests[UPLOADS] == 2 and connector.segments_resumed == 0
    await connector.close()


async def test_a_completed_upload_is_not_resumed(segmenting, monkeypatch) -> None:
    """Killed after the create landed, before the record was dropped: the upload is attached
    already, so the next write of the same bytes makes a fresh one."""
    data = os.urandom(2 * SEGMENT + 1)

    async def keep(uuid: str) -> None:
        pass

    with monkeypatch.context() as patched:
        patched.setattr(segmenting.state, "forget_segmented_upload", keep)
        entry = await segmenting.write("big.bin", chunks(data), size=len(data), mtime=None)
    assert await segmenting.state.segmented_upload(segmenting._destination, "big.bin")
    await segmenting.remove("big.bin", entry)
    await segmenting.write("big.bin", chunks(data), size=len(data), mtime=None)
    world = segmenting.sandbox.world
    assert world.tree(segmenting.sandbox_project)["big.bin"] == data
    assert world.requests[UPLOADS] == 2 and segmenting.segments_resumed == 0


async def test_a_resume_needs_no_upload_status_call(make_sandbox, opened, monkeypatch) -> None:
    """Procore documents no status call for v1.1 uploads: with the sandbox answering it 405,
    an interrupted file is still sent once, its stored segments not sent again."""
    monkeypatch.setattr(sandbox_app, "_show_upload",
                        lambda call: JSONResponse({"errors": "Method Not Allowed"}, 405))
    connector, data = await resumed(make_sandbox, opened, None)
    await connector.write("big.bin", chunks(data), size=len(data), mtime=None)
    world = connector.sandbox.world  # type: ignore[attr-defined]
    assert world.tree(connector.sandbox_project)["big.bin"] == data
    assert world.versions(connector.sandbox_project, "big.bin") == 1
    assert segment_puts(connector) == dict.fromkeys(range(6), 1)
    assert world.requests[UPLOADS] == 1 and world.requests[UPLOAD_STATUS] == 0
    refused = await connector.client.send(  # the sandbox does answer that call with 405
        "GET", f"{connector._uploads}/ANY", what="probe", ok=(405,))
    assert refused.status_code == 405
    await connector.close()


async def held_write(segmenting, data: bytes, *, held: int) -> asyncio.Task:
    """A write of big.bin started and held at its segment PUT number `held` (from 0): the
    storage host keeps that PUT waiting until the test clears `hold_segments_from`."""
    world = segmenting.sandbox.world
    world.hold_segments_from = held
    write = asyncio.create_task(segmenting.write("big.bin", chunks(data), size=len(data),
                                                 mtime=None))
    while world.segment_puts_begun <= held:
        assert not write.done()
        await asyncio.sleep(0.01)
    return write


async def test_a_file_outlasting_the_upload_hour_fails_saying_so(segmenting) -> None:
    """The storage host refuses a fresh upload's segments an hour after its creation: the
    file fails with a message naming the one-hour window, and no document is made."""
    world = segmenting.sandbox.world
    write = await held_write(segmenting, os.urandom(5 * SEGMENT + 10), held=2)
    start = world.clock()
    world.clock = lambda: start + 3601  # segment 3's PUT arrives after the hour
    world.hold_segments_from = None
    with pytest.raises(ConnectorError) as failed:
        await write
    message = str(failed.value)
    assert "could not be sent within Procore's one-hour upload window" in message, message
    assert "segment_size_mib does not help" in message and "cannot be sent this way" in message
    assert "60 minutes" in message and "0.1 of its 0.3 MiB" in message
    assert "big.bin" not in world.tree(segmenting.sandbox_project)
    assert world.requests[UPLOADS] == 1  # no second upload made after the hour
    assert await segmenting.state.segmented_upload(segmenting._destination, "big.bin") is None


async def test_a_refusal_within_the_hour_is_not_called_the_window(segmenting) -> None:
    """A fresh upload refused before its hour is up fails as the refusal it is."""
    world = segmenting.sandbox.world
    write = await held_write(segmenting, os.urandom(2 * SEGMENT + 10), held=1)
    world.uploads.clear()  # the storage host has lost it: segment 2's PUT is refused
    world.hold_segments_from = None
    with pytest.raises(ConnectorError, match="storage host refused it") as failed:
        await write
    assert "one-hour" not in str(failed.value)
    assert "big.bin" not in world.tree(segmenting.sandbox_project)


async def test_a_walk_with_two_index_pages_left_reads_them_without_weighing_folders(
        sandbox, opened, monkeypatch) -> None:
    """Weighing the folder walk costs a call and walking at least one more: with two pages of
    the index left, reading them is never dearer, so no folders index is read."""
    import core.connectors.procore as procore_module
    from core.sandbox.samples import bulk_project

    world = sandbox.world
    company = next(c.id for c in world.companies.values() if c.name == DEMO_COMPANY)
    project = bulk_project(world, company, "Three pages", files=120, folders=12)
    monkeypatch.setattr(procore_module, "PER_PAGE", 50)  # 133 documents: three pages
    connector = await open_procore(sandbox, *opened)
    connector.project_id = project
    before = world.api_calls
    await connector.begin_walk("")
    assert world.api_calls - before == 3
    assert len(await connector.list_dir("Folder 00001")) == 10
    assert world.api_calls - before == 3  # listed from the index
    await connector.close()
