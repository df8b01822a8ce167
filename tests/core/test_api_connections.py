"""Connections over the real served API (tests/api.py): the platforms, adding, listing,
showing and removing connections, browsing a folder, and the refusals on the way; every answer
checked for the secrets it must never carry."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from core.home import Home
from core.job_store import create_job
from tests.api import ServedApi, served_api

pytestmark = pytest.mark.asyncio(loop_scope="module")


def allow(home: Home, roots: object) -> None:
    """config.toml's [api] local_roots = `roots` (read on each request)."""
    home.config_path.write_text(f"[api]\nlocal_roots = {json.dumps(roots)}\n")
    home.config_path.chmod(0o600)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServedApi]:
    """The API, allowing local folders anywhere in the tests' temporary folder (which holds
    its home)."""
    home = Home(tmp_path_factory.mktemp("home"))
    allow(home, [str(tmp_path_factory.getbasetemp())])
    async with served_api(home) as running:
        yield running


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder to connect: a subfolder with a file, and two files at the top."""
    root = tmp_path_factory.mktemp("docs")
    (root / "Specs").mkdir()
    (root / "Specs" / "spec.pdf").write_bytes(b"x" * 1234)
    (root / "b.txt").write_text("b")
    (root / "A.txt").write_text("a")
    return root


async def add_local(served: ServedApi, name: str, path: Path) -> dict:
    answer = await served.client.post("/v1/connections", json={
        "name": name, "platform": {"id": "local"}, "auth": {"path": str(path)}})
    assert answer.status_code == 201, answer.text
    return answer.json()["connection"]


def refused(answer, status: int, field: str | None) -> str:
    """The error envelope's description, once its status and field are as expected."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["type"] == "error" and body["status"] == status
    assert body["errors"][0]["field"] == field, body
    return body["errors"][0]["description"]


async def test_platforms_describe_each_connector(served: ServedApi) -> None:
    answer = await served.client.get("/v1/connections/platforms")
    assert answer.status_code == 200
    body = answer.json()
    assert body["type"] == "platforms" and body["meta"]["total_count"] == 4
    platforms = {p["id"]: p for p in body["platforms"]}
    assert set(platforms) == {"local", "smb", "rclone", "procore"}
    assert platforms["procore"]["features"]["case_insensitive"] is True
    assert platforms["procore"]["path"]["validation"]["max_path_length"] == 255
    assert "CON" in platforms["smb"]["path"]["validation"]["reserved_names"]
    assert platforms["local"]["features"]["can_set_mtime"] is True
    assert platforms["rclone"]["features"] is None  # known once the remote answers
    assert platforms["procore"]["authorize"] == {"methods": ["oauth2"]}
    one = await served.client.get("/v1/connections/platforms/nfs")  # DryvIQ's name: SMB
    assert one.json()["platform"]["id"] == "smb"
    refused(await served.client.get("/v1/connections/platforms/box"), 404, "platform")
    paged = (await served.client.get("/v1/connections/platforms?limit=1&offset=1")).json()
    assert len(paged["platforms"]) == 1 and paged["meta"]["has_more"] is True


async def test_new_connection_of_a_prompt_platform_lists_the_fields(served: ServedApi) -> None:
    answer = (await served.client.get("/v1/connections/platforms/smb/new")).json()
    assert answer["type"] == "authorize"
    prompt = answer["authorize"]
    assert prompt["method"] == "prompt" and prompt["target"] == served.url + "/v1/connections"
    assert prompt["attributes"]["password"]["type"] == "password"
    assert prompt["attributes"]["server"]["required"] is True
    assert prompt["attributes"]["port"]["required"] is False


