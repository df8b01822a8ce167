"""Terminal and spreadsheet injection: names holding control characters never reach a terminal
raw, CSV cells are never read as formulas, and Procore destinations rename such names."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.cli import main
from core.cli.output import table, write_csv
from core.connections import ConnectionInputError, add_local, check_name
from core.connectors import Opening, open_connector
from core.demo import connect_sandbox
from core.engine.runner import run_job
from core.home import Home
from core.job_store import create_job
from core.paths import CONTROL_CHARS
from core.state import State

# What a hostile name carries: an OSC 52 clipboard write, a colour, a title, a fake row
HOSTILE = ("\x1b]52;c;ZWNobyBwd25lZA==\x07", "\x1b[31m", "\x1b]0;title\x07", "\nFAKE ROW",
           "\t", "\u202e", "\x9b", "\u2028")


def raw_controls(text: str) -> set[str]:
    """The control characters in `text` that a terminal would act on (newlines between the
    lines of the output itself aside)."""
    return {c for c in text if c in CONTROL_CHARS and c != "\n"}


def test_a_table_shows_every_control_character_escaped() -> None:
    shown = table([("".join(HOSTILE), 1)], ("NAME", "SIZE"))
    assert raw_controls(shown) == set()
    assert shown.count("\n") == 1  # the header and one row: no row was faked
    assert r"\x1b]52;c;" in shown and r"\u202e" in shown and r"\nFAKE ROW" in shown


@pytest.mark.parametrize("cell, written", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1", "'+1"), ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tcmd", "'\\tcmd"), ("\rcmd", "'\\rcmd"),
    ("plain.pdf", "plain.pdf"), ("a=b", "a=b"), ("\x1b[31mred", "\\x1b[31mred"),
    (-5, "-5"), (3.5, "3.5"), (None, ""),
])
def test_csv_cells_are_never_formulas_or_escape_sequences(cell: object, written: str) -> None:
    out = io.StringIO()
    write_csv([(cell, "x")], ("value", "other"), out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["value", "other"], [written, "x"]]
    assert raw_controls(out.getvalue().replace("\r\n", "")) == set()


@pytest.mark.parametrize("name, fragment", [
    ("a\x1b[31mb", r"\x1b"), ("two\nlines", r"\n"), ("tab\there", r"\t"),
    ("bidi\u202eexe.pdf", r"\u202e"), ("nul\0", r"\x00"), ("x" * 129, "129 characters"),
])
def test_a_connection_name_with_control_characters_or_too_long_is_refused(
        name: str, fragment: str) -> None:
    with pytest.raises(ConnectionInputError, match=r"^connection name: ") as refused:
        check_name(name)
    assert fragment in str(refused.value)
    assert raw_controls(str(refused.value)) == set()


def test_a_connection_name_of_the_maximum_length_is_accepted() -> None:
    assert check_name("x" * 128) == "x" * 128


def test_jobs_show_prints_the_job_file_escaped(tmp_path: Path, capsys) -> None:
    """JSON allows a raw U+202E or C1 control inside a string; `jobs create` refuses them now,
    but a job stored by an earlier version may hold them: shown with its lines, without them."""
    home = ["--home", str(tmp_path / "home")]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        assert main([*home, "connections", "add", "local", name, "--path",
                     str(tmp_path / name)]) == 0
    job = tmp_path / "job.json"
    job.write_text(json.dumps({
        "name": "shown", "description": "PLAIN", "transfer": {
            "source": {"connection": {"id": "a"}, "target": {"path": "/"}},
            "destination": {"connection": {"id": "b"}, "target": {"path": "/"}}}},
        ensure_ascii=False, indent=2), encoding="utf-8")
    assert main([*home, "jobs", "create", "--file", str(job)]) == 0
    capsys.readouterr()
    with sqlite3.connect(tmp_path / "home" / "state.db") as db:  # as an earlier version kept it
        db.execute("UPDATE jobs SET definition = replace(definition, 'PLAIN', ?)",
                   ("rtl \u202e and \x9b[2J",))

    assert main([*home, "jobs", "show", "shown"]) == 0
    shown = capsys.readouterr().out
    assert raw_controls(shown) == set()
    assert '"description": "rtl \\u202e and \\x9b[2J",' in shown


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[State, Home]]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    yield state, home
    await state.close()


def test_ls_prints_hostile_names_escaped_and_json_exact(tmp_path: Path, capsys) -> None:
    """`ls` of a folder whose names carry escape sequences: the table is escaped, JSON exact."""
    folder = tmp_path / "share"
    folder.mkdir()
    names = ["clip\x1b]52;c;ZWNobyBwd25lZA==\x07.pdf", "row\nFAKE  dir.pdf", "rtl\u202efdp.exe"]
    for name in names:
        (folder / name).write_bytes(b"x")
    home = ["--home", str(tmp_path / "home")]
    assert main([*home, "connections", "add", "local", "share", "--path", str(folder)]) == 0
    capsys.readouterr()

    assert main([*home, "ls", "share:/"]) == 0
    listed = capsys.readouterr().out
    assert raw_controls(listed) == set()
    assert len(listed.splitlines()) == 1 + len(names)  # a header, one line per name
    assert r"/clip\x1b]52;c;ZWNobyBwd25lZA==\x07.pdf" in listed

    assert main([*home, "ls", "share:/", "--json"]) == 0
    assert sorted(e["name"] for e in json.loads(capsys.readouterr().out)) == sorted(names)

    assert main([*home, "ls", "share:/\x1b[2Jnope"]) == 2
    assert raw_controls(capsys.readouterr().err) == set()


async def test_control_characters_are_renamed_on_the_way_to_procore(
        sandbox, opened, tmp_path: Path) -> None:
    """A local file named with an ESC or a newline arrives in Procore under a safe name."""
    state, home = opened
    source = tmp_path / "source"
    source.mkdir()
    (source / "red\x1b[31mtext.pdf").write_bytes(b"one")
    (source / "two\nlines.pdf").write_bytes(b"two")
    (source / "plain.pdf").write_bytes(b"three")
    procore = await connect_sandbox(state, home, sandbox.url, sandbox.world, name="Procore")
    await add_local(state, "source", str(source))
    job, _ = await create_job(state, json.dumps({"name": "upload", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "source"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "Procore"}, "target": {"path": "/Injection"}}}}))

    result = await run_job(state, home, job)

    assert result.status == "completed", result
    connector = open_connector(procore, await state.connection_secrets(procore.id),
                               Opening(state, home))
    try:
        arrived = sorted(e.name for e in await connector.list_dir("Injection"))
    finally:
        await connector.close()
    assert arrived == ["plain.pdf", "red_[31mtext.pdf", "two_lines.pdf"]
    notes = {i.note for i in await state.items(job.id) if i.note}
    assert any("renamed from 'red\\x1b[31mtext.pdf'" in note for note in notes), notes
