"""`jobs history`, `jobs items` and `jobs run`'s summary say what each run changed on each side,
its conflicts, and why the delete guard stopped one and what proceeds (issue 12, item 6).
Executions and items are recorded in a real state, not run: the engine is not needed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from core.cli import jobs as cli_jobs
from core.cli import main
from core.cli.jobs import run_summary
from core.connections import add_local
from core.engine.runner import RunResult
from core.engine.stats import ExecutionStats
from core.home import Home
from core.job_store import create_job
from core.state import ItemRecord, State

GUARD = "would delete 40 of 50 files (80%) at the destination, more than max_delete 50%"
SYNC = {"transferred": 6, "bytes": 5_000, "added_destination": 3, "updated_destination": 1,
        "updated_source": 2, "deleted_source": 1, "conflicts": 1, "flagged": 1}


def job_text(name: str, transfer_type: str) -> str:
    return json.dumps({"name": name, "transfer": {
        "transfer_type": transfer_type,
        "source": {"connection": {"id": "plans"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "share"}, "target": {"path": "/"}}}})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A sync job with a completed run and a guarded one, and items of every new action."""
    root = tmp_path / "home"

    async def build() -> None:
        home = Home(root)
        home.ensure()
        state = await State.open(home.state_path)
        for name in ("plans", "share"):
            (tmp_path / name).mkdir()
            await add_local(state, name, str(tmp_path / name))
        job, _ = await create_job(state, job_text("Tower A", "sync"))
        for status, stats, agent in (("completed", SYNC, None),
                                     ("guarded", {"delete_guard": GUARD}, "host:42")):
            execution = await state.start_execution(job.id, agent=agent)
            await state.update_execution(execution.id, status=status, phase="complete",
                                         ended_at=time.time(), stats=stats)
        base: dict[str, Any] = dict(job_id=job.id, parent="", is_dir=False, size=3, mtime=None,
                                    status="success", execution_id=execution.id)
        await state.save_items([ItemRecord(path=f"{action}.pdf", action=action, **base)
                                for action in ("delete_source", "keep_both", "create_source",
                                               "update_source", "delete", "move",
                                               "conflict_source")]
                               + [ItemRecord(path="versions.pdf", action="update",
                                             source_versions=3, **base)])
        await state.close()

    asyncio.run(build())
    return root


def cli(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--home", str(home), *args])
    return code, capsys.readouterr().out


def test_history_shows_each_sides_changes_in_80_columns(home: Path, capsys) -> None:
    code, out = cli(home, capsys, "jobs", "history", "Tower A")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "STARTED", "STATUS", "CHANGES", "PROBLEMS", "BYTES"]
    guarded, completed = lines[1], lines[2]
    assert "stopped by the delete guard" in guarded and "—" in guarded
    assert "↑+3 ~1 ↓~2 -1 ⚡1  1 flagged  4.9 KiB" in completed
    # 80 columns but for the longest status label there is (27 characters)
    assert max(map(len, lines)) - len("stopped by the delete guard") + len("completed") <= 80


def test_history_json_and_csv_carry_every_counter(home: Path, capsys) -> None:
    _, out = cli(home, capsys, "jobs", "history", "Tower A", "--json")
    guarded, completed = json.loads(out)
    assert guarded["status"] == "guarded" and guarded["stats"]["delete_guard"] == GUARD
    assert {k: completed["stats"][k] for k in SYNC} == SYNC
    # who started each: by hand, or the agent `host:42` by the job's schedule
    assert (completed["agent"], completed["scheduled"]) == (None, False)
    assert (guarded["agent"], guarded["scheduled"]) == ("host:42", True)
    _, out = cli(home, capsys, "jobs", "history", "Tower A", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [rows[1][k] for k in ("added_destination", "updated_destination",
                                 "deleted_destination", "added_source", "updated_source",
                                 "deleted_source", "conflicts")] == ["3", "1", "0", "0", "2",
                                                                     "1", "1"]


def test_items_say_which_side_an_action_changes(home: Path, capsys) -> None:
    _, out = cli(home, capsys, "jobs", "items", "Tower A")
    actions = {next(w for w in line.split() if w.startswith("/")): line
               for line in out.splitlines()[1:]}
    assert "delete at source" in actions["/delete_source.pdf"]
    assert "create at source" in actions["/create_source.pdf"]
    assert "update at source" in actions["/update_source.pdf"]
    assert "keep both (conflict)" in actions["/keep_both.pdf"]
    assert "conflict, both kept at source" in actions["/conflict_source.pdf"]
    assert " delete " in actions["/delete.pdf"] and " move " in actions["/move.pdf"]
    assert " update, 3 versions " in actions["/versions.pdf"]
    _, out = cli(home, capsys, "jobs", "items", "Tower A", "--csv")  # scripts get the codes
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(out))}
    assert (rows["/delete_source.pdf"]["action"], rows["/keep_both.pdf"]["action"]) == (
        "delete_source", "keep_both")
    assert (rows["/versions.pdf"]["action"], rows["/versions.pdf"]["versions"]) == ("update",
                                                                                    "3")
    _, out = cli(home, capsys, "jobs", "items", "Tower A", "--json")
    assert {i["path"]: i["source_versions"] for i in json.loads(out)}["/versions.pdf"] == 3


def test_a_guarded_run_says_why_and_what_proceeds(home: Path, capsys,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    forced: list[bool] = []

    async def guarded(*_: Any, force: bool = False, **__: Any) -> RunResult:
        forced.append(force)
        return RunResult(3, "guarded", ExecutionStats(delete_guard=GUARD))

    monkeypatch.setattr(cli_jobs, "run_job", guarded)
    code, out = cli(home, capsys, "jobs", "run", "Tower A")
    assert (code, forced) == (1, [False])
    assert out.startswith(f"stopped by the delete guard: {GUARD}\n")
    assert f"`dryviq-tui --home {home} jobs run --force 'Tower A'` proceeds" in out
    cli(home, capsys, "jobs", "run", "--force", "Tower A")
    assert forced == [False, True]


def test_a_sync_summary_says_each_side_and_a_copy_stays_one_line() -> None:
    stats = ExecutionStats(**SYNC)
    text = run_summary(RunResult(1, "completed", stats), "`again`", None, transfer_type="sync")
    assert text.splitlines()[1:] == ["↑ to destination: 3 added, 1 updated, 0 deleted",
                                     "↓ to source: 0 added, 2 updated, 1 deleted",
                                     "1 conflict"]
    copied = ExecutionStats(transferred=2, added_destination=2)
    assert "\n" not in run_summary(RunResult(1, "completed", copied), "`again`", None)
    published = ExecutionStats(transferred=1, added_destination=1, deleted_destination=4)
    assert run_summary(RunResult(1, "completed", published), "`again`", None,
                       transfer_type="publish").splitlines()[1:] == [
        "↑ to destination: 1 added, 0 updated, 4 deleted"]
