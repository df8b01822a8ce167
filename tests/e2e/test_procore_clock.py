"""Procore's clock, not ours: the real command against sandboxes whose clocks are ten minutes
off, and three processes sharing one client's hourly budget.

A sandbox's `clock_offset` shifts its Date header and X-Rate-Limit-Reset together, as a server
whose clock differs from this machine's. A pacer that read resets on the local clock would see
a spike window's reset ten minutes away (a false "budget spent") or ten minutes past (retrying
at once after a 429).
"""

from __future__ import annotations

import email.utils
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from core.sandbox import SANDBOX_CLIENT_ID, SandboxConfig
from tests.e2e.conftest import Cli, clean_env, dryviq_command
from tests.e2e.test_procore import add_procore, env, job, local, remote

pytestmark = pytest.mark.slow

TEN_MINUTES = 600.0
SPIKE_LIMIT = 12  # calls per 10 s: small enough that every job is paced by it


@pytest.mark.parametrize("offset", [TEN_MINUTES, -TEN_MINUTES], ids=["ahead", "behind"])
def test_jobs_against_a_sandbox_whose_clock_is_off_finish_without_429s_or_pauses(
        cli: Cli, make_sandbox, tmp_path: Path, offset: float) -> None:
    sandbox = make_sandbox(SandboxConfig(clock_offset=offset, spike_limit=SPIKE_LIMIT))
    up, down = tmp_path / "up", tmp_path / "down"
    up.mkdir()
    down.mkdir()
    for n in range(6):  # 14 calls: the index, /Skewed, and two a file
        (up / f"Sheet {n:02d}.pdf").write_bytes(b"sheet %d" % n)
    cli("connections", "add", "local", "up", "--path", up)
    cli("connections", "add", "local", "down", "--path", down)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "upload", ("up", "/"), ("procore", "/Skewed"))
    job(cli, tmp_path, "download", ("procore", "/Photos"), ("down", "/"))  # 12 files
    for name in ("upload", "download"):
        # --no-wait: a false "budget spent" would end the run paused (exit 3) at once
        result = cli.json("jobs", "run", name, "--no-wait")
        assert result["status"] == "completed", result
        assert result["stats"]["rate_limited"] == 0 and result["stats"]["failed"] == 0
        assert result["stats"]["api_calls"] > SPIKE_LIMIT  # the spike window was in play
    assert sandbox.world.rate_limited == 0
    assert remote(sandbox.world, "Skewed") == local(up)
    assert local(down) == remote(sandbox.world, "Photos")



@pytest.mark.parametrize("offset", [TEN_MINUTES, -TEN_MINUTES], ids=["ahead", "behind"])
def test_a_spent_hour_on_a_sandbox_whose_clock_is_off_pauses_until_its_reset(
        cli: Cli, make_sandbox, tmp_path: Path, offset: float) -> None:
    """The hourly reset, ten minutes off on our clock, is placed where it really is: the run
    pauses (not 429s) until the reset, and the next run after it finishes."""
    window = 30.0  # the first 36 calls must end more than a spike window (10 s) before
    # the reset even on a busy machine, or the run rightly waits for it instead of pausing
    sandbox = make_sandbox(SandboxConfig(clock_offset=offset, hourly_limit=40,
                                         hourly_window=window, spike_limit=1000))
    files = tmp_path / "files"
    files.mkdir()
    for n in range(25):  # two calls a file (upload slot, create): two windows of 36
        (files / f"Sheet {n:03d}.pdf").write_bytes(b"%d" % n)
    cli("connections", "add", "local", "files", "--path", files)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "hourly", ("files", "/"), ("procore", "/Hourly"))
    paused = cli.json("jobs", "run", "hourly", "--no-wait", check=3)
    assert paused["status"] == "paused" and paused["stats"]["rate_limited"] == 0
    (last,) = cli.json("jobs", "history", "hourly")[:1]
    assert time.time() - 1 < last["resume_at"] <= time.time() + window + 2
    time.sleep(max(0.0, last["resume_at"] - time.time()) + 0.5)
    done = cli.json("jobs", "run", "hourly", "--no-wait")
    assert done["status"] == "completed" and done["stats"]["rate_limited"] == 0
    assert sandbox.world.rate_limited == 0
    assert remote(sandbox.world, "Hourly") == local(files)


