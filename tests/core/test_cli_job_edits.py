"""`jobs update`, `jobs duplicate` and `jobs remove`: what the app's e, y and Delete keys do, on
the command line too, with the same rules (a running job is left alone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main
from core.home import Home
from tests.tui.conftest import job_json


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    home = tmp_path / "home"
    for name in ("plans", "share"):
        (tmp_path / name).mkdir()
        assert main(["--home", str(home), "connections", "add", "local", name,
                     "--path", str(tmp_path / name)]) == 0
    (tmp_path / "job.json").write_text(job_json("Tower A"))
    assert main(["--home", str(home), "jobs", "create", "--file",
                 str(tmp_path / "job.json")]) == 0
    capsys.readouterr()
    return home


def jobs(home: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    assert main(["--home", str(home), "jobs", "list", "--json"]) == 0
    return {job["name"]: job for job in json.loads(capsys.readouterr().out)}


def test_update_keeps_the_id_and_refuses_a_taken_name(home, tmp_path, capsys) -> None:
    [before] = jobs(home, capsys).values()
    (tmp_path / "v2.json").write_text(job_json("Tower A v2", parallel=8))
    assert main(["--home", str(home), "jobs", "update", "Tower A", "--file",
                 str(tmp_path / "v2.json")]) == 0
    assert f"Updated job Tower A v2 ({before['id']})" in capsys.readouterr().out
    assert main(["--home", str(home), "jobs", "duplicate", "Tower A v2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "Tower A v2 (copy)"
    (tmp_path / "clash.json").write_text(job_json("tower a v2 (COPY)"))
    assert main(["--home", str(home), "jobs", "update", "Tower A v2", "--file",
                 str(tmp_path / "clash.json")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert set(jobs(home, capsys)) == {"Tower A v2", "Tower A v2 (copy)"}


def test_a_running_job_is_neither_updated_nor_removed(home, tmp_path, capsys) -> None:
    [job] = jobs(home, capsys).values()
    (tmp_path / "v2.json").write_text(job_json("Tower A v2"))
    with Home(home).job_lock(job["id"]):  # as a run in another process holds it
        assert main(["--home", str(home), "jobs", "update", job["id"], "--file",
                     str(tmp_path / "v2.json")]) == 2
        assert main(["--home", str(home), "jobs", "remove", job["id"]]) == 2
    assert capsys.readouterr().err.count("is running; stop it first") == 2
    assert set(jobs(home, capsys)) == {"Tower A"}
    assert main(["--home", str(home), "jobs", "remove", "Tower A"]) == 0
    assert capsys.readouterr().out == "Removed job Tower A\n"
    assert jobs(home, capsys) == {}
