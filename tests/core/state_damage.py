"""Damage done to a real state file on purpose: pages zeroed mid-file, or the file made
unwritable to this process."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PAGE = 4096  # SQLite's default page size, the state file's


def pages_of(path: Path, name: str, kind: str = "leaf") -> list[tuple[int, int]]:
    """(page number, rows on it) of `name`'s pages of this kind, in file order."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT pageno, ncell FROM dbstat WHERE name = ? AND pagetype = ? "
                          "ORDER BY pageno", (name, kind)).fetchall()
    finally:
        db.close()


def zero_pages(path: Path, pages: list[int]) -> None:
    with open(path, "r+b") as file:
        for number in pages:
            file.seek((number - 1) * PAGE)
            file.write(bytes(PAGE))


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make `path` unwritable to this process: its mode, or for root (which ignores modes) the
    immutable attribute where the file system has it."""
    if os.geteuid() != 0:
        path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            path.chmod(0o700 if path.is_dir() else 0o600)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root, which ignores file modes, and chattr +i is unavailable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
