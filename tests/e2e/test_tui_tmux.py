"""The demo in a real terminal: `dryviq-tui demo` in tmux, driven by keys, read from the screen.

This is what a new user over SSH does: start the demo, run the sample job, watch it pause for
the rate limit and continue, and find the copied files.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import dryviq_command

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class Terminal:
    """A tmux session running one command, 120x40."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40",
                        subprocess.list2cmdline(command)], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True, check=False).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.25)
        raise AssertionError(f"{text!r} did not appear within {timeout} s; the screen:\n"
                             f"{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[tuple[Terminal, Path]]:
    home = tmp_path / "home"
    name = f"dryviq-{tmp_path.name}"
    term = Terminal(name, [*dryviq_command(), "--home", str(home), "demo", "--no-mouse"])
    try:
        yield term, home
    finally:
        term.close()


def test_the_demo_runs_pauses_for_the_rate_limit_and_finishes(terminal) -> None:
    term, home = terminal
    term.wait_for("Riverside documents to the")  # the sample job in the jobs list
    term.keys("r")
    term.keys("m")
    term.wait_for("Monitor")
    paused = term.wait_for("Paused until", timeout=90)
    assert "(rate limit)" in paused
    term.wait_for("completed", timeout=120)
    copy = home / "Office Share" / "Projects" / "Riverside Medical Center"
    assert sum(1 for p in copy.rglob("*") if p.is_file()) == 55
    term.keys("b")  # the browser
    term.wait_for("filters this folder by name")
    term.keys("C-q")
