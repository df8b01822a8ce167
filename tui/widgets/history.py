"""A job's executions, newest first: the jobs screen and the monitor both show them."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable

from core.sides import compact, recorded_stats
from core.state import Execution
from tui.widgets.format import duration, size, status_text, when

# Changes: added, updated, deleted toward the destination (↑) and the source (↓), conflicts
# (⚡). What a run did comes first: at 80 columns the times and bytes are the ones cut off.
COLUMNS = ("#", "Status", "Changes", "Flagged", "Failed", "Started", "Duration", "Bytes")


class ExecutionHistory(DataTable[object]):
    """Rebuilt only when what it shows changed, so the cursor stays put between polls."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: list[Execution] | None = None

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, executions: Sequence[Execution]) -> None:
        if list(executions) == self._shown:
            return
        self._shown = list(executions)
        row = self.cursor_row
        self.clear()
        for e in executions:
            stats = recorded_stats(e.stats)
            self.add_row(str(e.id), status_text(e.status), compact(stats),
                         f"{stats.flagged:,}", f"{stats.failed:,}", when(e.started_at),
                         duration((e.ended_at or e.heartbeat_at) - e.started_at),
                         size(stats.bytes))
        if executions:
            self.move_cursor(row=min(row, len(executions) - 1))
