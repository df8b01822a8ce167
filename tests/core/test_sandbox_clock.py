"""The sandbox's clock: with `clock_offset` it answers as a server whose clock differs from this
machine's, in its Date header, its rate-limit resets, its tokens and its timestamps."""

from __future__ import annotations

import email.utils
import time
from datetime import datetime

import httpx
import pytest

from core.sandbox import SandboxConfig
from tests.core.test_sandbox import MakeSandbox, api_client, project_params, user_tokens

AHEAD = 600.0


@pytest.mark.parametrize("offset", [AHEAD, -AHEAD])
def test_date_and_resets_follow_the_sandboxs_clock(make_sandbox: MakeSandbox,
                                                   offset: float) -> None:
    sandbox = make_sandbox(SandboxConfig(clock_offset=offset))
    tokens = user_tokens(sandbox)
    before = time.time() + offset
    with api_client(sandbox, tokens["access_token"]) as client:
        answer = client.get("/rest/v1.0/me")
    after = time.time() + offset
    assert answer.status_code == 200
    (date,) = answer.headers.get_list("date")  # the sandbox's own, not uvicorn's as well
    assert int(before) <= email.utils.parsedate_to_datetime(date).timestamp() <= after
    reset = int(answer.headers["x-rate-limit-reset"])  # the 10-second spike window's
    assert before + 10 <= reset <= after + 11
    assert before - 1 <= tokens["created_at"] <= after
    storage = httpx.get(f"{sandbox.storage_url}/blobs/1")
    assert int(before) <= email.utils.parsedate_to_datetime(
        storage.headers["date"]).timestamp() <= time.time() + offset


def test_created_items_carry_the_sandboxs_time(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(clock_offset=-AHEAD))
    before = time.time() - AHEAD
    with api_client(sandbox, user_tokens(sandbox)["access_token"]) as client:
        made = client.post("/rest/v1.0/folders", params=project_params(sandbox),
                           json={"folder": {"name": "Skewed"}})
    assert made.status_code == 201, made.text
    stamped = datetime.fromisoformat(made.json()["updated_at"].replace("Z", "+00:00"))
    assert int(before) <= stamped.timestamp() <= time.time() - AHEAD


def test_a_429_says_how_long_to_wait(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(SandboxConfig(spike_limit=2, clock_offset=AHEAD))
    with api_client(sandbox, user_tokens(sandbox)["access_token"]) as client:
        answers = [client.get("/rest/v1.0/me") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "retry-after" not in answers[0].headers
    assert 1 <= int(answers[2].headers["retry-after"]) <= 11
