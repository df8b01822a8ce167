"""Bad input to the real `dryviq-tui`: exit code 2, a message that names what is wrong, and
nothing created; and a run that cannot start exits 1 saying why."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    DESTINATION_CONNECTION,
    SIMPLE_JOB_JSON,
    SOURCE_CONNECTION,
    Cli,
    clean_env,
    describe,
    dryviq_command,
)

pytestmark = pytest.mark.slow

JOB = "Simple Job"


@dataclass
class Connected:
    cli: Cli
    tmp_path: Path
    source_root: Path
    destination_root: Path

    def job_file(self, text: str, name: str = "job.json") -> Path:
        path = self.tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path


@pytest.fixture
def connected(tmp_path: Path, cli: Cli) -> Connected:
    source_root, destination_root = tmp_path / "source", tmp_path / "destination"
    (source_root / "sourceDocumentLibrary" / "Drawings").mkdir(parents=True)
    (source_root / "sourceDocumentLibrary" / "Drawings" / "A-101.pdf").write_bytes(b"%PDF")
    destination_root.mkdir()
    cli("connections", "add", "local", SOURCE_CONNECTION, "--path", source_root)
    cli("connections", "add", "local", DESTINATION_CONNECTION, "--path", destination_root)
    return Connected(cli, tmp_path, source_root, destination_root)


def edited(change: Callable[[dict[str, Any]], object]) -> str:
    """The product page's job with one change."""
    job = copy.deepcopy(json.loads(SIMPLE_JOB_JSON))
    change(job)
    return json.dumps(job, indent=2)


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def change(job: dict[str, Any]) -> None:
        for key in parents:
            job = job.setdefault(key, {})
        job[last] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def change(job: dict[str, Any]) -> None:
        for key in parents:
            job = job[key]
        del job[last]

    return change


# (id, job text, the JSON path the message must name or None, other text it must contain)
MALFORMED = [
    ("truncated JSON", SIMPLE_JOB_JSON[:120], None, ["not valid JSON"]),
    ("empty file", "", None, ["not valid JSON"]),
    ("top-level array", json.dumps([json.loads(SIMPLE_JOB_JSON)]), "(top level)", ["array"]),
    ("missing name", edited(_delete("name")), "name", ["required"]),
    ("name not a string", edited(_set("name", 42)), "name", ["42"]),
    ("unknown kind", edited(_set("kind", "analysis")), "kind", ['"analysis"', "transfer"]),
    ("transfer not an object", edited(_set("transfer", "copy")), "transfer", ['"copy"']),
    ("unknown transfer type", edited(_set("transfer.transfer_type", "cpy")),
     "transfer.transfer_type",
     ['transfer.transfer_type: "cpy" is not one of copy, sync, move, migrate, publish, '
      'taxonomy']),
    ("simulation_mode not a boolean", edited(_set("transfer.simulation_mode", "yes")),
     "transfer.simulation_mode", ['"yes"']),
    ("parallel_writes 0", edited(_set("transfer.performance.parallel_writes", 0)),
     "transfer.performance.parallel_writes", ["0"]),
    ("parallel_writes.requested 0",
     edited(_set("transfer.performance.parallel_writes", {"requested": 0})),
     "transfer.performance.parallel_writes.requested", ["0"]),
    ("missing source", edited(_delete("transfer.source")), "transfer.source", ["required"]),
    ("missing destination path", edited(_delete("transfer.destination.target")),
     "transfer.destination.target", []),
    ("unknown connection id",
     edited(_set("transfer.source.connection.id", "No Such Connection 42")),
     "transfer.source.connection.id", ["No Such Connection 42"]),
    ("source path with ..",
     edited(_set("transfer.source.target.path", "/sourceDocumentLibrary/../../etc")),
     "transfer.source.target.path", [".."]),
    ("destination path with ..",
     edited(_set("transfer.destination.target.path", "/../outside")),
     "transfer.destination.target.path", [".."]),
    ("100,000 nested arrays",
     SIMPLE_JOB_JSON.rstrip().removesuffix("}") + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "x" + "[0]" * 31, ["nested deeper than 32 levels"]),
    ("lone surrogate in the name", edited(_set("name", "\ud800")), "name", ["lone surrogate"]),
]


@pytest.mark.parametrize(("text", "field", "fragments"),
                         [pytest.param(t, f, x, id=i) for i, t, f, x in MALFORMED])
def test_malformed_job_is_refused(connected: Connected, text: str, field: str | None,
                                  fragments: list[str]) -> None:
    proc = connected.cli("jobs", "create", "--file", connected.job_file(text), check=2)

    lines = [line.strip() for line in proc.stderr.splitlines()]
    if field is not None:
        assert any(line.startswith(f"{field}:") for line in lines), (
            f"no message names {field}\n{describe(proc)}")
    for fragment in fragments:
        assert fragment in proc.stderr, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    assert connected.cli.json("jobs", "list") == [], "a job was created anyway"


