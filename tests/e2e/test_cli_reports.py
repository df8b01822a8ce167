"""`dryviq-tui reports list | show` and `jobs items --csv` as a user runs them: categories made
and joined by job files, totals in text, JSON and CSV, errors as one line with exit code 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.core.state_damage import read_only
from tests.e2e.conftest import Cli

pytestmark = pytest.mark.slow


def job_file(tmp_path: Path, name: str, category: dict[str, Any] | None) -> Path:
    job: dict[str, Any] = {"name": name, "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "plans"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "share"}, "target": {"path": f"/{name}"}}}}
    if category is not None:
        job["category"] = category
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(job))
    return path


def test_reports_of_categories_made_and_joined_by_jobs(cli: Cli, tmp_path: Path) -> None:
    plans, share = tmp_path / "plans", tmp_path / "share"
    (plans / "Drawings").mkdir(parents=True)
    (plans / "Drawings" / "A-101.pdf").write_bytes(b"a" * 2000)
    (plans / "bad\udcff.txt").write_bytes(b"x")  # not UTF-8: flagged
    share.mkdir()
    cli("connections", "add", "local", "plans", "--path", plans)
    cli("connections", "add", "local", "share", "--path", share)
    cli("jobs", "create", "--file", job_file(tmp_path, "North", {"name": "Report {Name}"}))
    made = cli.json("reports", "list")
    tower = next(r for r in made if r["name"] == "Report {Name}")  # one, not named per job
    cli("jobs", "create", "--file", job_file(tmp_path, "South", {"id": tower["id"]}))
    cli("jobs", "create", "--file", job_file(tmp_path, "West", None))

    refused = cli("jobs", "create", "--file", job_file(tmp_path, "East", {"id": 42}), check=2)
    assert "category.id: no category with id 42" in refused.stderr
    assert "East" not in {j["name"] for j in cli.json("jobs", "list")}
    for name in ("North", "South", "West"):
        cli("jobs", "run", name, check=4)  # completed with the flagged name

    listed = {r["name"]: r for r in cli.json("reports", "list")}
    assert list(listed) == ["Default", "Report {Name}"]
    assert listed["Report {Name}"] == tower | {"stats": {
        "jobs": 2, "executions": 2, "by_status": {"warn": 2}, "files_moved": 2,
        "bytes_moved": 4000, "flagged": 2, "failed": 0, "api_calls": 0, "rate_limit_waits": 0,
        "rate_limit_wait_seconds": 0.0}}
    assert listed["Default"]["parameters"] == {"job_category_id": -1}
    assert listed["Default"]["stats"]["jobs"] == 1

    text = cli("reports", "list").stdout.splitlines()
    assert text[0].split() == ["ID", "CATEGORY", "JOBS", "RUNS", "FILES", "MOVED", "FLAGGED",
                               "FAILED", "API", "CALLS", "WAITED"]
    assert text[2].split()[:8] == [str(tower["id"]), "Report", "{Name}", "2", "2", "2", "(3.9",
                                   "KiB)"]
    rows = list(csv.DictReader(io.StringIO(cli("reports", "list", "--csv").stdout)))
    assert rows[1] == {"id": str(tower["id"]), "name": "Report {Name}", "jobs": "2",
                       "executions": "2", "files_moved": "2", "bytes_moved": "4000",
                       "flagged": "2", "failed": "0", "api_calls": "0",
                       "rate_limit_waits": "0", "rate_limit_wait_seconds": "0.0"}

    shown = cli.json("reports", "show", "report {name}")  # names as job names compare
    assert shown["id"] == tower["id"] and shown["stats"] == listed["Report {Name}"]["stats"]
    assert [(j["name"], j["last_execution"]["status"]) for j in shown["jobs"]] == [
        ("North", "warn"), ("South", "warn")]
    page = cli("reports", "show", str(tower["id"])).stdout
    assert "files moved       2 (3.9 KiB)" in page and "flagged now       2" in page
    assert "North" in page and "completed, flagged" in page
    per_job = list(csv.DictReader(io.StringIO(cli("reports", "show", "-1", "--csv").stdout)))
    assert [(r["name"], r["executions"], r["bytes_moved"], r["last_status"])
            for r in per_job] == [("West", "1", "2000", "warn")]

    missing = cli("reports", "show", "Nowhere", check=2)
    assert missing.stderr.count("\n") == 1 and "no category named or with id 'Nowhere'" in \
        missing.stderr
    assert cli.json("reports", "show", "Nowhere", check=2)["error"]["code"] == "usage"

    cli("jobs", "update", "South", "--file", job_file(tmp_path, "South", {"name": "Garage"}))
    moved = {r["name"]: r["stats"]["jobs"] for r in cli.json("reports", "list")}
    assert moved == {"Default": 1, "Garage": 1, "Report {Name}": 1}

    items = list(csv.DictReader(io.StringIO(cli("jobs", "items", "North", "--csv").stdout)))
    by_id = {row["id"]: row for row in items}
    drawing = by_id["/Drawings/A-101.pdf"]
    assert (drawing["parent_id"], drawing["source_name"], drawing["source_bytes"],
            drawing["destination_path"], drawing["destination_bytes"], drawing["status"],
            drawing["source_to_destination"]) == (
        "/Drawings", "A-101.pdf", "2000", "/North/Drawings/A-101.pdf", "2000", "success",
        "true")
    assert drawing["transferred_on"].endswith("Z") and drawing["source_hash"] == ""
    flagged = by_id["/bad\\xff.txt"]
    assert flagged["status"] == "remediation" and "not valid UTF-8" in flagged["processing"]
    assert flagged["destination_path"] == flagged["transferred_on"] == ""

    with read_only(cli.home / "state.db"):  # reports only read
        assert cli.json("reports", "show", "Garage")["stats"]["jobs"] == 1
