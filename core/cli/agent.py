"""`dryviq-tui agent`: run scheduled jobs headless (systemd, cron @reboot, tmux over SSH).

One agent per home: a second one says which process holds the home and exits 1, or with
`--standby` waits and takes over when that one ends. `serve` and an app open on the home hand
their scheduling to the agent. SIGTERM or Ctrl-C stops gracefully: no new run starts, the files in
flight finish, each run ends interrupted and resumable, exit 0; a second signal stops at once
(files in flight are rolled back, still resumable).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from core.cli import CommandFailed, opened_state, stop_on_signals
from core.cli.output import count, size
from core.home import Home
from core.paths import printable
from core.scheduler import (
    HomeLock,
    Note,
    Presence,
    Scheduler,
    agent_lock,
    concurrent_jobs,
    scheduler_lock,
)
from core.status import label

STANDBY_POLL = 1.0  # seconds between a standby agent's looks at the lock it waits for


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    agent = commands.add_parser(
        "agent", help="run scheduled jobs headless, one agent per home, until SIGTERM", **leaf)
    agent.add_argument("--standby", action="store_true",
                       help="if another agent runs on this home, wait and take over when it "
                            "ends (default: say who it is and exit 1)")
    agent.set_defaults(handler=_agent)


def say(text: str) -> None:
    """One line on stdout, stamped with the local time and zone (journald and cron mail
    read it as it comes)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} {printable(text)}", flush=True)


def note_line(note: Note) -> str:
    """A run started or finished, as the agent (and serve) prints it; a run a pause request
    stopped says so, as a cancelled one does, so an interrupted run is not taken for a fault."""
    result = note.result
    if note.kind != "finished" or result is None:
        return note.text()
    stats = result.stats
    line = (f"finished {note.job.name}: {label(result.status)}, "
            f"{count(stats.transferred, 'file')} transferred ({size(stats.bytes)}), "
            f"execution {result.execution_id}")
    why = result.error or ("paused on request" if result.stopped_by == "pause" else None)
    return line + (f"; {why}" if why else "")


async def _take(lock: HomeLock, presence: Presence, stop: asyncio.Event, *, wait: bool,
                waiting: str) -> bool:
    """Take `lock`; while another process holds it, wait (saying `waiting` once) if `wait`,
    else raise CommandFailed naming the holder. False: stopped while waiting."""
    said = False
    while not await lock.acquire(presence.holder):
        holder = lock.holder()
        who = holder.describe() if holder else "another process"
        if not wait:
            raise CommandFailed(
                "agent_running",
                f"{who} already runs the schedules of the home {lock.path.parent.parent}; "
                "stop it first, or start this agent with --standby to take over when it ends")
        if not said:
            say(waiting.format(who=who))
            said = True
        try:
            await asyncio.wait_for(stop.wait(), STANDBY_POLL)
        except TimeoutError:
            continue
        return False
    return True


async def _agent(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop, lambda: say(
        "stopping: no new runs; the files in flight finish (again to stop now)"))
    async with opened_state(args) as (home, state):
        presence = Presence(state, "agent")
        # made first: a bad [agent] setting is refused before the home is taken
        scheduler = Scheduler(state, home, agent=presence.row.id,
                              limit=concurrent_jobs(home.config()),
                              on_note=lambda note: say(note_line(note)))
        locks = (agent_lock(home), scheduler_lock(home))
        try:
            if not await _take(locks[0], presence, stop, wait=args.standby,
                               waiting="standing by: {who} runs the schedules; this agent "
                                       "takes over when it ends"):
                return 0
            if not await _take(locks[1], presence, stop, wait=True,
                               waiting="waiting for {who} to hand the schedules over"):
                return 0
            return await _schedule(home, presence, scheduler, stop)
        finally:
            for lock in reversed(locks):
                lock.release()


async def _schedule(home: Home, presence: Presence, scheduler: Scheduler,
                    stop: asyncio.Event) -> int:
    say(f"agent {presence.row.id} runs the schedules of {home.root} "
        f"(up to {count(scheduler.limit, 'job')} at once)")
    present = asyncio.Event()
    heartbeat = asyncio.create_task(presence.keep(present))
    try:
        await scheduler.run(stop)
        running = scheduler.running
        if running:
            say(f"waiting for {count(len(running), 'run')} to stop at a resumable point")
        await scheduler.stop_runs()
    except asyncio.CancelledError:  # a second signal: the runs were cancelled
        await scheduler.stop_runs()
        say("stopped now: the files in flight were rolled back; each run continues where it "
            "stopped")
    finally:
        present.set()
        await heartbeat
    say("agent stopped")
    return 0
