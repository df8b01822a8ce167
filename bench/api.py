"""REST API latency and throughput under load, while a job runs in the serving process.

Setup (not timed), in a temporary folder: a home whose job `history` has --files items (a
real `jobs run` of a generated local tree) and --executions executions (the rest are no-change
reruns, also real), and the Procore sandbox in this process, whose demo project the job `busy`
copies to a local folder with a download throttle (--busy-rate bytes/s). Then the real
`dryviq-tui serve` starts, and a separate load process keeps --clients requests in flight for
--seconds against

    GET /v1/jobs/history?job=history
    GET /v1/transfers/items?jobs=history&limit=100&offset=<random>

and prints per endpoint: requests, requests/s, p50, p99 and max latency, and errors. The
load is `wrk` (Debian's package; bench only) when it is installed: two wrk processes at once,
one per endpoint, each with half the clients over keep-alive connections, a small Lua script
adding the token (from the environment, never argv) and the random offsets; an error is a
socket error or a status outside 2xx/3xx. Without wrk (or with --loader httpx), one pool of
httpx clients in another Python process alternates the two endpoints; it costs far more CPU
than wrk, on the same two cores as the server, and so inflates the latencies it measures.
--pin-client CPU runs the load on that CPU only (taskset).

It measures twice: with the server idle (the reference), then while `busy` runs in it (made
once the first load ends, due at once, so serve's scheduler starts it). Targets (issue 15,
while a job runs): zero errors, p99 under 100 ms.

    python bench/api.py [--files 10000] [--executions 50] [--clients 50] [--seconds 20]
                        [--loader wrk|httpx] [--pin-client CPU] [--workdir DIR]

--workdir DIR keeps the generated tree and the home with its history in DIR, and later runs
with the same DIR start from a copy of that home instead of making it again.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import shutil
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
# wrk's script: the token from the environment; for `items`, a random offset each request
WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
local path = os.getenv("BENCH_PATH")
local total = tonumber(os.getenv("BENCH_ITEMS"))
math.randomseed(os.time() + tonumber(os.getenv("BENCH_SEED")))
request = function()
  return wrk.format("GET", string.format(path, math.random(0, total - 1)))
end
"""
WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


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
    return {name: summary(sorted(latencies[name]), statuses[name], elapsed)
            for name in ENDPOINTS}


def summary(ordered: list[float], statuses: dict[str, int], elapsed: float) -> dict[str, Any]:
    """One endpoint's figures from its latencies (seconds, sorted) and statuses seen."""
    return {"requests": len(ordered), "rate": len(ordered) / elapsed,
            "p50": percentile(ordered, 0.50), "p99": percentile(ordered, 0.99),
            "max": ordered[-1] if ordered else 0.0,
            "errors": sum(count for status, count in statuses.items() if status != "200"),
            "statuses": dict(sorted(statuses.items()))}


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def report(label: str, result: dict[str, dict[str, Any]]) -> None:
    print(f"\n{label}:\n{'endpoint':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'errors':>7}  statuses")
    for name, path in ENDPOINTS.items():
        one = result[name]
        print(f"{name:<10} {one['requests']:>9,} {one['rate']:>8.1f} {one['p50'] * 1000:>8.1f} "
              f"{one['p99'] * 1000:>8.1f} {one['max'] * 1000:>8.1f} {one['errors']:>7,}  "
              f"{one['statuses']}")
        print(f"{'':<10} GET {path}")
    print(f"server CPU a request: {result['server']['cpu_ms']:.2f} ms (both endpoints)")


def run_load(args: argparse.Namespace) -> None:
    """The load process: one line of JSON on stdout."""
    result = asyncio.run(load(args.url, os.environ["BENCH_TOKEN"], args.clients, args.seconds,
                              args.files))
    print(json.dumps(result))


