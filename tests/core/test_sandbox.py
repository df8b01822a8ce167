"""The Procore sandbox over real HTTP, with a plain HTTP client: what a client of Procore sees.

Each test serves its own world (see tests/conftest.py) and checks answers against the
reference (shared/reference/procore-api.md) and the world's state afterwards.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from core.sandbox import (
    DEMO_PROJECT,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_LOGIN,
    SANDBOX_PASSWORD,
    SERVICE_CLIENT_ID,
    SERVICE_CLIENT_SECRET,
    SandboxConfig,
    SandboxThread,
    World,
    bulk_project,
)
from core.sandbox.world import name_problem

OOB = "urn:ietf:wg:oauth:2.0:oob"
INVALID_CLIENT = {"error": "invalid_client", "error_description": (
    "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method.")}
INVALID_GRANT = {"error": "invalid_grant", "error_description": (
    "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client.")}
INVALID_REFRESH = {"error": "invalid_grant", "error_description": "The refresh token is invalid"}
INVALID_TOKEN = {"errors": "The access token is invalid"}
NO_PROJECT_ACCESS = {"errors": "You do not have access to this project"}
RATE_HEADERS = ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset")
FOLDER_FIELDS = {"id", "name", "parent_id", "private", "updated_at", "is_tracked",
                 "name_with_path", "folders", "files", "read_only", "is_deleted",
                 "is_recycle_bin", "has_children", "has_children_files", "has_children_folders"}
FILE_FIELDS = {"id", "name", "parent_id", "size", "description", "created_at", "updated_at",
               "name_with_path", "private", "file_type", "file_versions", "is_deleted",
               "checked_out_until"}
VERSION_FIELDS = {"id", "file_id", "number", "notes", "url", "size", "created_at", "created_by",
                  "prostore_file"}
MakeSandbox = Callable[[SandboxConfig | World | None], SandboxThread]
DOCUMENT_FIELDS = {"id", "name", "name_with_path", "parent_id", "document_type", "private",
                   "read_only", "is_deleted", "is_recycle_bin", "created_at", "updated_at",
                   "created_by"}


# -- helpers ----------------------------------------------------------------------------------


def demo_ids(world: World) -> tuple[int, int]:
    """The demo company's and the demo project's ids (the first of each)."""
    return next(iter(world.companies)), next(iter(world.projects))


def token_call(sandbox: SandboxThread, client_id: str = SANDBOX_CLIENT_ID,
               secret: str = SANDBOX_CLIENT_SECRET, **params: str) -> httpx.Response:
    return httpx.post(f"{sandbox.url}/oauth/token",
                      data={"client_id": client_id, "client_secret": secret, **params})


def user_tokens(sandbox: SandboxThread) -> dict[str, Any]:
    code = sandbox.world.issue_code(SANDBOX_CLIENT_ID, OOB)
    response = token_call(sandbox, grant_type="authorization_code", code=code, redirect_uri=OOB)
    assert response.status_code == 200, response.text
    return response.json()


def service_tokens(sandbox: SandboxThread) -> dict[str, Any]:
    response = token_call(sandbox, SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET,
                          grant_type="client_credentials")
    assert response.status_code == 200, response.text
    return response.json()


def api_client(sandbox: SandboxThread, access_token: str, *,
               company: int | None = None) -> httpx.Client:
    """A client with the Bearer token and (unless told otherwise) the demo company header."""
    headers = {"Authorization": f"Bearer {access_token}",
               "Procore-Company-Id": str(company or demo_ids(sandbox.world)[0])}
    return httpx.Client(base_url=sandbox.url, headers=headers, timeout=10)


@pytest.fixture
def api(sandbox: SandboxThread) -> Iterator[httpx.Client]:
    with api_client(sandbox, user_tokens(sandbox)["access_token"]) as client:
        yield client


def project_params(sandbox: SandboxThread) -> dict[str, int]:
    return {"project_id": demo_ids(sandbox.world)[1]}


def walk(client: httpx.Client, url: str, params: dict[str, Any]) -> tuple[list[Any],
                                                                         list[httpx.Response]]:
    """Every item of a paginated list, following rel="next"; and each page's response."""
    items: list[Any] = []
    pages: list[httpx.Response] = []
    following: str | None = url
    query: dict[str, Any] | None = params
    while following:
        response = client.get(following, params=query)
        assert response.status_code == 200, response.text
        items += response.json()
        pages.append(response)
        following, query = response.links.get("next", {}).get("url"), None
    return items, pages


def upload_file(client: httpx.Client, sandbox: SandboxThread, name: str, data: bytes,
                **fields: str) -> httpx.Response:
    return client.post("/rest/v1.0/files", params=project_params(sandbox),
                       files={"file[data]": (name, data, "application/octet-stream")},
                       data={"file[name]": name, **{f"file[{k}]": v for k, v in fields.items()}})


def start_upload(client: httpx.Client, sandbox: SandboxThread, name: str) -> dict[str, Any]:
    project_id = demo_ids(sandbox.world)[1]
    response = client.post(f"/rest/v1.1/projects/{project_id}/uploads", json={
        "response_filename": name, "response_content_type": "application/pdf"})
    assert response.status_code == 201, response.text
    return response.json()


# -- OAuth ------------------------------------------------------------------------------------


