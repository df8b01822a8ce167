"""Two `dryviq-tui agent` processes, each on its own home, sharing one PostgreSQL state: every
due job runs once, on whichever agent claimed its lease, and never on both."""

from __future__ import annotations

import itertools
import json
import socket
from pathlib import Path

import psycopg
import pytest

from tests.core.test_leases import SQLITE_SQL
from tests.e2e.conftest import Cli
from tests.e2e.test_agent import start_agent, stop, wait_for

pytestmark = [pytest.mark.slow, SQLITE_SQL]

JOBS = 8


def copy_job(n: int) -> str:
    return json.dumps({"name": f"job{n}", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "src"}, "target": {"path": f"/job{n}"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": f"/job{n}"}}},
        "schedule": {"mode": "auto"}})


def executions(url: str) -> list[tuple[str, str, str, float, float]]:
    """(job name, agent, status, started_at, ended_at) of every execution, oldest first."""
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT j.name, e.agent, e.status, e.started_at, COALESCE(e.ended_at, 0) "
            "FROM executions e JOIN jobs j ON j.id = e.job_id ORDER BY e.id").fetchall()


def test_two_agents_on_one_postgresql_run_each_due_job_once(postgres_url: str,
                                                             tmp_path: Path) -> None:
    homes = [tmp_path / "host-a", tmp_path / "host-b"]
    for home in homes:
        home.mkdir(mode=0o700)
        (home / "config.toml").write_text(f'[state]\nurl = "{postgres_url}"\n'
                                          "[agent]\nmax_jobs = 4\n")
        (home / "config.toml").chmod(0o600)
    source, destination = tmp_path / "source", tmp_path / "destination"
    destination.mkdir()
    for n in range(JOBS):
        (source / f"job{n}").mkdir(parents=True)
        for i in range(5):
            (source / f"job{n}" / f"sheet{i}.pdf").write_bytes(b"job %d sheet %d" % (n, i))
    cli = Cli(homes[0])
    cli("connections", "add", "local", "src", "--path", source)
    cli("connections", "add", "local", "dst", "--path", destination)
    for n in range(JOBS):
        cli("jobs", "create", "--file", "-", input=copy_job(n))

    agents = [start_agent(home) for home in homes]
    try:
        wait_for(lambda: sum(status != "running" for _, _, status, _, _ in
                             executions(postgres_url)) >= JOBS, "every job's run")
    finally:
        for agent in agents:
            stop(agent)

    history = executions(postgres_url)
    for n in range(JOBS):  # never two runs of one job at once
        runs = sorted((start, end) for name, _, _, start, end in history if name == f"job{n}")
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(runs))
    assert sorted(name for name, *_ in history) == [f"job{n}" for n in range(JOBS)]
    assert {status for _, _, status, _, _ in history} == {"completed"}
    ids = {f"{socket.gethostname()}:{agent.pid}" for agent in agents}
    assert {agent for _, agent, *_ in history} <= ids
    for n in range(JOBS):
        copied = sorted(p.name for p in (destination / f"job{n}").iterdir())
        assert copied == [f"sheet{i}.pdf" for i in range(5)]
