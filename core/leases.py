"""Job leases: which process runs each job, across every host sharing the state.

A run holds its job's lease (a row of `job_leases`) for as long as it goes, renewing it every
quarter of the lease's length; a lease not renewed in time (its host crashed, or lost the
database) lapses, and another process may take the job and resume it from its item records.
On this host a holder whose process is gone does not count, so after a kill -9 the job
resumes at once, as it did when only the home's flock said who ran it.

Taking a lease is one statement (an upsert that takes the row only while it is free or has
lapsed), so of several hosts claiming a job at once exactly one wins, in SQLite and in
PostgreSQL alike. Times are each host's clock: hosts sharing a state keep them in step (NTP);
a lease is long against any skew left.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from core.home import ConfigError, Home, JobBusy
from core.state import State

log = logging.getLogger(__name__)

DEFAULT_SECONDS = 60.0  # config.toml [agent] lease_seconds

_COLUMNS = "job_id, holder, host, pid, kind, claimed_at, expires_at"
_CLAIM = (
    f"INSERT INTO job_leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job_id) DO UPDATE SET holder = excluded.holder, host = excluded.host, "
    "pid = excluded.pid, kind = excluded.kind, claimed_at = excluded.claimed_at, "
    f"expires_at = excluded.expires_at WHERE job_leases.expires_at < ? RETURNING {_COLUMNS}")
# a lease whose holder died on this host, taken from that holder only (one racer wins)
_TAKE_OVER = (
    "UPDATE job_leases SET holder = ?, host = ?, pid = ?, kind = ?, claimed_at = ?, "
    f"expires_at = ? WHERE job_id = ? AND holder = ? RETURNING {_COLUMNS}")


@dataclass(frozen=True)
class Lease:
    job_id: str
    holder: str  # one claim's own token: renewing and releasing touch only its own row
    host: str
    pid: int
    kind: str  # who runs it: agent, serve, app, jobs run
    claimed_at: float
    expires_at: float

    @property
    def where(self) -> str:
        """`on build-02 (pid 4242, agent)`: whom a refused run or edit waits for."""
        return f"on {self.host} (pid {self.pid}, {self.kind})"

    def describe(self) -> str:
        return f"running {self.where}"


class LeaseLost(Exception):
    """The run's lease was taken by another process, or could not be renewed in time."""


def this_host() -> str:
    return socket.gethostname()


