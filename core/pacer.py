"""The rate-limit pacer: one budget per API client, shared by every process that uses it.

Procore counts every request against two windows per client, an hourly one and a 10-second
spike one, and announces whichever is likelier to bind in `X-Rate-Limit-*` headers. The pacer
keeps its view of both in the state DB (table rate_budgets), so a job run headless and the TUI
browsing beside it draw on one budget, and with a shared state in PostgreSQL every host does
(core/budget_postgres.py). Each call takes a slot in one short transaction on the row:
calls are spaced evenly to fit the spike window, a job stops short of the hourly limit by a
reserve (so browsing still works), and a 429 or `Retry-After` blocks everyone until it passes.
Failed calls are retried with exponential backoff and jitter, a bounded number of times.

Times the server states (`X-Rate-Limit-Reset`, a `Retry-After` date) are on the server's clock:
they are measured against the response's `Date` header and placed on the budget's (this host's,
or the shared database's), so a local clock that is minutes off neither pauses a job for
nothing nor retries at once. The hourly limit, once the headers named it, stays known across
resets (Procore names the hourly window only when it is nearly spent), so the reserve holds
from the start of every later window.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiosqlite
import httpx

from core.connectors.base import BudgetSpent, Retryable
from core.home import ConfigError

if TYPE_CHECKING:
    from core.state import State

log = logging.getLogger(__name__)

DEFAULT_HOURLY_LIMIT = 3600  # calls an hour per client, the product page's figure
DEFAULT_HOURLY_WINDOW = 3600.0  # seconds; "an hourly limit (60-minute window)", Rate Limiting
SPIKE_WINDOW = 10.0  # seconds; Procore's documented spike window
# A reset at most this far past the response's Date is the spike window's (or the hourly one in
# its last seconds): the reset and Date are whole seconds, so a 10-second window can read as 11
SPIKE_HEADER_HORIZON = SPIKE_WINDOW + 1.5
SAME_RESET = 1.5  # seconds: resets this close, each placed through its own Date, are one reset
# An hourly reset not yet stated is estimated from when the window's first call went, plus this
HOURLY_ESTIMATE_MARGIN = 1.0
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
    rate_limit_wait_seconds: float = 0.0  # how long calls waited: overlapping waits once
    waiting_until: float | None = None  # set while waiting for the hourly reset
    waiting: int = 0  # calls waiting right now
    waiting_since: float = 0.0  # when the first of them began to wait

    def wait_began(self, now: float) -> None:
        if not self.waiting:
            self.waiting_since = now
        self.waiting += 1

    def wait_ended(self, now: float) -> None:
        """Count the time waited once all waiting calls have ended: workers waiting for one
        reset together are one wait of the run, not one per worker."""
        self.waiting -= 1
        if not self.waiting:
            self.rate_limit_wait_seconds += max(0.0, now - self.waiting_since)


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
    hourly_window: float  # the hourly window's length as seen so far; 0 while unknown
    hourly_started: float  # when the current hourly window's first call went; 0 before it
    calls_taken: int  # slots taken so far, to tell which calls went after a given one
    # not a column: the time the row was read, on the clock of a store whose clock is not this
    # host's (the shared database's); None for a state.db, whose clock is this host's
    now: float | None = None

    @property
    def hourly_end(self) -> float:
        """When the current hourly window ends: as the headers said, else estimated from its
        first call; 0 while neither is known."""
        if self.hourly_reset:
            return self.hourly_reset
        if self.hourly_started:
            return (self.hourly_started + (self.hourly_window or DEFAULT_HOURLY_WINDOW)
                    + HOURLY_ESTIMATE_MARGIN)
        return 0.0


BUDGET_COLUMNS = ("hourly_limit", "hourly_remaining", "hourly_reset", "spike_limit",
                  "spike_remaining", "spike_reset", "next_call_at", "blocked_until",
                  "hourly_window", "hourly_started", "calls_taken")


def fresh_budget(default_hourly: int) -> Budget:
    """A client's budget before any call: the assumed hourly limit, nothing else known."""
    return Budget(default_hourly, default_hourly, 0.0, None, None, 0.0, 0.0, 0.0, 0.0, 0.0, 0)


