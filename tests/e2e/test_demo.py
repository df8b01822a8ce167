"""`dryviq-tui demo --headless`: the README's first command, over the embedded sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.demo import DEMO_JOB
from core.sandbox import DEMO_PROJECT, demo_world
from tests.e2e.conftest import Cli

pytestmark = pytest.mark.slow


def test_the_demo_copies_the_sample_project_pausing_for_the_rate_limit(cli: Cli) -> None:
    done = cli("demo", "--headless")
    assert "completed: 55 files" in done.stdout
    assert "paused until" in done.stderr  # the small budget ran out and the job went on
    copy = cli.home / "Office Share" / "Projects" / "Riverside Medical Center"
    world = demo_world()
    project = next(p.id for p in world.projects.values() if p.name == DEMO_PROJECT)
    expected = {path: content for path, content in world.tree(project).items()}
    found = {str(p.relative_to(copy)): (None if p.is_dir() else p.read_bytes())
             for p in copy.rglob("*")}
    assert found == expected
    items = cli.json("jobs", "items", DEMO_JOB["name"])
    assert items and all(item["status"] == "success" for item in items)
    assert Path(cli.home, "state.db").stat().st_mode & 0o777 == 0o600
