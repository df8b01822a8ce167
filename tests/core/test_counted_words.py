"""Counts in messages read as English ("1 job is", "2 jobs are"), never "job(s)"."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import connections  # its test_connection is not a test
from core.cli import main
from core.connections import add_local, removal_refusal
from core.home import Home
from core.job_store import create_job
from core.state import State
from tests.tui.conftest import job_json
from tui.screens.quit import quit_question


@pytest.fixture
async def state(tmp_path: Path):
    state = await State.open(tmp_path / "state.db")
    for name in ("plans", "share"):
        (tmp_path / name).mkdir()
        await add_local(state, name, str(tmp_path / name))
    yield state
    await state.close()


async def test_a_connection_test_counts_what_it_found(state: State, tmp_path: Path) -> None:
    (tmp_path / "plans" / "A-101.pdf").write_bytes(b"%PDF")
    home = Home.resolve(str(tmp_path / "home"))
    home.ensure()
    message = await connections.test_connection(state, home, await state.find_connection("plans"))
    assert message.endswith("(1 item at the top)")


async def test_a_removal_refusal_names_the_jobs_in_english(state: State) -> None:
    plans = await state.find_connection("plans")
    await create_job(state, job_json("Tower A"))
    assert await removal_refusal(state, plans) == (
        "connection 'plans' is used by 1 job: 'Tower A'; remove it first")
    await create_job(state, job_json("Tower B"))
    refusal = await removal_refusal(state, plans)
    assert refusal is not None and refusal.startswith("connection 'plans' is used by 2 jobs: ")
    assert refusal.endswith("; remove them first")


async def test_the_quit_question_counts_the_running_jobs(state: State) -> None:
    one, _ = await create_job(state, job_json("Tower A"))
    two, _ = await create_job(state, job_json("Tower B"))
    assert quit_question([one], background=False)[0] == "Quit while 1 job runs?"
    assert quit_question([one, two], background=False)[0] == "Quit while 2 jobs run?"


def test_doctor_repair_says_how_many_jobs_run(tmp_path: Path, capsys) -> None:
    home = Home.resolve(str(tmp_path / "home"))
    home.ensure()
    home.state_path.write_bytes(b"not a database at all" * 300)
    with home.job_lock("0123"):
        assert main(["--home", str(home.root), "doctor", "--repair"]) == 2
    assert "error: 1 job is running on this home; stop it (and the app) before repairing" in \
        capsys.readouterr().err
