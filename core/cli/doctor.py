"""`dryviq-tui doctor [--repair]`: check the state file with SQLite's integrity checks, and with
--repair back it up and rebuild what can be read (see core/state_repair.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from core.cli import UsageError, open_home
from core.cli.output import count, emit_json
from core.home import Home
from core.state import MIGRATIONS, State, exclusive_state_lock
from core.state_repair import CheckReport, RepairReport, check, repair

log = logging.getLogger(__name__)

# What each table's loss means to the user, for the repair's report.
LOSS_MEANS = {
    "connections": "connections to add again",
    "secrets": "connections to sign in again",
    "jobs": "jobs to create again",
    "executions": "history of runs",
    "items": "progress records: the next run checks those files again",
    "audit_events": "audit events",
    "rate_budgets": "the API budget's last readings (relearned at the next call)",
    "segmented_uploads": "uploads under way: those files are sent again",
    "uploaded_segments": "uploads under way: those files are sent again",
    "analyses": "stored analyses (run analyze again)",
    "agents": "agent heartbeats (rewritten by running agents)",
    "categories": "categories: jobs keep their category names; ids are given anew",
}


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    doctor = commands.add_parser(
        "doctor", help="check the state file with SQLite's integrity checks (exit 1 when "
                       "damaged); --repair backs it up and rebuilds what can be read", **leaf)
    doctor.add_argument("--repair", action="store_true",
                        help="when damaged: copy it to state.db.corrupt-DATE, rebuild it from "
                             "what reads, and say what was lost (stop the app and running "
                             "jobs first)")
    doctor.set_defaults(handler=_doctor)


async def _doctor(args: argparse.Namespace) -> int:
    home = open_home(args)
    if home.state_url() is not None:
        return await _doctor_shared(args, home)
    path = home.state_path
    found = await asyncio.to_thread(check, path)
    log.info("doctor: %s is %s", path, "sound" if found.ok else f"damaged: {found.problems}")
    if found.ok or not args.repair:
        _say_checked(args, found)
        return 0 if found.ok else 1
    if found.read_only:
        raise UsageError(f"{path} is read-only; make it writable (chmod u+w {path}) to repair "
                         "it", path=str(path))
    _refuse_a_newer_schema(found)
    # held from the check to the migrations of the new file: nothing writes to the file being
    # replaced, and no process opens it until the new one is in place
    with exclusive_state_lock(path):
        found = await asyncio.to_thread(check, path)  # what is replaced is what was checked
        if found.ok:
            _say_checked(args, found)
            return 0
        _refuse_a_newer_schema(found)
        _refuse_running_jobs(home, path)
        repaired = await asyncio.to_thread(repair, path)
        # the migrations bring the new file up to date (the lock this process holds is its)
        state = await State.open(path, locked_by_caller=True)
        await state.close()
    log.warning("doctor: repaired %s (%s); backups %s", path, repaired.method,
                [str(b) for b in repaired.backups])
    _say_repaired(args, found, repaired)
    return 0


async def _doctor_shared(args: argparse.Namespace, home: Home) -> int:
    """A state shared in PostgreSQL has no state file to check: PostgreSQL checks its own
    pages. Connecting (and upgrading its schema, as any command would) is the check."""
    state = await State.open_home(home)
    try:
        (version,), = await state.db.execute_fetchall("SELECT version FROM schema_version")
    finally:
        await state.close()
    log.info("doctor: the state is shared in the %s (schema %s)", state.shared, version)
    if args.json:
        emit_json({"shared": state.shared, "ok": True, "schema": version, "problems": [],
                   "repaired": False})
        return 0
    print(f"The state is shared in the {state.shared} (schema {version}): it connects and its "
          "schema is current. PostgreSQL checks its own pages, so there is no state file to "
          "check" + (" or repair here." if args.repair else "."))
    return 0


def _refuse_running_jobs(home: Home, path: Path) -> None:
    """A job's run lock with no hold on the state's lock: a run by a dryviq-tui from before
    the state's lock, still going."""
    running = [lock.stem.removeprefix("job-") for lock in (home.root / "locks").glob("job-*")
               if home.job_locked(lock.stem.removeprefix("job-"))]
    if running:
        verb, them = ("is", "it") if len(running) == 1 else ("are", "them")
        raise UsageError(f"{count(len(running), 'job')} {verb} running on this home; stop {them} "
                         "(and the app) before repairing its state file", path=str(path))


def _refuse_a_newer_schema(found: CheckReport) -> None:
    """A newer dryviq-tui's tables and columns would not survive this version's rebuild."""
    if found.schema is not None and found.schema > len(MIGRATIONS):
        raise UsageError(
            f"{found.path} was written by a newer dryviq-tui (schema {found.schema}, this "
            f"version knows up to {len(MIGRATIONS)}); repair it with that version's "
            "`dryviq-tui doctor --repair`. Nothing was changed", path=str(found.path))


def _say_checked(args: argparse.Namespace, found: CheckReport) -> None:
    if args.json:
        emit_json(found.as_dict())
        return
    if found.ok:
        print(f"{found.path}: sound (SQLite's quick and integrity checks found nothing; "
              f"schema {found.schema}{', read-only' if found.read_only else ''})")
        return
    shown = found.problems[:10]
    print(f"{found.path}: damaged; SQLite's checks report:")
    for problem in shown:
        print(f"  {problem}")
    if len(found.problems) > len(shown):
        print(f"  … and {len(found.problems) - len(shown):,} more")
    print("Run `dryviq-tui doctor --repair` to back it up and rebuild what can be read "
          "(stop the app and running jobs first).")


def _say_repaired(args: argparse.Namespace, found: CheckReport, repaired: RepairReport) -> None:
    if args.json:
        emit_json({"check": found.as_dict(), "repair": repaired.as_dict()})
        return
    print(f"{repaired.path}: was damaged; backed up as "
          f"{', '.join(str(b) for b in repaired.backups)}")
    if repaired.method == "vacuum":
        print("Rebuilt by SQLite's VACUUM INTO (the damage was in what it rebuilds). "
              "Nothing was lost.")
        return
    if repaired.method == "empty":
        print(f"Nothing could be read ({repaired.unreadable}); it is now an empty state file: "
              "add your connections and create your jobs again.")
        return
    print("Rebuilt table by table from what could be read:")
    for table in repaired.tables:
        lost = table.lost or table.maybe_more_lost
        print(f"  {table.describe()}" + (f" (lost: {LOSS_MEANS[table.table]})"
                                         if lost and table.table in LOSS_MEANS else ""))
    if repaired.lossless:
        print("Nothing was lost.")
