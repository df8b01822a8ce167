"""Two real jobs running at once into one destination folder, as two `dryviq-tui jobs run`
processes: each makes folders the other is about to make, and both write a shared file.
Neither may fail an item, and everything both sources hold must arrive.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import TIMEOUT, Cli, assert_same_tree, clean_env, dryviq_command
from tests.e2e.test_procore import add_procore, project_id

pytestmark = pytest.mark.slow

MTIME = 1_700_000_000  # the shared file's mtime in both sources


def write_site(root: Path, letter: str, areas: int, levels: int) -> None:
    """A project whose folders are the same in every site; its own files (`letter-N.pdf`)
    and one file identical in every site (`common.pdf`) in each folder."""
    for area in range(areas):
        for level in range(levels):
            folder = root / f"Area {area:02d}" / f"Level {level}"
            folder.mkdir(parents=True)
            for n in range(3):
                (folder / f"{letter}-{n}.pdf").write_bytes(
                    f"{letter} {area} {level} {n} ".encode() * (50 + n))
            common = folder / "common.pdf"
            common.write_bytes(f"common {area} {level} ".encode() * 40)
            os.utime(common, (MTIME, MTIME))


def add_job(cli: Cli, tmp_path: Path, name: str, source: str, destination: str,
            path: str) -> None:
    definition = {"name": name, "kind": "transfer", "schedule": {"mode": "manual"},
                  "transfer": {"transfer_type": "copy",
                               "source": {"connection": {"id": source},
                                          "target": {"path": "/Project"}},
                               "destination": {"connection": {"id": destination},
                                               "target": {"path": path}}}}
    file = tmp_path / f"{name}.json"
    file.write_text(json.dumps(definition), encoding="utf-8")
    cli("jobs", "create", "--file", file)


def run_together(cli: Cli, *jobs: str) -> list[dict]:
    """Start every job's `jobs run --json` at once; their results once all have ended."""
    procs = [subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run", job,
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, env=clean_env())
             for job in jobs]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
        results.append(json.loads(out))
    return results


def test_two_local_jobs_into_one_folder(tmp_path: Path, cli: Cli) -> None:
    sites = [tmp_path / "site a", tmp_path / "site b"]
    for site, letter in zip(sites, "ab", strict=True):
        write_site(site / "Project", letter, areas=20, levels=10)
        cli("connections", "add", "local", f"site {letter}", "--path", site)
    share = tmp_path / "share"
    share.mkdir()
    cli("connections", "add", "local", "share", "--path", share)
    for letter in "ab":
        add_job(cli, tmp_path, f"copy {letter}", f"site {letter}", "share", "/Backup/Project")

    results = run_together(cli, "copy a", "copy b")

    for result in results:
        assert result["status"] == "completed", result
        assert (result["stats"]["failed"], result["stats"]["flagged"]) == (0, 0), result
    union = tmp_path / "union"
    for site in sites:
        shutil.copytree(site / "Project", union, dirs_exist_ok=True, copy_function=shutil.copy2)
    assert_same_tree(union, share / "Backup" / "Project")


def test_two_jobs_into_one_procore_folder(tmp_path: Path, cli: Cli, sandbox) -> None:
    add_procore(cli, sandbox)
    for letter in "ab":
        site = tmp_path / f"site {letter}"
        write_site(site / "Project", letter, areas=4, levels=3)
        cli("connections", "add", "local", f"site {letter}", "--path", site)
        add_job(cli, tmp_path, f"upload {letter}", f"site {letter}", "procore",
                "/Concurrent/Project")

    results = run_together(cli, "upload a", "upload b")

    for result in results:
        assert result["status"] == "completed", result
        assert (result["stats"]["failed"], result["stats"]["flagged"]) == (0, 0), result
    prefix = "Concurrent/Project/"
    documents = {path[len(prefix):]: content
                 for path, content in sandbox.world.tree(project_id(sandbox.world)).items()
                 if path.startswith(prefix)}
    expected: dict[str, bytes | None] = {}
    for letter in "ab":
        root = tmp_path / f"site {letter}" / "Project"
        for folder, dirs, names in os.walk(root):
            for name in dirs:
                expected[os.path.relpath(os.path.join(folder, name), root)] = None
            for name in names:
                path = Path(folder, name)
                expected[os.path.relpath(path, root)] = path.read_bytes()
    assert documents == expected  # no "Level 0 (1)" twin, no file missing or short
