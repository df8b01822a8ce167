"""`dryviq-tui demo`: a sample construction project copied by a sample job, headlessly."""

from __future__ import annotations

import argparse
import json
import tempfile
from typing import Any

from core.cli import opened_state
from core.cli.output import ProgressReporter
from core.connections import add_local
from core.demo import DEMO_JOB, write_sample_project
from core.engine.runner import run_job
from core.job_store import create_job


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    common = leaf["parents"][0]  # --home; the demo speaks to a person, so no --json
    demo = commands.add_parser(
        "demo", help="copy a sample construction project with a sample job (in a throwaway "
                     "home unless --home is given)", parents=[common])
    demo.set_defaults(handler=_demo)


async def _demo(args: argparse.Namespace) -> int:
    if not getattr(args, "home", None):
        args.home = tempfile.mkdtemp(prefix="dryviq-demo-")
    async with opened_state(args) as (home, state):
        project = home.root / "demo" / "Sample Project"
        share = home.root / "demo" / "Office Share"
        if await state.find_connection("procore-demo") is None:
            write_sample_project(project)
            share.mkdir(parents=True, exist_ok=True)
            await add_local(state, "procore-demo", str(project))
            await add_local(state, "office-share", str(share))
            job, _ = await create_job(state, json.dumps(DEMO_JOB, indent=2))
        else:
            job = (await state.find_jobs(DEMO_JOB["name"]))[0]
        print(f"Demo home: {home.root}\nSample project: {project}\nOffice share: {share}\n")
        print("Job JSON:\n" + json.dumps(DEMO_JOB, indent=2) + "\n")
        reporter = ProgressReporter()
        for attempt in ("first run", "second run"):
            result = await run_job(state, home, job, on_progress=reporter,
                                   on_event=reporter.event)
            reporter.end_line()
            stats = result.stats
            print(f"{attempt}: {result.status}: {stats.transferred} files "
                  f"({stats.bytes:,} bytes) copied, {stats.folders_created} folders created, "
                  f"{stats.skipped} unchanged or skipped, {stats.flagged} flagged")
    print(f"\nTry: dryviq-tui --home {home.root} ls office-share:/ -R\n"
          f"     dryviq-tui --home {home.root} jobs items \"{DEMO_JOB['name']}\"")
    return result.exit_code
