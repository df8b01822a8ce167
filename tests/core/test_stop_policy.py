"""Stop policies and job status through real runs: local folders copied by `jobs run` in this
process, the job's status read back with `jobs list/show` (text and --json), bytes on disk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from core.cli import main
from core.connectors.local import LocalConnector
from core.engine import runner
from core.home import Home
from core.job_store import create_job
from core.jobs import parse_job
from core.schedule import current_status
from core.state import State
from tests.fakes import MemoryConnector


class Jobs:
    """`dryviq-tui --home HOME jobs ...` in this process, over local folders src and dst."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.home, self.tmp, self.capsys = tmp_path / "home", tmp_path, capsys
        self.source, self.destination = tmp_path / "src", tmp_path / "dst"
        for name, folder in (("src", self.source), ("dst", self.destination)):
            folder.mkdir()
            self.command("connections", "add", "local", name, "--path", str(folder))

    def command(self, *args: str, code: int = 0) -> tuple[str, str]:
        assert main(["--home", str(self.home), *args]) == code
        captured = self.capsys.readouterr()
        return captured.out, captured.err

    def create(self, name: str = "plans", **keys: object) -> None:
        document = {"name": name, "transfer": {
            "transfer_type": "copy",
            "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
            "destination": {"connection": {"id": "dst"}, "target": {"path": "/" + name}}},
            **keys}
        path = self.tmp / f"{name}.json"
        path.write_text(json.dumps(document))
        self.command("jobs", "create" if not self.exists(name) else "update",
                     *(() if not self.exists(name) else (name,)), "--file", str(path))

    def exists(self, name: str) -> bool:
        return any(job["name"] == name for job in self.listed())

    def run(self, name: str = "plans", code: int = 0) -> str:
        return self.command("jobs", "run", name, code=code)[1]

    def listed(self) -> list[dict]:
        return json.loads(self.command("jobs", "list", "--json")[0])

    def status(self, name: str = "plans") -> tuple[str, str | None]:
        shown = json.loads(self.command("jobs", "show", name, "--json")[0])
        return shown["status"], shown["status_reason"]


@pytest.fixture
def jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Jobs:
    return Jobs(tmp_path, capsys)


def test_on_success_stops_after_runs_with_no_changes_not_necessarily_in_a_row(jobs, caplog,
                                                                              ) -> None:
    (jobs.source / "a.pdf").write_bytes(b"a")
    jobs.create(stop_policy={"on_success": 2})
    jobs.run()  # copies a.pdf
    jobs.run()  # no changes: 1
    (jobs.source / "b.pdf").write_bytes(b"b")
    jobs.run()  # copies b.pdf: does not count, and does not reset the count
    assert jobs.status() == ("idle", None)
    jobs.run()  # no changes: 2
    assert "job complete: stop policy on_success 2" in caplog.text  # the run says it too
    reason = "stop policy on_success 2: 2 runs with no changes"
    assert jobs.status() == ("complete", reason)
    assert (jobs.destination / "plans/b.pdf").read_bytes() == b"b"
    [listed] = jobs.listed()
    assert (listed["status"], listed["status_reason"], listed["next_run"]) == (
        "complete", reason, None)
    out, _ = jobs.command("jobs", "list")
    assert out.splitlines()[0].split()[:4] == ["NAME", "TYPE", "STATUS", "LAST"]
    assert out.splitlines()[1].split()[:3] == ["plans", "copy", "complete"]
    out, _ = jobs.command("jobs", "show", "plans")
    assert f"status           complete: {reason}" in out
    assert "next run         none: the job is complete" in out


def test_on_execute_then_a_run_by_hand_then_an_edit_reopens_the_job(jobs) -> None:
    (jobs.source / "a.pdf").write_bytes(b"a")
    jobs.create(stop_policy={"on_execute": 2})
    jobs.run()
    assert jobs.status() == ("idle", None)
    jobs.run()
    assert jobs.status() == ("complete", "stop policy on_execute 2: 2 runs in all")
    # `jobs run` is a person asking: it runs, and says the schedule leaves the job alone
    (jobs.source / "late.pdf").write_bytes(b"late")
    said = jobs.run()
    assert "job 'plans' is complete (stop policy on_execute 2: 2 runs in all); running it " \
           "once by hand" in said and "`dryviq-tui jobs update` reopens it" in said
    assert (jobs.destination / "plans/late.pdf").read_bytes() == b"late"
    assert jobs.status() == ("complete", "stop policy on_execute 2: 2 runs in all")
    # an edit (here the same JSON again) reopens it, and its runs count afresh
    jobs.create(stop_policy={"on_execute": 2})
    assert jobs.status() == ("idle", None)
    jobs.run()
    assert jobs.status() == ("idle", None)
    jobs.run()
    assert jobs.status()[0] == "complete"


