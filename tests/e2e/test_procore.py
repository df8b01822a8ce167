"""Procore end to end: the real command against the embedded sandbox over real HTTP.

The sandbox runs in this process (a thread), so a test can look inside it: the documents a
job left, how many versions a file has, what the storage host was sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from core.auth import OOB_REDIRECT
from core.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SERVICE_CLIENT_ID,
    SERVICE_CLIENT_SECRET,
    SandboxConfig,
)
from tests.e2e.conftest import Cli, clean_env, describe, dryviq_command

pytestmark = pytest.mark.slow

COMPANY, PROJECT = "Summit Builders", "Riverside Medical Center"
SECRET_ENV = "SANDBOX_SECRET"


def env() -> dict[str, str]:
    return clean_env(**{SECRET_ENV: SANDBOX_CLIENT_SECRET})


def add_procore(cli: Cli, sandbox, name: str = "procore", check: bool | int = True,
                secret: str = SANDBOX_CLIENT_SECRET) -> subprocess.CompletedProcess[str]:
    """Add a connection the way a user over SSH does: the code pasted on stdin."""
    code = sandbox.world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT)
    return cli("connections", "add", "procore", name, "--domain", sandbox.url,
               "--client-id", SANDBOX_CLIENT_ID, "--client-secret-env", SECRET_ENV,
               "--company", COMPANY, "--project", PROJECT, input=code + "\n", check=check,
               env=clean_env(**{SECRET_ENV: secret}))


def project_id(world, name: str = PROJECT) -> int:
    return next(p.id for p in world.projects.values() if p.name == name)


def remote(world, folder: str) -> dict[str, bytes | None]:
    """The project's documents under `folder`, by path relative to it."""
    prefix = folder.strip("/") + "/"
    return {path[len(prefix):]: content for path, content in world.tree(project_id(world)).items()
            if path.startswith(prefix)}


def local(root: Path) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = Path(path).read_bytes()
    return found


def write_tree(root: Path) -> dict[str, bytes | None]:
    files = {
        "Drawings/A-101 Floor Plan.pdf": os.urandom(70_000),
        "Drawings/Détails façade №2.pdf": b"unicode names travel intact",
        "Drawings/Structural/S-201 Framing.pdf": os.urandom(5 << 20),  # the Uploads API
        "Specifications/empty.txt": b"",
        "Specifications/03 30 00 Concrete.pdf": os.urandom(300_000),
        "RFIs/RFI-014.pdf": b"beam pocket conflict",
    }
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    (root / "Photos").mkdir()
    return local(root)


def job(cli: Cli, tmp_path: Path, name: str, source: tuple[str, str],
        destination: tuple[str, str], **transfer: object) -> None:
    definition = {"name": name, "kind": "transfer",
                  "transfer": {"transfer_type": "copy",
                               "source": {"connection": {"id": source[0]},
                                          "target": {"path": source[1]}},
                               "destination": {"connection": {"id": destination[0]},
                                               "target": {"path": destination[1]}},
                               **transfer},
                  "schedule": {"mode": "manual"}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(definition))
    cli("jobs", "create", "--file", path)


def run(cli: Cli, name: str, check: bool | int = True) -> dict:
    return cli.json("jobs", "run", name, check=check)


@pytest.fixture
def files(tmp_path: Path, cli: Cli) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    cli("connections", "add", "local", "files", "--path", root)
    return root


def test_sign_in_by_pasted_code_then_test_and_browse(cli: Cli, sandbox) -> None:
    added = add_procore(cli, sandbox)
    assert "Connection test succeeded: signed in as Pat Morgan" in added.stdout
    assert SANDBOX_CLIENT_SECRET not in added.stdout + added.stderr
    assert "/oauth/authorize?" in added.stderr  # the sign-in URL, for a browser anywhere
    tested = cli("connections", "test", "procore")
    assert "signed in as Pat Morgan" in tested.stdout and PROJECT in tested.stdout
    listing = cli.json("ls", "procore:/Drawings")
    assert listing and all(entry["path"].startswith("/Drawings/") for entry in listing)
    assert "Recycle Bin" not in cli("ls", "procore:/").stdout


def test_service_account_signs_in_with_client_credentials(cli: Cli, sandbox) -> None:
    company = next(c.id for c in sandbox.world.companies.values() if c.name == COMPANY)
    added = cli("connections", "add", "procore", "service", "--domain", sandbox.url,
                "--client-id", SERVICE_CLIENT_ID, "--client-secret-env", "SERVICE_SECRET",
                "--grant", "client_credentials", "--company", str(company),
                env=clean_env(SERVICE_SECRET=SERVICE_CLIENT_SECRET))
    assert "DryvIQ Service Account" in added.stdout
    shown = cli.json("connections", "show", "service")
    assert shown["config"]["grant"] == "client_credentials"
    assert SERVICE_CLIENT_SECRET not in json.dumps(shown)
    cli("connections", "test", "service")


