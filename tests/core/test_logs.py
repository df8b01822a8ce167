"""The log file in the home: private, rotating, recording commands and job events; -v and
--log-level on every command; and no secret in it, even after a sign-in and a job run."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import sys
from pathlib import Path

import pytest

# imported now: its ProgressReporter keeps the stderr of import time, which must outlive capsys
import core.cli.output  # noqa: F401
from core.auth import OOB_REDIRECT
from core.cli import main
from core.logs import REDACTED, PrivateRotatingFileHandler, Redact, logged_events, redact
from core.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

LOG = Path("logs") / "dryviq-tui.log"


@pytest.mark.parametrize("text, secret", [
    ('{"access_token": "abc.DEF-123", "expires_in": 7200}', "abc.DEF-123"),
    ("{'refresh_token': 'r3fr3sh'}", "r3fr3sh"),
    ("client_secret=s3cr3t&grant_type=refresh_token", "s3cr3t"),
    ("Authorization: Bearer eyJhbGciOi.x.y", "eyJhbGciOi.x.y"),
    ("{'Authorization': 'Bearer tok-123456789'}", "tok-123456789"),
    ("sign-in failed: password=hunter2 rejected", "hunter2"),
    ("POST /oauth/token?code=abc&client_secret=zz9", "zz9"),
    # names that end in a credential's word, in env, form, query, JSON and repr forms
    ("DRYVIQ_PROCORE_CLIENT_SECRET=cs-0987 in the environment", "cs-0987"),
    ("export DRYVIQ_PROCORE_CLIENT_SECRET='cs with spaces'", "cs with spaces"),
    ("procore_refresh_token=rt-5555", "rt-5555"),
    ('{"procore_refresh_token": "rt 6666", "expires_in": 7200}', "rt 6666"),
    ("{'client_secret': 'it\\'s-secret'}", "s-secret"),
    ("GET /files?access_token=at-7777&page=2", "at-7777"),
    ("grant_type=refresh_token&refresh_token=rt-8888&client_id=c", "rt-8888"),
    ("Procore(api-key=ak-1234)", "ak-1234"),
    # an OAuth authorization code in the redirect's query and in the token request's form
    ("GET https://localhost:8765/callback?code=oc-4242&state=xyz", "oc-4242"),
    ("POST /oauth/token grant_type=authorization_code&code=oc-4343&redirect_uri=u", "oc-4343"),
    ("body: code=oc-4444&grant_type=authorization_code", "oc-4444"),
])
def test_credentials_are_blanked(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned and REDACTED in cleaned


@pytest.mark.parametrize("text", [
    "job Plans: 3 files transferred, 2 tokens of advice, secretary.pdf flagged",
    '{"error": {"code": "state_damaged", "message": "exit code 1"}}',  # not an OAuth code
    "grant_type=authorization_code",  # a value, not a key
    "zipcode=48104 barcode=123",
])
def test_plain_messages_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_the_filter_blanks_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("core.x", logging.ERROR, __file__, 1, "saved %s", ({
        "access_token": "AT-0123456789"},), None)
    try:
        raise ValueError("refresh_token=RT-0123456789")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert Redact().filter(record)
    assert "AT-0123456789" not in record.getMessage()
    assert "RT-0123456789" not in record.exc_text and REDACTED in record.exc_text


def test_rotated_files_stay_private(tmp_path: Path) -> None:
    handler = PrivateRotatingFileHandler(tmp_path / "x.log", maxBytes=200, backupCount=2)
    logger = logging.getLogger("core.test_rotation")
    logger.addHandler(handler)
    try:
        for number in range(30):
            logger.warning("line %d of a log that rotates quickly", number)
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["x.log", "x.log.1", "x.log.2"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_a_command_and_its_job_are_in_the_private_log(tmp_path: Path, capsys) -> None:
    home, files = tmp_path / "home", tmp_path / "files"
    (files / "in").mkdir(parents=True)
    (files / "in" / "a.txt").write_text("a")
    (files / "out").mkdir()
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"name": "Plans", "transfer": {
        "transfer_type": "copy", "source": {"connection": {"id": "f"}, "target": {"path": "/in"}},
        "destination": {"connection": {"id": "f"}, "target": {"path": "/out"}}}}))
    assert main(["connections", "add", "local", "f", "--path", str(files), "--home",
                 str(home)]) == 0
    assert main(["--home", str(home), "jobs", "create", "--file", str(job)]) == 0
    # global options after the subcommand too; -v shows the log on stderr as well
    assert main(["jobs", "run", "Plans", "--home", str(home), "-v"]) == 0
    err = capsys.readouterr().err
    assert "INFO core.cli: dryviq-tui" in err and "jobs run" in err
    log = (home / LOG).read_text()
    assert "connections add local" in log and "jobs create" in log
    assert "running job Plans (copy)" in log
    assert "job Plans: execution 1 completed" in log
    assert stat.S_IMODE((home / LOG).stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "logs").stat().st_mode) == 0o700

    assert main(["--home", str(home), "--log-level", "warning", "jobs", "show", "nope"]) == 2
    after = (home / LOG).read_text()
    assert "jobs show" not in after  # an info record, below the level asked for
    assert "ERROR core.cli:" in after and "'nope'" in after  # errors are recorded


def test_log_level_must_be_a_level(tmp_path: Path, capsys) -> None:
    assert main(["--home", str(tmp_path), "jobs", "list", "--log-level", "loud"]) == 2
    assert "--log-level" in capsys.readouterr().err


def test_a_sign_in_and_a_job_run_leave_no_secret_in_the_log(tmp_path: Path, sandbox,
                                                             monkeypatch, capsys) -> None:
    home, back = tmp_path / "home", tmp_path / "back"
    back.mkdir()
    world = sandbox.world
    code = world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT)
    monkeypatch.setenv("SANDBOX_SECRET", SANDBOX_CLIENT_SECRET)
    monkeypatch.setattr(sys, "stdin", io.StringIO(code + "\n"))
    common = ["--home", str(home), "--log-level", "debug", "-vv"]
    assert main([*common, "connections", "add", "procore", "procore", "--domain", sandbox.url,
                 "--client-id", SANDBOX_CLIENT_ID, "--client-secret-env", "SANDBOX_SECRET",
                 "--company", "Summit Builders", "--project", "Riverside Medical Center"]) == 0
    assert main([*common, "connections", "add", "local", "back", "--path", str(back)]) == 0
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"name": "down", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "procore"}, "target": {"path": "/Drawings"}},
        "destination": {"connection": {"id": "back"}, "target": {"path": "/"}}}}))
    assert main([*common, "jobs", "create", "--file", str(job)]) == 0
    world.expire_access_tokens()  # so the run refreshes the sign-in as well
    assert main([*common, "jobs", "run", "down"]) == 0
    assert any(back.rglob("*.pdf"))
    shown = (home / LOG).read_text() + capsys.readouterr().err
    assert "refreshing the Procore sign-in" in shown and "execution 1 completed" in shown
    secrets = [SANDBOX_CLIENT_SECRET, code, *world.tokens, *world.refresh_tokens]
    assert len(secrets) > 3
    for secret in secrets:
        assert secret not in shown
    assert os.environ["SANDBOX_SECRET"] not in shown


def test_the_app_logs_to_the_file_and_never_to_its_terminal(tmp_path: Path, capsys) -> None:
    seen = []

    async def open_app(home: object, **options: object) -> int:
        logging.getLogger("tui.app").warning("the app says hello")
        seen.append([type(h) for h in logging.getLogger("tui").handlers])
        return 0

    assert main(["--home", str(tmp_path / "home"), "-v"], open_app=open_app) == 0
    assert logging.StreamHandler not in seen[0]  # -v's stderr handler is gone meanwhile
    assert "the app says hello" not in capsys.readouterr().err
    log = (tmp_path / "home" / LOG).read_text()
    assert "WARNING tui.app: the app says hello" in log and "app: exit code 0" in log


def test_flagged_and_failed_items_are_logged_as_warnings_with_their_reasons(caplog) -> None:
    heard = []
    emit = logged_events(lambda kind, message: heard.append(kind), logging.getLogger("core.t"))
    with caplog.at_level(logging.INFO, logger="core.t"):
        emit("info", "running job Plans (copy)")
        emit("flagged", "/a/b.pdf: the name is too long for Procore")
        emit("failed", "/a/c.pdf: permission denied")
    assert heard == ["info", "flagged", "failed"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "running job Plans (copy)"),
        ("WARNING", "flagged: /a/b.pdf: the name is too long for Procore"),
        ("WARNING", "failed: /a/c.pdf: permission denied")]
