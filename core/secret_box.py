"""Secrets in a shared state, encrypted with the installation's key (issue 16).

Every host of an installation holds the same key: DRYVIQ_SECRET_KEY, else `secret.key` in the
home (mode 0600). What State stores in its secrets table goes through `seal` and comes back
through `open` (Fernet: AES-128-CBC with an HMAC-SHA256, from `cryptography`). Several keys
may be held, newest first: the newest seals, any opens, so after `secrets rotate` this host
still reads what a host not yet given the new key writes meanwhile.

The database keeps a key check (`secret_key_check`, one row: a known text sealed with the key
the secrets are sealed with), so a host holding another key is refused at open with one clear
error before it reads or writes anything, never left to seal beside the old secrets with a
key nobody else has. A state.db keeps its secrets as they are: it is the user's own 0600 file.

`cryptography` comes with the postgres extra, so it is imported only when a shared state opens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.home import ConfigError, Home

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

KEY_VARIABLE = "DRYVIQ_SECRET_KEY"
KEY_FILE = "secret.key"
CHECK_TEXT = "dryviq-tui secret key check"  # what the key check seals
_HEADER = ("# dryviq-tui's key for the secrets in the shared state: every host of this "
           "installation holds this file\n# (mode 0600). The first key seals; the others "
           "still open what was sealed before a rotation.\n")


class SecretKeyError(ConfigError):
    """This host's key cannot be used for the shared state's secrets (none, another, a key
    file open to others or unreadable); the message says which file and what to do."""


def key_path(home: Home) -> Path:
    return home.root / KEY_FILE


def copy_advice(home: Home) -> str:
    return (f"copy {KEY_FILE} from a host of this installation to {key_path(home)} (mode "
            f"0600), or set {KEY_VARIABLE}")


def key_mismatch(home: Home, where: str) -> SecretKeyError:
    return SecretKeyError(f"the secrets in the {where} were sealed with another key: "
                          f"{copy_advice(home)}")


def _fernet(keys: Sequence[bytes]) -> MultiFernet:
    from cryptography.fernet import Fernet, MultiFernet

    return MultiFernet([Fernet(key) for key in keys])


def new_key() -> bytes:
    from cryptography.fernet import Fernet

    return Fernet.generate_key()


def _parse_keys(text: str, where: str) -> list[bytes]:
    """The keys in a key file or DRYVIQ_SECRET_KEY (one per line or word, newest first; lines
    starting with # are comments). SecretKeyError naming `where`, never the text, when one is
    not a Fernet key."""
    from cryptography.fernet import Fernet

    keys = [word.encode() for line in text.splitlines() if not line.lstrip().startswith("#")
            for word in line.split()]
    if not keys:
        raise SecretKeyError(f"{where} holds no key")
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise SecretKeyError(f"{where}: key {number} is not a key dryviq-tui made (32 "
                                 "bytes in URL-safe base64)") from None
    return keys


def read_key_file(path: Path) -> list[bytes] | None:
    """The keys in a key file, None when there is none. Refused, like config.toml, when other
    users may read it."""
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_mode & 0o077:
                raise SecretKeyError(f"{path} is readable by other users; run: chmod 600 {path}")
            text = file.read().decode("ascii", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _parse_keys(text, str(path))


def write_key_file(path: Path, keys: Sequence[bytes], *, replace: bool = True) -> None:
    """Write the keys (newest first) to `path`, mode 0600, atomically: a temporary file beside
    it, flushed to disk, then renamed over it (or, without `replace`, linked to it, which fails
    with FileExistsError when another process made it first). A crash leaves the old file or
    the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(_HEADER + "".join(f"{key.decode()}\n" for key in keys))
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


class SecretBox:
    """Authenticated encryption of the secrets JSON with the installation's keys (newest
    first). A box whose keys came from the home's key file reads it again when a secret will
    not open (a rotation on this host since it was made) before giving up."""

    def __init__(self, keys: Sequence[bytes], *, home: Home, where: str,
                 key_file: Path | None = None) -> None:
        self.keys = list(keys)
        self.home = home
        self.where = where  # the database, as messages name it
        self.key_file = key_file  # where the keys came from (None: DRYVIQ_SECRET_KEY)
        self._fernet = _fernet(self.keys)

    def use_keys(self, keys: Sequence[bytes]) -> None:
        self.keys, self._fernet = list(keys), _fernet(keys)

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def opens(self, stored: str) -> bool:
        from cryptography.fernet import InvalidToken

        try:
            self._fernet.decrypt(stored.encode())
        except InvalidToken:
            return False
        return True

    def open(self, stored: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(stored.encode()).decode()
        except InvalidToken:
            if not self._reload():
                raise self.mismatch() from None
        try:
            return self._fernet.decrypt(stored.encode()).decode()
        except InvalidToken:
            raise self.mismatch() from None

    def _reload(self) -> bool:
        """Read the key file again; whether it now holds other keys."""
        keys = read_key_file(self.key_file) if self.key_file else None
        if not keys or keys == self.keys:
            return False
        self.use_keys(keys)
        return True

    def mismatch(self) -> SecretKeyError:
        return key_mismatch(self.home, self.where)


def host_keys(home: Home) -> tuple[list[bytes] | None, Path | None]:
    """This host's keys (DRYVIQ_SECRET_KEY, else the home's key file; None when neither) and
    the file they came from (None for the variable)."""
    value = os.environ.get(KEY_VARIABLE)
    if value and value.strip():
        return _parse_keys(value, f"${KEY_VARIABLE}"), None
    path = key_path(home)
    return read_key_file(path), path


async def _check_row(db: Any) -> str | None:
    rows = await db.execute_fetchall("SELECT token FROM secret_key_check WHERE id = 1")
    return rows[0][0] if rows else None


async def _record_check(db: Any, box: SecretBox) -> None:
    """Record the key check unless another host just did; then the check in the database must
    open with this box's keys."""
    await db.execute("INSERT INTO secret_key_check VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
                     (box.seal(CHECK_TEXT), time.time()))
    await db.commit()
    stored = await _check_row(db)
    if stored is None or not box.opens(stored):
        raise box.mismatch()


async def open_box(db: Any, home: Home, where: str) -> SecretBox:
    """The box for the shared state behind `db` (named `where` in messages), with this host's
    key checked against the database's key check. The first host of an installation, with no
    key of its own, makes one (secret.key, 0600), only when the database has neither a key
    check nor secrets. SecretKeyError, with nothing changed, when this host's key is not the
    installation's."""
    keys, key_file = host_keys(home)
    stored = await _check_row(db)
    if keys is None:
        (count,), = await db.execute_fetchall("SELECT COUNT(*) FROM secrets")
        if stored is not None or count:
            raise key_mismatch(home, where)
        return await _first_key(db, home, where)
    box = SecretBox(keys, home=home, where=where, key_file=key_file)
    if stored is not None:
        if not box.opens(stored):
            raise box.mismatch()
        return box
    # keys but no check yet (the key file was made and the host stopped before recording it):
    # the key must open whatever secrets are there before it becomes the installation's
    for (data,) in await db.execute_fetchall("SELECT data FROM secrets"):
        if not box.opens(data):
            raise box.mismatch()
    await _record_check(db, box)
    return box


async def _first_key(db: Any, home: Home, where: str) -> SecretBox:
    """Make the installation's key: the key file first, then the key check. A crash between
    the two leaves a key file and no check, which the next open records; the other order
    would leave a check that no key on any host opens."""
    path = key_path(home)
    try:
        write_key_file(path, [new_key()], replace=False)
    except FileExistsError:  # another process of this home made it meanwhile: use that one
        pass
    except OSError as exc:
        raise SecretKeyError(f"cannot write the installation's new key to {path}: "
                             f"{exc.strerror or exc}") from None
    keys = read_key_file(path)
    assert keys is not None
    box = SecretBox(keys, home=home, where=where, key_file=path)
    try:
        await _record_check(db, box)
    except SecretKeyError:
        # another host made the installation's key first: ours seals nothing, so it goes
        with contextlib.suppress(OSError, SecretKeyError):
            if read_key_file(path) == keys:
                path.unlink()
        raise
    return box


async def rotate(state: Any, home: Home, key_file: Path) -> int:
    """Seal every secret of the shared `state` and its key check with a new key, in one
    transaction, and write the new key to `key_file` (0600) with this host's current key
    after it. Returns how many connections' secrets were re-sealed. A failure changes nothing.

    The key file is written before the commit, never after: a crash between the two then
    leaves the database sealed with the old key, which the file still holds, and the next
    rotation starts again; the other order could leave the data sealed with a key that only
    this process's memory held. When the transaction fails after the file was written, the
    file gets this host's keys back with the new one after them: the database is then sealed
    with the old key, or, if the commit reached the server before the connection failed, with
    the new one, and either way this host still opens it."""
    box: SecretBox = state.secret_box
    db = state.db
    new = new_key()
    keys = [new, box.keys[0]]  # the key before it still opens what other hosts seal meanwhile
    sealing = SecretBox(keys, home=home, where=box.where)
    written = False
    try:
        # the first write opens the transaction; FOR UPDATE then holds every secret, so a
        # token another host refreshes meanwhile waits and is not overwritten with its old one
        await db.execute("UPDATE secret_key_check SET token = ?, sealed_at = ? WHERE id = 1",
                         (sealing.seal(CHECK_TEXT), time.time()))
        rows = await db.execute_fetchall(
            "SELECT connection_id, data FROM secrets ORDER BY connection_id FOR UPDATE")
        await db.executemany("UPDATE secrets SET data = ? WHERE connection_id = ?",
                             [(sealing.seal(box.open(data)), id_) for id_, data in rows])
        write_key_file(key_file, keys)
        written = True
        await db.commit()
    except BaseException:
        await db.rollback()
        if written:
            write_key_file(key_file, [*box.keys, new])
        raise
    box.use_keys(keys)
    return len(rows)

