"""`dryviq-tui demo`: the sample Procore project (the embedded sandbox, started in-process),
an office share and a ready job, in a throwaway home unless --home is given."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
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
    demo.add_argument("--keep", action="store_true",
                      help="keep the throwaway home (and the copy) after the demo, and say "
                           "where it is")
    demo.set_defaults(handler=_demo)


def greeting() -> str:
    """Short, so the toast hides little and is read before it goes."""
    return ("r runs the sample job, m watches it: it pauses for a small rate limit, then goes "
            "on. c connections, b browser, ctrl+q quits.")


async def _demo(args: argparse.Namespace) -> int:
    """The demo in a throwaway home, removed on exit unless --keep (or --home was given)."""
    throwaway = not getattr(args, "home", None)
    if throwaway:
        args.home = tempfile.mkdtemp(prefix="dryviq-demo-")
    try:
        return await _demo_in_home(args, kept=not throwaway or args.keep)
    finally:
        if throwaway and not args.keep:
            shutil.rmtree(args.home, ignore_errors=True)
        elif throwaway:
            print(f"The demo's home is kept in {args.home}", file=sys.stderr)


async def _demo_in_home(args: argparse.Namespace, kept: bool) -> int:
    # here, not at the top: every other command would wait for the sandbox's web stack
    from core.demo import DEMO_JOB, DEMO_LIMITS, prepare_demo, sandbox_as_default_client
    from core.sandbox import SandboxThread, demo_world

    with SandboxThread(demo_world(DEMO_LIMITS)) as sandbox, \
            sandbox_as_default_client(sandbox.url):
        async with opened_state(args) as (home, state):
            job = await prepare_demo(state, home, sandbox.url, sandbox.world)
        if args.open_app is not None and not args.headless:
            # the sandbox lives in its own thread, so serving it never slows the app; a run
            # handed to a background process would lose that server when the app ends
            return await args.open_app(home, mouse=not getattr(args, "no_mouse", False),
                                       greeting=greeting(), background_runs=False)
        async with opened_state(args) as (home, state):
            print(f"Demo home: {home.root}" + ("" if kept else " (removed when the demo ends; "
                                                "--keep keeps it)")
                  + f"\nProcore sandbox: {sandbox.url} (a rate limit of "
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
    if kept:
        print(f"\nThe copy: {home.root / 'Office Share'}\n"
              f"Try: dryviq-tui --home {home.root} jobs items \"{DEMO_JOB['name']}\"")
    return result.exit_code
