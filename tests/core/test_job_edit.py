"""Editing and duplicating a stored job (the app's e and y keys) through core."""

from __future__ import annotations

import json

import pytest

from core.connections import add_local
from core.engine.runner import run_job
from core.home import Home
from core.job_store import copy_name, create_job, duplicate_job, update_job
from core.jobs import JobError
from core.paths import NAME_MAX
from core.state import State
from tests.tui.conftest import job_json


@pytest.fixture
def home(tmp_path) -> Home:
    home = Home(tmp_path / "home")
    home.ensure()
    return home


@pytest.fixture
async def state(home, tmp_path):
    state = await State.open(home.state_path)
    for name in ("plans", "share"):
        (tmp_path / name).mkdir()
        await add_local(state, name, str(tmp_path / name))
    yield state
    await state.close()


async def test_an_update_keeps_the_id_creation_time_and_history(home, state):
    job, _ = await create_job(state, job_json("Tower A"))
    execution = await state.start_execution(job.id)
    text = job_json("Tower A v2", parallel=8)
    updated, warnings = await update_job(home, state, job, text)
    assert (updated.id, updated.created_at, updated.name) == (job.id, job.created_at, "Tower A v2")
    assert warnings == []
    [stored] = await state.find_jobs()
    assert (stored.name, stored.parallel_writes, stored.definition) == ("Tower A v2", 8, text)
    assert [e.id for e in await state.executions(job.id)] == [execution.id]


async def test_an_update_is_validated_and_refuses_another_jobs_name(home, state):
    job, _ = await create_job(state, job_json("Tower A"))
    other, _ = await create_job(state, job_json("Tower B"))
    with pytest.raises(JobError) as refused:
        await update_job(home, state, job, job_json("Tower B"))
    assert refused.value.errors == [f"name: a job named 'Tower B' already exists (id {other.id})"]
    with pytest.raises(JobError, match="no connection"):
        await update_job(home, state, job, job_json(source="nowhere"))
    await update_job(home, state, job, job_json("Tower A"))  # its own name is not a clash
    assert sorted(j.name for j in await state.find_jobs()) == ["Tower A", "Tower B"]


def test_a_copy_takes_the_first_free_name():
    assert copy_name("A", set()) == "A (copy)"
    assert copy_name("A", {"A (copy)", "A (copy 2)"}) == "A (copy 3)"


async def test_a_duplicate_keeps_the_definition_under_a_new_name(state):
    job, _ = await create_job(state, json.dumps({"type": "job", "job": json.loads(
        job_json("Tower A"))}))
    copy, _ = await duplicate_job(state, job)
    assert copy.id != job.id and copy.name == "Tower A (copy)"
    assert json.loads(copy.definition)["job"]["transfer"] == json.loads(
        job.definition)["job"]["transfer"]


async def test_a_job_pointed_elsewhere_compares_every_file_afresh(home, state, tmp_path):
    """Its item records describe the old destination: kept, they made a stale file at the new
    one look in step ("changed only at the destination") and the run reported no changes."""
    (tmp_path / "plans" / "f.txt").write_text("the source's text")
    (tmp_path / "other").mkdir()
    await add_local(state, "other", str(tmp_path / "other"))
    job, _ = await create_job(state, job_json("Tower A"))
    assert (await run_job(state, home, job)).status == "completed"
    stale = tmp_path / "other" / "copy" / "f.txt"
    stale.parent.mkdir()
    stale.write_text("stale")
    moved, _ = await update_job(home, state, job, job_json("Tower A", destination="other"))
    assert await state.items(job.id) == []
    assert (await run_job(state, home, moved)).status == "completed"
    assert stale.read_text() == "the source's text"
    await update_job(home, state, moved, job_json("Tower A v2", destination="other"))
    assert await state.items(job.id) != [], "a new name alone keeps the records"


def test_a_copy_of_the_longest_name_stays_within_the_limit():
    name = "N" * NAME_MAX
    assert copy_name(name, set()) == "N" * (NAME_MAX - 7) + " (copy)"
    assert len(copy_name(name, {copy_name(name, set())})) == NAME_MAX


async def test_a_duplicate_of_a_bare_job_with_a_type_key_renames_the_job_itself(state):
    """A bare job object may carry "type": "job" without the envelope's "job" key: the copy
    renames the job object, as reading the JSON sees it (core.jobs.job_object)."""
    job, _ = await create_job(state, json.dumps({"type": "job", **json.loads(
        job_json("Tower A"))}))
    copy, _ = await duplicate_job(state, job)
    assert copy.name == "Tower A (copy)" and json.loads(copy.definition)["name"] == copy.name
