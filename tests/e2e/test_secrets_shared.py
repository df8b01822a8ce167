"""Secrets in a shared PostgreSQL state, with the real command as a user runs it: a Procore
sign-in sealed with the installation's key (the database holds no secret in the clear), a host
with another key or none refused with nothing changed, the key copied or given in
DRYVIQ_SECRET_KEY, and `secrets rotate`, which never shows a key."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tests.e2e.conftest import Cli, clean_env
from tests.samba import SmbFolder

pytestmark = pytest.mark.slow

COPY_ADVICE = "were sealed with another key: copy secret.key from a host of this installation"


def keys_in(path: Path) -> list[bytes]:
    return [line.encode() for line in path.read_text().splitlines()
            if line and not line.startswith("#")]


def rows(url: str) -> dict[str, list[tuple]]:
    """The secrets and the key check, read straight from PostgreSQL."""
    with psycopg.connect(url) as db:
        return {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in ("secrets", "secret_key_check")}


def opens(keys: list[bytes], token: str) -> bool:
    try:
        MultiFernet([Fernet(key) for key in keys]).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


@pytest.fixture
def shared(postgres_url: str) -> dict[str, str]:
    """An environment whose state is the test's PostgreSQL database."""
    return clean_env(DRYVIQ_STATE_URL=postgres_url)


@pytest.fixture
def added(cli: Cli, smb_folder: SmbFolder, shared: dict[str, str]) -> str:
    """An SMB connection `share` on the shared state (its password is a secret); the
    password."""
    server = smb_folder.server
    cli("connections", "add", "smb", "share", "--server", server.host, "--port",
        str(server.port), "--share", server.share, "--path", smb_folder.path, "--username",
        server.username, "--password-env", "SMB_TEST_PASSWORD",
        env=shared | {"SMB_TEST_PASSWORD": server.password})
    return server.password


def works(cli: Cli, env: dict[str, str]) -> bool:
    """Whether this home reads the connection's password: the share lists with it."""
    return "Connection test succeeded" in cli("connections", "test", "share", env=env).stdout


def test_the_database_holds_no_secret_in_the_clear(cli: Cli, added: str, shared,
                                                  postgres_url: str) -> None:
    key_file = cli.home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    found = rows(postgres_url)
    (_, data), = found["secrets"]
    assert json.loads(Fernet(keys_in(key_file)[0]).decrypt(data.encode())) == \
        {"password": added}
    assert added not in data and "password" not in data
    (_, check, _), = found["secret_key_check"]
    assert opens(keys_in(key_file), check)
    assert works(cli, shared)


def test_a_host_with_another_key_or_none_is_refused_and_nothing_changes(
        cli: Cli, added, shared, postgres_url: str, tmp_path: Path) -> None:
    before = rows(postgres_url)
    other = Cli(tmp_path / "other")
    refused = other("connections", "list", env=shared, check=2)
    assert COPY_ADVICE in refused.stderr and f"{other.home}/secret.key" in refused.stderr
    assert "DRYVIQ_SECRET_KEY" in refused.stderr
    assert not (other.home / "secret.key").exists()  # no key of its own beside the secrets
    stranger = Fernet.generate_key().decode()
    refused = other("connections", "test", "share", check=2,
                    env=shared | {"DRYVIQ_SECRET_KEY": stranger})
    assert COPY_ADVICE in refused.stderr and stranger not in refused.stderr
    (other.home / "secret.key").write_text(Fernet.generate_key().decode() + "\n")
    (other.home / "secret.key").chmod(0o600)
    assert COPY_ADVICE in other("connections", "list", env=shared, check=2).stderr
    assert rows(postgres_url) == before

    # the key copied to the host, as the README says: it reads the secrets
    (other.home / "secret.key").write_bytes((cli.home / "secret.key").read_bytes())
    assert works(other, shared)


def test_a_key_file_others_may_read_is_refused(cli: Cli, added, shared) -> None:
    key_file = cli.home / "secret.key"
    key_file.chmod(0o640)
    refused = cli("connections", "list", env=shared, check=2)
    assert f"{key_file} is readable by other users; run: chmod 600 {key_file}" in \
        refused.stderr


def test_the_key_in_the_environment_opens_them(cli: Cli, added, shared,
                                               tmp_path: Path) -> None:
    key = keys_in(cli.home / "secret.key")[0].decode()
    other = Cli(tmp_path / "other")
    assert works(other, shared | {"DRYVIQ_SECRET_KEY": key})
    assert not (other.home / "secret.key").exists()


def test_rotate_reseals_with_a_new_key_and_never_shows_one(cli: Cli, added, shared,
                                                           postgres_url: str,
                                                           tmp_path: Path) -> None:
    key_file = cli.home / "secret.key"
    old = keys_in(key_file)
    before = rows(postgres_url)
    rotated = cli("secrets", "rotate", env=shared)
    new = keys_in(key_file)
    assert len(new) == 2 and new[1] == old[0] and new[0] != old[0]  # the old one kept after
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for key in (*old, *new):
        assert key.decode() not in rotated.stdout + rotated.stderr
    assert "sealed the secrets of 1 connection" in rotated.stdout
    assert f"copy {key_file} to the home of every other host" in rotated.stdout

    after = rows(postgres_url)
    (_, data), = after["secrets"]
    assert data != before["secrets"][0][1]
    assert not opens(old, data) and opens(new[:1], data)
    assert not opens(old, after["secret_key_check"][0][1])
    # a host still holding the old key is refused; given the new file, it reads them
    other = Cli(tmp_path / "other")
    other.home.mkdir(mode=0o700)
    (other.home / "secret.key").write_text(old[0].decode() + "\n")
    (other.home / "secret.key").chmod(0o600)
    assert COPY_ADVICE in other("connections", "list", env=shared, check=2).stderr
    (other.home / "secret.key").write_bytes(key_file.read_bytes())
    assert works(other, shared)
    again = json.loads(cli("secrets", "rotate", "--json", env=shared).stdout)
    assert again == {"rotated": 1, "database": again["database"], "key_file": str(key_file)}
    assert postgres_url not in again["database"] and "PostgreSQL database" in again["database"]


def test_rotate_with_the_key_in_the_environment_writes_the_file_named(
        cli: Cli, added, shared, postgres_url: str, tmp_path: Path) -> None:
    key = keys_in(cli.home / "secret.key")[0].decode()
    environ = shared | {"DRYVIQ_SECRET_KEY": key}
    before = rows(postgres_url)
    refused = cli("secrets", "rotate", env=environ, check=2)
    assert "--key-file FILE" in refused.stderr
    assert rows(postgres_url) == before
    named = tmp_path / "new.key"
    rotated = cli("secrets", "rotate", "--key-file", named, env=environ)
    assert stat.S_IMODE(named.stat().st_mode) == 0o600
    new = keys_in(named)
    assert new[1].decode() == key and key not in rotated.stdout
    assert new[0].decode() not in rotated.stdout + rotated.stderr
    assert "set $DRYVIQ_SECRET_KEY on this and every other host" in rotated.stdout
    assert COPY_ADVICE in cli("connections", "list", env=environ, check=2).stderr
    assert works(cli, shared | {"DRYVIQ_SECRET_KEY": " ".join(k.decode() for k in new)})


def test_rotate_on_a_state_db_has_nothing_to_do(cli: Cli) -> None:
    refused = cli("secrets", "rotate", check=2)
    assert "nothing to rotate: a state.db keeps secrets in your private file" in refused.stderr
    assert not os.path.exists(cli.home / "secret.key")
