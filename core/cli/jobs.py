"""`dryviq-tui jobs ...`: create, inspect and run jobs written in DryvIQ's job JSON."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from core.cli import UsageError, opened_state, stop_on_signals
from core.cli.output import (
    ProgressReporter,
    count,
    emit_json,
    reply,
    size,
    table,
    when,
    write_csv,
)
from core.connectors.base import ConnectorError
from core.engine.runner import RunResult, run_job
from core.engine.stats import ExecutionStats
from core.history_csv import COLUMNS as CSV_HISTORY
from core.history_csv import history_csv_row
from core.home import ConfigError, Home, JobBusy
from core.items_report import CSV_COLUMNS, csv_row
from core.job_store import (
    JobLookupError,
    create_job,
    duplicate_job,
    find_job,
    remove_job,
    update_job,
)
from core.jobs import JobError
from core.leases import holder_of, job_running, this_host
from core.paths import printable, printable_lines
from core.readout import BudgetReadout, budget_readouts, clock, tightest
from core.schedule import (
    JobStatus,
    current_status,
    local_zone,
    stored_schedule,
    upcoming_run,
)
from core.sides import (
    action_words,
    compact,
    outcomes,
    problems,
    recorded_stats,
    side_lines,
    two_sided,
)
from core.state import Execution, ItemRecord, JobRecord, State
from core.status import attempts, item_detail, label

BUDGET_POLL = 1.0  # seconds between readings of the API budget for the progress line

ITEM_STATUSES = ("pending", "success", "skipped", "processed", "remediation", "retry")


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    group = commands.add_parser("jobs", help="create, inspect and run jobs")
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a job from DryvIQ job JSON", **leaf)
    create.add_argument("--file", required=True, help="the job JSON file ('-' for stdin)")
    create.set_defaults(handler=_create)
    update = sub.add_parser("update", help="replace a job's JSON; its id and history stay (a "
                            "new source or destination is compared afresh)", **leaf)
    update.add_argument("job", help="job name or id")
    update.add_argument("--file", required=True, help="the job JSON file ('-' for stdin)")
    update.set_defaults(handler=_update)
    sub.add_parser("list", help="list jobs", **leaf).set_defaults(handler=_list)
    for action, handler, text in (("show", _show, "show a job and its JSON"),
                                  ("duplicate", _duplicate,
                                   'copy a job under a free name, "NAME (copy)"'),
                                  ("remove", _remove, "remove a job and its history")):
        one = sub.add_parser(action, help=text, **leaf)
        one.add_argument("job", help="job name or id")
        one.set_defaults(handler=handler)
    run = sub.add_parser("run", help="run a job now, continuing where it last stopped", **leaf)
    run.add_argument("job", help="job name or id")
    run.add_argument("--no-wait", action="store_true",
                     help="when the API rate limit is spent, stop as paused (exit 3) instead "
                          "of waiting for the reset")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="no progress line and no notes; only problems and the exit code")
    run.add_argument("--force", action="store_true",
                     help="run even when the delete guard would stop it (more of either side "
                          "to delete than the job's max_delete percent, or one side empty)")
    run.add_argument("--parallel", type=int, metavar="N",
                     help="files written at once (default: the job's "
                          "performance.parallel_writes, else 2)")
    run.set_defaults(handler=_run)
    for action, handler, text in (("history", _history, "a job's executions"),
                                  ("items", _items, "a job's items and their status")):
        one = sub.add_parser(action, help=text, **leaf)
        one.add_argument("job", help="job name or id")
        one.add_argument("--csv", action="store_true", help="print CSV")
        one.set_defaults(handler=handler)
        if action == "items":
            one.add_argument("--status", choices=ITEM_STATUSES, metavar="STATUS",
                             help="only items with this status: " + ", ".join(
                                 code if code == label(code) else f"{code} ({label(code)})"
                                 for code in ITEM_STATUSES))
            one.add_argument("--execution", type=int, metavar="ID",
                             help="only items touched by this execution")


async def _job(state: State, name: str) -> JobRecord:
    try:
        return await find_job(state, name)
    except JobLookupError as exc:
        raise UsageError(str(exc)) from None


def _job_dict(job: JobRecord, last: Execution | None = None,
              status: JobStatus | None = None) -> dict[str, Any]:
    """The job as `--json` gives it; `status` is its status now (else as stored: idle or
    complete)."""
    status = status or JobStatus(job.status, job.status_reason)
    return {
        "id": job.id, "name": job.name, "kind": job.kind, "transfer_type": job.transfer_type,
        "status": status.code, "status_reason": status.reason,
        "source": {"connection": job.source_connection_id, "path": "/" + job.source_path},
        "destination": {"connection": job.destination_connection_id,
                        "path": "/" + job.destination_path},
        "simulation_mode": job.simulation_mode, "schedule_mode": job.schedule_mode,
        "category": job.category, "parallel_writes": job.parallel_writes,
        "created_at": job.created_at,
        "last_execution": _execution_dict(last) if last else None,
    }


def _execution_dict(execution: Execution) -> dict[str, Any]:
    return {"id": execution.id, "status": execution.status, "phase": execution.phase,
            "started_at": execution.started_at, "ended_at": execution.ended_at,
            "error": execution.error, "resume_at": execution.resume_at,
            "agent": execution.agent, "scheduled": execution.scheduled,
            "stats": execution.stats}


def _job_file(args: argparse.Namespace) -> str:
    """The text of --file (or stdin for '-')."""
    try:
        return sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"--file {args.file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--file {args.file}: not UTF-8 text") from None


async def _create(args: argparse.Namespace) -> int:
    text = _job_file(args)
    async with opened_state(args) as (_, state):
        try:
            job, warnings = await create_job(state, text)
        except JobError as exc:
            raise UsageError(f"{args.file}: the job was not created", details=exc.errors,
                             path=args.file) from None
    return _saved(args, job, warnings, "Created")


async def _list(args: argparse.Namespace) -> int:
    now = dt.datetime.now(local_zone())
    async with opened_state(args) as (home, state):
        jobs = await state.find_jobs()
        last = {j.id: next(iter(await state.executions(j.id, limit=1)), None) for j in jobs}
        statuses = {j.id: await current_status(state, home, j) for j in jobs}
        upcoming = {j.id: await upcoming_run(state, j, now) for j in jobs}
        running = {j.id for j in jobs if await job_running(state, home, j.id)}
        holders = {job_id: await holder_of(state, job_id) for job_id in running}
    if args.json:
        emit_json([_job_dict(j, last[j.id], statuses[j.id])
                   | {"running": j.id in running,
                      "running_on": holders[j.id].host if holders.get(j.id) else None,
                      "next_run": _moment(upcoming[j.id])} for j in jobs])
        return 0
    if not jobs:
        print("No jobs yet: dryviq-tui jobs create --file job.json")
        return 0

    def last_run(job: JobRecord) -> str:
        execution, holder = last[job.id], holders.get(job.id)
        if holder is not None and holder.host != this_host():
            return f"running on {holder.host}"
        return label(execution.status) if execution else label("never run")

    print(table([(j.name, j.transfer_type + (" (simulation)" if j.simulation_mode else ""),
                  statuses[j.id].code, last_run(j),
                  when(last[j.id].started_at) if last[j.id] else "", j.id)
                 for j in jobs], ("NAME", "TYPE", "STATUS", "LAST RUN", "STARTED", "ID")))
    return 0


def _moment(moment: dt.datetime | None) -> str | None:
    """A moment for --json: ISO 8601 with the zone's offset."""
    return None if moment is None else moment.isoformat(timespec="seconds")


