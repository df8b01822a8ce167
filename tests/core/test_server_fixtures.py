"""The test servers as the benchmarks use them: plain context managers that start and stop
cleanly, leaving the process that started them alive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNAVAILABLE = 3  # the child's exit code when smbd cannot run here


def test_stopping_samba_leaves_its_starter_running(tmp_path: Path) -> None:
    """smbd signals its whole process group when it stops: in ours, that killed the test
    session itself (SIGTERM, exit code 143) at the end of every run that used Samba."""
    script = f"""
import sys
from pathlib import Path
from tests.samba import SambaUnavailable, running_samba
try:
    with running_samba(Path({str(tmp_path)!r})) as server:
        listing = server.smbclient("ls").stdout
except SambaUnavailable as reason:
    print(reason)
    sys.exit({UNAVAILABLE})
print("still here", "blocks available" in listing)
"""
    child = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                           text=True, timeout=120,
                           start_new_session=True)  # so a regression kills only the child
    if child.returncode == UNAVAILABLE:
        pytest.skip(child.stdout.strip())
    assert (child.returncode, child.stdout.strip()) == (0, "still here True"), child.stderr
