"""How headless commands speak: tables for people, JSON for scripts, a live progress line."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import humanize

from core.engine.stats import ExecutionStats, Throughput
from core.paths import printable


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
    return "" if n is None else humanize.naturalsize(n, binary=True)


def when(epoch: float | None) -> str:
    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_text(stats: ExecutionStats, throughput: Throughput) -> str:
    """One line: files and bytes done of what is planned so far, rate, ETA."""
    planned = f"{stats.planned_files:,}" + ("" if stats.listing_done else "+")
    eta = throughput.eta(stats)
    left = duration(eta) if eta is not None else "…"
    text = (f"{stats.transferred:,}/{planned} files · "
            f"{size(stats.bytes)}/{size(stats.planned_bytes)} · "
            f"{size(int(throughput.rate))}/s · ETA {left} · "
            f"{stats.files + stats.folders:,} items checked")
    if stats.api_calls:
        text += f" · {stats.api_calls:,} API calls"
    if stats.waiting_until:
        text += f" · paused until {time.strftime('%H:%M', time.localtime(stats.waiting_until))}" \
                " (rate limit)"
    return text


class ProgressReporter:
    """A live line on a terminal; on anything else, a plain log line every few seconds."""

    def __init__(self, stream: TextIO = sys.stderr, log_interval: float = 5.0) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.log_interval = log_interval
        self._last_log = time.monotonic()
        self._width = 0

    def __call__(self, stats: ExecutionStats, throughput: Throughput) -> None:
        text = progress_text(stats, throughput)
        if self.live:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.stream.flush()
        elif time.monotonic() - self._last_log >= self.log_interval:
            self._last_log = time.monotonic()
            self.stream.write(f"progress: {text}\n")
            self.stream.flush()

    def event(self, kind: str, message: str) -> None:
        self.end_line()
        self.stream.write(f"{kind}: {printable(message)}\n")
        self.stream.flush()

    def end_line(self) -> None:
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
