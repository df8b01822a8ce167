"""The served API against its own OpenAPI document, by schemathesis: a real `dryviq-tui serve`
over a home with sample data (two local connections, a job in a category, one run), every
operation the document holds, every check (no 5xx, responses as the schemas say, documented
status codes and content types, bad input refused, the token required, ...), a bounded number
of examples and a fixed seed so a failure repeats.

The reads of one thing (`GET v1/jobs/{id}`, ...) are given the sample's real ids as examples
(in the test's copy of the document), so their answers of 200 are checked too, not only their
404s. One check is left out:
positive_data_acceptance wants a 2xx for every request the schema allows, and a schema cannot
say that a folder exists or that an id names a connection; such requests get a 400 naming the
field, which the other checks hold to the document."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.api.ids import item_id
from tests.e2e.conftest import Cli, clean_env
from tests.e2e.test_agent import job
from tests.e2e.test_serve import Serving, make_token

pytestmark = pytest.mark.slow

EXAMPLES = 12  # per operation and phase: the whole run stays well under 90 seconds
SEED = 15
PHASES = "examples,coverage,fuzzing,stateful"
# which real id each read of one thing is given as its example, by path
REAL_IDS = (
    (r"^/v1/jobs/\{id\}$", "id", "job"),
    (r"^/v1/transfers/\{job\}/stats$", "job", "job"),
    (r"^/v1/connections/\{id\}(/items)?$", "id", "connection"),
    (r"^/v1/reports/\{id\}", "id", "category"),
    (r"^/v1/transfers/items/\{id\}$", "id", "item"),
)


def sample_ids(sample: Cli) -> dict[str, str]:
    job = sample.json("jobs", "show", "sample")
    connection = next(one for one in sample.json("connections", "list") if one["name"] == "src")
    category = next(one for one in sample.json("reports", "list") if one["name"] == "Drawings")
    return {"job": job["id"], "connection": connection["id"], "category": str(category["id"]),
            "item": item_id(job["id"], "/Drawings")}


def with_real_ids(document: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The document, each GET of one thing given a real id as its example (on the GET alone:
    the same id in a DELETE's example would remove the sample before the reads)."""
    for path, item in document["paths"].items():
        for pattern, name, kind in REAL_IDS:
            if "get" not in item or not re.match(pattern, path):
                continue
            own = item["get"].setdefault("parameters", [])
            found = next((one for one in own if one.get("name") == name), None)
            if found is None:  # declared for the whole path: the GET gets its own copy
                shared = next(one for one in item.get("parameters", ()) if one["name"] == name)
                found = copy.deepcopy(shared)
                own.append(found)
            found["example"] = ids[kind]
    return document


@pytest.fixture
def sample_home(cli: Cli, tmp_path: Path) -> Cli:
    source, destination = tmp_path / "src", tmp_path / "dst"
    (source / "Drawings").mkdir(parents=True)
    destination.mkdir()
    for name in ("A-101.pdf", "A-102.pdf", "Specs.docx"):
        (source / "Drawings" / name).write_bytes(name.encode() * 10)
    cli("connections", "add", "local", "src", "--path", source)
    cli("connections", "add", "local", "dst", "--path", destination)
    sample = json.loads(job("sample", {"mode": "manual"}))
    sample["category"] = {"name": "Drawings"}
    cli("jobs", "create", "--file", "-", input=json.dumps(sample))
    cli("jobs", "run", "sample")
    return cli


def test_the_api_keeps_to_its_document(sample_home: Cli, tmp_path: Path) -> None:
    token = make_token(sample_home, "schemathesis")
    ids = sample_ids(sample_home)
    serving = Serving(sample_home.home)
    try:
        served = httpx.get(f"{serving.url}/v1/openapi.json", timeout=30)
        operations = sum(len(methods) for methods in served.json()["paths"].values())
        # from a file: given the document's URL, schemathesis leaves that one operation out
        document = tmp_path / "openapi.json"
        document.write_text(json.dumps(with_real_ids(served.json(), ids)))
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", str(document),
             "--url", f"{serving.url}/", "--checks", "all", "--phases", PHASES,
             "--exclude-checks", "positive_data_acceptance",
             "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
             "--request-timeout", "20", "--no-color", "--suppress-health-check", "all",
             "-H", f"Authorization: Bearer {token}"],
            capture_output=True, text=True, env=clean_env(), timeout=600, check=False,
            cwd=tmp_path)  # its cache of failures goes there, not into the checkout
    finally:
        out, err = serving.stop()
    assert serving.process.returncode == 0, (out, err)
    assert run.returncode == 0, f"{operations} operations\n{run.stdout[-20000:]}\n{run.stderr}"
    logged = "".join(path.read_text() for path in (sample_home.home / "logs").iterdir())
    assert "Traceback" not in logged, logged  # no handler failed (each logs its stack)
    assert token not in run.stdout + logged
    print(f"schemathesis: {operations} operations checked\n{run.stdout[-3000:]}")