def _next_run_words(job: JobRecord, moment: dt.datetime | None, now: dt.datetime) -> str:
    if moment is not None:
        return "now" if moment <= now else f"{moment:%Y-%m-%d %H:%M %Z}"
    if job.status == "complete":
        return "none: the job is complete"
    if job.schedule_mode != "auto":
        return "when run by hand"
    if stored_schedule(job) is None:
        return "none: the job's JSON no longer passes the checks"
    return "none: the schedule has ended"


async def _show(args: argparse.Namespace) -> int:
    moment = dt.datetime.now(local_zone())
    async with opened_state(args) as (home, state):
        job = await _job(state, args.job)
        last = next(iter(await state.executions(job.id, limit=1)), None)
        names = {c.id: c.name for c in await state.list_connections()}
        budgets = await _job_budgets(state, home, job)
        status = await current_status(state, home, job)
        upcoming = await upcoming_run(state, job, moment)
    now = time.time()
    if args.json:
        emit_json(_job_dict(job, last, status) | {"next_run": _moment(upcoming)} | {
            "definition": json.loads(job.definition)} | {
            "api_budgets": [{"client": b.client, "limit": b.limit, "remaining": b.left(now),
                             "reset_at": b.reset_at or None, "stated": b.stated}
                            for b in budgets]})
        return 0
    rows = [("name", job.name), ("id", job.id), ("type", job.transfer_type),
            ("source", f"{names.get(job.source_connection_id)}:/{job.source_path}"),
            ("destination",
             f"{names.get(job.destination_connection_id)}:/{job.destination_path}"),
            ("simulation", "yes" if job.simulation_mode else "no"),
            ("status", printable(status.words)), ("schedule", job.schedule_mode),
            ("next run", _next_run_words(job, upcoming, moment)), ("category", job.category),
            ("parallel writes", job.parallel_writes), ("created", when(job.created_at)),
            ("last run", f"{label(last.status)} at {when(last.started_at)}" if last
             else label("never run")),
            *(("API budget", b.line(now)) for b in budgets)]
    print(table(rows, ("FIELD", "VALUE")))
    print("\nJob JSON as given:\n" + printable_lines(job.definition.strip()))
    return 0