def wrk_load(args: argparse.Namespace, url: str, token: str,
             pin: list[str]) -> dict[str, dict[str, Any]]:
    """Both endpoints at once, a wrk process each with half the clients."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        running = {name: subprocess.Popen(
            [*pin, "wrk", "--latency", "-t1", f"-c{max(1, args.clients // 2)}",
             f"-d{args.seconds:g}s", "--timeout", "30s", "-s", script.name,
             url + ENDPOINTS[name].replace("{offset}", "0")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "BENCH_TOKEN": token, "BENCH_ITEMS": str(max(1, args.files)),
                 "BENCH_PATH": ENDPOINTS[name].replace("{offset}", "%d"),
                 "BENCH_SEED": str(seed)})
            for seed, name in enumerate(ENDPOINTS)}
        return {name: wrk_summary(process.communicate()[0], args.seconds)
                for name, process in running.items()}
    finally:
        os.unlink(script.name)


def wrk_summary(output: str, seconds: float) -> dict[str, Any]:
    """The figures of `wrk --latency`'s report."""
    def duration(text: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
        return float(number) * WRK_UNITS[unit]

    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if done is None:
        sys.exit(f"wrk said:\n{output}")
    requests, elapsed = int(done[1]), duration(done[2] + done[3])
    latency = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", output)
    percent = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", output)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = {"non-2xx": int(bad[1]) if bad else 0}
    if socket_errors:
        errors |= dict(zip(("connect", "read", "write", "timeout"),
                           map(int, socket_errors.groups()), strict=True))
    return {"requests": requests, "rate": requests / (elapsed or seconds),
            "p50": duration(percent["50"]), "p99": duration(percent["99"]),
            "max": duration(latency[1]) if latency else 0.0,
            "errors": sum(errors.values()),
            "statuses": {key: value for key, value in errors.items() if value}}


# -- the whole run ---------------------------------------------------------------------------


def prepared_home(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    """A home with the history and a token, in `work`: made anew, or copied from --workdir's."""
    kept = Path(args.workdir).resolve() if args.workdir else work
    kept.mkdir(parents=True, exist_ok=True)
    made, token_file = kept / "home.setup", kept / "token.setup"
    if not made.exists():
        make_history(kept / "home", kept, args.files, args.executions)
        token_file.write_text(dryviq(kept / "home", "tokens", "create", "bench").strip())
        (kept / "home").rename(made)
    else:
        print(f"setup: the home made in {kept}", flush=True)
    shutil.rmtree(kept / "share" / "busy", ignore_errors=True)
    shutil.copytree(made, work / "home")
    return work / "home", token_file.read_text()


def measure(args: argparse.Namespace, work: Path) -> None:
    home, token = prepared_home(args, work)
    with SandboxThread(demo_world()) as sandbox:
        os.environ["BENCH_SECRET"] = SERVICE_CLIENT_SECRET
        serve = subprocess.Popen([sys.executable, "-m", "tui", "--home", str(home), "serve",
                                  "--port", "0"], stdout=subprocess.PIPE, text=True, env=_env())
        try:
            assert serve.stdout is not None
            found = URL.search(serve.stdout.readline())
            if not found:
                sys.exit("serve printed no URL")
            results = {"idle": _load(args, found[1], token, serve.pid)}
            make_busy(home, sandbox, args.busy_rate)  # due at once: serve's scheduler runs it
            deadline = time.monotonic() + 60
            while not busy_running(home):
                if time.monotonic() > deadline:
                    sys.exit("the job `busy` did not start under serve")
                time.sleep(0.1)
            results["while busy runs"] = _load(args, found[1], token, serve.pid)
            still = busy_running(home)
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=120)
    for label, result in results.items():
        report(label, result)
    print(f"\n`busy` was {'still running' if still else 'finished'} when the load ended; "
          f"serve exited {serve.returncode}")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system, every thread) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(args: argparse.Namespace, url: str, token: str, server: int) -> dict[str, Any]:
    """The load's figures, and the CPU time the server spent a request (the figure that the
    other processes on the machine do not change)."""
    before = cpu_seconds(server)
    result = _loaded(args, url, token)
    requests = sum(one["requests"] for one in result.values())
    result["server"] = {"cpu_ms": (cpu_seconds(server) - before) * 1000 / max(1, requests)}
    return result


def _loaded(args: argparse.Namespace, url: str, token: str) -> dict[str, Any]:
    print(f"load: {args.clients} clients ({args.loader}) for {args.seconds:g} s against {url} "
          f"(load average {load_average()})", flush=True)
    pin = ["taskset", "-c", args.pin_client] if args.pin_client else []
    if args.loader == "wrk":
        return wrk_load(args, url, token, pin)
    loaded = subprocess.run(
        [*pin, sys.executable, __file__, "--load", url, "--clients", str(args.clients),
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
    parser.add_argument("--loader", choices=("wrk", "httpx"),
                        default="wrk" if shutil.which("wrk") else "httpx",
                        help="the load generator (default: wrk when installed)")
    parser.add_argument("--pin-client", metavar="CPU",
                        help="run the load on these CPUs only (taskset -c CPU)")
    parser.add_argument("--workdir", metavar="DIR",
                        help="keep the generated history here, and reuse it next time")
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
