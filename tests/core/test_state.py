"""The state: private, migrated in place, refusing newer schemas, batching item writes. The
store-neutral tests run on both stores (`store`: a state.db and a PostgreSQL database); those of
the SQLite file itself (modes, PRAGMA user_version, read-only files, locks, damage) on SQLite."""

import os
import sqlite3
import stat
from dataclasses import fields, replace

import pytest

from core import control
from core.analysis_tally import SIZE_BUCKETS
from core.analyze import Analysis, Estimate, latest_analysis, save_analysis
from core.api import events, reports, tokens, transfer_stats, transfers
from core.home import Home
from core.jobs import parse_job
from core.state import (
    ITEM_COLUMNS,
    MIGRATIONS,
    AgentRow,
    Forgotten,
    ItemLog,
    ItemRecord,
    SegmentedUpload,
    State,
    StateBusy,
    StateDamaged,
    StateError,
    StateReadOnly,
    exclusive_state_lock,
)
from tests.core.state_damage import pages_of, read_only, zero_pages

JOB = ('{"name":"j","transfer":{"transfer_type":"copy",'
       '"source":{"connection":{"id":"a"},"target":{"path":"/s"}},'
       '"destination":{"connection":{"id":"b"},"target":{"path":"/d"}}},"extra":1}')


def test_item_columns_follow_the_record_fields():
    assert tuple(f.name for f in fields(ItemRecord)) == ITEM_COLUMNS


async def test_new_state_file_is_private_and_current(tmp_path):
    path = tmp_path / "state.db"
    state = await State.open(path)
    await state.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_older_state_file_is_upgraded_in_place_keeping_its_data(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    db.execute("INSERT INTO connections VALUES ('c1', 'share', 'local', '{}', 1, 1)")
    db.commit()
    db.close()
    state = await State.open(path)
    assert (await state.find_connection("share")).id == "c1"
    await state.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_state_file_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StateError, match="newer dryviq-tui"):
        await State.open(path)
    assert path.read_bytes() == before


async def test_secrets_live_apart_from_config(store):
    state = store
    conn = await state.add_connection("p", "procore", {"domain": "x"}, {"token": "s3cret"})
    assert "s3cret" not in str(await state.list_connections())
    assert await state.connection_secrets(conn.id) == {"token": "s3cret"}
    with pytest.raises(StateError, match="already exists"):
        await state.add_connection("p", "local", {})
    await state.remove_connection(conn.id)
    assert await state.connection_secrets(conn.id) == {}


async def test_jobs_keep_their_json_verbatim_and_items_batch(store):
    state = store
    a = await state.add_connection("a", "local", {"path": "/"})
    b = await state.add_connection("b", "local", {"path": "/"})
    job = await state.add_job(parse_job(JOB), JOB, a.id, b.id)
    assert (await state.find_jobs("j"))[0].definition == JOB
    assert [j.name for j in await state.jobs_using(a.id)] == ["j"]
    execution = await state.start_execution(job.id)
    async with ItemLog(state, interval=60, batch=1000) as log:
        for i in range(10):
            log.record(ItemRecord(job.id, f"d/f{i}", "d", False, i, 1.0, "create", "pending",
                                  execution_id=execution.id))
        # batched: nothing committed yet, until a durable record forces the batch out
        assert await state.items(job.id) == []
        await log.record_durably(ItemRecord(job.id, "d/f0", "d", False, 0, 1.0, "create",
                                            "success", execution_id=execution.id))
        assert len(await state.items(job.id)) == 10
    assert (await state.item_states(job.id, "d"))["d/f0"].status == "success"
    assert (await state.item(job.id, "d/f0")).execution_id == execution.id
    assert await state.item(job.id, "d/missing") is None
    assert len(await state.items(job.id, status="pending")) == 9


