"""A damaged state file (pages zeroed mid-file) or a read-only one: one clear message and no
execution made; `doctor` finds the damage and `doctor --repair` backs the file up, rebuilds what
reads and says what was lost; read-only commands work on a read-only state file."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

# imported now: its ProgressReporter keeps the stderr of import time, which must outlive capsys
import core.cli.output  # noqa: F401
from core.cli import main
from core.state import MIGRATIONS, State, StateBusy, exclusive_state_lock
from tests.core.state_damage import pages_of, read_only, zero_pages
from tests.e2e.conftest import DESTINATION_CONNECTION, SIMPLE_JOB_JSON, SOURCE_CONNECTION

JOB = "Simple Job"
FILES = 200


def cli(home: Path, *args: str | os.PathLike[str]) -> int:
    return main(["--home", str(home), *map(str, args)])


@pytest.fixture
def home(tmp_path: Path, capsys) -> Path:
    """A home whose job has run once, copying FILES files (so `items` spans many pages)."""
    home, source = tmp_path / "home", tmp_path / "source" / "sourceDocumentLibrary"
    (source / "a").mkdir(parents=True)
    for number in range(FILES):
        (source / "a" / f"file-{number:03}.txt").write_text(str(number))
    (tmp_path / "destination").mkdir()
    (tmp_path / "job.json").write_text(SIMPLE_JOB_JSON)
    home.mkdir()
    assert cli(home, "connections", "add", "local", SOURCE_CONNECTION, "--path",
               tmp_path / "source") == 0
    assert cli(home, "connections", "add", "local", DESTINATION_CONNECTION, "--path",
               tmp_path / "destination") == 0
    assert cli(home, "jobs", "create", "--file", tmp_path / "job.json") == 0
    assert cli(home, "jobs", "run", JOB) == 0
    capsys.readouterr()
    return home


def count_items(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM items").fetchone()[0]
    finally:
        db.close()


def executions(path: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT id, status FROM executions ORDER BY id").fetchall()
    finally:
        db.close()


def test_a_damaged_state_stops_a_run_with_one_message_and_no_execution(home: Path,
                                                                       capsys) -> None:
    state = home / "state.db"
    leaves = pages_of(state, "items")
    middle = len(leaves) // 2
    zero_pages(state, [leaves[middle - 2][0], leaves[middle + 1][0]])
    for _ in range(2):
        assert cli(home, "jobs", "run", JOB) == 1
        err = capsys.readouterr().err
        assert err.count("dryviq-tui: error:") == 1 and "Traceback" not in err
        assert f"the state file {state} is damaged" in err
        assert "dryviq-tui doctor --repair" in err
    assert executions(state) == [(1, "completed")]  # no "interrupted" left at each attempt

    assert cli(home, "jobs", "run", JOB, "--json") == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "state_damaged" and error["path"] == str(state)


def test_doctor_finds_the_damage_and_repair_keeps_what_reads(home: Path, capsys) -> None:
    state = home / "state.db"
    assert cli(home, "doctor") == 0
    assert "sound" in capsys.readouterr().out
    total = count_items(state)
    leaves = pages_of(state, "items")
    middle = len(leaves) // 2
    zeroed = [leaves[middle - 2], leaves[middle + 1]]  # two apart: reading from either end
    zero_pages(state, [page for page, _ in zeroed])    # stops short of the rows between them
    on_zeroed_pages = sum(rows for _, rows in zeroed)

    assert cli(home, "doctor") == 1
    out = capsys.readouterr().out
    assert f"{state}: damaged" in out and "doctor --repair" in out

    assert cli(home, "doctor", "--repair", "--json") == 0
    report = json.loads(capsys.readouterr().out)["repair"]
    backups = [Path(b) for b in report["backups"]]
    assert backups and backups[0].name.startswith("state.db.corrupt-")
    assert backups[0].stat().st_mode & 0o077 == 0
    items = next(t for t in report["tables"] if t["table"] == "items")
    assert items["recovered"] + items["lost"] == total
    # the rows between the zeroed pages came back through the indexes' keys; a lookup of a key
    # at a zeroed page's edge may pass through it and fail
    assert total - on_zeroed_pages - len(zeroed) <= items["recovered"] <= total - on_zeroed_pages
    assert report["lossless"] is False

    assert cli(home, "doctor") == 0
    assert "sound" in capsys.readouterr().out
    assert executions(state) == [(1, "completed")]
    assert cli(home, "jobs", "run", JOB, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "no_changes"  # the lost records are checked again, not recopied


def test_repair_says_in_words_what_was_lost(home: Path, capsys) -> None:
    state = home / "state.db"
    leaves = pages_of(state, "items")
    zero_pages(state, [leaves[len(leaves) // 2][0]])
    assert cli(home, "doctor", "--repair") == 0
    out = capsys.readouterr().out
    assert f"backed up as {state}.corrupt-" in out
    assert "items: " in out and "lost" in out and "the next run checks those files again" in out
    assert "connections: 2 rows kept" in out and "jobs: 1 row kept" in out


def test_a_damaged_index_is_rebuilt_with_nothing_lost(home: Path, capsys) -> None:
    state = home / "state.db"
    zero_pages(state, [pages_of(state, "items_by_status")[0][0]])
    assert cli(home, "doctor") == 1
    assert cli(home, "doctor", "--repair") == 0
    assert "Nothing was lost." in capsys.readouterr().out
    assert count_items(state) == FILES + 1  # and their folder


def test_a_file_that_does_not_read_at_all_is_replaced_by_an_empty_one(home: Path,
                                                                      capsys) -> None:
    state = home / "state.db"
    zero_pages(state, [1])
    assert cli(home, "jobs", "list") == 1
    assert "is damaged" in capsys.readouterr().err
    assert cli(home, "doctor", "--repair") == 0
    assert "add your connections and create your jobs again" in capsys.readouterr().out
    assert cli(home, "jobs", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize("command", [
    ["jobs", "list"], ["jobs", "show", JOB], ["jobs", "history", JOB], ["jobs", "items", JOB],
    ["connections", "list"], ["connections", "show", SOURCE_CONNECTION], ["doctor"],
])
def test_read_only_commands_work_on_a_read_only_state(home: Path, command: list[str],
                                                      capsys) -> None:
    with read_only(home / "state.db"):
        assert cli(home, *command, "--json") == 0, capsys.readouterr()
    assert "error" not in json.loads(capsys.readouterr().out)


def test_read_only_commands_work_in_a_read_only_home(home: Path, capsys) -> None:
    with read_only(home):
        assert cli(home, "jobs", "history", JOB, "--json") == 0
        assert [e["status"] for e in json.loads(capsys.readouterr().out)] == ["completed"]
        assert cli(home, "doctor") == 0
        assert "sound" in capsys.readouterr().out
        assert cli(home, "jobs", "run", JOB) == 1
        assert "is read-only and dryviq-tui jobs run needs to write it" in \
            capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["jobs", "run", JOB], ["ls", SOURCE_CONNECTION], ["jobs", "remove", JOB],
    ["connections", "add", "local", "more", "--path", "/tmp"],
])
def test_commands_that_write_say_the_state_is_read_only(home: Path, command: list[str],
                                                        capsys) -> None:
    state = home / "state.db"
    with read_only(state):
        assert cli(home, *command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"the state file {state} is read-only and dryviq-tui {command[0]}" in err
        assert f"chmod u+w {state}" in err
    assert executions(state) == [(1, "completed")]


def damage_items(state: Path) -> None:
    leaves = pages_of(state, "items")
    zero_pages(state, [leaves[len(leaves) // 2][0]])


def files_of(home: Path) -> dict[str, bytes]:
    """The home's files and their bytes, but for what any reader of a WAL file may make or
    change: its shared-memory index and an empty log."""
    return {path.name: path.read_bytes() for path in home.iterdir() if path.is_file()
            and not path.name.endswith("-shm") and not (path.name.endswith("-wal")
                                                       and not path.stat().st_size)}


async def test_repair_refuses_while_another_process_has_the_state_open(home: Path,
                                                                       capsys) -> None:
    state = home / "state.db"
    damage_items(state)
    before = files_of(home)
    holder = await State.open(state)  # the app, or a `jobs run` between check and swap
    try:
        assert await asyncio.to_thread(cli, home, "doctor", "--repair") == 1
        err = capsys.readouterr().err
        assert "close the app and stop running jobs first: 1 process has the state file" in err
        assert f"(pid {os.getpid()})" in err and "nothing was changed" in err
        assert files_of(home) == before  # no backup, no rebuilt file
        assert await asyncio.to_thread(cli, home, "doctor") == 1  # the check needs no lock
    finally:
        await holder.close()
    assert await asyncio.to_thread(cli, home, "doctor", "--repair") == 0
    assert "backed up as" in capsys.readouterr().out


async def test_nothing_opens_the_state_while_a_repair_holds_it(home: Path) -> None:
    with exclusive_state_lock(home / "state.db"), pytest.raises(
            StateBusy, match="doctor --repair` is rebuilding the state file"):
        await State.open(home / "state.db")


def crash_with_a_wal(home: Path) -> None:
    """Leave home/state.db with committed rows only in its WAL, as a killed process does."""
    elsewhere = home.parent / "copy"
    elsewhere.mkdir()
    writer = sqlite3.connect(home / "state.db")
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("DELETE FROM audit_events")  # sure to be in the WAL only
        writer.commit()
        for end in ("", "-wal", "-shm"):
            shutil.copy(home / f"state.db{end}", elsewhere / f"state.db{end}")
    finally:
        writer.close()
    for end in ("", "-wal", "-shm"):
        shutil.copy(elsewhere / f"state.db{end}", home / f"state.db{end}")


def test_the_check_leaves_the_file_and_its_wal_as_they_were(home: Path, capsys) -> None:
    damage_items(home / "state.db")
    crash_with_a_wal(home)
    before = files_of(home)
    assert before["state.db-wal"]
    assert cli(home, "doctor") == 1
    capsys.readouterr()
    assert files_of(home) == before  # nothing checkpointed into the damaged file
    assert cli(home, "doctor", "--repair", "--json") == 0
    backups = [Path(b) for b in json.loads(capsys.readouterr().out)["repair"]["backups"]]
    assert [b.name.rsplit("-", 1)[-1] for b in backups[1:]] == ["wal", "shm"]
    for backup in backups[:2]:  # (readers write their marks in the shared-memory index)
        original = "state.db" + backup.name.removeprefix(backups[0].name)
        assert backup.read_bytes() == before[original], original


def test_repair_refuses_a_state_from_a_newer_version(home: Path, capsys) -> None:
    state = home / "state.db"
    db = sqlite3.connect(state)
    try:
        db.executescript(f"CREATE TABLE future (x); PRAGMA user_version = {len(MIGRATIONS) + 1};")
    finally:
        db.close()
    damage_items(state)
    before = files_of(home)
    assert cli(home, "doctor", "--repair") == 2
    err = capsys.readouterr().err
    assert f"written by a newer dryviq-tui (schema {len(MIGRATIONS) + 1}" in err
    assert "Nothing was changed" in err
    assert files_of(home) == before