class Budgets(Protocol):
    """Where the budgets live: a BudgetStore (state.db), or a PostgresBudgetStore for a shared
    state. `budget` holds a client's row locked against every other process until its block
    ends, then writes it back. Every time in the row is on one clock: this host's for a
    state.db, the database's for a shared state (then `Budget.now` says its time)."""

    def budget(self, key: str,
               default_hourly: int) -> contextlib.AbstractAsyncContextManager[Budget]: ...

    async def close(self) -> None: ...


def budget_store_for(state: State) -> Budgets:
    """The budget store of a state: its state.db for one machine, or the shared PostgreSQL
    database that every host of the installation draws on."""
    if state.shared is not None and state.url is not None:
        from core.budget_postgres import PostgresBudgetStore

        return PostgresBudgetStore(state.url)
    return BudgetStore(state.path)


class BudgetStore:
    """The rate_budgets table of a state.db, on a connection of its own (opened at first use):
    a slot is taken in one immediate transaction, which must not interleave with the state's
    writes."""

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
                f"SELECT {', '.join(BUDGET_COLUMNS)} FROM rate_budgets WHERE client_key = ?",
                (key,))).fetchall())
            budget = Budget(*rows[0]) if rows else fresh_budget(default_hourly)
            yield budget
            await db.execute(
                f"INSERT OR REPLACE INTO rate_budgets (client_key, {', '.join(BUDGET_COLUMNS)}, "
                f"updated_at) VALUES ({', '.join('?' * (len(BUDGET_COLUMNS) + 2))})",
                (key, *(getattr(budget, c) for c in BUDGET_COLUMNS), time.time()))
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(db.execute("ROLLBACK"))
            raise


def _roll(budget: Budget, now: float) -> None:
    """Windows whose end has passed start again full, of the limit learned for them."""
    if budget.hourly_end and budget.hourly_end <= now:
        budget.hourly_remaining = budget.hourly_limit
        budget.hourly_reset = budget.hourly_started = 0.0
    if budget.spike_limit and budget.spike_reset <= now:
        budget.spike_remaining, budget.spike_reset = budget.spike_limit, 0.0


