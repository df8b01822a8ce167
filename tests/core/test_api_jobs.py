"""v1/jobs and v1/jobs/history over the really served API (tests/api.py), on local folders:
create (bare and in DryvIQ's envelope), validation errors naming their JSON paths, get by id
or name, paging, edit as a merge patch, remove, and control: a start over the API runs the
job in the scheduler `serve` runs, a pause stops a run resumable."""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from core import control
from core.cli import main
from core.connections import add_local
from core.connectors import local
from core.connectors.local import LocalConnector
from core.engine import executor
from core.home import Home
from tests.api import ServedApi, served_api

JOB: dict[str, Any] = {
    "name": "Drawings", "kind": "transfer",
    "transfer": {"transfer_type": "copy",
                 "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
                 "destination": {"connection": {"id": "dst"}, "target": {"path": "/"}}},
    "schedule": {"mode": "manual"}, "category": {"name": "Site A"},
}


def job_json(name: str, **changes: Any) -> dict[str, Any]:
    job = copy.deepcopy(JOB) | {"name": name}
    job["transfer"].update(changes)
    return job


async def folders(served: ServedApi, tmp_path: Path, files: int = 3,
                  size: int = 100) -> Path:
    """Connections `src` (with `files` files) and `dst`; returns the destination folder."""
    source, destination = tmp_path / "src", tmp_path / "dst"
    for folder in (source, destination):
        folder.mkdir()
    for number in range(files):
        (source / f"sheet-{number}.pdf").write_bytes(bytes([number]) * size)
    await add_local(served.state, "src", str(source), fsync=False)
    await add_local(served.state, "dst", str(destination), fsync=False)
    return destination


def problems(response: httpx.Response) -> list[tuple[str | None, str]]:
    body = response.json()
    assert body["type"] == "error" and body["status"] == response.status_code
    return [(error["field"], error["description"]) for error in body["errors"]]