async def test_running_execution_of_a_dead_process_is_marked_interrupted(store):
    state = store
    a = await state.add_connection("a", "local", {"path": "/"})
    job = await state.add_job(parse_job(JOB), JOB, a.id, a.id)
    execution = await state.start_execution(job.id)
    await state.update_execution(execution.id, stats={"transferred": 9, "folders_created": 3})
    await state.save_items([
        ItemRecord(job.id, "f", "", False, 5, 1.0, "create", "success",
                   execution_id=execution.id, updated_at=execution.started_at + 7),
        ItemRecord(job.id, "d", "", True, 0, 1.0, "mkdir", "success",
                   execution_id=execution.id),
        ItemRecord(job.id, "g", "", False, 2, 1.0, "create", "remediation",
                   execution_id=execution.id)])
    assert await state.mark_interrupted(job.id) == 1
    (found,) = await state.executions(job.id)
    assert (found.id, found.status) == (execution.id, "interrupted")
    # counted again from the items it committed; it ran until its last one
    assert (found.stats["transferred"], found.stats["bytes"], found.stats["folders_created"],
            found.stats["flagged"]) == (1, 5, 3, 1)
    assert found.ended_at >= execution.started_at + 7


async def _job_with_items(path, count: int = 400):
    state = await State.open(path)
    a = await state.add_connection("a", "local", {"path": "/"})
    job = await state.add_job(parse_job(JOB), JOB, a.id, a.id)
    await state.save_items([ItemRecord(job.id, f"d/file-{i:04}", "d", False, i, 1.0, "create",
                                       "success") for i in range(count)])
    return state, job


async def test_a_damaged_file_is_refused_before_an_execution_starts(tmp_path):
    path = tmp_path / "state.db"
    state, job = await _job_with_items(path)
    await state.close()
    zero_pages(path, [pages_of(path, "items")[3][0]])
    state = await State.open(path)  # the header still reads
    assert await state.quick_check()
    with pytest.raises(StateDamaged, match=f"the state file {path} is damaged"):
        await state.start_execution(job.id)
    assert await state.executions(job.id) == []
    await state.close()


async def test_a_read_only_file_opens_read_only_only_when_asked(tmp_path):
    path = tmp_path / "state.db"
    state, job = await _job_with_items(path, 3)
    await state.close()
    with read_only(path):
        with pytest.raises(StateReadOnly, match="dryviq-tui jobs run needs to write it"):
            await State.open(path, purpose="dryviq-tui jobs run")
        state = await State.open(path, read_only_ok=True)
        assert state.read_only
        assert [j.name for j in await state.find_jobs()] == ["j"]
        assert len(await state.items(job.id)) == 3
        assert await state.mark_interrupted(job.id) == 0  # nothing to write, nothing written
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
            await state.add_connection("b", "local", {})
        await state.close()


