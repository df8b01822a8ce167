"""The real `dryviq-tui` with a home it cannot use: one line naming it, exit 2, no traceback,
as plain text and as JSON; and the app says the same before it takes the terminal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import TIMEOUT, clean_env, describe, dryviq_command

pytestmark = pytest.mark.slow


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*dryviq_command(), *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env or clean_env(), stdin=subprocess.DEVNULL)


def test_a_file_as_home_is_one_line_for_a_command_and_the_app(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("")
    for args in (["jobs", "list"], [], ["demo"]):
        proc = run("--home", str(home), *args)
        assert proc.returncode == 2, describe(proc)
        assert proc.stderr == f"dryviq-tui: error: {home}: is a file, not a folder\n", \
            describe(proc)
        assert proc.stdout == ""
    proc = run("jobs", "history", "x", "--json", env=clean_env(DRYVIQ_HOME=str(home / "x")))
    assert proc.returncode == 2, describe(proc)
    assert json.loads(proc.stdout)["error"] == {
        "code": "home", "path": str(home / "x"),
        "message": f"{home / 'x'}: {home} is not a folder"}
