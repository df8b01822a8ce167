"""`dryviq-tui agent` as real processes: one agent per home (a second is refused, a standby
takes over when the first ends), each scheduled execution run by exactly one of them, and
SIGTERM mid-job leaving the run interrupted and resumable."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, assert_same_tree, clean_env, dryviq_command, part_files

pytestmark = pytest.mark.slow


def job(name: str, schedule: dict[str, object], parallel: int = 4) -> str:
    return json.dumps({"name": name, "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": "/copy"}},
        "performance": {"parallel_writes": {"requested": parallel}}}, "schedule": schedule})


def start_agent(home: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*dryviq_command(), "--home", str(home), "agent", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env())


def executions(home: Path) -> list[tuple[str, int, float, float, str]]:
    """(agent, scheduled, started_at, ended_at, status) of every execution, oldest first."""
    with sqlite3.connect(home / "state.db") as db:
        return db.execute("SELECT agent, scheduled, started_at, COALESCE(ended_at, 0), status "
                          "FROM executions ORDER BY id").fetchall()


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop(agent: subprocess.Popen[str]) -> tuple[str, str]:
    agent.send_signal(signal.SIGTERM)
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, (out, err)
    return out, err


@pytest.fixture
def folders(cli: Cli, tmp_path: Path) -> tuple[Path, Path]:
    source, destination = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    destination.mkdir()
    cli("connections", "add", "local", "src", "--path", source)
    cli("connections", "add", "local", "dst", "--path", destination)
    return source, destination


def test_one_agent_per_home_runs_each_execution_and_a_standby_takes_over(cli, folders):
    source, _ = folders
    for i in range(5):
        (source / f"sheet{i}.pdf").write_bytes(b"sheet %d" % i)
    # jobs one at a time, each run once: a job repeats a minute apart at most
    config = cli.home / "config.toml"
    config.write_text("[agent]\nmax_jobs = 1\n")
    config.chmod(0o600)
    for n in range(4):
        cli("jobs", "create", "--file", "-", input=job(f"often{n}", {"mode": "auto"}))
    first = start_agent(cli.home)
    try:
        wait_for(lambda: len(executions(cli.home)) >= 1, "the first agent's first run")
        second = cli("agent", check=1)
        assert f"pid {first.pid} on " in second.stderr
        assert "already runs the schedules" in second.stderr and "--standby" in second.stderr
        standby = start_agent(cli.home, "--standby")
        try:
            assert standby.stdout is not None
            waiting = standby.stdout.readline()  # it says so once it knows who holds the home
            assert "standing by" in waiting and f"pid {first.pid}" in waiting
            wait_for(lambda: len(executions(cli.home)) >= 3, "more runs by the first agent")
            out, _ = stop(first)
            assert "started often0 (by its schedule)" in out and "agent stopped" in out
            ran_first = len(executions(cli.home))
            for n in range(4, 6):  # new jobs, due at once: the standby runs them
                cli("jobs", "create", "--file", "-", input=job(f"often{n}", {"mode": "auto"}))
            wait_for(lambda: len(executions(cli.home)) >= ran_first + 2, "the standby's runs")
        finally:
            out, _ = stop(standby)
        assert f"agent {socket.gethostname()}:{standby.pid} runs the schedules" in out
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    history = executions(cli.home)
    agents = [agent for agent, *_ in history]
    assert {agent.rpartition(":")[2] for agent in agents} == {str(first.pid), str(standby.pid)}
    assert agents == sorted(agents, key=lambda a: a.endswith(f":{standby.pid}"))
    assert all(scheduled == 1 for _, scheduled, *_ in history)
    for before, after in itertools.pairwise(history):  # never two at once
        assert after[2] >= before[3]
    assert history[0][4] == "completed"
    with sqlite3.connect(cli.home / "state.db") as db:
        assert db.execute("SELECT COUNT(*) FROM agents").fetchone() == (0,)


def test_sigterm_mid_job_leaves_it_resumable_and_the_next_run_sends_only_the_rest(
        cli, folders):
    source, destination = folders
    for folder in range(4):
        (source / f"f{folder}").mkdir()
        for i in range(100):
            (source / f"f{folder}" / f"doc{i}.bin").write_bytes(os.urandom(64 * 1024))
    cli("jobs", "create", "--file", "-", input=job("big", {"mode": "auto"}, parallel=1))
    agent = start_agent(cli.home)
    copied = destination / "copy"
    wait_for(lambda: len(list(copied.rglob("*.bin"))) >= 20, "the run to be under way")
    out, err = stop(agent)
    assert "stopping: no new runs" in out
    assert "finished big: interrupted, resumable" in out, (out, err)
    arrived = list(copied.rglob("*.bin"))
    assert 20 <= len(arrived) < 400, "the signal should land mid-run"
    assert part_files(destination) == []
    assert [e["status"] for e in cli.json("jobs", "history", "big")] == ["interrupted"]
    resumed = cli.json("jobs", "run", "big")
    assert resumed["status"] == "completed"
    assert resumed["stats"]["transferred"] == 400 - len(arrived)
    assert_same_tree(source, copied)
