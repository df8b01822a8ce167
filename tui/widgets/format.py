"""How the screens write statuses, times, sizes and rates (sizes via humanize, as the CLI)."""

from __future__ import annotations

import time

from rich.text import Text

from core.cli.output import duration, size, when
from tui.widgets.theme import STATUS_STYLES

__all__ = ["clock", "duration", "rate", "size", "status_text", "when"]

STATUS_LABELS = {
    "no_changes": "no changes",
    "warn": "done, flagged",
    "paused": "paused (rate limit)",
    "remediation": "flagged",
    "retry": "failed, will retry",
}


def status_text(status: str, where: str = "idle") -> Text:
    """A status word for a table cell; a run in another process says "elsewhere"."""
    label = STATUS_LABELS.get(status, status)
    if where == "elsewhere":
        label += " elsewhere"
    return Text(label, style=STATUS_STYLES.get(status, ""))


def rate(bytes_per_second: float) -> str:
    return f"{size(int(bytes_per_second))}/s"


def clock(epoch: float) -> str:
    return time.strftime("%H:%M", time.localtime(epoch))

