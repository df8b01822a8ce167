"""The product page's two calls, verbatim, against a real `dryviq-tui serve`: `GET
v1/connections/platforms/procore/new` starts a Procore connection, and `POST v1/jobs` with the
page's job JSON (its connection ids replaced by real ones, local folders here) answers 201 in
DryvIQ's envelope; the job is then started over the API, runs under serve's own scheduler, and
its history is read back over the API."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    DESTINATION_CONNECTION,
    SIMPLE_JOB_JSON,
    SOURCE_CONNECTION,
    Cli,
)
from tests.e2e.test_serve import Serving, make_token

pytestmark = pytest.mark.slow

TIMEOUT = 120  # seconds: only so a run that never ends fails the test instead of hanging


def test_the_product_pages_calls_then_the_job_runs_under_serve(cli: Cli, home: Path,
                                                                tmp_path: Path) -> None:
    source, destination = tmp_path / "share", tmp_path / "copy"
    (source / "sourceDocumentLibrary" / "Drawings").mkdir(parents=True)
    destination.mkdir()
    (source / "sourceDocumentLibrary" / "Drawings" / "A-101.pdf").write_bytes(b"%PDF plan")
    (source / "sourceDocumentLibrary" / "spec.docx").write_bytes(b"spec" * 100)
    cli("connections", "add", "local", "Project share", "--path", source)
    cli("connections", "add", "local", "Archive", "--path", destination)
    ids = {row["name"]: row["id"] for row in cli.json("connections", "list")}
    token = make_token(cli, "product-page")
    body = (SIMPLE_JOB_JSON.replace(SOURCE_CONNECTION, ids["Project share"])
            .replace(DESTINATION_CONNECTION, ids["Archive"]))
    serving = Serving(home)
    try:
        with httpx.Client(base_url=serving.url + "/", timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            # {{url}}v1/connections/platforms/procore/new
            started = client.get("v1/connections/platforms/procore/new")
            assert started.status_code == 200, started.text
            kind = started.json()["type"]
            assert started.json()[kind]["target"].startswith(serving.url + "/")
            # {{url}}v1/jobs with the page's body
            created = client.post("v1/jobs", content=body,
                                  headers={"Content-Type": "application/json"})
            assert created.status_code == 201, created.text
            envelope = created.json()
            assert (envelope["status"], envelope["type"]) == (201, "job")
            job = envelope["job"]
            assert job["name"] == "Simple Job" and job["stop_policy"]["on_execute"] == 25
            assert job["category"]["name"] == "Report {Name}"

            assert client.patch(f"v1/jobs/{job['id']}", params={"start": 1}).status_code == 200
            deadline = time.monotonic() + TIMEOUT
            while True:
                last = client.get("v1/jobs/history", params={"job": job["id"],
                                                             "execution": "last"})
                if last.status_code == 200 and last.json()["job_execution"]["end_time"]:
                    break
                assert time.monotonic() < deadline, last.text
                time.sleep(0.2)
            execution = last.json()["job_execution"]
            assert execution["status"] == "completed", execution
            assert execution["stats"]["destination"]["new"]["files"] == 2
            history = client.get("v1/jobs/history", params={"job": "Simple Job"}).json()
            assert history["meta"]["total_count"] == 1
            assert history["job_executions"][0]["id"] == execution["id"]
            assert client.get(f"v1/jobs/{job['id']}").json()["job"]["execution"]["id"] == (
                execution["id"])
    finally:
        out, err = serving.stop()
    assert serving.process.returncode == 0, err
    assert (destination / "destinationFolder" / "Drawings" / "A-101.pdf").read_bytes() == (
        b"%PDF plan")
    assert token not in out + err
