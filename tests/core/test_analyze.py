"""The analysis over local folders in this process: what it stores and reads back, bounded
lists, duplicates by hash, comparisons, and the command's usage errors."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.analysis_tally import Limits, Tally, age_label, extension, size_label
from core.analyze import Analysis, analyze, latest_analysis
from core.cli import main
from core.home import Home
from core.state import State

DAY = 86400.0


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[State, Home]]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    yield state, home
    await state.close()


def write(root: Path, files: dict[str, bytes], *, age_days: float = 0) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if age_days:
            when = time.time() - age_days * DAY
            os.utime(path, (when, when))


async def test_stored_analysis_reads_back_equal_and_a_rerun_replaces_it(
        opened: tuple[State, Home], tmp_path: Path) -> None:
    state, home = opened
    here, there = tmp_path / "here", tmp_path / "there"
    write(here, {"a/x.pdf": b"1" * 10, "a/same.txt": b"s", "b/new.dwg": b"n" * 5})
    write(here, {"old/plan.pdf": b"p" * 3}, age_days=400)
    write(there, {"a/x.pdf": b"2" * 11, "a/same.txt": b"s", "gone.txt": b"g"})
    os.utime(there / "a" / "same.txt", (os.stat(here / "a" / "same.txt").st_mtime,) * 2)
    disk = await state.add_connection("disk", "local", {"path": str(here)})
    other = await state.add_connection("other", "local", {"path": str(there)})

    alone = await analyze(state, home, disk)
    compared = await analyze(state, home, disk, against=other)
    assert Analysis.from_dict(json.loads(json.dumps(compared.as_dict()))) == compared
    assert await latest_analysis(state, disk.id, "") == alone
    assert await latest_analysis(state, disk.id, "", other.id, "") == compared
    assert await latest_analysis(state, other.id, "") is None
    assert [b.files for b in alone.by_age] == [3, 0, 1, 0]  # 400 days: 1-3 years

    comparison = compared.comparison
    assert comparison is not None and compared.destination_platform == "local"
    assert (comparison.only_here.files, comparison.only_there.files,
            comparison.different.files, comparison.identical.files) == (2, 1, 1, 1)
    assert comparison.samples["only_there"] == ("gone.txt",)
    # the first two-way sync: new files both ways, folders made, and a conflict over x.pdf
    # (the other side's is newer: the analyzed side's becomes the conflict copy)
    assert comparison.first_sync == {"conflict_source": 1, "create": 2, "create_source": 1,
                                     "mkdir": 2, "none": 2}

    write(here, {"c/more.txt": b"m"})
    again = await analyze(state, home, disk)
    assert again.files == alone.files + 1
    assert await latest_analysis(state, disk.id, "") == again
    rows = await state.db.execute_fetchall("SELECT COUNT(*) FROM analyses")
    assert list(rows) == [(2,)]  # one per folder analyzed (and folder compared with)


async def test_lists_stay_bounded_while_totals_stay_exact(opened: tuple[State, Home],
                                                          tmp_path: Path) -> None:
    state, home = opened
    root = tmp_path / "many"
    for n in range(30):
        (root / f"empty {n:02d}").mkdir(parents=True)
    write(root, {f"f/{n:02d} bad:name.pdf": b"x" * n for n in range(30)})
    disk = await state.add_connection("many", "local", {"path": str(root)})
    seen = []
    found = await analyze(state, home, disk, limits=Limits(top=3, samples=5), save=False,
                          on_progress=seen.append)
    assert (seen[-1].files, seen[-1].folders, seen[-1].bytes) == (30, 31, sum(range(30)))
    assert (found.empty_folder_count, len(found.empty_folders)) == (30, 5)
    assert (found.flagged_count, len(found.flagged)) == (30, 5)
    assert [p.value for p in found.largest] == [29, 28, 27]
    assert found.files == 30 and found.bytes == sum(range(30))
    assert await latest_analysis(state, disk.id, "") is None  # save=False


def test_duplicates_by_hash_before_name_and_size(tmp_path: Path) -> None:
    tally = Tally(time.time())
    try:
        md5 = (("md5", "aa"),)
        tally.file("a/one.pdf", "one.pdf", 100, None, md5)
        tally.file("b/other name.pdf", "other name.pdf", 100, None, md5)
        tally.file("c/one.pdf", "One.PDF", 100, None, (("md5", "bb"),))
        tally.file("d/Plan.pdf", "Plan.pdf", 7, None, ())
        tally.file("e/plan.pdf", "plan.pdf", 7, None, ())
        tally.file("e/empty.txt", "empty.txt", 0, None, ())
        tally.file("f/empty.txt", "empty.txt", 0, None, ())
        groups, count, wasted = tally.duplicates()
    finally:
        tally.close()
    assert [(g.reason, g.paths) for g in groups] == [
        ("hash", ("a/one.pdf", "b/other name.pdf")),
        ("name and size", ("d/Plan.pdf", "e/plan.pdf"))]
    assert (count, wasted) == (2, 107)


def test_buckets() -> None:
    now = time.time()
    assert [extension(n) for n in ("A.PDF", "README", "x.tar.gz", "v1.final-draft2x")] == [
        ".pdf", "(none)", ".gz", "(none)"]
    assert [size_label(s) for s in (0, (1 << 20) - 1, 1 << 20, 5 << 30)] == [
        "< 1 MiB", "< 1 MiB", "1-10 MiB", ">= 1 GiB"]
    assert [age_label(t, now) for t in (now, now - 40 * DAY, now - 800 * DAY,
                                        now - 2000 * DAY, None)] == [
        "< 30 days", "30 days-1 year", "1-3 years", "> 3 years", "unknown"]


@pytest.mark.parametrize("argv, code, words", [
    (["analyze", "nope"], 2, "no connection named or with id 'nope'"),
    (["analyze", "disk:/missing"], 2, "disk:/missing: no such folder"),
    (["analyze", "disk:/a.txt"], 2, "disk:/a.txt is a file, not a folder"),
    (["analyze", "disk:/../x"], 2, "not a usable file or folder name"),
    (["analyze", "disk", "--against", "nope"], 2, "no connection named or with id 'nope'"),
    (["analyze", "disk", "--against", "disk:/a.txt"], 2, "disk:/a.txt is a file, not a folder"),
    (["analyze", "disk", "--against", "disk", "--rules", "smb"], 2, "give one or the other"),
    (["analyze", "disk", "--csv"], 2, "choose one"),
    (["analyze", "disk", "--html", "/nonexistent/r.html"], 2, "does not exist"),
    (["analyze", "disk", "--html", "/tmp"], 2, "not a file (a folder or a device)"),
    (["analyze", "disk", "--html", "/dev/null"], 2, "not a file (a folder or a device)"),
])
def test_usage_errors(argv: list[str], code: int, words: str, tmp_path: Path,
                      capsys) -> None:
    home = tmp_path / "home"
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_text("a")
    assert main(["--home", str(home), "connections", "add", "local", "disk", "--path",
                 str(tmp_path / "tree")]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), *argv, "--json"]) == code
    assert words in json.loads(capsys.readouterr().out)["error"]["message"]
    with sqlite3.connect(home / "state.db") as db:
        assert db.execute("SELECT COUNT(*) FROM analyses").fetchone() == (0,)  # none saved


async def test_names_checked_against_the_rules_asked_for(opened: tuple[State, Home],
                                                         tmp_path: Path) -> None:
    from core.connectors.smb import SMB_RULES
    from core.paths import name_problems

    state, home = opened
    names = ["CON.txt", "a:b.pdf", "ends in dot.", "fine.pdf", "tab\there.txt", "nul",
             "what?.dwg", "x" * 250 + ".pdf"]
    write(tmp_path / "w", {f"dir/{n}": b"1" for n in names})
    disk = await state.add_connection("w", "local", {"path": str(tmp_path / "w")})
    found = await analyze(state, home, disk, rules="smb", save=False)
    assert found.destination_platform == "smb"
    refused = {f"dir/{n}" for n in names if name_problems(n, SMB_RULES)}
    assert {f.path for f in found.flagged} == refused and len(refused) == 6
    fixes = {f.path: f.fix for f in found.flagged}
    assert fixes["dir/CON.txt"] == "CON_.txt" and fixes["dir/ends in dot."] == "ends in dot_"


async def test_a_path_too_long_for_procore_is_flagged_for_a_person(
        opened: tuple[State, Home], tmp_path: Path) -> None:
    state, home = opened
    deep = "/".join(["d" * 60] * 4)  # 243 characters of folders
    write(tmp_path / "long", {f"{deep}/a drawing sheet.pdf": b"1", f"{deep}/ok.pdf": b"2"})
    disk = await state.add_connection("long", "local", {"path": str(tmp_path / "long")})
    found = await analyze(state, home, disk, save=False)  # Procore's rules by default
    assert [(f.path, f.fix) for f in found.flagged] == [(f"{deep}/a drawing sheet.pdf", None)]
    assert "too long for the destination" in found.flagged[0].problem
    assert found.estimate.files == 1  # the copy leaves the flagged file behind
