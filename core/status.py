"""What people read for a status code, and what an item's detail says.

Scripts get the stable codes (`--json`, `--csv`, `--status`); people get one label per code,
the same in every command and screen, so "interrupted" never reads as three different phrases.
"""

from __future__ import annotations

from core.state import ItemRecord

# executions (`jobs history`, `jobs list`, the monitor), and what the app shows for a job
EXECUTION_LABELS = {
    "running": "running",
    "stopping": "stopping",
    "completed": "completed",
    "no_changes": "no changes",
    "warn": "completed, flagged",
    "failed": "failed",
    "paused": "paused: rate limit",
    "interrupted": "interrupted, resumable",
    "guarded": "stopped by the delete guard",
    "never run": "never run",
}
# executions that stopped part-way and continue where they stopped on the next run
RESUMABLE = frozenset({"paused", "interrupted"})
# items (`jobs items`, the monitor's flagged and failed items)
ITEM_LABELS = {
    "pending": "pending",
    "success": "done",
    "processed": "done, noted",
    "skipped": "skipped",
    "remediation": "flagged",
    "retry": "failed, will retry",
}
LABELS = EXECUTION_LABELS | ITEM_LABELS


def label(code: str) -> str:
    """The one label people see for a status code (an unknown code is shown as it is)."""
    return LABELS.get(code, code.replace("_", " "))


def attempts(item: ItemRecord) -> str:
    """Tries an item took: blank until one failed (a success at the first go is no news)."""
    return str(item.attempts) if item.attempts else ""


def destination_name(item: ItemRecord) -> str | None:
    """The item's name at the destination when it differs from its source name."""
    if item.destination_path is None:
        return None
    new = item.destination_path.rpartition("/")[2]
    return None if new == item.path.rpartition("/")[2] else new


def item_detail(item: ItemRecord) -> str:
    """Why an item is where it is: its last error, else its note, naming both names of a
    renamed item ("renamed from 'bad:name?.pdf' to 'bad_name_.pdf': ...")."""
    if item.last_error:
        return item.last_error
    text = item.note or ""
    new = destination_name(item)
    if new is None:
        return text
    said = f"renamed from {item.path.rpartition('/')[2]!r}"
    if text.startswith(said):
        return f"{said} to {new!r}{text[len(said):]}"
    return f"named {new!r} at the destination" + (f"; {text}" if text else "")
