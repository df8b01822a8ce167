"""REST API latency and throughput under load, while a job runs in the serving process.

Setup (not timed), in a temporary folder: a home whose job `history` has --files items (a
real `jobs run` of a generated local tree) and --executions executions (the rest are no-change
reruns, also real), and the Procore sandbox in this process, whose demo project the job `busy`
copies to a local folder with a download throttle (--busy-rate bytes/s). Then the real
`dryviq-tui serve` starts, and a separate load process keeps --clients requests in flight for
--seconds against

    GET /v1/jobs/history?job=history
    GET /v1/transfers/items?jobs=history&limit=100&offset=<random>

(alternating, one client pool of httpx over keep-alive connections), and prints per endpoint:
requests, requests/s, p50, p99 and max latency, errors (an exception or a status other than
200) and the statuses seen. It measures twice: with the server idle (the reference), then
while `busy` runs in it (made once the first load ends, due at once, so serve's scheduler
starts it). Targets (issue 15, while a job runs): zero errors, p99 under 100 ms.

    python bench/api.py [--files 10000] [--executions 50] [--clients 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from machine import describe_checkout, load_average  # bench/machine.py

from core.sandbox import SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET, SandboxThread, demo_world

ENDPOINTS = {
    "history": "/v1/jobs/history?job=history",
    "items": "/v1/transfers/items?jobs=history&limit=100&offset={offset}",
}
URL = re.compile(r"(https?://\S+:\d+)/v1/")


def dryviq(home: Path, *args: str, stdin: str | None = None) -> str:
    """Run `dryviq-tui --home HOME ...` (this checkout's code) and return its stdout."""
    done = subprocess.run([sys.executable, "-m", "tui", "--home", str(home), *args],
                          input=stdin, capture_output=True, text=True, env=_env(), check=False)
    if done.returncode:
        sys.exit(f"dryviq-tui {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _env(**extra: str) -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    return {**{k: v for k, v in os.environ.items() if k != "DRYVIQ_HOME"},
            "PYTHONPATH": root, **extra}


def job_json(name: str, source: str, destination: str, **transfer: Any) -> str:
    return json.dumps({"name": name, "kind": "transfer", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": source}, "target": {"path": "/"}},
        "destination": {"connection": {"id": destination}, "target": {"path": f"/{name}"}},
        **transfer}, "schedule": {"mode": "manual" if name == "history" else "auto"}})


def make_history(home: Path, work: Path, files: int, executions: int) -> None:
    plans = work / "plans"
    for index in range(files):
        folder = plans / f"Folder {index // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"Sheet {index:05d}.pdf").write_bytes(index.to_bytes(4, "big") * 256)
    (work / "share").mkdir()
    dryviq(home, "connections", "add", "local", "plans", "--path", str(plans))
    dryviq(home, "connections", "add", "local", "share", "--path", str(work / "share"))
    dryviq(home, "jobs", "create", "--file", "-", stdin=job_json("history", "plans", "share"))
    started = time.perf_counter()
    for run in range(executions):
        dryviq(home, "jobs", "run", "history")
        if run == 0:
            print(f"setup: first run of {files:,} files in {time.perf_counter() - started:.1f} s",
                  flush=True)
    print(f"setup: {executions} executions in {time.perf_counter() - started:.1f} s", flush=True)


def make_busy(home: Path, sandbox: SandboxThread, rate: int) -> None:
    company = next(one.id for one in sandbox.world.companies.values()
                   if one.name == "Summit Builders")
    dryviq(home, "connections", "add", "procore", "procore", "--domain", sandbox.url,
           "--client-id", SERVICE_CLIENT_ID, "--client-secret-env", "BENCH_SECRET",
           "--grant", "client_credentials", "--company", str(company),
           "--project", "Riverside Medical Center")
    dryviq(home, "jobs", "create", "--file", "-", stdin=job_json(
        "busy", "procore", "share", performance={"parallel_writes": {"requested": 2},
                                                 "download": {"bytes_per_second": rate}}))


def busy_running(home: Path) -> bool:
    with sqlite3.connect(home / "state.db") as db:
        return db.execute("SELECT COUNT(*) FROM executions e JOIN jobs j ON j.id = e.job_id "
                          "WHERE j.name = 'busy' AND e.status = 'running'").fetchone()[0] > 0


