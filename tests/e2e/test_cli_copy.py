"""The product page's "Simple Job", run by the real `dryviq-tui` between two local folders."""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    DESTINATION_CONNECTION,
    SIMPLE_JOB_JSON,
    SOURCE_CONNECTION,
    STATS_KEYS,
    Cli,
    assert_same_tree,
    clean_env,
    describe,
    dryviq_command,
    set_mtime,
    snapshot,
    tree,
)
from tests.processes import copy_workers_of

pytestmark = pytest.mark.slow

JOB = "Simple Job"
BASE_MTIME_NS = 1_600_000_000_123_456_789  # 2020-09-13, with sub-microsecond digits
MIB = 1 << 20


@dataclass
class Setup:
    cli: Cli
    source_root: Path  # the source connection's folder
    destination_root: Path  # the destination connection's folder
    job_file: Path

    @property
    def source(self) -> Path:  # the job's source folder
        return self.source_root / "sourceDocumentLibrary"

    @property
    def destination(self) -> Path:  # the job's destination folder
        return self.destination_root / "destinationFolder"

    def create_job(self, text: str = SIMPLE_JOB_JSON) -> subprocess.CompletedProcess[str]:
        self.job_file.write_text(text, encoding="utf-8")
        return self.cli("jobs", "create", "--file", self.job_file)

    def run(self, job: str = JOB, check: bool | int = 0) -> dict:
        result = self.cli.json("jobs", "run", job, check=check)
        assert isinstance(result, dict), result
        return result


