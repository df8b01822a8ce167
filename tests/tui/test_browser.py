"""The browser over a Procore project served by the sandbox (real HTTP) and over real local
folders: lazy listing, errors on the node, cache and refresh, filter, details, picks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Select
from textual.widgets.tree import TreeNode

from core.readout import clock
from core.sandbox import (
    DEMO_PROJECT,
    SANDBOX_LOGIN,
    SandboxThread,
)
from tests.tui.conftest import SIZE, World, add_sandbox_procore, text_of, wait_for
from tui.app import DryvIQApp
from tui.screens.browser import BrowserScreen, budget_text
from tui.screens.job_builder import JobBuilderScreen
from tui.screens.jobs import JobsScreen
from tui.service import Budget
from tui.widgets.remote_tree import Item


@asynccontextmanager
async def browsing(world: World, connection: str) -> AsyncIterator[
        tuple[DryvIQApp, Pilot[int], BrowserScreen]]:
    """The app on the browser, with `connection` open and nothing listed yet."""
    app = DryvIQApp(world.service)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.press("b")
        await wait_for(lambda: isinstance(app.screen, BrowserScreen), what="the browser")
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        await browser.browse(connection)
        await wait_for(lambda: browser.remote_tree is not None, what="the tree")
        await pilot.pause()
        yield app, pilot, browser


def node_at(browser: BrowserScreen, path: str) -> TreeNode[Item]:
    tree = browser.remote_tree
    assert tree is not None
    pending = [tree.root]
    while pending:
        node = pending.pop()
        if node.data is not None and node.data.path == path and not node.data.note:
            return node
        pending.extend(node.children)
    raise AssertionError(f"no node for /{path}")


def children(browser: BrowserScreen, path: str) -> list[str]:
    return [str(child.label.plain) for child in node_at(browser, path).children]


async def highlight(pilot: Pilot[int], browser: BrowserScreen, path: str) -> None:
    tree = browser.remote_tree
    assert tree is not None
    tree.focus()
    tree.move_cursor(node_at(browser, path))
    await pilot.pause()


async def open_folder(pilot: Pilot[int], browser: BrowserScreen, path: str) -> None:
    """Highlight the folder and press space, as a user opens it; wait for its listing."""
    await highlight(pilot, browser, path)
    await pilot.press("space")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_a_procore_folder_lists_only_when_opened_and_shows_its_details(
        world: World, sandbox: SandboxThread) -> None:
    await add_sandbox_procore(world.state, world.home, sandbox)
    calls = sandbox.world.api_calls
    async with browsing(world, "riverside") as (app, pilot, browser):
        await app.workers.wait_for_complete()
        assert sandbox.world.api_calls == calls, "nothing is listed before a folder opens"
        assert "connection root" in text_of(app, "#browse-details")
        await wait_for(lambda: "calls left" in text_of(app, "#browse-budget"),
                       what="the API budget")
        assert "of 3,600 calls left" in text_of(app, "#browse-budget")

        await open_folder(pilot, browser, "")
        assert children(browser, "")[:3] == ["Closeout", "Drawings", "Photos"]
        await open_folder(pilot, browser, "Drawings")
        assert children(browser, "Drawings") == ["Architectural", "MEP", "Structural"]
        await open_folder(pilot, browser, "Drawings/Architectural")
        files = children(browser, "Drawings/Architectural")
        assert "A-000 Full Drawing Set.pdf  3.0 MiB" in files

        await highlight(pilot, browser, "Drawings/Architectural/A-000 Full Drawing Set.pdf")
        node = sandbox.world.node_at(
            next(p.id for p in sandbox.world.projects.values() if p.name == DEMO_PROJECT),
            "Drawings/Architectural/A-000 Full Drawing Set.pdf")
        shown = text_of(app, "#browse-details")
        assert "Size       3.0 MiB (3,145,728 bytes)" in shown
        assert f"Procore id {node.id}" in shown
        assert "Length     50 characters" in shown
        assert "✓ The name fits a local folder" in shown

        before = sandbox.world.api_calls  # cached: closing and opening again costs nothing
        tree = browser.remote_tree
        assert tree is not None
        await highlight(pilot, browser, "Drawings")
        await pilot.press("space", "space")
        await pilot.pause()
        assert sandbox.world.api_calls == before
        assert children(browser, "Drawings") == ["Architectural", "MEP", "Structural"]
        await pilot.press("r")  # refresh: listed again from Procore
        await app.workers.wait_for_complete()
        assert sandbox.world.api_calls > before
        assert children(browser, "Drawings") == ["Architectural", "MEP", "Structural"]


async def test_a_folder_that_fails_to_list_says_why_on_its_node(
        world: World, sandbox: SandboxThread) -> None:
    await add_sandbox_procore(world.state, world.home, sandbox)
    async with browsing(world, "riverside") as (_app, pilot, browser):
        await open_folder(pilot, browser, "")
        await open_folder(pilot, browser, "Drawings")
        user = next(u for u in sandbox.world.users.values() if u.login == SANDBOX_LOGIN)
        with sandbox.world.lock:
            user.project_ids = set()  # an administrator takes the project away meanwhile
        await open_folder(pilot, browser, "Drawings/MEP")
        [error] = children(browser, "Drawings/MEP")
        assert error == ("⚠ cannot list: list a Documents folder: You do not have access to "
                         "this project (HTTP 403)")
        with sandbox.world.lock:
            user.project_ids = None
        await open_folder(pilot, browser, "Drawings/Structural")  # the others still list
        assert len(children(browser, "Drawings/Structural")) == 5


async def test_the_filter_narrows_the_folder_being_browsed(world: World) -> None:
    for name in ("Floor plan L1.pdf", "floor plan L2.pdf", "Roof plan.pdf", "Sections.pdf"):
        (world.source / name).write_bytes(b"x")
    (world.source / "Drawings").mkdir()
    async with browsing(world, "plans") as (_app, pilot, browser):
        await open_folder(pilot, browser, "")
        assert len(children(browser, "")) == 5
        await pilot.press("slash")
        await pilot.press(*"FLOOR")
        await pilot.pause()
        assert children(browser, "") == ["Floor plan L1.pdf  1 B", "floor plan L2.pdf  1 B"]
        await pilot.press("backspace", *"ZZZ")
        await pilot.pause()
        assert children(browser, "") == ["(no names contain “FLOOZZZ”)"]
        browser.query_one("#browse-filter", Input).value = ""
        await pilot.pause()
        assert len(children(browser, "")) == 5


async def test_a_one_byte_file_is_one_byte(world: World) -> None:
    (world.source / "x.txt").write_bytes(b"x")
    async with browsing(world, "plans") as (app, pilot, browser):
        await open_folder(pilot, browser, "")
        await highlight(pilot, browser, "x.txt")
        assert "Size       1 B (1 byte)" in text_of(app, "#browse-details")


async def test_local_names_are_checked_against_procore(world: World) -> None:
    (world.source / 'bad: "name"?.txt').write_bytes(b"abc")
    async with browsing(world, "plans") as (app, pilot, browser):
        await open_folder(pilot, browser, "")
        await highlight(pilot, browser, 'bad: "name"?.txt')
        shown = text_of(app, "#browse-details")
        assert "⚠ In Procore this name:" in shown
        assert "contains characters the destination does not allow: : ?" in shown
        assert not app.screen.query_one("#browse-budget").display  # no API budget locally


async def test_picks_open_the_job_builder_filled_in(world: World, sandbox: SandboxThread,
                                                    ) -> None:
    await add_sandbox_procore(world.state, world.home, sandbox)
    (world.destination / "Incoming").mkdir()
    async with browsing(world, "riverside") as (app, pilot, browser):
        await open_folder(pilot, browser, "")
        await highlight(pilot, browser, "Drawings")
        await pilot.press("s")
        share = await world.state.find_connection("share")
        assert share is not None
        browser.query_one("#browse-connection", Select).value = share.id
        await wait_for(lambda: browser.connection is not None and browser.connection.name
                       == "share", what="the share opened")
        await pilot.pause()
        await open_folder(pilot, browser, "")
        await highlight(pilot, browser, "Incoming")
        await pilot.press("d")
        assert "riverside:/Drawings" in text_of(app, "#browse-picks")
        assert "share:/Incoming" in text_of(app, "#browse-picks")
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        builder = app.screen
        await pilot.pause()
        assert builder.query_one("#field-source_connection", Select).value == "riverside"
        assert builder.query_one("#field-source_path", Input).value == "/Drawings"
        assert builder.query_one("#field-destination_connection", Select).value == "share"
        assert builder.query_one("#field-destination_path", Input).value == "/Incoming"


async def test_a_file_is_not_a_pick(world: World) -> None:
    (world.source / "notes.txt").write_text("x")
    async with browsing(world, "plans") as (_app, pilot, browser):
        await open_folder(pilot, browser, "")
        await highlight(pilot, browser, "notes.txt")
        await pilot.press("s")
        await pilot.pause()
        assert browser.picks["source"] is None
        await highlight(pilot, browser, "")
        await pilot.press("s")
        assert browser.picks["source"] == ("plans", "")



def first_hit(app: DryvIQApp) -> str:
    hits = app.screen.query_one(OptionList)
    return str(hits.get_option_at_index(0).prompt) if hits.option_count else ""


async def test_the_palette_offers_the_browser_keys(world: World) -> None:
    async with browsing(world, "plans") as (app, pilot, browser):
        await pilot.press("ctrl+p")
        await pilot.press(*"source")
        await wait_for(lambda: "Source" in first_hit(app), what="the palette's hit")
        await pilot.press("enter")
        await wait_for(lambda: browser.picks["source"] == ("plans", ""), what="the pick")


def test_the_budget_counts_down_to_its_reset() -> None:
    now = 1_750_000_000.0
    shown = budget_text(Budget("client@host", 3600, 12, now + 125, now + 30, stated=True), 7,
                        now)
    assert shown.splitlines() == [
        "hourly budget 12 of 3,600 calls left",
        f"blocked until {clock(now + 30)} (Procore said slow down)", "resets in 0:02:05",
        "Browsing here: 7 API calls"]
    assert budget_text(None, 0, now).endswith("Browsing here: 0 API calls")


async def test_expand_path_opens_each_folder_down_to_it(world: World) -> None:
    (world.source / "A" / "B").mkdir(parents=True)
    (world.source / "A" / "B" / "c.txt").write_text("c")
    async with browsing(world, "plans") as (_app, _pilot, browser):
        tree = browser.remote_tree
        assert tree is not None
        node = await tree.expand_path("A/B")
        assert node.is_expanded and children(browser, "A/B") == ["c.txt  1 B"]
        with pytest.raises(LookupError, match="no folder 'nowhere'"):
            await tree.expand_path("A/nowhere")
