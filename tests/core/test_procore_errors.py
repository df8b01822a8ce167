"""How Procore's refusals are classified: a taken name is AlreadyExists whether Procore answers
400 (what its OpenAPI lists for the Documents calls, and what captures show) or 422 (Rails'
usual status), a refused field is InvalidPath, and a 400 about the request as a whole is
neither. The sandbox's answers come over real HTTP; the 422 is built by hand, since the sandbox
no longer sends one for Documents."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from core.connectors.base import AlreadyExists, ConnectorError, InvalidPath
from core.connectors.procore_client import classify
from core.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SandboxThread

OOB = "urn:ietf:wg:oauth:2.0:oob"


@pytest.fixture
def api(sandbox: SandboxThread) -> Iterator[httpx.Client]:
    world = sandbox.world
    token = httpx.post(f"{sandbox.url}/oauth/token", data={
        "grant_type": "authorization_code", "code": world.issue_code(SANDBOX_CLIENT_ID, OOB),
        "redirect_uri": OOB, "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET}).json()["access_token"]
    with httpx.Client(base_url=sandbox.url, params={"project_id": next(iter(world.projects))},
                      headers={"Authorization": f"Bearer {token}",
                               "Procore-Company-Id": str(next(iter(world.companies)))}) as api:
        yield api


def test_a_taken_name_is_already_exists_at_400_and_at_422(api: httpx.Client) -> None:
    taken = api.post("/rest/v1.0/folders", json={"folder": {"name": "drawings"}})
    bad = api.post("/rest/v1.0/folders", json={"folder": {"name": "a|b"}})
    whole = api.post("/rest/v1.0/folders", json={"name": "Loose"})  # no folder object
    assert taken.status_code == 400
    assert isinstance(classify(taken, "create folder /Drawings"), AlreadyExists)
    rails = httpx.Response(422, json={"errors": {"name": ["has already been taken"]}})
    assert isinstance(classify(rails, "create folder /Drawings"), AlreadyExists)

    assert bad.status_code == 400
    refused = classify(bad, "create folder /a|b")
    assert type(refused) is InvalidPath and "can't contain" in str(refused)
    assert whole.status_code == 400
    assert type(classify(whole, "create folder /Loose")) is ConnectorError