async def test_add_show_list_and_remove_a_local_connection(served: ServedApi,
                                                          folder: Path) -> None:
    made = await add_local(served, "Office docs", folder)
    assert made["platform"] == {"id": "local", "name": "Local folder"}
    assert made["auth"]["path"] == str(folder.resolve())
    shown = (await served.client.get(f"/v1/connections/{made['id']}")).json()
    assert shown == {"status": 200, "type": "connection", "connection": made}
    listed = (await served.client.get("/v1/connections")).json()
    assert made in listed["connections"]
    # by name too, as job JSON names connections
    assert (await served.client.get("/v1/connections/Office docs")).json()["connection"] == made
    put = await served.client.put(f"/v1/connections/{made['id']}")
    assert put.status_code == 405 and {"GET", "DELETE"} <= set(put.headers["allow"].split(", "))
    removed = await served.client.delete(f"/v1/connections/{made['id']}")
    assert removed.status_code == 204
    refused(await served.client.get(f"/v1/connections/{made['id']}"), 404, "id")
    refused(await served.client.delete(f"/v1/connections/{made['id']}"), 404, "id")


@pytest.mark.parametrize(("body", "field", "said"), [
    ({"platform": {"id": "local"}, "auth": {"path": "/"}}, "name", "name is required"),
    ({"name": "a:b", "platform": {"id": "local"}, "auth": {"path": "/"}}, "name", "':'"),
    ({"name": "x", "auth": {"path": "/"}}, "platform.id", "platform is required"),
    ({"name": "x", "platform": {"id": "box"}}, "platform.id", "unknown platform 'box'"),
    ({"name": "x", "platform": {"id": "procore"}}, "platform.id", "procore/new"),
    ({"name": "x", "platform": {"id": "local"}, "auth": []}, "auth", "auth must be"),
    ({"name": "x", "platform": {"id": "local"}, "auth": {}}, "auth.path", "is required"),
    ({"name": "x", "platform": {"id": "local"}, "auth": {"path": 3}}, "auth.path", "string"),
    ({"name": "x", "platform": {"id": "local"}, "auth": {"path": "/x\0"}}, "auth.path", "NUL"),
    ({"name": "x", "platform": {"id": "local"}, "auth": {"path": "/", "fsync": "no"}},
     "auth.fsync", "true or false"),
    ({"name": "x", "platform": {"id": "smb"}, "auth": {"server": "h", "share": "a/b",
                                                       "username": "u", "password": "p"}},
     "auth.share", "one share name"),
    ({"name": "x", "platform": {"id": "smb"}, "auth": {"server": "h", "share": "s",
                                                       "username": "u", "password": "p",
                                                       "port": True}},
     "auth.port", "whole number"),
    ({"name": "x", "platform": {"id": "nfs"}, "auth": {"uri": "server", "username": "u",
                                                       "password": "p"}},
     "auth.uri", "\\\\server\\share"),
    ({"name": "x", "platform": {"id": "smb"}, "auth": {"server": "h", "share": "s",
                                                       "username": "u"}},
     "auth.password", "is required"),
    ({"name": "x", "platform": {"id": "rclone"}, "auth": {"remote": "nocolon"}},
     "auth.remote", "REMOTE:path"),
])
async def test_bad_input_is_a_400_naming_the_field(served: ServedApi, body: dict,
                                                   field: str, said: str) -> None:
    before = (await served.client.get("/v1/connections")).json()["meta"]["total_count"]
    assert said in refused(await served.client.post("/v1/connections", json=body), 400, field)
    assert (await served.client.get("/v1/connections")).json()["meta"]["total_count"] == before


