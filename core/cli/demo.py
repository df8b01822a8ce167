"""`dryviq-tui demo`: the sample Procore project (the embedded sandbox, started in-process),
an office share and a ready job, in a throwaway home unless --home is given."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from core.cli import opened_state
from core.cli.output import ProgressReporter, count, size
from core.engine.runner import run_job


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    common = leaf["parents"][0]  # --home; the demo speaks to a person, so no --json
    demo = commands.add_parser(
        "demo", help="a sample Procore project (an embedded sandbox) copied to a local "
                     "folder by a sample job, in a throwaway home unless --home is given",
        parents=[common])
    demo.add_argument("--headless", action="store_true",
                      help="run the sample job on the command line instead of in the app")
    demo.set_defaults(handler=_demo)


def greeting(home: Path, job_name: str) -> str:
    return (f"The demo: a Procore sandbox with a sample project, and the job "
            f"\"{job_name}\", which copies it to a local folder "
            f"({home / 'Office Share'}). Press r to run it and m to watch it. The rate limit "
            "is small on purpose: the job pauses for the budget's reset, then continues by "
            "itself. b browses, c shows the connections, ctrl+q quits.")


async def _demo(args: argparse.Namespace) -> int:
    # here, not at the top: every other command would wait for the sandbox's web stack
    from core.demo import DEMO_JOB, DEMO_LIMITS, prepare_demo
    from core.sandbox import SandboxThread, demo_world

    if not getattr(args, "home", None):
        args.home = tempfile.mkdtemp(prefix="dryviq-demo-")
    with SandboxThread(demo_world(DEMO_LIMITS)) as sandbox:
        async with opened_state(args) as (home, state):
            job = await prepare_demo(state, home, sandbox.url, sandbox.world)
        if args.open_app is not None and not args.headless:
            # the sandbox lives in its own thread, so serving it never slows the app
            return await args.open_app(home, mouse=not getattr(args, "no_mouse", False),
                                       greeting=greeting(home.root, str(DEMO_JOB["name"])))
        async with opened_state(args) as (home, state):
            print(f"Demo home: {home.root}\nProcore sandbox: {sandbox.url} (a rate limit of "
                  f"{DEMO_LIMITS.spike_limit} calls per 10 s and {DEMO_LIMITS.hourly_limit} per "
                  f"{DEMO_LIMITS.hourly_window:g} s, to show pacing)\n")
            print("Job JSON:\n" + json.dumps(DEMO_JOB, indent=2) + "\n")
            reporter = ProgressReporter()
            result = await run_job(state, home, job, on_progress=reporter,
                                   on_event=reporter.event)
            reporter.end_line()
            stats = result.stats
            print(f"{result.status}: {count(stats.transferred, 'file')} ({size(stats.bytes)}) "
                  f"copied, {count(stats.folders_created, 'folder')} created, "
                  f"{count(stats.api_calls, 'API call')}, "
                  f"{count(stats.rate_limit_waits, 'wait')} for the rate limit")
    print(f"\nThe copy: {home.root / 'Office Share'}\n"
          f"Try: dryviq-tui --home {home.root} jobs items \"{DEMO_JOB['name']}\"")
    return result.exit_code
