"""One line per transfer type and policy value saying what it does, in a user's words.

The job builder shows the line of the value chosen, beside its field; README and the CLI can
print the same lines (`explained()`), so a policy is described once, here, and nowhere else.
Keys are the job JSON's keys under `transfer` (dotted below it: `versioning.select`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.cli.output import rate

UPLOAD = "performance.upload.bytes_per_second"
DOWNLOAD = "performance.download.bytes_per_second"
TRASH_PLACES = "Procore's Recycle Bin, elsewhere .dryviq-trash/DATE/ at its root"

_LINES: dict[str, dict[Any, str]] = {
    "transfer_type": {
        "copy": "one way: new and changed source files go to the destination; the source is "
                "never changed",
        "sync": "two way: changes on either side go to the other; deletes follow delete "
                "propagation",
        "move": "one way: each file is copied, checked at the destination, then removed from "
                "the source",
        "migrate": "one way, the source always wins; later runs look for no changes or deletes",
        "publish": "one-way mirror: destination files the source lacks are deleted, newer ones "
                   "reverted",
        "taxonomy": "folders only: the source's folder tree is made at the destination, no files",
    },
    "conflict_resolution": {
        "copy": "changed on both sides: keep both; the older becomes a dated conflict copy "
                "beside the newer",
        "latest": "changed on both sides: the newer file wins",
        "source": "changed on both sides: the source's file wins",
        "destination": "changed on both sides: the destination's file wins",
        "failure": "changed on both sides: neither is touched; the file is flagged for you",
    },
    "delete_propagation": {
        "mirror": "a delete on either side deletes the file on the other (into the trash)",
        "ignore_source": "deletes on the source are not passed on: the destination keeps its "
                         "copy",
        "ignore_destination": "deletes on the destination are not passed on: the source keeps "
                              "its copy",
        "ignore_both": "no delete is passed on, in either direction",
    },
    "failure_policy": {
        "continue": "a failed file is logged and the run goes on; the next run retries it",
        "halt": "the first failed file stops the run",
    },
    "duplicate_names": {
        "rename": 'two names that collide at the destination: the second gets " (1)"',
        "warn": "two names that collide at the destination: the second is flagged, not written",
    },
    "large_item": {
        "fail": "a file larger than the destination takes fails and is flagged",
        "skip": "a file larger than the destination takes is skipped, with a note",
    },
    "empty_containers": {
        "create": "empty folders are made at the destination too",
        "skip": "folders left empty (or emptied by filters) are not made",
    },
    "simulation_mode": {
        True: "plan only: nothing is written or deleted on either side",
        False: "the run writes and deletes for real",
    },
    "segment_transform": {
        True: "names the destination refuses are renamed to fit",
        False: "names the destination refuses are flagged, not renamed",
    },
    "encode_invalid_characters": {
        True: "a refused character becomes its UTF-8 bytes in hex (Congrats!.txt → "
              "Congrats21.txt)",
        False: "a refused character becomes _ (Congrats!.txt → Congrats_.txt)",
    },
    "segment_truncate": {
        True: "a path too long for the destination loses characters at the end of its name "
              "(extension kept)",
        False: "a path too long for the destination is flagged",
    },
    "trash": {
        True: f"deletes go to a trash: {TRASH_PLACES}",
        False: "deletes are permanent: no trash, no Recycle Bin",
    },
    "versioning.select": {
        "latest": "only each file's latest version is copied",
        "all": "older versions are copied too, in order (on Procore as its versions, elsewhere "
               "in .dryviq-versions/)",
    },
}
# what a job that leaves the key out gets (delete_propagation: see `default`)
DEFAULTS: dict[str, Any] = {
    "transfer_type": "sync", "conflict_resolution": "copy", "failure_policy": "continue",
    "duplicate_names": "rename", "large_item": "fail", "empty_containers": "create",
    "simulation_mode": False, "segment_transform": True, "encode_invalid_characters": False,
    "segment_truncate": False, "trash": True, "versioning.select": "latest", "max_delete": 50,
    UPLOAD: None, DOWNLOAD: None,
}
NUMBERS = ("max_delete", UPLOAD, DOWNLOAD)
KEYS = (*_LINES, *NUMBERS)


def default(key: str, transfer_type: str | None = None) -> Any:
    """The value a job that leaves `key` out gets; delete propagation depends on the type
    (a sync mirrors deletes, the other types ignore the source's)."""
    if key == "delete_propagation":
        return "mirror" if (transfer_type or DEFAULTS["transfer_type"]) == "sync" \
            else "ignore_source"
    return DEFAULTS.get(key)


def values(key: str) -> tuple[Any, ...]:
    """The values `key` takes that have a line of their own (numbers have none)."""
    return tuple(_LINES.get(key, {}))


def explain(key: str, value: Any = None, *, transfer_type: str | None = None) -> str:
    """What `value` of `key` does, in one line; None explains the default, saying so. A value
    the key does not take gets an empty line (core's validation says what is wrong)."""
    if key not in KEYS:
        return ""
    if value is None or value == "":
        chosen = default(key, transfer_type)
        line = explain(key, chosen, transfer_type=transfer_type) if chosen is not None \
            else _number_line(key, None)
        shown = f" ({_shown(chosen)})" if chosen is not None else ""
        return f"not set{shown}: {line}" if line else ""
    if isinstance(value, list) and len(value) == 1:  # delete_propagation as an array
        value = value[0]
    if key in NUMBERS:
        return _number_line(key, value)
    try:
        return _LINES.get(key, {}).get(value, "")
    except TypeError:  # an unhashable value from a hand-written file
        return ""


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _number_line(key: str, value: Any) -> str:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        return ""
    if key == "max_delete":
        if value is None or not 0 <= value <= 100:
            return ""
        if value == 0:
            return "a run that would delete anything stops first and changes nothing"
        if value == 100:
            return "no share of deletes stops a run; a side found empty still does"
        return (f"a run that would delete more than {value}% of either side, or finds a side "
                "empty, stops first and changes nothing")
    direction = "uploads" if key == UPLOAD else "downloads"
    if value is None:
        return f"{direction} at full speed"
    return f"{direction} at most {rate(value)}" if value >= 1 else ""


def throttle(upload: int | None, download: int | None) -> str | None:
    """"throttled to 1.0 MiB/s up, 512.0 KiB/s down", or None for a job without a limit."""
    parts = [f"{rate(limit)} {way}" for limit, way in ((upload, "up"), (download, "down"))
             if limit]
    return f"throttled to {', '.join(parts)}" if parts else None


def explained() -> Iterator[tuple[str, str, str]]:
    """Every (key, value, line) with a line of its own, for README and help text."""
    for key in KEYS:
        if key in NUMBERS:
            sample = {"max_delete": 50}.get(key, 1_048_576)
            yield key, str(sample), explain(key, sample)
        else:
            for value in values(key):
                yield key, _shown(value), explain(key, value)