async def _job_budgets(state: State, home: Home, job: JobRecord) -> list[BudgetReadout]:
    """The API budgets the job's Procore connections draw on, as the pacers recorded them
    (the monitor and `jobs run` show the same)."""
    rows = await state.rate_budgets()
    if not rows:
        return []
    from core.connectors.procore import procore_app  # the HTTP stack: only with a budget

    keys = set()
    for connection_id in (job.source_connection_id, job.destination_connection_id):
        connection = await state.find_connection(connection_id)
        if connection is None or connection.platform != "procore":
            continue
        try:
            secrets = await state.connection_secrets(connection.id)
            keys.add(procore_app(connection.config, secrets, home.config()).budget_key)
        except (ConnectorError, ConfigError, KeyError):
            continue  # no credentials to tell the client by: no budget to show
    return [BudgetReadout.from_row(key, rows[key]) for key in sorted(keys) if key in rows]


async def _update(args: argparse.Namespace) -> int:
    text = _job_file(args)
    async with opened_state(args) as (home, state):
        old = await _job(state, args.job)
        try:
            job, warnings = await update_job(home, state, old, text)
        except JobError as exc:
            raise UsageError(f"{args.file}: the job was not changed", details=exc.errors,
                             path=args.file) from None
        except JobBusy as exc:
            raise UsageError(_busy(old, exc, "stop it first")) from None
    return _saved(args, job, warnings, "Updated")


def _saved(args: argparse.Namespace, job: JobRecord, warnings: list[str], done: str) -> int:
    """Say what `jobs create` or `jobs update` stored, with the warnings it gave."""
    for warning in warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    reply(args, _job_dict(job) | {"warnings": warnings},
          f"{done} job {printable(job.name)} ({job.id})")
    return 0


