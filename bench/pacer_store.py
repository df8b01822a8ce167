"""The pacer's overhead per call: its budget in a state.db against a shared PostgreSQL state.

In one process on one machine, a job pacer takes --slots slots one after another from each
store (a budget of a billion calls an hour and no spike limit known, so nothing is spaced or
waited for and only the store's cost is measured): `acquire` alone, then `acquire` followed by
`observe` of a response with rate-limit headers, as every Procore call costs (two
transactions on the row). SQLite: the state.db in a temporary folder. PostgreSQL: a throwaway
cluster on a loopback port, started as the tests start theirs (tests/postgres.py; Debian's
postgresql), with fsync off, so it measures the round trips and the locking, not a disk.
Prints per-call median, mean and p99 in milliseconds, and PostgreSQL's over SQLite's.

    python bench/pacer_store.py [--slots 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from machine import describe_checkout, load_average  # bench/machine.py

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.postgres

import httpx

from core.budget_postgres import PostgresBudgetStore
from core.pacer import Budgets, BudgetStore, Pacer, Usage
from core.state import State
from tests.postgres import cluster

LIMIT = 1_000_000_000  # calls an hour: never reached, so no slot waits
HEADERS = {"X-Rate-Limit-Limit": str(LIMIT), "X-Rate-Limit-Remaining": str(LIMIT - 1)}


async def timed(slots: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    """Milliseconds of each of `slots` calls, after a few to warm up."""
    for _ in range(20):
        await call()
    times = []
    for _ in range(slots):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def measure(store: Budgets, slots: int) -> dict[str, list[float]]:
    pacer = Pacer(store, "bench@api.example", wait=False, default_hourly=LIMIT)
    usage = Usage()

    async def acquire() -> None:
        await pacer.acquire(usage)

    async def call() -> None:
        ticket = await pacer.acquire(usage)
        headers = {**HEADERS, "X-Rate-Limit-Reset": str(int(time.time()) + 3000)}
        await pacer.observe(httpx.Response(200, headers=headers), ticket)

    try:
        return {"acquire": await timed(slots, acquire),
                "acquire + observe": await timed(slots, call)}
    finally:
        await store.close()


def row(store: str, what: str, times: list[float]) -> str:
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return (f"| {store} | {what} | {statistics.median(times):.3f} | "
            f"{statistics.fmean(times):.3f} | {p99:.3f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds, the stores alternating")
    args = parser.parse_args()
    print(f"{describe_checkout()}; load average {load_average()}")
    results: dict[str, dict[str, list[float]]] = {"SQLite": {}, "PostgreSQL": {}}
    with tempfile.TemporaryDirectory() as folder, cluster() as server:
        sqlite = await State.open(Path(folder) / "state.db")
        shared = await State.open_url(server.url())
        try:
            for _ in range(args.repeat):
                for name, store in (("SQLite", BudgetStore(sqlite.path)),
                                    ("PostgreSQL", PostgresBudgetStore(server.url()))):
                    for what, times in (await measure(store, args.slots)).items():
                        results[name].setdefault(what, []).extend(times)
        finally:
            await sqlite.close()
            await shared.close()
    print(f"load average after {load_average()}; {args.slots} slots x {args.repeat} rounds\n")
    print("| store | per call | median ms | mean ms | p99 ms |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, by_what in results.items():
        for what, times in by_what.items():
            print(row(name, what, times))
    print()
    for what in results["SQLite"]:
        ratio = (statistics.median(results["PostgreSQL"][what])
                 / statistics.median(results["SQLite"][what]))
        print(f"PostgreSQL / SQLite, {what}: {ratio:.2f} (medians)")


if __name__ == "__main__":
    asyncio.run(main())
