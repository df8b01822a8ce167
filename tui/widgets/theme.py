"""The app's theme: every colour is an xterm-256 palette entry, so a 256-colour terminal shows
exactly what a true-colour one does, and the greys step far enough apart in lightness that
NO_COLOR (Textual's monochrome filter) still tells panels, inputs and the cursor apart."""

from __future__ import annotations

from textual.theme import Theme

BLUE = "#5fafff"  # 75
GREEN = "#5faf5f"  # 71
AMBER = "#ffaf00"  # 214
RED = "#ff5f5f"  # 203

DRYVIQ_THEME = Theme(
    name="dryviq",
    primary="#0087d7",  # 32
    secondary="#5f87af",  # 67
    accent=AMBER,
    warning=AMBER,
    error=RED,
    success=GREEN,
    foreground="#e4e4e4",  # 254
    background="#121212",  # 233
    surface="#262626",  # 235
    panel="#3a3a3a",  # 237
    dark=True,
)

# Rich styles for status words in tables; bold where it matters, which survives NO_COLOR.
STATUS_STYLES = {
    "running": f"bold {BLUE}",
    "stopping": f"bold {AMBER}",
    "completed": GREEN,
    "no_changes": GREEN,
    "warn": f"bold {AMBER}",
    "failed": f"bold {RED}",
    "paused": AMBER,
    "interrupted": AMBER,
    "guarded": f"bold {AMBER}",
    "remediation": f"bold {AMBER}",
    "retry": RED,
}
