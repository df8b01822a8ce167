"""The API budget, a rate-limit pause and the ETA, as every command and screen states them.

`jobs run`'s progress line, the monitor and the browser all read one API client's budget
through `BudgetReadout`, so they show the same numbers in the same words: never a negative
count, the window named (the hourly limit assumed until Procore states its own), and while a
run waits for the budget one countdown, the pause's, never a second that disagrees with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.engine.stats import ExecutionStats

# core.pacer (and the httpx it brings) is imported only where a budget was recorded: a
# headless command on local folders never loads the HTTP stack


def countdown(seconds: float) -> str:
    """Time left, rounded up so a wait still going never reads zero: `14 s`, `0:04:05`."""
    left = max(0, math.ceil(seconds))
    if left < 60:
        return f"{left} s"
    return f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"


def clock(epoch: float) -> str:
    """A moment today, to the second (a 14-second pause needs them)."""
    return time.strftime("%H:%M:%S", time.localtime(epoch))


@dataclass(frozen=True)
class BudgetReadout:
    """One API client's hourly budget as the pacers last recorded it (core.pacer)."""

    client: str
    limit: int
    remaining: int  # never negative, never above the limit
    reset_at: float  # epoch seconds the hourly window resets; 0 while Procore has not said
    blocked_until: float  # after a 429 or Retry-After nobody calls before this
    stated: bool  # the limit is the one Procore stated, not the one assumed until then

    @classmethod
    def from_row(cls, client: str, row: Mapping[str, Any],
                 assumed_limit: int | None = None) -> BudgetReadout:
        """From a row of `State.rate_budgets()`; `assumed_limit`: the hourly limit assumed
        until Procore states one (the pacer's default)."""
        if assumed_limit is None:
            from core.pacer import DEFAULT_HOURLY_LIMIT as assumed_limit
        limit = max(1, int(row["hourly_limit"]))
        reset_at = float(row["hourly_reset"] or 0.0)
        return cls(client, limit, min(limit, max(0, int(row["hourly_remaining"]))), reset_at,
                   float(row["blocked_until"] or 0.0),
                   stated=bool(reset_at) or limit != assumed_limit)

    def left(self, now: float) -> int:
        """Calls left now: a window whose reset has passed is full again (the pacer refills
        it at the next call)."""
        return self.limit if self.reset_at and self.reset_at <= now else self.remaining

    def amount(self, now: float) -> str:
        """`hourly budget 3,554 of 3,600 calls left (assumed)`: always the hourly window, and
        saying when its size is still the assumed one, so the jump to Procore's figure is
        explained."""
        text = f"hourly budget {self.left(now):,} of {self.limit:,} calls left"
        return text if self.stated else text + " (assumed until Procore states it)"

    def timing(self, now: float, paused_until: float | None = None) -> list[str]:
        """When it resets and whether calls are blocked; nothing while a run is paused for
        it (the pause's countdown is the one to read then)."""
        if paused_until and paused_until > now:
            return []
        parts = []
        if self.blocked_until > now:
            parts.append(f"blocked until {clock(self.blocked_until)} (Procore said slow down)")
        if self.reset_at > now:
            parts.append(f"resets in {countdown(self.reset_at - now)}")
        return parts

    def line(self, now: float, paused_until: float | None = None) -> str:
        return ", ".join([self.amount(now), *self.timing(now, paused_until)])


def budget_readouts(rows: Mapping[str, Mapping[str, Any]]) -> list[BudgetReadout]:
    """Every API client's budget from `State.rate_budgets()`, in client order."""
    return [BudgetReadout.from_row(client, row) for client, row in sorted(rows.items())]


def tightest(budgets: Sequence[BudgetReadout], now: float) -> BudgetReadout | None:
    """The budget nearest to running out: the one a job will wait for first."""
    return min(budgets, key=lambda b: b.left(now) / b.limit, default=None)


def pause_text(until: float, now: float) -> str:
    """A run waiting for the API budget: when it continues, to the second, and the one
    countdown to it (the budget's own reset countdown is left out meanwhile)."""
    if until <= now:
        return "rate-limit pause over: continuing"
    return (f"paused until {clock(until)} (rate limit): continues by itself in "
            f"{countdown(until - now)}")


def short_pause_text(until: float, now: float) -> str:
    """The pause for a progress line: `paused until 05:12:14 (14 s)`."""
    if until <= now:
        return "pause over"
    return f"paused until {clock(until)} ({countdown(until - now)})"


class PauseWatch:
    """Turns a run's successive stats into events when a rate-limit pause starts and ends,
    for the monitor's Events tab and `jobs run`'s log (the pacer only sets `waiting_until`)."""

    def __init__(self) -> None:
        self.until: float | None = None

    def __call__(self, stats: ExecutionStats) -> list[tuple[str, str]]:
        until = stats.waiting_until
        if until == self.until:
            return []
        before, self.until = self.until, until
        if until:
            return [("paused", f"rate limit: paused until {clock(until)}, continues by itself")]
        return [("continued", "rate-limit pause over: continuing")] if before else []


def budget_wait(stats: ExecutionStats, budget: BudgetReadout | None, now: float,
                reserve: float | None = None) -> float:
    """Seconds the budget will hold the rest of the run up: the calls the remaining files
    need (at the rate of calls per file so far) beyond what is left now, in whole windows;
    `reserve` is the share kept for browsing (the pacer's default)."""
    if budget is None or not stats.api_calls or not stats.transferred:
        return 0.0
    from core.pacer import DEFAULT_HOURLY_WINDOW, DEFAULT_RESERVE

    reserve = DEFAULT_RESERVE if reserve is None else reserve
    files_left = max(0, stats.planned_files - stats.transferred)
    needed = math.ceil(stats.api_calls / stats.transferred * files_left)
    kept = math.ceil(reserve * budget.limit)
    usable = max(0, budget.left(now) - kept)
    if needed <= usable:
        return 0.0
    windows = math.ceil((needed - usable) / max(1, budget.limit - kept))
    first = budget.reset_at - now if budget.reset_at > now else DEFAULT_HOURLY_WINDOW
    return first + (windows - 1) * DEFAULT_HOURLY_WINDOW


def eta_text(stats: ExecutionStats, transfer_seconds: float | None,
             budget: BudgetReadout | None, now: float) -> str:
    """`paused` while waiting for the budget, `…` while unknown, else the time left with the
    budget's waits included."""
    if stats.waiting_until and stats.waiting_until > now:
        return "paused"
    if transfer_seconds is None:
        return "…"
    return countdown(transfer_seconds + budget_wait(stats, budget, now))