async def test_local_folders_only_in_the_allowed_roots_never_the_home(served: ServedApi,
                                                                      tmp_path: Path) -> None:
    """A write token reaches no file the installation did not allow, least of all the home's
    state.db with every connection's secrets: checked on real paths, symlinks resolved."""
    base, home = tmp_path.parent, served.home.root  # base: the allowed root
    (tmp_path / "to-home").symlink_to(home)
    (tmp_path / "to-etc").symlink_to("/etc")
    (home / "inside").mkdir()

    async def refusal(path: Path | str, code: str, status: int = 403) -> str:
        answer = await served.client.post("/v1/connections", json={
            "name": "Rootfs", "platform": {"id": "local"}, "auth": {"path": str(path)}})
        said = refused(answer, status, "auth.path")
        assert answer.json()["errors"][0]["code"] == code
        return said

    for outside in ("/", "/etc", tmp_path / "to-etc", "/no/such/dir"):  # existence not told
        assert "outside the folders" in await refusal(outside, "local_roots")
    for holding in (base, home, home / "inside", tmp_path / "to-home", f"{home}/../{home.name}"):
        assert "dryviq-tui's home" in await refusal(holding, "dryviq_home")
    assert "no such folder" in await refusal(tmp_path / "missing", "invalid", 400)
    try:
        allow(served.home, [])
        assert 'local_roots = ["/srv/projects"]' in await refusal(tmp_path, "local_roots")
        allow(served.home, ["relative/folder"])
        assert "absolute paths" in await refusal(tmp_path, "local_roots")
        (tmp_path / "to-base").symlink_to(base)
        allow(served.home, [str(tmp_path / "to-base")])  # a root is taken by its real path
        made = await add_local(served, "Allowed", tmp_path)
        assert made["auth"]["path"] == str(tmp_path.resolve())
    finally:
        allow(served.home, [str(base)])
    names = [c["name"] for c in (await served.client.get("/v1/connections")).json()[
        "connections"]]
    assert "Rootfs" not in names and "Allowed" in names


async def test_not_json_a_taken_name_and_a_read_only_token_are_refused(
        served: ServedApi, folder: Path) -> None:
    refused(await served.client.post("/v1/connections", content=b"{"), 400, None)
    refused(await served.client.post("/v1/connections", json=["x"]), 400, None)
    await add_local(served, "Taken", folder)
    said = refused(await served.client.post("/v1/connections", json={
        "name": "taken ", "platform": {"id": "local"}, "auth": {"path": str(folder)}}),
        409, "name")
    assert "'Taken' already exists" in said
    async with served.client_with(served.read_only_token) as reader:
        answer = await reader.post("/v1/connections", json={
            "name": "other", "platform": {"id": "local"}, "auth": {"path": str(folder)}})
        assert answer.status_code == 403
        assert (await reader.get("/v1/connections")).status_code == 200


async def test_a_connection_a_job_uses_is_not_removed(served: ServedApi, folder: Path,
                                                     tmp_path: Path) -> None:
    source = await add_local(served, "Job source", folder)
    target = await add_local(served, "Job target", tmp_path)
    await create_job(served.state, json.dumps({
        "name": "Nightly", "transfer": {
            "source": {"connection": {"id": source["id"]}, "target": {"path": "/"}},
            "destination": {"connection": {"id": target["id"]}, "target": {"path": "/"}}}}))
    said = refused(await served.client.delete(f"/v1/connections/{source['id']}"), 409, "id")
    assert "'Nightly'" in said
    assert (await served.client.get(f"/v1/connections/{source['id']}")).status_code == 200


async def test_browse_a_folder_page_by_page_never_out_of_its_root(served: ServedApi,
                                                                  folder: Path) -> None:
    made = await add_local(served, "Browse", folder)
    items = f"/v1/connections/{made['id']}/items"
    top = (await served.client.get(items)).json()
    assert top["type"] == "items"
    assert [(i["name"], i["type"], i["path"]) for i in top["items"]] == [
        ("Specs", "folder", "/Specs"), ("A.txt", "file", "/A.txt"), ("b.txt", "file", "/b.txt")]
    first = (await served.client.get(items, params={"limit": 1})).json()
    assert first["meta"]["has_more"] is True and first["meta"]["total_count"] == 3
    second = (await served.client.get(first["meta"]["links"]["next"]["href"])).json()
    assert [i["name"] for i in second["items"]] == ["A.txt"]
    inside = (await served.client.get(items, params={"path": "/Specs"})).json()["items"]
    assert [(i["name"], i["bytes"], i["path"]) for i in inside] == [
        ("spec.pdf", 1234, "/Specs/spec.pdf")]
    assert isinstance(inside[0]["modified_on"], int)
    for climbing in ("../..", "/Specs/../../etc", ".."):
        said = refused(await served.client.get(items, params={"path": climbing}), 400, "path")
        assert "'..'" in said
    refused(await served.client.get(items, params={"path": "/Nope"}), 404, "path")
    refused(await served.client.get(items, params={"path": "/A.txt"}), 404, "path")
    refused(await served.client.get(items, params={"limit": 0}), 400, "limit")
    refused(await served.client.get("/v1/connections/nope/items"), 404, "id")


