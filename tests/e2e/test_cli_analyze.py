"""`dryviq-tui analyze` end to end: a generated local tree and the sandbox's sample project,
every figure checked against an independent walk, the estimate against the copy it
predicts, and the errors a user meets."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from core.connectors.procore import PROCORE_RULES
from core.paths import fit_name, name_problems
from tests.e2e.conftest import Cli
from tests.e2e.test_procore import add_procore, env, job, project_id, remote, run

pytestmark = pytest.mark.slow

TOLERANCE = 0.05  # the estimate's calls against the copy's


def generate(root: Path) -> None:
    """A small project on disk: nested folders, names Procore refuses, an empty folder,
    duplicates by name and size, an empty file."""
    files = {
        "Drawings/A-101 Plan.pdf": 70_000,
        "Drawings/Arch/A-201 Elevations.pdf": 120_000,
        "Drawings/Arch/Details/Deep/Deeper/D-1.dwg": 4_000,
        "Drawings/Structural/S:101 Framing.pdf": 9_000,
        "Specs/03 30 00 Concrete.pdf": 30_000,
        "Specs/copy/03 30 00 Concrete.pdf": 30_000,
        "Specs/notes .txt": 10,
        "RFIs/RFI|014.pdf": 500,
        "RFIs/empty.txt": 0,
        "photo.JPG": 2_000_000,
        "README": 12,
    }
    for rel, size in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(os.urandom(size) if "Concrete" not in rel else b"c" * size)
    (root / "Closeout" / "As-Builts").mkdir(parents=True)


def disk_walk(root: Path) -> tuple[dict[str, int], set[str], set[str]]:
    """Files (relative path -> size), folders and empty folders, by os.walk."""
    files, folders, empty = {}, set(), set()
    for folder, dirs, names in os.walk(root):
        rel = os.path.relpath(folder, root)
        if rel != ".":
            folders.add(rel)
            if not dirs and not names:
                empty.add(rel)
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, root)] = os.path.getsize(path)
    return files, folders, empty


def refused_by_procore(files: dict[str, int], folders: set[str]) -> set[str]:
    """Every path whose own name breaks Procore's rules (the default policy renames it)."""
    return {p for p in [*files, *folders]
            if name_problems(p.rpartition("/")[2], PROCORE_RULES)}


@pytest.fixture
def files(tmp_path: Path, cli: Cli) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    generate(root)
    cli("connections", "add", "local", "files", "--path", root)
    return root


def analysis_rows(home: Path) -> int:
    with sqlite3.connect(home / "state.db") as db:
        return db.execute("SELECT COUNT(*) FROM analyses").fetchone()[0]


def test_local_tree_counts_flags_and_the_estimate_of_its_copy(cli: Cli, sandbox, files: Path,
                                                              tmp_path: Path) -> None:
    found = cli.json("analyze", "files")
    sizes, folders, empty = disk_walk(files)
    assert (found["files"], found["folders"], found["bytes"]) == (
        len(sizes), len(folders), sum(sizes.values()))
    extensions = Counter(os.path.splitext(p)[1].lower() or "(none)" for p in sizes)
    assert {b["label"]: b["files"] for b in found["by_extension"]} == extensions
    for key in ("by_extension", "by_folder", "by_size", "by_age"):
        assert sum(b["files"] for b in found[key]) == len(sizes), key
        assert sum(b["bytes"] for b in found[key]) == sum(sizes.values()), key
    tops = Counter(p.partition("/")[0] if "/" in p else "(files at the top)" for p in sizes)
    assert {b["label"]: b["files"] for b in found["by_folder"]} == tops
    assert [b["files"] for b in found["by_size"]] == [10, 1, 0, 0, 0]  # < 1 MiB, 1-10 MiB
    assert found["by_age"][0]["files"] == len(sizes)  # all made just now
    assert [p["path"] for p in found["largest"]][:3] == [
        "photo.JPG", "Drawings/Arch/A-201 Elevations.pdf", "Drawings/A-101 Plan.pdf"]
    assert found["deepest"][0] == {"path": "Drawings/Arch/Details/Deep/Deeper/D-1.dwg",
                                   "value": 6}
    assert set(found["empty_folders"]) == empty
    assert found["empty_folder_count"] == len(empty)
    assert found["duplicates"] == [{"reason": "name and size", "size": 30_000, "paths": [
        "Specs/03 30 00 Concrete.pdf", "Specs/copy/03 30 00 Concrete.pdf"]}]
    flagged = {f["path"]: f for f in found["flagged"]}
    assert set(flagged) == refused_by_procore(sizes, folders)
    assert found["destination_platform"] == "procore" and found["api_calls"] == 0
    for path, item in flagged.items():
        name = path.rpartition("/")[2]
        assert item["fix"] == fit_name(name, "", PROCORE_RULES).name != name

    # the copy it estimates, into a folder of the project (the documents index: one page)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "up", ("files", "/"), ("procore", "/Imported"))
    before = sandbox.world.api_calls
    copied = run(cli, "up")
    assert copied["status"] == "completed", copied
    made = sandbox.world.api_calls - before
    assert copied["stats"]["api_calls"] == made
    estimate = found["estimate"]["api_calls"]
    print(f"\nestimate {estimate} calls, the copy made {made}")
    assert abs(estimate - made) <= TOLERANCE * made, (estimate, made, found["estimate"])
    renamed = {i["path"].lstrip("/") for i in cli.json("jobs", "items", "up")
               if i["status"] == "processed"}
    assert renamed == set(flagged)
    assert set(remote(sandbox.world, "Imported")) >= {
        "Drawings/Structural/S_101 Framing.pdf", "RFIs/RFI_014.pdf", "Specs/notes.txt"}

    # compared with what the copy made: all identical (same sizes: Procore keeps no mtime)
    compared = cli.json("analyze", "files", "--against", "procore:/Imported")
    comparison = compared["comparison"]
    assert compared["destination_platform"] == "procore"  # the --against side's rules
    assert {f["path"] for f in compared["flagged"]} == set(flagged)
    assert comparison["identical"]["files"] == len(sizes), comparison
    assert comparison["only_here"]["files"] == comparison["only_there"]["files"] == 0
    assert comparison["different"]["files"] == 0
    assert compared["estimate"]["transfer_calls"] == 0
    rerun = run(cli, "up")
    assert rerun["status"] == "no_changes"
    assert compared["api_calls"] <= rerun["stats"]["api_calls"], (compared, rerun)

    (files / "Specs" / "new.pdf").write_bytes(b"n" * 100)
    (files / "README").write_bytes(b"changed, and longer")
    compared = cli.json("analyze", "files", "--against", "procore:/Imported")["comparison"]
    assert (compared["only_here"]["files"], compared["different"]["files"]) == (1, 1)
    assert compared["samples"]["only_here"] == ["Specs/new.pdf"]
    assert compared["first_sync"]["create"] == 1
    assert analysis_rows(cli.home) == 2  # one per (folder, folder compared with): replaced


