"""`dryviq-tui serve` and `dryviq-tui tokens` as real processes: loopback by default, another
address only with TLS or --insecure-http (and a warning), https verified against a certificate
made here, the home's schedules run by `serve` (handed to an agent and taken back, saying so),
SIGTERM ending it with exit 0 (a run in flight ends interrupted and resumable), and the token
commands' round trip (printed once, listed without secrets, revoked at once)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.api.tokens import REMEMBER
from tests.e2e.conftest import Cli, clean_env, describe, dryviq_command, part_files
from tests.e2e.test_agent import executions, job, start_agent, stop, wait_for

pytestmark = pytest.mark.slow

URL = re.compile(r"(https?)://\S+:(\d+)/v1/")


class Serving:
    """A running `dryviq-tui serve` and the port it printed."""

    def __init__(self, home: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [*dryviq_command(), "--home", str(home), "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline()
        found = URL.search(self.first_line)
        assert found, (self.first_line, self.stop())
        self.scheme, self.port = found[1], int(found[2])
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> tuple[str, str]:
        """SIGTERM; what it printed (after the first line)."""
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=60)
        return out, err


def make_token(cli: Cli, name: str, *extra: str) -> str:
    made = cli("tokens", "create", name, *extra)
    secret = made.stdout.strip()
    assert secret.startswith("dq_") and "\n" not in secret, describe(made)
    assert name in made.stderr and secret not in made.stderr
    return secret


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dryviq-tui test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_other_addresses_need_tls_or_a_plain_choice(cli: Cli, tmp_path: Path) -> None:
    refused = cli("serve", "--host", "0.0.0.0", "--port", "0", check=2)
    assert "--cert" in refused.stderr and "--insecure-http" in refused.stderr
    assert "nothing was started" in refused.stderr and refused.stdout == ""
    half = cli("serve", "--host", "0.0.0.0", "--cert", tmp_path / "c.pem", check=2)
    assert "--cert and --key go together" in half.stderr
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("no certificate here\n")
    wrong = cli("serve", "--cert", bad, "--key", bad, "--port", "0", check=2)
    assert "cannot use them for TLS" in wrong.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = cli("serve", "--port", str(taken.getsockname()[1]), check=1)
    assert "in use by another program" in busy.stderr


def test_plain_http_elsewhere_warns_serves_and_runs_the_schedules(
        cli: Cli, tmp_path: Path) -> None:
    source, destination = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    destination.mkdir()
    (source / "plan.pdf").write_bytes(b"plan")
    cli("connections", "add", "local", "src", "--path", source)
    cli("connections", "add", "local", "dst", "--path", destination)
    serving = Serving(cli.home, "--host", "0.0.0.0", "--insecure-http")
    try:
        assert "no token yet" in serving.process.stdout.readline()  # type: ignore[union-attr]
        secret = make_token(cli, "ci")
        with httpx.Client(base_url=serving.url, timeout=30) as client:
            assert client.get("/v1/jobs").status_code == 401
            answer = client.get("/v1/jobs", headers={"Authorization": f"Bearer {secret}",
                                                     "Host": "build-server.example"})
            assert answer.status_code not in (401, 403), answer.text  # not loopback-only
            spec = client.get("/v1/openapi.json").json()
            assert spec["servers"][0]["url"].endswith(f":{serving.port}/")
        # a job due at once is run by serve, as the agent would
        cli("jobs", "create", "--file", "-", input=job("served", {"mode": "auto"}))
        wait_for(lambda: any(status == "completed" for *_, status in executions(cli.home)),
                 "serve to run the scheduled job")
    finally:
        out, err = serving.stop()
    assert serving.process.returncode == 0, (out, err)
    assert "clear text" in err and "warning:" in err
    assert "started served (by its schedule)" in out and "stopped" in out
    assert (destination / "copy" / "plan.pdf").read_bytes() == b"plan"
    assert executions(cli.home)[0][0].endswith(f":{serving.process.pid}")
    assert secret not in out + err + "".join(
        path.read_text() for path in (cli.home / "logs").iterdir())


def test_sigterm_mid_run_leaves_it_resumable(cli: Cli, tmp_path: Path) -> None:
    source, destination = tmp_path / "src", tmp_path / "dst"
    destination.mkdir()
    for folder in range(4):
        (source / f"f{folder}").mkdir(parents=True)
        for i in range(100):
            (source / f"f{folder}" / f"doc{i}.bin").write_bytes(os.urandom(64 * 1024))
    cli("connections", "add", "local", "src", "--path", source)
    cli("connections", "add", "local", "dst", "--path", destination)
    cli("jobs", "create", "--file", "-", input=job("big", {"mode": "auto"}, parallel=1))
    serving = Serving(cli.home)
    copied = destination / "copy"
    try:
        wait_for(lambda: len(list(copied.rglob("*.bin"))) >= 20, "the run to be under way")
    finally:
        out, err = serving.stop()
    assert serving.process.returncode == 0, (out, err)
    assert "stopping: no new runs" in out
    assert "finished big: interrupted, resumable" in out, (out, err)
    assert 20 <= len(list(copied.rglob("*.bin"))) < 400, "the signal should land mid-run"
    assert part_files(destination) == []
    assert [e["status"] for e in cli.json("jobs", "history", "big")] == ["interrupted"]


def test_serve_hands_the_schedules_to_an_agent_and_takes_them_back_saying_so(cli: Cli) -> None:
    serving = Serving(cli.home)
    said = serving.process.stdout
    assert said is not None
    try:
        assert "no token yet" in said.readline()
        assert said.readline().endswith(" Schedules: run by this server (no agent on this "
                                        "home)\n")
        agent = start_agent(cli.home)
        try:
            assert said.readline().endswith(
                f" Schedules: run by the agent, pid {agent.pid} on {socket.gethostname()}\n")
        finally:
            out, _ = stop(agent)
        assert said.readline().endswith(" Schedules: run by this server (no agent on this "
                                        "home)\n")
    finally:
        rest, err = serving.stop()
    assert serving.process.returncode == 0, (rest, err)
    waited = [line for line in out.splitlines() if "waiting for" in line]
    assert all(f"the API server (serve, pid {serving.process.pid} on " in line
               for line in waited), out  # if it had to wait, it names serve

def test_https_with_a_certificate_made_here(cli: Cli, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    secret = make_token(cli, "over-tls", "--read-only")
    serving = Serving(cli.home, "--host", "0.0.0.0", "--cert", str(cert), "--key", str(key))
    try:
        assert serving.scheme == "https"
        trusted = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=serving.url, verify=trusted, timeout=30,
                          headers={"Authorization": f"Bearer {secret}"}) as client:
            assert client.get("/v1/openapi.json").status_code == 200
            assert client.get("/v1/jobs").status_code not in (401, 403)
            assert client.post("/v1/jobs", json={}).status_code == 403
        with pytest.raises(httpx.ConnectError), httpx.Client(timeout=30) as unverified:
            unverified.get(f"{serving.url}/v1/openapi.json")  # not trusted by default
    finally:
        out, err = serving.stop()
    assert serving.process.returncode == 0, (out, err)
    assert "warning" not in err


def test_tokens_round_trip(cli: Cli) -> None:
    secret = make_token(cli, "ci")
    made = cli.json("tokens", "create", "reader", "--read-only")
    assert made["read_only"] is True and made["token"].startswith("dq_")
    cli("tokens", "create", "CI", check=2)  # names are unique, whatever their case
    listed = cli.json("tokens", "list")
    assert [(one["name"], one["read_only"]) for one in listed] == [
        ("ci", False), ("reader", True)]
    text = json.dumps(listed) + cli("tokens", "list").stdout
    assert secret not in text and made["token"] not in text and "hash" not in text
    serving = Serving(cli.home)
    try:
        with httpx.Client(base_url=serving.url, timeout=30,
                          headers={"Authorization": f"Bearer {secret}"}) as client:
            assert client.get("/v1/jobs").status_code not in (401, 403)
            assert "revoked token 'ci'" in cli("tokens", "revoke", "ci").stdout
            # refused once the server's remembered check runs out (REMEMBER seconds)
            deadline = time.monotonic() + REMEMBER + 10  # a slow machine's slack
            while (status := client.get("/v1/jobs").status_code) == 200:
                assert time.monotonic() < deadline, "the revoked token still works"
                time.sleep(0.1)
            assert status == 401
    finally:
        serving.stop()
    assert cli.json("tokens", "list")[0]["id"] == made["id"]
    unknown = cli("tokens", "revoke", "ci", check=2)
    assert "no token named 'ci'" in unknown.stderr
    cli("tokens", "revoke", made["id"])
    assert cli.json("tokens", "list") == []
