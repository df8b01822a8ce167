"""Handing a job to a headless process that outlives the app: `dryviq-tui jobs run JOB` in a
session of its own (a closed terminal or SSH session does not stop it), its output in the
home's logs/ folder. The run resumes where the app's run stopped, as any rerun does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.home import Home

# Kept so the interpreter does not warn that a child it never waited for still runs: the
# child is meant to outlive this process.
_STARTED: list[subprocess.Popen[bytes]] = []


def log_path(home: Home, job_id: str) -> Path:
    return home.root / "logs" / f"job-{job_id}.log"


def run_in_background(home: Home, job_id: str) -> tuple[int, Path]:
    """Start `jobs run` for the job, detached; returns its pid and the log it writes."""
    log = log_path(home, job_id)
    log.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "tui", "--home", str(home.root), "jobs", "run", job_id],
            stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True)
    finally:
        os.close(fd)
    _STARTED.append(process)
    return process.pid, log
