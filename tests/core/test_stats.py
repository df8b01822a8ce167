"""Progress numbers: a rolling rate, an ETA only once it can be known, the progress line and
how `jobs run` writes it (in place on a terminal, plain lines elsewhere, nothing when quiet)."""

import io
import time

from core.cli.output import ProgressReporter, count, progress_text, rate, size
from core.engine.stats import ExecutionStats, Throughput
from core.readout import BudgetReadout, clock


def test_rate_is_rolling_and_eta_waits_for_the_listing():
    stats = ExecutionStats(planned_bytes=1000, planned_files=10)
    rolling = Throughput(window=10.0)
    for second, done in enumerate((0, 100, 200, 300)):
        rolling.sample(done, now=float(second))
    stats.bytes = 300
    assert rolling.rate == 100.0
    assert rolling.eta(stats) is None  # more files may still be found
    stats.listing_done = True
    assert rolling.eta(stats) == 7.0
    for second in range(4, 30):  # a stall: old samples leave the window, the rate drops
        rolling.sample(300, now=float(second))
    assert rolling.rate == 0.0 and rolling.eta(stats) is None


def three_of_ten() -> tuple[ExecutionStats, Throughput]:
    stats = ExecutionStats(transferred=3, planned_files=10, bytes=3 * 1024 ** 2,
                           planned_bytes=10 * 1024 ** 2, files=12, folders=2)
    rolling = Throughput()
    rolling.sample(0, now=0.0)
    rolling.sample(3 * 1024 ** 2, now=3.0)
    return stats, rolling


def test_progress_line_says_files_bytes_rate_and_eta():
    stats, rolling = three_of_ten()
    line = progress_text(stats, rolling, now=0.0)
    assert line.startswith("3/10+ files · 3.0 MiB/10.0 MiB+ · 1.0 MiB/s · ETA … · 14 checked")
    stats.listing_done = True
    assert "ETA 7 s" in progress_text(stats, rolling, now=0.0)


def test_progress_line_has_the_budget_and_the_pause_countdown():
    stats, rolling = three_of_ten()
    stats.listing_done, stats.api_calls = True, 1
    now = 1_750_000_000.0
    budget = BudgetReadout("c", 30, 0, now + 14, 0.0, stated=True)
    stats.waiting_until = now + 14
    line = progress_text(stats, rolling, budget, now=now)
    assert line.startswith("3/10 files · 3.0 MiB/10.0 MiB · 1.0 MiB/s · ETA paused · "
                           f"paused until {clock(now + 14)} (14 s) · 1 API call, 0/30 left · ")


def test_words_for_counts_sizes_and_rates():
    assert count(1, "file") == "1 file" and count(2, "folder") == "2 folders"
    assert count(1, "API call") == "1 API call" and count(1_204, "API call") == "1,204 API calls"
    assert size(23) == "23 B" and size(0) == "0 B" and size(2048) == "2.0 KiB"
    assert rate(0) == "—" and rate(1024 ** 2) == "1.0 MiB/s"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_rewritten_in_place():
    stream = Terminal()
    reporter = ProgressReporter(stream)
    stats, rolling = three_of_ten()
    reporter(stats, rolling)
    stats.transferred = 4
    reporter(stats, rolling)
    reporter.event("flagged", "/a.pdf: name too long")
    written = stream.getvalue()
    assert written.count("\r3/10+ files") == 1 and written.count("\r4/10+ files") == 1
    assert "\n" not in written.split("flagged")[0]  # one line, redrawn, until an event
    assert written.count("\x1b[K") == 3  # each redraw clears what a longer line left
    assert written.endswith("\r\x1b[Kflagged: /a.pdf: name too long\n")


def test_elsewhere_plain_lines_at_intervals_and_on_a_pause():
    stream, ticks = io.StringIO(), iter([0.0, 1.0, 2.0, 15.0, 15.0])
    reporter = ProgressReporter(stream, log_interval=10.0, clock=lambda: next(ticks))
    stats, rolling = three_of_ten()
    reporter(stats, rolling)  # t=1: too soon
    stats.waiting_until = time.time() + 60
    reporter(stats, rolling)  # t=2: a pause began: said at once
    reporter(stats, rolling)  # t=15: the interval
    paused, *lines = stream.getvalue().splitlines()
    assert paused.startswith("paused: rate limit: paused until")  # the event, once
    assert len(lines) == 2 and all(line.startswith("progress: ") for line in lines)
    assert "\r" not in stream.getvalue() and "ETA paused · paused until" in lines[0]


def test_quiet_says_nothing_but_problems():
    stream = Terminal()
    reporter = ProgressReporter(stream, quiet=True)
    stats, rolling = three_of_ten()
    reporter(stats, rolling)
    reporter.event("info", "running job")
    reporter.event("failed", "/a.pdf: disk full")
    assert stream.getvalue() == "failed: /a.pdf: disk full\n"