async def test_an_smb_password_is_kept_secret(served: ServedApi, smb_folder) -> None:
    server = smb_folder.server
    (smb_folder.local / "plan.pdf").write_bytes(b"plan")
    answer = await served.client.post("/v1/connections", json={
        "name": "Share", "platform": {"id": "smb"}, "auth": {
            "server": server.host, "port": server.port, "share": server.share,
            "path": smb_folder.path, "username": server.username,
            "password": server.password}})
    assert answer.status_code == 201, answer.text
    made = answer.json()["connection"]
    seen = [answer.text]
    for path in (f"/v1/connections/{made['id']}", "/v1/connections",
                 f"/v1/connections/{made['id']}/items"):
        shown = await served.client.get(path)
        assert shown.status_code == 200, shown.text
        seen.append(shown.text)
    assert "plan.pdf" in seen[-1]
    assert not any(server.password in text for text in seen)
    with sqlite3.connect(served.home.state_path) as db:
        (stored,) = db.execute("SELECT data FROM secrets WHERE connection_id = ?",
                               (made["id"],)).fetchone()
    assert json.loads(stored) == {"password": server.password}
    unc = rf"\\{server.host}\{server.share}{smb_folder.path.replace('/', chr(92))}"
    dryviq = await served.client.post("/v1/connections", json={  # DryvIQ's form
        "name": "Share by UNC", "platform": {"id": "nfs"}, "auth": {
            "uri": unc, "port": server.port, "username": server.username,
            "password": server.password}})
    assert dryviq.status_code == 201, dryviq.text
    assert dryviq.json()["connection"]["platform"]["id"] == "smb"
    assert dryviq.json()["connection"]["auth"]["path"] == smb_folder.path
    assert server.password not in dryviq.text
    wrong = await served.client.post("/v1/connections", json={
        "name": "Wrong", "platform": {"id": "smb"}, "auth": {
            "server": server.host, "port": server.port, "share": server.share,
            "username": server.username, "password": "not-the-password-42"}})
    said = refused(wrong, 400, "auth")
    assert said.startswith("Connection test failed") and "not-the-password-42" not in wrong.text
    assert (await served.client.get("/v1/connections/Wrong")).status_code == 404


async def test_an_rclone_remote_is_added_once_it_lists(
        served: ServedApi, folder: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "rclone.conf"
    config.write_text("[disk]\ntype = local\n")
    chosen = await served.client.post("/v1/connections", json={
        "name": "Chosen", "platform": {"id": "rclone"},
        "auth": {"remote": f"disk:{folder}", "config": str(config)}})
    assert chosen.status_code == 403 and chosen.json()["errors"][0]["code"] == "rclone_config"
    assert (await served.client.get("/v1/connections/Chosen")).status_code == 404
    monkeypatch.setenv("RCLONE_CONFIG", str(config))  # the server's own rclone config
    answer = await served.client.post("/v1/connections", json={
        "name": "Remote", "platform": {"id": "rclone"},
        "auth": {"remote": f"disk:{folder}"}})
    assert answer.status_code == 201, answer.text
    made = answer.json()["connection"]
    items = (await served.client.get(f"/v1/connections/{made['id']}/items",
                                     params={"path": "Specs"})).json()["items"]
    assert [(i["name"], i["bytes"]) for i in items] == [("spec.pdf", 1234)]
    missing = await served.client.post("/v1/connections", json={
        "name": "Nowhere", "platform": {"id": "rclone"},
        "auth": {"remote": "nosuch:x"}})
    assert "no remote 'nosuch'" in refused(missing, 400, "auth")
