"""Transfer items, their CSV, flagged items, retry and ignore, and a job's statistics, over the
really served API (tests/api.py) after real local->local runs: a file whose name is taken by a
folder at the destination is flagged, as a person would meet it."""

from __future__ import annotations

import csv
import datetime
import io
import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from core.api.envelope import Serialized
from core.api.ids import item_id, parse_item_id
from core.api.transfers import CSV_ROWS_PER_READ
from core.connections import add_local
from core.engine.runner import run_job
from core.home import Home
from core.items_report import CSV_COLUMNS, csv_row, dryviq_item, epoch_time, iso_time
from core.job_store import create_job
from core.state import ItemRecord, JobRecord
from tests.api import ServedApi, served_api


def job_json(name: str) -> str:
    return json.dumps({"name": name, "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "plans"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "share"}, "target": {"path": "/" + name}}}})


@dataclass
class Rig:
    served: ServedApi
    plans: Path
    share: Path
    north: JobRecord  # run once: a.pdf and b.pdf flagged (folders of their names are there)
    south: JobRecord  # run once: everything sent

    async def run(self, job: JobRecord) -> str:
        return (await run_job(self.served.state, self.served.home, job)).status

    async def statuses(self, job: JobRecord) -> dict[str, str]:
        return {i.path: i.status for i in await self.served.state.items(job.id)}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    plans, share = tmp_path / "plans", tmp_path / "share"
    (plans / "Drawings").mkdir(parents=True)
    (plans / "Drawings" / "A-101.PDF").write_bytes(b"d" * 1000)
    (plans / "spec.docx").write_bytes(b"s" * 24)
    (plans / "notes").write_bytes(b"n" * 5)
    for name in ("a.pdf", "b.pdf"):
        (plans / name).write_bytes(name.encode() * 3)
        (share / "North" / name).mkdir(parents=True)  # the file's name is taken: flagged
    async with served_api(Home(tmp_path / "home")) as served:
        await add_local(served.state, "plans", str(plans))
        await add_local(served.state, "share", str(share))
        north, _ = await create_job(served.state, job_json("North"))
        south, _ = await create_job(served.state, job_json("South"))
        made = Rig(served, plans, share, north, south)
        assert (await made.run(north), await made.run(south)) == ("warn", "completed")
        yield made


async def test_items_pages_filters_and_shapes(rig: Rig) -> None:
    client, state = rig.served.client, rig.served.state
    recorded = await state.items(rig.north.id)
    assert len(recorded) == 6  # Drawings, its file, notes, spec.docx, a.pdf, b.pdf
    whole = (await client.get("/v1/transfers/items", params={"jobs": rig.north.id})).json()
    assert (whole["status"], whole["type"], whole["meta"]["total_count"]) == (200, "item", 6)
    assert whole["item"] == [
        dryviq_item(rig.north, i, time_of=epoch_time) | {
            "id": item_id(rig.north.id, i.path), "job_id": rig.north.id,
            "parent_id": item_id(rig.north.id, i.parent) if i.parent else None,
            "type": "container" if i.is_dir else "item"} for i in recorded]
    assert all(isinstance(i["source"]["modified_on"], int) for i in whole["item"])  # SDK: numbers
    assert [parse_item_id(i["id"]) for i in whole["item"]] == [(rig.north.id, i.path)
                                                                for i in recorded]
    # pages at the edges: the first, the last (one item), and past the end
    first = (await client.get("/v1/transfers/items?jobs=North&limit=4")).json()
    assert [i["id"] for i in first["item"]] == [i["id"] for i in whole["item"][:4]]
    assert first["meta"] | {"links": None} == {"offset": 0, "limit": 4, "total_count": 6,
                                               "has_more": True, "links": None}
    assert set(first["meta"]["links"]) == {"next"}
    following = (await client.get(first["meta"]["links"]["next"]["href"])).json()
    assert [i["id"] for i in following["item"]] == [i["id"] for i in whole["item"][4:]]
    assert following["meta"]["has_more"] is False
    assert set(following["meta"]["links"]) == {"prev"}
    last = (await client.get("/v1/transfers/items?jobs=North&offset=5&limit=4")).json()
    assert (len(last["item"]), last["meta"]["has_more"]) == (1, False)
    past = (await client.get("/v1/transfers/items?jobs=North&offset=6")).json()
    assert (past["item"], past["meta"]["total_count"], past["meta"]["has_more"]) == ([], 6, False)
    # filters: by status, several jobs (by id or name), every job when none is named
    flagged = (await client.get("/v1/transfers/items?jobs=North&item_status=remediation")).json()
    assert [i["source"]["path"] for i in flagged["item"]] == ["/a.pdf", "/b.pdf"]
    assert flagged["item"][0]["processing"] == [
        "a folder with this name is already at the destination"]
    both = (await client.get(f"/v1/transfers/items?jobs=North,{rig.south.id}"
                             "&item_status=success,pending")).json()
    assert both["meta"]["total_count"] == 4 + 6
    assert (await client.get("/v1/transfers/items")).json()["meta"]["total_count"] == 12
    one = (await client.get(f"/v1/transfers/items/{flagged['item'][0]['id']}")).json()
    assert one == {"status": 200, "type": "item", "item": flagged["item"][0]}


@pytest.mark.parametrize(("query", "status", "field"), [
    ("item_status=flagged", 400, "item_status"), ("item_status=", 400, "item_status"),
    ("jobs=nope", 404, "jobs"), ("jobs=,", 400, "jobs"), ("limit=0", 400, "limit"),
    ("limit=", 400, "limit"), ("offset=%C2%B2", 400, "offset"), ("offset=-1", 400, "offset")])
async def test_bad_listing_queries_name_their_parameter(rig: Rig, query: str, status: int,
                                                        field: str) -> None:
    for path in ("/v1/transfers/items", "/v1/transfers/items.csv"):
        if "limit" in query or "offset" in query:
            path = "/v1/transfers/items/flagged"
        answer = await rig.served.client.get(f"{path}?{query}")
        assert answer.status_code == status, (path, answer.text)
        assert answer.json()["errors"][0]["field"] == field


async def test_the_csv_has_the_command_lines_columns_and_every_item(rig: Rig) -> None:
    answer = await rig.served.client.get("/v1/transfers/items.csv?jobs=North,South")
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == [*CSV_COLUMNS, "job_id"]
    expected = []
    for job in (rig.north, rig.south):
        for item in await rig.served.state.items(job.id):
            row = ["" if v is None else str(v) for v in csv_row(job, item)]
            expected.append([item_id(job.id, item.path),
                             item_id(job.id, item.parent) if item.parent else "",
                             *row[2:], job.id])
    assert sorted(rows[1:]) == sorted(expected)
    flagged = await rig.served.client.get("/v1/transfers/items.csv?item_status=remediation")
    assert [row[4] for row in csv.reader(io.StringIO(flagged.text))][1:] == ["/a.pdf", "/b.pdf"]
    none = await rig.served.client.get("/v1/transfers/items.csv?item_status=pending")
    assert list(csv.reader(io.StringIO(none.text))) == [[*CSV_COLUMNS, "job_id"]]
    # more rows than one read takes: every one sent, once
    await rig.served.state.save_items([
        ItemRecord(rig.south.id, f"bulk/{n:04d}.pdf", "bulk", False, n, None, "create",
                   "pending") for n in range(CSV_ROWS_PER_READ + 100)])
    bulk = await rig.served.client.get("/v1/transfers/items.csv",
                                       params={"jobs": "South", "item_status": "pending"})
    paths = [row[4] for row in csv.reader(io.StringIO(bulk.text))][1:]
    assert paths == [f"/bulk/{n:04d}.pdf" for n in range(CSV_ROWS_PER_READ + 100)]


async def test_retry_sends_an_item_back_and_ignore_has_every_run_leave_it(rig: Rig) -> None:
    client = rig.served.client
    flagged = (await client.get("/v1/transfers/items/flagged?jobs=North")).json()
    ids = {i["source"]["name"]: i["id"] for i in flagged["item"]}
    assert list(ids) == ["a.pdf", "b.pdf"]
    for name in ids:  # the cause is gone: the folders standing in the files' way
        (rig.share / "North" / name).rmdir()

    ignored = await client.patch(f"/v1/transfers/items/{ids['a.pdf']}?ignore=1")
    assert ignored.status_code == 200, ignored.text
    # the count follows the change (made on the server's own connection)
    flagged = (await client.get("/v1/transfers/items/flagged?jobs=North")).json()
    assert [i["source"]["name"] for i in flagged["item"]] == ["b.pdf"]
    assert flagged["meta"]["total_count"] == 1
    assert ignored.json()["item"]["status"] == "skipped"
    assert ignored.json()["item"]["processing"] == [
        "ignored by API token 'tests' (was: a folder with this name is already at the "
        "destination)"]
    retried = (await client.patch(f"/v1/transfers/items/{ids['b.pdf']}?retry=true")).json()
    assert (retried["item"]["status"], retried["item"]["retried"]) == ("retry", 0)

    assert await rig.run(rig.north) == "completed"
    assert (rig.share / "North" / "b.pdf").read_bytes() == b"b.pdf" * 3
    assert not (rig.share / "North" / "a.pdf").exists()
    assert (await rig.statuses(rig.north))["a.pdf"] == "skipped"
    assert await rig.run(rig.north) == "no_changes"  # and the run after leaves it too
    assert not (rig.share / "North" / "a.pdf").exists()
    flagged = (await client.get("/v1/transfers/items/flagged?jobs=North")).json()
    assert flagged["item"] == []

    # a retry lifts the ignore: the next run sends it
    assert (await client.patch(f"/v1/transfers/items/{ids['a.pdf']}?retry=1")).status_code == 200
    assert await rig.run(rig.north) == "completed"
    assert (rig.share / "North" / "a.pdf").read_bytes() == b"a.pdf" * 3
    assert set((await rig.statuses(rig.north)).values()) == {"success"}


async def test_an_ignored_folder_is_left_with_everything_under_it(rig: Rig) -> None:
    (rig.plans / "Sub").mkdir()
    (rig.plans / "Sub" / "x.pdf").write_bytes(b"x")
    (rig.share / "North" / "Sub").write_bytes(b"a file in the folder's way")
    assert await rig.run(rig.north) == "warn"
    assert (await rig.statuses(rig.north))["Sub"] == "remediation"
    sub = item_id(rig.north.id, "Sub")
    assert (await rig.served.client.patch(f"/v1/transfers/items/{sub}?ignore=1")).is_success
    (rig.share / "North" / "Sub").unlink()
    await rig.run(rig.north)
    assert not (rig.share / "North" / "Sub").exists()
    assert "Sub/x.pdf" not in await rig.statuses(rig.north)


async def test_retry_and_ignore_refuse_what_they_cannot_do_and_change_nothing(
        rig: Rig) -> None:
    client, state, home = rig.served.client, rig.served.state, rig.served.home
    flagged = (await client.get("/v1/transfers/items/flagged?jobs=North")).json()["item"][0]
    sent = item_id(rig.north.id, "spec.docx")
    before = await state.items(rig.north.id)
    with home.job_lock(rig.north.id):  # as a run holds it
        busy = await client.patch(f"/v1/transfers/items/{flagged['id']}?ignore=1")
    assert busy.status_code == 409 and busy.json()["errors"][0]["code"] == "job_running"
    cases = [(f"{flagged['id']}", "", 400, "retry"),
             (f"{flagged['id']}", "?retry=1&ignore=1", 400, "retry"),
             (sent, "?retry=1", 409, "retry"), (sent, "?ignore=1", 409, "ignore"),
             (item_id(rig.north.id, "nothing.pdf"), "?retry=1", 404, "id"),
             (item_id("no-job", "a.pdf"), "?retry=1", 404, "id"), ("%%%", "?retry=1", 404, "id"),
             ("bm90IGFuIGl0ZW0", "?ignore=1", 404, "id")]
    for item, query, status, field in cases:
        answer = await client.patch(f"/v1/transfers/items/{item}{query}")
        assert answer.status_code == status, (item, query, answer.text)
        assert answer.json()["errors"][0]["field"] == field
    async with rig.served.client_with(rig.served.read_only_token) as reader:
        refused = await reader.patch(f"/v1/transfers/items/{flagged['id']}?retry=1")
        assert refused.status_code == 403
        assert (await reader.get(f"/v1/transfers/items/{flagged['id']}")).status_code == 200
    assert await state.items(rig.north.id) == before


async def test_a_failed_item_retried_gets_a_fresh_count_of_attempts(rig: Rig) -> None:
    state = rig.served.state
    record = await state.item(rig.north.id, "a.pdf")
    assert record is not None
    record.status, record.attempts, record.last_error = "remediation", 3, "disk on fire"
    await state.save_items([record])
    answer = await rig.served.client.patch(
        f"/v1/transfers/items/{item_id(rig.north.id, 'a.pdf')}?retry=1")
    assert answer.json()["item"]["retried"] == 0
    again = await state.item(rig.north.id, "a.pdf")
    assert again is not None
    assert (again.status, again.attempts, again.last_error) == ("retry", 0, None)


async def test_stats_add_up_the_items_and_executions(rig: Rig) -> None:
    client, state = rig.served.client, rig.served.state
    (rig.share / "North" / "a.pdf").rmdir()
    assert await rig.run(rig.north) == "warn"  # a.pdf sent now, b.pdf flagged again
    await state.start_execution(rig.north.id)  # and a third run, whose process died
    assert await state.mark_interrupted(rig.north.id) == 1
    answer = await client.get("/v1/transfers/North/stats")
    assert answer.json()["type"] == "stats"
    stats = answer.json()["stats"]
    items = await state.items(rig.north.id)
    by_status = Counter((i.status, i.is_dir) for i in items)
    for status in ("success", "remediation"):
        assert stats["by_status"][status]["source"] == {
            "files": by_status[status, False], "folders": by_status[status, True],
            "bytes": sum(i.size for i in items if i.status == status and not i.is_dir)}
    assert stats["by_status"]["remediation"]["destination"] == {"files": 0, "folders": 0,
                                                                "bytes": 0}
    assert stats["by_status"]["success"]["destination"]["files"] == 4
    assert stats["by_ext"] == {
        ".pdf": {"source": {"files": 3, "folders": 0, "bytes": 1030},
                 "destination": {"files": 2, "folders": 0, "bytes": 1015}},
        ".docx": {"source": {"files": 1, "folders": 0, "bytes": 24},
                  "destination": {"files": 1, "folders": 0, "bytes": 24}},
        "(none)": {"source": {"files": 1, "folders": 0, "bytes": 5},
                   "destination": {"files": 1, "folders": 0, "bytes": 5}}}
    assert list(stats["by_size"]) == ["< 1 MiB"]
    assert stats["by_size"]["< 1 MiB"]["source"]["files"] == 5
    assert stats["by_category"]["flag"]["source"]["files"] == 1
    executions = await state.executions(rig.north.id)
    assert [(e["job_id"], e["execution_id"], e["status_detail"]) for e in stats["timeline"]] == [
        (e.job_id, e.id, e.status) for e in reversed(executions)]
    listed = (await client.get(f"/v1/jobs/history?job={rig.north.id}")).json()["job_executions"]
    assert [e["status"] for e in stats["timeline"]] == ["warn", "warn", "cancelled"] == [
        e["status"] for e in reversed(listed)]  # DryvIQ's, as the job's executions say them
    assert [e["stats"]["transferred"]["destination"]["files"] for e in stats["timeline"]] == [
        3, 1, 0]
    assert [e["flagged"] for e in stats["timeline"]] == [2, 1, 0]
    assert (await client.get(f"/v1/transfers/{rig.north.id}/stats")).json() == answer.json()
    missing = await client.get("/v1/transfers/nope/stats")
    assert (missing.status_code, missing.json()["errors"][0]["field"]) == (404, "job")


async def test_the_item_count_follows_a_change_by_another_process(rig: Rig) -> None:
    """The count is kept while the file is unchanged; another connection's commit (a run in
    another process, here plain sqlite3) makes it count again."""
    url = "/v1/transfers/items?jobs=South&limit=1"
    before = (await rig.served.client.get(url)).json()["meta"]["total_count"]
    assert (await rig.served.client.get(url)).json()["meta"]["total_count"] == before
    with sqlite3.connect(rig.served.home.state_path) as other:
        other.execute("DELETE FROM items WHERE job_id = ? AND path = 'notes'", (rig.south.id,))
    assert (await rig.served.client.get(url)).json()["meta"]["total_count"] == before - 1


@pytest.mark.parametrize("epoch", [0, -1.5, 1_000_000_000.999, 1_733_500_000.5, -30_610_224_001,
                                   -30_610_224_000, 253_402_300_799.9])
def test_item_times_are_what_datetime_writes(epoch: float) -> None:
    """iso_time's fast path (strftime) writes what datetime's isoformat did, to the second."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    assert iso_time(epoch) == moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_serialized_objects_are_made_once_and_the_oldest_go_past_capacity() -> None:
    kept, made = Serialized(2), Counter[str]()

    def make(key: str) -> Callable[[], dict[str, str]]:
        return lambda: made.update([key]) or {"key": key}

    for key in ("a", "b", "a", "c", "b", "a"):
        assert orjson.loads(orjson.dumps([kept.get(key, make(key))])) == [{"key": key}]
    assert made == {"a": 2, "b": 1, "c": 1}  # "a" went when "c" came; "b" stayed
