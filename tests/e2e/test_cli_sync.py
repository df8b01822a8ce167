"""A two-way sync through the real `dryviq-tui` command: the delete guard's exit code and
message, and `--force`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.slow


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and ".dryviq-trash" not in p.parts}


def test_emptying_one_side_stops_the_next_sync_until_forced(cli: Cli, tmp_path: Path) -> None:
    office, site = tmp_path / "office", tmp_path / "site"
    office.mkdir()
    site.mkdir()
    for n in range(6):
        (office / f"drawing-{n}.pdf").write_bytes(b"%d" % n)
    cli("connections", "add", "local", "office", "--path", office)
    cli("connections", "add", "local", "site", "--path", site)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"name": "office-site", "transfer": {
        "source": {"connection": {"id": "office"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "site"}, "target": {"path": "/"}}}}))
    cli("jobs", "create", "--file", job)  # no transfer_type: a two-way sync
    cli("jobs", "run", "office-site", "-q")
    assert files(site) == files(office)
    for p in site.iterdir():
        p.unlink()  # the share came back empty

    stopped = cli("jobs", "run", "office-site", check=1)
    said = stopped.stdout + stopped.stderr
    assert "delete guard" in said and "--force" in said, said
    assert len(files(office)) == 6  # nothing deleted
    history = cli.json("jobs", "history", "office-site")
    assert history[0]["status"] == "guarded"

    cli("jobs", "run", "office-site", "--force", "-q")
    assert files(office) == files(site) == set()
    assert len(list((office / ".dryviq-trash").rglob("*.pdf"))) == 6
