"""The keys in effect where the user is: the screen's own and the app's global ones, each with
its description and the binding id that remaps it in config.toml's `[keys]` (tui/keymap.py).

Read from the screen's active bindings, so it shows the keys as remapped and as they act now
(in a form, the app's one-letter keys are the form's and are not listed).
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from tui.widgets.format import plain

REMAP = ('Remap a key in config.toml with its id, e.g.\n[keys]\nrun-job = "ctrl+r"\n'
         "(several keys: \"ctrl+r,f5\"). Esc, ? or F1 closes this.")


def key_groups(app: App[object], screen: Screen[object]) -> dict[str, list[tuple[str, str,
                                                                                     str]]]:
    """(key, description, binding id) of every described key in effect on `screen`, by where
    it acts: this screen, or everywhere."""
    title = screen.sub_title or screen.title or "This screen"
    groups: dict[str, list[tuple[str, str, str]]] = {f"On {title}": [], "Everywhere": []}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if not binding.description or active.node not in (app, screen):
            continue  # a widget's own keys (a list's arrows) are the usual ones
        where = "Everywhere" if active.node is app else f"On {title}"
        shown = app.get_key_display(Binding(key, binding.action))
        groups[where].append((shown, binding.tooltip or binding.description, binding.id or ""))
    return {where: sorted(rows, key=lambda row: row[2] or "~" + row[1])
            for where, rows in groups.items() if rows}


def keys_table(groups: dict[str, list[tuple[str, str, str]]]) -> Table:
    table = Table(box=None, expand=True, pad_edge=False, show_header=True,
                  header_style="bold")
    table.add_column("Key", no_wrap=True)
    table.add_column("Does")
    table.add_column("Binding id", no_wrap=True, style="dim")
    for where, rows in groups.items():
        table.add_row(plain(where, style="bold underline"), "", "")  # may name a job
        for key, description, binding_id in rows:
            table.add_row(plain(key), plain(description), plain(binding_id or "(fixed)"))
        table.add_row("", "", "")
    return table


class HelpScreen(ModalScreen[None]):
    """The keys of the screen it was opened over, and the global ones."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen .dialog {
        max-width: 90;
    }
    #help-keys {
        height: auto;
        max-height: 100%;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,f1", "dismiss", "Close", id="close-help")]

    def __init__(self, over: Screen[object]) -> None:
        super().__init__()
        self.over = over
        self.groups: dict[str, list[tuple[str, str, str]]] = {}

    @property
    def lines(self) -> list[str]:
        """What the table says, a line per key ("key  description  id"), by group."""
        return [line for where, rows in self.groups.items()
                for line in (where, *("  ".join(row) for row in rows))]

    def compose(self) -> ComposeResult:
        self.groups = key_groups(self.app, self.over)
        with Vertical(classes="dialog"):
            yield Static("Keys", classes="dialog-title")
            with VerticalScroll(id="help-keys"):
                yield Static(keys_table(self.groups), id="help-table")
                yield Static(REMAP, classes="hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-keys").focus()
