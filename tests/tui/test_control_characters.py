"""Names, paths, reasons and messages from disks, servers and job files reach the screen with
their control characters escaped (core.paths.printable): Rich and Textual drop BEL, BS, VT, FF
and CR but pass ESC, so a file named with an OSC or CSI sequence would otherwise drive the
user's terminal (set its title, write its clipboard) byte for byte."""

from __future__ import annotations

from textual.app import App

from tests.tui.conftest import World
from tests.tui.test_browser import browsing, highlight, open_folder, text_of

EVIL = "plan\x1b]0;PWNED\x1b\\ A\u202e.pdf"  # an OSC title, then a right-to-left override
SHOWN = "plan\\x1b]0;PWNED\\x1b\\ A\\u202e.pdf"


def assert_escaped(app: App[object], shown: str) -> None:
    """The screen as drawn holds `shown` (the escaped form) and no raw ESC or U+202E."""
    svg = app.export_screenshot()
    assert "\x1b" not in svg and "\u202e" not in svg
    assert shown in svg.replace("&#160;", " ")


async def test_a_file_name_with_an_escape_sequence_is_shown_escaped_in_the_browser(
        world: World) -> None:
    (world.source / EVIL).write_bytes(b"x")
    (world.source / "two\nlines").mkdir()
    async with browsing(world, "plans") as (app, pilot, browser):
        await open_folder(pilot, browser, "")
        tree = browser.remote_tree
        assert tree is not None
        labels = [child.label.plain for child in tree.root.children]
        assert labels[0].startswith("two\\nlines")
        assert labels[1].startswith(SHOWN)
        await highlight(pilot, browser, EVIL)
        details = text_of(app, "#browse-details")
        assert "\x1b" not in details and "\u202e" not in details
        assert f"Name       {SHOWN}" in details and f"/{SHOWN}" in details
        assert_escaped(app, "plan\\x1b]0;PWNED")
