"""When a job runs by itself, and when it stops: DryvIQ's `schedule` and `stop_policy`.

Pure functions of the job, its past executions and a moment, so a week of schedules is tested
in seconds. Times are wall-clock in the machine's local zone (DST included).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from core.jobs import Job
from core.state import Execution

AUTO_INTERVAL = 15 * 60.0  # seconds between runs of an auto job that sets no repeat_interval


@dataclass(frozen=True)
class Schedule:
    """A job's `schedule`, read from its definition (mode "manual" when it has none)."""

    mode: str  # manual | ad-hoc | auto

    @classmethod
    def of(cls, job: Job) -> Schedule:
        raise NotImplementedError("being written (issue 14)")


def next_run(schedule: Schedule, executions: Sequence[Execution],
             now: dt.datetime) -> dt.datetime | None:
    """When the job should run next, at or after `now` (an aware datetime), given its
    executions newest first; None when the schedule will not run it again."""
    raise NotImplementedError("being written (issue 14)")


def stop_reason(job: Job, executions: Sequence[Execution]) -> str | None:
    """Why the job is complete (its stop policy met, or an ad-hoc job's run done), else
    None; `executions` newest first."""
    raise NotImplementedError("being written (issue 14)")
