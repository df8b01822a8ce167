"""Categories and their reports: joining by name or id, moving a job, the migration of older
jobs, and totals against real local->local executions and a real wait for the sandbox's
rate limit."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.connections import add_local
from core.engine.runner import run_job
from core.home import Home
from core.items_report import ITEM_FIELDS, flat_item
from core.job_store import create_job, update_job
from core.jobs import JobError
from core.pacer import BudgetStore, Pacer, Usage
from core.reports import find_category, report, reports
from core.sandbox import SandboxConfig
from core.state import MIGRATIONS, ItemRecord, JobRecord, State
from core.state_repair import repair
from tests.core.state_damage import pages_of, zero_pages
from tests.tui.conftest import add_sandbox_procore


def job_json(name: str, category: dict[str, Any] | None = None, *, source: str = "plans",
             destination: str = "share", to: str | None = None, **transfer: Any) -> str:
    job: dict[str, Any] = {"name": name, "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": source}, "target": {"path": "/"}},
        "destination": {"connection": {"id": destination},
                        "target": {"path": "/" + (to or name)}}, **transfer}}
    if category is not None:
        job["category"] = category
    return json.dumps(job)


@pytest.fixture
async def home(tmp_path: Path):
    """A home with local connections `plans` (two small files) and `share`."""
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    plans, share = tmp_path / "plans", tmp_path / "share"
    (plans / "Drawings").mkdir(parents=True)
    (plans / "Drawings" / "A-101.pdf").write_bytes(b"a" * 1000)
    (plans / "spec.docx").write_bytes(b"s" * 24)
    share.mkdir()
    await add_local(state, "plans", str(plans))
    await add_local(state, "share", str(share))
    yield home, state, plans
    await state.close()


async def test_a_name_creates_a_category_that_later_names_join(home) -> None:
    _, state, _ = home
    first, _ = await create_job(state, job_json("North", {"name": "Report {Name}"}))
    second, _ = await create_job(state, job_json("South", {"name": " report {name}"}))
    plain, _ = await create_job(state, job_json("East"))
    # "{Name}" is not the job's name: one category, named as the first job gave it
    assert first.category_id == second.category_id > 0
    assert (first.category, second.category) == ("Report {Name}", "Report {Name}")
    assert (plain.category_id, plain.category) == (-1, "Default")
    assert [(c.id, c.name) for c in await state.categories()] == [
        (-1, "Default"), (first.category_id, "Report {Name}")]
    again = await state.find_jobs("South")
    assert again[0].category_id == first.category_id  # as stored, not only as returned


async def test_an_id_joins_an_existing_category_and_an_unknown_id_saves_nothing(home) -> None:
    _, state, _ = home
    made, _ = await create_job(state, job_json("North", {"name": "Tower"}))
    joined, _ = await create_job(state, job_json("South", {"id": made.category_id}))
    default, _ = await create_job(state, job_json("West", {"id": -1, "name": "default"}))
    assert (joined.category_id, joined.category) == (made.category_id, "Tower")
    assert default.category_id == -1
    before = await state.categories()
    for category, where in (({"id": 99}, "category.id: no category with id 99"),
                            ({"id": "Tower"}, "category.id: no category with id 'Tower'"),
                            ({"id": made.category_id, "name": "Other"},
                             f"category.name: category {made.category_id} is named 'Tower'")):
        with pytest.raises(JobError) as raised:
            await create_job(state, job_json("East", category))
        assert any(error.startswith(where) for error in raised.value.errors), raised.value
    assert [j.name for j in await state.find_jobs()] == ["North", "South", "West"]
    assert await state.categories() == before


async def test_an_update_moves_a_job_to_another_category(home) -> None:
    home_, state, _ = home
    job, _ = await create_job(state, job_json("North", {"name": "Tower"}))
    await run_job(state, home_, job)
    moved, _ = await update_job(home_, state, job, job_json("North", {"name": "Garage"}))
    assert moved.category == "Garage" and moved.category_id != job.category_id
    totals = {r.category.name: r.totals for r in await reports(state)}
    assert (totals["Tower"].jobs, totals["Garage"].jobs) == (0, 1)
    assert (totals["Tower"].executions, totals["Garage"].executions) == (0, 1)
    back, _ = await update_job(home_, state, moved, job_json("North"))
    assert (back.category_id, back.category) == (-1, "Default")


async def test_older_jobs_migrate_to_the_category_of_their_stored_name(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript("".join(MIGRATIONS[:5]) + "\nPRAGMA user_version = 5;")
    db.execute("INSERT INTO connections VALUES ('c', 'c', 'local', '{}', 1, 1)")
    for n, category in enumerate(("Report {Name}", "Default", "report {name}", "7")):
        db.execute("INSERT INTO jobs VALUES (?, ?, 'transfer', 'copy', 'c', '', 'c', 'x', 0, "
                   "'manual', ?, 2, '{}', ?)", (f"j{n}", f"job {n}", category, 10.0 + n))
    db.commit()
    db.close()
    state = await State.open(path)
    try:
        linked = {j.id: (j.category_id, j.category) for j in await state.find_jobs()}
        assert [(c.id, c.name, c.created_at) for c in await state.categories()] == [
            (-1, "Default", 0), (2, "7", 13.0), (1, "Report {Name}", 10.0)]
        assert linked == {"j0": (1, "Report {Name}"), "j1": (-1, "Default"),
                          "j2": (1, "report {name}"), "j3": (2, "7")}
        # new categories count on from there
        assert (await state.add_category("Garage")).id == 3
    finally:
        await state.close()


async def test_jobs_whose_category_is_lost_join_one_of_its_name_again(home) -> None:
    """`doctor --repair` of a state whose categories table no longer reads: its jobs keep
    their category names, the ids are given anew (as LOSS_MEANS tells the user)."""
    home_, state, _ = home
    await create_job(state, job_json("North", {"name": "Tower"}))
    await create_job(state, job_json("South", {"name": "Garage"}))
    await state.close()
    (page, _), = pages_of(home_.state_path, "categories")
    zero_pages(home_.state_path, [page])
    assert repair(home_.state_path).method == "copy"  # what `doctor --repair` runs
    state = await State.open(home_.state_path)
    try:
        linked = {j.name: (j.category_id, j.category) for j in await state.find_jobs()}
        names = {c.id: c.name for c in await state.categories()}
        assert {name: names[id_] for name, (id_, _) in linked.items()} == {
            "North": "Tower", "South": "Garage"}
        assert names[-1] == "Default"
    finally:
        await state.close()


async def test_totals_add_up_the_executions_of_each_category(home, tmp_path: Path) -> None:
    home_, state, plans = home
    north, _ = await create_job(state, job_json("North", {"name": "Tower"}))
    south, _ = await create_job(state, job_json("South", {"name": "Tower"}))
    dry, _ = await create_job(state, job_json("Dry", {"name": "tower"}, simulation_mode=True))
    other, _ = await create_job(state, job_json("Other", {"name": "Garage"}))
    for job in (north, south, dry, other):
        await run_job(state, home_, job)
    (plans / "spec.docx").write_bytes(b"t" * 50)  # changed: sent again
    (plans / "bad\udcff.txt").write_bytes(b"x")  # not UTF-8: flagged, by every run
    await run_job(state, home_, north)
    await run_job(state, home_, north)

    by_name = {r.category.name: r.totals for r in await reports(state)}
    tower = by_name["Tower"]
    assert (tmp_path / "share" / "North" / "spec.docx").read_bytes() == b"t" * 50
    assert not (tmp_path / "share" / "Dry").exists()
    assert (tower.jobs, tower.executions) == (3, 5)
    # both files to North and South, and the changed one again; the simulation moved nothing
    assert (tower.files_moved, tower.bytes_moved) == (5, 2 * 1024 + 50)
    assert tower.by_status == {"completed": 3, "warn": 2}
    assert (tower.flagged, tower.failed) == (1, 0)  # flagged twice, one item flagged now
    assert (tower.api_calls, tower.rate_limit_waits, tower.rate_limit_wait_seconds) == (0, 0, 0)
    assert (by_name["Garage"].jobs, by_name["Garage"].files_moved) == (1, 2)
    assert by_name["Default"].jobs == 0

    found, jobs = await report(state, await find_category(state, "TOWER"))
    assert found.totals == tower
    assert [(j.job.name, j.totals.executions, j.last.status if j.last else None)
            for j in jobs] == [("North", 3, "warn"), ("South", 1, "completed"),
                               ("Dry", 1, "completed")]
    assert found.as_dict()["parameters"] == {"job_category_id": north.category_id}
    assert (await find_category(state, str(north.category_id))).name == "Tower"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


async def test_the_pacer_counts_the_seconds_waited_overlapping_waits_once(tmp_path) -> None:
    usage = Usage()
    usage.wait_began(100.0)  # two calls wait for one reset together ...
    usage.wait_began(101.0)
    usage.wait_ended(130.0)
    assert usage.rate_limit_wait_seconds == 0  # ... and one still waits
    usage.wait_ended(140.0)
    assert usage.rate_limit_wait_seconds == 40

    state = await State.open(tmp_path / "state.db")
    store = BudgetStore(state.path)
    clock = Clock()
    start = clock.now
    pacer = Pacer(store, "client@api.example", clock=clock, sleep=clock.sleep)
    try:  # the reserve is reached: the next call waits for the reset, 600 s away
        await pacer.observe(httpx.Response(200, headers={
            "X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": "10",
            "X-Rate-Limit-Reset": str(int(start + 600))}))
        await pacer.acquire(usage)
        assert usage.rate_limit_waits == 1 and usage.waiting == 0
        assert 600 <= usage.rate_limit_wait_seconds - 40 <= clock.now - start < 601
    finally:
        await store.close()
        await state.close()


@pytest.mark.slow  # waits for the sandbox's 11-second 'hour' to reset
async def test_a_run_into_the_sandboxes_rate_limit_reports_the_time_it_waited(
        home, make_sandbox) -> None:
    home_, state, plans = home
    for n in range(12):  # about two calls a file: past the 20-call 'hour' of 11 seconds (longer
        (plans / f"Sheet {n}.pdf").write_bytes(b"%d" % n)  # than the 10-second spike window)
    sandbox = make_sandbox(SandboxConfig(hourly_limit=20, hourly_window=11, spike_limit=1000))
    await add_sandbox_procore(state, home_, sandbox)
    job, _ = await create_job(state, job_json("Up", {"name": "Procore"}, destination="riverside"))
    started = time.monotonic()
    result = await run_job(state, home_, job)
    took = time.monotonic() - started
    assert result.status == "completed" and result.stats.rate_limit_waits >= 1
    assert 0.5 < result.stats.rate_limit_wait_seconds < took
    (recorded,) = await state.executions(job.id)
    assert recorded.stats["rate_limit_wait_seconds"] == result.stats.rate_limit_wait_seconds
    totals = {r.category.name: r.totals for r in await reports(state)}["Procore"]
    assert totals.rate_limit_wait_seconds == result.stats.rate_limit_wait_seconds
    assert totals.api_calls == result.stats.api_calls > 20


def test_items_in_dryviq_columns_say_what_was_written_and_which_way() -> None:
    job = JobRecord("j", "North", "transfer", "sync", "a", "Plans", "b", "Copy", False, "manual",
                    "Default", 2, "{}", 0.0)
    sent = ItemRecord("j", "A/x.pdf", "A", False, 7, 0.0, "create", "success",
                      destination_path="Copy/A/x.pdf", updated_at=60.0)
    back = ItemRecord("j", "y.pdf", "", False, 5, None, "update_source", "success",
                      destination_path="Copy/y.pdf", updated_at=60.0)
    gone = ItemRecord("j", "z.pdf", "", False, 9, None, "delete", "success",
                      destination_path="Copy/z.pdf", updated_at=60.0)
    renamed = ItemRecord("j", "a:b.pdf", "", False, 3, None, "create", "processed",
                         destination_path="Copy/a_b.pdf", note="renamed from 'a:b.pdf'",
                         attempts=2, updated_at=60.0)
    rows = {row["id"]: row for row in (flat_item(job, i) for i in (sent, back, gone, renamed))}
    assert list(rows["/A/x.pdf"]) == list(ITEM_FIELDS)
    assert (rows["/A/x.pdf"]["parent_id"], rows["/A/x.pdf"]["source_path"],
            rows["/A/x.pdf"]["destination_bytes"], rows["/A/x.pdf"]["source_modified_on"],
            rows["/A/x.pdf"]["transferred_on"]) == (
        "/A", "/Plans/A/x.pdf", 7, "1970-01-01T00:00:00Z", "1970-01-01T00:01:00Z")
    assert rows["/y.pdf"]["source_to_destination"] == "false"
    assert rows["/z.pdf"]["destination_bytes"] is rows["/z.pdf"]["transferred_on"] is None
    assert (rows["/a:b.pdf"]["destination_name"], rows["/a:b.pdf"]["retried"]) == ("a_b.pdf", 2)
    assert rows["/a:b.pdf"]["processing"] == "renamed from 'a:b.pdf' to 'a_b.pdf'"
