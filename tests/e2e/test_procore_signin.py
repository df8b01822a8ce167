"""Every documented way to sign in to Procore, with the real command from a clean home against
the sandbox over real HTTP: the pasted code, a browser on this machine at a registered
loopback redirect URI (the test plays the browser), a service account with its company, the
installation's settings, and the errors a user meets on the way.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
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
from tests.core.test_auth import free_port, sign_in_in_browser
from tests.e2e.conftest import Cli, clean_env, describe, dryviq_command

pytestmark = pytest.mark.slow

COMPANY, PROJECT = "Summit Builders", "Riverside Medical Center"
SECRET_ENV = "SANDBOX_SECRET"
DAY = 86400.0


def custom(sandbox) -> list[str]:
    """The options of a connection with the sandbox app's own (custom) credentials."""
    return ["--domain", sandbox.url, "--client-id", SANDBOX_CLIENT_ID,
            "--client-secret-env", SECRET_ENV]


def env(**extra: str) -> dict[str, str]:
    return clean_env(**{SECRET_ENV: SANDBOX_CLIENT_SECRET}, **extra)


def callback(sandbox) -> str:
    """A loopback redirect URI on a free port, registered on the sandbox's app."""
    uri = f"http://localhost:{free_port()}/callback"
    sandbox.world.register_redirect_uri(SANDBOX_CLIENT_ID, uri)
    return uri


