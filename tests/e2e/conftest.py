"""End-to-end fixtures: the real `dryviq-tui` command in subprocesses, and tree comparisons.

Every test gets its own home under tmp_path; DRYVIQ_HOME from the caller's environment is never
inherited, so a test cannot touch a real home by accident.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Verbatim from DryvIQ's Procore connector page (shared/reference/procore-connector-seed.txt),
# "Create a Job | REST API Job Configuration Example". Kept here so a fresh clone has it.
SIMPLE_JOB_JSON = """{ "name":"Simple Job", "kind": "transfer", "transfer": { "transfer_type": "copy", "source": { "connection": { "id": "Source connection ID" }, "target": { "path": "/sourceDocumentLibrary" } }, "destination": { "connection": { "id": "Destination Connection ID" }, "target": { "path": "/destinationFolder" } }, "simulation_mode": false }, "schedule": { "mode": "manual" }, "stop_policy": { "on_success": 5, "on_failure": 5, "on_execute": 25 }, "category": { "name": "Report {Name}" } }"""  # noqa: E501

SOURCE_CONNECTION = "Source connection ID"
DESTINATION_CONNECTION = "Destination Connection ID"
PART_PATTERN = ".dryviq-*.part"
STATS_KEYS = ("files", "folders", "bytes", "transferred", "skipped", "flagged", "failed",
              "api_calls")
TIMEOUT = 300  # seconds: only so a hung command fails the test instead of hanging the suite


def dryviq_command() -> list[str]:
    """The installed console script of this interpreter's environment (not a pyenv shim)."""
    beside = Path(sys.executable).parent / "dryviq-tui"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("dryviq-tui")
    if found is None:
        pytest.fail("the dryviq-tui command is not installed: pip install -e '.[test]'")
    return [found]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DRYVIQ_HOME"}
    env.update(extra)
    return env


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (f"command: {proc.args}\nexit code: {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")


@dataclass
class Cli:
    """Runs `dryviq-tui --home HOME ...` and checks its exit code."""

    home: Path

    def __call__(self, *args: str | os.PathLike[str], input: str | None = None,
                 check: bool | int = True, home: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`check`: True means exit 0, an int means that exit code, False means any."""
        argv = [*dryviq_command(), *(["--home", str(self.home)] if home else []),
                *map(str, args)]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True,
                              env=env or clean_env(), timeout=TIMEOUT,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check is not False:
            expected = 0 if check is True else check
            assert proc.returncode == expected, describe(proc)
        return proc

    def json(self, *args: str | os.PathLike[str], check: bool | int = True) -> Any:
        proc = self(*args, "--json", check=check)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"--json printed no JSON: {exc}\n{describe(proc)}") from None


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cli(home: Path) -> Cli:
    return Cli(home)


def is_part(name: str) -> bool:
    return fnmatch.fnmatchcase(name, PART_PATTERN)


def part_files(root: Path) -> list[str]:
    """Relative paths of every temporary `.dryviq-*.part` file under `root`."""
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names if is_part(name))


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under `root` by relative path: ("dir",), ("file", bytes, mtime_ns) or
    ("link", target). Symlinks are not followed."""
    found: dict[str, tuple[Any, ...]] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root)
            info = os.lstat(full)
            if os.path.islink(full):
                found[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                found[rel] = ("dir",)
            else:
                found[rel] = ("file", Path(full).read_bytes(), info.st_mtime_ns)
    return found


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """`tree` plus each entry's mode and inode, and each folder's mtime: any change shows."""
    found = {}
    for rel, entry in tree(root).items():
        info = os.lstat(root / rel)
        found[rel] = (*entry, info.st_mode, info.st_ino, info.st_mtime_ns)
    if root.exists():
        info = os.lstat(root)
        found["."] = (info.st_mode, info.st_ino, info.st_mtime_ns)
    return found


def assert_same_tree(source: Path, destination: Path) -> None:
    """Same relative paths, kinds and bytes; files' mtimes within 1 microsecond; and no
    temporary `.dryviq-*.part` file anywhere at the destination."""
    assert destination.is_dir(), f"{destination} was not created"
    parts = part_files(destination)
    assert not parts, f"temporary files left at the destination: {parts}"
    ours, theirs = tree(source), tree(destination)
    assert sorted(theirs) == sorted(ours), (
        f"missing at the destination: {sorted(set(ours) - set(theirs))}; "
        f"extra at the destination: {sorted(set(theirs) - set(ours))}")
    for rel, entry in ours.items():
        other = theirs[rel]
        assert other[0] == entry[0], f"{rel}: {entry[0]} at the source, {other[0]} at the end"
        if entry[0] == "file":
            assert other[1] == entry[1], f"{rel}: contents differ"
            assert abs(other[2] - entry[2]) <= 1000, (
                f"{rel}: mtime {other[2]} ns at the destination, {entry[2]} ns at the source")


def set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def assert_trees() -> Callable[[Path, Path], None]:
    return assert_same_tree
