"""`dryviq-tui analyze ... --html FILE`: an analysis as ONE self-contained HTML file that a
project manager can open from an email and print: inline CSS, inline SVG bar charts, no
scripts, no external assets (a Content-Security-Policy forbids them too, in case).

Every name and path comes from a disk or a server, so each passes `printable` (control
characters shown as escapes) and then `html.escape` before it reaches the page: a file named
`<script>alert(1)</script>.pdf` is shown as that text and never runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from core.analysis_view import (
    COMPARISON_SAMPLES,
    Chart,
    bar_caption,
    caveats,
    charts,
    comparison_rows,
    estimate_lines,
    first_sync_text,
    fix_text,
    flagged_heading,
    platform_name,
    summary,
    target,
)
from core.analyze import Analysis, Bucket, Comparison
from core.cli.output import count, size
from core.paths import printable

CHART_WIDTH = 600  # SVG user units; the chart scales to the page's width
LABEL_WIDTH = 150  # the bucket's name, right-aligned before its bar
CAPTION_WIDTH = 170  # "1.2 GiB · 1,204 files" after the bar
ROW = 26
LABEL_CHARS = 18  # a longer bucket name is cut (its full name is in the bar's tooltip)
LIST_ROWS = 50  # rows of the longer lists (largest, deepest, empty folders, duplicates)

STYLE = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: #1d1d1f; margin: 2em auto; max-width: 1000px; padding: 0 1.5em; }
h1 { font-size: 1.6em; margin-bottom: .2em; word-break: break-all; }
h2 { font-size: 1.2em; border-bottom: 2px solid #0087d7; padding-bottom: .2em;
     margin-top: 1.8em; }
h3 { font-size: 1em; margin: .8em 0 .3em; }
.lead { color: #555; margin-top: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
          gap: 1em 2em; }
figure { margin: 0; break-inside: avoid; }
figcaption { font-weight: 600; margin-bottom: .3em; }
svg.chart { width: 100%; height: auto; display: block; }
svg .bar { fill: #0087d7; }
svg .bar.other { fill: #8da9c4; }
svg text { font: 14px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
           fill: #1d1d1f; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 1em; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd;
         vertical-align: top; }
th { background: #f2f4f7; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.path { word-break: break-all; font-family: ui-monospace, Menlo, Consolas, monospace;
          font-size: .92em; }
.flagged { color: #a15c00; font-weight: 600; }
.estimate p { margin: .2em 0; }
.empty { color: #666; font-style: italic; }
.caveat { margin: .2em 0; }
footer { margin-top: 3em; color: #777; font-size: .85em; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; }
  tr, figure { break-inside: avoid; }
}
"""
# no script, no fetch: a page opened from an email can do nothing but show itself
POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def text(value: object) -> str:
    """A value from a disk, a server or a job, safe in HTML text and attributes."""
    return escape(printable(str(value)), quote=True)


def cut(label: str, chars: int = LABEL_CHARS) -> str:
    return label if len(label) <= chars else label[:chars - 1] + "…"


def bar_chart(chart: Chart) -> str:
    """One breakdown as an inline SVG of horizontal bars, bytes to scale, each bar with its
    bucket's name before it and its bytes and files after it."""
    caption = f"<figcaption>{text(chart.title)}</figcaption>"
    if not chart.bars:
        return f'<figure id="{chart.key}">{caption}<p class="empty">No files.</p></figure>'
    peak = max(bar.bytes for bar in chart.bars) or 1
    room = CHART_WIDTH - LABEL_WIDTH - CAPTION_WIDTH
    height = ROW * len(chart.bars) + 4
    parts = [f'<figure id="{chart.key}">{caption}',
             f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
             f'viewBox="0 0 {CHART_WIDTH} {height}" aria-label="{text(chart.title)}">']
    for row, bar in enumerate(chart.bars):
        y = 2 + row * ROW
        width = room * bar.bytes / peak
        width = max(width, 1.0) if bar.bytes else 0.0  # a tiny bucket still shows
        other = " other" if bar.label.startswith("other (") else ""
        parts += [
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 18}" text-anchor="end">'
            f"{text(cut(bar.label))}</text>",
            f'<rect class="bar{other}" x="{LABEL_WIDTH}" y="{y + 4}" width="{width:.1f}" '
            f'height="{ROW - 8}" data-label="{text(bar.label)}" data-bytes="{bar.bytes}" '
            f'data-files="{bar.files}"><title>{text(bar.label)}: {text(bar_caption(bar))}'
            f"</title></rect>",
            f'<text x="{LABEL_WIDTH + width + 6:.1f}" y="{y + 18}">'
            f"{text(bar_caption(bar))}</text>"]
    parts.append("</svg></figure>")
    return "".join(parts)