def start(cli: Cli, *args: str, environ: dict[str, str]) -> subprocess.Popen[str]:
    """The command running, its stdin a pipe (for a pasted code), its output read later."""
    return subprocess.Popen([*dryviq_command(), "--home", str(cli.home), *args], env=environ,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def sign_in_url(proc: subprocess.Popen[str]) -> str:
    """The address the command shows, once it listens for the browser."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "/oauth/authorize?" in line:
            return line.strip()
    raise AssertionError(f"no sign-in address shown; exit code {proc.wait()}")


def browse(url: str) -> httpx.Response:
    """The user in a browser: open the address, sign in, follow Procore to the listener."""
    return asyncio.run(sign_in_in_browser(url))


def finish(proc: subprocess.Popen[str], pasted: str | None = None) -> tuple[int, str, str]:
    out, err = proc.communicate(pasted)
    return proc.returncode, out, err


def stored_secrets(cli: Cli) -> list[dict]:
    with sqlite3.connect(cli.home / "state.db") as db:
        return [json.loads(data) for (data,) in db.execute("SELECT data FROM secrets")]


def test_out_of_band_paste_from_a_clean_home(cli: Cli, sandbox) -> None:
    """The default: the address for any browser, and the code Procore shows pasted back."""
    proc = start(cli, "connections", "add", "procore", "site", *custom(sandbox),
                 "--company", COMPANY, "--project", PROJECT, environ=env())
    url = sign_in_url(proc)
    assert httpx.QueryParams(url.split("?", 1)[1])["redirect_uri"] == OOB_REDIRECT
    page = browse(url)  # Procore's page showing the code
    shown = re.search(r'<code id="authorization-code">([^<]+)</code>', page.text)
    assert shown is not None, page.text
    code, out, err = finish(proc, shown.group(1) + "\n")
    assert code == 0, err
    assert "Connection test succeeded: signed in as Pat Morgan" in out
    assert "redirect_uri" not in cli.json("connections", "show", "site")["config"]


def test_loopback_at_a_registered_redirect_uri_then_signin_reuses_it(cli: Cli,
                                                                     sandbox) -> None:
    uri = callback(sandbox)
    proc = start(cli, "connections", "add", "procore", "site", *custom(sandbox),
                 "--redirect-uri", uri, "--company", COMPANY, "--project", PROJECT,
                 environ=env())
    url = sign_in_url(proc)
    assert httpx.QueryParams(url.split("?", 1)[1])["redirect_uri"] == uri  # exactly as given
    page = browse(url)
    assert page.status_code == 200 and "You can close this tab" in page.text
    code, out, err = finish(proc)
    assert code == 0, err
    assert "Connection test succeeded: signed in as Pat Morgan" in out
    shown = cli.json("connections", "show", "site")
    assert shown["config"]["redirect_uri"] == uri  # kept for the next sign-in

    sandbox.world.revoke_refresh_tokens()
    sandbox.world.expire_access_tokens()
    proc = start(cli, "connections", "signin", "site", "--loopback", environ=env())
    again = sign_in_url(proc)
    assert httpx.QueryParams(again.split("?", 1)[1])["redirect_uri"] == uri
    assert browse(again).status_code == 200
    code, out, err = finish(proc)
    assert code == 0 and "Signed in again: site as Pat Morgan" in out, err
    assert "signed in as Pat Morgan" in cli("connections", "test", "site").stdout


def test_the_installations_redirect_uri_serves_its_default_credentials(cli: Cli,
                                                                       sandbox) -> None:
    uri = callback(sandbox)
    cli.home.mkdir(parents=True)
    config = cli.home / "config.toml"
    config.write_text(f'[procore]\nclient_id = "{SANDBOX_CLIENT_ID}"\n'
                      f'client_secret = "{SANDBOX_CLIENT_SECRET}"\ndomain = "{sandbox.url}"\n'
                      f'redirect_uri = "{uri}"\n')
    config.chmod(0o600)
    proc = start(cli, "connections", "add", "procore", "site", "--loopback", "--company",
                 COMPANY, "--project", PROJECT, environ=clean_env())
    assert browse(sign_in_url(proc)).status_code == 200
    code, _, err = finish(proc)
    assert code == 0, err
    config_shown = cli.json("connections", "show", "site")["config"]
    assert config_shown["credentials"] == "default"
    assert "redirect_uri" not in config_shown  # the installation's setting stays the source


def test_an_unregistered_redirect_uri_gets_procores_error_page_and_no_code(cli: Cli,
                                                                           sandbox) -> None:
    uri = f"http://localhost:{free_port()}/callback"  # not registered on the app
    proc = start(cli, "connections", "add", "procore", "site", *custom(sandbox),
                 "--redirect-uri", uri, environ=env())
    page = httpx.get(sign_in_url(proc))
    assert page.status_code == 400 and "redirect uri" in page.text.lower()
    assert not sandbox.world.codes
    proc.send_signal(signal.SIGINT)  # the user gives up
    code, _, _ = finish(proc)
    assert code != 0
    assert cli.json("connections", "list") == []


def test_loopback_without_a_redirect_uri_says_to_pass_one(cli: Cli, sandbox) -> None:
    failed = cli("connections", "add", "procore", "site", *custom(sandbox), "--loopback",
                 check=2, env=env())
    assert "--redirect-uri" in failed.stderr and "Developer Portal" in failed.stderr
    assert cli.json("connections", "list") == []


@pytest.mark.parametrize(("uri", "says"), [
    ("https://example.com/callback", "only answer on this machine"),
    ("http://192.168.1.20:8765/callback", "only answer on this machine"),
    ("https://localhost:8765/callback", "speaks plain http"),
    ("ftp://localhost/cb", "not a loopback address"),
])
def test_a_redirect_uri_off_this_machine_is_refused(cli: Cli, sandbox, uri: str,
                                                    says: str) -> None:
    failed = cli("connections", "add", "procore", "site", *custom(sandbox), "--redirect-uri",
                 uri, check=2, env=env())
    assert "--redirect-uri" in failed.stderr and says in failed.stderr


def test_service_account_names_its_company_first(cli: Cli, sandbox) -> None:
    company = sandbox.world.service_user.company_ids[0]
    service = ["connections", "add", "procore", "service", "--domain", sandbox.url,
               "--client-id", SERVICE_CLIENT_ID, "--client-secret-env", "SERVICE_SECRET",
               "--grant", "client_credentials"]
    environ = clean_env(SERVICE_SECRET=SERVICE_CLIENT_SECRET)
    missing = cli(*service, check=2, env=environ)
    assert "--company ID" in missing.stderr and "app.procore.com/ID" in missing.stderr
    by_name = cli(*service, "--company", COMPANY, check=2, env=environ)
    assert "numeric id" in by_name.stderr
    assert sandbox.world.requests["POST /oauth/token"] == 0  # refused before any call

    added = cli(*service, "--company", str(company), env=environ)
    assert "signed in as DryvIQ Service Account" in added.stdout
    assert COMPANY in added.stdout and PROJECT in added.stdout  # its only project
    assert "signed in as DryvIQ Service Account" in cli("connections", "test",
                                                        "service").stdout
    renewed = cli("connections", "signin", "service", env=environ)
    assert "Signed in again: service as DryvIQ Service Account" in renewed.stdout


def refreshes(sandbox, refresh_token: str) -> bool:
    """Whether Procore (the sandbox) still trades this refresh token for a new pair."""
    answer = httpx.post(f"{sandbox.url}/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET})
    return answer.status_code == 200


def age_stored_token(cli: Cli, seconds: float) -> None:
    """Time passes here: the stored access token's expiry moves that far into the past."""
    with sqlite3.connect(cli.home / "state.db") as db:
        for connection_id, data in db.execute("SELECT connection_id, data FROM secrets"):
            secrets = json.loads(data)
            secrets["token"]["expires_at"] -= seconds
            db.execute("UPDATE secrets SET data = ? WHERE connection_id = ?",
                       (json.dumps(secrets), connection_id))


@pytest.mark.parametrize("later", [0.0, DAY], ids=["right away", "a day after its last run"])
def test_removal_revokes_the_sign_in_and_forgets_both(cli: Cli, sandbox, later: float) -> None:
    """Right away the access token ends the pair; a day later it has expired, Procore would
    revoke nothing for it, and the refresh token ends the pair instead."""
    code = sandbox.world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT)
    cli("connections", "add", "procore", "site", *custom(sandbox), "--company", COMPANY,
        "--project", PROJECT, input=code + "\n", env=env())
    age_stored_token(cli, later)
    sandbox.world.clock = lambda: time.time() + later  # the same day at Procore
    [secrets] = stored_secrets(cli)
    removed = cli("connections", "remove", "site")
    assert "could not be revoked" not in removed.stderr
    assert not refreshes(sandbox, secrets["token"]["refresh_token"])
    token = sandbox.world.tokens[secrets["token"]["access_token"]]
    assert not token.access_alive and not token.refresh_alive
    assert stored_secrets(cli) == []


