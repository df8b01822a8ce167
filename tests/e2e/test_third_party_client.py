"""ProPyCore, a public Procore client from PyPI that nobody here wrote, drives the sandbox over
real HTTP: the sandbox is checked against someone else's reading of Procore's API, not ours.

ProPyCore (0.8) is pointed at the sandbox through its constructor alone: `base_url` is where it
sends both the token request and every API call, so the sandbox's one host for login and API
serves it unchanged. It signs in with the client-credentials grant only (a Developer Managed
Service Account: the sandbox's service account), so its token sees the one project permitted
to that account. Where ProPyCore has no method for a step (listing companies with the company
header, downloading bytes, reading an error's status), the test uses its public `get_request`
/ `post_request`, or plain `requests` with a token ProPyCore fetched, and says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from ProPyCore.exceptions import ProcoreException, UnauthorizedClientError
from ProPyCore.procore import Procore

from core.sandbox import (
    DEMO_COMPANY,
    DEMO_PROJECT,
    SERVICE_CLIENT_ID,
    SERVICE_CLIENT_SECRET,
    SandboxThread,
)

ARCHITECTURAL = "Drawings/Architectural"
DRAWING = "Drawings/Architectural/A-102 Floor Plan Level 2.pdf"


@pytest.fixture
def procore(sandbox: SandboxThread) -> Iterator[Procore]:
    """ProPyCore signed in to the sandbox as the service account (client credentials)."""
    yield Procore(client_id=SERVICE_CLIENT_ID, client_secret=SERVICE_CLIENT_SECRET,
                  redirect_uri="", base_url=sandbox.url, oauth_url=sandbox.url)


def ids(sandbox: SandboxThread) -> tuple[int, int]:
    world = sandbox.world
    company = next(c.id for c in world.companies.values() if c.name == DEMO_COMPANY)
    project = next(p.id for p in world.projects.values() if p.name == DEMO_PROJECT)
    return company, project


def download(procore: Procore, url: str) -> bytes:
    """ProPyCore has no download: fetch a version URL with `requests` and a token ProPyCore
    got. requests drops the Authorization header when Procore redirects to another host, so
    the storage host never sees the token (the sandbox refuses requests that carry one)."""
    response = requests.get(url, headers={"Authorization": f"Bearer {procore.get_access_token()}"},
                            timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def latest_url(shown: dict[str, Any]) -> str:
    return max(shown["file_versions"], key=lambda v: v["number"])["url"]


def test_propycore_reads_companies_projects_folders_and_files(procore: Procore,
                                                              sandbox: SandboxThread) -> None:
    world = sandbox.world
    company_id, project_id = ids(sandbox)
    assert any(t.client_id == SERVICE_CLIENT_ID for t in world.tokens.values())

    # a DMSA sends the company header on /companies too (doc: Client credentials, DMSA with
    # MPR); ProPyCore's Companies.get cannot, so its public get_request sends it
    companies = procore.companies.get_request(
        "/rest/v1.0/companies", additional_headers={"Procore-Company-Id": str(company_id)},
        params={"page": 1, "per_page": 10000, "include_free_companies": True})
    assert [c["id"] for c in companies] == [company_id]

    # ProPyCore's Projects.get calls v1.1 without the company header, which Procore refuses
    # (doc: Multiple Procore Regions): the sandbox answers as Procore does
    with pytest.raises(ProcoreException) as refused:
        procore.projects.get(company_id=company_id)
    assert refused.value.response == "Missing Procore-Company-Id header!"
    # with the header, v1.1 paged as ProPyCore pages it (300 a page, until an empty page)
    portfolio = [project for page in range(1, 3) for project in procore.projects.get_request(
        "/rest/v1.1/projects", additional_headers={"Procore-Company-Id": str(company_id)},
        params={"company_id": company_id, "page": page, "per_page": 300,
                "filters[by_status]": "All"})]
    assert [p["id"] for p in portfolio] == [project_id]
    # the company's projects (v1.0): ProPyCore sends the header itself here
    listed = procore.companies.get_projects(company_id=company_id)
    assert [(p["id"], p["name"], p["status_name"]) for p in listed] == [
        (project_id, DEMO_PROJECT, "Active")]

    root = procore.folders.root(company_id=company_id, project_id=project_id)
    assert root["name"] == DEMO_PROJECT and root["parent_id"] is None
    assert {"Drawings", "Specifications", "RFIs"} <= {f["name"] for f in root["folders"]}

    # every live folder through the documents index, sorted by name as ProPyCore asks
    folders = procore.folders.get(company_id=company_id, project_id=project_id)
    tree = world.tree(project_id)
    assert {f["name_with_path"] for f in folders} == {DEMO_PROJECT} | {
        f"{DEMO_PROJECT}/{path}" for path, data in tree.items() if data is None}
    names = [f["name"] for f in folders]
    assert names == sorted(names, key=str.casefold)
    drawings = world.node_at(project_id, "Drawings")
    under = procore.folders.get(company_id=company_id, project_id=project_id,
                                folder_id=drawings.id)
    assert {f["name"] for f in under} == {"Drawings", "Architectural", "MEP", "Structural"}
    mep = procore.folders.find(company_id=company_id, project_id=project_id,
                               identifier="MEP", folder_id=drawings.id)
    assert mep["name_with_path"] == f"{DEMO_PROJECT}/Drawings/MEP" and mep["files"]

    architectural = world.node_at(project_id, ARCHITECTURAL)
    files = procore.files.get(company_id=company_id, project_id=project_id,
                              folder_id=architectural.id)
    assert {f["name"] for f in files} == {
        path.rpartition("/")[2] for path, data in tree.items()
        if data is not None and path.startswith(ARCHITECTURAL + "/")}
    shown = procore.files.find(company_id=company_id, project_id=project_id,
                               identifier=DRAWING.rpartition("/")[2],
                               folder_id=architectural.id)
    assert shown["size"] == len(tree[DRAWING] or b"")
    assert download(procore, latest_url(shown)) == tree[DRAWING]
    assert world.storage_auth_refusals == 0


def test_propycore_creates_folders_uploads_and_replaces_files(procore: Procore,
                                                             sandbox: SandboxThread,
                                                             tmp_path: Path) -> None:
    world = sandbox.world
    company_id, project_id = ids(sandbox)
    drawings = world.node_at(project_id, "Drawings")
    created = procore.folders.create(company_id=company_id, project_id=project_id,
                                     folder_name="Issued for Construction",
                                     folder_id=drawings.id)
    assert created["name_with_path"] == f"{DEMO_PROJECT}/Drawings/Issued for Construction"
    assert world.tree(project_id)["Drawings/Issued for Construction"] is None

    # a taken name: ProPyCore's Folders.create swallows the error (and then fails on its own
    # unset result), so its post_request shows what Procore answered
    with pytest.raises(ProcoreException) as taken:
        procore.folders.post_request(
            api_url="/rest/v1.0/folders", params={"project_id": project_id},
            additional_headers={"Procore-Company-Id": str(company_id)},
            data={"folder": {"name": "issued for construction",
                             "parent_id": str(drawings.id)}})
    assert taken.value.message == "Error: 400" and "has already been taken" in str(
        taken.value.response)

    sheet = tmp_path / "A-601 Door Schedule.pdf"
    sheet.write_bytes(b"%PDF-1.7 door schedule rev 0")
    uploaded = procore.files.create(company_id=company_id, project_id=project_id,
                                    filepath=str(sheet), folder_id=created["id"],
                                    description="Issued 2026-12-06")
    path = "Drawings/Issued for Construction/A-601 Door Schedule.pdf"
    assert world.tree(project_id)[path] == sheet.read_bytes()
    assert uploaded["description"] == "Issued 2026-12-06"
    assert download(procore, latest_url(uploaded)) == sheet.read_bytes()

    sheet.write_bytes(b"%PDF-1.7 door schedule rev 1")
    replaced = procore.files.update(company_id=company_id, project_id=project_id,
                                    doc_id=uploaded["id"], filepath=str(sheet))
    assert [v["number"] for v in replaced["file_versions"]] == [2, 1]
    assert world.versions(project_id, path) == 2
    assert download(procore, latest_url(replaced)) == b"%PDF-1.7 door schedule rev 1"

    procore.files.remove(company_id=company_id, project_id=project_id, doc_id=uploaded["id"])
    assert path not in world.tree(project_id)
    assert world.storage_auth_refusals == 0


def test_propycore_recovers_from_an_expired_token(procore: Procore,
                                                 sandbox: SandboxThread) -> None:
    company_id, project_id = ids(sandbox)
    sandbox.world.expire_access_tokens()
    with pytest.raises(UnauthorizedClientError):
        procore.folders.root(company_id=company_id, project_id=project_id)
    procore.reset_access_token()  # ProPyCore repeats the client-credentials grant
    assert procore.folders.root(company_id=company_id, project_id=project_id)["folders"]