async def _duplicate(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        original = await _job(state, args.job)
        try:
            job, _ = await duplicate_job(state, original)
        except JobError as exc:
            raise UsageError(f"job {printable(original.name)!r} was not copied",
                             details=exc.errors) from None
    reply(args, _job_dict(job), f"Created job {printable(job.name)} ({job.id})")
    return 0


async def _remove(args: argparse.Namespace) -> int:
    async with opened_state(args) as (home, state):
        job = await _job(state, args.job)
        try:
            await remove_job(home, state, job)
        except JobBusy as exc:
            raise UsageError(_busy(job, exc, "stop it first")) from None
    reply(args, {"id": job.id, "name": job.name, "removed": True},
          f"Removed job {printable(job.name)}")
    return 0


async def _run(args: argparse.Namespace) -> int:
    if args.parallel is not None and not 1 <= args.parallel <= 64:
        raise UsageError("--parallel: expected a number from 1 to 64")
    reporter = ProgressReporter(quiet=args.quiet)
    stop = asyncio.Event()
    stop_on_signals(stop, lambda: reporter.event(
        "info", "stopping: finishing the files in flight (again to stop now)"))
    async with opened_state(args) as (home, state):
        job = await _job(state, args.job)
        if job.status == "complete" and not args.quiet:
            print(f"job {printable(job.name)!r} is complete "
                  f"({printable(job.status_reason or 'stopped')}); running it once by hand: "
                  f"the schedule leaves it alone until `dryviq-tui jobs update` reopens it",
                  file=sys.stderr)
        budgets = asyncio.create_task(_follow_budget(state, reporter))
        try:
            result = await run_job(state, home, job, parallel=args.parallel, stop=stop,
                                   on_progress=reporter, on_event=reporter.event,
                                   wait_for_budget=not args.no_wait, force=args.force)
        except JobBusy as exc:
            raise UsageError(_busy(job, exc, "a job runs in one process at a time",
                                   unknown=" in another process")) from None
        except asyncio.CancelledError:
            reporter.end_line()
            print(f"{label('interrupted')}: the files in flight were rolled back; "
                  f"{_again(args, job)} continues where it stopped", file=sys.stderr)
            return 3
        finally:
            budgets.cancel()
        newest = next(iter(await state.executions(job.id, limit=1)), None)
    reporter.end_line()
    summary = run_summary(result, _again(args, job), newest.resume_at if newest else None,
                          transfer_type=job.transfer_type, forced=_again(args, job, force=True))
    if args.json:
        emit_json(result.as_dict())
        if not args.quiet:
            print(summary, file=sys.stderr)
    elif not args.quiet or result.exit_code:
        print(summary)
    return result.exit_code


def _busy(job: JobRecord, exc: JobBusy, then: str, *, unknown: str = "") -> str:
    """A refusal naming the process that runs the job (host, pid, what it is), when known."""
    where = f" {printable(exc.holder.where)}" if exc.holder is not None else unknown
    return f"job {printable(job.name)!r} is running{where}; {then}"


async def _follow_budget(state: State, reporter: ProgressReporter) -> None:
    """Keep the progress line's API budget fresh from what the pacers record."""
    while True:
        reporter.budget = tightest(budget_readouts(await state.rate_budgets()), time.time())
        await asyncio.sleep(BUDGET_POLL)


def _again(args: argparse.Namespace, job: JobRecord, *, force: bool = False) -> str:
    """The command that continues the job (past the delete guard with `force`), as the user
    would type it."""
    home = getattr(args, "home", None)
    where = f" --home {shlex.quote(str(home))}" if home else ""
    return f"`dryviq-tui{where} jobs run{' --force' if force else ''} {shlex.quote(job.name)}`"


def run_summary(result: RunResult, again: str, resume_at: float | None, *,
                transfer_type: str = "copy", forced: str | None = None) -> str:
    """What a run did, first its status's label: a planned stop (the rate limit with
    --no-wait, Ctrl-C) reads as a status, never as an error. A run the delete guard stopped
    says why and the command (`forced`) that proceeds; a two-way run says each side's
    changes."""
    stats = result.stats
    if result.status == "guarded":
        reason = stats.delete_guard or result.error or "too much to delete"
        return (f"{label('guarded')}: {printable(reason)}\nnothing was changed; if the "
                f"deletes are meant, {forced or again + ' --force'} proceeds")
    return _done(result, again, resume_at) + _sides(stats, transfer_type)


def _sides(stats: ExecutionStats, transfer_type: str) -> str:
    """Each side's changes, conflicts, moves and versions, on lines of their own: for a
    two-way run, or one that deleted, moved, kept conflicts or versions."""
    more = outcomes(stats, transfer_type)
    if not (two_sided(stats, transfer_type) or stats.deleted_destination or more):
        return ""
    return "".join(f"\n{line}" for line in [*side_lines(stats, transfer_type), more] if line)


def _done(result: RunResult, again: str, resume_at: float | None) -> str:
    stats = result.stats
    done = (f"{count(stats.transferred, 'file')} transferred ({size(stats.bytes)}), "
            f"{count(stats.folders_created, 'folder')} created, {stats.skipped:,} skipped, "
            f"{stats.flagged:,} flagged, {stats.failed:,} failed")
    if stats.api_calls:
        done += (f"; {count(stats.api_calls, 'API call')}, "
                 f"{count(stats.rate_limit_waits, 'rate-limit wait')}")
    status = label(result.status)
    if result.status == "no_changes":
        return (f"{status}: {count(stats.files, 'file')} and {count(stats.folders, 'folder')} "
                "are in step")
    if result.status == "paused":
        after = f" after {clock(resume_at)}" if resume_at else ""
        return f"{status}, resumes with {again}{after}\nso far: {done}"
    if result.status == "interrupted":
        return f"{status}: {again} continues where it stopped\nso far: {done}"
    if result.error:
        return f"{status}: {done}\nerror: {printable(result.error)}"
    return f"{status}: {done}"


async def _history(args: argparse.Namespace) -> int:
    async with opened_state(args) as (home, state):
        job = await _job(state, args.job)
        if not await job_running(state, home, job.id):
            await state.mark_interrupted(job.id)
        executions = await state.executions(job.id)
    if args.json:
        emit_json([_execution_dict(e) for e in executions])
        return 0
    rows = [history_csv_row(e) if args.csv else _history_row(e) for e in executions]
    headers = CSV_HISTORY if args.csv else HISTORY_COLUMNS
    _print_rows(args, rows, headers, empty="No executions yet")
    return 0


# People read labels and each run's changes per side in one cell ("↑+3 ~1 ↓~2 -1 ⚡1"), in 80
# columns (the duration is left to CSV and JSON); CSV's rows: core/history_csv.py.
HISTORY_COLUMNS = ("ID", "STARTED", "STATUS", "CHANGES", "PROBLEMS", "BYTES")


def _history_row(execution: Execution) -> tuple[Any, ...]:
    stats = recorded_stats(execution.stats)
    return (execution.id, when(execution.started_at)[:16], label(execution.status),
            compact(stats), problems(stats), size(stats.bytes))


async def _items(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        job = await _job(state, args.job)
        items = await state.items(job.id, status=args.status, execution_id=args.execution)
    if args.json:
        emit_json([_item_dict(i) for i in items])
        return 0
    if args.csv:
        write_csv([csv_row(job, i) for i in items], CSV_COLUMNS)
        return 0
    # people read labels and sizes, and the versions carried of a file in its action
    rows = [(label(i.status), action_words(i.action, i.source_versions),
             "/" + i.path + ("/" if i.is_dir else ""), "" if i.is_dir else size(i.size),
             attempts(i), item_detail(i)) for i in items]
    _print_rows(args, rows, ("STATUS", "ACTION", "PATH", "SIZE", "ATTEMPTS", "DETAIL"),
                empty="No items recorded")
    return 0


def _item_dict(item: ItemRecord) -> dict[str, Any]:
    return {"path": "/" + item.path, "is_dir": item.is_dir, "size": item.size,
            "mtime": item.mtime, "action": item.action, "status": item.status,
            "attempts": item.attempts, "last_error": item.last_error, "note": item.note,
            "detail": item_detail(item),
            "source_id": item.source_id, "destination_id": item.destination_id,
            "destination_path": None if item.destination_path is None
            else "/" + item.destination_path,
            "execution_id": item.execution_id, "updated_at": item.updated_at,
            "source_versions": item.source_versions}


def _print_rows(args: argparse.Namespace, rows: list[tuple[Any, ...]],
                headers: tuple[str, ...], empty: str) -> None:
    if args.csv:
        write_csv(rows, [h.lower() for h in headers])
    elif rows:
        print(table(rows, headers))
    else:
        print(empty)
