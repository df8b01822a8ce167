"""SIGINT and SIGTERM stop a run gracefully: files in flight finish or roll back, the
execution is left interrupted (exit 3), and the next run completes the copy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.e2e.conftest import assert_same_tree, clean_env, dryviq_command, part_files

pytestmark = pytest.mark.slow


def job(parallel: int) -> str:
    return json.dumps({"name": "big", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": "/copy"}},
        "performance": {"parallel_writes": {"requested": parallel}}}})


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_resumably_and_the_next_run_finishes(cli, tmp_path, sig):
    source, destination = tmp_path / "src", tmp_path / "dst"
    for folder in range(4):
        (source / f"f{folder}").mkdir(parents=True)
        for i in range(100):
            (source / f"f{folder}" / f"doc{i}.bin").write_bytes(os.urandom(64 * 1024))
    destination.mkdir()
    cli("connections", "add", "local", "src", "--path", source)
    cli("connections", "add", "local", "dst", "--path", destination)
    cli("jobs", "create", "--file", "-", input=job(parallel=1))

    run = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run", "big"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=clean_env())
    copied = destination / "copy"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(copied.rglob("*.bin"))) < 20:
        time.sleep(0.01)
    run.send_signal(sig)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 3, (out, err)
    assert "stopping" in err
    arrived = list(copied.rglob("*.bin"))
    assert 20 <= len(arrived) < 400, "the signal should land mid-run"
    assert part_files(destination) == []  # in-flight files finished or were rolled back
    for path in arrived:
        assert path.read_bytes() == (source / path.relative_to(copied)).read_bytes()

    history = cli.json("jobs", "history", "big")
    assert [e["status"] for e in history] == ["interrupted"]

    resumed = cli.json("jobs", "run", "big")
    assert resumed["status"] == "completed"
    assert resumed["stats"]["transferred"] == 400 - len(arrived)
    assert_same_tree(source, copied)