def table(headings: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int],
          table_id: str) -> str:
    """A table of already-escaped cells; `numeric` columns align right, the first column
    holds a path."""
    head = "".join(f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>"
                   for i, h in enumerate(headings))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if i in numeric else "path" if i == 0 else ""}">'
                         f"{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def section(title: str, body: str, section_id: str) -> str:
    return f'<section id="{section_id}"><h2>{text(title)}</h2>{body}</section>'


def flagged_section(analysis: Analysis) -> str:
    body = f"<p>{text(flagged_heading(analysis))}</p>"
    if analysis.flagged:
        body += table(["Path", "What is wrong", "Fix by the default policies"], (
            [text("/" + f.path), text(f.problem),
             text(fix_text(f)) if f.fix is not None
             else f'<span class="flagged">{text(fix_text(f))}</span>']
            for f in analysis.flagged), set(), "flagged-table")
    return section("Names the destination would refuse", body, "flagged")


def comparison_section(analysis: Analysis, comparison: Comparison) -> str:
    rows = comparison_rows(analysis, comparison)
    body = table(["Side", "Files", "Bytes"],
                 ([text(name), f"{b.files:,}", text(size(b.bytes))] for name, b in rows),
                 {1, 2}, "comparison-table")
    chart = Chart("comparison-chart", "Bytes on each side",
                  tuple(Bucket(name, b.files, b.bytes) for name, b in rows))
    body += f'<div class="charts">{bar_chart(chart)}</div>'
    body += f"<p>{text(first_sync_text(comparison))}</p>"
    for key, title in COMPARISON_SAMPLES.items():
        paths = comparison.samples.get(key, ())
        if paths:
            body += (f"<h3>{text(title)}: examples</h3><ul>"
                     + "".join(f"<li>{text('/' + p)}</li>" for p in paths) + "</ul>")
    against = target(analysis.against or "", analysis.against_path or "")
    return section(f"Compared with {against}", body, "comparison")


def lists_section(analysis: Analysis) -> str:
    body = "<h3>Largest files</h3>" + table(
        ["Path", "Size"], ([text("/" + p.path), text(size(p.value))]
                           for p in analysis.largest[:LIST_ROWS]), {1}, "largest-table")
    body += "<h3>Deepest paths</h3>" + table(
        ["Path", "Depth"], ([text("/" + p.path), f"{p.value:,}"]
                            for p in analysis.deepest[:LIST_ROWS]), {1}, "deepest-table")
    if analysis.duplicates:
        body += "<h3>Probable duplicates</h3>" + table(
            ["Paths", "Size", "Same"],
            (["<br>".join(text("/" + p) for p in d.paths), text(size(d.size)), text(d.reason)]
             for d in analysis.duplicates[:LIST_ROWS]), {1}, "duplicates-table")
    body += f"<h3>Empty folders: {analysis.empty_folder_count:,}</h3>"
    if analysis.empty_folders:
        body += ("<ul>" + "".join(f"<li>{text('/' + p)}</li>"
                                  for p in analysis.empty_folders[:LIST_ROWS]) + "</ul>")
    return section("Details", body, "details")


def render_html(analysis: Analysis) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    where = target(analysis.connection, analysis.path)
    estimate = "".join(f"<p>{text(line)}</p>" for line in estimate_lines(analysis.estimate))
    against = (f" Names are checked against the rules of "
               f"{text(platform_name(analysis.destination_platform))}."
               if analysis.destination_platform else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Analysis of {text(where)}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>Analysis of {text(where)}</h1>",
        f'<p class="lead">{text(summary(analysis))}. Platform: {text(analysis.platform)}.'
        f"{against}</p>",
        "".join(f'<p class="caveat">{text(line)}</p>' for line in caveats(analysis)),
        "</header>",
        section("Estimate", f'<div class="estimate">{estimate}</div>', "estimate"),
        section("What it holds", '<div class="charts">'
                + "".join(bar_chart(chart) for chart in charts(analysis)) + "</div>",
                "charts"),
        flagged_section(analysis),
    ]
    if analysis.comparison is not None:
        parts.append(comparison_section(analysis, analysis.comparison))
    parts += [lists_section(analysis),
              f"<footer>Made by dryviq-tui from {count(analysis.api_calls, 'API call')}: "
              "folder listings only, no file was downloaded.</footer>",
              "</body></html>"]
    return "\n".join(parts) + "\n"
