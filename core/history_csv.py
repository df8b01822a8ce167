"""A job's executions as CSV rows, one shape for `jobs history --csv` and the API's
`v1/jobs/history.csv`: status codes and plain numbers, every side's counter on its own."""

from __future__ import annotations

from typing import Any

from core.cli.output import when
from core.sides import SIDE_COUNTERS, recorded_stats
from core.state import Execution

COLUMNS = ("id", "status", "started", "seconds", "transferred", "bytes", "flagged", "failed",
           *SIDE_COUNTERS)


def history_csv_row(execution: Execution, status: str | None = None) -> tuple[Any, ...]:
    """`execution` as a row of COLUMNS; `status` in place of the stored one (the API's
    "interrupted" for a run whose process died, which the command line records first)."""
    stats = recorded_stats(execution.stats)
    took = (execution.ended_at or execution.heartbeat_at) - execution.started_at
    return (execution.id, status or execution.status, when(execution.started_at), round(took),
            stats.transferred, stats.bytes, stats.flagged, stats.failed,
            *(getattr(stats, name) for name in SIDE_COUNTERS))
