"""Names, paths, reasons and messages from disks, servers and job files reach the screen with
their control characters escaped (core.paths.printable): Rich and Textual drop BEL, BS, VT, FF
and CR but pass ESC, so a file named with an OSC or CSI sequence would otherwise drive the
user's terminal (set its title, write its clipboard) byte for byte."""

from __future__ import annotations

import dataclasses
import time

from textual.app import App
from textual.widgets import DataTable, Select

from core.state import ItemRecord
from tests.tui.conftest import World, running, table_rows, text_of, wait_for
from tests.tui.test_browser import browsing, highlight, open_folder
from tests.tui.test_monitor import monitor_at
from tui.screens.connections import ConnectionsScreen
from tui.screens.job_builder import JobBuilderScreen
from tui.screens.quit import quit_question
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.item_detail import ItemDetailScreen

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


async def rename(world: World, table: str, row_id: str, name: str) -> None:
    """Give a job or a connection a name an older version could store (no check then)."""
    await world.state.db.execute(f"UPDATE {table} SET name = ? WHERE id = ?", (name, row_id))
    await world.state.db.commit()


async def failed_with_evil_item(world: World) -> str:
    """A job named EVIL whose last run failed with an error naming EVIL and flagged an item
    at a path holding EVIL, for a reason quoting it."""
    job = await world.job()
    await rename(world, "jobs", job.id, f"Job {EVIL}")
    execution = await world.state.start_execution(job.id)
    await world.state.update_execution(execution.id, status="failed", phase="complete",
                                       ended_at=time.time(), error=f"cannot read {EVIL}",
                                       stats={"flagged": 1})
    await world.state.save_items([ItemRecord(
        path=f"docs/{EVIL}", parent="docs", status="remediation", note=f"{EVIL} is refused",
        job_id=job.id, is_dir=False, size=1, mtime=None, action="create",
        execution_id=execution.id)])
    return job.id


async def test_the_monitor_and_item_detail_escape_names_paths_reasons_and_errors(
        world: World) -> None:
    await failed_with_evil_item(world)
    async with monitor_at(world, (120, 40)) as (app, pilot, monitor):
        table = monitor.query_one("#monitor-problems", DataTable)
        await wait_for(lambda: table.row_count == 1, what="the flagged row")
        await pilot.pause()
        assert text_of(app, "#monitor-status").startswith(f"Failed: cannot read {SHOWN}")
        assert text_of(app, "#monitor-job").startswith(f"Job {SHOWN}")
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[1].startswith(f"{SHOWN} is refused") and row[2] == f"/docs/{SHOWN}"
        assert_escaped(app, "cannot read plan\\x1b]0;PWNED")
        table.focus()
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, ItemDetailScreen), what="the detail")
        facts = text_of(app, "#item-facts")
        assert f"Source: /docs/{SHOWN}" in facts and "\x1b" not in facts
        assert text_of(app, ".dialog-title") == SHOWN
        assert_escaped(app, "/docs/plan\\x1b]0;PWNED")


async def test_a_job_name_is_escaped_in_the_list_history_dialogs_and_toasts(
        world: World) -> None:
    job = await world.job()
    await rename(world, "jobs", job.id, f"Job {EVIL}")
    async with running(world) as (app, pilot):
        await wait_for(lambda: table_rows(app, "#jobs-table") != [], what="the job's row")
        assert table_rows(app, "#jobs-table")[0][0] == f"Job {SHOWN}"
        assert text_of(app, "#jobs-history-title") == f"History of Job {SHOWN}"
        assert_escaped(app, "Job plan\\x1b]0;PWNED")
        await pilot.press("delete")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert text_of(app, ".dialog-title") == f"Delete job Job {SHOWN}?"
        assert_escaped(app, "plan\\x1b]0;PWNED")
        await pilot.click("#confirm-yes")
        await wait_for(lambda: not app.screen.query(".dialog-title"), what="the deletion")
        await wait_for(lambda: any("Deleted job" in n.message for n in app._notifications),
                       what="the toast")
        assert [n.message for n in app._notifications] == [f"Deleted job Job {SHOWN}"]
    _, text = quit_question([dataclasses.replace(job, name=f"Job {EVIL}")], background=False)
    assert text.startswith(f"Running: Job {SHOWN}.")


async def test_a_connection_name_is_escaped_in_the_list_and_the_builder(world: World) -> None:
    connection = await world.state.find_connection("share")
    assert connection is not None
    await rename(world, "connections", connection.id, f"share {EVIL}")
    async with running(world) as (app, pilot):
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, ConnectionsScreen), what="connections")
        await wait_for(lambda: len(table_rows(app, "#connections-table")) == 2,
                       what="the rows")
        assert [row[0] for row in table_rows(app, "#connections-table")] == [
            "plans", f"share {SHOWN}"]
        app.screen.query_one("#connections-table", DataTable).move_cursor(row=1)
        await wait_for(lambda: text_of(app, "#connections-detail").startswith(
            f"share {SHOWN}: "), what="the detail")
        assert_escaped(app, "share plan\\x1b]0;PWNED")
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        await pilot.pause()
        select = app.screen.query_one("#field-source_connection", Select)
        prompts = [str(prompt) for prompt, _ in select._options]
        assert f"share {SHOWN}" in prompts and "\x1b" not in "".join(prompts)