def test_a_wrong_secret_is_a_clear_error(cli: Cli, sandbox) -> None:
    failed = add_procore(cli, sandbox, secret="not-the-secret", check=1)
    assert "client" in failed.stderr.lower() and "not-the-secret" not in failed.stderr
    assert cli.json("connections", "list") == []  # nothing half-made is left behind


def test_a_revoked_sign_in_asks_to_sign_in_again_and_signin_mends_it(cli: Cli,
                                                                     sandbox) -> None:
    add_procore(cli, sandbox)
    connection_id = cli.json("connections", "show", "procore")["id"]
    sandbox.world.revoke_refresh_tokens()
    sandbox.world.expire_access_tokens()
    tested = cli("connections", "test", "procore", check=1)
    assert "sign in again" in tested.stdout.lower() and "connections signin" in tested.stdout
    code = sandbox.world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT)
    renewed = cli("connections", "signin", "procore", input=code + "\n", env=env())
    assert "Signed in again: procore as Pat Morgan" in renewed.stdout
    assert code not in renewed.stdout + renewed.stderr
    assert cli.json("connections", "show", "procore")["id"] == connection_id  # same one
    assert "signed in as Pat Morgan" in cli("connections", "test", "procore").stdout
    cli("connections", "remove", "procore")  # revokes the sign-in at Procore too
    assert sandbox.world.requests["POST /oauth/revoke"] == 1


def test_copy_to_procore_and_back(cli: Cli, sandbox, files: Path, tmp_path: Path) -> None:
    world = sandbox.world
    expected = write_tree(files)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "up", ("files", "/"), ("procore", "/Imports"))
    first = run(cli, "up")
    assert first["status"] == "completed", first
    assert remote(world, "Imports") == expected

    posts = world.requests["POST /rest/v1.0/files"]
    again = run(cli, "up")
    assert again["status"] == "no_changes", again
    assert world.requests["POST /rest/v1.0/files"] == posts  # nothing uploaded twice
    assert again["stats"]["api_calls"] <= 3  # the documents index, not a call per folder

    changed = files / "RFIs" / "RFI-014.pdf"
    changed.write_bytes(b"beam pocket conflict, answered")
    assert run(cli, "up")["stats"]["transferred"] == 1
    assert world.versions(project_id(world), "Imports/RFIs/RFI-014.pdf") == 2
    assert remote(world, "Imports") == local(files)  # a new version, not a second document

    back = tmp_path / "back"
    back.mkdir()
    cli("connections", "add", "local", "back", "--path", back)
    job(cli, tmp_path, "down", ("procore", "/Imports"), ("back", "/"))
    assert run(cli, "down")["status"] == "completed"
    assert local(back) == local(files)
    assert run(cli, "down")["status"] == "no_changes"
    assert world.storage_auth_refusals == 0  # the token never went to the storage host


def test_names_procore_rejects_are_renamed_or_flagged(cli: Cli, sandbox, files: Path,
                                                      tmp_path: Path) -> None:
    (files / "Plan: rev?.pdf").write_bytes(b"colon and question mark")
    (files / "Spec .pdf").write_bytes(b"space before the extension")
    add_procore(cli, sandbox)
    job(cli, tmp_path, "renaming", ("files", "/"), ("procore", "/Renamed"))
    renamed = run(cli, "renaming")
    assert renamed["status"] == "completed" and renamed["stats"]["failed"] == 0
    assert sorted(remote(sandbox.world, "Renamed")) == ["Plan_ rev_.pdf", "Spec.pdf"]

    job(cli, tmp_path, "strict", ("files", "/"), ("procore", "/Strict"),
        segment_transform=False)
    flagged = run(cli, "strict", check=4)
    assert flagged["status"] == "warn" and flagged["stats"]["flagged"] == 2
    assert flagged["stats"]["failed"] == 0
    assert remote(sandbox.world, "Strict") == {}


def _hammer(url: str, token: str, company: int, stop: threading.Event) -> None:
    """Another integration on the same API client, ignoring the limits for a few seconds."""
    deadline = time.monotonic() + 6
    with httpx.Client(base_url=url) as http:
        while not stop.is_set() and time.monotonic() < deadline:
            http.get("/rest/v1.0/me", headers={"Authorization": f"Bearer {token}"})
            http.get("/rest/v1.0/companies", headers={"Authorization": f"Bearer {token}",
                                                       "Procore-Company-Id": str(company)})


def test_a_429_storm_ends_complete_with_nothing_failed(cli: Cli, make_sandbox, files: Path,
                                                       tmp_path: Path) -> None:
    sandbox = make_sandbox(SandboxConfig(spike_limit=20))
    write_tree(files)
    add_procore(cli, sandbox)
    code = sandbox.world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT)
    token = httpx.post(f"{sandbox.url}/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": OOB_REDIRECT,
        "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
    }).json()["access_token"]
    stop = threading.Event()
    hammer = threading.Thread(target=_hammer, args=(sandbox.url, token, 0, stop))
    hammer.start()
    try:
        job(cli, tmp_path, "storm", ("files", "/"), ("procore", "/Storm"))
        result = run(cli, "storm")
    finally:
        stop.set()
        hammer.join()
    stats = result["stats"]
    assert stats["rate_limited"] > 0  # the job met the storm
    assert result["status"] == "completed" and stats["failed"] == 0
    assert remote(sandbox.world, "Storm") == local(files)


