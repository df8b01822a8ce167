"""Job control across processes: start, pause and cancel, carried out by whichever process
schedules or runs the job.

A person (over the API, in the app) writes a request into the state file's `job_requests`,
one per job (a newer request replaces an older one). The process that can carry it out looks
for it with a tiny SELECT about twice a second and deletes it once done: the home's scheduler
starts a job asked to start; the run of a job obeys pause and cancel. A signal would not do:
a run inside an agent shares its process with every other job the agent runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.home import Home
from core.leases import job_running
from core.state import State

log = logging.getLogger(__name__)

ACTIONS = ("start", "pause", "cancel")
STOPS = ("pause", "cancel")  # asked of a run that goes on now
WATCH = 0.5  # seconds of real time between looks for a request


class NotRunning(Exception):
    """A pause or cancel was asked of a job that no process runs: nothing to stop."""


@dataclass(frozen=True)
class Request:
    job_id: str
    action: str  # start | pause | cancel
    requested_at: float
    requested_by: str  # who asked: an API token's name, the app


async def job_runs(state: State, home: Home, job_id: str) -> bool:
    """Whether some process runs the job now (its run lock here, or its lease anywhere)."""
    return await job_running(state, home, job_id)


async def request(state: State, job_id: str, action: str, by: str) -> Request:
    """Ask for `action` on the job, replacing any request not carried out yet."""
    if action not in ACTIONS:
        raise ValueError(f"not a job action: {action!r} (use one of {', '.join(ACTIONS)})")
    asked = Request(job_id, action, time.time(), by)
    await state.db.execute(
        "INSERT INTO job_requests (job_id, action, requested_at, requested_by) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET action = excluded.action, "
        "requested_at = excluded.requested_at, requested_by = excluded.requested_by",
        (asked.job_id, asked.action, asked.requested_at, asked.requested_by))
    await state.db.commit()
    return asked


async def request_stop(state: State, home: Home, job_id: str, action: str,
                       by: str) -> Request:
    """Ask the process running the job to pause or cancel it; raises NotRunning when none
    does (a request nobody would obey is not stored)."""
    if action not in STOPS:
        raise ValueError(f"not a way to stop a run: {action!r} (use pause or cancel)")
    if not await job_runs(state, home, job_id):
        raise NotRunning("the job is not running")
    return await request(state, job_id, action, by)


async def pending(state: State, action: str | None = None) -> list[Request]:
    """Requests not carried out yet (of one action, or all), oldest first."""
    rows = await state.db.execute_fetchall(
        "SELECT job_id, action, requested_at, requested_by FROM job_requests "
        "WHERE CAST(? AS TEXT) IS NULL OR action = ? ORDER BY requested_at", (action, action))
    return [Request(*row) for row in rows]


async def pending_for(state: State, job_id: str) -> Request | None:
    """The job's request not carried out yet, if any."""
    rows = await state.db.execute_fetchall(
        "SELECT job_id, action, requested_at, requested_by FROM job_requests "
        "WHERE job_id = ?", (job_id,))
    return Request(*rows[0]) if rows else None


async def take(state: State, asked: Request) -> bool:
    """Delete a request once carried out (or moot); False when a newer one replaced it
    meanwhile (that one stays, for whoever carries it out)."""
    cursor = await state.db.execute(
        "DELETE FROM job_requests WHERE job_id = ? AND action = ? AND requested_at = ?",
        (asked.job_id, asked.action, asked.requested_at))
    await state.db.commit()
    return cursor.rowcount > 0


class RunControl:
    """Obeys pause and cancel requests for one run while it goes, in whatever process runs
    it: pause sets the run's `stop` (the files in flight finish); cancel sets it and cancels
    the run's `work` task (the files in flight are rolled back). Dropped unobeyed: a start
    request (moot: the job runs), and a pause or cancel made before `since` (the run's start:
    left by a run that ended before it saw it)."""

    def __init__(self, state: State, job_id: str, since: float, stop: asyncio.Event,
                 on_event: Callable[[str, str], None]) -> None:
        self.state = state
        self.job_id = job_id
        self.since = since
        self.stop = stop
        self.on_event = on_event
        self.obeyed: str | None = None  # the last request obeyed: pause or cancel

    async def watch(self, work: asyncio.Task[object]) -> None:
        """Until cancelled (or `work` is cancelled on request)."""
        try:
            while not work.done():
                asked = await pending_for(self.state, self.job_id)
                if asked is not None:
                    await take(self.state, asked)  # before a cancel ends this run
                    if asked.action in STOPS and asked.requested_at >= self.since:
                        self._obey(asked, work)
                    if self.obeyed == "cancel":
                        return
                await asyncio.sleep(WATCH)
        except Exception:  # the run goes on without control rather than fail
            log.exception("job %s: stopped looking for pause and cancel requests", self.job_id)

    def _obey(self, asked: Request, work: asyncio.Task[object]) -> None:
        self.obeyed = asked.action
        self.stop.set()
        if asked.action == "pause":
            self.on_event("info", f"paused at the request of {asked.requested_by}: the files "
                                  "in flight finish, then it stops resumable")
        else:
            self.on_event("info", f"cancelled at the request of {asked.requested_by}: the "
                                  "files in flight are rolled back")
            work.cancel()