def test_out_of_band_sign_in_shows_the_code_to_paste(sandbox: SandboxThread) -> None:
    form = {"response_type": "code", "client_id": SANDBOX_CLIENT_ID, "redirect_uri": OOB,
            "state": "s-41"}
    with httpx.Client(base_url=sandbox.url) as web:
        page = web.get("/oauth/authorize", params=form)
        assert page.status_code == 200
        for part in ('name="login"', 'name="password"', f'value="{SANDBOX_CLIENT_ID}"',
                     'value="s-41"', f'value="{OOB}"'):
            assert part in page.text
        refused = web.post("/oauth/authorize",
                           data={**form, "login": SANDBOX_LOGIN, "password": "wrong"})
        assert refused.status_code == 401 and 'name="password"' in refused.text
        signed = web.post("/oauth/authorize",
                          data={**form, "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD})
        assert signed.status_code == 302
        assert urlsplit(signed.headers["location"]).path == "/oauth/authorize/native"
        native = web.get(signed.headers["location"])
        found = re.search(r'<code id="authorization-code">([^<]+)</code>', native.text)
        assert native.status_code == 200 and found
        tokens = token_call(sandbox, grant_type="authorization_code", code=found.group(1),
                            redirect_uri=OOB)
        assert tokens.status_code == 200
        body = tokens.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token",
                             "created_at"}
        assert body["token_type"] == "bearer" and body["expires_in"] == 5400
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        me = web.get("/rest/v1.0/me", headers=bearer).json()
        assert me["login"] == SANDBOX_LOGIN and me["name"] == "Pat Morgan"
        info = web.get("/oauth/token/info", headers=bearer).json()
        assert info["resource_owner_id"] == me["id"] and info["scopes"] == []
        assert info["application"] == {"uid": SANDBOX_CLIENT_ID}
        assert 5300 < info["expires_in_seconds"] <= 5400


def test_loopback_sign_in_redirects_with_code_and_state(sandbox: SandboxThread) -> None:
    redirect = "http://127.0.0.1:8765/callback"
    form = {"response_type": "code", "client_id": SANDBOX_CLIENT_ID, "redirect_uri": redirect,
            "state": "xyz", "login": SANDBOX_LOGIN, "password": SANDBOX_PASSWORD}
    unregistered = httpx.post(f"{sandbox.url}/oauth/authorize", data=form)
    assert unregistered.status_code == 400 and "redirect uri" in unregistered.text
    assert not sandbox.world.codes  # an error page, and no code
    sandbox.world.register_redirect_uri(SANDBOX_CLIENT_ID, redirect)
    signed = httpx.post(f"{sandbox.url}/oauth/authorize", data=form)
    assert signed.status_code == 302
    location = signed.headers["location"]
    assert location.startswith(redirect + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["xyz"]
    # the token endpoint takes JSON as well as a form
    tokens = httpx.post(f"{sandbox.url}/oauth/token", json={
        "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect,
        "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET})
    assert tokens.status_code == 200 and tokens.json()["refresh_token"]


def test_redirect_uris_are_registered_per_client_and_matched_exactly(
        make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(redirect_uris=("http://localhost:8765/callback",)))
    params = {"response_type": "code", "client_id": SANDBOX_CLIENT_ID}
    for registered in (OOB, "http://localhost", "http://localhost:8765/callback"):
        page = httpx.get(f"{sandbox.url}/oauth/authorize",
                         params={**params, "redirect_uri": registered})
        assert page.status_code == 200, registered
    for other in ("http://localhost:8766/callback", "http://localhost:8765/callback/",
                  "http://127.0.0.1:8765/callback", "http://localhost/", ""):
        page = httpx.get(f"{sandbox.url}/oauth/authorize", params={**params, "redirect_uri": other})
        assert page.status_code == 400 and 'name="password"' not in page.text, other


@pytest.mark.parametrize("change", [{"redirect_uri": "https://example.com/callback"},
                                    {"client_id": "nobody"}, {"response_type": "token"}])
def test_sign_in_page_refuses_bad_requests(sandbox: SandboxThread, change: dict[str, str]
                                           ) -> None:
    params = {"response_type": "code", "client_id": SANDBOX_CLIENT_ID, "redirect_uri": OOB,
              **change}
    page = httpx.get(f"{sandbox.url}/oauth/authorize", params=params)
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")


def test_codes_are_single_use_and_bound_to_their_redirect_uri(sandbox: SandboxThread) -> None:
    code = sandbox.world.issue_code(SANDBOX_CLIENT_ID, OOB)
    elsewhere = token_call(sandbox, grant_type="authorization_code", code=code,
                           redirect_uri="http://127.0.0.1:9/cb")
    assert (elsewhere.status_code, elsewhere.json()) == (400, INVALID_GRANT)
    assert token_call(sandbox, grant_type="authorization_code", code=code,
                      redirect_uri=OOB).status_code == 200
    again = token_call(sandbox, grant_type="authorization_code", code=code, redirect_uri=OOB)
    assert (again.status_code, again.json()) == (400, INVALID_GRANT)


def test_refresh_rotates_and_the_old_refresh_token_dies_at_once(sandbox: SandboxThread) -> None:
    first = user_tokens(sandbox)
    # HTTP Basic client authentication is accepted too
    second = httpx.post(f"{sandbox.url}/oauth/token",
                        auth=(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET),
                        data={"grant_type": "refresh_token",
                              "refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    renewed = second.json()
    assert renewed["refresh_token"] != first["refresh_token"]
    reused = token_call(sandbox, grant_type="refresh_token",
                        refresh_token=first["refresh_token"])
    assert (reused.status_code, reused.json()) == (401, INVALID_REFRESH)
    with api_client(sandbox, renewed["access_token"]) as client:
        assert client.get("/rest/v1.0/me").status_code == 200
    assert token_call(sandbox, grant_type="refresh_token",
                      refresh_token=renewed["refresh_token"]).status_code == 200


def test_expired_access_tokens_refresh_and_revoked_refresh_tokens_do_not(
        sandbox: SandboxThread) -> None:
    tokens = user_tokens(sandbox)
    sandbox.world.expire_access_tokens()
    with api_client(sandbox, tokens["access_token"]) as client:
        expired = client.get("/rest/v1.0/me")
        assert (expired.status_code, expired.json()) == (401, INVALID_TOKEN)
    renewed = token_call(sandbox, grant_type="refresh_token",
                         refresh_token=tokens["refresh_token"])
    assert renewed.status_code == 200
    with api_client(sandbox, renewed.json()["access_token"]) as client:
        assert client.get("/rest/v1.0/me").status_code == 200
    sandbox.world.revoke_refresh_tokens()
    dead = token_call(sandbox, grant_type="refresh_token",
                      refresh_token=renewed.json()["refresh_token"])
    assert (dead.status_code, dead.json()) == (401, INVALID_REFRESH)


def test_client_credentials_only_for_the_service_account(sandbox: SandboxThread) -> None:
    body = service_tokens(sandbox)
    assert "refresh_token" not in body and body["token_type"] == "bearer"
    with api_client(sandbox, body["access_token"]) as client:
        assert client.get("/rest/v1.0/me").json()["name"] == "DryvIQ Service Account"
    # a service account (DMSA) names its company on /me and /companies too
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    for path in ("/rest/v1.0/me", "/rest/v1.0/companies"):
        missing = httpx.get(f"{sandbox.url}{path}", headers=bearer)
        assert (missing.status_code, missing.text) == (400, "Missing Procore-Company-Id header!")
    other = list(sandbox.world.companies)[1]  # not one the service account is installed in
    with api_client(sandbox, body["access_token"], company=other) as client:
        assert client.get("/rest/v1.0/me").status_code == 403
    refused = token_call(sandbox, grant_type="client_credentials")
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    code = sandbox.world.issue_code(SERVICE_CLIENT_ID, OOB)
    no_code = token_call(sandbox, SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET,
                         grant_type="authorization_code", code=code, redirect_uri=OOB)
    assert no_code.status_code == 400 and no_code.json()["error"] == "unauthorized_client"


def test_wrong_or_unknown_client_is_invalid_client(sandbox: SandboxThread) -> None:
    wrong = token_call(sandbox, secret="guess", grant_type="client_credentials")
    unknown = token_call(sandbox, client_id="nobody", grant_type="client_credentials")
    basic = httpx.post(f"{sandbox.url}/oauth/token", auth=(SANDBOX_CLIENT_ID, "guess"),
                       data={"grant_type": "refresh_token", "refresh_token": "x"})
    for response in (wrong, unknown, basic):
        assert (response.status_code, response.json()) == (401, INVALID_CLIENT)


def test_revoke_kills_the_pair_and_always_answers_200(sandbox: SandboxThread) -> None:
    tokens = user_tokens(sandbox)
    credentials = {"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET}
    revoked = httpx.post(f"{sandbox.url}/oauth/revoke",
                         data={"token": tokens["access_token"], **credentials})
    assert (revoked.status_code, revoked.json()) == (200, {})
    with api_client(sandbox, tokens["access_token"]) as client:
        assert client.get("/rest/v1.0/me").status_code == 401
    assert token_call(sandbox, grant_type="refresh_token",
                      refresh_token=tokens["refresh_token"]).status_code == 401
    nonsense = httpx.post(f"{sandbox.url}/oauth/revoke", data={"token": "nonsense"})
    assert (nonsense.status_code, nonsense.json()) == (200, {})


# -- companies, projects, headers, pagination -----------------------------------------------


def test_company_header_is_required_except_for_me_and_companies(sandbox: SandboxThread) -> None:
    company_id, project_id = demo_ids(sandbox.world)
    token = user_tokens(sandbox)["access_token"]
    with httpx.Client(base_url=sandbox.url,
                      headers={"Authorization": f"Bearer {token}"}) as bare:
        assert bare.get("/rest/v1.0/me").status_code == 200
        assert bare.get("/rest/v1.0/companies").status_code == 200
        for path, params in (("/rest/v1.0/projects", {"company_id": company_id}),
                             ("/rest/v1.0/folders", {"project_id": project_id})):
            missing = bare.get(path, params=params)
            assert missing.status_code == 400
            assert missing.text == "Missing Procore-Company-Id header!"
        lower = bare.get("/rest/v1.0/folders", params={"project_id": project_id},
                         headers={"procore-company-id": str(company_id)})
        assert lower.status_code == 200
    other_company = list(sandbox.world.companies)[1]
    other_project = next(p.id for p in sandbox.world.projects.values()
                         if p.company_id == other_company)
    with api_client(sandbox, token) as client:
        assert client.get("/rest/v1.0/folders", params={"project_id": project_id},
                          headers={"Procore-Company-Id": "12345"}).status_code == 403
        foreign = client.get("/rest/v1.0/folders", params={"project_id": other_project})
        assert (foreign.status_code, foreign.json()) == (403, NO_PROJECT_ACCESS)
        assert client.get("/rest/v1.0/projects").status_code == 400  # no company_id
        assert client.get("/rest/v1.0/folders").status_code == 400  # no project_id
        unknown = client.get("/rest/v1.0/nothing-here")
        assert (unknown.status_code, unknown.json()) == (404, {"errors": "Not Found"})


def test_pagination_links_walk_every_page(sandbox: SandboxThread, api: httpx.Client) -> None:
    company_id, project_id = demo_ids(sandbox.world)
    companies, pages = walk(api, "/rest/v1.0/companies", {"per_page": 1})
    assert [c["name"] for c in companies] == ["Summit Builders", "Summit Builders – Sandbox"]
    assert companies[0] == {"id": company_id, "name": "Summit Builders", "is_active": True,
                            "my_company": True}
    assert set(pages[0].links) == {"next", "last"} and set(pages[1].links) == {"first", "prev"}
    assert pages[0].headers["total"] == "2" and pages[0].headers["per-page"] == "1"
    projects, _ = walk(api, "/rest/v1.0/projects", {"company_id": company_id, "per_page": 1})
    assert [p["name"] for p in projects] == [DEMO_PROJECT, "Harbor View Apartments"]
    assert projects[0]["company"] == {"id": company_id, "name": "Summit Builders"}
    index = f"/rest/v1.0/projects/{project_id}/documents"
    everything = api.get(index, params={"per_page": 5000})
    assert everything.headers["per-page"] == "2000" and "link" not in everything.headers
    items, pages = walk(api, index, {"per_page": 7, "filters[document_type]": "file"})
    assert items == [i for i in everything.json() if i["document_type"] == "file"]
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)
    assert int(pages[0].headers["total"]) == len(items) and len(pages) == -(-len(items) // 7)
    middle = pages[1].links
    assert set(middle) == {"first", "prev", "next", "last"}
    assert "filters%5Bdocument_type%5D=file" in middle["next"]["url"]
    assert middle["next"]["url"].startswith(sandbox.url)


def test_projects_v1_1_and_company_projects(sandbox: SandboxThread, api: httpx.Client) -> None:
    world = sandbox.world
    company_id, project_id = demo_ids(world)
    inactive = world.add_project(company_id, "Old Depot", number="2019-04", active=False)
    portfolio, pages = walk(api, "/rest/v1.1/projects", {"company_id": company_id})
    assert pages[0].headers["per-page"] == "100"  # v1.1's default page; 300 at most
    assert [p["id"] for p in portfolio] == [project_id, list(world.projects)[1]]
    assert portfolio[0]["company"] == {"id": company_id, "name": "Summit Builders"}
    every = api.get("/rest/v1.1/projects", params={
        "company_id": company_id, "filters[by_status]": "All", "per_page": 5000,
        "view": "compact"})
    assert every.headers["per-page"] == "300"
    assert every.json()[-1] == {"id": inactive.id, "name": "Old Depot"}
    one_a_page, pages = walk(api, "/rest/v1.1/projects", {"company_id": company_id,
                                                          "per_page": 1})
    assert one_a_page == portfolio and len(pages) == 2
    assert api.get("/rest/v1.1/projects").status_code == 400  # company_id is required
    listed = api.get(f"/rest/v1.0/companies/{company_id}/projects")
    assert listed.status_code == 200 and "link" not in listed.headers
    by_id = {p["id"]: p for p in listed.json()}
    assert set(by_id) == {project_id, list(world.projects)[1], inactive.id}
    assert set(by_id[project_id]) == {"id", "name", "address", "stage_name", "status_name",
                                      "type_name", "open_items", "created_by"}
    assert (by_id[project_id]["status_name"], by_id[inactive.id]["status_name"]) == (
        "Active", "Inactive")
    assert by_id[project_id]["created_by"]["email"] == SANDBOX_LOGIN
    token = api.headers["authorization"]
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": token}) as bare:
        missing = bare.get(f"/rest/v1.0/companies/{company_id}/projects")
        assert (missing.status_code, missing.text) == (400, "Missing Procore-Company-Id header!")
    with api_client(sandbox, service_tokens(sandbox)["access_token"]) as service:
        seen = service.get(f"/rest/v1.0/companies/{company_id}/projects").json()
        assert [p["id"] for p in seen] == [project_id]  # only its permitted project
        assert service.get(f"/rest/v1.0/companies/{list(world.companies)[1]}/projects"
                           ).status_code == 403


# -- Documents --------------------------------------------------------------------------------


def test_folders_create_list_rename_move_and_delete(sandbox: SandboxThread,
                                                    api: httpx.Client) -> None:
    params = project_params(sandbox)
    root = api.get("/rest/v1.0/folders", params=params).json()
    assert set(root) == FOLDER_FIELDS
    assert (root["name"], root["parent_id"], root["name_with_path"]) == (
        DEMO_PROJECT, None, DEMO_PROJECT)
    recycle_bin = next(f for f in root["folders"] if f["is_recycle_bin"])
    assert recycle_bin["name"] == "Recycle Bin"
    drawings = next(f for f in root["folders"] if f["name"] == "Drawings")
    assert drawings["folders"] == [] and drawings["files"] == []
    assert drawings["has_children_folders"] and not drawings["has_children_files"]

    created = api.post("/rest/v1.0/folders", params=params, json={"folder": {"name": "Bids"}})
    assert created.status_code == 201
    bids = created.json()
    assert (bids["parent_id"], bids["name_with_path"]) == (root["id"], f"{DEMO_PROJECT}/Bids")
    taken = api.post("/rest/v1.0/folders", params=params, json={"folder": {"name": "BIDS"}})
    assert (taken.status_code, taken.json()) == (400, {"errors": {"name": [
        "has already been taken"]}})
    child = api.post("/rest/v1.0/folders", params=params,
                     json={"folder": {"name": "Electrical", "parent_id": bids["id"]}}).json()
    listed = api.get(f"/rest/v1.0/folders/{bids['id']}", params=params).json()
    assert [f["name"] for f in listed["folders"]] == ["Electrical"]

    renamed = api.patch(f"/rest/v1.0/folders/{bids['id']}", params=params,
                        json={"folder": {"name": "Bid Packages"}})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Bid Packages"
    into_itself = api.patch(f"/rest/v1.0/folders/{bids['id']}", params=params,
                            json={"folder": {"parent_id": child["id"]}})
    assert into_itself.status_code == 400
    moved = api.patch(f"/rest/v1.0/folders/{child['id']}", params=params,
                      json={"folder": {"parent_id": drawings["id"]}}).json()
    assert moved["name_with_path"] == f"{DEMO_PROJECT}/Drawings/Electrical"

    deleted = api.delete(f"/rest/v1.0/folders/{bids['id']}", params=params)
    assert deleted.status_code == 200 and deleted.json()["is_deleted"] is True
    root_names = [f["name"] for f in api.get("/rest/v1.0/folders", params=params
                                             ).json()["folders"]]
    assert "Bid Packages" not in root_names
    in_bin = api.get(f"/rest/v1.0/folders/{recycle_bin['id']}", params=params).json()
    assert [(f["name"], f["is_deleted"]) for f in in_bin["folders"]] == [("Bid Packages", True)]
    tree = sandbox.world.tree(params["project_id"])
    assert "Bid Packages" not in tree and tree["Drawings/Electrical"] is None
    assert api.delete(f"/rest/v1.0/folders/{root['id']}", params=params).status_code == 403


def test_file_created_from_data_with_procore_fields(sandbox: SandboxThread,
                                                    api: httpx.Client) -> None:
    project_id = demo_ids(sandbox.world)[1]
    rfis = sandbox.world.node_at(project_id, "RFIs")
    created = upload_file(api, sandbox, "RFI-030 Slab edge.pdf", b"%PDF-1.7 slab edge",
                          parent_id=str(rfis.id), description="Slab edge at grid F")
    assert created.status_code == 201
    body = created.json()
    assert set(body) == FILE_FIELDS and set(body["file_versions"][0]) == VERSION_FIELDS
    assert body["parent_id"] == rfis.id and body["size"] == 18
    assert body["name_with_path"] == f"{DEMO_PROJECT}/RFIs/RFI-030 Slab edge.pdf"
    assert body["description"] == "Slab edge at grid F" and body["checked_out_until"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["updated_at"])
    assert sandbox.world.tree(project_id)["RFIs/RFI-030 Slab edge.pdf"] == b"%PDF-1.7 slab edge"
    shown = api.get(f"/rest/v1.0/files/{body['id']}", params=project_params(sandbox))
    assert shown.json() == body


def test_file_created_through_the_uploads_api(sandbox: SandboxThread, api: httpx.Client) -> None:
    project_id = demo_ids(sandbox.world)[1]
    upload = start_upload(api, sandbox, "Schedule.pdf")
    assert upload["url"] == f"{sandbox.storage_url}/uploads/{upload['uuid']}"
    assert set(upload["fields"]) == {"key", "policy", "x-amz-signature", "x-amz-credential",
                                     "x-amz-algorithm", "x-amz-date", "Content-Type"}
    attach = {"file[name]": "Schedule.pdf", "file[upload_uuid]": upload["uuid"]}
    early = api.post("/rest/v1.0/files", params={"project_id": project_id}, data=attach)
    assert early.status_code == 400  # nothing stored yet
    tampered = {**upload["fields"], "key": "uploads/elsewhere"}
    refused = httpx.post(upload["url"], data=tampered, files={"file": ("s.pdf", b"x")})
    assert refused.status_code == 403 and "<Code>AccessDenied</Code>" in refused.text
    no_file = httpx.post(upload["url"], data=upload["fields"])
    assert no_file.status_code == 400
    stored = httpx.post(upload["url"], data=upload["fields"],
                        files={"file": ("s.pdf", b"%PDF schedule")})
    assert stored.status_code == 204
    status = api.get(f"/rest/v1.1/projects/{project_id}/uploads/{upload['uuid']}")
    assert status.json()["status"] == "complete"
    created = api.post("/rest/v1.0/files", params={"project_id": project_id}, data=attach)
    assert created.status_code == 201 and created.json()["size"] == 13
    assert sandbox.world.tree(project_id)["Schedule.pdf"] == b"%PDF schedule"
    again = api.post("/rest/v1.0/files", params={"project_id": project_id},
                     data={**attach, "file[name]": "Schedule 2.pdf"})
    assert again.status_code == 400
    both = api.post("/rest/v1.0/files", params={"project_id": project_id}, data=attach,
                    files={"file[data]": ("x.pdf", b"x")})
    assert both.status_code == 400


def test_an_upload_is_attached_only_by_the_client_that_made_it(sandbox: SandboxThread,
                                                               api: httpx.Client) -> None:
    upload = start_upload(api, sandbox, "Mine.pdf")
    httpx.post(upload["url"], data=upload["fields"], files={"file": ("m.pdf", b"mine")})
    with api_client(sandbox, service_tokens(sandbox)["access_token"]) as service:
        stolen = service.post("/rest/v1.0/files", params=project_params(sandbox),
                              data={"file[name]": "Mine.pdf",
                                    "file[upload_uuid]": upload["uuid"]})
    assert stolen.status_code == 403


def test_patch_with_new_content_adds_a_version(sandbox: SandboxThread,
                                               api: httpx.Client) -> None:
    project_id = demo_ids(sandbox.world)[1]
    path = "Drawings/Architectural/A-102 Floor Plan Level 2.pdf"
    node = sandbox.world.node_at(project_id, path)
    updated = api.patch(f"/rest/v1.0/files/{node.id}", params={"project_id": project_id},
                        files={"file[data]": ("A-102.pdf", b"revision B")})
    assert updated.status_code == 200
    body = updated.json()
    assert body["id"] == node.id and body["size"] == 10
    assert [v["number"] for v in body["file_versions"]] == [2, 1]
    assert sandbox.world.versions(project_id, path) == 2
    assert sandbox.world.tree(project_id)[path] == b"revision B"
    upload = start_upload(api, sandbox, "A-102.pdf")
    httpx.post(upload["url"], data=upload["fields"], files={"file": ("a.pdf", b"revision C")})
    renamed = api.patch(f"/rest/v1.0/files/{node.id}", params={"project_id": project_id},
                        data={"file[upload_uuid]": upload["uuid"],
                              "file[name]": "A-102 Floor Plan Level 2 rev C.pdf"})
    assert renamed.status_code == 200 and renamed.json()["name"].endswith("rev C.pdf")
    assert sandbox.world.versions(project_id, path.replace(".pdf", " rev C.pdf")) == 3
    folder = api.get(f"/rest/v1.0/folders/{node.parent.id}", params={
        "project_id": project_id, "show_latest_file_version_only": "true"}).json()
    listed = next(f for f in folder["files"] if f["id"] == node.id)
    assert [v["number"] for v in listed["file_versions"]] == [3]
    without_files = api.get(f"/rest/v1.0/folders/{node.parent.id}", params={
        "project_id": project_id, "exclude_files": "true"}).json()
    assert without_files["files"] == [] and without_files["has_children_files"] is True
    root = api.get("/rest/v1.0/folders", params={"project_id": project_id,
                                                 "exclude_folders": "true"}).json()
    assert root["folders"] == [] and root["has_children_folders"] is True
    missing = api.get("/rest/v1.0/files/1", params={"project_id": project_id})
    assert (missing.status_code, missing.json()) == (404, {"errors": "Not Found"})


def test_names_procore_refuses(sandbox: SandboxThread, api: httpx.Client) -> None:
    params = project_params(sandbox)
    deep = api.post("/rest/v1.0/folders", params=params,
                    json={"folder": {"name": "D" * 200}}).json()
    bad = ["a/b.pdf", "a<b.pdf", "a>b.pdf", "a:b.pdf", "a\\b.pdf", "a|b.pdf", "a?b.pdf",
           "a*b.pdf", " leading.pdf", "trailing.pdf ", "plan .pdf"]
    for name in bad:
        refused = upload_file(api, sandbox, name, b"x")
        assert refused.status_code == 400, name
        reasons = refused.json()["errors"]["name"]
        assert reasons and "taken" not in reasons[0], name
    too_long = upload_file(api, sandbox, "L" * 60 + ".pdf", b"x", parent_id=str(deep["id"]))
    assert too_long.status_code == 400
    blank = api.post("/rest/v1.0/folders", params=params, json={"folder": {"name": ""}})
    assert blank.status_code == 400
    renamed = api.patch(f"/rest/v1.0/folders/{deep['id']}", params=params,
                        json={"folder": {"name": "Bad: name"}})
    assert renamed.status_code == 400
    assert upload_file(api, sandbox, '"Quoted" plan.pdf', b"x").status_code == 201
    assert name_problem("plan.pdf") is None and name_problem(".env") is None


def test_duplicate_names_and_unique_name(sandbox: SandboxThread, api: httpx.Client) -> None:
    project_id = demo_ids(sandbox.world)[1]
    rfis = str(sandbox.world.node_at(project_id, "RFIs").id)
    for name in ("RFI Log.xlsx", "rfi log.XLSX"):
        taken = upload_file(api, sandbox, name, b"x", parent_id=rfis)
        assert (taken.status_code, taken.json()) == (400, {"errors": {"name": [
            "has already been taken"]}})
    first = upload_file(api, sandbox, "RFI Log.xlsx", b"x", parent_id=rfis, unique_name="true")
    second = upload_file(api, sandbox, "RFI Log.xlsx", b"y", parent_id=rfis, unique_name="true")
    assert (first.status_code, first.json()["name"]) == (201, "RFI Log (1).xlsx")
    assert second.json()["name"] == "RFI Log (2).xlsx"
    folder = api.post("/rest/v1.0/folders", params={"project_id": project_id},
                      json={"folder": {"name": "RFI Log.xlsx", "parent_id": rfis}})
    assert folder.status_code == 201  # a folder may share a file's name


def test_documents_index_lists_everything_unless_filtered(sandbox: SandboxThread,
                                                          api: httpx.Client) -> None:
    project_id = demo_ids(sandbox.world)[1]
    world = sandbox.world
    doomed = world.node_at(project_id, "RFIs/RFI Log.xlsx")
    api.delete(f"/rest/v1.0/files/{doomed.id}", params={"project_id": project_id})
    index = f"/rest/v1.0/projects/{project_id}/documents"
    items = api.get(index, params={"per_page": 2000}).json()
    assert len(items) == len(world.projects[project_id].nodes)
    assert all(set(item) == DOCUMENT_FIELDS for item in items)
    assert all(i["name_with_path"].startswith(DEMO_PROJECT) for i in items)
    root = next(i for i in items if i["parent_id"] is None)
    assert (root["name"], root["document_type"]) == (DEMO_PROJECT, "folder")
    assert any(i["is_recycle_bin"] for i in items)
    assert any(i["id"] == doomed.id and i["is_deleted"] for i in items)
    live = api.get(index, params={"per_page": 2000, "filters[is_in_recycle_bin]": "false"}).json()
    assert not any(i["is_deleted"] or i["is_recycle_bin"] for i in live)
    assert len(live) == len(world.tree(project_id)) + 1  # and the root
    extended = api.get(index, params={"view": "extended", "filters[document_type]": "file",
                                      "per_page": 2000}).json()
    assert all(i["document_type"] == "file" for i in extended)
    current = extended[0]["file"]["current_version"]
    assert set(current) == {"id", "number", "size", "url", "created_at"}
    assert extended[0]["file"]["size"] == current["size"]


def test_folder_filter_selects_the_folder_and_everything_under_it(sandbox: SandboxThread,
                                                                  api: httpx.Client) -> None:
    project_id = demo_ids(sandbox.world)[1]
    world = sandbox.world
    # 101 folders deep under Drawings, and a file 102 deep (one-letter names: 255 characters)
    deep = world.add_folder(project_id, "Drawings/" + "/".join("d" * 101))
    world.add_file(project_id, deep.path + "/f.pdf", b"x")
    index = f"/rest/v1.0/projects/{project_id}/documents"
    drawings = world.node_at(project_id, "Drawings")
    found = api.get(index, params={"filters[folder_id]": drawings.id, "per_page": 2000}).json()
    paths = {i["name_with_path"].removeprefix(f"{DEMO_PROJECT}/") for i in found}
    expected = {path for path in world.tree(project_id) if path.startswith("Drawings")}
    depth = {path for path in expected if path.count("/") <= 100}  # the folder is depth 0
    assert paths == depth and "Drawings" in paths and len(expected - depth) == 2
    assert "Drawings/Architectural/A-102 Floor Plan Level 2.pdf" in paths
    files = api.get(index, params={"filters[folder_id]": drawings.id, "per_page": 2000,
                                   "filters[document_type]": "file",
                                   "filters[file_type][]": ["dwg"]}).json()
    assert [i["name"] for i in files] == ["S-401 Steel Connection Details.dwg"]
    a_file = world.node_at(project_id, "Drawings/MEP/E-101 Lighting Plan Level 1.pdf")
    assert api.get(index, params={"filters[folder_id]": a_file.id}).json() == []
    assert api.get(index, params={"filters[folder_id]": "Drawings"}).status_code == 400


def test_documents_index_sorts_by_the_sort_parameter(sandbox: SandboxThread,
                                                    api: httpx.Client) -> None:
    project_id = demo_ids(sandbox.world)[1]
    world = sandbox.world
    index = f"/rest/v1.0/projects/{project_id}/documents"
    live = {"per_page": 2000, "filters[is_in_recycle_bin]": "false"}
    newest = world.node_at(project_id, "RFIs/RFI Log.xlsx")
    api.patch(f"/rest/v1.0/files/{newest.id}", params={"project_id": project_id},
              files={"file[data]": ("log.xlsx", b"newer")})
    by_name = api.get(index, params={**live, "sort": "name"}).json()
    names = [i["name"] for i in by_name]
    assert names == sorted(names, key=str.casefold) and names != [
        i["name"] for i in api.get(index, params=live).json()]
    descending = [i["name"] for i in api.get(index, params={**live, "sort": "-name"}).json()]
    assert [n.casefold() for n in descending] == [n.casefold() for n in names][::-1]
    by_change = api.get(index, params={**live, "sort": "-updated_at"}).json()
    stamps = [i["updated_at"] for i in by_change]
    assert stamps == sorted(stamps, reverse=True) and by_change[0]["id"] == newest.id
    kinds = api.get(index, params={**live, "sort": "document_type,-name"}).json()
    assert [i["document_type"] for i in kinds] == sorted(i["document_type"] for i in kinds)
    folders = [i["name"] for i in kinds if i["document_type"] == "folder"]
    assert folders == sorted(folders, key=str.casefold, reverse=True)
    refused = api.get(index, params={"sort": "size"})
    assert refused.status_code == 400 and "updated_at" in refused.text


def test_file_versions_carry_their_stored_file_and_show_can_list_the_latest_only(
        sandbox: SandboxThread, api: httpx.Client) -> None:
    project_id = demo_ids(sandbox.world)[1]
    node = sandbox.world.node_at(project_id, "RFIs/RFI Log.xlsx")
    url = f"/rest/v1.0/files/{node.id}"
    api.patch(url, params={"project_id": project_id},
              files={"file[data]": ("anything.xlsx", b"second")})
    shown = api.get(url, params={"project_id": project_id}).json()
    assert [v["number"] for v in shown["file_versions"]] == [2, 1]
    stored = shown["file_versions"][0]["prostore_file"]
    assert set(stored) == {"id", "name", "url", "filename"}
    assert stored["name"] == stored["filename"] == "RFI Log.xlsx"
    assert stored["url"] == shown["file_versions"][0]["url"]
    assert stored["id"] == node.latest.blob.id
    assert api.get(stored["url"], follow_redirects=True).content == b"second"
    latest = api.get(url, params={"project_id": project_id, "show_latest_version_only": "true"})
    assert [v["number"] for v in latest.json()["file_versions"]] == [2]


def test_downloads_come_from_a_download_host_that_redirects_to_the_object_store(
        sandbox: SandboxThread, api: httpx.Client) -> None:
    project_id = demo_ids(sandbox.world)[1]
    path = "Specifications/03 30 00 Cast-in-Place Concrete.pdf"
    node = sandbox.world.node_at(project_id, path)
    shown = api.get(f"/rest/v1.0/files/{node.id}", params={"project_id": project_id}).json()
    url = max(shown["file_versions"], key=lambda v: v["number"])["url"]
    # the download host: the API's host name on a port of its own; the object store: a
    # different host name (server.py says why)
    api_host, downloads, store = (urlsplit(u) for u in (sandbox.url, url, sandbox.storage_url))
    assert url.startswith(f"{sandbox.download_url}/fas/")
    assert downloads.hostname == api_host.hostname and downloads.port != api_host.port
    assert store.hostname != api_host.hostname
    assert httpx.get(url).status_code == 401
    assert api.get(urlsplit(url).path).status_code == 404  # not served by the API host
    redirect = api.get(url)
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert location.startswith(f"{sandbox.storage_url}/blobs/")
    leaked = httpx.get(location, headers={"Authorization": api.headers["authorization"]})
    assert leaked.status_code == 400 and "Only one auth mechanism allowed" in leaked.text
    assert sandbox.world.storage_auth_refusals == 1
    fetched = httpx.get(location)
    assert fetched.status_code == 200
    assert fetched.content == sandbox.world.tree(project_id)[path]
    assert fetched.headers["content-length"] == str(shown["size"])
    assert fetched.headers["content-type"] == "application/pdf"
    assert httpx.get(location.replace("Signature=", "Signature=0")).status_code == 403


def declare(parts: list[bytes], *, md5: bool = True) -> list[dict[str, Any]]:
    return [{"size": len(p), "sha256": hashlib.sha256(p).hexdigest(),
             **({"md5": hashlib.md5(p).hexdigest()} if md5 else {})} for p in parts]


def put_segment(segment: dict[str, Any], data: bytes, **headers: str) -> httpx.Response:
    return httpx.put(segment["url"], content=data, headers={
        **segment["headers"], "content-type": "application/octet-stream", **headers})


def test_segmented_upload_validates_every_segment_and_its_etag(
        make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(min_segment_size=1000))
    project_id = demo_ids(sandbox.world)[1]
    uploads = f"/rest/v1.1/projects/{project_id}/uploads"
    parts = [bytes([n]) * 1000 for n in range(3)] + [b"tail"]
    with api_client(sandbox, user_tokens(sandbox)["access_token"]) as api:
        too_small = api.post(uploads, json={"segments": declare([b"x" * 999, b"y"])})
        assert too_small.status_code == 422 and "minimum" in too_small.text
        no_hash = api.post(uploads, json={"segments": [{"size": 4}]})
        assert no_hash.status_code == 422 and "sha256" in no_hash.text
        created = api.post(uploads, json={"segments": declare(parts)})
        assert created.status_code == 201, created.text
        upload = created.json()
        assert upload["status"] == "ready" and len(upload["segments"]) == 4
        segments = upload["segments"]
        assert all(s["url"].startswith(sandbox.storage_url) for s in segments)
        assert set(segments[0]["headers"]) == {"x-amz-content-sha256", "content-length",
                                               "content-md5"}
        wrong_body = put_segment(segments[0], parts[1])
        assert wrong_body.status_code == 400 and "Mismatch" in wrong_body.text
        wrong_header = put_segment(segments[0], parts[0],
                                   **{"x-amz-content-sha256": segments[1]["sha256"]})
        assert wrong_header.status_code == 403
        with_token = put_segment(segments[0], parts[0],
                                 authorization=api.headers["authorization"])
        assert with_token.status_code == 400
        etags = []
        for segment, data in zip(segments[:3], parts[:3], strict=True):
            stored = put_segment(segment, data)
            assert stored.status_code == 200, stored.text
            etags.append({"etag": stored.headers["etag"]})
        status = api.get(f"{uploads}/{upload['uuid']}").json()
        assert status["status"] == "ready"
        missing = api.patch(f"{uploads}/{upload['uuid']}", json={"segments": etags})
        assert missing.status_code == 422
        tail = put_segment(segments[3], parts[3])
        etags.append({"etag": tail.headers["etag"]})
        wrong = api.patch(f"{uploads}/{upload['uuid']}",
                          json={"segments": [etags[1], etags[0], *etags[2:]]})
        assert wrong.status_code == 422 and "etag" in wrong.text
        early = api.post("/rest/v1.0/files", params={"project_id": project_id},
                         data={"file[name]": "Seg.bin", "file[upload_uuid]": upload["uuid"]})
        assert early.status_code == 400  # Documents calls refuse fields with 400 (OpenAPI)
        done = api.patch(f"{uploads}/{upload['uuid']}", json={"segments": etags})
        assert done.status_code == 200 and done.json()["status"] == "complete"
        assert [s["etag"] for s in done.json()["segments"]] == [e["etag"] for e in etags]
        created_file = api.post("/rest/v1.0/files", params={"project_id": project_id},
                                data={"file[name]": "Seg.bin",
                                      "file[upload_uuid]": upload["uuid"]})
        assert created_file.status_code == 201, created_file.text
    world = sandbox.world
    assert world.tree(project_id)["Seg.bin"] == b"".join(parts)
    assert sum(world.segment_puts.values()) == 4 and world.storage_auth_refusals == 1


def test_segment_urls_expire_an_hour_after_the_upload_was_made(
        make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(min_segment_size=1000))
    world = sandbox.world
    project_id = demo_ids(world)[1]
    uploads = f"/rest/v1.1/projects/{project_id}/uploads"
    parts = [b"a" * 1000, b"b"]
    with api_client(sandbox, user_tokens(sandbox)["access_token"]) as api:
        segments = api.post(uploads, json={"segments": declare(parts, md5=False)}).json()[
            "segments"]
    assert "content-md5" not in segments[0]["headers"]
    assert put_segment(segments[0], parts[0]).status_code == 200
    start = time.time()
    world.clock = lambda: start + 3601
    late = put_segment(segments[1], parts[1])
    assert late.status_code == 403 and "expired" in late.text


def test_service_account_sees_only_its_permitted_project(sandbox: SandboxThread) -> None:
    company_id, project_id = demo_ids(sandbox.world)
    harbor = list(sandbox.world.projects)[1]
    with api_client(sandbox, service_tokens(sandbox)["access_token"]) as service:
        assert [c["id"] for c in service.get("/rest/v1.0/companies").json()] == [company_id]
        projects = service.get("/rest/v1.0/projects", params={"company_id": company_id}).json()
        assert [p["id"] for p in projects] == [project_id]
        refused = service.get("/rest/v1.0/folders", params={"project_id": harbor})
        assert (refused.status_code, refused.json()) == (403, NO_PROJECT_ACCESS)
        assert service.get("/rest/v1.0/folders", params={"project_id": project_id}
                           ).status_code == 200
        other_file = next(n for n in sandbox.world.projects[harbor].nodes.values()
                          if not n.is_folder)
        download = (f"{sandbox.download_url}/fas/api/v5/file_versions/"
                    f"{other_file.latest.id}/download")
        assert service.get(download).status_code == 403


def test_requests_are_counted_by_route_template(sandbox: SandboxThread,
                                                api: httpx.Client) -> None:
    drawings = sandbox.world.node_at(demo_ids(sandbox.world)[1], "Drawings").id
    api.get(f"/rest/v1.0/folders/{drawings}", params=project_params(sandbox))
    upload_file(api, sandbox, "Counted.txt", b"1")
    requests = sandbox.world.requests
    assert requests["GET /rest/v1.0/folders/{id}"] == 1
    assert requests["POST /rest/v1.0/files"] == 1
    assert requests["POST /oauth/token"] == 1


# -- rate limits and faults -------------------------------------------------------------------


def test_spike_limit_refuses_then_resets(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(spike_limit=5, spike_window=1.0))
    with api_client(sandbox, user_tokens(sandbox)["access_token"]) as client:
        answers = [client.get("/rest/v1.0/me") for _ in range(5)]
        assert all(a.status_code == 200 for a in answers)
        assert [a.headers["x-rate-limit-remaining"] for a in answers] == ["4", "3", "2", "1", "0"]
        assert all(a.headers["x-rate-limit-limit"] == "5" for a in answers)
        refused = client.get("/rest/v1.0/me")
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("text/plain")
        assert refused.text.startswith("You have surpassed the max number of requests")
        assert refused.headers["x-rate-limit-remaining"] == "0"
        assert int(refused.headers["x-rate-limit-reset"]) >= time.time()
        assert (sandbox.world.rate_limited, sandbox.world.api_calls) == (1, 5)
        with httpx.Client(base_url=sandbox.url) as anonymous:  # uncounted: no valid token
            assert anonymous.get("/rest/v1.0/me").status_code == 401
        assert sandbox.world.api_calls == 5
        world, real_clock = sandbox.world, sandbox.world.clock
        world.clock = lambda: real_clock() + 1.0  # the spike window has passed
        again = client.get("/rest/v1.0/me")
        assert again.status_code == 200 and again.headers["x-rate-limit-remaining"] == "4"


def test_a_401_counts_against_the_client_whose_token_expired(make_sandbox: MakeSandbox
                                                             ) -> None:
    sandbox = make_sandbox(SandboxConfig(spike_limit=3, spike_window=60.0))
    world = sandbox.world
    tokens = user_tokens(sandbox)
    with api_client(sandbox, tokens["access_token"]) as client:
        assert client.get("/rest/v1.0/me").status_code == 200
        world.expire_access_tokens()
        expired = client.get("/rest/v1.0/me")
        assert expired.status_code == 401
        assert [expired.headers[h] for h in RATE_HEADERS[:2]] == ["3", "1"]
        renewed = token_call(sandbox, grant_type="refresh_token",
                             refresh_token=tokens["refresh_token"]).json()
    revoked = user_tokens(sandbox)["access_token"]
    httpx.post(f"{sandbox.url}/oauth/revoke", data={
        "token": revoked, "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET})
    with api_client(sandbox, revoked) as client:
        refused = client.get("/rest/v1.0/me")
        assert refused.status_code == 401 and refused.headers["x-rate-limit-remaining"] == "0"
    with api_client(sandbox, renewed["access_token"]) as client:
        spent = client.get("/rest/v1.0/me")  # the same client's window: spent by the 401s
        assert spent.status_code == 429
    assert (world.api_calls, world.rate_limited) == (3, 1)
    with api_client(sandbox, "never-issued") as stranger:  # names no client: nobody's window
        unknown = stranger.get("/rest/v1.0/me")
        assert unknown.status_code == 401 and "x-rate-limit-limit" not in unknown.headers
    assert (world.api_calls, world.rate_limited) == (3, 1)
    with api_client(sandbox, service_tokens(sandbox)["access_token"]) as other_client:
        assert other_client.get("/rest/v1.0/me").status_code == 200


def test_rate_headers_describe_the_binding_window_on_every_counted_answer(
        make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(hourly_limit=4))
    with api_client(sandbox, user_tokens(sandbox)["access_token"]) as client:
        answers = [client.get("/rest/v1.0/me"), client.get("/rest/v1.0/nothing"),
                   client.get("/rest/v1.0/folders"),  # 400: no project_id
                   client.get("/rest/v1.0/folders", params=project_params(sandbox))]
        assert [a.status_code for a in answers] == [200, 404, 400, 200]
        for answer in answers:
            assert all(header in answer.headers for header in RATE_HEADERS)
        assert answers[-1].headers["x-rate-limit-limit"] == "4"
        assert int(answers[-1].headers["x-rate-limit-reset"]) > time.time() + 3000
        refused = client.get("/rest/v1.0/me")
        assert refused.status_code == 429 and "for an hour" in refused.text


def test_fail_rate_answers_5xx_and_changes_nothing(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(fail_rate=1.0))
    statuses = set()
    with api_client(sandbox, user_tokens(sandbox)["access_token"]) as client:
        for number in range(20):
            failed = client.post("/rest/v1.0/folders", params=project_params(sandbox),
                                 json={"folder": {"name": f"Attempt {number}"}})
            statuses.add(failed.status_code)
            assert "x-rate-limit-remaining" in failed.headers
            if failed.status_code == 503:
                assert failed.headers["retry-after"] == "1"
    assert statuses == {500, 502, 503}
    assert not any(path.startswith("Attempt")
                   for path in sandbox.world.tree(demo_ids(sandbox.world)[1]))
    assert sandbox.world.api_calls == 20


def test_latency_delays_every_api_answer(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(latency=0.2))
    with api_client(sandbox, user_tokens(sandbox)["access_token"]) as client:
        began = time.perf_counter()
        assert client.get("/rest/v1.0/me").status_code == 200
        assert time.perf_counter() - began >= 0.2


def test_drop_rate_makes_the_change_and_loses_the_answer(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(drop_rate=1.0))
    tokens = user_tokens(sandbox)
    with api_client(sandbox, tokens["access_token"]) as client:
        with pytest.raises(httpx.TransportError):
            client.post("/rest/v1.0/folders", params=project_params(sandbox),
                        json={"folder": {"name": "Dropped"}})
        assert sandbox.world.tree(demo_ids(sandbox.world)[1])["Dropped"] is None
        assert client.get("/rest/v1.0/me").status_code == 200  # reads are never dropped
    with pytest.raises(httpx.TransportError):
        token_call(sandbox, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    lost = token_call(sandbox, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert (lost.status_code, lost.json()) == (401, INVALID_REFRESH)


# -- the world without HTTP -------------------------------------------------------------------


def test_bulk_project_builds_ten_thousand_files() -> None:
    """(How fast is bench/'s to measure: no wall-clock limit here, machines are shared.)"""
    world = World()
    company = world.add_company("Bench Builders")
    project_id = bulk_project(world, company.id, "Bench", files=10_000, folders=100, size=512)
    tree = world.tree(project_id)
    assert sum(content is not None for content in tree.values()) == 10_000
    assert sum(content is None for content in tree.values()) == 100
    assert all(len(content) == 512 for content in tree.values() if content is not None)


def test_add_file_creates_parents_and_versions() -> None:
    world = World()
    project = world.add_project(world.add_company("Co").id, "Tower")
    world.add_file(project.id, "A/B/c.txt", b"one")
    world.add_file(project.id, "A/B/c.txt", b"two")
    world.add_folder(project.id, "Empty")
    assert world.tree(project.id) == {"A": None, "A/B": None, "A/B/c.txt": b"two",
                                      "Empty": None}
    assert world.versions(project.id, "A/B/c.txt") == 2
