"""The state file: private, migrated in place, refusing newer schemas, batching item writes."""

import os
import sqlite3
import stat
from dataclasses import fields

import pytest

from core.jobs import parse_job
from core.state import (
    ITEM_COLUMNS,
    MIGRATIONS,
    ItemLog,
    ItemRecord,
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


async def test_secrets_live_apart_from_config(tmp_path):
    state = await State.open(tmp_path / "state.db")
    conn = await state.add_connection("p", "procore", {"domain": "x"}, {"token": "s3cret"})
    assert "s3cret" not in str(await state.list_connections())
    assert await state.connection_secrets(conn.id) == {"token": "s3cret"}
    with pytest.raises(StateError, match="already exists"):
        await state.add_connection("p", "local", {})
    await state.remove_connection(conn.id)
    assert await state.connection_secrets(conn.id) == {}
    await state.close()


async def test_jobs_keep_their_json_verbatim_and_items_batch(tmp_path):
    state = await State.open(tmp_path / "state.db")
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
    await state.close()


async def test_running_execution_of_a_dead_process_is_marked_interrupted(tmp_path):
    state = await State.open(tmp_path / "state.db")
    a = await state.add_connection("a", "local", {"path": "/"})
    job = await state.add_job(parse_job(JOB), JOB, a.id, a.id)
    execution = await state.start_execution(job.id)
    assert await state.mark_interrupted(job.id) == 1
    (found,) = await state.executions(job.id)
    assert (found.id, found.status) == (execution.id, "interrupted")
    await state.close()


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