def test_procore_project_counts_and_the_estimate_of_copying_it_out(
        cli: Cli, sandbox, tmp_path: Path) -> None:
    world = sandbox.world
    add_procore(cli, sandbox)
    before = world.api_calls
    found = cli.json("analyze", "procore")
    spent = world.api_calls - before
    assert found["api_calls"] == spent == 1  # the whole project fits one index page
    tree = world.tree(project_id(world))
    contents = {p: c for p, c in tree.items() if c is not None}
    assert (found["files"], found["folders"], found["bytes"]) == (
        len(contents), len(tree) - len(contents), sum(map(len, contents.values())))
    assert found["largest"][0] == {"path": "Drawings/Architectural/A-000 Full Drawing Set.pdf",
                                   "value": 3 << 20}
    assert found["empty_folders"] == ["Closeout/As-Builts"]
    assert found["destination_platform"] is None and found["flagged"] == []
    assert found["estimate"]["hourly_limit"] > 0 and found["estimate"]["remaining_now"]

    out = tmp_path / "out"
    out.mkdir()
    cli("connections", "add", "local", "out", "--path", out)
    job(cli, tmp_path, "down", ("procore", "/"), ("out", "/"))
    before = world.api_calls
    copied = run(cli, "down")
    assert copied["status"] == "completed", copied
    made = world.api_calls - before
    estimate = found["estimate"]["api_calls"]
    print(f"\nestimate {estimate} calls, the copy made {made}")
    assert abs(estimate - made) <= TOLERANCE * made, (estimate, made)
    rerun = run(cli, "down")
    assert rerun["status"] == "no_changes"
    assert found["api_calls"] <= rerun["stats"]["api_calls"]

    windows = cli.json("analyze", "procore:/Closeout", "--rules", "smb")
    assert windows["destination_platform"] == "smb" and windows["files"] == 5


def test_reports_for_people_and_spreadsheets(cli: Cli, files: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    text = cli("analyze", "files", "--html", page).stdout
    html = page.read_text()
    assert html.lower().startswith("<!doctype html") and "<svg" in html and "RFI_014.pdf" in html
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "Names Procore would refuse (3)" in text and "RFI_014.pdf" in text
    rows = list(csv.DictReader(io.StringIO(cli("analyze", "files", "--csv").stdout)))
    by_section = Counter(r["section"] for r in rows)
    assert by_section["size"] == 5 and by_section["flagged"] == 3
    total = next(r for r in rows if (r["section"], r["label"]) == ("total", "files"))
    assert int(total["files"]) == 11


def test_a_platform_that_refuses_is_one_clear_error_and_nothing_is_written(
        cli: Cli, make_sandbox) -> None:
    """(The usage errors are tests/core/test_analyze.py's, in-process.)"""
    sandbox = make_sandbox()
    add_procore(cli, sandbox)
    sandbox.world.expire_access_tokens()  # signed out at Procore
    sandbox.world.revoke_refresh_tokens()
    failed = cli("analyze", "procore", check=1, env=env())
    assert failed.stderr.startswith("dryviq-tui: error: cannot analyze procore: ")
    assert "sign in again" in failed.stderr and "Traceback" not in failed.stderr
    assert analysis_rows(cli.home) == 0
