"""The browser: one connection's folders as a lazily loaded tree, the details of what is
highlighted (and whether its name would survive the other end of a job), the API budget a
Procore connection has left, and the picks of a job's source and destination folders.

Connectors are opened as interactive (`Opening(interactive=True)`), so browsing may spend the
budget's reserve and keeps working while a job runs; the open connector is closed when another
connection is chosen or the screen goes away.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select, Static, Tree
from textual.widgets.tree import TreeNode

from core.connections import describe
from core.connectors import Opening, open_connector
from core.connectors.base import Connector, ConnectorError, PathRules
from core.connectors.procore import PROCORE_RULES, procore_app
from core.home import ConfigError
from core.paths import name_problems
from core.state import Connection
from tui.screens import AppScreen
from tui.screens.job_builder import Endpoint
from tui.service import AnalysisTarget, AppService, Budget
from tui.widgets.conn_commands import ScreenKeysProvider
from tui.widgets.format import count, plain, printable, size, when
from tui.widgets.remote_tree import Item, RemoteTree

BUDGET_POLL = 1.0  # seconds: the reset countdown ticks
LABEL_WIDTH = 10
NO_CONNECTIONS = "No connections yet: add one on the Connections screen (c)."
CHOOSE = "Choose a connection above."
SIDES = ("source", "destination")


def other_side(platform: str) -> tuple[str, PathRules]:
    """Whose rules a name must meet at the other end of a job: Procore's when browsing a local
    folder, a file share or cloud storage (a migration in), a local disk's when browsing
    Procore (a copy out)."""
    return ("a local folder", PathRules()) if platform == "procore" else ("Procore", PROCORE_RULES)


def _line(label: str, value: object) -> str:
    """One labelled line of the details; the value printable (names come from the platform)."""
    return f"{label:<{LABEL_WIDTH}} {printable(str(value))}"


def details(connection: Connection, item: Item) -> str:
    """What the details pane says about a node."""
    if item.entry is None:
        return "\n".join((_line("Name", connection.name), _line("Kind", "connection root"),
                          _line("Where", describe(connection)), "",
                          "Enter or Space opens a folder;", "nothing is listed before."))
    entry, path = item.entry, "/" + item.path
    rules_of, rules = other_side(connection.platform)
    lines = [_line("Name", entry.name), _line("Kind", "folder" if entry.is_dir else "file")]
    if not entry.is_dir:
        lines.append(_line("Size", f"{size(entry.size)} ({count(entry.size, 'byte')})"))
    if entry.mtime is not None:
        lines.append(_line("Modified", when(entry.mtime)))
    if entry.version:
        lines.append(_line("Version", entry.version))
    if entry.native_id and connection.platform not in ("local", "smb"):  # a file index: no news
        id_label = "Procore id" if connection.platform == "procore" else "Id"
        lines.append(_line(id_label, entry.native_id))
    lines += [_line("Path", path), _line("Length", f"{len(path)} characters")]
    if entry.skip_reason:
        lines.append(_line("Skipped", entry.skip_reason))
    limit = rules.max_path_length
    problems = name_problems(entry.name, rules)
    if limit is not None and len(path) > limit:
        problems.append(f"path is longer than the {limit} characters allowed")
    if problems:
        lines += [f"⚠ In {rules_of} this name:", *(f"  • {printable(p)}" for p in problems)]
    else:
        lines.append(f"✓ The name fits {rules_of}")
    return "\n".join(lines)


def budget_text(budget: Budget | None, api_calls: int, now: float) -> str:
    """A Procore client's hourly budget as the pacers last recorded it, and this browser's
    share of it."""
    here = f"Browsing here: {count(api_calls, 'API call')}"
    if budget is None:
        return f"No calls recorded yet for\nthis API client.\n{here}"
    return "\n".join([budget.amount(now), *budget.timing(now), here])  # as the monitor says


class BrowserScreen(AppScreen[None]):
    """One connection at a time; `browse(connection_id)` opens one from elsewhere."""

    SUB_TITLE = "Browser"
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {
        ScreenKeysProvider}
    DEFAULT_CSS = """
    #browse-top {
        height: 1;
        padding: 0 1;
    }
    #browse-top Label {
        width: 12;
        color: $text-muted;
    }
    #browse-connection {
        width: 1fr;
    }
    #browse-body {
        height: 1fr;
    }
    #browse-left {
        width: 1fr;
    }
    #browse-side {
        width: 40;
        border-left: vkey $panel;
    }
    #browse-tree-box {
        height: 1fr;
    }
    #browse-message {
        padding: 1 2;
        color: $text-muted;
    }
    #browse-details, #browse-budget, #browse-picks {
        height: auto;
        padding: 0 1;
    }
    #browse-details {
        min-height: 8;
    }
    #browse-budget {
        margin-bottom: 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh_folder", "Refresh", id="refresh"),
        Binding("slash", "filter", "Filter", id="filter-folder"),
        Binding("s", "pick('source')", "Source", id="use-as-source",
                tooltip="Use the highlighted folder as a new job's source"),
        Binding("d", "pick('destination')", "Destination", id="use-as-destination",
                tooltip="Use the highlighted folder as a new job's destination"),
        Binding("n", "new_job", "New job", id="new-job-from-picks",
                tooltip="A new job from the source and destination picked here"),
        Binding("a", "analyze", "Analyze", id="analyze-folder",
                tooltip="Analyze the highlighted folder (listings only, no download)"),
        Binding("escape", "leave_filter", "Back to the folders", id="leave-filter", show=False),
    ]

    def __init__(self, service: AppService) -> None:
        super().__init__(service)
        self.connection: Connection | None = None
        self._connector: Connector | None = None
        self._budget_key: str | None = None  # the Procore API client this connection uses
        self._filtering: TreeNode[Item] | None = None  # the folder the filter narrows
        self.picks: dict[str, Endpoint | None] = dict.fromkeys(SIDES)
        self._wanted: str | None = None  # asked for before the list of connections was read
        self._ready = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="browse-top"):
            yield Label("Connection")
            yield Select[str]([], prompt="(choose a connection)", id="browse-connection",
                              compact=True)
        with Horizontal(id="browse-body"):
            with Vertical(id="browse-left"):
                yield Input(placeholder="/ filters this folder by name",
                            id="browse-filter", compact=True)
                with Vertical(id="browse-tree-box"):
                    yield Static(CHOOSE, id="browse-message", markup=False)
            with Vertical(id="browse-side"):
                yield Static("Details", classes="section")
                yield Static(id="browse-details", markup=False)
                yield Static("API budget", classes="section browse-budget")
                yield Static(id="browse-budget", markup=False, classes="browse-budget")
                yield Static("Job picks", classes="section")
                yield Static(id="browse-picks", markup=False)

    async def on_mount(self) -> None:
        self._show_picks()
        for widget in self.query(".browse-budget"):
            widget.display = False
        ids = await self._load_connections()
        self._ready = True
        wanted = self._wanted or (ids[0] if len(ids) == 1 else None)
        if wanted in ids:
            self.query_one("#browse-connection", Select).value = wanted
        self.set_interval(BUDGET_POLL, self._show_budget)

    async def on_screen_resume(self) -> None:
        if self._ready:
            await self._load_connections()

    async def on_unmount(self) -> None:
        if self._connector is not None:
            await self._connector.close()  # the tree's listings were cancelled with it

    async def _load_connections(self) -> list[str]:
        """The connections to choose from (the one open stays chosen)."""
        connections = [c for c, _ in await self.service.connections()]
        select = self.query_one("#browse-connection", Select)
        current = select.value
        ids = [c.id for c in connections]
        with select.prevent(Select.Changed):
            select.set_options([(plain(c.name), c.id) for c in connections])
            if current in ids:
                select.value = current
        if self.connection is not None and self.connection.id not in ids:
            await self._close_connector()  # removed meanwhile
            self._message(CHOOSE)
        if not connections:
            self._message(NO_CONNECTIONS)
        return ids

    async def browse(self, connection: str) -> None:
        """Show this connection, by id or name (the Connections screen's browse)."""
        found = await self.service.state.find_connection(connection)
        if found is None:
            self.notify(f"No connection {printable(repr(connection))}", severity="error",
                        markup=False)
            return
        if not self._ready:
            self._wanted = found.id
            return
        await self._load_connections()
        self.query_one("#browse-connection", Select).value = found.id

    # -- the open connection ----------------------------------------------------------------

    @on(Select.Changed, "#browse-connection")
    async def _chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and (
                self.connection is None or self.connection.id != event.value):
            await self._open(event.value)

    async def _open(self, connection_id: str) -> None:
        await self._close_connector()
        state = self.service.state
        connection = await state.find_connection(connection_id)
        if connection is None:
            self._message("That connection no longer exists.")
            return
        try:
            secrets = await state.connection_secrets(connection.id)
            connector = open_connector(connection, secrets,
                                       Opening(state, self.service.home, interactive=True))
            budget_key = (procore_app(connection.config, secrets, self.service.home.config())
                          .budget_key if connection.platform == "procore" else None)
        except (ConnectorError, ConfigError, ValueError) as exc:
            self._message(f"⚠ Cannot open {connection.name}: {exc}")
            return
        self.connection, self._connector, self._budget_key = connection, connector, budget_key
        self._message("")
        with self.prevent(Input.Changed):
            self.query_one("#browse-filter", Input).value = ""  # it narrowed the last tree
        tree = RemoteTree(connector, connection.name, id="browse-tree")
        await self.query_one("#browse-tree-box").mount(tree)
        tree.focus()
        self._show_details(tree.root)
        await self._show_budget()

    async def _close_connector(self) -> None:
        """Remove the tree (its listings stop with it), then close its connector."""
        await self.query(RemoteTree).remove()
        self._filtering = None
        connector, self._connector = self._connector, None
        self.connection = self._budget_key = None
        if connector is not None:
            await connector.close()

    def _message(self, text: str) -> None:
        message = self.query_one("#browse-message", Static)
        message.update(plain(text))
        message.display = bool(text)

    @property
    def remote_tree(self) -> RemoteTree | None:
        found = self.query(RemoteTree)
        return found.first() if found else None

    # -- details and budget -----------------------------------------------------------------

    @on(Tree.NodeHighlighted, "#browse-tree")
    def _highlighted(self, event: Tree.NodeHighlighted[Item]) -> None:
        self._show_details(event.node)

    def _show_details(self, node: TreeNode[Item]) -> None:
        item = node.data
        if self.connection is None or item is None:
            return
        text = str(node.label) if item.note else details(self.connection, item)  # printable
        self.query_one("#browse-details", Static).update(text)

    async def _show_budget(self) -> None:
        if not self.is_current:
            return  # another mode is in view
        shown = self._budget_key is not None
        for widget in self.query(".browse-budget"):
            widget.display = shown
        if self._budget_key is None:
            return
        budgets = {b.client: b for b in await self.service.budgets()}
        usage = getattr(self._connector, "usage", None)
        self.query_one("#browse-budget", Static).update(budget_text(
            budgets.get(self._budget_key), usage.api_calls if usage else 0, time.time()))

    # -- actions ----------------------------------------------------------------------------

    def _tree_or_hint(self) -> RemoteTree | None:
        tree = self.remote_tree
        if tree is None:
            self.notify(CHOOSE, severity="warning")
        return tree

    def action_refresh_folder(self) -> None:
        tree = self._tree_or_hint()
        if tree is not None:
            tree.refresh_folder()

    def action_filter(self) -> None:
        self.query_one("#browse-filter", Input).focus()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """The filter narrows the folder the user was in when they went to type."""
        tree = self.remote_tree
        if event.widget.id == "browse-filter" and tree is not None:
            self._filtering = tree.folder_node()

    @on(Input.Changed, "#browse-filter")
    def _filter(self, event: Input.Changed) -> None:
        tree = self.remote_tree
        if tree is not None:
            tree.filter_folder(event.value, self._filtering or tree.folder_node())

    @on(Input.Submitted, "#browse-filter")
    def action_leave_filter(self) -> None:
        """Back to the tree; the filter stays as typed."""
        if self.remote_tree is not None:
            self.remote_tree.focus()

    def _highlighted_folder(self, needs: str) -> tuple[Connection, Item] | None:
        """The open connection and its highlighted folder; else says what `needs` a folder."""
        tree = self._tree_or_hint()
        if tree is None or self.connection is None:
            return None
        node = tree.cursor_node
        item = node.data if node else None
        if item is None or not item.is_folder:
            self.notify(f"{needs} is a folder: highlight a folder (or the top)",
                        severity="warning")
            return None
        return self.connection, item

    def action_pick(self, side: str) -> None:
        found = self._highlighted_folder(f"A job's {side}")
        if found is None:
            return
        connection, item = found
        self.picks[side] = (connection.name, item.path)
        self._show_picks()
        self.notify(printable(f"{side.capitalize()}: {connection.name}:/{item.path}"),
                    markup=False)

    def _show_picks(self) -> None:
        lines = [f"{side.capitalize():<12}" + (printable(f"{pick[0]}:/{pick[1]}") if pick else
                                                f"(press {side[0]} on a folder)")
                 for side, pick in self.picks.items()]
        lines.append("n: a new job from these picks")
        self.query_one("#browse-picks", Static).update("\n".join(lines))

    async def action_analyze(self) -> None:
        """Walk the highlighted folder on the Analyze screen."""
        found = self._highlighted_folder("What Analyze walks")
        if found is not None:
            connection, item = found
            await self.dryviq.open_analysis(AnalysisTarget(connection.name, item.path),
                                            start=True)

    def action_new_job(self) -> None:
        self.dryviq.open_builder(self.picks["source"], self.picks["destination"])
