"""The API's bearer tokens: made by `dryviq-tui tokens create`, shown once, stored only as a
SHA-256 hash (a token is 256 random bits, so a fast hash is enough: nothing to guess), checked
on every request, revoked by name. A read-only token may only read."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.state import State

log = logging.getLogger(__name__)

PREFIX = "dq_"  # says what a token is where one turns up (a shell history, a leaked file)
TOUCH_EVERY = 60.0  # seconds: last_used_at is written at most this often per token
# seconds a token found valid is trusted without reading the table again: a token revoked (by
# any process) is refused at most this long after; a new one works at once (misses are not kept)
REMEMBER = 2.0
MAX_NAME = 64


@dataclass(frozen=True)
class ApiToken:
    id: str
    name: str
    read_only: bool
    created_at: float
    last_used_at: float | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenExists(ValueError):
    """A token of that name exists already."""


def _checked_name(name: str) -> str:
    """A token's name: what `tokens list` shows and `tokens revoke` takes, so printable, on one
    line, and not too long to read."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"a token's name is 1 to {MAX_NAME} printable characters, not "
                         f"{name!r}")
    return name


async def create_token(state: State, name: str, *, read_only: bool) -> tuple[ApiToken, str]:
    """A new token named `name`; returns it and its secret (which nothing stores). A bad name
    raises ValueError, a name (or id) in use TokenExists."""
    name = _checked_name(name)
    if await find_token(state, name):
        raise TokenExists(f"a token named {name!r} exists already")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(secrets.token_hex(4), name, read_only, time.time(), None)
    try:
        await state.db.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, NULL)",
                               (token.id, name, _hash(secret), int(read_only), token.created_at))
    except state.IntegrityError:  # made by another process since the look above
        raise TokenExists(f"a token named {name!r} exists already") from None
    await state.db.commit()
    return token, secret


async def list_tokens(state: State) -> list[ApiToken]:
    rows = await state.db.execute_fetchall(
        "SELECT id, name, read_only, created_at, last_used_at FROM api_tokens ORDER BY name")
    return [ApiToken(row[0], row[1], bool(row[2]), row[3], row[4]) for row in rows]


async def find_token(state: State, name_or_id: str) -> ApiToken | None:
    return next((token for token in await list_tokens(state)
                 if name_or_id in (token.id,) or token.name.casefold() == name_or_id.casefold()),
                None)


async def revoke_token(state: State, name_or_id: str) -> ApiToken | None:
    """Remove the token; None when there is none of that name or id."""
    token = await find_token(state, name_or_id)
    if token is not None:
        await state.db.execute("DELETE FROM api_tokens WHERE id = ?", (token.id,))
        await state.db.commit()
    return token


class TokenChecker:
    """Checks presented secrets against the stored hashes, noting when each was used. A valid
    token is remembered for REMEMBER seconds (a request under load then costs no read of the
    state), so one revoked by another process stops working within that time."""

    def __init__(self, state: State, *, remember: float = REMEMBER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.remember = remember
        self.clock = clock
        self._touched: dict[str, float] = {}
        self._valid: dict[str, tuple[float, ApiToken]] = {}  # hash -> (checked at, token)

    async def check(self, secret: str) -> ApiToken | None:
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        digest = _hash(secret)
        known = self._valid.get(digest)
        if known is not None and self.clock() - known[0] < self.remember:
            return known[1]
        token = await self._lookup(digest)
        if token is None:
            self._valid.pop(digest, None)
        else:
            self._valid[digest] = (self.clock(), token)
        return token

    async def _lookup(self, digest: str) -> ApiToken | None:
        rows = await self.state.db.execute_fetchall(
            "SELECT id, name, read_only, created_at, last_used_at, hash FROM api_tokens "
            "WHERE hash = ?", (digest,))
        if not rows or not hmac.compare_digest(rows[0][5], digest):
            return None
        row = rows[0]
        token = ApiToken(row[0], row[1], bool(row[2]), row[3], row[4])
        now = time.time()
        if now - self._touched.get(token.id, 0.0) >= TOUCH_EVERY:
            self._touched[token.id] = now
            await self._touch(token.id, now)
        return token

    async def _touch(self, token_id: str, now: float) -> None:
        """Note the use; a state file too busy to write (a run committing) costs only the
        note, never the request."""
        try:
            await self.state.db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
                                        (now, token_id))
            await self.state.db.commit()
        except self.state.OperationalError as exc:
            log.warning("could not note when token %s was used: %s", token_id, exc)
