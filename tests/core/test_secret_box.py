"""Secrets in a shared state (core/secret_box.py) against a real PostgreSQL: sealed with the
installation's key, the key check made once by the first host, rotation all or nothing, and the
sign-in refresh lock that reaches every host (a PostgreSQL advisory lock)."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from core.auth import TOKEN_LOCK_CLASS, StateTokenStore, Token
from core.home import Home
from core.secret_box import KEY_FILE, SecretKeyError, read_key_file, rotate
from core.state import State

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def shared_url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DRYVIQ_STATE_URL", postgres_url)
    monkeypatch.delenv("DRYVIQ_SECRET_KEY", raising=False)
    return postgres_url


def home_at(path: Path) -> Home:
    home = Home(path)
    home.ensure()
    return home


def raw(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as db:
        return db.execute(sql).fetchall()


async def test_a_sign_in_is_stored_sealed(tmp_path: Path, shared_url: str) -> None:
    """The refresh token and the client secret never reach the database in the clear."""
    home = home_at(tmp_path / "home")
    state = await State.open_home(home)
    try:
        connection = await state.add_connection("site", "procore", {},
                                                {"client_secret": "s3cret-client"})
        token = Token("access-xyz", 4e9, "refresh-abc")
        await StateTokenStore(state, home, connection.id).save(token)
        assert (await state.connection_secrets(connection.id))["token"]["refresh_token"] == \
            "refresh-abc"
    finally:
        await state.close()
    (stored,), = raw(shared_url, "SELECT data FROM secrets")
    for clear in ("s3cret-client", "refresh-abc", "access-xyz", "token"):
        assert clear not in stored
    key_file = home.root / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in home.root.iterdir() if p.name.endswith(".tmp")] == []


async def test_a_state_db_keeps_its_secrets_as_they_are(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Decided: a state.db is the user's own 0600 file; no key is made for it."""
    monkeypatch.delenv("DRYVIQ_STATE_URL")
    home = home_at(tmp_path / "home")
    state = await State.open_home(home)
    try:
        assert state.secret_box is None
        await state.add_connection("smb", "smb", {}, {"password": "pw"})
    finally:
        await state.close()
    assert not (home.root / KEY_FILE).exists()


async def test_two_first_hosts_at_once_end_with_one_key(tmp_path: Path,
                                                        shared_url: str) -> None:
    """Two hosts opening an empty database together: one key becomes the installation's, the
    other host is told to copy it and keeps no key of its own."""
    homes = [home_at(tmp_path / name) for name in ("a", "b")]
    opened = await asyncio.gather(*(State.open_home(h) for h in homes), return_exceptions=True)
    states = [s for s in opened if isinstance(s, State)]
    errors = [e for e in opened if isinstance(e, BaseException)]
    for state in states:
        await state.close()
    assert len(states) == 1 and len(errors) == 1, opened
    assert isinstance(errors[0], SecretKeyError) and "copy secret.key" in str(errors[0])
    assert sorted((h.root / KEY_FILE).exists() for h in homes) == [False, True]
    assert len(raw(shared_url, "SELECT * FROM secret_key_check")) == 1


async def test_a_bad_key_file_names_itself_and_not_its_text(tmp_path: Path) -> None:
    home = home_at(tmp_path / "home")
    (home.root / KEY_FILE).write_text("not-a-key-at-all\n")
    (home.root / KEY_FILE).chmod(0o600)
    with pytest.raises(SecretKeyError) as caught:
        await State.open_home(home)
    assert str(home.root / KEY_FILE) in str(caught.value)
    assert "not-a-key-at-all" not in str(caught.value)