async def test_a_read_only_file_of_an_older_schema_says_it_needs_writing(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    db.close()
    with read_only(path), pytest.raises(StateError, match=r"needs an upgrade .*chmod u\+w"):
        await State.open(path, read_only_ok=True)


async def test_an_open_state_holds_its_private_lock_shared(tmp_path):
    path = tmp_path / "state.db"
    first, second = await State.open(path), await State.open(path)  # shared: both open
    lock = tmp_path / "state.db.lock"
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
    try:
        with pytest.raises(StateBusy, match="1 process has the state file"), \
                exclusive_state_lock(path):
            pass  # (both are this process's)
    finally:
        await first.close()
        await second.close()
    with exclusive_state_lock(path):  # closing let it go
        pass


async def test_a_read_only_home_without_a_lock_file_still_opens_read_only(tmp_path):
    path = tmp_path / "state.db"
    await (await State.open(path)).close()
    (tmp_path / "state.db.lock").unlink()
    with read_only(tmp_path):
        state = await State.open(path, read_only_ok=True)
        try:
            assert state.read_only and await state.find_jobs() == []
        finally:
            await state.close()
    assert not (tmp_path / "state.db.lock").exists()


async def test_the_v6_upgrade_counts_runs_for_stop_policies_from_the_upgrade(tmp_path):
    """v5 applied no stop policy: runs made before the upgrade never count toward one, so a
    policy they would already meet does not complete the job at its next run's end."""
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript("".join(MIGRATIONS[:5]) + "\nPRAGMA user_version = 5;")
    db.execute("INSERT INTO connections VALUES ('c', 'c', 'local', '{}', 1, 1)")
    for name in ("ran", "new"):
        db.execute("INSERT INTO jobs VALUES (?, ?, 'transfer', 'copy', 'c', '', 'c', 'x', 0, "
                   "'auto', 'Default', 2, ?, 1)", (name, name, JOB))
    for number in range(1, 4):
        db.execute("INSERT INTO executions (id, job_id, status, phase, started_at, ended_at, "
                   "heartbeat_at, pid) VALUES (?, 'ran', 'completed', 'complete', ?, ?, ?, 1)",
                   (number, number, number, number))
    db.commit()
    db.close()
    state = await State.open(path)
    try:
        jobs = {job.id: job for job in await state.find_jobs()}
        assert (jobs["ran"].counts_after, jobs["new"].counts_after) == (3, 0)
        assert await state.counted_executions(jobs["ran"]) == []
    finally:
        await state.close()


# -- every store: what the layers above the state read and write through SQL ----------------


async def _two_jobs(state):
    a = await state.add_connection("a", "local", {"path": "/"})
    b = await state.add_connection("b", "local", {"path": "/"})
    first = await state.add_job(parse_job(JOB), JOB, a.id, b.id)
    second = await state.add_job(parse_job(JOB.replace('"j"', '"k"')), JOB, b.id, a.id)
    return a, b, first, second


async def test_connections_are_found_by_id_before_name_and_listed_by_name(store):
    b = await store.add_connection("b", "local", {"path": "/b"})
    a = await store.add_connection(b.id, "local", {"path": "/a"})  # named like b's id
    assert (await store.find_connection(b.id)).name == "b"
    assert (await store.find_connection(a.id)).config == {"path": "/a"}
    assert [c.name for c in await store.list_connections()] == sorted([b.id, "b"])
    await store.update_connection_config(b.id, {"path": "/new"})
    await store.save_connection_secrets(b.id, {"token": "1"})
    await store.save_connection_secrets(b.id, {"token": "2"})
    assert (await store.find_connection("b")).config == {"path": "/new"}
    assert await store.connection_secrets(b.id) == {"token": "2"}
    assert await store.find_connection("nobody") is None


async def test_a_job_saved_again_reopens_and_counts_afresh(store):
    a, b, job, _ = await _two_jobs(store)
    for _ in range(3):
        execution = await store.start_execution(job.id, agent="h:1")
        await store.update_execution(execution.id, status="completed", ended_at=1.0)
    await store.set_job_status(job.id, "complete", "stop policy")
    category = await store.add_category("Plans")
    saved = await store.update_job(job, parse_job(JOB), JOB, b.id, a.id, category)
    (found,) = await store.find_jobs(job.id)
    assert found == saved and (found.status, found.status_reason) == ("idle", None)
    assert (found.counts_after, found.category, found.simulation_mode) == (
        execution.id, "Plans", False)
    assert await store.counted_executions(found) == []
    assert len(await store.executions(job.id)) == 3
    assert [e.id for e in await store.executions(job.id, 2)] == [execution.id,
                                                                  execution.id - 1]
    assert (await store.executions(job.id))[0].agent == "h:1"
    await store.remove_job(job.id)
    assert await store.find_jobs(job.id) == [] and await store.executions(job.id) == []


async def test_categories_are_one_per_name_whatever_its_case(store):
    await store.add_category("plans")
    again = await store.add_category("PLANS")
    assert again.name == "plans"
    await store.add_category("Archive")
    assert [c.name for c in await store.categories()] == ["Default", "Archive", "plans"]


async def test_job_totals_add_up_executions_and_items_standing_now(store):
    _, _, job, other = await _two_jobs(store)
    for stats, status in (({"transferred": 2, "bytes": 10, "api_calls": 3,
                            "rate_limit_waits": 1, "rate_limit_wait_seconds": 1.5}, "completed"),
                          ({"transferred": 1, "bytes": 5}, "completed"),
                          ({}, "failed")):
        execution = await store.start_execution(job.id)
        await store.update_execution(execution.id, status=status, stats=stats)
    await store.save_items([
        ItemRecord(job.id, "x", "", False, 1, 1.0, "create", "remediation"),
        ItemRecord(job.id, "y", "", False, 1, 1.0, "create", "retry")])
    totals = {t.job_id: t for t in await store.job_totals()}
    mine = totals[job.id]
    assert (mine.executions, mine.by_status, mine.files_moved, mine.bytes_moved) == (
        3, {"completed": 2, "failed": 1}, 3, 15)
    assert (mine.api_calls, mine.rate_limit_waits, mine.rate_limit_wait_seconds) == (3, 1, 1.5)
    assert (mine.flagged, mine.failed) == (1, 1)
    assert isinstance(mine.files_moved, int) and isinstance(mine.rate_limit_wait_seconds, float)
    assert totals[other.id].executions == 0


async def test_items_page_count_and_forget_whole_folders(store):
    _, _, job, other = await _two_jobs(store)
    paths = ["a", "a/b", "a/b/c", "a.txt", "a/b.txt", "a0", "B", "b"]
    await store.save_items([ItemRecord(job.id, p, p.rpartition("/")[0], "." not in p, 1, None,
                                       "create", "pending" if p < "a0" else "success")
                            for p in paths])
    await store.save_items([ItemRecord(other.id, "a", "", True, 0, None, "mkdir", "success")])
    # byte order, as SQLite's BINARY collation: "B" < "a" < "a.txt" < "a/b" < "a0" < "b"
    page = await store.item_page([job.id], [], offset=1, limit=3)
    assert [i.path for i in page] == ["a", "a.txt", "a/b"]
    assert page[0].is_dir is True and page[1].is_dir is False
    assert await store.count_items([job.id], []) == 8
    assert await store.count_items([job.id, other.id], ["success"]) == 3
    assert set(await store.item_records(job.id, "a")) == {"a/b", "a/b.txt"}
    await store.save_items([Forgotten(job.id, "a")])  # a, and all under it; not a.txt, a0
    assert [i.path for i in await store.items(job.id)] == ["B", "a.txt", "a0", "b"]
    assert await store.count_items([job.id], []) == 4
    assert await store.has_items(other.id)
    await store.forget_items(other.id)
    assert not await store.has_items(other.id)


async def test_segmented_uploads_and_their_segments(store):
    upload = SegmentedUpload("project 1", "plans/a.pdf", "u1", [{"size": 5}], 1.0)
    await store.start_segmented_upload(upload)
    await store.record_segment("u1", 1, "e1")
    await store.record_segment("u1", 1, "e1b")
    await store.record_segment("u1", 2, "e2")
    found = await store.segmented_upload("project 1", "plans/a.pdf")
    assert found.etags == {1: "e1b", 2: "e2"} and found.segments == [{"size": 5}]
    await store.start_segmented_upload(replace(upload, uuid="u2"))  # replaces the first
    assert (await store.segmented_upload("project 1", "plans/a.pdf")).etags == {}
    await store.forget_segmented_upload("u2")
    assert await store.segmented_upload("project 1", "plans/a.pdf") is None


async def test_agents_beat_and_stale_ones_are_forgotten(store):
    await store.beat(AgentRow("h:1", "h", 1, "agent", 1.0, 5.0), stale_before=0)
    await store.beat(AgentRow("h:2", "h", 2, "app", 1.0, 9.0), stale_before=0)
    await store.beat(AgentRow("h:1", "h", 1, "agent", 1.0, 10.0), stale_before=0)
    assert [a.id for a in await store.agents()] == ["h:1", "h:2"]
    await store.beat(AgentRow("g:3", "g", 3, "agent", 20.0, 20.0), stale_before=9.5)
    assert [a.id for a in await store.agents()] == ["g:3", "h:1"]
    await store.remove_agent("h:1")
    assert [a.id for a in await store.agents()] == ["g:3"]


async def test_rate_budgets_read_as_the_pacer_wrote_them(store):
    await store.db.execute(
        "INSERT INTO rate_budgets (client_key, hourly_limit, hourly_remaining, spike_limit, "
        "spike_remaining, updated_at) VALUES (?, ?, ?, ?, ?, ?)", ("c", 3600, 10, None, None, 2.5))
    await store.db.commit()
    assert await store.rate_budgets() == {"c": {
        "hourly_limit": 3600, "hourly_remaining": 10, "hourly_reset": 0, "spike_limit": None,
        "spike_remaining": None, "spike_reset": 0, "blocked_until": 0, "updated_at": 2.5}}


async def test_audit_events_are_kept(store):
    await store.audit("info", "started", "x", job_id="j", execution_id=3)
    rows = await store.db.execute_fetchall("SELECT job_id, execution_id, level, event, detail "
                                           "FROM audit_events")
    assert [tuple(row) for row in rows] == [("j", 3, "info", "started", "x")]


async def test_control_requests_replace_and_are_taken_once(store):
    _, _, job, other = await _two_jobs(store)
    first = await control.request(store, job.id, "pause", "me")
    newer = await control.request(store, job.id, "cancel", "you")
    await control.request(store, other.id, "start", "me")
    assert [r.action for r in await control.pending(store)] == ["cancel", "start"]
    assert [r.job_id for r in await control.pending(store, "start")] == [other.id]
    assert await control.pending_for(store, job.id) == newer
    assert not await control.take(store, first)  # replaced meanwhile
    assert await control.take(store, newer)
    assert await control.pending_for(store, job.id) is None


async def test_api_tokens_one_per_name_and_checked_by_hash(store):
    token, secret = await tokens.create_token(store, "ci", read_only=True)
    with pytest.raises(tokens.TokenExists):
        await tokens.create_token(store, "CI", read_only=False)
    checker = tokens.TokenChecker(store)
    assert await checker.check(secret) == token
    assert (await tokens.find_token(store, "ci")).last_used_at is not None
    assert await checker.check(secret + "x") is None
    assert (await tokens.revoke_token(store, token.id)).id == token.id
    assert await tokens.list_tokens(store) == []


async def test_a_token_made_meanwhile_by_another_process_is_refused(store, monkeypatch):
    await tokens.create_token(store, "ci", read_only=True)
    monkeypatch.setattr(tokens, "find_token", lambda *_: _none())  # the look saw none
    with pytest.raises(tokens.TokenExists, match="exists already"):
        await tokens.create_token(store, "ci", read_only=True)
    assert len(await tokens.list_tokens(store)) == 1


async def _none():
    return None


def _analysis(connection: str, path: str, files: int, **more) -> Analysis:
    return Analysis(connection, path, "local", 1.0, 2.0, 0, files, 1, 10 * files, (), (), (),
                    (), (), (), (), 0, (), (), 2, None, Estimate(0), **more)


async def test_stored_analyses_are_one_per_folder_pair_and_read_by_the_api(store):
    a = await store.add_connection("a", "local", {"path": "/"})
    b = await store.add_connection("b", "local", {"path": "/"})
    await save_analysis(store, _analysis("a", "", 1), a.id)
    await save_analysis(store, _analysis("a", "", 2), a.id)  # replaces the one before
    await save_analysis(store, _analysis("a", "", 3, against="b", against_path="x"), a.id,
                        b.id)
    assert (await latest_analysis(store, a.id, "")).files == 2
    assert (await latest_analysis(store, a.id, "", b.id, "x")).files == 3
    assert await latest_analysis(store, b.id, "") is None
    rows = await reports._analysis_rows(store, "ORDER BY id DESC LIMIT ? OFFSET ?", (10, 0))
    assert [reports._summary(row) for row in rows] == [
        {"id": rows[0][0], "connection_id": a.id, "path": "/", "against_connection_id": b.id,
         "against_path": "/x", "started_at": 1.0, "finished_at": 2.0, "connection": "a",
         "platform": "local", "against": "b", "files": 3, "folders": 1, "bytes": 30,
         "flagged_count": 2},
        {"id": rows[1][0], "connection_id": a.id, "path": "/", "against_connection_id": None,
         "against_path": None, "started_at": 1.0, "finished_at": 2.0, "connection": "a",
         "platform": "local", "against": None, "files": 2, "folders": 1, "bytes": 20,
         "flagged_count": 2}]


async def test_transfer_stats_break_items_down_in_sql(store):
    _, _, job, _ = await _two_jobs(store)
    execution = await store.start_execution(job.id)
    await store.update_execution(execution.id, status="completed", stats={"transferred": 2})
    await store.save_items([
        ItemRecord(job.id, "d", "", True, 0, None, "mkdir", "success", destination_path="d"),
        ItemRecord(job.id, "d/A.PDF", "d", False, 2048, None, "create", "success",
                   destination_path="d/A.PDF"),
        ItemRecord(job.id, "d/b.pdf", "d", False, 10, None, "create", "retry"),
        ItemRecord(job.id, ".profile", "", False, 1, None, "create", "success",
                   destination_path=".profile")])
    found = await transfer_stats.breakdowns(store, [job.id])
    assert found["by_status"] == {
        "retry": {"source": {"files": 1, "folders": 0, "bytes": 10},
                  "destination": {"files": 0, "folders": 0, "bytes": 0}},
        "success": {"source": {"files": 2, "folders": 1, "bytes": 2049},
                    "destination": {"files": 2, "folders": 1, "bytes": 2049}}}
    assert set(found["by_ext"]) == {"(none)", ".pdf"}
    assert found["by_ext"][".pdf"]["source"] == {"files": 2, "folders": 0, "bytes": 2058}
    assert [label for label in found["by_size"]] == [
        label for _, label in SIZE_BUCKETS if label in found["by_size"]]
    (entry,) = await transfer_stats.timeline(store, [job.id])
    assert (entry["execution_id"], entry["status"]) == (execution.id, "completed")


async def test_flagged_items_are_read_in_order_for_the_event_stream(store, tmp_path):
    _, _, job, _ = await _two_jobs(store)
    await store.save_items([
        ItemRecord(job.id, p, "", False, 1, None, "create", "remediation", updated_at=at)
        for p, at in (("b", 2.0), ("a", 2.0), ("c", 1.0))])
    watch = events.JobWatch(store, Home(tmp_path / "home"), job, events.Position())
    assert [e.body["id"] for e in await watch._flagged()] == [
        transfers.item_id(job.id, path) for path in ("c", "a", "b")]


# -- PostgreSQL: the same schema, and what a user sees when it cannot be reached ---------------


def _sqlite_columns(path) -> dict[str, list[str]]:
    db = sqlite3.connect(path)
    tables = [name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            for table in tables}


async def _postgres_schema(state) -> dict[str, list[tuple]]:
    columns = await state.db.execute_fetchall(
        "SELECT table_name, column_name, data_type, is_nullable, column_default FROM "
        "information_schema.columns WHERE table_schema = 'public' "
        "ORDER BY table_name, ordinal_position")
    indexes = await state.db.execute_fetchall(
        "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "ORDER BY tablename, indexname")
    schema: dict[str, list[tuple]] = {}
    for table, *rest in [*columns, *indexes]:
        schema.setdefault(table, []).append(tuple(rest))
    return schema


async def test_the_postgresql_schema_has_the_sqlite_tables_and_columns(tmp_path, postgres_url):
    await (await State.open(tmp_path / "state.db")).close()
    state = await State.open_url(postgres_url)
    try:
        schema = await _postgres_schema(state)
    finally:
        await state.close()
    in_postgres = {table: [row[0] for row in rows if len(row) == 4]
                   for table, rows in schema.items() if table != "schema_version"}
    assert in_postgres == _sqlite_columns(tmp_path / "state.db")


async def test_opening_a_migrated_postgresql_database_again_changes_nothing(postgres_url):
    first = await State.open_url(postgres_url)
    await first.add_category("Plans")
    before = await _postgres_schema(first)
    rows_before = await first.db.execute_fetchall("SELECT * FROM categories ORDER BY id")
    await first.close()
    again = await State.open_url(postgres_url)
    try:
        assert await _postgres_schema(again) == before
        assert await again.db.execute_fetchall("SELECT * FROM categories ORDER BY id") == \
            rows_before
        assert await again.db.execute_fetchall("SELECT version FROM schema_version") == [
            (len(MIGRATIONS),)]
    finally:
        await again.close()


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("problem", ["wrong password", "closed port", "missing database"])
def test_an_unusable_postgresql_state_is_one_line_naming_the_database(
        problem, postgres_server, tmp_path, monkeypatch, capsys):
    from core.cli import main

    url, password = postgres_server.url("postgres"), postgres_server.password
    port, name = postgres_server.port, "postgres"
    if problem == "wrong password":
        url = url.replace(password, "not-" + password)
    elif problem == "closed port":
        port = _closed_port()
        url = url.replace(f":{postgres_server.port}/", f":{port}/")
    else:
        name = "no_such_db"
        url = postgres_server.url(name)
    monkeypatch.setenv("DRYVIQ_STATE_URL", url)
    assert main(["--home", str(tmp_path / "home"), "jobs", "list"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert f"cannot connect to the PostgreSQL database {name} on 127.0.0.1:{port}" in err
    assert password not in err and "Traceback" not in err
    assert {"wrong password": "password authentication failed",
            "closed port": "Connection refused",
            "missing database": f'database "{name}" does not exist'}[problem] in err
    assert "connection to server" not in err  # the database is named once, at the start


def test_a_state_url_that_is_not_postgresql_is_refused(tmp_path, monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setenv("DRYVIQ_STATE_URL", "mysql://u:secret@db/x")
    assert main(["--home", str(tmp_path / "home"), "jobs", "list"]) == 1
    err = capsys.readouterr().err
    assert "must start with postgresql://" in err and "secret" not in err


def test_doctor_on_a_shared_state_says_where_it_is(postgres_url, tmp_path, monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setenv("DRYVIQ_STATE_URL", postgres_url)
    assert main(["--home", str(tmp_path / "home"), "doctor", "--repair"]) == 0
    out = capsys.readouterr().out
    assert "The state is shared in the PostgreSQL database t_" in out and "or repair" in out


def test_the_state_layer_imports_without_psycopg():
    """SQLite needs no PostgreSQL driver: core.state (and a SQLite state) never import it."""
    import subprocess
    import sys

    code = ("import asyncio, sys, tempfile, pathlib\n"
            "from core.state import State\n"
            "async def use():\n"
            "    state = await State.open(pathlib.Path(tempfile.mkdtemp()) / 'state.db')\n"
            "    await state.add_connection('a', 'local', {})\n"
            "    await state.close()\n"
            "asyncio.run(use())\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('psycopg', 'psycopg_pool', 'core.postgres') or m == 'core.postgres'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