def test_an_ad_hoc_job_is_complete_after_its_run(jobs) -> None:
    (jobs.source / "a.pdf").write_bytes(b"a")
    jobs.create(schedule={"mode": "ad-hoc"})
    assert jobs.status() == ("idle", None)
    jobs.run()
    assert jobs.status() == ("complete", "ad-hoc job: it ran once")
    assert (jobs.destination / "plans/a.pdf").read_bytes() == b"a"


def test_a_run_that_failed_to_start_is_not_a_failed_run(jobs) -> None:
    jobs.create(stop_policy={"on_failure": 1, "on_execute": 1})
    jobs.source.rmdir()  # the source connection's folder is gone: nothing examined
    assert "cannot be reached" in jobs.command("jobs", "run", "plans", code=1)[0]
    assert jobs.status() == ("idle", None)


def test_a_paused_auto_job_waits_for_its_first_run_by_hand(jobs) -> None:
    jobs.create(schedule={"mode": "auto", "repeat_interval": {"value": 2, "unit": "h"}},
                status="paused")
    [listed] = jobs.listed()
    assert (listed["status"], listed["status_reason"], listed["next_run"]) == (
        "paused", 'status "paused": waits for a manual first run', None)
    jobs.run()
    [listed] = jobs.listed()
    assert listed["status"] == "idle" and listed["next_run"] is not None
    ended = listed["last_execution"]["ended_at"]
    assert abs(_epoch(listed["next_run"]) - (ended + 7200)) <= 1  # two hours after it ended


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


# -- what counts, through the runner (an in-memory source fails reads as a dead disk would) ----


@pytest.fixture
async def engine(tmp_path, monkeypatch):
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    (tmp_path / "dest").mkdir()
    await state.add_connection("src", "memory", {})
    await state.add_connection("dst", "local", {"path": str(tmp_path / "dest")})
    source = MemoryConnector({"a.pdf": b"a"})
    monkeypatch.setattr(runner, "open_connector", lambda connection, secrets, opening=None:
                        source if connection.platform == "memory"
                        else LocalConnector(connection.config["path"]))
    yield home, state, source
    await state.close()


def engine_job(**keys: object) -> str:
    return json.dumps({"name": "copy", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": "/out"}}}, **keys})


async def test_on_failure_counts_failed_runs(engine) -> None:
    home, state, source = engine
    job, _ = await create_job(state, engine_job(stop_policy={"on_failure": 2}))
    source.fatal_reads = True  # the listing works, every read fails: the run fails
    statuses = []
    for _ in range(2):
        result = await runner.run_job(state, home, job)
        [job] = await state.find_jobs(job.id)
        statuses.append((result.status, (await current_status(state, home, job)).code))
    assert statuses == [("failed", "idle"), ("failed", "complete")]
    assert job.status_reason == "stop policy on_failure 2: 2 runs failed"


async def test_interrupted_runs_are_continued_not_counted(engine, tmp_path) -> None:
    home, state, _ = engine
    job, _ = await create_job(state, engine_job(stop_policy={"on_execute": 1}))
    stopped = asyncio.Event()
    stopped.set()  # Ctrl-C before anything was written
    assert (await runner.run_job(state, home, job, stop=stopped)).status == "interrupted"
    [job] = await state.find_jobs(job.id)
    assert (await current_status(state, home, job)).words == \
        "paused: interrupted; the next run continues where it stopped"
    assert (await runner.run_job(state, home, job)).status == "completed"
    [job] = await state.find_jobs(job.id)
    assert (job.status, job.status_reason) == ("complete", "stop policy on_execute 1: 1 run in all")
    assert (tmp_path / "dest/out/a.pdf").read_bytes() == b"a"


async def test_the_stop_policy_is_the_stored_one_when_a_run_ends(engine) -> None:
    """A scheduler may hold a job's record from before an edit: the policy applied at the end
    of the run, and the runs it counts, are those of the job as now stored."""
    home, state, _ = engine
    job, _ = await create_job(state, engine_job())
    assert (await runner.run_job(state, home, job)).status == "completed"
    stale = job
    [job] = await state.find_jobs(job.id)
    await state.update_job(job, parse_job(engine_job(stop_policy={"on_execute": 1})),
                           engine_job(stop_policy={"on_execute": 1}),
                           job.source_connection_id, job.destination_connection_id)
    assert (await runner.run_job(state, home, stale)).status == "no_changes"
    [job] = await state.find_jobs(job.id)
    assert (job.status, job.status_reason) == ("complete", "stop policy on_execute 1: 1 run in all")
