"""The monitor's throughput over the run: a one-line Sparkline of the byte rate between the
monitor's polls, since the run started (or since the monitor opened on it), with its peak."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

from tui.widgets.format import rate

SAMPLES = 240  # kept per run; past this every other one goes, so the chart spans the run


class RunSamples:
    """Bytes moved so far by one execution, at the moments the monitor polled it.

    The samples are cumulative, so thinning them (dropping every other one) merges two
    intervals into their exact average: memory stays bounded however long the run is."""

    def __init__(self, limit: int = SAMPLES) -> None:
        self.limit = limit
        self.execution_id: int | None = None
        self.samples: list[tuple[float, int]] = []

    def add(self, execution_id: int, at: float, total_bytes: int) -> None:
        if execution_id != self.execution_id:
            self.execution_id, self.samples = execution_id, []
        if self.samples and at <= self.samples[-1][0]:
            return
        self.samples.append((at, total_bytes))
        if len(self.samples) > self.limit:
            self.samples = self.samples[::-2][::-1]  # every other one, keeping the newest

    def rates(self) -> list[float]:
        """Bytes per second between consecutive samples."""
        return [max(0.0, (b1 - b0) / (t1 - t0))
                for (t0, b0), (t1, b1) in zip(self.samples, self.samples[1:], strict=False)]


class ThroughputChart(Horizontal):
    """`Rate ▁▂▅▇▆▃ peak 12.0 MiB/s`: hidden until a run has two samples."""

    DEFAULT_CSS = """
    ThroughputChart {
        height: 1;
        display: none;
    }
    ThroughputChart Label {
        width: auto;
        color: $text-muted;
    }
    ThroughputChart Sparkline {
        width: 1fr;
        margin: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.samples = RunSamples()

    def compose(self) -> ComposeResult:
        yield Label("Rate")
        yield Sparkline([], summary_function=max)
        yield Label("", id="throughput-peak")

    def add(self, execution_id: int, at: float, total_bytes: int) -> None:
        self.samples.add(execution_id, at, total_bytes)
        rates = self.samples.rates()
        self.display = len(rates) >= 2
        if self.display:
            self.query_one(Sparkline).data = rates
            self.query_one("#throughput-peak", Label).update(f"peak {rate(max(rates))}")
