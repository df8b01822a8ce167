"""The rate-limit pacer: one budget per API client, shared by every process that uses it.

Procore counts every request against two windows per client, an hourly one and a 10-second
spike one, and announces whichever is likelier to bind in `X-Rate-Limit-*` headers. The pacer
keeps its view of both in the state DB (table rate_budgets), so a job run headless and the TUI
browsing beside it draw on one budget. Each call takes a slot in one short SQLite transaction:
calls are spaced evenly to fit the spike window, a job stops short of the hourly limit by a
reserve (so browsing still works), and a 429 or `Retry-After` blocks everyone until it passes.
Failed calls are retried with exponential backoff and jitter, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import httpx

from core.connectors.base import BudgetSpent, Retryable
from core.home import ConfigError

DEFAULT_HOURLY_LIMIT = 3600  # calls an hour per client, the product page's figure
SPIKE_WINDOW = 10.0  # seconds; Procore's documented spike window
SPIKE_HEADER_HORIZON = SPIKE_WINDOW + 1.5  # a reset this close to the response is the spike's
# Calls are spaced 5% wider than the spike limit allows: the server's window starts when the
# first call arrives, so calls paced exactly at the limit lose the race at the window's edge
# whenever that first call travelled slower than a later one (measured: 2 429s in 1,052 calls)
SPACING_MARGIN = 1.05
DEFAULT_RESERVE = 0.10  # share of the hourly limit a job leaves for interactive browsing
MAX_RETRIES = 5  # per call, for 5xx and connection failures
MAX_RATE_LIMITED = 30  # 429s in a row before a call gives up (the pacer waits between them)
BASE_DELAY = 0.5  # seconds, doubled per retry
MAX_DELAY = 30.0


class ResponseLost(Retryable):
    """A call that changes something failed without a clear answer (connection dropped, 5xx):
    it may or may not have taken effect, so the caller checks before trying again."""


@dataclass(slots=True)
class Usage:
    """What one connector's calls cost, for execution stats and the live monitor."""

    api_calls: int = 0
    rate_limited: int = 0  # 429 answers received
    rate_limit_waits: int = 0  # times a call waited for a window to reset
    waiting_until: float | None = None  # set while waiting for the hourly reset


@dataclass(slots=True)
class Budget:
    """The pacer's view of one client's windows (a row of rate_budgets)."""

    hourly_limit: int
    hourly_remaining: int
    hourly_reset: float  # epoch seconds; 0 while unknown
    spike_limit: int | None
    spike_remaining: int | None
    spike_reset: float
    next_call_at: float  # the earliest start of the next call, to spread calls evenly
    blocked_until: float  # after a 429 or Retry-After: nobody calls before this


_COLUMNS = ("hourly_limit", "hourly_remaining", "hourly_reset", "spike_limit", "spike_remaining",
            "spike_reset", "next_call_at", "blocked_until")


