"""A job's items in DryvIQ's item shape (Docs "Items Report"; SDK `TransferItem`), for
`jobs items --csv` now and the REST API's `transfers/items` later.

An item is keyed by its path within the job, so its `id` is that path and `parent_id` its
folder's. What a run does not record is left empty: hashes, etags, creation times and the
audit category (the platforms' hashes are compared during a run, not kept).
"""

from __future__ import annotations

import datetime
import posixpath
import time
from collections.abc import Callable
from typing import Any

from core.state import ItemRecord, JobRecord
from core.status import item_detail

SIDE_FIELDS = ("id", "name", "path", "bytes", "version", "hash", "etag", "created_on",
               "modified_on")
ITEM_FIELDS = ("id", "parent_id", *(f"source_{name}" for name in SIDE_FIELDS),
               *(f"destination_{name}" for name in SIDE_FIELDS),
               "audit_category", "retried", "status", "processing", "source_to_destination",
               "transferred_on")
# actions that leave nothing written by this item
_NOT_WRITTEN = ("none", "skip", "flag", "delete", "forget", "omit")
_DONE = ("success", "processed")
# the years 1000 to 9999, where strftime's %Y writes the four digits ISO 8601 wants
_FOUR_DIGIT_YEARS = (-30_610_224_000, 253_402_300_800)


def iso_time(epoch: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC ("2026-12-06T17:45:33Z"), as DryvIQ writes times
    (three per item of a page: strftime takes half the time of datetime's isoformat)."""
    if epoch is None:
        return None
    if _FOUR_DIGIT_YEARS[0] <= epoch < _FOUR_DIGIT_YEARS[1]:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def epoch_time(epoch: float | None) -> int | None:
    """Epoch seconds, whole, as the REST API gives times (the SDK's TransferItem: numbers)."""
    return None if epoch is None else int(epoch)


def dryviq_item(job: JobRecord, item: ItemRecord, *,
                time_of: Callable[[float | None], object] = iso_time) -> dict[str, Any]:
    """One item as DryvIQ's TransferItem: `source` and `destination` objects, its status,
    what processing it needed (renames, notes, the last error) and when it was transferred;
    times as `time_of` writes them (ISO 8601 for reports and CSV, epoch seconds for the API)."""
    base = item.action.removesuffix("_source")
    done = item.status in _DONE
    at_destination = (item.destination_path is not None and done
                      and not base.startswith("delete"))
    destination_path = item.destination_path
    return {
        "id": "/" + item.path, "parent_id": "/" + item.parent,
        "source": {
            "id": item.source_id, "name": posixpath.basename(item.path),
            "path": "/" + posixpath.join(job.source_path, item.path),
            "bytes": None if item.is_dir else item.size, "version": item.source_version,
            "hash": None, "etag": None, "created_on": None,
            "modified_on": time_of(item.mtime)},
        "destination": {
            "id": item.destination_id,
            "name": None if destination_path is None else posixpath.basename(destination_path),
            "path": None if destination_path is None else "/" + destination_path,
            "bytes": item.size if at_destination and not item.is_dir else None,
            "version": item.destination_version, "hash": None, "etag": None,
            "created_on": None, "modified_on": time_of(item.destination_mtime)},
        "audit_category": None,
        "retried": item.attempts,
        "status": item.status,
        "processing": [detail] if (detail := item_detail(item)) else [],
        "source_to_destination": not item.action.endswith("_source"),
        "transferred_on": time_of(item.updated_at) if done and base not in _NOT_WRITTEN
        else None,
    }


def flat_item(job: JobRecord, item: ItemRecord) -> dict[str, Any]:
    """dryviq_item with `source` and `destination` flattened (`source_path`, ...) and the
    processing notes joined: one CSV row, in ITEM_FIELDS order."""
    nested = dryviq_item(job, item)
    row = {key: value for key, value in nested.items() if key not in ("source", "destination")}
    for side in ("source", "destination"):
        row.update({f"{side}_{name}": value for name, value in nested[side].items()})
    row["processing"] = "; ".join(nested["processing"])
    row["source_to_destination"] = "true" if nested["source_to_destination"] else "false"
    return {name: row[name] for name in ITEM_FIELDS}


# `jobs items --csv` and `GET v1/transfers/items.csv`: DryvIQ's item columns, then what DryvIQ
# has no column for, as codes and plain numbers
CSV_COLUMNS = (*ITEM_FIELDS, "action", "type", "versions", "execution_id")


def csv_row(job: JobRecord, item: ItemRecord) -> tuple[Any, ...]:
    """One item as a CSV row in CSV_COLUMNS order."""
    return (*flat_item(job, item).values(), item.action,
            "folder" if item.is_dir else "file", item.source_versions, item.execution_id)
