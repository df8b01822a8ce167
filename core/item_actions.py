"""What a person decides about an item a run could not deliver (DryvIQ's flagged items: `PATCH
v1/transfers/items/{id}?retry=1|ignore=1`): retry it, or ignore it.

Retry: the item goes back to the next run with a fresh count of attempts (a run flags an item
after MAX_ATTEMPTS failures), its last error cleared; an ignored item is no longer ignored.
Ignore: the item is recorded as skipped, with a note saying who ignored it, and every later
run leaves it (and, for a folder, everything under it) as it is, until a person retries it.

Only items not delivered can be retried or ignored: a delivered item (success, processed) is
in step, and making it "unsent" would have the next run write it again. Both hold the job
(its run lock here and its lease: core.leases) while they write, so they never race a run
that is reading the same records: while the job runs, on any host, they raise JobBusy
(core.home) and change nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from core.home import Home
from core.leases import excluding
from core.state import ItemRecord, State

IGNORED = "ignore"  # the action of an item a person chose to ignore (runs leave it)
RETRIED = "retry"  # the action of an item a person sent back to the next run
UNDELIVERED = ("remediation", "retry", "skipped", "pending")  # statuses a person may act on


class NotActionable(ValueError):
    """The item is delivered: there is nothing to retry or ignore."""


def is_ignored(record: ItemRecord | None) -> bool:
    """Whether a person chose to ignore this item: a run leaves it as it is."""
    return record is not None and record.action == IGNORED


def _check(record: ItemRecord, what: str) -> None:
    if record.status not in UNDELIVERED:
        raise NotActionable(f"/{record.path} is {record.status}: only items not delivered "
                            f"({', '.join(UNDELIVERED)}) can be {what}")


def _retried(record: ItemRecord, by: str) -> ItemRecord:
    _check(record, "retried")
    # an action no planner reads as a base (not "create", not "update"): the next run
    # decides afresh from both sides, as for an item it meets for the first time
    return dataclasses.replace(record, action=RETRIED, status="retry", attempts=0,
                               last_error=None, note=f"retry asked by {by}",
                               updated_at=time.time())


def _ignored(record: ItemRecord, by: str) -> ItemRecord:
    _check(record, "ignored")
    why = record.last_error or record.note
    return dataclasses.replace(record, action=IGNORED, status="skipped", last_error=None,
                               note=f"ignored by {by}" + (f" (was: {why})" if why else ""),
                               updated_at=time.time())


async def retry_item(state: State, home: Home, job_id: str, path: str,
                     by: str) -> ItemRecord | None:
    """Send the item back to the next run, with a fresh count of attempts; None when the
    job has no such item. `by`: who asked."""
    return await _change(state, home, job_id, path, lambda record: _retried(record, by))


async def ignore_item(state: State, home: Home, job_id: str, path: str,
                      by: str) -> ItemRecord | None:
    """Have every later run skip the item, until a person retries it; None when the job has
    no such item. `by`: who asked."""
    return await _change(state, home, job_id, path, lambda record: _ignored(record, by))


async def _change(state: State, home: Home, job_id: str, path: str,
                  change: Callable[[ItemRecord], ItemRecord]) -> ItemRecord | None:
    async with excluding(state, home, job_id):  # JobBusy while a run holds it, anywhere
        record = await state.item(job_id, path)
        if record is None:
            return None
        changed = change(record)
        await state.save_items([changed])
    return changed