class BudgetStore:
    """The rate_budgets table, on a connection of its own (opened at first use): a slot is
    taken in one immediate transaction, which must not interleave with the state's writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()
        self._turn = asyncio.Lock()  # one transaction at a time on this connection

    async def _connection(self) -> aiosqlite.Connection:
        async with self._opening:
            if self._db is None:
                self._db = await aiosqlite.connect(self.path, isolation_level=None)
                await self._db.execute("PRAGMA busy_timeout=10000")
            return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @contextlib.asynccontextmanager
    async def budget(self, key: str, default_hourly: int) -> AsyncIterator[Budget]:
        """The client's budget, locked against other processes until the block ends, then
        written back."""
        db = await self._connection()
        async with self._turn, self._transaction(db, key, default_hourly) as budget:
            yield budget

    @contextlib.asynccontextmanager
    async def _transaction(self, db: aiosqlite.Connection, key: str,
                           default_hourly: int) -> AsyncIterator[Budget]:
        try:
            await db.execute("BEGIN IMMEDIATE")
        except BaseException:
            # a cancelled BEGIN still runs in aiosqlite's thread: roll back after it, whatever
            # it did, or the connection would stay inside a transaction
            with contextlib.suppress(Exception):
                await asyncio.shield(db.execute("ROLLBACK"))
            raise
        try:
            rows = list(await (await db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM rate_budgets WHERE client_key = ?",
                (key,))).fetchall())
            budget = (Budget(*rows[0]) if rows else
                      Budget(default_hourly, default_hourly, 0.0, None, None, 0.0, 0.0, 0.0))
            yield budget
            await db.execute(
                f"INSERT OR REPLACE INTO rate_budgets (client_key, {', '.join(_COLUMNS)}, "
                f"updated_at) VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})",
                (key, *(getattr(budget, c) for c in _COLUMNS), time.time()))
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(db.execute("ROLLBACK"))
            raise


def _roll(budget: Budget, now: float) -> None:
    """Windows whose reset time has passed start again full."""
    if budget.hourly_reset and budget.hourly_reset <= now:
        budget.hourly_remaining, budget.hourly_reset = budget.hourly_limit, 0.0
    if budget.spike_limit and budget.spike_reset <= now:
        budget.spike_remaining, budget.spike_reset = budget.spike_limit, 0.0


def _header_number(headers: httpx.Headers, name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def _retry_after(headers: httpx.Headers, now: float) -> float | None:
    """Retry-After as an epoch time: seconds or an HTTP date."""
    value = headers.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return now + float(value)
    with contextlib.suppress(TypeError, ValueError):
        return email.utils.parsedate_to_datetime(value).timestamp()
    return None


def backoff(attempt: int) -> float:
    """Exponential delay with jitter, so many clients retrying do not stay in step."""
    return random.uniform(0.5, 1.0) * min(MAX_DELAY, BASE_DELAY * 2 ** attempt)


class Pacer:
    """Paces one API client's calls. `interactive` pacers (browsing) may use the reserve;
    job pacers stop short of it and then wait for the reset, or raise BudgetSpent when
    `wait` is off (`jobs run --no-wait`)."""

    def __init__(self, store: BudgetStore, key: str, *, interactive: bool = False,
                 wait: bool = True, reserve: float = DEFAULT_RESERVE,
                 default_hourly: int = DEFAULT_HOURLY_LIMIT,
                 stop: asyncio.Event | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.store = store
        self.key = key
        self.interactive = interactive
        self.wait = wait
        self.reserve = reserve
        self.default_hourly = default_hourly
        self.stop = stop  # the run's stop signal, which ends a long wait early
        self._clock = clock
        self.sleep = sleep

    async def acquire(self, usage: Usage) -> None:
        """Wait for this call's slot, and take it."""
        while True:
            now = self._clock()
            async with self.store.budget(self.key, self.default_hourly) as budget:
                _roll(budget, now)
                until = self._blocked_until(budget, now)
                if until is None:
                    slot = max(now, budget.next_call_at)
                    if budget.spike_limit:
                        budget.next_call_at = (slot + SPIKE_WINDOW / budget.spike_limit
                                               * SPACING_MARGIN)
                        budget.spike_remaining = (budget.spike_remaining or 0) - 1
                    budget.hourly_remaining -= 1
            if until is None:
                if slot > now:
                    await self.sleep(slot - now)
                return
            await self._wait(until, usage)

    def _blocked_until(self, budget: Budget, now: float) -> float | None:
        """When the next call may go, or None if it may go now (after its spacing slot).
        A job that does not wait raises BudgetSpent rather than wait past a spike window."""
        floor = 0 if self.interactive else math.ceil(self.reserve * budget.hourly_limit)
        if budget.blocked_until > now:
            until, why = budget.blocked_until, "Procore asked to wait (429 or Retry-After)"
        elif budget.hourly_reset > now and budget.hourly_remaining <= floor:
            until, why = budget.hourly_reset, (
                f"the API budget of {budget.hourly_limit} calls an hour is spent (less the "
                f"{self.reserve:.0%} reserve kept for browsing)")
        elif (budget.spike_limit and budget.spike_reset > now
              and (budget.spike_remaining or 0) <= 0):
            return budget.spike_reset
        else:
            return None
        if not self.wait and not self.interactive and until - now > SPIKE_HEADER_HORIZON:
            raise BudgetSpent(
                f"{why} until {time.strftime('%H:%M:%S', time.localtime(until))}", until)
        return until

    async def _wait(self, until: float, usage: Usage) -> None:
        delay = max(0.0, until - self._clock()) + random.uniform(0.05, 0.25)
        long_wait = delay > SPIKE_HEADER_HORIZON
        usage.rate_limit_waits += 1
        if long_wait:
            usage.waiting_until = until
        try:
            if self.stop is None or not long_wait:
                await self.sleep(delay)
                return
            # a run asked to stop while it waits for the hourly reset stops as paused now,
            # instead of after the reset
            sleeping = asyncio.ensure_future(self.sleep(delay))
            stopping = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait((sleeping, stopping), return_when=asyncio.FIRST_COMPLETED)
            for waiter in (sleeping, stopping):
                waiter.cancel()
            if self.stop.is_set():
                raise BudgetSpent("stopped while waiting for the API budget to reset at "
                                  f"{time.strftime('%H:%M:%S', time.localtime(until))}", until)
        finally:
            if long_wait:
                usage.waiting_until = None

    async def observe(self, response: httpx.Response) -> None:
        """Take in what the server said about the budget."""
        headers, now = response.headers, self._clock()
        limit = _header_number(headers, "x-rate-limit-limit")
        remaining = _header_number(headers, "x-rate-limit-remaining")
        reset = _header_number(headers, "x-rate-limit-reset")
        retry_at = _retry_after(headers, now)
        status = response.status_code
        if None in (limit, remaining, reset) and retry_at is None and status != 429:
            return
        async with self.store.budget(self.key, self.default_hourly) as budget:
            _roll(budget, now)
            if limit is not None and remaining is not None and reset is not None:
                _observe_window(budget, int(limit), int(remaining), reset, now)
            if status == 429:
                # wait for the window the headers name (else back off) before anyone calls
                budget.blocked_until = max(budget.blocked_until,
                                           retry_at or reset or now + backoff(0))
            elif retry_at is not None:
                budget.blocked_until = max(budget.blocked_until, retry_at)

    async def request(self, send: Callable[[], Awaitable[httpx.Response]], usage: Usage, *,
                      idempotent: bool = True) -> httpx.Response:
        """Make one API call through the budget, retrying what is safe to retry: 429s (after
        waiting for the reset), and 5xx or connection failures with backoff when `idempotent`.
        A non-idempotent call that fails unclearly raises ResponseLost for the caller to check."""
        failures = rate_limited = 0
        while True:
            await self.acquire(usage)
            usage.api_calls += 1
            try:
                response = await send()
            except (httpx.TransportError, httpx.DecodingError) as exc:
                failure: str = f"the connection failed ({type(exc).__name__})"
            else:
                await self.observe(response)
                if response.status_code == 429:
                    usage.rate_limited += 1
                    rate_limited += 1
                    if rate_limited >= MAX_RATE_LIMITED:
                        raise Retryable("the API kept answering 429 (rate limited)")
                    continue
                if response.status_code < 500:
                    return response
                failure = f"the server answered {response.status_code}"
            if not idempotent:
                raise ResponseLost(failure)
            if failures >= MAX_RETRIES:
                raise Retryable(f"{failure}, {failures + 1} times")
            await self.sleep(backoff(failures))
            failures += 1


