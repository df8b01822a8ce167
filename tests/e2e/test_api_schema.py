"""The served API against its own OpenAPI document, by schemathesis: a real `dryviq-tui serve`
over a home with sample data (two local connections, a job, one run), every operation the
document holds, every check (no 5xx, responses as the schemas say, documented status codes
and content types, bad input refused, the token required, ...), a bounded number of examples
and a fixed seed so a failure repeats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cli, clean_env
from tests.e2e.test_agent import job
from tests.e2e.test_serve import Serving, make_token

pytestmark = pytest.mark.slow

EXAMPLES = 12  # per operation and phase: the whole run stays well under 90 seconds
SEED = 15
PHASES = "examples,coverage,fuzzing,stateful"


@pytest.fixture
def sample_home(cli: Cli, tmp_path: Path) -> Cli:
    source, destination = tmp_path / "src", tmp_path / "dst"
    (source / "Drawings").mkdir(parents=True)
    destination.mkdir()
    for name in ("A-101.pdf", "A-102.pdf", "Specs.docx"):
        (source / "Drawings" / name).write_bytes(name.encode() * 10)
    cli("connections", "add", "local", "src", "--path", source)
    cli("connections", "add", "local", "dst", "--path", destination)
    cli("jobs", "create", "--file", "-", input=job("sample", {"mode": "manual"}))
    cli("jobs", "run", "sample")
    return cli


def test_the_api_keeps_to_its_document(sample_home: Cli, tmp_path: Path) -> None:
    token = make_token(sample_home, "schemathesis")
    serving = Serving(sample_home.home)
    try:
        served = httpx.get(f"{serving.url}/v1/openapi.json", timeout=30)
        operations = sum(len(methods) for methods in served.json()["paths"].values())
        # from a file: given the document's URL, schemathesis leaves that one operation out
        document = tmp_path / "openapi.json"
        document.write_bytes(served.content)
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", str(document),
             "--url", f"{serving.url}/", "--checks", "all", "--phases", PHASES,
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
