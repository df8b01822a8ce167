"""`dryviq-tui analyze CONN[:/path] [--against CONN[:/path]] [--json|--csv] [--html FILE]`:
what a connection's folder holds, what the other platform would refuse, and what a job costs."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.analysis_view import hours_text, platform_name
from core.analyze import COMPARISON_KEYS, RULES, Analysis, Bucket, analyze
from core.cli import CommandFailed, UsageError, opened_state
from core.cli.connections import find
from core.cli.output import CLEAR_TO_END, count, emit_json, size, write_csv
from core.connectors.base import ConnectorError, NotFound
from core.paths import normalize_path, printable
from core.sides import action_words

WIDTH = 80
BAR = 20  # characters of the longest bar
CSV_HEADERS = ("section", "label", "files", "bytes", "value", "detail")
_COMPARED = {"only_here": "only here", "only_there": "only there",
             "different": "different", "identical": "identical"}


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    analyze = commands.add_parser(
        "analyze", help="walk a connection's folder (listings only) and report what it holds, "
                        "what the other side would refuse, and what a job would cost", **leaf)
    analyze.add_argument("target", metavar="CONN[:/path]", help="connection name or id, and "
                                                                 "a folder in it")
    analyze.add_argument("--against", metavar="CONN[:/path]",
                         help="compare with this connection's folder (DryvIQ's platform "
                              "comparison), checking names against its rules")
    analyze.add_argument("--rules", choices=RULES,
                         help="without --against: check names against this platform's rules "
                              "(default: Procore's, unless the folder is in Procore)")
    analyze.add_argument("--csv", action="store_true", help="print CSV")
    analyze.add_argument("--html", metavar="FILE",
                         help="also write a self-contained HTML report to FILE")
    analyze.set_defaults(handler=_analyze)


def _target(text: str, flag: str) -> tuple[str, str]:
    name, _, raw = text.partition(":")
    if not name:
        raise UsageError(f"{flag} {text!r}: give a connection name, as NAME or NAME:/folder")
    try:
        return name, normalize_path(raw)
    except ConnectorError as exc:
        raise UsageError(f"{flag} {text!r}: {exc}") from None


def _html_renderer(args: argparse.Namespace) -> Callable[[Analysis], str] | None:
    """The HTML report's renderer where --html asks for one; its folder is checked before
    anything is walked, so a bad FILE costs no API calls."""
    if not args.html:
        return None
    target = Path(args.html).expanduser()
    if target.exists() and not target.is_file():
        raise UsageError(f"--html {args.html}: not a file (a folder or a device); give the "
                         "report's file name")
    folder = target.resolve().parent
    if not folder.is_dir():
        raise UsageError(f"--html {args.html}: the folder {folder} does not exist")
    try:
        from core.analysis_html import render_html
    except ImportError:
        raise CommandFailed("not_built", "--html: this build has no HTML report") from None
    return render_html


def _write_html(path: str, html: str) -> None:
    """Write the report whole or not at all (a temporary file renamed over FILE)."""
    target = Path(path).expanduser()
    try:
        fd, temporary = tempfile.mkstemp(dir=target.resolve().parent, prefix=".dryviq-",
                                         suffix=".html.part")
    except OSError as exc:
        raise CommandFailed("html", f"--html {path}: cannot write there: {exc.strerror}"
                            ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html)
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise CommandFailed("html", f"--html {path}: cannot write the report: "
                                    f"{exc.strerror}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


async def _analyze(args: argparse.Namespace) -> int:
    if args.json and args.csv:
        raise UsageError("--json and --csv: choose one")
    if args.rules and args.against:
        raise UsageError("--rules: names are checked against the --against connection's "
                         "rules; give one or the other")
    name, path = _target(args.target, "CONN")
    against_name, against_path = _target(args.against, "--against") if args.against else (
        None, "")
    render = _html_renderer(args)
    live = sys.stderr.isatty() and not (args.json or args.csv)
    async with opened_state(args) as (home, state):
        connection = await find(state, name)
        against = await find(state, against_name) if against_name else None

        def progress(now: Any) -> None:
            print(f"\ranalyzing: {now.folders:,} folders, {now.files:,} files, "
                  f"{size(now.bytes)}, {now.api_calls:,} API calls{CLEAR_TO_END}",
                  end="", file=sys.stderr, flush=True)

        try:
            analysis = await analyze(state, home, connection, path, against=against,
                                     against_path=against_path, rules=args.rules,
                                     on_progress=progress if live else None)
        except NotFound as exc:
            raise UsageError(str(exc)) from None
        except ConnectorError as exc:
            compared = f" against {args.against}" if args.against else ""
            raise CommandFailed("analyze_failed", f"cannot analyze {args.target}{compared}: "
                                                  f"{exc}") from None
        finally:
            if live:
                print(f"\r{CLEAR_TO_END}", end="", file=sys.stderr, flush=True)
    if render is not None:
        _write_html(args.html, render(analysis))
    if args.json:
        emit_json(analysis.as_dict())
    elif args.csv:
        write_csv(csv_rows(analysis), CSV_HEADERS)
    else:
        print("\n".join(report(analysis)))
    return 0


# -- CSV ----------------------------------------------------------------------------------


def shown(path: str) -> str:
    """A path of the analysis as `ls` and `jobs items` show paths: "/Drawings/A-101.pdf"."""
    return "/" + path


def csv_rows(analysis: Analysis) -> Iterator[tuple[Any, ...]]:
    """One row per figure: (section, label, files, bytes, value, detail)."""
    yield ("total", "files", analysis.files, analysis.bytes, None, None)
    yield ("total", "folders", analysis.folders, None, None, None)
    yield ("total", "api_calls", None, None, analysis.api_calls, None)
    for section, buckets in (("extension", analysis.by_extension),
                             ("folder", analysis.by_folder), ("size", analysis.by_size),
                             ("age", analysis.by_age)):
        for bucket in buckets:
            yield (section, bucket.label, bucket.files, bucket.bytes, None, None)
    for item in analysis.largest:
        yield ("largest", shown(item.path), 1, item.value, None, None)
    for item in analysis.deepest:
        yield ("deepest", shown(item.path), None, None, item.value, None)
    for folder in analysis.empty_folders:
        yield ("empty_folder", shown(folder), None, None, None, None)
    for group in analysis.duplicates:
        yield ("duplicates", shown(group.paths[0]), len(group.paths),
               group.size * len(group.paths), group.size,
               f"{group.reason}: " + " | ".join(map(shown, group.paths)))
    for flagged in analysis.flagged:
        yield ("flagged", shown(flagged.path), None, None, flagged.fix, flagged.problem)
    estimate = analysis.estimate
    for key in ("api_calls", "listing_calls", "folder_calls", "transfer_calls", "hours",
                "hours_from_now", "hourly_limit", "remaining_now"):
        yield ("estimate", key, None, None, getattr(estimate, key), estimate.basis)
    if analysis.comparison is not None:
        comparison = analysis.comparison
        for key in COMPARISON_KEYS:
            bucket: Bucket = getattr(comparison, key)
            yield ("comparison", key, bucket.files, bucket.bytes, None,
                   " | ".join(map(shown, comparison.samples.get(key, ()))))
        for action, n in comparison.first_sync.items():
            yield ("first_sync", action, None, None, n, None)


# -- text ---------------------------------------------------------------------------------


def fit(text: str, width: int) -> str:
    """`text` printable and at most `width` characters, its middle elided when longer (a
    path's start and its file name are what tell it apart)."""
    text = printable(text)
    if len(text) <= width:
        return text
    keep = width - 1
    return text[:keep // 2] + "…" + text[len(text) - (keep - keep // 2):]


def _bars(title: str, buckets: tuple[Bucket, ...]) -> list[str]:
    if not buckets:
        return []
    most = max(b.bytes for b in buckets) or 1
    lines = [f"{title:<30} {'files':>9} {'size':>11}"]
    for b in buckets:
        bar = "█" * round(BAR * b.bytes / most) if b.bytes else ""
        lines.append(f"  {fit(b.label, 28):<28} {b.files:>9,} {size(b.bytes):>11}  {bar}")
    return [*lines, ""]


def _hours_or_unknown(hours: float | None) -> str:
    return "an unknown time" if hours is None else hours_text(hours)


def _estimate(analysis: Analysis) -> list[str]:
    estimate = analysis.estimate
    lines = [f"Estimate: {estimate.basis}"]
    if not estimate.api_calls:
        return [*lines, ""]
    lines.append(f"  {estimate.api_calls:,} Procore API calls: {estimate.listing_calls:,} "
                 f"listing, {estimate.folder_calls:,} folders, {estimate.transfer_calls:,} "
                 f"for {estimate.files:,} files ({size(estimate.bytes)})")
    if estimate.hourly_limit:
        reserve = f", {estimate.reserve:.0%} kept for browsing" if estimate.reserve else ""
        lines.append(f"  takes {_hours_or_unknown(estimate.hours)} at {estimate.hourly_limit:,} "
                     f"calls an hour{reserve}")
    if estimate.remaining_now is not None:
        lines.append(f"  started now: ends in {_hours_or_unknown(estimate.hours_from_now)} "
                     f"({estimate.remaining_now:,} calls left in this hour's budget)")
    return [*lines, ""]


def _comparison(analysis: Analysis) -> list[str]:
    comparison = analysis.comparison
    if comparison is None:
        return []
    lines = [fit(f"Compared with {analysis.against}:/{analysis.against_path or ''} "
                 f"({analysis.against_platform})", WIDTH)]
    for key in COMPARISON_KEYS:
        bucket: Bucket = getattr(comparison, key)
        lines.append(f"  {_COMPARED[key]:<11} {count(bucket.files, 'file'):>15} "
                     f"{size(bucket.bytes):>11}")
        for sample in comparison.samples.get(key, ())[:3]:
            lines.append("      " + fit(shown(sample), WIDTH - 6))
    actions = ", ".join(f"{action_words(action)}: {n:,}"
                        for action, n in comparison.first_sync.items())
    lines.append("  a first two-way sync would (items by action):")
    lines += textwrap.wrap(printable(actions or "nothing"), WIDTH, initial_indent="    ",
                           subsequent_indent="    ")
    return [*lines, ""]


def _paths(title: str, rows: list[tuple[str, str]]) -> list[str]:
    if not rows:
        return []
    return [title] + [f"  {left:>11}  {fit(right, WIDTH - 15)}" for left, right in rows] + [""]


def report(analysis: Analysis) -> list[str]:
    """The text report, lines of at most 80 columns."""
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(analysis.started_at))
    took = analysis.finished_at - analysis.started_at
    lines = [fit(f"Analysis of {analysis.connection}:/{analysis.path} ({analysis.platform}), "
                 f"{when}", WIDTH),
             f"  {analysis.files:,} files ({size(analysis.bytes)}) in {analysis.folders:,} "
             f"folders; {count(analysis.api_calls, 'API call')}, {took:,.1f} s", ""]
    if analysis.skipped:
        lines.insert(2, f"  {analysis.skipped:,} items skipped (not content: links leading "
                        "out, leftover part files)")
    if analysis.unreadable_count:
        lines.insert(2, f"  {analysis.unreadable_count:,} folders could not be listed: "
                        "nothing under them is counted")
    lines += _bars("By type", analysis.by_extension)
    lines += _bars("By top-level folder", analysis.by_folder)
    lines += _bars("By size", analysis.by_size)
    lines += _bars("By age (modified)", analysis.by_age)
    lines += _paths("Largest files", [(size(p.value), shown(p.path)) for p in analysis.largest])
    lines += _paths("Deepest paths", [(f"{p.value} deep", shown(p.path))
                                      for p in analysis.deepest])
    lines += _paths(f"Empty folders ({analysis.empty_folder_count:,})",
                    [("", shown(p)) for p in analysis.empty_folders[:20]])
    if analysis.duplicates:
        lines.append(f"Duplicate candidates ({count(analysis.duplicate_groups, 'group')}, "
                     f"{size(analysis.duplicate_bytes)} in extra copies)")
        for group in analysis.duplicates:
            lines.append(fit(f"  {size(group.size)} x{len(group.paths)} ({group.reason})",
                             WIDTH))
            lines += ["      " + fit(shown(p), WIDTH - 6) for p in group.paths[:4]]
        lines.append("")
    if analysis.destination_platform:
        where = platform_name(analysis.destination_platform)
        lines.append(f"Names {where} would refuse "
                     f"({analysis.flagged_count:,})")
        for flagged in analysis.flagged[:50]:
            fix = f"renamed to {flagged.fix!r}" if flagged.fix else "flagged for a person"
            lines.append("  " + fit(shown(flagged.path), WIDTH - 2))
            lines.append("      " + fit(flagged.problem, WIDTH - 6))
            lines.append("      " + fit(f"-> {fix}", WIDTH - 6))
        lines.append("")
    lines += _estimate(analysis)
    lines += _comparison(analysis)
    return lines[:-1] if lines and not lines[-1] else lines
