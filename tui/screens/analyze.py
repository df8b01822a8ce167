"""The Analyze screen: what a connection's folder holds (bar charts of bytes by type, size,
age and top-level folder), the names the destination would refuse with their fixes, what a
copy would cost, and the comparison with another folder when one is asked for.

The walk runs in the app's service (it survives leaving the screen); the screen polls it
twice a second for progress. A stored analysis of the chosen folder shows at once, without
API calls; r analyzes again, x cancels.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Label, Select, Static, TabbedContent, TabPane

from core.analysis_view import (
    CHARTS,
    Chart,
    caveats,
    charts,
    comparison_rows,
    estimate_lines,
    first_sync_text,
    fix_text,
    flagged_heading,
    summary,
    target,
)
from core.analyze import Analysis, Bucket
from core.cli.output import size
from tui.screens import AppScreen
from tui.service import AnalysisTarget, AnalysisView, AppService, ServiceError
from tui.widgets.bar_chart import BarChart
from tui.widgets.format import count, ellipsis, middle, plain, printable
from tui.widgets.theme import AMBER, BLUE, RED

POLL = 0.5  # seconds: the walk reports about four times a second
WIDE = 120  # from this width the charts stand two abreast
NO_AGAINST = "(no comparison)"
LIST_ROWS = 20  # rows of the largest files and deepest paths shown


def status_line(view: AnalysisView | None) -> Text:
    """What the analysis of the chosen folder is doing, or what is shown and how old it is."""
    if view is None:
        return Text("Choose a connection and a folder, then press r to analyze it.")
    if view.running:
        text = Text("● Analyzing: ", style=f"bold {BLUE}")
        text.append(view.progress or "starting")
        text.append(" · x cancels", style="dim")
        return text
    if view.error:
        return plain(f"⚠ {view.error}", style=f"bold {RED}")
    if view.analysis is None:
        return Text("Not analyzed yet: press r to walk it (folder listings only, no download).")
    return Text("Stored analysis: r analyzes again.", style="dim") if view.stored else Text(
        "✓ Analyzed: r analyzes again.", style=BLUE)


def comparison_text(analysis: Analysis) -> Text:
    text = Text()
    comparison = analysis.comparison
    if comparison is None:
        return Text("No comparison: choose a folder to compare with above, then press r.")
    rows = comparison_rows(analysis, comparison)
    width = max(len(name) for name, _ in rows)
    for name, bucket in rows:
        text.append(plain(f"{name:<{width}}  "))
        text.append(f"{bucket.files:>9,} files  {size(bucket.bytes):>10}\n")
    text.append(plain(first_sync_text(comparison) + "\n"))
    return text


class AnalyzeScreen(AppScreen[None]):
    """One folder's analysis at a time; `show_target` opens one from elsewhere (the browser)."""

    SUB_TITLE = "Analyze"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "analyze", "Analyze", id="start-analysis"),
        Binding("x", "cancel_analysis", "Cancel", id="cancel-analysis"),
    ]
    DEFAULT_CSS = """
    #analyze-target, #analyze-against {
        height: 1;
        padding: 0 1;
    }
    #analyze-target Label, #analyze-against Label {
        width: 9;
        color: $text-muted;
    }
    #analyze-connection, #analyze-against-connection {
        width: 1fr;
        max-width: 36;
    }
    #analyze-path, #analyze-against-path {
        width: 1fr;
    }
    #analyze-status, #analyze-summary {
        height: auto;
        padding: 0 1;
    }
    #analyze-tabs {
        height: 1fr;
    }
    #analyze-tabs TabPane {
        padding: 0;
    }
    #analyze-grid {
        grid-size: 1;
        grid-rows: auto;
        grid-gutter: 1 0;
        height: auto;
    }
    #analyze-grid.-wide {
        grid-size: 2;
    }
    #analyze-flagged-heading, #analyze-estimate, #analyze-comparison {
        height: auto;
        padding: 0 1;
    }
    #analyze-flagged {
        height: 1fr;
    }
    """

    def __init__(self, service: AppService) -> None:
        super().__init__(service)
        self.target: AnalysisTarget | None = None
        self.view: AnalysisView | None = None
        self._shown: Analysis | None = None  # what the charts and tables were drawn from
        self._ready = False
        self._wanted: AnalysisTarget | None = None  # asked for before the screen was mounted

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="analyze-target"):
            yield Label("Folder")
            yield Select[str]([], prompt="(connection)", id="analyze-connection", compact=True)
            yield Input(placeholder="/path (Enter analyzes)", id="analyze-path", compact=True)
        with Horizontal(id="analyze-against"):
            yield Label("Against")
            yield Select[str]([], prompt=NO_AGAINST, id="analyze-against-connection",
                              compact=True)
            yield Input(placeholder="/path", id="analyze-against-path", compact=True)
        yield Static(id="analyze-status")
        yield Static(id="analyze-summary", markup=False)
        with TabbedContent(id="analyze-tabs"):
            with (TabPane("Charts", id="tab-charts"), VerticalScroll(id="analyze-charts"),
                  Grid(id="analyze-grid")):
                for key, _ in CHARTS:
                    yield BarChart(id=f"chart-{key}")
            with TabPane("Flagged", id="tab-flagged"), Vertical():
                yield Static(id="analyze-flagged-heading", markup=False)
                yield DataTable(id="analyze-flagged", cursor_type="row", zebra_stripes=True)
            with TabPane("Estimate", id="tab-estimate"), VerticalScroll():
                yield Static(id="analyze-estimate")
            with TabPane("Compared", id="tab-compared"), VerticalScroll():
                yield Static(id="analyze-comparison")
                yield BarChart(id="chart-comparison")

    async def on_mount(self) -> None:
        await self._load_connections()
        self._draw(None)
        self._ready = True
        if self._wanted is not None:
            await self.show_target(self._wanted)
        self._fit(self.size.width)
        await self.refresh_view()
        self.set_interval(POLL, self.refresh_view)

    async def on_screen_resume(self) -> None:
        if self._ready:
            await self._load_connections()
            await self.refresh_view()

    async def _load_connections(self) -> None:
        options = [(plain(c.name), c.name) for c, _ in await self.service.connections()]
        for select_id in ("#analyze-connection", "#analyze-against-connection"):
            select = self.query_one(select_id, Select)
            current = select.value
            with select.prevent(Select.Changed):
                select.set_options(options)
                if current in [value for _, value in options]:
                    select.value = current

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        self._fit(event.size.width)
        if self._ready:
            self._draw_flagged(self._shown)  # its columns follow the width

    def _fit(self, width: int) -> None:
        self.query_one("#analyze-grid").set_class(width >= WIDE, "-wide")

    # -- the target -------------------------------------------------------------------------

    async def show_target(self, wanted: AnalysisTarget, *, start: bool = False) -> None:
        """Show this folder's analysis (the stored one, if any); `start` analyzes it now."""
        if not self._ready:
            self._wanted = wanted
            if start:
                await self._start(wanted)
            return
        self._wanted = None
        with self.prevent(Select.Changed, Input.Changed):
            self.query_one("#analyze-connection", Select).value = wanted.connection
            self.query_one("#analyze-path", Input).value = "/" + wanted.path
            against = self.query_one("#analyze-against-connection", Select)
            if wanted.against:
                against.value = wanted.against
            else:
                against.clear()
            self.query_one("#analyze-against-path", Input).value = (
                "/" + wanted.against_path if wanted.against else "")
        self.target = wanted
        if start:
            await self._start(wanted)
        await self.refresh_view()

    def _chosen(self) -> AnalysisTarget | None:
        """The folder the fields name, or None (and a hint) when no connection is chosen."""
        connection = self.query_one("#analyze-connection", Select).value
        if not isinstance(connection, str):
            self.notify("Choose a connection to analyze first", severity="warning")
            return None
        against = self.query_one("#analyze-against-connection", Select).value
        against_name = against if isinstance(against, str) else None
        return AnalysisTarget(
            connection, self.query_one("#analyze-path", Input).value.strip().strip("/"),
            against_name, (self.query_one("#analyze-against-path", Input).value.strip()
                           .strip("/") if against_name else None))

    @on(Select.Changed)
    @on(Input.Changed)
    async def _target_changed(self) -> None:
        """A new choice shows that folder's stored analysis (or none); nothing is walked."""
        connection = self.query_one("#analyze-connection", Select).value
        if isinstance(connection, str):
            self.target = self._chosen()
            await self.refresh_view()

    @on(Input.Submitted)
    async def _submitted(self) -> None:
        await self.action_analyze()

    # -- actions ----------------------------------------------------------------------------

    async def action_analyze(self) -> None:
        chosen = self._chosen()
        if chosen is not None:
            self.target = chosen
            await self._start(chosen)
            await self.refresh_view()

    async def _start(self, chosen: AnalysisTarget) -> None:
        try:
            await self.service.analyze(chosen)
        except ServiceError as exc:
            self.notify(str(exc), severity="warning", markup=False)

    async def action_cancel_analysis(self) -> None:
        if self.target is None:
            return
        try:
            await self.service.cancel_analysis(self.target)
        except ServiceError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        await self.refresh_view()

    # -- drawing ----------------------------------------------------------------------------

    async def refresh_view(self) -> None:
        if not self.is_current:
            return
        self.view = None if self.target is None else await self.service.analysis(self.target)
        self.query_one("#analyze-status", Static).update(status_line(self.view))
        analysis = self.view.analysis if self.view else None
        if analysis != self._shown:  # read again at each poll: drawn again only if it changed
            self._shown = analysis
            self._draw(analysis)

    def _draw(self, analysis: Analysis | None) -> None:
        words = "" if analysis is None else printable(
            f"{target(analysis.connection, analysis.path)}: {summary(analysis)}")
        if analysis is not None and analysis.unreadable_count:
            words += f" · ⚠ {count(analysis.unreadable_count, 'folder')} unreadable (Estimate)"
        self.query_one("#analyze-summary", Static).update(words)
        drawn = charts(analysis) if analysis else tuple(
            Chart(key, title, ()) for key, title in CHARTS)
        for chart in drawn:
            self.query_one(f"#chart-{chart.key}", BarChart).show(chart)
        self._draw_flagged(analysis)
        self.query_one("#analyze-estimate", Static).update(self._estimate(analysis))
        self._draw_comparison(analysis)

    def _draw_flagged(self, analysis: Analysis | None) -> None:
        tabs = self.query_one("#analyze-tabs", TabbedContent)
        flagged = analysis.flagged if analysis else ()
        tabs.get_tab("tab-flagged").label = (
            f"Flagged ({analysis.flagged_count:,})" if analysis else "Flagged")
        self.query_one("#analyze-flagged-heading", Static).update(
            flagged_heading(analysis) if analysis else "")
        table = self.query_one("#analyze-flagged", DataTable)
        table.clear(columns=True)
        width = max(60, self.size.width - 4)  # the screen's: known before the table is laid out
        path_width = width * 2 // 5
        problem_width = width // 4
        fix_width = width - path_width - problem_width - 6
        table.add_column("Path", width=path_width)
        table.add_column("What is wrong", width=problem_width)
        table.add_column("Fix", width=fix_width)
        for flag in flagged:
            fix = Text(ellipsis(fix_text(flag), fix_width * 2))
            if flag.fix is None:
                fix.stylize(f"bold {AMBER}")
            table.add_row(Text(middle(printable("/" + flag.path), path_width * 2)),
                          plain(ellipsis(flag.problem, problem_width * 2)), fix, height=None)

    def _estimate(self, analysis: Analysis | None) -> Text:
        """The estimate, what to know before trusting it, then the longer lists."""
        if analysis is None:
            return Text("")
        lines: list[Text] = [plain(line) for line in
                             [*estimate_lines(analysis.estimate), *caveats(analysis)]]

        def heading(words: str) -> None:
            lines.extend([Text(""), Text(words, style="bold")])

        heading("Largest files")
        lines += [plain(f"{size(p.value):>10}  /{p.path}") for p in analysis.largest[:LIST_ROWS]]
        heading("Deepest paths")
        lines += [plain(f"{p.value:>10}  /{p.path}") for p in analysis.deepest[:LIST_ROWS]]
        heading(count(analysis.empty_folder_count, "empty folder"))
        lines += [plain(f"            /{p}") for p in analysis.empty_folders[:LIST_ROWS]]
        if analysis.duplicates:
            heading("Probable duplicates")
            lines += [plain(f"{size(d.size):>10}  " + "  =  ".join("/" + p for p in d.paths)
                            + f" ({d.reason})") for d in analysis.duplicates[:LIST_ROWS]]
        return Text("\n").join(lines)

    def _draw_comparison(self, analysis: Analysis | None) -> None:
        tabs = self.query_one("#analyze-tabs", TabbedContent)
        compared = analysis is not None and analysis.comparison is not None
        (tabs.show_tab if compared else tabs.hide_tab)("tab-compared")
        self.query_one("#analyze-comparison", Static).update(
            comparison_text(analysis) if analysis else "")
        chart = self.query_one("#chart-comparison", BarChart)
        chart.display = compared
        if analysis is not None and analysis.comparison is not None:
            chart.show(Chart("comparison", "Bytes on each side", tuple(
                Bucket(name, b.files, b.bytes)
                for name, b in comparison_rows(analysis, analysis.comparison))))
