"""The request body cap (core/api/limits.py) over the really served API: a body over it, with a
length or sent chunked, is a 413 in the error envelope and changes nothing; bodies under it
(chunked ones too) reach the routes as before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from core.api.limits import MAX_BODY
from core.connections import add_local
from core.home import Home
from tests.api import served_api

JOB = {"name": "Drawings", "kind": "transfer",
       "transfer": {"transfer_type": "copy",
                    "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
                    "destination": {"connection": {"id": "dst"}, "target": {"path": "/"}}},
       "schedule": {"mode": "manual"}}


async def chunked(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`body` in pieces: httpx sends a body of unknown length with Transfer-Encoding chunked."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def too_large(answer: httpx.Response) -> None:
    assert answer.status_code == 413, answer.text
    body = answer.json()
    assert (body["status"], body["type"]) == (413, "error")
    assert body["errors"][0]["code"] == "too_large"
    assert str(MAX_BODY) in body["errors"][0]["description"]


async def test_a_body_over_the_cap_is_a_413_and_changes_nothing(tmp_path: Path) -> None:
    async with served_api(Home(tmp_path / "home")) as served:
        for name in ("src", "dst"):
            (tmp_path / name).mkdir()
            await add_local(served.state, name, str(tmp_path / name), fsync=False)
        # a job made valid JSON and 2 MB long by a long description
        big = json.dumps(JOB | {"name": "Big", "description": "x" * (2 * MAX_BODY)}).encode()
        headers = {"Content-Type": "application/json"}
        too_large(await served.client.post("/v1/jobs", content=big, headers=headers))
        too_large(await served.client.post("/v1/jobs", content=chunked(big), headers=headers))
        assert (await served.client.get("/v1/jobs")).json()["meta"]["total_count"] == 0

        small = json.dumps(JOB).encode()
        made = await served.client.post("/v1/jobs", content=chunked(small, 100), headers=headers)
        assert made.status_code == 201, made.text
        made = await served.client.post("/v1/jobs", json=JOB | {"name": "Plain"})
        assert made.status_code == 201, made.text
        assert (await served.client.get("/v1/jobs")).json()["meta"]["total_count"] == 2
        spec = (await served.client.get("/v1/openapi.json")).json()["paths"]
        assert "413" in spec["/v1/jobs"]["post"]["responses"]
        assert "413" in spec["/v1/connections"]["post"]["responses"]
        assert "413" in spec["/v1/jobs/{id}"]["patch"]["responses"]
