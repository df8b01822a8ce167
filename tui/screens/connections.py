"""The connections list: where each connection points, who it signs in as, how its last test
went; add, sign in again, test, remove and browse from here. Everything it does goes through
core (the same calls as `dryviq-tui connections ...`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Static

from core.connections import (
    ConnectionInputError,
    removal_refusal,
    remove_connection,
    test_connection,
)
from core.connectors.base import ConnectorError
from core.connectors.procore import signed_in_as
from core.home import ConfigError
from core.state import Connection
from tui.screens import AppScreen
from tui.screens.add_connection import AddConnectionScreen, platform_title
from tui.screens.browser import BrowserScreen
from tui.service import AppService
from tui.widgets.conn_commands import ScreenKeysProvider
from tui.widgets.fitted_table import FittedTable
from tui.widgets.format import plain, printable
from tui.widgets.list_filter import ListFilter, leave_filter
from tui.widgets.theme import BLUE, GREEN, RED

COLUMNS = (("name", "Name"), ("platform", "Platform"), ("status", "Status"),
           ("where", "Account / where"))
FLEXIBLE = {"name": 40, "where": 100}  # names and places share what is left, names capped
EMPTY = ("No connections yet. Press [b]a[/b] to add a Procore project, a local folder, an SMB "
         "file share or cloud storage (an rclone remote).")
STATUS_STYLES = {"untested": "dim", "testing…": BLUE, "ok": GREEN, "failed": f"bold {RED}"}


def account(connection: Connection, where: str) -> str:
    """Where it points, and for a signed-in platform who it signs in as."""
    user = connection.config.get("user")
    return f"{where} · {signed_in_as(user)}" if user else where


class ConnectionsScreen(AppScreen[None]):
    """Every connection; the keys act on the highlighted one."""

    SUB_TITLE = "Connections"
    AUTO_FOCUS = "#connections-table"
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {
        ScreenKeysProvider}
    DEFAULT_CSS = """
    #connections-body {
        height: 1fr;
    }
    #connections-empty {
        height: auto;
        padding: 1 2;
        color: $text-muted;
    }
    #connections-table {
        height: 1fr;
        min-height: 4;
        overflow-x: hidden;  /* the detail below shows what a narrow terminal cuts off */
    }
    #connections-detail {
        height: auto;
        min-height: 3;
        padding: 0 1;
        border-top: solid $panel;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add", id="add-connection"),
        Binding("e", "edit", "Sign in again", id="edit-connection"),
        Binding("t", "test", "Test", id="test-connection"),
        Binding("x", "remove", "Remove", id="remove-connection"),
        Binding("o", "browse", "Browse", id="browse-connection"),
        Binding("slash", "filter", "Filter", id="filter-connections"),
        Binding("escape", "leave_filter", "Back to the list", id="leave-connections-filter",
                show=False),
    ]

    def __init__(self, service: AppService) -> None:
        super().__init__(service)
        self._rows: dict[str, tuple[Connection, str]] = {}  # id -> (connection, where)
        self._tests: dict[str, tuple[str, str]] = {}  # id -> (status, message): this session
        self._reloading = asyncio.Lock()  # one reload at a time: the last one's cursor wins
        self._wanted: str | None = None  # the connection to highlight at the next reload

    def compose_body(self) -> ComposeResult:
        with Vertical(id="connections-body"):
            yield ListFilter("connections", id="connections-filter")
            yield Static(EMPTY, id="connections-empty")
            yield FittedTable(COLUMNS, FLEXIBLE, id="connections-table")
            yield Static(id="connections-detail", markup=False)

    async def on_mount(self) -> None:
        await self.refresh_connections()

    async def on_screen_resume(self) -> None:
        await self.refresh_connections()  # added or removed elsewhere (the CLI, say)

    async def refresh_connections(self, select: str | None = None) -> None:
        """Reload the list, keeping the highlighted connection (or moving to `select`). A
        connection just added is asked for while the screen's own reload (on its return from
        the dialog) may be under way: reloads take turns, and the one asked for wins."""
        self._wanted = select or self._wanted
        async with self._reloading:
            await self._reload()

    async def _reload(self) -> None:
        current = self.selected
        keep, self._wanted = self._wanted or (current.id if current else None), None
        every = await self.service.connections()
        shown = self.query_one("#connections-filter", ListFilter)
        self._rows = {c.id: (c, where) for c, where in every if shown.matches(c.name, where)}
        table = self.query_one("#connections-table", FittedTable)
        table.show({connection_id: (connection.name, platform_title(connection.platform),
                                    self._status(connection_id), account(connection, where))
                    for connection_id, (connection, where) in self._rows.items()})
        if keep in self._rows:
            table.move_cursor(row=list(self._rows).index(keep))
        empty = self.query_one("#connections-empty", Static)
        empty.display = not self._rows
        empty.update(plain(f"No connection matches “{shown.value.strip()}”. Esc twice clears "
                           "the filter.") if every else EMPTY)
        await self._show_detail()

    @property
    def selected(self) -> Connection | None:
        if not self._rows:
            return None
        row = self.query_one("#connections-table", DataTable).cursor_row
        ids = list(self._rows)
        return self._rows[ids[row]][0] if 0 <= row < len(ids) else None

    def _status(self, connection_id: str) -> Text:
        status, _ = self._tests.get(connection_id, ("untested", ""))
        return Text(status, style=STATUS_STYLES[status])

    @on(DataTable.RowHighlighted, "#connections-table")
    async def _show_detail(self) -> None:
        connection = self.selected
        detail = self.query_one("#connections-detail", Static)
        if connection is None:
            detail.update("")
            return
        where = self._rows[connection.id][1]  # before the await: the list may reload meanwhile
        jobs = await self.service.state.jobs_using(connection.id)
        _, message = self._tests.get(connection.id, ("", "not tested in this session (t tests)"))
        used = ", ".join(printable(j.name) for j in jobs) or "none"
        detail.update(f"{printable(connection.name)}: {printable(account(connection, where))}"
                      f"\nLast test: {printable(message)}\nJobs using it: {used}")

    # -- actions ----------------------------------------------------------------------------

    def _target(self) -> Connection | None:
        connection = self.selected
        if connection is None:
            self.notify("Add a connection first (a)", severity="warning")
        return connection

    def action_add(self) -> None:
        self.app.push_screen(AddConnectionScreen(self.service), self._added)

    async def _added(self, connection: Connection | None) -> None:
        if connection is not None:
            self.notify(f"Added connection {connection.name}", markup=False)
            await self.refresh_connections(select=connection.id)

    def action_edit(self) -> None:
        connection = self._target()
        if connection is None:
            return
        if connection.platform == "smb":
            self.notify(f"{connection.name} takes a new password from the command line: "
                        f"dryviq-tui connections password {connection.name!r}",
                        severity="warning", markup=False)
            return
        if connection.platform != "procore":
            self.notify(f"{connection.name} ({platform_title(connection.platform)}) has no "
                        "sign-in to renew", severity="warning", markup=False)
            return
        self.app.push_screen(AddConnectionScreen(self.service, existing=connection),
                             self._signed_in_again)

    async def _signed_in_again(self, connection: Connection | None) -> None:
        if connection is not None:
            self._tests.pop(connection.id, None)
            self.notify(f"{connection.name}: signed in again as "
                        f"{signed_in_as(connection.config['user'])}", markup=False)
            await self.refresh_connections(select=connection.id)

    def action_test(self) -> None:
        connection = self._target()
        if connection is not None:
            self.run_worker(self._test(connection), group=f"test {connection.id}",
                            exclusive=True)

    async def _test(self, connection: Connection) -> None:
        """Test in a worker: a Procore test is a few API calls, the screen stays live."""
        self._set_test(connection.id, "testing…", "testing…")
        try:
            message = await test_connection(self.service.state, self.service.home, connection)
        except (ConnectorError, ConfigError) as exc:
            message = f"Connection test failed: {exc}"
            self._set_test(connection.id, "failed", message)
            self.notify(message, title=connection.name, severity="error", markup=False)
            return
        self._set_test(connection.id, "ok", message)
        self.notify(message, title=connection.name, markup=False)

    def _set_test(self, connection_id: str, status: str, message: str) -> None:
        self._tests[connection_id] = (status, message)
        if connection_id in self._rows:
            self.call_later(self.refresh_connections)

    async def action_remove(self) -> None:
        connection = self._target()
        if connection is None:
            return
        refusal = await removal_refusal(self.service.state, connection)
        if refusal:
            self.notify(f"Cannot remove: {refusal}", severity="error", markup=False)
            return
        self.app.push_screen(ConfirmRemoveScreen(connection), self._confirmed)

    async def _confirmed(self, connection: Connection | None) -> None:
        if connection is None:
            return
        try:
            warning = await remove_connection(self.service.state, self.service.home, connection)
        except ConnectionInputError as exc:  # a job was made meanwhile
            self.notify(str(exc), severity="error", markup=False)
            return
        if warning:
            self.notify(warning, severity="warning", markup=False)
        self._tests.pop(connection.id, None)
        self.notify(f"Removed connection {connection.name}", markup=False)
        await self.refresh_connections()

    # -- the filter ---------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.query_one("#connections-filter", ListFilter).open()

    @on(Input.Changed, "#connections-filter")
    async def _filter_changed(self) -> None:
        await self.refresh_connections()

    @on(Input.Submitted, "#connections-filter")
    def action_leave_filter(self) -> None:
        """From the filter back to the list; on the list, Esc clears the filter."""
        leave_filter(self.query_one("#connections-filter", ListFilter),
                     self.query_one("#connections-table", DataTable))

    @on(DataTable.RowSelected, "#connections-table")
    async def action_browse(self) -> None:
        connection = self._target()
        if connection is None:
            return
        await self.app.switch_mode("browser")
        browser = self.app.screen
        if isinstance(browser, BrowserScreen):
            await browser.browse(connection.id)


class ConfirmRemoveScreen(ModalScreen[Connection | None]):
    """Asks before a connection (and its stored sign-in) is deleted."""

    DEFAULT_CSS = """
    ConfirmRemoveScreen {
        align: center middle;
    }
    #remove-dialog {
        max-width: 70;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Cancel", id="close-remove-connection")]

    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self.connection = connection

    def compose(self) -> ComposeResult:
        with Vertical(id="remove-dialog", classes="dialog"):
            yield Static(f"Remove connection {printable(self.connection.name)}?",
                         classes="dialog-title",
                         markup=False)
            yield Static("Its stored credentials go with it. No job uses it, and the files it "
                         "points to are not touched.", classes="hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Remove", id="remove-ok", variant="error", compact=True)
                yield Button("Cancel", id="remove-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#remove-cancel", Button).focus()  # the safe answer: Enter keeps it

    @on(Button.Pressed, "#remove-ok")
    def _remove(self) -> None:
        self.dismiss(self.connection)

    @on(Button.Pressed, "#remove-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
