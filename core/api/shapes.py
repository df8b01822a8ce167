"""Jobs and their executions in DryvIQ's shapes (skysync-cli SDK models/jobs.ts), for every
area of the API that answers them (jobs, history, live events, reports' jobs).

A job is its stored definition with the keys the client wrote (so it can be sent back as it
came), plus what only the server knows: `id`, `status` (DryvIQ's job status), the newest
`execution` and the one before it (`previous_execution`), and `created_on`. An execution is
DryvIQ's: `progress` 0-1, `phase`, epoch `start_time`/`end_time`, `duration`, `status` (DryvIQ's
execution statuses; ours, which say more, in `status_detail`), `node_address` and `stats` per
side, with our own counters in `stats.counters`."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from typing import Any

import orjson

from core.engine.stats import ExecutionStats
from core.home import Home
from core.jobs import job_object
from core.leases import job_running
from core.schedule import failed_to_start, job_status
from core.sides import recorded_stats
from core.state import Execution, JobRecord, State

# our execution statuses (core/status.py) as DryvIQ's JobExecutionStatus says them: a run
# that stopped part-way and continues with the next one (paused by the rate limit,
# interrupted) reads as cancelled; status_detail keeps ours
EXECUTION_STATUS = {"running": "running", "stopping": "running", "completed": "completed",
                    "no_changes": "no_changes", "warn": "warn", "failed": "failed",
                    "guarded": "failed", "paused": "cancelled", "interrupted": "cancelled",
                    "cancelled": "cancelled"}
FINISHED = frozenset({"completed", "no_changes", "warn", "failed", "guarded", "paused",
                      "interrupted", "cancelled"})
# keys of a job body that only the server writes: a client sending a job back may keep them,
# an edit never stores them
SERVER_KEYS = ("id", "status_reason", "execution", "previous_execution", "created_on")
_HOST = socket.gethostname()
STATS_KEPT = 4096  # executions' DryvIQ stats kept, by the stats recorded (a history page's)
_stats_kept: dict[bytes, tuple[ExecutionStats, dict[str, Any]]] = {}


def execution_status(execution: Execution, *, alive: bool = True) -> str:
    """Our status of `execution`; "interrupted" for one left running by a process that died
    (`alive` False: no process runs its job now)."""
    if execution.status in ("running", "stopping") and not alive:
        return "interrupted"
    return execution.status


# ours that ended their work; any other finished run stopped (or failed) part-way
COMPLETED = frozenset({"completed", "no_changes", "warn"})
# ours that stopped part-way and continue with the next run
STOPPED = frozenset({"paused", "interrupted", "cancelled"})


def progress(stats: ExecutionStats, completed: bool) -> float:
    """How far a run is, 0-1: its bytes (else files) written of those planned; 1 once it
    completed (a run that stopped or failed part-way says how far it got)."""
    if completed:
        return 1.0
    if stats.planned_bytes:
        done = stats.bytes / stats.planned_bytes
    elif stats.planned_files:
        done = stats.transferred / stats.planned_files
    else:
        return 0.0
    # still listing: more may be planned yet, so never read as done
    return round(min(done, 1.0 if stats.listing_done else 0.99), 4)


def phase(execution: Execution, stats: ExecutionStats, ours: str) -> str:
    """DryvIQ's phase: a run that stopped part-way stays in the phase it left unfinished
    (the runner writes "complete" when any run ends): executing, or initialize when it
    stopped before planning anything."""
    if ours not in STOPPED or execution.phase != "complete":
        return execution.phase
    return "executing" if stats.listing_done or stats.planned_files else "initialize"


def _files(files: int, size: int, versions: int = 0) -> dict[str, int]:
    return {"files": max(0, files), "bytes": max(0, size), "versions": max(0, versions)}


def execution_stats(stats: ExecutionStats) -> dict[str, Any]:
    """DryvIQ's stats set: per side what was new (written), already there and still pending,
    folders made, flagged, revised, ignored, rate limits; errors; and our counters."""
    pending = _files(stats.planned_files - stats.transferred, stats.planned_bytes - stats.bytes)
    in_step = stats.files - stats.transferred - stats.flagged - stats.failed - stats.skipped
    return {
        "destination": {
            "new": _files(stats.added_destination + stats.updated_destination,
                          stats.bytes - stats.bytes_to_source, stats.versions),
            "existing": _files(in_step, 0), "pending": pending,
            "folders": stats.folders_created, "flagged": stats.flagged,
            "revisions": stats.revised, "ignored": stats.skipped,
            "deleted": stats.deleted_destination,
            "rate_limits": stats.rate_limit_waits + stats.rate_limited},
        "source": {
            "new": _files(stats.added_source + stats.updated_source, stats.bytes_to_source),
            "existing": _files(in_step, 0), "pending": _files(0, 0),
            "folders": 0, "flagged": 0, "revisions": 0, "ignored": 0,
            "deleted": stats.deleted_source, "rate_limits": 0},
        "errors": {"warnings": stats.flagged, "failures": stats.failed},
        "counters": dict(vars(stats)),  # as_dict (dataclasses.asdict) costs 10 times more
    }


def execution_body(execution: Execution, *, alive: bool = True,
                   now: float | None = None) -> dict[str, Any]:
    """One execution in DryvIQ's JobExecution shape; `alive`: whether a process runs its job
    now (a "running" execution of a job nobody runs was left by a process that died)."""
    ours = execution_status(execution, alive=alive)
    finished = ours in FINISHED
    stats, dryviq_stats = _stats_of(execution)
    if execution.ended_at is not None:
        end = execution.ended_at
    else:
        end = execution.heartbeat_at if finished else (now or time.time())
    status = EXECUTION_STATUS.get(ours, "failed")
    if ours == "failed" and failed_to_start(execution):
        status = "failed_to_start"
    return {
        "id": execution.id, "job_id": execution.job_id,
        "progress": progress(stats, ours in COMPLETED), "phase": phase(execution, stats, ours),
        "start_time": int(execution.started_at),
        "end_time": int(end) if finished else None,
        "duration": {"value": round(max(0.0, end - execution.started_at), 3), "unit": "s"},
        "status": status, "status_detail": ours, "error": execution.error,
        "resume_at": None if execution.resume_at is None else int(execution.resume_at),
        "node_address": execution.agent or f"{_HOST}:{execution.pid}",
        "scheduled": execution.scheduled,
        "stats": dryviq_stats,
    }


def _stats_of(execution: Execution) -> tuple[ExecutionStats, dict[str, Any]]:
    """The execution's stats, and as DryvIQ's set: kept by the stats recorded, so a history
    page of finished runs builds none again (a third of its time). Shared: never changed."""
    try:
        key = orjson.dumps(execution.stats)
    except orjson.JSONEncodeError:  # a number past 64 bits: built, not kept
        stats = recorded_stats(execution.stats)
        return stats, execution_stats(stats)
    kept = _stats_kept.get(key)
    if kept is None:
        stats = recorded_stats(execution.stats)
        kept = (stats, execution_stats(stats))
        if len(_stats_kept) >= STATS_KEPT:
            del _stats_kept[next(iter(_stats_kept))]
        _stats_kept[key] = kept
    return kept


def definition_of(record: JobRecord) -> dict[str, Any]:
    """The job object as stored (from the API's envelope, when it came in one)."""
    document, _ = job_object(json.loads(record.definition))
    return dict(document) if isinstance(document, dict) else {}


def job_body(record: JobRecord, *, status: str, reason: str | None,
             executions: Sequence[Execution], alive: bool) -> dict[str, Any]:
    """A job in DryvIQ's shape: its definition, then the server's keys; `executions` are its
    newest two, newest first; `status` DryvIQ's job status now."""
    newest = [execution_body(e, alive=alive and n == 0) for n, e in enumerate(executions[:2])]
    return {
        **definition_of(record),
        "id": record.id, "name": record.name, "kind": record.kind,
        "category": {"id": record.category_id, "name": record.category},
        "status": status, "status_reason": reason,
        "execution": newest[0] if newest else None,
        "previous_execution": newest[1] if len(newest) > 1 else None,
        "created_on": int(record.created_at),
    }


async def job_view(state: State, home: Home, record: JobRecord,
                   requested: str | None = None) -> dict[str, Any]:
    """Job `record` as the API answers it now; `requested`: a start, pause or cancel asked
    for and not yet carried out (DryvIQ's status "start" while a start waits for the
    scheduler)."""
    alive = await job_running(state, home, record.id)
    counted = await state.counted_executions(record, 1)
    now = job_status(record, next(iter(counted), None), running=alive)
    status, reason = now.code, now.reason
    if requested == "start" and not alive:
        status, reason = "start", "asked to start: the scheduler starts it within seconds"
    return job_body(record, status=status, reason=reason,
                    executions=await state.executions(record.id, 2), alive=alive)
