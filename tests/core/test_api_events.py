"""v1/jobs/{id}/events over the really served API: a client connected before a start sees the
run's progress and its end; Last-Event-ID carries on where a stream stopped; flagged items
(before their run's end), a rate-limit pause and its end, and keepalives come as they happen in
the state file; a stream ends with a last event when its job is removed or its token revoked,
and at once, cleanly, when `serve` stops."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.api import events
from core.api.tokens import create_token, revoke_token
from core.home import Home
from core.state import ItemRecord
from tests.api import served_api
from tests.core.test_api_jobs import folders, job_json
from tests.e2e.test_serve import Serving

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


async def test_a_stopped_run_flags_before_its_end_and_says_how_far_it_got(
        tmp_path: Path) -> None:
    async with served_api(Home(tmp_path / "home")) as served:
        await folders(served, tmp_path)
        job = (await served.client.post("/v1/jobs", json=job_json("Stopped"))).json()["job"]
        state = served.state
        execution = await state.start_execution(job["id"])
        await state.save_items([ItemRecord(
            job["id"], f"bad:name|{n}?.txt", "", False, 10, None, "flag", "remediation",
            note="the name cannot be fixed", execution_id=execution.id) for n in range(3)])
        await state.update_execution(
            execution.id, status="paused", phase="complete", ended_at=time.time(),
            stats={"planned_files": 190, "planned_bytes": 1000, "transferred": 12,
                   "bytes": 124, "listing_done": True})
        # carrying on from before the items were flagged: all of it comes in one look
        async with served.client.stream("GET", f"/v1/jobs/{job['id']}/events",
                                        params={"once": 1},
                                        headers={"Last-Event-ID": f"{execution.id}.0"}) as got:
            told = [event async for event in read_events(got)]
    assert [event.kind for event in told] == ["flagged"] * 3 + ["progress", "finished"]
    finished = told[-1].data
    assert finished["status"] == "cancelled" and finished["status_detail"] == "paused"
    assert finished["progress"] == 0.124 and finished["phase"] == "executing"


async def test_a_stream_ends_when_its_token_is_revoked_or_its_job_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "TOKEN_CHECK", 0.1)
    async with served_api(Home(tmp_path / "home")) as served:
        await folders(served, tmp_path)
        job = (await served.client.post("/v1/jobs", json=job_json("Gone"))).json()["job"]
        execution = await served.state.start_execution(job["id"])
        await served.state.update_execution(execution.id, status="completed", phase="complete",
                                            ended_at=time.time())
        watcher, secret = await create_token(served.state, "watcher", read_only=True)
        path = f"/v1/jobs/{job['id']}/events"
        async with served.client_with(secret) as client, client.stream("GET", path) as got:
            await revoke_token(served.state, watcher.id)
            told = [event async for event in read_events(got)]
        assert [event.kind for event in told] == ["progress", "revoked"]
        assert told[-1].data == {"job_id": job["id"],
                                "message": "the token 'watcher' was revoked"}
        async with served.client.stream("GET", path) as got:
            assert (await served.client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
            told = [event async for event in read_events(got)]
        assert [(event.kind, event.data["job_id"]) for event in told] == [
            ("progress", job["id"]), ("removed", job["id"])]


@pytest.mark.slow
async def test_sigterm_ends_an_open_stream_cleanly(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    async with served_api(home) as served:
        await folders(served, tmp_path)
        job = (await served.client.post("/v1/jobs", json=job_json("Open"))).json()["job"]
        token = served.token
    serving = Serving(home.root)
    try:
        async with httpx.AsyncClient(base_url=serving.url, timeout=TIMEOUT, headers={
                "Authorization": f"Bearer {token}"}) as client, client.stream(
                    "GET", f"/v1/jobs/{job['id']}/events") as got:
            lines = got.aiter_lines()
            assert await anext(lines) == f"retry: {events.RETRY_MS}"
            serving.process.send_signal(signal.SIGTERM)
            # a cut stream raises here (httpx: the chunked body is incomplete)
            rest = [line async for line in lines]
        out, err = serving.process.communicate(timeout=TIMEOUT)
    finally:
        if serving.process.returncode is None:
            serving.stop()
    assert rest[-2:] == [": the server is stopping", ""]
    assert serving.process.returncode == 0 and err == "", (out, err)
    assert "stopped" in out
