"""Notifications whose text cannot drive the terminal: toasts carry job and connection names,
paths and errors from disks and servers, and Rich passes ESC through, so every message and
title is made printable (core.paths) before Textual draws it."""

from __future__ import annotations

from textual.app import App
from textual.notifications import SeverityLevel

from core.paths import printable, printable_lines


def printable_notify(app: App[object], message: str, *, title: str = "",
                     severity: SeverityLevel = "information", timeout: float | None = None,
                     markup: bool = True) -> None:
    """App.notify with control characters escaped; the message keeps its line breaks."""
    App.notify(app, printable_lines(message), title=printable(title), severity=severity,
               timeout=timeout, markup=markup)
