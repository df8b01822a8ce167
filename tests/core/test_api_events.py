"""v1/jobs/{id}/events over the really served API: a client connected before a start sees the
run's progress and its end; Last-Event-ID carries on where a stream stopped; flagged items,
a rate-limit pause and its end, and keepalives come as they happen in the state file."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.api import events
from core.home import Home
from core.state import ItemRecord
from tests.api import served_api
from tests.core.test_api_jobs import folders, job_json

TIMEOUT = 60  # seconds: only so a hung stream fails the test instead of hanging the suite


@dataclass
class Event:
    kind: str
    id: str | None
    data: Any


async def read_events(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of a text/event-stream; comments come as kind "comment"."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield Event("comment", None, line[1:].strip())
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif "event" in fields:
            yield Event(fields["event"], fields.get("id"), json.loads(fields["data"]))
            fields = {}
        else:
            fields = {}


async def collect(stream: AsyncIterator[Event], until: str) -> list[Event]:
    """The next events of `stream` up to and including the first of kind `until`."""
    seen = []

    async def reading() -> None:
        async for event in stream:
            seen.append(event)
            if event.kind == until:
                return

    await asyncio.wait_for(reading(), TIMEOUT)
    return seen


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "POLL", 0.1)


async def test_a_run_started_after_connecting_streams_progress_then_finished(
        tmp_path: Path) -> None:
    async with served_api(Home(tmp_path / "home"), schedule=True) as served:
        await folders(served, tmp_path)
        client = served.client
        job = (await client.post("/v1/jobs", json=job_json("Live"))).json()["job"]
        assert (await client.get("/v1/jobs/nope/events")).status_code == 404
        async with served.client_with(served.read_only_token) as reader, reader.stream(
                "GET", f"/v1/jobs/{job['name']}/events", params={"once": 1}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            await client.patch(f"/v1/jobs/{job['id']}", params={"start": 1})
            live = read_events(stream)
            seen = await collect(live, "finished")
            rest = [event async for event in live]
        assert rest == []  # once=1: the stream ended after `finished`
        kinds = [event.kind for event in seen]
        assert kinds[0] == "progress" and kinds[-1] == "finished"
        finished = seen[-1].data
        assert finished["job_id"] == job["id"] and finished["status"] == "completed"
        assert finished["stats"]["destination"]["new"]["files"] == 3
        assert all(event.data["id"] == finished["id"] for event in seen)
        assert seen[-1].id == f"{finished['id']}.{seen[-1].id.split('.')[1]}.end"

        # carrying on from the last event before the end: the end comes again, at once
        before_end = seen[-2].id
        async with client.stream("GET", f"/v1/jobs/{job['id']}/events", params={"once": 1},
                                 headers={"Last-Event-ID": before_end}) as again:
            resumed = await collect(read_events(again), "finished")
        assert resumed[-1].data["id"] == finished["id"]
        # a fresh connection after the run: its state, not its end again
        async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as fresh:
            first = await collect(read_events(fresh), "progress")
        assert first[-1].data["status"] == "completed"
        # once=1 with nothing running or asked for: the newest run's end, then the end
        async with client.stream("GET", f"/v1/jobs/{job['id']}/events",
                                 params={"once": 1}) as newest:
            told = [event async for event in read_events(newest)]
        assert [event.kind for event in told] == ["progress", "finished"]


async def test_flagged_items_rate_limit_pauses_and_keepalives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "KEEPALIVE", 0.3)
    async with served_api(Home(tmp_path / "home")) as served:
        await folders(served, tmp_path)
        client = served.client
        job = (await client.post("/v1/jobs", json=job_json("Watched"))).json()["job"]
        state = served.state
        execution = await state.start_execution(job["id"])
        # what a run holds and records, written here step by step
        with served.home.job_lock(job["id"]):
            async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
                stream = read_events(response)
                assert (await collect(stream, "progress"))[-1].data["status"] == "running"
                await state.save_items([ItemRecord(
                    job["id"], "plans/bad:name?.pdf", "plans", False, 10, None, "flag",
                    "remediation", note="the name cannot be fixed", execution_id=execution.id)])
                flagged = (await collect(stream, "flagged"))[-1].data
                assert flagged["job_id"] == job["id"] and flagged["status"] == "remediation"
                assert flagged["source"]["name"] == "bad:name?.pdf"
                assert flagged["processing"] == ["the name cannot be fixed"]
                until = time.time() + 600
                await state.update_execution(execution.id, stats={"waiting_until": until})
                paused = (await collect(stream, "rate_limit"))[-1].data
                assert paused["paused"] is True and paused["until"] == int(until)
                await state.update_execution(execution.id, stats={"waiting_until": None})
                resumed = (await collect(stream, "rate_limit"))[-1].data
                assert resumed["paused"] is False and resumed["execution_id"] == execution.id
                assert (await collect(stream, "comment"))[-1].data == "keepalive"
                await state.update_execution(execution.id, status="completed", phase="complete",
                                             ended_at=time.time())
                assert (await collect(stream, "finished"))[-1].data["status"] == "completed"
