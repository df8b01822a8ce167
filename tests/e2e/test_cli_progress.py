"""`jobs run` as a person and as a script see it: one line rewritten in place on a terminal,
plain lines elsewhere, nothing with --quiet; a planned pause is a status, not an error; and
`jobs history` / `jobs items` speak in labels for people and in codes and numbers for CSV."""

from __future__ import annotations

import csv
import io
import os
import pty
import subprocess
import time
from pathlib import Path

import pytest

from core.sandbox import SandboxConfig
from tests.e2e.conftest import TIMEOUT, Cli, clean_env, describe, dryviq_command
from tests.e2e.test_procore import add_procore, job, local, remote

pytestmark = pytest.mark.slow


@pytest.fixture
def copy_job(cli: Cli, tmp_path: Path) -> str:
    source, destination = tmp_path / "plans", tmp_path / "share"
    for folder in ("Drawings", "Specs"):
        (source / folder).mkdir(parents=True)
    (source / "Drawings" / "A-101.pdf").write_bytes(b"x" * 23)
    (source / "Specs" / "03 30 00.pdf").write_bytes(os.urandom(5000))
    destination.mkdir()
    cli("connections", "add", "local", "plans", "--path", source)
    cli("connections", "add", "local", "share", "--path", destination)
    job(cli, tmp_path, "tower", ("plans", "/"), ("share", "/copy"))
    return "tower"


def test_off_a_terminal_no_redraws_and_quiet_says_nothing(cli: Cli, copy_job: str) -> None:
    quiet = cli("jobs", "run", copy_job, "--quiet")
    assert (quiet.stdout, quiet.stderr) == ("", ""), describe(quiet)

    Path(cli.home.parent / "plans" / "Drawings" / "A-102.pdf").write_bytes(b"y")
    loud = cli("jobs", "run", copy_job)
    assert "\r" not in loud.stderr and "\x1b" not in loud.stderr, describe(loud)
    assert loud.stdout.startswith("completed: 1 file transferred (1 B), 0 folders created")
    assert "files transferred" not in loud.stdout

    history = list(csv.reader(io.StringIO(cli("jobs", "history", copy_job, "--csv").stdout)))
    assert history[0][:8] == ["id", "status", "started", "seconds", "transferred", "bytes",
                          "flagged", "failed"]
    assert [(row[1], row[4], row[5]) for row in history[1:]] == [
        ("completed", "1", "1"), ("completed", "2", "5023")]
    people = cli("jobs", "history", copy_job).stdout
    assert "4.9 KiB" in people and "Bytes" not in people

    items = cli("jobs", "items", copy_job, "--status", "success").stdout.splitlines()
    assert items[0].split() == ["STATUS", "ACTION", "PATH", "SIZE", "ATTEMPTS", "DETAIL"]
    row = next(line for line in items if "A-101.pdf" in line)
    assert row.split() == ["done", "create", "/Drawings/A-101.pdf", "23", "B"]  # no 0 tries


def test_on_a_terminal_one_line_is_rewritten_in_place(cli: Cli, copy_job: str) -> None:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run",
                                 copy_job], stdout=subprocess.PIPE, stderr=follower,
                                stdin=subprocess.DEVNULL, env=clean_env(), text=True)
        os.close(follower)
        out, _ = proc.communicate(timeout=TIMEOUT)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the command ended and closed its end
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0, out
    text = shown.decode()
    assert "\r2/2 files" in text and "\x1b[K" in text  # drawn over, cleared to the end
    assert "progress:" not in text  # the plain lines are for logs and pipes


def test_a_no_wait_pause_is_a_status_and_a_renamed_item_names_both_names(
        cli: Cli, make_sandbox, tmp_path: Path) -> None:
    sandbox = make_sandbox(SandboxConfig(hourly_limit=40, hourly_window=30, spike_limit=1000))
    files = tmp_path / "files"
    files.mkdir()
    cli("connections", "add", "local", "files", "--path", files)
    (files / "bad:name?.pdf").write_bytes(b"colon and question mark")
    for n in range(25):
        (files / f"Sheet {n:03d}.pdf").write_bytes(b"%d" % n)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "budget", ("files", "/"), ("procore", "/Budget"))

    paused = cli("jobs", "run", "budget", "--no-wait", check=3)
    assert "error" not in paused.stdout + paused.stderr, describe(paused)
    first = paused.stdout.splitlines()[0]
    assert first.startswith(f"paused: rate limit, resumes with `dryviq-tui --home {cli.home} "
                            "jobs run budget` after "), describe(paused)
    resume = cli.json("jobs", "history", "budget")[0]["resume_at"]
    assert first.endswith(time.strftime("%H:%M:%S", time.localtime(resume)))
    shown = cli("jobs", "show", "budget").stdout
    [budget] = cli.json("jobs", "show", "budget")["api_budgets"]
    assert budget["limit"] == 40 and budget["stated"] and budget["remaining"] >= 0
    assert f"hourly budget {budget['remaining']} of 40 calls left" in shown, shown

    time.sleep(max(0.0, resume - time.time()) + 0.5)
    cli("jobs", "run", "budget", "--no-wait", "--quiet")
    assert remote(sandbox.world, "Budget").keys() == {
        name.replace("bad:name?", "bad_name_") for name in local(files)}
    processed = cli("jobs", "items", "budget", "--status", "processed").stdout
    assert "renamed from 'bad:name?.pdf' to 'bad_name_.pdf'" in processed, processed
    [item] = cli.json("jobs", "items", "budget", "--status", "processed")
    assert item["status"] == "processed" and item["destination_path"].endswith("bad_name_.pdf")