def test_several_problems_are_reported_at_once(connected: Connected) -> None:
    text = edited(lambda job: (_set("transfer.transfer_type", "cpy")(job),
                               _set("transfer.simulation_mode", "yes")(job)))
    proc = connected.cli("jobs", "create", "--file", connected.job_file(text), check=2)
    assert "transfer.transfer_type" in proc.stderr and "transfer.simulation_mode" in proc.stderr, (
        describe(proc))


def test_missing_job_file(connected: Connected) -> None:
    missing = connected.tmp_path / "no such job.json"
    proc = connected.cli("jobs", "create", "--file", missing, check=2)
    assert str(missing) in proc.stderr, describe(proc)
    assert connected.cli.json("jobs", "list") == []


def test_run_of_unknown_job(connected: Connected) -> None:
    proc = connected.cli("jobs", "run", "NoSuchJob", check=2)
    assert "NoSuchJob" in proc.stderr, describe(proc)


def test_ls_of_unknown_connection(cli: Cli) -> None:
    proc = cli("ls", "nosuch:/", check=2)
    assert "nosuch" in proc.stderr, describe(proc)


def test_connection_to_a_missing_folder(cli: Cli) -> None:
    proc = cli("connections", "add", "local", "x", "--path", "/does/not/exist", check=2)
    assert "/does/not/exist" in proc.stderr, describe(proc)
    assert cli.json("connections", "list") == []


def test_duplicate_connection_name(connected: Connected) -> None:
    other = connected.tmp_path / "other"
    other.mkdir()
    proc = connected.cli("connections", "add", "local", SOURCE_CONNECTION, "--path", other,
                         check=2)
    assert SOURCE_CONNECTION in proc.stderr, describe(proc)
    listed = connected.cli.json("connections", "list")
    assert sorted(c["name"] for c in listed) == sorted([SOURCE_CONNECTION,
                                                        DESTINATION_CONNECTION])
    source = next(c for c in listed if c["name"] == SOURCE_CONNECTION)
    assert source["location"] == str(connected.source_root.resolve())


def test_duplicate_job_name(connected: Connected) -> None:
    first = connected.cli.json("jobs", "create", "--file", connected.job_file(SIMPLE_JOB_JSON))
    again = edited(_set("name", JOB.upper()))
    proc = connected.cli("jobs", "create", "--file", connected.job_file(again), check=2)
    assert f"name: a job named {JOB!r} already exists (id {first['id']})" in proc.stderr, (
        describe(proc))
    assert [job["id"] for job in connected.cli.json("jobs", "list")] == [first["id"]]


def test_missing_source_folder_at_run_time(connected: Connected) -> None:
    connected.cli("jobs", "create", "--file", connected.job_file(SIMPLE_JOB_JSON))
    (connected.source_root / "sourceDocumentLibrary").rename(connected.source_root / "moved")

    proc = connected.cli("jobs", "run", JOB, check=1)
    assert "/sourceDocumentLibrary" in proc.stdout + proc.stderr, describe(proc)
    result = connected.cli.json("jobs", "run", JOB, check=1)
    assert result["status"] == "failed", result
    assert "/sourceDocumentLibrary" in result["error"], result
    assert [e["status"] for e in connected.cli.json("jobs", "history", JOB)] == [
        "failed", "failed"]
    assert not (connected.destination_root / "destinationFolder").exists()


def test_destination_inside_the_source(connected: Connected) -> None:
    """A destination inside the job's own source is refused (exit 2): a run would copy its
    own output into itself, `copy/copy/copy/...`, until paths grew too long."""
    inner = "copy " + "x" * 200  # a long name, so a runaway recursion would stop soon
    text = edited(lambda job: (
        _set("transfer.destination.connection.id", SOURCE_CONNECTION)(job),
        _set("transfer.destination.target.path", f"/sourceDocumentLibrary/{inner}")(job)))
    created = connected.cli("jobs", "create", "--file", connected.job_file(text), check=2)
    assert "transfer.destination.target.path: the destination is inside the source" in (
        created.stderr)
    assert connected.cli.json("jobs", "list") == []
    library = connected.source_root / "sourceDocumentLibrary"
    assert not (library / inner).exists()


def test_json_into_a_closed_pipe(connected: Connected) -> None:
    """`dryviq-tui ... --json | head -1` must not end with a traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte is written
    try:
        proc = subprocess.run(
            [*dryviq_command(), "--home", str(connected.cli.home), "connections", "list",
             "--json"], stdout=write, stderr=subprocess.PIPE, text=True, env=clean_env(),
            timeout=120)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 141  # as a shell reports a process ended by SIGPIPE