# -- the load (its own process) -------------------------------------------------------------


async def load(url: str, token: str, clients: int, seconds: float,
               total_items: int) -> dict[str, Any]:
    latencies: dict[str, list[float]] = collections.defaultdict(list)
    statuses: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    end = time.perf_counter() + seconds

    async def client(number: int, http: httpx.AsyncClient) -> None:
        names = list(ENDPOINTS)
        turn = number
        while time.perf_counter() < end:
            name = names[turn % len(names)]
            turn += 1
            path = ENDPOINTS[name].format(offset=random.randrange(0, max(1, total_items)))
            asked = time.perf_counter()
            try:
                answer = await http.get(path)
                await answer.aread()
                status = str(answer.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies[name].append(time.perf_counter() - asked)
            statuses[name][status] += 1

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(number, http) for number in range(clients)))
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "latencies": latencies, "statuses": statuses}


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def report(label: str, result: dict[str, Any]) -> None:
    print(f"\n{label}:\n{'endpoint':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'errors':>7}  statuses")
    for name, path in ENDPOINTS.items():
        ordered = sorted(result["latencies"].get(name, []))
        statuses = result["statuses"].get(name, {})
        errors = sum(count for status, count in statuses.items() if status != "200")
        print(f"{name:<10} {len(ordered):>9,} {len(ordered) / result['elapsed']:>8.1f} "
              f"{percentile(ordered, 0.50) * 1000:>8.1f} {percentile(ordered, 0.99) * 1000:>8.1f} "
              f"{(ordered[-1] if ordered else 0) * 1000:>8.1f} {errors:>7,}  "
              f"{dict(sorted(statuses.items()))}")
        print(f"{'':<10} GET {path}")


def run_load(args: argparse.Namespace) -> None:
    """The load process: one line of JSON on stdout."""
    result = asyncio.run(load(args.url, os.environ["BENCH_TOKEN"], args.clients, args.seconds,
                              args.files))
    print(json.dumps(result))


# -- the whole run ---------------------------------------------------------------------------


def measure(args: argparse.Namespace, work: Path) -> None:
    home = work / "home"
    make_history(home, work, args.files, args.executions)
    token = dryviq(home, "tokens", "create", "bench").strip()
    with SandboxThread(demo_world()) as sandbox:
        os.environ["BENCH_SECRET"] = SERVICE_CLIENT_SECRET
        serve = subprocess.Popen([sys.executable, "-m", "tui", "--home", str(home), "serve",
                                  "--port", "0"], stdout=subprocess.PIPE, text=True, env=_env())
        try:
            assert serve.stdout is not None
            found = URL.search(serve.stdout.readline())
            if not found:
                sys.exit("serve printed no URL")
            results = {"idle": _load(args, found[1], token)}
            make_busy(home, sandbox, args.busy_rate)  # due at once: serve's scheduler runs it
            deadline = time.monotonic() + 60
            while not busy_running(home):
                if time.monotonic() > deadline:
                    sys.exit("the job `busy` did not start under serve")
                time.sleep(0.1)
            results["while busy runs"] = _load(args, found[1], token)
            still = busy_running(home)
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=120)
    for label, result in results.items():
        report(label, result)
    print(f"\n`busy` was {'still running' if still else 'finished'} when the load ended; "
          f"serve exited {serve.returncode}")


def _load(args: argparse.Namespace, url: str, token: str) -> dict[str, Any]:
    print(f"load: {args.clients} clients for {args.seconds:g} s against {url} "
          f"(load average {load_average()})", flush=True)
    loaded = subprocess.run(
        [sys.executable, __file__, "--load", url, "--clients", str(args.clients),
         "--seconds", str(args.seconds), "--files", str(args.files)],
        capture_output=True, text=True, env=_env(BENCH_TOKEN=token), check=True)
    return json.loads(loaded.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--executions", type=int, default=50)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--busy-rate", type=int, default=1_000_000,
                        help="the running job's download throttle, bytes/s (the demo project "
                             "holds 32 MB: 1 MB/s keeps it running past the load)")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        args.url = args.load
        run_load(args)
        return
    print(describe_checkout(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as work:
        measure(args, Path(work))


if __name__ == "__main__":
    main()