def _header_number(headers: httpx.Headers, name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def _http_date(value: str | None) -> float | None:
    """An HTTP date as epoch seconds, or None if absent or unreadable."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=datetime.UTC)).timestamp()


def server_lead(headers: httpx.Headers, now: float) -> float:
    """How far our clock is ahead of the server's, by the response's `Date`; 0 (our clock)
    without a readable one. `Date` is the server's time cut to the second, and the response
    took a while to arrive, so this errs towards placing the server's times late, never early."""
    date = _http_date(headers.get("date"))
    return 0.0 if date is None else now - date


def _retry_after(headers: httpx.Headers, now: float, lead: float) -> float | None:
    """Retry-After on our clock: seconds from now, or an HTTP date on the server's clock."""
    value = headers.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return now + float(value)
    date = _http_date(value)
    return None if date is None else date + lead


def backoff(attempt: int) -> float:
    """Exponential delay with jitter, so many clients retrying do not stay in step."""
    return random.uniform(0.5, 1.0) * min(MAX_DELAY, BASE_DELAY * 2 ** attempt)


class Pacer:
    """Paces one API client's calls. `interactive` pacers (browsing) may use the reserve;
    job pacers stop short of it and then wait for the reset, or raise BudgetSpent when
    `wait` is off (`jobs run --no-wait`)."""

    def __init__(self, store: Budgets, key: str, *, interactive: bool = False,
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

    async def acquire(self, usage: Usage) -> int:
        """Wait for this call's slot, and take it; returns the slot's number, for `observe`."""
        while True:
            async with self.store.budget(self.key, self.default_hourly) as budget:
                now, lead = self._now(budget)
                _roll(budget, now)
                until = self._blocked_until(budget, now, lead)
                if until is None:
                    slot = max(now, budget.next_call_at)
                    if budget.spike_limit:
                        budget.next_call_at = (slot + SPIKE_WINDOW / budget.spike_limit
                                               * SPACING_MARGIN)
                        budget.spike_remaining = (budget.spike_remaining or 0) - 1
                    budget.hourly_remaining -= 1
                    if not budget.hourly_started:
                        budget.hourly_started = slot  # this call opens the hourly window
                    budget.calls_taken += 1
                    ticket = budget.calls_taken
            if until is None:
                if slot > now:
                    await self.sleep(slot - now)
                return ticket
            await self._wait(until + lead, usage)

    def _now(self, budget: Budget) -> tuple[float, float]:
        """The time now on the budget's clock, and how far our clock is ahead of it (to give
        times back on ours)."""
        ours = self._clock()
        return (ours, 0.0) if budget.now is None else (budget.now, ours - budget.now)

    def _blocked_until(self, budget: Budget, now: float, lead: float) -> float | None:
        """When the next call may go (on the budget's clock), or None if it may go now (after
        its spacing slot). A job that does not wait raises BudgetSpent rather than wait past a
        spike window, with the time on our clock (`lead` ahead of the budget's)."""
        floor = 0 if self.interactive else math.ceil(self.reserve * budget.hourly_limit)
        if budget.blocked_until > now:
            until, why = budget.blocked_until, "Procore asked to wait (429 or Retry-After)"
        elif budget.hourly_remaining <= floor and budget.hourly_end > now:
            until, why = budget.hourly_end, (
                f"the API budget of {budget.hourly_limit} calls an hour is spent (less the "
                f"{self.reserve:.0%} reserve kept for browsing)")
        elif (budget.spike_limit and budget.spike_reset > now
              and (budget.spike_remaining or 0) <= 0):
            return budget.spike_reset
        else:
            return None
        if not self.wait and not self.interactive and until - now > SPIKE_HEADER_HORIZON:
            ours = until + lead
            raise BudgetSpent(
                f"{why} until {time.strftime('%H:%M:%S', time.localtime(ours))}", ours)
        return until

    async def _wait(self, until: float, usage: Usage) -> None:
        """Wait until `until` (on our clock)."""
        delay = max(0.0, until - self._clock()) + random.uniform(0.05, 0.25)
        long_wait = delay > SPIKE_HEADER_HORIZON
        usage.rate_limit_waits += 1
        if long_wait:
            usage.waiting_until = until
            log.info("rate limit: %s waits until %s", self.key,  # helper `state`: the log
                     time.strftime("%H:%M:%S", time.localtime(until)))
        usage.wait_began(self._clock())
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
            usage.wait_ended(self._clock())
            if long_wait:
                usage.waiting_until = None

    async def observe(self, response: httpx.Response, ticket: int | None = None) -> None:
        """Take in what the server said about the budget. `ticket` is the call's slot number
        from `acquire`: calls that took a slot after it may not be counted in its headers."""
        headers, status = response.headers, response.status_code
        limit = _header_number(headers, "x-rate-limit-limit")
        remaining = _header_number(headers, "x-rate-limit-remaining")
        reset = _header_number(headers, "x-rate-limit-reset")
        if None in (limit, remaining, reset) and "retry-after" not in headers and status != 429:
            return
        async with self.store.budget(self.key, self.default_hourly) as budget:
            now = self._now(budget)[0]
            # the server's times are placed on the budget's clock through its Date
            lead = server_lead(headers, now)
            retry_at = _retry_after(headers, now, lead)
            _roll(budget, now)
            reset_at = None if reset is None else reset + lead  # on the budget's clock
            if limit is not None and remaining is not None and reset_at is not None:
                later = 0 if ticket is None else max(0, budget.calls_taken - ticket)
                stated = max(0, int(remaining))
                _observe_window(budget, max(1, int(limit)), stated, max(0, stated - later),
                                reset_at, reset_at - now)
            if status == 429:
                # wait for the window the headers name (else back off) before anyone calls
                budget.blocked_until = max(budget.blocked_until, retry_at or 0.0,
                                           reset_at or 0.0)
                if budget.blocked_until <= now:
                    budget.blocked_until = now + backoff(0)
            elif retry_at is not None:
                budget.blocked_until = max(budget.blocked_until, retry_at)

    async def request(self, send: Callable[[], Awaitable[httpx.Response]], usage: Usage, *,
                      idempotent: bool = True) -> httpx.Response:
        """Make one API call through the budget, retrying what is safe to retry: 429s (after
        waiting for the reset), and 5xx or connection failures with backoff when `idempotent`.
        A non-idempotent call that fails unclearly raises ResponseLost for the caller to check."""
        failures = rate_limited = 0
        while True:
            ticket = await self.acquire(usage)
            usage.api_calls += 1
            try:
                response = await send()
            except (httpx.TransportError, httpx.DecodingError) as exc:
                failure: str = f"the connection failed ({type(exc).__name__})"
            else:
                await self.observe(response, ticket)
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
            log.info("retrying an API call: %s (attempt %d)", failure, failures + 2)  # `state`
            await self.sleep(backoff(failures))
            failures += 1


def _is_spike(budget: Budget, limit: int, remaining: int, reset: float, distance: float) -> bool:
    """Headers describe one window without naming it. `distance` is the reset's distance from
    the server's now (by its Date): one further off than the spike window lasts is the hour's.
    A nearer one is told by its limit where the two known limits differ (the hour in its last
    seconds has the larger), else by whether it is the hourly reset already stated. A limit
    between the two, with no hourly reset stated, is told by `remaining` (as the server sent
    it): the headers name the window the app would exceed first (Rate Limiting), so the hour
    is named only with fewer calls left than the spike window allows, while a raised spike
    limit shows at least the old one left."""
    if distance > SPIKE_HEADER_HORIZON:
        return False
    spike, hourly = budget.spike_limit, budget.hourly_limit
    if spike and spike < hourly and not spike < limit < hourly:
        return limit <= spike
    if budget.hourly_reset:
        return abs(reset - budget.hourly_reset) > SAME_RESET
    if spike:
        return limit <= spike or remaining >= spike
    return limit < hourly or reset < budget.hourly_end - SAME_RESET


def _observe_window(budget: Budget, limit: int, stated: int, remaining: int, reset: float,
                    distance: float) -> None:
    """Take in one response's headers: `reset` is on our clock, `distance` on the server's,
    `stated` the remaining the server sent and `remaining` that less the calls that went after
    this one."""
    if _is_spike(budget, limit, stated, reset, distance):
        new_window = reset > budget.spike_reset + SAME_RESET
        budget.spike_limit = limit
        budget.spike_remaining = (remaining if new_window or budget.spike_remaining is None
                                  else min(budget.spike_remaining, remaining))
        budget.spike_reset = reset
        return
    end = budget.hourly_end
    if end and reset > end + SAME_RESET:  # a window that began before we saw the last one end
        budget.hourly_remaining, budget.hourly_started = remaining, 0.0
    else:
        # a count kept against another limit (the one assumed until the headers named it)
        # gives way to the server's
        budget.hourly_remaining = (remaining if limit != budget.hourly_limit
                                   else min(budget.hourly_remaining, remaining))
        # the window only ever grows, and a span the spike window could have is no measure
        # of it (the assumed hour stays until one longer is seen)
        span = reset - budget.hourly_started
        if budget.hourly_started and span > SPIKE_HEADER_HORIZON:
            budget.hourly_window = max(budget.hourly_window, span)
    budget.hourly_limit = limit
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
