"""The Procore connector against the sandbox over real HTTP: listing, transfers, changes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from core.auth import OOB_REDIRECT, ClientApp, MemoryTokenStore, exchange_code
from core.connectors import Opening
from core.connectors.base import AlreadyExists, Fatal, InvalidPath, NotFound
from core.connectors.procore import ProcoreConnector, direct_upload_max, procore_client
from core.home import Home
from core.sandbox import DEMO_COMPANY, DEMO_PROJECT, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from core.state import State


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1 << 16):
        yield data[start:start + (1 << 16)]


async def read_all(connector: ProcoreConnector, path: str) -> bytes:
    entry = await connector.stat(path)
    return b"".join([chunk async for chunk in connector.read(path, entry)])


@pytest.fixture
async def procore(sandbox, tmp_path) -> AsyncIterator[ProcoreConnector]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    world = sandbox.world
    app = ClientApp(sandbox.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
    token = await exchange_code(app, world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT))
    company = next(c.id for c in world.companies.values() if c.name == DEMO_COMPANY)
    project = next(p.id for p in world.projects.values() if p.name == DEMO_PROJECT)
    client = procore_client(app, MemoryTokenStore(token), Opening(state, home),
                            company_id=company)
    connector = ProcoreConnector(client, project, direct_upload_max=100_000)
    connector.sandbox_project = project  # type: ignore[attr-defined]
    yield connector
    await connector.close()
    await state.close()


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
    small, large = b"first version", os.urandom(300_000)  # large goes by the Uploads API
    await procore.mkdir("Scratch")
    with pytest.raises(AlreadyExists):
        await procore.mkdir("Scratch")
    written = await procore.write("Scratch/note.txt", chunks(small), size=len(small), mtime=None)
    await procore.write("Scratch/big.bin", chunks(large), size=len(large), mtime=None)
    assert await read_all(procore, "Scratch/big.bin") == large
    assert world.requests["POST /rest/v1.1/projects/{project_id}/uploads"] == 1

    newer = b"second version"
    updated = await procore.write("Scratch/note.txt", chunks(newer), size=len(newer),
                                  mtime=None, replacing=written)
    assert updated.native_id == written.native_id and updated.version != written.version
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
    assert client.may_carry_token("https://app.procore.com/fas/api/v5/x")
    assert not client.may_carry_token(sandbox.storage_url + "/blobs/1")
    assert not client.may_carry_token("https://s3.amazonaws.com/bucket/x")
    assert not client.may_carry_token("http://app.procore.com/plain-http")
    assert not client.may_carry_token("https://procore.com.evil.example/x")


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


async def test_the_direct_upload_size_is_configurable(procore, sandbox) -> None:
    assert direct_upload_max({}) == 4 << 20
    assert direct_upload_max({"procore": {"direct_upload_max": 0}}) == 0
    with pytest.raises(Fatal, match="direct_upload_max"):
        direct_upload_max({"procore": {"direct_upload_max": "big"}})
    procore.direct_upload_max = 0  # every file through the Uploads API
    await procore.write("tiny.txt", chunks(b"tiny"), size=4, mtime=None)
    assert sandbox.world.requests["POST /rest/v1.1/projects/{project_id}/uploads"] == 1
    assert sandbox.world.tree(procore.sandbox_project)["tiny.txt"] == b"tiny"