async def test_rotate_that_fails_midway_changes_nothing(tmp_path: Path, shared_url: str) -> None:
    """A secret this host cannot open (sealed with a key it never had) stops the rotation
    before anything is written: the database and the key file stay as they were."""
    home = home_at(tmp_path / "home")
    state = await State.open_home(home)
    try:
        connection = await state.add_connection("a", "smb", {}, {"password": "one"})
        foreign = await state.add_connection("b", "smb", {})
        await state.db.execute("INSERT INTO secrets VALUES (?, ?)", (
            foreign.id, Fernet(Fernet.generate_key()).encrypt(b"{}").decode()))
        await state.db.commit()
        before = raw(shared_url, "SELECT * FROM secrets ORDER BY 1"), \
            raw(shared_url, "SELECT * FROM secret_key_check")
        key_before = (home.root / KEY_FILE).read_bytes()
        with pytest.raises(SecretKeyError):
            await rotate(state, home, home.root / KEY_FILE)
        assert (raw(shared_url, "SELECT * FROM secrets ORDER BY 1"),
                raw(shared_url, "SELECT * FROM secret_key_check")) == before
        assert (home.root / KEY_FILE).read_bytes() == key_before
        assert await state.connection_secrets(connection.id) == {"password": "one"}
    finally:
        await state.close()


async def test_a_process_open_during_a_rotation_reads_the_new_key_file(tmp_path: Path) -> None:
    """An agent on the host that rotated, opened before: the first secret that will not open
    sends it back to the key file, which now holds the new key."""
    home = home_at(tmp_path / "home")
    running, rotating = await State.open_home(home), None
    try:
        connection = await running.add_connection("a", "smb", {}, {"password": "one"})
        rotating = await State.open_home(home)
        assert await rotate(rotating, home, home.root / KEY_FILE) == 1
        assert len(read_key_file(home.root / KEY_FILE) or []) == 2
        assert await running.connection_secrets(connection.id) == {"password": "one"}
    finally:
        await running.close()
        if rotating:
            await rotating.close()


async def _waiters(url: str) -> int:
    """Sessions waiting for a sign-in's advisory lock."""
    rows = await asyncio.to_thread(raw, url, (
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        f"AND classid = {TOKEN_LOCK_CLASS}"))
    return rows[0][0]


async def _until_waiting(url: str) -> None:
    while not await _waiters(url):
        await asyncio.sleep(0.05)


async def test_the_refresh_lock_excludes_another_host(tmp_path: Path, shared_url: str) -> None:
    """Two hosts' processes (two homes, two connections to the database) refreshing one
    sign-in: the second waits in PostgreSQL until the first lets go."""
    home_a, home_b = home_at(tmp_path / "a"), home_at(tmp_path / "b")
    first = await State.open_home(home_a)
    (home_b.root / KEY_FILE).write_bytes((home_a.root / KEY_FILE).read_bytes())
    (home_b.root / KEY_FILE).chmod(0o600)
    second = await State.open_home(home_b)
    try:
        connection = await first.add_connection("site", "procore", {})
        entered = asyncio.Event()

        async def refresh() -> None:
            async with StateTokenStore(second, home_b, connection.id).lock():
                entered.set()

        async with StateTokenStore(first, home_a, connection.id).lock():
            waiting = asyncio.create_task(refresh())
            await _until_waiting(shared_url)
            assert not entered.is_set()  # held here: the other host cannot enter
        await waiting
        assert entered.is_set() and await _waiters(shared_url) == 0
    finally:
        await first.close()
        await second.close()


HOLDER = """
import asyncio, sys
from pathlib import Path
from core.auth import StateTokenStore
from core.home import Home
from core.state import State

async def main():
    state = await State.open_url(sys.argv[1])
    async with StateTokenStore(state, Home(Path(sys.argv[2])), sys.argv[3]).lock():
        print("held", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_killed_holder_lets_the_lock_go(tmp_path: Path, shared_url: str) -> None:
    """Another process holding the lock excludes this one; killed (-9), it lets go with its
    session, so a crashed host never blocks the sign-in."""
    home = home_at(tmp_path / "home")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, shared_url, str(home.root), "c1"],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
        state = await State.open_home(home)
        try:
            entered = asyncio.Event()

            async def refresh() -> None:
                async with StateTokenStore(state, home, "c1").lock():
                    entered.set()

            taking = asyncio.create_task(refresh())
            await _until_waiting(shared_url)
            assert not entered.is_set()
            holder.send_signal(signal.SIGKILL)
            await taking
            assert entered.is_set() and await _waiters(shared_url) == 0
        finally:
            await state.close()
    finally:
        holder.kill()
        holder.wait()