def lease_seconds(home: Home) -> float:
    """config.toml's [agent] lease_seconds: how long a run's lease lasts without renewal."""
    table = home.config().get("agent") or {}
    value = table.get("lease_seconds", DEFAULT_SECONDS) if isinstance(table, dict) else None
    if type(value) not in (int, float) or not 0 < value < float("inf"):
        raise ConfigError(f"{home.config_path}: [agent] lease_seconds = {value!r}: use a "
                          f"positive number of seconds, such as {DEFAULT_SECONDS:g}")
    return float(value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def counts(lease: Lease, now: float) -> bool:
    """Whether a lease still holds its job: not lapsed, and (on this host) its process lives."""
    return lease.expires_at >= now and (lease.host != this_host() or _alive(lease.pid))


async def _row(state: State, job_id: str) -> Lease | None:
    rows = await state.db.execute_fetchall(
        f"SELECT {_COLUMNS} FROM job_leases WHERE job_id = ?", (job_id,))
    return Lease(*rows[0]) if rows else None


async def holder_of(state: State, job_id: str) -> Lease | None:
    """The lease that holds the job now, if any."""
    lease = await _row(state, job_id)
    return lease if lease is not None and counts(lease, time.time()) else None


async def claim(state: State, job_id: str, *, kind: str, seconds: float) -> Lease | None:
    """Take the job's lease for `seconds`; None when another process holds it."""
    now = time.time()
    mine = (uuid.uuid4().hex, this_host(), os.getpid(), kind, now, now + seconds)
    rows = await state.db.execute_fetchall(_CLAIM, (job_id, *mine, now))
    if not rows:
        held = await _row(state, job_id)
        if held is not None and held.host == this_host() and not _alive(held.pid):
            rows = await state.db.execute_fetchall(_TAKE_OVER, (*mine, job_id, held.holder))
    await state.db.commit()
    return Lease(*rows[0]) if rows else None


async def renew(state: State, lease: Lease, seconds: float) -> Lease:
    """Extend the lease; raises LeaseLost when another process has taken it."""
    expires = time.time() + seconds
    cursor = await state.db.execute(
        "UPDATE job_leases SET expires_at = ? WHERE job_id = ? AND holder = ?",
        (expires, lease.job_id, lease.holder))
    await state.db.commit()
    if cursor.rowcount == 0:
        taker = await _row(state, lease.job_id)
        raise LeaseLost(f"another process took the job over ({taker.describe()})"
                        if taker else "its lease was released by another process")
    return replace(lease, expires_at=expires)


async def release(state: State, lease: Lease) -> None:
    await state.db.execute("DELETE FROM job_leases WHERE job_id = ? AND holder = ?",
                           (lease.job_id, lease.holder))
    await state.db.commit()


async def job_running(state: State, home: Home, job_id: str) -> bool:
    """Whether some process runs the job now: one holding its run lock in this home, or a
    live lease anywhere (another home, another host)."""
    return home.job_locked(job_id) or await holder_of(state, job_id) is not None


# A lease the scheduler claimed before launching a run, handed to that run's run_job (which
# adopts it instead of claiming again): the launch itself may be the app's, with its own
# signature, and a context variable follows the run into the task that runs it.
handed_over: contextvars.ContextVar[Lease | None] = contextvars.ContextVar(
    "handed_over", default=None)


@contextlib.asynccontextmanager
async def _held(state: State, home: Home, job_id: str, *, kind: str,
                seconds: float) -> AsyncIterator[Lease]:
    """The job's run lock in this home, then its lease (the one handed over, else claimed),
    until the block ends; JobBusy naming the holder when another process has either."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            stack.enter_context(home.job_lock(job_id))
        except JobBusy:
            raise JobBusy.by(await holder_of(state, job_id)) from None
        given = handed_over.get()
        if given is not None and given.job_id == job_id:
            try:  # still ours? (it may have lapsed while the launch waited)
                lease: Lease | None = await renew(state, given, seconds)
            except LeaseLost:
                lease = None
        else:
            lease = await claim(state, job_id, kind=kind, seconds=seconds)
        if lease is None:
            raise JobBusy.by(await holder_of(state, job_id))
        try:
            yield lease
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(release(state, lease))


@contextlib.asynccontextmanager
async def holding(state: State, home: Home, job_id: str, *, kind: str,
                  on_lost: Callable[[str], None]) -> AsyncIterator[Lease]:
    """Hold the job for a run: its run lock here and its lease, renewed every quarter of its
    length. `on_lost(why)` is called once if the lease is lost meanwhile: the run must stop."""
    seconds = lease_seconds(home)
    async with _held(state, home, job_id, kind=kind, seconds=seconds) as lease:
        keeper = asyncio.create_task(_keep(state, lease, seconds, on_lost))
        try:
            yield lease
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)


@contextlib.asynccontextmanager
async def excluding(state: State, home: Home, job_id: str) -> AsyncIterator[None]:
    """Hold the job for a short change (an edit, a retried item): no run starts meanwhile,
    on any host; JobBusy naming the holder while one runs."""
    async with _held(state, home, job_id, kind="edit", seconds=lease_seconds(home)):
        yield


async def _keep(state: State, lease: Lease, seconds: float,
                on_lost: Callable[[str], None]) -> None:
    """Renew the lease every seconds/4; a lease taken by another, or not renewed before it
    lapses (the database out of reach), ends the run: never two runs of one job."""
    while True:
        await asyncio.sleep(seconds / 4)
        try:
            lease = await renew(state, lease, seconds)
        except LeaseLost as exc:
            on_lost(f"stopped: {exc}; it continues there")
            return
        except Exception as exc:  # the database out of reach: try again until it lapses
            log.warning("job %s: cannot renew its lease: %s", lease.job_id, exc)
            if time.time() + seconds / 4 >= lease.expires_at:
                on_lost("stopped: its lease could not be renewed before it lapsed "
                        f"({exc}); another process may take the job over")
                return