def write_sample_tree(root: Path) -> dict[str, bytes]:
    """A small construction project: nested folders, accented and CJK names, an empty file,
    a 3 MiB file and an empty folder. Returns file contents by relative path."""
    files = {
        "Drawings/Architectural/Schéma élévation.pdf": b"%PDF-1.7 elevation\n" * 300,
        "Drawings/Architectural/図面.pdf": "図面 A-101\n".encode() * 50,
        "Drawings/Structural/Level 2/S-201 Framing Plan.pdf": b"%PDF-1.7 framing\n" * 999,
        "Specifications/Division 03 - Concrete.docx": b"PK\x03\x04 concrete spec" * 40,
        "Specifications/empty.txt": b"",
        "Photos/site photo.jpg": bytes(range(256)) * (3 * MIB // 256),
        "README.txt": b"Sample project for the e2e tests.\n",
    }
    for index, (rel, data) in enumerate(sorted(files.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        set_mtime(path, BASE_MTIME_NS + index * 1_000_000_007)
    (root / "Empty Folder").mkdir()
    return files


def make_setup(tmp_path: Path, cli: Cli, write: Callable[[Path], object] | None = None) -> Setup:
    setup = Setup(cli, tmp_path / "source", tmp_path / "destination", tmp_path / "job.json")
    setup.source.mkdir(parents=True)
    setup.destination_root.mkdir()
    (write or write_sample_tree)(setup.source)
    cli("connections", "add", "local", SOURCE_CONNECTION, "--path", setup.source_root)
    cli("connections", "add", "local", DESTINATION_CONNECTION, "--path", setup.destination_root)
    return setup


@pytest.fixture
def setup(tmp_path: Path, cli: Cli) -> Setup:
    return make_setup(tmp_path, cli)


def file_count(root: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(root))


def assert_stats(result: dict) -> dict:
    stats = result["stats"]
    missing = [key for key in STATS_KEYS if key not in stats]
    assert not missing, f"stats lack {missing}: {result}"
    return stats


def test_product_page_job_copies_the_tree_byte_for_byte(setup: Setup) -> None:
    created = setup.create_job()
    assert "warning" not in created.stderr.lower(), created.stderr  # accepted as it is
    assert JOB in created.stdout
    before = snapshot(setup.source_root)

    result = setup.run()

    assert result["status"] == "completed", result
    stats = assert_stats(result)
    files = file_count(setup.source)
    assert stats["files"] == files
    assert stats["transferred"] == files
    assert stats["bytes"] == sum(p.stat().st_size for p in setup.source.rglob("*")
                                 if p.is_file())
    assert stats["failed"] == stats["flagged"] == 0
    assert_same_tree(setup.source, setup.destination)
    assert (setup.destination / "Empty Folder").is_dir()
    assert snapshot(setup.source_root) == before, "the source was modified"


def test_second_run_has_no_changes(setup: Setup) -> None:
    setup.create_job()
    setup.run()
    copied = snapshot(setup.destination_root)

    again = setup.run()

    assert again["status"] == "no_changes", again
    assert assert_stats(again)["transferred"] == 0
    human = setup.cli("jobs", "run", JOB)
    assert "no changes" in human.stdout.lower(), describe(human)
    assert snapshot(setup.destination_root) == copied, "a no-change run touched the destination"
    assert_same_tree(setup.source, setup.destination)


def test_only_changed_and_new_files_are_sent(setup: Setup) -> None:
    setup.create_job()
    setup.run()
    changed = setup.source / "Specifications" / "Division 03 - Concrete.docx"
    changed.write_bytes(b"PK\x03\x04 concrete spec, revision 2")
    set_mtime(changed, BASE_MTIME_NS + 86_400 * 10**9)
    added = setup.source / "Drawings" / "Architectural" / "A-102 Sections.pdf"
    added.write_bytes(b"%PDF-1.7 sections\n")

    result = setup.run()

    assert result["status"] == "completed", result
    assert assert_stats(result)["transferred"] == 2, result
    assert_same_tree(setup.source, setup.destination)


def test_deletes_are_not_propagated(setup: Setup) -> None:
    setup.create_job()
    setup.run()
    gone = setup.source / "Drawings" / "Architectural" / "図面.pdf"
    kept = gone.read_bytes()
    gone.unlink()

    result = setup.run()

    assert result["status"] in ("completed", "no_changes"), result
    assert assert_stats(result)["transferred"] == 0
    at_destination = setup.destination / "Drawings" / "Architectural" / "図面.pdf"
    assert at_destination.read_bytes() == kept


def test_simulation_writes_nothing_and_records_the_plan(setup: Setup) -> None:
    text = SIMPLE_JOB_JSON.replace('"simulation_mode": false', '"simulation_mode": true')
    assert text != SIMPLE_JOB_JSON
    setup.create_job(text)
    source_before = snapshot(setup.source_root)
    destination_before = snapshot(setup.destination_root)

    result = setup.run()

    assert result["status"] == "completed", result
    assert snapshot(setup.destination_root) == destination_before, "a simulation wrote"
    assert not setup.destination.exists()
    assert snapshot(setup.source_root) == source_before
    items = setup.cli.json("jobs", "items", JOB)
    files = {"/" + p.relative_to(setup.source).as_posix()
             for p in setup.source.rglob("*") if p.is_file()}
    planned = {i["path"]: i for i in items if not i["is_dir"]}
    assert set(planned) == files, items
    for item in planned.values():
        assert (item["action"], item["status"]) == ("create", "pending"), item


def test_inspection_commands(setup: Setup) -> None:
    text = SIMPLE_JOB_JSON.replace('"kind": "transfer",',
                                   '"kind": "transfer", "x_reviewed_by": "site office",')
    assert text != SIMPLE_JOB_JSON
    created = setup.create_job(text)
    assert "x_reviewed_by" in created.stderr and "warning" in created.stderr.lower(), (
        describe(created))
    setup.run()
    cli = setup.cli

    connections = cli.json("connections", "list")
    by_name = {c["name"]: c for c in connections}
    assert set(by_name) == {SOURCE_CONNECTION, DESTINATION_CONNECTION}
    assert by_name[SOURCE_CONNECTION]["platform"] == "local"
    assert by_name[SOURCE_CONNECTION]["location"] == str(setup.source_root.resolve())

    shown = cli.json("connections", "show", SOURCE_CONNECTION)
    assert [j["name"] for j in shown["jobs"]] == [JOB]
    human = cli("connections", "show", by_name[DESTINATION_CONNECTION]["id"])
    assert DESTINATION_CONNECTION in human.stdout and JOB in human.stdout
    tested = cli("connections", "test", SOURCE_CONNECTION)
    assert "succeeded" in tested.stdout.lower(), describe(tested)
    assert cli.json("connections", "test", DESTINATION_CONNECTION)["ok"] is True

    listing = cli.json("ls", f"{SOURCE_CONNECTION}:/sourceDocumentLibrary", "-R")
    expected = {"/sourceDocumentLibrary/" + p.relative_to(setup.source).as_posix(): p
                for p in setup.source.rglob("*")}
    assert {e["path"] for e in listing} == set(expected)
    for entry in listing:
        path = expected[entry["path"]]
        assert entry["is_dir"] == path.is_dir(), entry
        if not entry["is_dir"]:
            assert entry["size"] == path.stat().st_size, entry
    top = cli.json("ls", DESTINATION_CONNECTION)
    assert [e["name"] for e in top] == ["destinationFolder"]

    jobs = cli.json("jobs", "list")
    assert [(j["name"], j["transfer_type"]) for j in jobs] == [(JOB, "copy")]
    assert jobs[0]["last_execution"]["status"] == "completed"

    job = cli.json("jobs", "show", JOB)
    assert job["definition"] == json.loads(text)
    assert job["definition"]["x_reviewed_by"] == "site office"
    assert job["source"]["path"] == "/sourceDocumentLibrary"
    assert job["destination"]["path"] == "/destinationFolder"
    assert job["category"] == "Report {Name}"
    assert text.strip() in cli("jobs", "show", JOB).stdout  # kept verbatim

    history = cli.json("jobs", "history", JOB)
    assert [e["status"] for e in history] == ["completed"]
    files = file_count(setup.source)
    assert history[0]["stats"]["transferred"] == files

    rows = list(csv.DictReader(io.StringIO(cli("jobs", "items", JOB, "--csv").stdout)))
    body = {row["id"]: row for row in rows}  # DryvIQ's item columns
    drawing = body["/Drawings/Architectural/図面.pdf"]
    assert (drawing["status"], drawing["action"], drawing["type"]) == ("success", "create", "file")
    assert drawing["source_path"] == "/sourceDocumentLibrary/Drawings/Architectural/図面.pdf"
    assert drawing["destination_path"] == "/destinationFolder/Drawings/Architectural/図面.pdf"
    assert (body["/Empty Folder"]["status"], body["/Empty Folder"]["action"]) == (
        "success", "mkdir")
    assert sum(1 for row in rows if row["type"] == "file") == files

    refused = cli("connections", "remove", SOURCE_CONNECTION, check=2)
    assert JOB in refused.stderr, describe(refused)
    assert {c["name"] for c in cli.json("connections", "list")} == set(by_name)


def write_hostile_tree(tmp_path: Path) -> Callable[[Path], None]:
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(b"top secret, outside the source root")
    (outside / "folder" / "also secret.txt").write_bytes(b"top secret, in a folder outside")

    def write(source: Path) -> None:
        (source / "inside").mkdir()
        (source / "inside" / "target.txt").write_bytes(b"reached through a symlink inside")
        (source / "plain.txt").write_bytes(b"plain")
        (source / "link inside").symlink_to(Path("inside") / "target.txt")
        (source / "link to outside file").symlink_to(outside / "secret.txt")
        (source / "link to outside folder").symlink_to(outside / "folder")
        # relative, climbing out of the connection root
        (source / "inside" / "relative escape").symlink_to(Path("../../../outside/secret.txt"))

    return write


def test_symlinks_in_the_source_never_lead_outside(tmp_path: Path, cli: Cli) -> None:
    setup = make_setup(tmp_path, cli, write_hostile_tree(tmp_path))
    assert (setup.source / "inside" / "relative escape").read_bytes().startswith(b"top secret")
    setup.create_job()
    outside = tmp_path / "outside"
    outside_before = snapshot(outside)
    source_before = snapshot(setup.source_root)
    neighbours = sorted(p.name for p in tmp_path.iterdir())

    result = setup.run()

    assert result["status"] == "completed", result
    assert snapshot(outside) == outside_before, "something outside was modified"
    assert snapshot(setup.source_root) == source_before, "the source was modified"
    assert sorted(p.name for p in tmp_path.iterdir()) == neighbours
    arrived = tree(setup.destination)
    assert arrived["link inside"][:2] == ("file", b"reached through a symlink inside")
    assert arrived["plain.txt"][:2] == ("file", b"plain")
    for name in ("link to outside file", "link to outside folder",
                 "inside/relative escape"):
        assert name not in arrived, f"{name} arrived at the destination"
    assert not any(e[0] == "link" for e in arrived.values()), arrived
    assert not any(e[0] == "file" and b"top secret" in e[1] for e in arrived.values())

    skipped = {i["path"]: i for i in setup.cli.json("jobs", "items", JOB, "--status",
                                                    "skipped")}
    for path in ("/link to outside file", "/link to outside folder",
                 "/inside/relative escape"):
        assert path in skipped, f"{path} not listed as skipped: {skipped}"
        reason = skipped[path]["note"] or skipped[path]["last_error"]
        assert reason and "outside" in reason, skipped[path]


def test_symlinks_at_the_destination_are_not_written_through(tmp_path: Path,
                                                             cli: Cli) -> None:
    setup = make_setup(tmp_path, cli)
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(b"outside, must stay as it is")
    setup.destination.mkdir()
    (setup.destination / "Drawings").symlink_to(outside / "folder")
    (setup.destination / "README.txt").symlink_to(outside / "secret.txt")
    setup.create_job()
    before = snapshot(outside)

    proc = setup.cli("jobs", "run", JOB, check=False)

    assert proc.returncode in (0, 4), describe(proc)
    assert snapshot(outside) == before, "a write followed a destination symlink outside"


def test_home_from_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "state home"
    source, destination = tmp_path / "source", tmp_path / "destination"
    write_sample_tree(source / "sourceDocumentLibrary")
    destination.mkdir()
    by_env = Cli(home)
    env = clean_env(DRYVIQ_HOME=str(home))

    by_env("connections", "add", "local", SOURCE_CONNECTION, "--path", source,
           home=False, env=env)
    by_env("connections", "add", "local", DESTINATION_CONNECTION, "--path", destination,
           home=False, env=env)
    job_file = tmp_path / "job.json"
    job_file.write_text(SIMPLE_JOB_JSON, encoding="utf-8")
    by_env("jobs", "create", "--file", job_file, home=False, env=env)
    ran = by_env("jobs", "run", JOB, "--json", home=False, env=env)
    assert json.loads(ran.stdout)["status"] == "completed"

    by_flag = Cli(home)
    assert {c["name"] for c in by_flag.json("connections", "list")} == {
        SOURCE_CONNECTION, DESTINATION_CONNECTION}
    assert [e["status"] for e in by_flag.json("jobs", "history", JOB)] == ["completed"]
    listed = by_env("jobs", "list", "--json", home=False, env=env)
    assert json.loads(listed.stdout) == by_flag.json("jobs", "list")
    assert_same_tree(source / "sourceDocumentLibrary", destination / "destinationFolder")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "state.db").stat().st_mode) == 0o600


def test_headless_commands_do_not_import_textual(setup: Setup, tmp_path: Path) -> None:
    setup.create_job()
    probe = ("import sys, core.cli\n"
             f"code = core.cli.main(['jobs', 'list', '--home', {str(setup.cli.home)!r}])\n"
             "print('textual' in sys.modules, code)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=clean_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.splitlines()[-1] == "False 0", describe(proc)

    # The real commands, with packages that refuse to be imported first on the path: the UI,
    # and the web stack of the Procore sign-in and the sandbox, which a local job never needs
    # (they take longer to import than a whole no-change run).
    poison = tmp_path / "poison"
    for package in HEAVY_PACKAGES:
        (poison / package).mkdir(parents=True)
        (poison / package / "__init__.py").write_text(
            f"raise ImportError('{package} imported by a headless local command')\n")
    env = clean_env(PYTHONPATH=str(poison))
    for package in HEAVY_PACKAGES:
        check = subprocess.run([sys.executable, "-c", f"import {package}"], capture_output=True,
                               text=True, env=env, cwd=tmp_path, timeout=120)
        assert check.returncode != 0, f"the poisoned {package} did not take effect"
    for args in (["jobs", "list"], ["jobs", "run", JOB], ["jobs", "history", JOB],
                 ["ls", f"{DESTINATION_CONNECTION}:/", "-R"], ["connections", "list"],
                 ["connections", "test", DESTINATION_CONNECTION], ["--help"]):
        proc = subprocess.run([*dryviq_command(), "--home", str(setup.cli.home), *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=120)
        assert proc.returncode == 0, describe(proc)
    assert_same_tree(setup.source, setup.destination)


HEAVY_PACKAGES = ("textual", "httpx", "authlib", "starlette", "uvicorn")


UNUSUAL_NAMES = [
    "Sche\u0301ma decomposed.pdf",  # NFD, as macOS writes it
    "new\nline.txt", "tab\there.txt", "back\\slash.txt", " leading space.txt",
    "trailing space .txt", "trailing dot.", "colon: yes.txt", "wild *?<>|.txt",
    "x" * 255, "図" * 85,  # 255 bytes each, the longest a name can be
    ".dryviq-notes.txt",  # our temporary files' prefix, but not their pattern
    "CASE.txt", "case.txt",
]


def test_unusual_names_arrive_unchanged(tmp_path: Path, cli: Cli) -> None:
    def write(source: Path) -> None:
        for index, name in enumerate(UNUSUAL_NAMES):
            (source / name).write_bytes(f"{index}: {name}".encode())
            set_mtime(source / name, BASE_MTIME_NS + index)

    setup = make_setup(tmp_path, cli, write)
    setup.create_job()

    result = setup.run()

    assert result["status"] == "completed", result
    assert result["stats"]["transferred"] == len(UNUSUAL_NAMES)
    assert_same_tree(setup.source, setup.destination)
    assert setup.run()["status"] == "no_changes"


def test_file_name_that_is_not_utf8(tmp_path: Path, cli: Cli) -> None:
    """Old shares hold Latin-1 names that no other platform can store: the file is flagged
    for a person to rename, the rest of the job completes, and nothing crashes."""
    odd = b"Plan r\xe9vis\xe9.pdf"  # Latin-1, not valid UTF-8

    def write(source: Path) -> None:
        (source / "good.pdf").write_bytes(b"good")
        with open(os.path.join(os.fsencode(source), odd), "wb") as file:
            file.write(b"latin-1 named")

    setup = make_setup(tmp_path, cli, write)
    setup.create_job()

    for attempt in ("first run", "second run"):
        proc = setup.cli("jobs", "run", JOB, "--json", check=False)
        assert proc.returncode == 4, f"{attempt}\n{describe(proc)}"
        assert "Plan r\\xe9vis\\xe9.pdf" in proc.stderr  # named, escaped, on the flagged line
    assert (setup.destination / "good.pdf").read_bytes() == b"good"
    assert not os.path.exists(os.path.join(os.fsencode(setup.destination), odd))
    (flagged,) = setup.cli.json("jobs", "items", JOB, "--status", "remediation")
    assert flagged["path"] == "/Plan r\\xe9vis\\xe9.pdf"
    assert "not valid UTF-8" in flagged["note"]


def test_source_file_named_like_a_temporary_file_is_left_alone(tmp_path: Path,
                                                               cli: Cli) -> None:
    """The source is never modified, even by the clean-up of stale temporary files: a source
    file named like one (`.dryviq-<pid>-<8 hex>.part`, pid not running) is skipped, not deleted."""
    name = ".dryviq-9999999-0badf00d.part"  # no process has pid 9999999 (> pid_max)

    def write(source: Path) -> None:
        (source / "plan.pdf").write_bytes(b"plan")
        (source / name).write_bytes(b"a user's file, whatever its name")

    setup = make_setup(tmp_path, cli, write)
    setup.create_job()
    before = snapshot(setup.source_root)

    setup.cli("jobs", "run", JOB)

    assert (setup.source / name).exists(), f"the job deleted {name} from the source"
    assert snapshot(setup.source_root) == before, "the source was modified"
    (skipped,) = setup.cli.json("jobs", "items", JOB, "--status", "skipped")
    assert skipped["path"] == "/" + name and "interrupted transfer" in skipped["note"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_many_small_files_are_copied_by_workers_that_end_with_the_job(
        tmp_path: Path, cli: Cli) -> None:
    def small_files(root: Path) -> None:
        for folder in range(10):
            (root / f"folder {folder}").mkdir()
            for index in range(400):
                (root / f"folder {folder}" / f"{index}.txt").write_bytes(
                    f"{folder}/{index}\n".encode() * 20)

    setup = make_setup(tmp_path, cli, small_files)
    setup.create_job()
    job = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run", JOB],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL, env=clean_env())
    expected = 2 if len(os.sched_getaffinity(0)) > 1 else 0
    workers: set[int] = set()  # seen while the job ran
    while job.poll() is None and len(workers) < expected:
        workers.update(copy_workers_of(job.pid))
    stdout, stderr = job.communicate(timeout=300)

    assert job.returncode == 0, f"{stdout}\n{stderr}"
    assert len(workers) == expected, workers
    assert "copying in this process" not in stderr, stderr  # no worker failed
    assert_same_tree(setup.source, setup.destination)
    for pid in workers:  # the job waited for them: no copy goes on behind it
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} outlived the job"


def test_batches_fit_the_open_files_limit(tmp_path: Path, cli: Cli) -> None:
    def small_files(root: Path) -> None:
        for index in range(1_000):
            (root / f"{index}.txt").write_bytes(b"x" * index)

    setup = make_setup(tmp_path, cli, small_files)
    setup.create_job()

    def few_descriptors() -> None:  # batches of 256 would need 4 times as many
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    proc = subprocess.run([*dryviq_command(), "--home", str(cli.home), "jobs", "run", JOB],
                          capture_output=True, text=True, env=clean_env(), timeout=300,
                          stdin=subprocess.DEVNULL, preexec_fn=few_descriptors)
    assert proc.returncode == 0, describe(proc)
    assert_same_tree(setup.source, setup.destination)
