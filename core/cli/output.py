"""How headless commands speak: tables for people, JSON for scripts, a live progress line."""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

import humanize

from core.engine.stats import ExecutionStats, Throughput
from core.paths import printable
from core.readout import BudgetReadout, PauseWatch, eta_text, short_pause_text

CLEAR_TO_END = "\x1b[K"  # erase the rest of the terminal line
PROBLEM_EVENTS = ("flagged", "failed", "warning")


def emit_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def reply(args: Any, data: Any, text: str) -> None:
    """`data` as JSON with --json, else `text` for a person."""
    if args.json:
        emit_json(data)
    else:
        print(text)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain left-aligned table, wide enough for its widest cell per column."""
    cells = [[str(h) for h in headers]] + [
        ["" if c is None else printable(str(c)) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join(lines)


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, CSV injection)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: numbers as they are; text printable, and kept from being read
    as a formula by a leading "'" (a file named "=HYPERLINK(…)" stays a name)."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value)
    return printable("'" + text if text.startswith(_FORMULA_STARTS) else text)


def write_csv(rows: Iterable[Sequence[Any]], headers: Sequence[str],
              stream: TextIO | None = None) -> None:
    """Every `--csv`: a header line, then the rows, each cell through csv_cell."""
    writer = csv.writer(stream or sys.stdout)
    writer.writerow(headers)
    writer.writerows([csv_cell(cell) for cell in row] for row in rows)


def size(n: int | None) -> str:
    """Bytes for people: `0 B`, `23 B`, `1.4 MiB` (humanize says "23 Bytes" below a KiB)."""
    if n is None:
        return ""
    return f"{n} B" if abs(n) < 1024 else humanize.naturalsize(n, binary=True)


def rate(bytes_per_second: float) -> str:
    """`1.0 MiB/s`, or `—` while nothing moves."""
    return "—" if bytes_per_second < 1 else f"{size(int(bytes_per_second))}/s"


def count(n: int, noun: str) -> str:
    """`1 file`, `2 files`, `1,204 API calls`: `noun` is a regular noun's singular."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def when(epoch: float | None) -> str:
    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_text(stats: ExecutionStats, throughput: Throughput,
                  budget: BudgetReadout | None = None, now: float | None = None) -> str:
    """One line, as rclone -P: files and bytes done of what is planned so far, rate, ETA
    (with the budget's waits), the pause's countdown, API calls and budget, items checked;
    what matters most first, as a narrow terminal cuts the end off."""
    now = time.time() if now is None else now
    more = "" if stats.listing_done else "+"
    parts = [f"{stats.transferred:,}/{stats.planned_files:,}{more} files",
             f"{size(stats.bytes)}/{size(stats.planned_bytes)}{more}",
             rate(throughput.rate),
             f"ETA {eta_text(stats, throughput.eta(stats), budget, now)}"]
    if stats.waiting_until:
        parts.append(short_pause_text(stats.waiting_until, now))
    if stats.api_calls:
        calls = count(stats.api_calls, "API call")
        parts.append(f"{calls}, {budget.left(now):,}/{budget.limit:,} left" if budget
                     else calls)
    parts.append(f"{stats.files + stats.folders:,} checked")
    return " · ".join(parts)


class ProgressReporter:
    """`jobs run`'s progress. On a terminal one line rewritten in place; on anything else
    (a log, a pipe) a plain line every `log_interval` seconds and whenever the run starts or
    ends a rate-limit pause or finishes listing; with `quiet`, nothing but problems."""

    def __init__(self, stream: TextIO = sys.stderr, *, quiet: bool = False,
                 log_interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.quiet = quiet
        self.live = stream.isatty()
        self.log_interval = log_interval
        self.budget: BudgetReadout | None = None  # kept fresh by the command, when it can
        self._clock = clock
        self._last_log = clock()
        self._phase: tuple[bool, bool] | None = None
        self._shown = False
        self._pauses = PauseWatch()

    def __call__(self, stats: ExecutionStats, throughput: Throughput) -> None:
        for kind, message in self._pauses(stats):
            self.event(kind, message)
        if self.quiet:
            return
        text = progress_text(stats, throughput, self.budget)
        if self.live:
            width = shutil.get_terminal_size().columns - 1  # a wrapped line cannot be redrawn
            self.stream.write("\r" + text[:width] + CLEAR_TO_END)
            self._shown = True
            self.stream.flush()
            return
        phase = (bool(stats.waiting_until), stats.listing_done)
        changed = self._phase is not None and phase != self._phase
        self._phase = phase
        if changed or self._clock() - self._last_log >= self.log_interval:
            self._last_log = self._clock()
            self.stream.write(f"progress: {text}\n")
            self.stream.flush()

    def event(self, kind: str, message: str) -> None:
        """What the engine says as it goes; with `quiet`, only what went wrong."""
        if self.quiet and kind not in PROBLEM_EVENTS:
            return
        self.end_line()
        self.stream.write(f"{kind}: {printable(message)}\n")
        self.stream.flush()

    def end_line(self) -> None:
        if self.live and self._shown:
            self.stream.write("\r" + CLEAR_TO_END)
            self._shown = False
            self.stream.flush()
