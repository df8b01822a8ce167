"""Horizontal bar charts drawn in text: a bucket's name, a bar of block characters to scale
(to an eighth of a cell), and its bytes and files. Enough for four breakdowns of an analysis
on an 80x24 terminal, without a plotting library."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widgets import Static

from core.analysis_view import Chart, bar_caption
from tui.widgets.format import ellipsis, printable
from tui.widgets.theme import BLUE

EIGHTHS = " ▏▎▍▌▋▊▉"
LABEL_MAX = 16  # cells for a bucket's name; a longer one is cut
BAR_MIN = 6  # cells a bar gets however narrow the chart


def bar(value: int, peak: int, cells: int) -> str:
    """`value` of `peak` as block characters filling up to `cells`; anything above zero
    shows at least an eighth."""
    if value <= 0 or peak <= 0:
        return ""
    eighths = max(1, round(cells * 8 * value / peak))
    return "█" * (eighths // 8) + EIGHTHS[eighths % 8].strip()


def bars_text(chart: Chart, width: int) -> Text:
    """The chart's title and one line per bar, `width` cells wide."""
    text = Text()
    text.append(chart.title, style="bold")
    if not chart.bars:
        text.append("\n  no files", style="italic")
        return text
    label_width = min(LABEL_MAX, max(len(printable(b.label)) for b in chart.bars))
    captions = [bar_caption(b) for b in chart.bars]
    caption_width = max(map(len, captions))
    cells = max(BAR_MIN, width - label_width - caption_width - 3)
    peak = max(b.bytes for b in chart.bars)
    for bucket, caption in zip(chart.bars, captions, strict=True):
        drawn = bar(bucket.bytes, peak, cells)
        text.append("\n")
        text.append(f"{ellipsis(printable(bucket.label), label_width):>{label_width}} ")
        style = "dim" if bucket.label.startswith("other (") else BLUE
        text.append(drawn, style=style)
        text.append(" " * (cells - len(drawn) + 1))
        text.append(caption, style="dim" if not bucket.bytes else "")
    return text


class BarChart(Static):
    """One chart; drawn again when its width changes."""

    DEFAULT_CSS = """
    BarChart {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, chart: Chart | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.chart = chart

    def show(self, chart: Chart) -> None:
        self.chart = chart
        self._draw(self.content_size.width)

    def _draw(self, width: int) -> None:
        if self.chart is not None:
            self.update(bars_text(self.chart, width or 60))

    def on_resize(self, event: events.Resize) -> None:
        self._draw(self.content_size.width)
