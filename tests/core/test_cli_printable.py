"""`jobs create` and `jobs remove` print job names and warnings with their control characters
escaped: a name stored by an older version, or a key in a job file, can hold an escape
sequence that would otherwise reach the terminal as is."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from core.cli import main
from tests.e2e.conftest import DESTINATION_CONNECTION, SIMPLE_JOB_JSON, SOURCE_CONNECTION

EVIL = "\x1b]0;PWNED\x1b\\"


def cli(home: Path, *args: str | Path) -> int:
    return main(["--home", str(home), *map(str, args)])


def test_created_and_removed_job_lines_and_warnings_are_printable(tmp_path: Path,
                                                                  capsys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for name in (SOURCE_CONNECTION, DESTINATION_CONNECTION):
        (tmp_path / name).mkdir()
        assert cli(home, "connections", "add", "local", name, "--path", tmp_path / name) == 0
    document = json.loads(SIMPLE_JOB_JSON) | {f"odd{EVIL}key": 1}
    (tmp_path / "job.json").write_text(json.dumps(document))
    capsys.readouterr()
    assert cli(home, "jobs", "create", "--file", tmp_path / "job.json") == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err
    assert "warning: " in err and "odd\\x1b]0;PWNED" in err
    with sqlite3.connect(home / "state.db") as db:  # as an older version could store it
        (job_id,) = db.execute("SELECT id FROM jobs").fetchone()
        db.execute("UPDATE jobs SET name = ?", (f"Job {EVIL}",))
    db.close()
    assert cli(home, "jobs", "remove", job_id) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err
    assert "Removed job Job \\x1b]0;PWNED\\x1b\\" in out