async def wait_for(client: httpx.AsyncClient, job_id: str, status: str) -> dict[str, Any]:
    """The job once its newest execution has `status_detail` `status` and, unless that is
    running, its run has let go of the job (polled)."""
    for _ in range(600):
        job = (await client.get(f"/v1/jobs/{job_id}")).json()["job"]
        if job["execution"] and job["execution"]["status_detail"] == status and (
                status == "running" or job["status"] != "running"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {status}: {job}")


async def test_create_get_list_and_errors(tmp_path: Path) -> None:
    async with served_api(Home(tmp_path / "home")) as served:
        await folders(served, tmp_path)
        client = served.client
        bare = await client.post("/v1/jobs", json=job_json("Bare"))
        assert bare.status_code == 201, bare.text
        body = bare.json()
        assert (body["status"], body["type"]) == (201, "job")
        job = body["job"]
        assert job["name"] == "Bare" and job["status"] == "idle"
        assert job["transfer"]["source"]["connection"] == {"id": "src"}  # as written
        assert job["execution"] is None and job["previous_execution"] is None
        assert job["category"]["name"] == "Site A" and isinstance(job["category"]["id"], int)
        # DryvIQ's envelope, with and without its type
        typed = await client.post("/v1/jobs", json={"type": "job", "job": job_json("Typed")})
        untyped = await client.post("/v1/jobs", json={"job": job_json("Untyped")})
        assert typed.status_code == untyped.status_code == 201, untyped.text
        assert untyped.json()["job"]["name"] == "Untyped"

        by_name = await client.get("/v1/jobs/Bare")
        assert by_name.status_code == 200 and by_name.json()["job"]["id"] == job["id"]
        assert (await client.get(f"/v1/jobs/{job['id']}")).json()["job"]["name"] == "Bare"
        missing = await client.get("/v1/jobs/nope")
        assert missing.status_code == 404 and problems(missing)[0][0] == "id"

        first = (await client.get("/v1/jobs", params={"limit": 2})).json()
        assert first["type"] == "jobs" and [j["name"] for j in first["jobs"]] == [
            "Bare", "Typed"]
        meta = first["meta"]
        assert (meta["total_count"], meta["has_more"], meta["offset"]) == (3, True, 0)
        rest = (await client.get(meta["links"]["next"]["href"])).json()
        assert [j["name"] for j in rest["jobs"]] == ["Untyped"] and not rest["meta"]["has_more"]
        assert (await client.get("/v1/jobs", params={"category": "site a"})).json()[
            "meta"]["total_count"] == 3
        assert (await client.get("/v1/jobs", params={"category": "Other"})).json()["jobs"] == []
        bad_limit = await client.get("/v1/jobs", params={"limit": "x"})
        assert bad_limit.status_code == 400 and problems(bad_limit)[0][0] == "limit"

        # every problem is one error naming its JSON path; nothing is created
        wrong = job_json("Bare", simulation_mode="yes", conflict_resolution="never")
        refused = await client.post("/v1/jobs", json=wrong)
        assert refused.status_code == 400
        assert {field for field, _ in problems(refused)} == {
            "transfer.simulation_mode", "transfer.conflict_resolution"}
        wrong = job_json("Bare")
        wrong["transfer"]["source"]["connection"]["id"] = "nowhere"
        refused = await client.post("/v1/jobs", json=wrong)
        assert {field for field, _ in problems(refused)} == {
            "name", "transfer.source.connection.id"}
        enveloped = await client.post("/v1/jobs", json={"job": {"name": "No transfer"}})
        assert enveloped.status_code == 400 and problems(enveloped)[0][0] == "transfer"
        for text in (b"{not json", b"[1, 2]", "\"caf\u00e9\"".encode("utf-16")):
            answer = await client.post("/v1/jobs", content=text)
            assert answer.status_code == 400, (text, answer.text)
        assert (await client.get("/v1/jobs")).json()["meta"]["total_count"] == 3
        async with served.client_with(served.read_only_token) as reader:
            assert (await reader.post("/v1/jobs", json=job_json("Read"))).status_code == 403
            assert (await reader.get("/v1/jobs/Bare")).status_code == 200


async def test_edit_remove_and_refusals(tmp_path: Path) -> None:
    async with served_api(Home(tmp_path / "home")) as served:
        await folders(served, tmp_path)
        client = served.client
        job = (await client.post("/v1/jobs", json=job_json("Edit me"))).json()["job"]
        url = f"/v1/jobs/{job['id']}"
        # a merge patch: the keys sent replace the stored ones, null removes one
        edited = await client.patch(url, json={"name": "Edited", "schedule": None,
                                               "transfer": {"simulation_mode": True}})
        assert edited.status_code == 200, edited.text
        after = edited.json()["job"]
        assert after["id"] == job["id"] and after["name"] == "Edited"
        assert "schedule" not in after and after["transfer"]["simulation_mode"] is True
        assert after["transfer"]["source"] == job["transfer"]["source"]
        # the whole body sent back as it was read (server keys included) changes nothing
        again = await client.patch(url, json={"job": after})
        assert again.status_code == 200 and again.json()["job"]["name"] == "Edited"
        stored = json.loads((await served.state.find_jobs(job["id"]))[0].definition)
        assert not {"id", "execution", "created_on", "status", "status_reason"} & stored.keys()
        bad = await client.patch(url, json={"transfer": {"transfer_type": "teleport"}})
        assert bad.status_code == 400
        assert problems(bad)[0][0] == "transfer.transfer_type"
        assert (await client.get(url)).json()["job"]["transfer"].get("transfer_type") == "copy"
        assert (await client.patch(url)).status_code == 400  # neither a body nor a switch

        # control of a job that does not run
        for switch in ("pause", "cancel"):
            refused = await client.patch(url, params={switch: 1})
            assert refused.status_code == 409 and problems(refused)[0][0] == switch
        both = await client.patch(url, params={"start": 1, "pause": 1})
        assert both.status_code == 409 and problems(both)[0][0] == "pause"
        assert (await client.patch(url, params={"reset": "hard"})).status_code == 400
        with_body = await client.patch(url, params={"start": 1}, json={"name": "x"})
        assert with_body.status_code == 409

        assert (await client.delete(url)).status_code == 204
        assert (await client.get(url)).status_code == 404
        assert (await client.delete(url)).status_code == 404
        assert await served.state.find_jobs() == []


async def test_jobs_sent_back_queued_starts_put_and_history_csv(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with served_api(Home(tmp_path / "home")) as served:  # no scheduler: starts wait
        await folders(served, tmp_path)
        client = served.client
        job = (await client.post("/v1/jobs", json=job_json("Trip"))).json()["job"]
        url = f"/v1/jobs/{job['id']}"

        async def definition() -> dict[str, Any]:
            record, = await served.state.find_jobs(job["id"])
            return json.loads(record.definition)

        # read, changed and sent back (PATCH and PUT): the status GET shows changes nothing
        for method, text in ((client.patch, "patched"), (client.put, "put")):
            await served.state.start_execution(job["id"], scheduled=False)  # its process died
            read = (await client.get(url)).json()["job"]
            assert read["status"] == "paused"
            answer = await method(url, json={"job": read | {"description": text}})
            assert answer.status_code == 200, answer.text
            assert answer.json()["job"]["description"] == text
        assert "status" not in await definition()
        # a status never asks for a run: ?start=1 does
        refused = await client.patch(url, json={"description": "x", "status": "start"})
        assert refused.status_code == 400 and problems(refused)[0][0] == "status"
        assert await control.pending_for(served.state, job["id"]) is None
        not_text = await client.patch(url, json={"status": 5})
        assert not_text.status_code == 400 and problems(not_text)[0][0] == "status"
        held = job_json("Held") | {"schedule": {"mode": "auto"}, "status": "paused"}
        held = (await client.post("/v1/jobs", json=held)).json()["job"]
        assert held["status"] == "paused"  # sent back whole, it still waits for a manual run
        assert (await client.put(f"/v1/jobs/{held['id']}", json=held)).json()["job"][
            "status"] == "paused"

        # a start waits while the scheduler has no room (here: none runs); sent back, its
        # status asks nothing more; a pause or a cancel withdraws it
        for switch in ("pause", "cancel"):
            queued = (await client.patch(url, params={"start": 1})).json()["job"]
            assert queued["status"] == "start" and "queued" in queued["status_reason"]
            assert (await client.put(url, json=queued)).status_code == 200
            assert "status" not in await definition()
            withdrawn = await client.patch(url, params={switch: 1})
            assert withdrawn.status_code == 200, withdrawn.text
            assert withdrawn.json()["job"]["status"] == "idle"
            assert await control.pending_for(served.state, job["id"]) is None

        # several at once (the SDK's startMultiple, pauseMultiple), by ids or category
        several = await client.patch("/v1/jobs", params={"start": 1, "ids": "Trip,Held"})
        assert [j["status"] for j in several.json()["jobs"]] == ["start", "start"]
        paused = await client.patch("/v1/jobs", params={"pause": 1, "category": "site a"})
        assert paused.json()["meta"]["total_count"] == 2
        assert await control.pending(served.state) == []
        for params, status, field in (({"start": 1}, 400, "ids"), ({"ids": "Trip"}, 400, "start"),
                                      ({"start": 1, "ids": "Trip,nope"}, 404, "ids"),
                                      ({"start": 1, "ids": "Trip,"}, 400, "ids"),
                                      ({"start": 1, "pause": 1, "ids": "x"}, 409, "pause")):
            refused = await client.patch("/v1/jobs", params=params)
            assert refused.status_code == status and problems(refused)[0][0] == field, params

        # PUT replaces the whole job: a key left out is gone; checked as PATCH checks
        bare = job_json("Trip")
        del bare["schedule"]
        replaced = (await client.put(url, json=bare)).json()["job"]
        assert "schedule" not in replaced and "description" not in replaced
        wrong = await client.put(url, json={"name": "Trip"})
        assert wrong.status_code == 400 and problems(wrong)[0][0] == "transfer"
        assert (await client.put("/v1/jobs/nope", json=bare)).status_code == 404

        # history.csv: the rows `jobs history --csv` writes (a dead run reads interrupted)
        answer = await client.get("/v1/jobs/history.csv", params={"job": "Trip"})
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(
            "text/csv")
        served_rows = list(csv.reader(io.StringIO(answer.text)))
        assert [row[1] for row in served_rows] == ["status", "interrupted", "interrupted"]
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["--home", str(served.home.root), "jobs",
                                              "history", "Trip", "--csv"]) == 0
        assert list(csv.reader(io.StringIO(capsys.readouterr().out))) == served_rows
        assert (await client.get("/v1/jobs/history.csv")).text == answer.text  # every job's
        missing = await client.get("/v1/jobs/history.csv", params={"job": "nope"})
        assert missing.status_code == 404 and problems(missing)[0][0] == "job"


async def test_start_runs_in_the_scheduler_and_history(tmp_path: Path) -> None:
    async with served_api(Home(tmp_path / "home"), schedule=True) as served:
        destination = await folders(served, tmp_path)
        client = served.client
        job = (await client.post("/v1/jobs", json=job_json("Run me"))).json()["job"]
        started = await client.patch(f"/v1/jobs/{job['id']}", params={"start": 1})
        assert started.status_code == 200, started.text
        assert started.json()["job"]["status"] in ("start", "running")
        done = await wait_for(client, job["id"], "completed")
        assert sorted(p.name for p in destination.iterdir()) == [
            "sheet-0.pdf", "sheet-1.pdf", "sheet-2.pdf"]
        execution = done["execution"]
        assert execution["status"] == "completed" and execution["progress"] == 1.0
        assert execution["stats"]["destination"]["new"] == {"files": 3, "bytes": 300,
                                                            "versions": 0}
        assert execution["end_time"] >= execution["start_time"]
        assert execution["scheduled"] is False and execution["node_address"]

        # a second run: nothing to do
        await client.patch(f"/v1/jobs/{job['id']}", params={"resume": 1})
        done = await wait_for(client, job["id"], "no_changes")
        assert done["previous_execution"]["id"] == execution["id"]

        listed = await client.get("/v1/jobs/history", params={"job": "Run me", "limit": 1})
        body = listed.json()
        assert body["type"] == "job_executions" and body["meta"]["total_count"] == 2
        assert body["job_executions"][0]["status"] == "no_changes"
        every = (await client.get("/v1/jobs/history")).json()
        assert [e["id"] for e in every["job_executions"]] == [done["execution"]["id"],
                                                              execution["id"]]
        last = await client.get("/v1/jobs/history", params={"job": job["id"],
                                                            "execution": "last"})
        assert last.json()["type"] == "job_execution"
        assert last.json()["job_execution"]["id"] == done["execution"]["id"]
        newest = await client.get("/v1/jobs/history", params={"execution": "last"})
        assert newest.json()["job_execution"]["id"] == done["execution"]["id"]  # of any job
        one = await client.get("/v1/jobs/history", params={"execution": execution["id"]})
        assert one.json()["job_execution"]["stats"]["destination"]["new"]["files"] == 3
        for params, field, status in (({"job": job["id"], "execution": "current"},
                                       "execution", 404),
                                      ({"execution": "current"}, "execution", 404),
                                      ({"execution": "x"}, "execution", 400),
                                      ({"execution": "999"}, "execution", 404),
                                      ({"job": "nope"}, "job", 404)):
            answer = await client.get("/v1/jobs/history", params=params)
            assert answer.status_code == status and problems(answer)[0][0] == field, params


def held_copies(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Local copies wait in their first step until the event returned is set, so a job
    runs as long as the test needs, whatever this machine's speed."""
    released = threading.Event()
    step = LocalConnector._copy_step

    def held(connector: LocalConnector, *args: object) -> int:
        released.wait(timeout=60)
        return step(connector, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(executor, "SMALL_FILE", 0)  # every file copied step by step
    monkeypatch.setattr(local, "COPY_STEP", 64 << 10)
    monkeypatch.setattr(LocalConnector, "_copy_step", held)
    return released


async def test_pause_a_running_job_and_refusals_while_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    released = held_copies(monkeypatch)
    async with served_api(Home(tmp_path / "home"), schedule=True) as served:
        destination = await folders(served, tmp_path)
        client = served.client
        slow = job_json("Slow", performance={"parallel_writes": {"requested": 1}})
        job = (await client.post("/v1/jobs", json=slow)).json()["job"]
        url = f"/v1/jobs/{job['id']}"
        await client.patch(url, params={"start": 1})
        running = await wait_for(client, job["id"], "running")
        assert running["status"] == "running" and running["execution"]["end_time"] is None
        current = await client.get("/v1/jobs/history", params={"job": "Slow",
                                                               "execution": "current"})
        assert current.json()["job_execution"]["status"] == "running"
        for answer in (await client.delete(url), await client.patch(url, params={"start": 1}),
                       await client.patch(url, json={"name": "Renamed"})):
            assert answer.status_code == 409, answer.text
        paused = await client.patch(url, params={"pause": 1})
        assert paused.status_code == 200, paused.text
        while await control.pending_for(served.state, job["id"]):  # the run takes it
            await asyncio.sleep(0.05)
        released.set()  # the file in flight finishes, then the run stops
        stopped = await wait_for(client, job["id"], "interrupted")
        assert stopped["execution"]["status"] == "cancelled"
        assert stopped["status"] == "paused"  # the next run continues where it stopped
        assert [p.name for p in destination.iterdir()] == ["sheet-0.pdf"]
