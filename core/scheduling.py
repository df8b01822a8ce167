"""Who runs a home's schedules when no agent does: `dryviq-tui serve`, else the open app.

Precedence is agent > serve > app: a job started over the API must not run inside an app (or a
`web` browser tab) that closes, or dies with its SSH session. Such a process schedules while it
holds the home's scheduler lock and nobody ahead of it runs; when one ahead starts it stops
starting runs (the runs it started finish) and leaves the schedules to it, and takes them back
when that one ends. One `serve` holds the serve lock for its life; a second serve on the home
serves HTTP and waits for that lock as an app would. Of several apps, one schedules and the
others wait for the lock. The agent itself (core/cli/agent.py) holds its lock and the
scheduler lock. On a state shared by several hosts (PostgreSQL), an app or `serve` also leaves
the schedules to the agents whenever any agent, on any host, beats its heartbeat in `agents`:
the agents share the due jobs among themselves by claiming each one's lease."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.home import ConfigError, Home
from core.scheduler import (
    DEFAULT_CONCURRENT,
    STALE,
    Holder,
    Launch,
    Note,
    Presence,
    Scheduler,
    agent_lock,
    concurrent_jobs,
    scheduler_lock,
    serve_lock,
)
from core.state import State

log = logging.getLogger(__name__)

HANDOVER = 2.0  # seconds between looks at whether an agent runs on the home
POLL_AFTER_ERROR = 30.0  # seconds before the schedules start again after an error


@dataclass(frozen=True)
class Scheduling:
    """Who runs the schedules of this home: an `agent`, this process (`here`), another
    process that is not an agent (`other`: an app or `serve`), or `nobody` yet."""

    by: str
    holder: Holder | None = None

    @property
    def words(self) -> str:
        if self.by == "here":
            here = "this app" if self.holder is None or self.holder.kind == "app" else (
                "this server")
            return f"Schedules: run by {here} (no agent on this home)"
        if self.by == "nobody" or self.holder is None:
            return "Schedules: not running yet"
        who = self.holder
        what = {"agent": "the agent", "serve": "the API server (serve)"}.get(
            who.kind, "another app")
        return f"Schedules: run by {what}, pid {who.pid} on {who.host}"


async def schedule_unless_agent(state: State, home: Home, kind: str, *,
                                launch: Launch | None = None,
                                on_change: Callable[[Scheduling], None] | None = None,
                                on_note: Callable[[Note], None] | None = None) -> None:
    """Run the home's schedules whenever no agent does, until cancelled. `kind` names this
    process in the lock and heartbeats ("app", "serve"); `launch` runs one scheduled execution
    (core's run_job by default); `on_change` hears who schedules whenever that changes."""
    presence = Presence(state, kind)
    agent, serve, mine = agent_lock(home), serve_lock(home), scheduler_lock(home)

    async def ahead() -> Holder | None:
        """The agent, else the serve (not this one) this process leaves the schedules to."""
        return agent.holder() or serve.holder() or await live_agent(state)

    shown: Scheduling | None = None

    def show(now: Scheduling) -> None:
        nonlocal shown
        if now != shown:
            shown = now
            if on_change is not None:
                on_change(now)

    try:
        while True:
            if kind == "serve":
                await serve.acquire(presence.holder)
            holder = await ahead()
            if holder is None and await mine.acquire(presence.holder):
                show(Scheduling("here", presence.holder))
                try:
                    await _run_schedules(state, home, presence, ahead, launch, on_note)
                except Exception:  # the schedules outlive any one failure
                    log.exception("the schedules stopped; trying again")
                    await asyncio.sleep(POLL_AFTER_ERROR)
                finally:
                    mine.release()
                continue
            show(Scheduling("agent" if holder and holder.kind == "agent" else "other",
                            holder or mine.holder()))
            await asyncio.sleep(HANDOVER)
    finally:
        mine.release()
        serve.release()


async def live_agent(state: State) -> Holder | None:
    """On a shared state, an agent (on any host) whose heartbeat is fresh; None on a
    state.db, where the home's lock files say it all."""
    if state.shared is None:
        return None
    fresh = time.time() - STALE
    return next((Holder(row.id, row.kind, row.started_at) for row in await state.agents()
                 if row.kind == "agent" and row.heartbeat_at >= fresh), None)


async def _run_schedules(state: State, home: Home, presence: Presence,
                         ahead: Callable[[], Awaitable[Holder | None]], launch: Launch | None,
                         on_note: Callable[[Note], None] | None) -> None:
    """The scheduler, until one `ahead` of this process starts on this home (runs started stay
    here and finish; the newcomer leaves jobs running elsewhere alone)."""
    try:
        limit = concurrent_jobs(home.config())
    except ConfigError as exc:
        log.warning("%s; running %d at once", exc, DEFAULT_CONCURRENT)
        limit = DEFAULT_CONCURRENT
    stop = asyncio.Event()
    scheduler = Scheduler(state, home, agent=presence.row.id, kind=presence.row.kind,
                          limit=limit, launch=launch, on_note=on_note)
    heartbeat = asyncio.create_task(presence.keep(stop))
    schedules = asyncio.create_task(scheduler.run(stop))
    try:
        while not schedules.done():
            await asyncio.wait({schedules}, timeout=HANDOVER)
            if await ahead() is not None:
                stop.set()
        await schedules
    finally:
        stop.set()
        schedules.cancel()
        await asyncio.gather(schedules, heartbeat, return_exceptions=True)
