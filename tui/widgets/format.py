"""How the screens write statuses, times, sizes and rates: core's words, in colour."""

from __future__ import annotations

from rich.text import Text

from core.cli.output import count, duration, rate, size, when
from core.paths import printable, printable_lines
from core.readout import clock
from core.status import label
from tui.widgets.theme import STATUS_STYLES

__all__ = ["clock", "count", "duration", "ellipsis", "middle", "plain", "printable",
           "printable_lines", "rate", "size", "status_text", "when"]


def plain(text: object, style: str = "") -> Text:
    """A name, path, reason or message from a disk, a server or a job file, as Text drawn as
    is: never read as markup, and its control characters escaped (\\x1b, \\n, \\u202e), since
    Rich passes ESC through and a name holding an escape sequence would drive the terminal."""
    return Text(printable(str(text)), style=style)


def status_text(status: str, where: str = "idle", host: str | None = None) -> Text:
    """A status's one label for a table cell; a run in another process says "elsewhere", or
    on which host (a shared state's other host)."""
    text = label(status)
    if where == "elsewhere":
        text += f" on {printable(host)}" if host else " elsewhere"
    return Text(text, style=STATUS_STYLES.get(status, ""))


def middle(text: str, width: int) -> str:
    """`text` in `width` cells, cut in the middle (`/Projects/…/Sheet 12.pdf`): a path's
    start and its name both stay readable."""
    if len(text) <= width:
        return text
    if width < 2:
        return text[:width]
    tail = (width - 1) // 2 + (width - 1) % 2
    return text[:width - 1 - tail] + "…" + text[len(text) - tail:]


def ellipsis(text: str, width: int) -> str:
    """`text` in `width` cells, cut at the end; the item's detail has the whole of it."""
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"