def test_removal_still_works_when_procore_cannot_be_reached(cli: Cli, make_sandbox) -> None:
    sandbox = make_sandbox(SandboxConfig())
    code = sandbox.world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT)
    cli("connections", "add", "procore", "site", *custom(sandbox), "--company", COMPANY,
        "--project", PROJECT, input=code + "\n", env=env())
    sandbox.stop()
    removed = cli("connections", "remove", "site", env=env())
    assert "could not be revoked" in removed.stderr and "forgotten here" in removed.stderr
    assert cli.json("connections", "list") == [] and stored_secrets(cli) == []


def test_the_sandbox_command_prints_every_way_in(cli: Cli, tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://localhost:{port}/callback"
    proc = subprocess.Popen([*dryviq_command(), "sandbox", "--redirect-uri", uri],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env())
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        printed = "".join(lines)
        assert f"ID {SERVICE_CLIENT_ID}, secret {SERVICE_CLIENT_SECRET}" in printed
        assert uri in printed and OOB_REDIRECT in printed
        command = next(line.strip() for line in lines if "--grant client_credentials" in line)
        assert "--company " in command
        # the printed command works as printed
        argv = command.split()[1:]  # without "dryviq-tui"
        added = cli(*argv, env=clean_env(SERVICE_SECRET=SERVICE_CLIENT_SECRET))
        assert "signed in as DryvIQ Service Account" in added.stdout, describe(added)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
