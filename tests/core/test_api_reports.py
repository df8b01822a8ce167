"""Reports (job categories) and stored analyses over the really served API (tests/api.py), after
real local->local runs and real analysis walks, against what core.reports and core.analyze say."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.analyze import analyze, latest_analysis
from core.api.ids import parse_item_id
from core.connections import add_local
from core.engine.runner import run_job
from core.home import Home
from core.job_store import create_job
from core.reports import find_category, report, reports
from tests.api import ServedApi, served_api


def job_json(name: str, category: str | None) -> str:
    job: dict[str, object] = {"name": name, "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "plans"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "share"}, "target": {"path": "/" + name}}}}
    if category:
        job["category"] = {"name": category}
    return json.dumps(job)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServedApi]:
    """Jobs North and South in category Tower (North run twice, a file flagged), Garage's
    Other run once, and an analysis of `plans` alone and one against `share`."""
    plans, share = tmp_path / "plans", tmp_path / "share"
    (plans / "Drawings").mkdir(parents=True)
    (plans / "Drawings" / "A-101.pdf").write_bytes(b"a" * 1000)
    (plans / "spec.docx").write_bytes(b"s" * 24)
    (share / "North" / "spec.docx").mkdir(parents=True)  # in the file's way: flagged
    async with served_api(Home(tmp_path / "home")) as served:
        state, home = served.state, served.home
        await add_local(state, "plans", str(plans))
        await add_local(state, "share", str(share))
        for name, category in (("North", "Tower"), ("South", "Tower"), ("Other", "Garage")):
            job, _ = await create_job(state, job_json(name, category))
            await run_job(state, home, job)
        (north,) = await state.find_jobs("North")
        await run_job(state, home, north)
        disk, other = await state.find_connection("plans"), await state.find_connection("share")
        assert disk is not None and other is not None
        await analyze(state, home, disk)
        await analyze(state, home, disk, against=other)
        yield served


async def test_reports_list_and_each_one_as_core_reports_says(served: ServedApi) -> None:
    client, state = served.client, served.state
    expected = [r.as_dict() for r in await reports(state)]
    listed = (await client.get("/v1/reports")).json()
    assert (listed["type"], listed["reports"]) == ("reports", expected)
    assert [r["name"] for r in expected] == ["Default", "Garage", "Tower"]
    assert listed["meta"]["total_count"] == 3
    paged = (await client.get("/v1/reports?offset=1&limit=1")).json()
    assert (paged["reports"], paged["meta"]["has_more"]) == ([expected[1]], True)
    tower = await find_category(state, "Tower")
    found, members = await report(state, tower)
    for wanted in (str(tower.id), "tower"):
        one = (await client.get(f"/v1/reports/{wanted}")).json()
        assert one == {"status": 200, "type": "report", "report": found.as_dict()}
    assert one["report"]["parameters"] == {"job_category_id": tower.id}
    stats = (await client.get(f"/v1/reports/{tower.id}/stats")).json()["stats"]
    assert (stats["id"], stats["name"], stats["totals"]) == (
        tower.id, "Tower", found.totals.as_dict())
    assert (stats["totals"]["jobs"], stats["totals"]["executions"]) == (2, 3)
    assert stats["totals"]["flagged"] == 1
    jobs = (await client.get("/v1/reports/Tower/jobs")).json()
    assert (jobs["type"], jobs["jobs"]) == ("jobs", [m.as_dict() for m in members])
    assert [j["name"] for j in jobs["jobs"]] == ["North", "South"]
    second = (await client.get("/v1/reports/Tower/jobs?offset=1")).json()
    assert [j["name"] for j in second["jobs"]] == ["South"]
    for path in ("/v1/reports/Nowhere", "/v1/reports/99/stats", "/v1/reports/99/jobs",
                 "/v1/reports/Nowhere/items"):
        missing = await client.get(path)
        assert (missing.status_code, missing.json()["errors"][0]["field"]) == (404, "id"), path


def _added(breakdowns: list[dict[str, Any]]) -> dict[str, Any]:
    """Breakdowns ({key: {side: {files, folders, bytes}}}) summed key by key."""
    total: dict[str, Any] = {}
    for breakdown in breakdowns:
        for key, sides in breakdown.items():
            into = total.setdefault(key, {})
            for side, numbers in sides.items():
                kept = into.setdefault(side, dict.fromkeys(numbers, 0))
                for name, value in numbers.items():
                    kept[name] += value
    return total


async def test_a_reports_stats_are_its_jobs_transfer_stats_added_up(served: ServedApi) -> None:
    client, state = served.client, served.state
    tower = [job for job in await state.find_jobs() if job.category == "Tower"]
    each = [(await client.get(f"/v1/transfers/{job.id}/stats")).json()["stats"]
            for job in tower]
    stats = (await client.get("/v1/reports/Tower/stats")).json()["stats"]
    for breakdown in ("by_status", "by_category", "by_ext", "by_size"):
        assert stats[breakdown] == _added([one[breakdown] for one in each]), breakdown
    assert stats["by_status"]["remediation"]["source"]["files"] == 1
    assert stats["by_status"]["success"]["destination"]["files"] == 3
    executions = [e for job in tower for e in await state.executions(job.id)]
    assert [(e["job_id"], e["execution_id"], e["status_detail"]) for e in stats["timeline"]] == [
        (e.job_id, e.id, e.status) for e in sorted(executions, key=lambda e: e.id)]
    assert sorted(stats["timeline"], key=lambda e: e["execution_id"]) == sorted(
        (e for one in each for e in one["timeline"]), key=lambda e: e["execution_id"])
    assert {e["status"] for e in stats["timeline"]} <= {"completed", "warn", "no_changes"}
    empty = (await client.get("/v1/reports/Default/stats")).json()["stats"]
    assert (empty["by_status"], empty["timeline"], empty["totals"]["jobs"]) == ({}, [], 0)


async def test_a_reports_items_are_its_jobs_items(served: ServedApi) -> None:
    client, state = served.client, served.state
    tower = [job for job in await state.find_jobs() if job.category == "Tower"]
    items = (await client.get("/v1/reports/Tower/items")).json()
    assert items["type"] == "item"
    expected = sorted([(job.id, i.path) for job in tower for i in await state.items(job.id)])
    assert sorted(parse_item_id(i["id"]) for i in items["item"]) == expected
    assert items["meta"]["total_count"] == len(expected) == 6
    flagged = (await client.get("/v1/reports/Tower/items?item_status=remediation")).json()
    assert [i["source"]["path"] for i in flagged["item"]] == ["/spec.docx"]
    bad = await client.get("/v1/reports/Tower/items?item_status=nope")
    assert (bad.status_code, bad.json()["errors"][0]["field"]) == (400, "item_status")
    garage = (await client.get("/v1/reports/Garage/items")).json()
    assert {i["job_id"] for i in garage["item"]} == {
        j.id for j in await state.find_jobs("Other")}


async def test_stored_analyses_list_newest_first_and_read_back_whole(
        served: ServedApi) -> None:
    client, state = served.client, served.state
    listed = (await client.get("/v1/analysis")).json()
    assert (listed["type"], listed["meta"]["total_count"]) == ("analyses", 2)
    newest, oldest = listed["analyses"]
    disk = await state.find_connection("plans")
    assert disk is not None
    assert (newest["against"], newest["against_path"], oldest["against"]) == (
        "share", "/", None)
    assert (oldest["connection"], oldest["connection_id"], oldest["path"]) == (
        "plans", disk.id, "/")
    assert (oldest["files"], oldest["folders"], oldest["bytes"]) == (2, 1, 1024)
    assert newest["id"] > oldest["id"]
    one = (await client.get(f"/v1/analysis/{oldest['id']}")).json()
    assert one["type"] == "analysis"
    result = one["analysis"].pop("result")
    assert one["analysis"] == oldest
    stored = await latest_analysis(state, disk.id, "")  # what the app shows for it
    assert stored is not None and result == json.loads(json.dumps(stored.as_dict()))
    assert (await client.get("/v1/analysis?limit=1&offset=1")).json()["analyses"] == [oldest]
    for wanted in ("999", "x", "%C2%B2"):
        missing = await client.get(f"/v1/analysis/{wanted}")
        assert (missing.status_code, missing.json()["errors"][0]["field"]) == (404, "id")
