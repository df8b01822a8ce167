"""The demo in a real terminal: `dryviq-tui demo` in tmux, driven by keys, read from the screen.

This is what a new user over SSH does: start the demo, run the sample job, watch it pause for
the rate limit and continue, and find the copied files; or add a Procore connection with the
default credentials at 80x24, copying the sign-in address off the terminal itself.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import dryviq_command
from tests.tui.test_demo_app import sign_in_with_the_sample_login

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cpu"),  # never beside the busiest
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class Terminal:
    """A tmux session running one command, 120x40 unless told, on a tmux server of its own:
    a server someone else started would hand the command that server's environment."""

    def __init__(self, name: str, command: list[str], size: tuple[int, int] = (120, 40)) -> None:
        self.name = name
        self.tmux("new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]),
                  subprocess.list2cmdline(command), check=True)

    def tmux(self, *args: str, check: bool = False) -> str:
        return subprocess.run(["tmux", "-L", self.name, *args], capture_output=True, text=True,
                              check=check).stdout

    def screen(self, joined: bool = False) -> str:
        """What the terminal shows; `joined`: soft-wrapped lines as one, as a selection
        copies them."""
        return self.tmux("capture-pane", "-p", *(["-J"] if joined else []), "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys, check=True)

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
        self.tmux("kill-server")  # its own server: nobody else's sessions


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


def test_at_80x24_the_demo_signs_in_to_procore_with_the_default_credentials(
        tmp_path: Path) -> None:
    term = Terminal(f"dryviq-signin-{tmp_path.name}",
                    [*dryviq_command(), "--home", str(tmp_path / "home"), "demo", "--no-mouse"],
                    size=(80, 24))
    try:
        term.wait_for("Riverside documents to the")
        term.keys("c")
        term.wait_for("Account / where")
        term.keys("a")
        assert "(none here)" not in term.wait_for("Use the system default client credentials")
        term.keys("Tab", "Tab", "Tab", "Enter")  # Platform, Display as, the credentials: sign in
        term.wait_for("paste the code here")
        term.keys("Tab", "Tab", "Enter")  # past Finish sign-in: Show it alone, to copy
        term.wait_for("Press Enter to go back")
        found = re.search(r"^(http://\S+/oauth/authorize\?\S+)$", term.screen(joined=True),
                          re.MULTILINE)
        assert found is not None, term.screen(joined=True)
        code = asyncio.run(sign_in_with_the_sample_login(found.group(1)))
        term.keys("Enter")
        term.wait_for("Show it alone, to copy")
        term.keys("BTab", "BTab")  # back to the Code field
        term.wait_for("▌paste the code here")  # its focus bar: typing before it lands is lost
        term.keys("-l", code)
        term.keys("Enter")
        term.wait_for("Signed in as Pat Morgan")
    finally:
        term.close()
