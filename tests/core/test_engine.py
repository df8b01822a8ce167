"""The engine end to end in one process: a copy from an in-memory source to a real folder."""

import json
import os

import pytest

from core.connectors.local import LocalConnector
from core.engine import runner
from core.home import Home
from core.job_store import create_job
from core.state import State
from tests.fakes import MemoryConnector


def job_json(**transfer):
    return json.dumps({"name": "copy", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": "/out"}},
        **transfer}})


@pytest.fixture
async def setup(tmp_path, monkeypatch):
    """A home, a state, connections 'src' (in memory) and 'dst' (tmp_path/dest)."""
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    (tmp_path / "dest").mkdir()
    await state.add_connection("src", "memory", {})
    await state.add_connection("dst", "local", {"path": str(tmp_path / "dest")})
    source = MemoryConnector({})

    def open_connector(connection, secrets, opening=None):
        return source if connection.platform == "memory" else LocalConnector(
            connection.config["path"])

    # the registry knows only real platforms; the engine test swaps in the in-memory source
    monkeypatch.setattr(runner, "open_connector", open_connector)
    yield home, state, source
    await state.close()


def snapshot(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


async def test_hostile_names_never_leave_the_destination_root(setup, tmp_path):
    home, state, source = setup
    source.tree.update({
        "..": {"escape.txt": b"x"}, ".": b"dot", "a/b": b"slash", "/abs": b"abs",
        "nul\0.txt": b"nul", "ok.txt": b"fine", "sub": {"..": b"up", "good.pdf": b"pdf"},
    })
    job, _ = await create_job(state, job_json())
    before = snapshot(tmp_path)
    result = await runner.run_job(state, home, job)
    assert result.status == "warn" and result.exit_code == 4
    after = set(snapshot(tmp_path)) - set(before)
    written = {p for p in after if not p.startswith("home")}
    assert written == {"dest/out", "dest/out/ok.txt", "dest/out/sub", "dest/out/sub/good.pdf"}
    flagged = {i.path: i.note for i in await state.items(job.id, status="remediation")}
    assert set(flagged) == {"..", ".", "a/b", "/abs", "nul\0.txt", "sub/.."}
    assert all(flagged.values())
    assert result.stats.flagged == 6


async def test_simulation_writes_nothing_but_records_every_action(setup, tmp_path):
    home, state, source = setup
    source.tree.update({"Drawings": {"A-101.pdf": b"a" * 10, "Old": {}}, "spec.docx": b"s"})
    job, _ = await create_job(state, job_json(simulation_mode=True))
    result = await runner.run_job(state, home, job)
    assert result.status == "completed"
    assert os.listdir(tmp_path / "dest") == []
    assert source.reads == []
    items = {i.path: (i.action, i.status) for i in await state.items(job.id)}
    assert items == {"Drawings": ("mkdir", "pending"), "Drawings/A-101.pdf": ("create", "pending"),
                     "Drawings/Old": ("mkdir", "pending"), "spec.docx": ("create", "pending")}
    assert (result.stats.transferred, result.stats.bytes) == (2, 11)


async def test_empty_containers_skip_creates_only_folders_with_files(setup, tmp_path):
    home, state, source = setup
    source.tree.update({"empty": {"deeper": {}}, "full": {"inner": {"f.txt": b"f"}}})
    job, _ = await create_job(state, job_json(empty_containers="skip"))
    result = await runner.run_job(state, home, job)
    assert result.status == "completed"
    assert snapshot(tmp_path / "dest") == ["out", "out/full", "out/full/inner",
                                           "out/full/inner/f.txt"]


async def test_type_clashes_are_flagged_for_a_person(setup, tmp_path):
    home, state, source = setup
    source.tree.update({"a.txt": b"a", "b.txt": b"b"})
    (tmp_path / "dest" / "out" / "a.txt").mkdir(parents=True)  # a folder where a file goes
    job, _ = await create_job(state, job_json())
    result = await runner.run_job(state, home, job)
    assert (result.status, result.stats.flagged, result.stats.transferred) == ("warn", 1, 1)


async def test_a_failing_item_is_retried_on_later_runs_then_flagged(setup, tmp_path):
    home, state, source = setup
    source.tree.update({"bad.pdf": b"b", "good.pdf": b"g"})
    source.unreadable.add("bad.pdf")
    job, _ = await create_job(state, job_json())
    statuses = []
    for _ in range(3):
        result = await runner.run_job(state, home, job)
        (item,) = [i for i in await state.items(job.id) if i.path == "bad.pdf"]
        statuses.append((result.status, result.exit_code, item.status, item.attempts))
    assert statuses == [("warn", 4, "retry", 1), ("warn", 4, "retry", 2),
                        ("warn", 4, "remediation", 3)]
    assert "input/output error" in item.last_error
    assert (tmp_path / "dest/out/good.pdf").read_bytes() == b"g"
    assert not (tmp_path / "dest/out/bad.pdf").exists()


async def test_failure_policy_halt_fails_the_run_at_the_first_failure(setup):
    home, state, source = setup
    source.tree.update({"bad.pdf": b"b"})
    source.unreadable.add("bad.pdf")
    job, _ = await create_job(state, job_json(failure_policy="halt"))
    result = await runner.run_job(state, home, job)
    assert (result.status, result.exit_code) == ("failed", 1)
    assert "failure_policy: halt" in result.error


async def test_a_file_changed_on_both_sides_keeps_both_versions(setup, tmp_path):
    home, state, source = setup
    source.tree.update({"plan.pdf": b"v1"})
    job, _ = await create_job(state, job_json())  # conflict_resolution defaults to "copy"
    assert (await runner.run_job(state, home, job)).status == "completed"
    source.tree["plan.pdf"] = b"v2 from the office"  # changed at the source...
    copied = tmp_path / "dest/out/plan.pdf"
    copied.write_bytes(b"v2 marked up on site")  # ...and at the destination
    result = await runner.run_job(state, home, job)
    assert (result.status, result.stats.transferred) == ("completed", 1)
    assert copied.read_bytes() == b"v2 marked up on site"  # nothing overwritten
    (beside,) = [p for p in copied.parent.iterdir() if p.name != "plan.pdf"]
    assert beside.name.startswith("plan (source conflict ") and beside.suffix == ".pdf"
    assert beside.read_bytes() == b"v2 from the office"


async def test_a_connection_failure_stops_the_run_without_blaming_the_items(setup, tmp_path):
    home, state, source = setup
    source.tree.update({f"f{i}.pdf": b"x" for i in range(20)})
    source.fatal_reads = True  # as if the disk holding the source went away
    job, _ = await create_job(state, job_json())
    result = await runner.run_job(state, home, job)
    assert (result.status, result.exit_code) == ("failed", 1)
    assert "the source disk is gone" in result.error
    assert result.stats.transferred == 0
    assert {i.attempts for i in await state.items(job.id)} == {0}  # nobody's fault: retried
    source.fatal_reads = False
    resumed = await runner.run_job(state, home, job)
    assert (resumed.status, resumed.stats.transferred) == ("completed", 20)


async def test_a_local_file_of_the_same_size_this_job_never_sent_is_still_replaced(setup,
                                                                                  tmp_path):
    """A local disk keeps the source's mtime, so a same-size file with another mtime differs:
    only destinations that cannot keep mtimes (Procore) trust an unrecorded file's size."""
    home, state, source = setup
    source.tree.update({"plan.pdf": b"rev B", "spec.pdf": b"same"})
    (tmp_path / "dest/out").mkdir()
    (tmp_path / "dest/out/plan.pdf").write_bytes(b"rev A")  # same size, older mtime
    (tmp_path / "dest/out/spec.pdf").write_bytes(b"same")
    os.utime(tmp_path / "dest/out/spec.pdf", (1_700_000_000, 1_700_000_000))  # in step
    job, _ = await create_job(state, job_json())
    result = await runner.run_job(state, home, job)
    assert (result.status, result.stats.transferred) == ("completed", 1)
    assert (tmp_path / "dest/out/plan.pdf").read_bytes() == b"rev B"
    assert {i.path: (i.action, i.status, i.note) for i in await state.items(job.id)} == {
        "plan.pdf": ("update", "success", None), "spec.pdf": ("none", "success", None)}


async def test_a_file_changed_only_at_the_destination_stays_as_it_is_on_every_later_run(
        setup, tmp_path):
    home, state, source = setup
    source.tree.update({"plan.pdf": b"as issued"})
    job, _ = await create_job(state, job_json())
    assert (await runner.run_job(state, home, job)).status == "completed"
    copied = tmp_path / "dest/out/plan.pdf"
    copied.write_bytes(b"marked up on site")
    for _ in range(2):
        result = await runner.run_job(state, home, job)
        assert (result.status, result.stats.transferred) == ("no_changes", 0)
        assert copied.read_bytes() == b"marked up on site"
    (item,) = await state.items(job.id)
    assert item.status == "success" and "changed only at the destination" in item.note
    source.tree["plan.pdf"] = b"revision B"  # now both sides changed: both are kept
    assert (await runner.run_job(state, home, job)).stats.transferred == 1
    assert copied.read_bytes() == b"marked up on site"


async def test_a_run_whose_process_died_counts_the_items_it_committed(setup):
    home, state, source = setup
    source.tree.update({"a.txt": b"aa", "sub": {"b.txt": b"bbb", "c.txt": b"c"}})
    job, _ = await create_job(state, job_json())
    done = await runner.run_job(state, home, job)
    # as a process killed between two heartbeats leaves it: running, with stale stats
    await state.update_execution(done.execution_id, status="running",
                                 stats={"files": 3, "transferred": 1, "bytes": 2})
    await state.db.execute("UPDATE executions SET heartbeat_at = started_at")
    last_item = max(i.updated_at for i in await state.items(job.id))
    assert await state.mark_interrupted(job.id) == 1
    [execution] = await state.executions(job.id)
    assert execution.status == "interrupted"
    assert execution.ended_at == last_item  # it ran at least until its last commit
    assert {key: execution.stats.get(key) for key in ("files", "transferred", "bytes", "failed")} \
        == {"files": 3, "transferred": 3, "bytes": 6, "failed": 0}