def test_server_errors_and_dropped_answers_leave_no_duplicates(
        cli: Cli, make_sandbox, files: Path, tmp_path: Path) -> None:
    sandbox = make_sandbox(SandboxConfig(fail_rate=0.1, drop_rate=0.1, seed=7))
    write_tree(files)
    for n in range(30):
        (files / "Photos" / f"IMG_{n:04d}.jpg").write_bytes(os.urandom(2000 + n))
    add_procore(cli, sandbox)
    job(cli, tmp_path, "flaky", ("files", "/"), ("procore", "/Flaky"))
    result = run(cli, "flaky")
    assert result["status"] == "completed", result
    assert remote(sandbox.world, "Flaky") == local(files)  # no "name (1).ext" twins


def test_sigkill_mid_upload_then_resume_leaves_no_duplicates(
        cli: Cli, make_sandbox, files: Path, tmp_path: Path) -> None:
    sandbox = make_sandbox(SandboxConfig(latency=0.1))
    for n in range(60):
        (files / f"Sheet {n:03d}.pdf").write_bytes(os.urandom(1000 + n))
    add_procore(cli, sandbox)
    job(cli, tmp_path, "killed", ("files", "/"), ("procore", "/Killed"))
    uploaded = [0]
    for _ in range(2):  # kill each run once a few more files have arrived
        proc = subprocess.Popen([*dryviq_command(), "--home", str(cli.home), "jobs", "run",
                                 "killed"], env=env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while (len(remote(sandbox.world, "Killed")) < uploaded[-1] + 5
               and time.monotonic() < deadline and proc.poll() is None):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        uploaded.append(len(remote(sandbox.world, "Killed")))
    assert 0 < uploaded[1] < uploaded[2] < 60, uploaded  # killed mid-run, twice
    done = cli("jobs", "run", "killed", "--json")
    assert json.loads(done.stdout)["status"] in ("completed", "no_changes"), describe(done)
    assert remote(sandbox.world, "Killed") == local(files)


def budget_sandbox(make_sandbox):
    """An 'hourly' budget of 40 calls in a 30-second window: long enough to be told apart
    from the 10-second spike window even when a loaded machine spends 20 s on the 40 calls
    (a no-wait run waits out a reset under 10 s away instead of pausing), short enough to
    wait out in a test."""
    return make_sandbox(SandboxConfig(hourly_limit=40, hourly_window=30, spike_limit=1000))


def test_a_spent_budget_pauses_a_no_wait_run_and_the_next_run_continues(
        cli: Cli, make_sandbox, files: Path, tmp_path: Path) -> None:
    sandbox = budget_sandbox(make_sandbox)
    for n in range(25):  # two calls a file (upload slot, create): two windows of 36
        (files / f"Sheet {n:03d}.pdf").write_bytes(b"%d" % n)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "budget", ("files", "/"), ("procore", "/Budget"))
    paused = cli.json("jobs", "run", "budget", "--no-wait", check=3)
    assert paused["status"] == "paused" and "budget" in paused["error"]
    assert 0 < paused["stats"]["transferred"] < 25 and paused["stats"]["rate_limited"] == 0
    (last,) = cli.json("jobs", "history", "budget")[:1]
    assert last["status"] == "paused" and last["resume_at"] > time.time() - 1
    time.sleep(max(0.0, last["resume_at"] - time.time()) + 0.5)
    done = cli.json("jobs", "run", "budget", "--no-wait")
    assert done["status"] == "completed"
    assert done["stats"]["transferred"] == 25 - paused["stats"]["transferred"]
    assert remote(sandbox.world, "Budget") == local(files)


def test_a_run_waits_for_the_budget_reset_and_finishes(cli: Cli, make_sandbox, files: Path,
                                                       tmp_path: Path) -> None:
    sandbox = budget_sandbox(make_sandbox)
    for n in range(45):
        (files / f"Sheet {n:03d}.pdf").write_bytes(b"%d" % n)
    add_procore(cli, sandbox)
    job(cli, tmp_path, "patient", ("files", "/"), ("procore", "/Patient"))
    done = run(cli, "patient")
    assert done["status"] == "completed"
    assert done["stats"]["rate_limit_waits"] >= 1 and done["stats"]["rate_limited"] == 0
    assert sandbox.world.rate_limited == 0
    assert remote(sandbox.world, "Patient") == local(files)


def test_the_sandbox_command_serves_the_api(tmp_path: Path) -> None:
    proc = subprocess.Popen([*dryviq_command(), "sandbox"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        url = first.split("Procore sandbox: ", 1)[1].split()[0]
        answer = httpx.get(f"{url}/rest/v1.0/me")
        assert answer.status_code == 401  # served, and a token is required
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode in (0, 130)
