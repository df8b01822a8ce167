"""The API budget in a shared PostgreSQL state: every host of an installation draws on one row
per client, so ten agents on ten hosts together stay under Procore's windows.

A slot is one short transaction on the client's row: insert it if missing (`ON CONFLICT DO
NOTHING`), read it `FOR UPDATE` (other hosts' slots wait for this one), run the pacer's own
Budget logic (core/pacer.py), write it back, commit. Two round trips: the statements before
the logic go in one pipeline, the write and the commit in the next.

The budget's clock is the database's (`clock_timestamp()`, read in the same transaction, after
the row lock): hosts' clocks differ, and calls to one client are spaced 0.1-1 s apart to fit a
10-second spike window, so a host whose clock is half a second off would call early (or late)
if it placed its slot on its own clock. On one clock, the spacing holds across hosts whatever
their clocks say; the pacer converts the times it hands back (a pause's end) to the host's.

Slots do not use the State's connection (a slot must not interleave with the state's writes)
but a small pool, one per process (and event loop) per database, shared by every store on it
and closed with the last: a slot holds a connection for a few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core.connectors.base import Retryable
from core.pacer import BUDGET_COLUMNS, Budget, fresh_budget
from core.postgres import configure, describe, reason

POOL_SIZE = 4  # connections a process keeps at most for slots
CONNECT_TIMEOUT = 30.0  # seconds a slot waits for a connection before it fails

_INSERT = (f"INSERT INTO rate_budgets (client_key, {', '.join(BUDGET_COLUMNS)}, updated_at) "
           f"VALUES ({', '.join(['%s'] * (len(BUDGET_COLUMNS) + 2))}) "
           "ON CONFLICT (client_key) DO NOTHING")
_SELECT = f"SELECT {', '.join(BUDGET_COLUMNS)} FROM rate_budgets WHERE client_key = %s FOR UPDATE"
_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"
_UPDATE = (f"UPDATE rate_budgets SET {', '.join(f'{c} = %s' for c in BUDGET_COLUMNS)}, "
           "updated_at = %s WHERE client_key = %s")


class _Pools:
    """The pools of one event loop, by URL, each with the number of stores using it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.pools: dict[str, tuple[AsyncConnectionPool[Any], int]] = {}


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pools] = (
    weakref.WeakKeyDictionary())


async def _take_pool(url: str) -> AsyncConnectionPool[Any]:
    pools = _LOOPS.setdefault(asyncio.get_running_loop(), _Pools())
    async with pools.lock:
        pool, users = pools.pools.get(url, (None, 0))
        if pool is None:
            pool = AsyncConnectionPool(url, min_size=1, max_size=POOL_SIZE, open=False,
                                       timeout=CONNECT_TIMEOUT, kwargs={"autocommit": True},
                                       configure=_configure)
            await pool.open()
        pools.pools[url] = (pool, users + 1)
        return pool


async def _give_pool(url: str) -> None:
    pools = _LOOPS.get(asyncio.get_running_loop())
    if pools is None:
        return
    async with pools.lock:
        pool, users = pools.pools.pop(url)
        if users > 1:
            pools.pools[url] = (pool, users - 1)
        else:
            await pool.close()


async def _configure(connection: psycopg.AsyncConnection[Any]) -> None:
    configure(connection)


class PostgresBudgetStore:
    """The rate_budgets table of a shared state. `clock` stands in for the database's clock
    (the tests' virtual one); by default the database's is the budget's."""

    def __init__(self, url: str, clock: Callable[[], float] | None = None) -> None:
        self.url = url
        self.clock = clock
        self._pool: AsyncConnectionPool[Any] | None = None
        self._opening = asyncio.Lock()

    async def _connections(self) -> AsyncConnectionPool[Any]:
        async with self._opening:
            if self._pool is None:
                self._pool = await _take_pool(self.url)
            return self._pool

    async def close(self) -> None:
        async with self._opening:
            if self._pool is not None:
                self._pool = None
                await _give_pool(self.url)

    @contextlib.asynccontextmanager
    async def budget(self, key: str, default_hourly: int) -> AsyncIterator[Budget]:
        pool = await self._connections()
        try:
            async with (pool.connection() as conn, conn.pipeline(), conn.transaction()):
                fresh = fresh_budget(default_hourly)
                await conn.execute(_INSERT, (key, *(getattr(fresh, c) for c in BUDGET_COLUMNS),
                                             time.time()))
                locked = await conn.execute(_SELECT, (key,))
                clock = await conn.execute(_NOW)
                row = await locked.fetchone()
                now_row = await clock.fetchone()
                assert row is not None and now_row is not None  # inserted above, if missing
                budget = Budget(*row)
                budget.now = self.clock() if self.clock is not None else now_row[0]
                yield budget
                await conn.execute(_UPDATE, (*(getattr(budget, c) for c in BUDGET_COLUMNS),
                                             budget.now, key))
        except (psycopg.Error, PoolTimeout) as exc:
            raise Retryable(f"the API budget in the {describe(self.url)} could not be "
                            f"read or written: {reason(exc)}") from None
