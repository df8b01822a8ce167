"""`dryviq-tui reports list | show CATEGORY [--json|--csv]`: per-category totals (a report is a
category: see core/reports.py for what each figure counts)."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import UsageError, opened_state
from core.cli.output import duration, emit_json, size, table, when, write_csv
from core.reports import CategoryError, Report, ReportJob, Totals, find_category, report, reports
from core.status import label

# CSV and JSON carry plain numbers; people read sizes and durations
TOTALS_CSV = ("jobs", "executions", "files_moved", "bytes_moved", "flagged", "failed",
              "api_calls", "rate_limit_waits", "rate_limit_wait_seconds")


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    group = commands.add_parser("reports", help="per-category totals of jobs and executions")
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="every category with its totals", **leaf).set_defaults(
        handler=_list)
    show = sub.add_parser("show", help="one category's totals and its jobs with their last "
                                       "run", **leaf)
    show.add_argument("category", help="category name or id")
    show.set_defaults(handler=_show)
    for one in (sub.choices["list"], show):
        one.add_argument("--csv", action="store_true", help="print CSV")


def _figures(totals: Any, names: tuple[str, ...] = TOTALS_CSV) -> tuple[Any, ...]:
    """Totals (of a category, or of one job without `jobs`) as CSV cells, in `names` order."""
    return tuple(round(totals.rate_limit_wait_seconds, 3) if name == "rate_limit_wait_seconds"
                 else getattr(totals, name) for name in names)


def _moved(totals: Totals) -> str:
    return f"{totals.files_moved:,} ({size(totals.bytes_moved)})"


async def _list(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        found = await reports(state)
    if args.json:
        emit_json([one.as_dict() for one in found])
    elif args.csv:
        write_csv([(one.category.id, one.category.name, *_figures(one.totals))
                   for one in found], ("id", "name", *TOTALS_CSV))
    else:
        print(table([(one.category.id, one.category.name, one.totals.jobs,
                      one.totals.executions, _moved(one.totals), one.totals.flagged,
                      one.totals.failed, f"{one.totals.api_calls:,}",
                      duration(one.totals.rate_limit_wait_seconds)) for one in found],
                    ("ID", "CATEGORY", "JOBS", "RUNS", "FILES MOVED", "FLAGGED", "FAILED",
                     "API CALLS", "WAITED")))
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        try:
            category = await find_category(state, args.category)
        except CategoryError as exc:
            raise UsageError(str(exc)) from None
        found, jobs = await report(state, category)
    if args.json:
        emit_json(found.as_dict() | {"jobs": [job.as_dict() for job in jobs]})
    elif args.csv:
        write_csv([_job_csv(job) for job in jobs],
                  ("job_id", "name", "transfer_type", *TOTALS_CSV[1:], "last_status",
                   "last_started", "last_ended"))
    else:
        _print_report(found, jobs)
    return 0


def _job_csv(member: ReportJob) -> tuple[Any, ...]:
    last = member.last
    return (member.job.id, member.job.name, member.job.transfer_type,
            *_figures(member.totals, TOTALS_CSV[1:]), last and last.status,
            last and when(last.started_at), last and when(last.ended_at))


def _print_report(found: Report, jobs: list[ReportJob]) -> None:
    totals = found.totals
    runs = "; ".join(f"{runs:,} {label(status)}"  # labels may hold a comma
                     for status, runs in sorted(totals.by_status.items()))
    print(table([("category", found.category.name), ("id", found.category.id),
                 ("jobs", totals.jobs),
                 ("executions", f"{totals.executions:,}" + (f" ({runs})" if runs else "")),
                 ("files moved", _moved(totals)),
                 ("flagged now", totals.flagged), ("failing now", totals.failed),
                 ("API calls", f"{totals.api_calls:,}"),
                 ("rate-limit waits", f"{totals.rate_limit_waits:,}, "
                                      f"{duration(totals.rate_limit_wait_seconds)} waited")],
                ("FIELD", "VALUE")))
    if not jobs:
        print("\nNo jobs in this category")
        return
    print()
    print(table([(member.job.name, member.totals.executions, _moved(member.totals),
                  member.totals.flagged, label(member.last.status) if member.last
                  else label("never run"),
                  when(member.last.started_at)[:16] if member.last else "")
                 for member in jobs],
                ("JOB", "RUNS", "FILES MOVED", "FLAGGED", "LAST RUN", "STARTED")))
