"""How responsive the app stays while a 10,000-file job runs in it: event-loop lag.

The real app runs headless (Textual's test driver) on a home with a local -> local copy job of
--files small files. A probe coroutine on the app's event loop asks to wake every 10 ms and
records how late each wake-up is: that lateness is how long a key press would wait. It is
measured twice in the same process: with the app idle on the monitor screen (the reference),
and with the monitor open while the job runs (the job is owned by the app's service, on the
same loop, as in real use). Prints median, p99 and maximum lag of both, and their ratio.

    python bench/tui_lag.py [--files 10000] [--parallel 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from machine import describe_checkout, load_average  # bench/machine.py

from core.connections import add_local
from core.home import Home
from core.job_store import create_job
from tui.app import DryvIQApp
from tui.screens.monitor import MonitorScreen
from tui.service import AppService

TICK = 0.010  # seconds between the probe's wake-ups


async def probe(stop: asyncio.Event) -> list[float]:
    """Lateness of each wake-up, in seconds, until `stop` is set."""
    late: list[float] = []
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(TICK)
        late.append(time.perf_counter() - asked - TICK)
    return late


def summary(name: str, late: list[float]) -> tuple[float, float, float]:
    ordered = sorted(late)
    median = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    worst = ordered[-1] * 1000
    print(f"{name:<28} samples {len(late):>6}   median {median:6.2f} ms   p99 {p99:6.2f} ms   "
          f"max {worst:7.2f} ms")
    return median, p99, worst


def make_tree(root: Path, files: int) -> None:
    for index in range(files):
        folder = root / f"Folder {index // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"Sheet {index:05d}.pdf").write_bytes(index.to_bytes(4, "big") * 1024)


async def measure(args: argparse.Namespace, work: Path) -> None:
    make_tree(work / "plans", args.files)
    (work / "share").mkdir()
    service = await AppService.open(Home(work / "home"))
    await add_local(service.state, "plans", str(work / "plans"))
    await add_local(service.state, "share", str(work / "share"))
    job, _ = await create_job(service.state, json.dumps({
        "name": "lag", "kind": "transfer", "transfer": {
            "transfer_type": "copy",
            "source": {"connection": {"id": "plans"}, "target": {"path": "/"}},
            "destination": {"connection": {"id": "share"}, "target": {"path": "/"}},
            "performance": {"parallel_writes": {"requested": args.parallel}}},
        "schedule": {"mode": "manual"}}))
    app = DryvIQApp(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(MonitorScreen(service, job.id))
        await pilot.pause()
        stop = asyncio.Event()
        idle = asyncio.create_task(probe(stop))
        await asyncio.sleep(args.idle)
        stop.set()
        reference = await idle

        stop = asyncio.Event()
        busy = asyncio.create_task(probe(stop))
        started = time.perf_counter()
        await service.start(job.id)
        await service.wait(job.id)
        elapsed = time.perf_counter() - started
        stop.set()
        running = await busy
        view = await service.live(job.id)
    await service.close()
    copied = sum(len(names) for _, _, names in os.walk(work / "share"))
    print(f"job: {view.status}, {copied} files copied in {elapsed:.1f} s "
          f"(parallel {args.parallel})")
    idle_stats = summary("idle app (reference)", reference)
    busy_stats = summary("while the job runs", running)
    print("ratio running/idle: " + "   ".join(
        f"{name} {busy / idle:.1f}x" for name, busy, idle in
        zip(("median", "p99", "max"), busy_stats, idle_stats, strict=True) if idle > 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of the idle reference")
    args = parser.parse_args()
    print(f"{describe_checkout()}; load average {load_average()}")
    with tempfile.TemporaryDirectory(prefix="dryviq-lag-") as work:
        asyncio.run(measure(args, Path(work)))


if __name__ == "__main__":
    main()
