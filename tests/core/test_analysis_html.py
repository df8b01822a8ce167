"""The HTML report of an analysis: one self-contained file (no script, no external asset),
every name escaped, a bar per bucket drawn to scale; and the page as headless Chromium
(Debian's, /usr/bin/chromium) shows it: no console errors, the charts there, a screenshot in
the test's folder."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.analysis_html import render_html
from core.analysis_view import CHART_ROWS
from core.analyze import Bucket
from tests.analyses import EVIL, MIB, compared, sample_analysis

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]


class Page(HTMLParser):
    """The elements of a page, with their attributes and the figure each sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None], str | None]] = []
        self.text: list[str] = []
        self._figure: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "figure":
            self._figure = attributes.get("id")
        self.tags.append((tag, attributes, self._figure))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def bars(self, figure: str) -> list[dict[str, str | None]]:
        return [a for tag, a, f in self.tags if tag == "rect" and f == figure]


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def test_one_file_with_no_script_and_nothing_fetched() -> None:
    html = render_html(compared())
    page = parse(html)
    names = {tag for tag, _, _ in page.tags}
    assert "script" not in names and "link" not in names and "img" not in names
    assert not re.search(r"\b(src|href)=|url\(|@import", html)
    assert "default-src 'none'" in html  # and the browser is told so


def test_every_name_is_escaped() -> None:
    html = render_html(compared())
    assert "<script>" not in html
    text = "".join(parse(html).text)
    assert f"/RFIs/{EVIL}" in text  # shown as the file's name
    assert f"/Old/{EVIL}" in text  # the comparison's samples too
    control = render_html(sample_analysis(connection="bad\x1b[2Jname"))
    assert "\x1b" not in control and "bad\\x1b[2Jname" in control


def test_a_bar_per_bucket_to_scale() -> None:
    analysis = sample_analysis()
    page = parse(render_html(analysis))
    for key in ("by_extension", "by_size", "by_age", "by_folder"):
        buckets = getattr(analysis, key)
        bars = page.bars(key)
        ranked = key in ("by_extension", "by_folder")  # by bytes; ranges in their order
        expected = sorted((b.bytes for b in buckets), reverse=True) if ranked else [
            b.bytes for b in buckets]
        assert [int(b["data-bytes"] or 0) for b in bars] == expected, key
    pdf, dwg = page.bars("by_extension")[:2]
    assert pdf["data-label"] == ".pdf" and dwg["data-label"] == ".dwg"
    ratio = float(dwg["width"] or 0) / float(pdf["width"] or 1)
    assert ratio == pytest.approx(230 / 412, abs=0.01)
    sizes = page.bars("by_size")  # ranges keep their order; an empty range has no bar
    assert [b["data-label"] for b in sizes][:2] == ["< 1 MB", "1-10 MB"]
    assert float(sizes[3]["width"] or 0) == 0
    assert page.bars("by_extension")[-1]["data-label"] == "(no extension)"


def test_many_types_end_in_one_other_bar() -> None:
    many = tuple(Bucket(f".x{i:02d}", 1, (i + 1) * MIB) for i in range(25))
    page = parse(render_html(sample_analysis(by_extension=many)))
    bars = page.bars("by_extension")
    assert len(bars) == CHART_ROWS
    assert bars[0]["data-label"] == ".x24"
    assert bars[-1]["data-label"] == f"other ({25 - CHART_ROWS + 1})"
    assert sum(int(b["data-bytes"] or 0) for b in bars) == sum(b.bytes for b in many)


def test_flagged_names_estimate_and_comparison_are_there() -> None:
    page = parse(render_html(compared()))
    text = " ".join(page.text)
    assert "3 names an SMB share would refuse." in text
    assert "→ Photos/Site_ north.jpg" in text and "flagged for a person" in text
    assert "A copy out of Procore: about 142 Procore API calls for 99 files" in text
    assert "Of those calls: 15 listing, 127 moving files." in text
    assert "about 3 minutes under the client's budget of 3,600 calls an hour, less the 10%" in text
    assert "3,100 calls were left" in text
    assert "Compared with office-share:/Projects/Riverside" in text
    assert "The first sync would: conflict 0, create 40, update 5." in text
    assert len(page.bars("comparison-chart")) == 4
    plain = " ".join(parse(render_html(sample_analysis())).text)
    assert "Compared with" not in plain and "could not be read" not in plain
    partial = " ".join(parse(render_html(sample_analysis(
        unreadable_count=1, unreadable_folders=("Closeout: permission denied",),
        duplicate_groups=4, duplicate_bytes=3 * MIB))).text)
    assert "⚠ 1 folder could not be read: nothing under them is counted." in partial
    assert "Closeout: permission denied" in partial
    assert "4 groups of probable duplicates: 3.0 MiB in the extra copies." in partial


def test_an_empty_folder_draws_no_bars() -> None:
    empty = sample_analysis(files=0, folders=0, bytes=0, by_extension=(), by_folder=(),
                            by_size=(), by_age=(), largest=(), deepest=(), duplicates=(),
                            flagged=(), flagged_count=0, estimate=sample_analysis().estimate)
    html = render_html(empty)
    assert "<rect" not in html and html.count("No files.") == 4
    assert "Every name fits the rules of an SMB share" in html


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_chromium_shows_the_charts_without_errors(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    report = tmp_path / "analysis.html"
    report.write_text(render_html(compared()), encoding="utf-8")
    errors: list[str] = []
    dialogs: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which(CHROMIUM) or CHROMIUM,
                                             args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(report.as_uri())
            charts = page.eval_on_selector_all(
                "figure", "figs => figs.map(f => [f.id, [...f.querySelectorAll('rect.bar')]"
                          ".map(r => r.getBoundingClientRect().width)])")
            page.screenshot(path=str(tmp_path / "analysis.png"), full_page=True)
        finally:
            browser.close()
    assert errors == [] and dialogs == []
    widths = dict(charts)
    assert set(widths) == {"by_extension", "by_size", "by_age", "by_folder", "comparison-chart"}
    assert len(widths["by_extension"]) == 5 and all(w > 0 for w in widths["by_age"])
    assert widths["by_extension"][0] > widths["by_extension"][1] > 0  # drawn to scale
    assert (tmp_path / "analysis.png").stat().st_size > 10_000
