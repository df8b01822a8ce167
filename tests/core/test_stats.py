"""Progress numbers: a rolling rate, an ETA only once it can be known, and the progress line."""

from core.cli.output import progress_text
from core.engine.stats import ExecutionStats, Throughput


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


def test_progress_line_says_files_bytes_rate_and_eta():
    stats = ExecutionStats(transferred=3, planned_files=10, bytes=3 * 1024 ** 2,
                           planned_bytes=10 * 1024 ** 2, files=12, folders=2)
    rolling = Throughput()
    rolling.sample(0, now=0.0)
    rolling.sample(3 * 1024 ** 2, now=3.0)
    line = progress_text(stats, rolling)
    assert line.startswith("3/10+ files · 3.0 MiB/10.0 MiB · 1.0 MiB/s · ETA …")
    stats.listing_done = True
    assert "ETA 0:00:07" in progress_text(stats, rolling)
