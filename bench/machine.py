"""What both benchmarks print about the run itself: the code measured and the machine's load."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def describe_checkout() -> str:
    """The commit measured, and a digest of the product's code (core/) as it is on disk."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha1()
    for path in sorted((here.parent / "core").rglob("*.py")):
        digest.update(str(path).encode() + b"\0" + path.read_bytes())
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                "--untracked-files=no", "--", "../core"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", ""
    return (f"commit {commit}{' + local changes' if dirty else ''} "
            f"(core/ digest {digest.hexdigest()[:10]})")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
