"""Agents sharing one Procore budget: calls per second achieved against what the budget allows.

For each count of --agents (1, 2 and 4 by default), a fresh installation: a database of its own
on a throwaway PostgreSQL cluster (the test suite's, tests/postgres.py), a sandbox whose spike
limit binds (--spike calls per --window seconds; the hourly limit out of reach), --jobs copy
jobs of small files (enough for about --seconds of calls at the allowed rate) made through the
CLI, and that many `dryviq-tui agent` processes on homes of their own (as on hosts of their
own) sharing the state and the budget. The agents run until every job has completed.

The sandbox (in this process, over real HTTP) times every call it counts. Per row: the calls,
the seconds from the first call to the last, the calls per second, the ratio to the budget's
steady rate (--spike / --window; target >= 0.95: the pacer spaces calls 5% wider than the
limit, so 0.952 is its ceiling), the median gap between calls and the gaps longer than one and
a half times the limit's spacing (slots lost: a wait at a window's end, a job starting), and
the 429s the sandbox sent. The harness is the end-to-end test's
(tests/e2e/test_shared_agents.py).

    python bench/agents.py [--agents 1,2,4] [--spike 20] [--window 10] [--seconds 60]
        [--jobs 8] [--file-size 2048]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from machine import describe_checkout, load_average  # noqa: E402

from core.sandbox import SandboxConfig, SandboxThread  # noqa: E402
from tests.e2e.test_shared_agents import (  # noqa: E402
    Site,
    agents,
    completed,
    setup_installation,
    wait_for,
)
from tests.postgres import cluster  # noqa: E402


def measure(server, work: Path, count: int, config: SandboxConfig, jobs: int, files: int,
            size: int) -> tuple[list[float], int, float]:
    """(when each call was counted, 429s, wall seconds of the agents' run) for `count` agents
    doing `jobs` jobs of `files` files."""
    database = f"bench_agents_{count}"
    server.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    server.psql(f"CREATE DATABASE {database}")
    url = server.url(database)
    folders = [f"Area {n:02d}" for n in range(jobs)]
    site = Site.build(config, dict.fromkeys(folders, files), size=size)
    work.mkdir()
    (work / "office").mkdir()
    try:
        with SandboxThread(site.world) as sandbox:
            homes = setup_installation(work, url, sandbox, count, folders)
            since = time.time()
            with agents(homes) as running:
                wait_for(lambda: sum(completed(url).values()) >= jobs,
                         "every job to complete", running)
            wall = time.time() - since
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    calls = [t for t in site.world.charged if t >= since]
    refused = sum(1 for t, _ in site.world.refused if t >= since)
    return calls, refused, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="1,2,4", help="agent counts, comma-separated")
    parser.add_argument("--spike", type=int, default=20, help="calls per spike window")
    parser.add_argument("--window", type=float, default=10.0, help="spike window, seconds")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="about how long each measurement's calls last at the budget's rate")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--file-size", type=int, default=2048)
    args = parser.parse_args()
    counts = [int(n) for n in args.agents.split(",")]
    allowed = args.spike / args.window
    # one call lists a job's folder, then one per file
    files = max(1, math.ceil(allowed * args.seconds / args.jobs) - 1)
    config = SandboxConfig(spike_limit=args.spike, spike_window=args.window,
                           hourly_limit=1_000_000)
    os.environ["DRYVIQ_SECRET_KEY"] = Fernet.generate_key().decode()  # every agent's key
    print(f"{describe_checkout()}; load average {load_average()}")
    print(f"budget: {args.spike} calls per {args.window:g} s ({allowed:.2f}/s); {args.jobs} jobs "
          f"of {files} files of {args.file_size} bytes each run")
    spacing = args.window / args.spike
    print("| agents | calls | seconds | calls/s | ratio | median gap s | long gaps | 429s "
          "| wall s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp, \
            cluster() as server:
        for count in counts:
            calls, refused, wall = measure(
                server, Path(tmp) / f"agents{count}", count, config, args.jobs, files,
                args.file_size)
            seconds = calls[-1] - calls[0]
            rate = (len(calls) - 1) / seconds
            gaps = [after - before for before, after in itertools.pairwise(calls)]
            long = sum(gap > 1.5 * spacing for gap in gaps)
            print(f"| {count} | {len(calls)} | {seconds:.1f} | {rate:.3f} | "
                  f"{rate / allowed:.3f} | {statistics.median(gaps):.3f} | {long} | {refused} "
                  f"| {wall:.1f} |", flush=True)
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