def _observe_window(budget: Budget, limit: int, remaining: int, reset: float,
                    now: float) -> None:
    """Headers describe one window without naming it: a reset within ~10 s is the spike's."""
    # ...unless it is the hourly window in its last seconds: the spike limit is the smaller one
    if reset - now <= SPIKE_HEADER_HORIZON and limit < budget.hourly_limit:
        new_window = reset > budget.spike_reset + 0.5
        budget.spike_limit = limit
        budget.spike_remaining = (remaining if new_window or budget.spike_remaining is None
                                  else min(budget.spike_remaining, remaining))
        budget.spike_reset = reset
    else:
        new_window = reset > budget.hourly_reset + 0.5
        budget.hourly_limit = limit
        budget.hourly_remaining = (remaining if new_window
                                   else min(budget.hourly_remaining, remaining))
        budget.hourly_reset = reset


def pacer_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The pacer's options from config.toml's [pacer] table: `reserve` (a share of the hourly
    limit kept for browsing) and `hourly_limit` (the budget assumed until Procore states it)."""
    table = config.get("pacer") or {}
    settings: dict[str, Any] = {}
    if "reserve" in table:
        reserve = table["reserve"]
        if not isinstance(reserve, int | float) or not 0 <= reserve < 1:
            raise ConfigError(f"config.toml [pacer] reserve = {reserve!r}: use a share such as "
                             "0.1 (10%), at least 0 and below 1")
        settings["reserve"] = float(reserve)
    if "hourly_limit" in table:
        limit = table["hourly_limit"]
        if not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"config.toml [pacer] hourly_limit = {limit!r}: use a whole number "
                             "of calls, such as 3600")
        settings["default_hourly"] = limit
    return settings