HOURLY_LIMIT = 100
HOURLY_WINDOW = 40.0  # seconds: long enough to tell from the 10-second spike window
JOBS, FILES = 3, 35  # about 216 calls (two a file: upload slot, create): three windows
RESERVE = 10  # the pacer's default 10% of the hourly limit, kept for browsing


def _settled(window, seconds: float = 3.0) -> tuple[float, int]:
    """Wait until the jobs stop calling in the current hourly window (they wait for its
    reset); returns the window's start and count."""
    last = (window.started, window.count)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < seconds:
        time.sleep(0.1)
        now = (window.started, window.count)
        if now != last:
            last, quiet_since = now, time.monotonic()
    return last


def test_three_processes_keep_the_reserve_in_every_window_once_the_limit_is_known(
        cli: Cli, make_sandbox, tmp_path: Path) -> None:
    """The issue's case: jobs in three processes on one client with an hourly limit of 100.
    From the second window on (the first taught the pacer the limit) they spend at most 90
    calls together, and an `ls` meanwhile is answered in the same window, without waiting."""
    sandbox = make_sandbox(SandboxConfig(hourly_limit=HOURLY_LIMIT, hourly_window=HOURLY_WINDOW))
    world = sandbox.world
    sources = []
    for n in range(JOBS):
        source = tmp_path / f"files{n}"
        source.mkdir()
        for index in range(FILES):
            (source / f"Sheet {index:03d}.pdf").write_bytes(b"%d-%d" % (n, index))
        cli("connections", "add", "local", f"files{n}", "--path", source)
        sources.append(source)
    add_procore(cli, sandbox)
    for n in range(JOBS):
        job(cli, tmp_path, f"job{n}", (f"files{n}", "/"), ("procore", f"/Job{n}"))
    hourly = world.windows[SANDBOX_CLIENT_ID][1]
    runs = [subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run",
                              f"job{n}", "--json"], env=env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for n in range(JOBS)]
    try:
        # the first window, where the pacer learns the limit
        while not hourly.past and any(run.poll() is None for run in runs):
            time.sleep(0.1)
        started, spent = _settled(hourly)
        during = len(hourly.past)  # the index of this window among all of them
        assert all(run.poll() is None for run in runs)  # waiting for the reset, not done
        assert during and HOURLY_LIMIT // 2 <= spent <= HOURLY_LIMIT - RESERVE
        listing = cli("ls", "procore:/")
        assert "Job0" in listing.stdout
        assert hourly.started == started and hourly.count > spent  # counted in this window
        browsing = hourly.count - spent
        outcomes = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            run.kill()
    for run, (out, err) in zip(runs, outcomes, strict=True):
        assert run.returncode == 0, f"{run.args}\n{out}\n{err}"
    windows = [*hourly.past, hourly.count]  # calls counted in each hourly window
    by_jobs = [count - (browsing if index == during else 0) for index, count in enumerate(windows)]
    assert all(count <= HOURLY_LIMIT - RESERVE for count in by_jobs[1:]), windows
    assert world.rate_limited == 0
    for n, source in enumerate(sources):
        assert remote(world, f"Job{n}") == local(source)  # every file arrived


def test_the_sandbox_command_takes_a_clock_offset() -> None:
    proc = subprocess.Popen([*dryviq_command(), "sandbox", "--clock-offset", "-600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env())
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        url = first.split("Procore sandbox: ", 1)[1].split()[0]
        before = time.time() - TEN_MINUTES
        answer = httpx.get(f"{url}/rest/v1.0/me")
        date = email.utils.parsedate_to_datetime(answer.headers["date"]).timestamp()
        assert int(before) <= date <= time.time() - TEN_MINUTES
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode in (0, 130)
