"""One budget model for every readout: never negative, the window named, one countdown while
paused, seconds for short pauses, an ETA that says paused and counts the budget's waits."""

from core.engine.stats import ExecutionStats
from core.readout import (
    BudgetReadout,
    PauseWatch,
    budget_readouts,
    budget_wait,
    clock,
    countdown,
    eta_text,
    pause_text,
    tightest,
)

NOW = 1_750_000_000.0


def row(limit: int, remaining: int, reset: float = 0.0, blocked: float = 0.0) -> dict:
    return {"hourly_limit": limit, "hourly_remaining": remaining, "hourly_reset": reset,
            "blocked_until": blocked}


def test_remaining_is_never_negative_nor_above_the_limit() -> None:
    assert BudgetReadout.from_row("c", row(30, -2, NOW + 30)).remaining == 0
    assert BudgetReadout.from_row("c", row(30, 45, NOW + 30)).remaining == 30
    assert "0 of 30 calls left" in BudgetReadout.from_row("c", row(30, -2, NOW + 30)).line(NOW)


def test_the_assumed_hourly_limit_says_so_until_procore_states_one() -> None:
    assumed = BudgetReadout.from_row("c", row(3600, 3554))
    assert assumed.line(NOW) == ("hourly budget 3,554 of 3,600 calls left (assumed until "
                                 "Procore states it)")
    stated = BudgetReadout.from_row("c", row(30, 0, NOW + 30))
    assert stated.line(NOW) == "hourly budget 0 of 30 calls left, resets in 30 s"


def test_a_window_whose_reset_passed_reads_full() -> None:
    spent = BudgetReadout.from_row("c", row(30, 0, NOW - 1))
    assert spent.left(NOW) == 30 and spent.line(NOW) == "hourly budget 30 of 30 calls left"


def test_while_paused_only_the_pause_counts_down() -> None:
    budget = BudgetReadout.from_row("c", row(30, 0, NOW + 30, blocked=NOW + 5))
    assert budget.line(NOW, paused_until=NOW + 30) == "hourly budget 0 of 30 calls left"
    assert "blocked until" in budget.line(NOW) and "resets in 30 s" in budget.line(NOW)


def test_countdowns_round_up_and_short_pauses_show_seconds() -> None:
    assert countdown(0.2) == "1 s" and countdown(14) == "14 s" and countdown(0) == "0 s"
    assert countdown(3725) == "1:02:05"
    assert pause_text(NOW + 13.4, NOW) == (f"paused until {clock(NOW + 13.4)} (rate limit): "
                                           "continues by itself in 14 s")
    assert clock(NOW).count(":") == 2
    assert pause_text(NOW - 0.1, NOW) == "rate-limit pause over: continuing"


def test_the_tightest_budget_is_the_one_nearest_its_end() -> None:
    budgets = budget_readouts({"a": row(3600, 3000), "b": row(30, 3, NOW + 10)})
    assert [b.client for b in budgets] == ["a", "b"]
    assert tightest(budgets, NOW).client == "b"  # type: ignore[union-attr]
    assert tightest([], NOW) is None


def test_eta_says_paused_while_waiting_and_counts_the_budget_waits() -> None:
    stats = ExecutionStats(transferred=10, planned_files=40, api_calls=20, listing_done=True)
    plenty = BudgetReadout("c", 3600, 3000, NOW + 600, 0.0, stated=True)
    assert budget_wait(stats, plenty, NOW) == 0
    assert eta_text(stats, 30.0, plenty, NOW) == "30 s"
    # 30 files left at 2 calls each: 60 calls, 10 usable now (30 less the 10% reserve, 3,
    # makes 27 a window): two more windows, the first ending in 40 s
    tight = BudgetReadout("c", 30, 13, NOW + 40, 0.0, stated=True)
    assert budget_wait(stats, tight, NOW) == 40 + 3600
    assert eta_text(stats, 30.0, tight, NOW) == countdown(30 + 40 + 3600)
    stats.waiting_until = NOW + 40
    assert eta_text(stats, 30.0, tight, NOW) == "paused"
    assert eta_text(ExecutionStats(), None, None, NOW) == "…"


def test_pauses_become_events_once_each() -> None:
    watch = PauseWatch()
    stats = ExecutionStats()
    assert watch(stats) == []
    stats.waiting_until = NOW + 14
    [(kind, message)] = watch(stats)
    assert kind == "paused" and clock(NOW + 14) in message
    assert watch(stats) == []
    stats.waiting_until = None
    assert watch(stats) == [("continued", "rate-limit pause over: continuing")]
    assert watch(stats) == []
