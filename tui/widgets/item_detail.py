"""One item of a job in full: the monitor's flagged and failed rows are too narrow for a long
path and its reason, so Enter on a row opens this."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from core.paths import join
from core.state import ItemRecord, JobRecord
from core.status import destination_name, item_detail, label
from tui.widgets.format import plain, printable, size, when


def item_facts(item: ItemRecord, job: JobRecord) -> list[tuple[str, str]]:
    """What a person checks about one item, in reading order; empty facts left out."""
    new = destination_name(item)
    why = item_detail(dataclasses.replace(item, last_error=None))  # the note, both names
    facts = [
        ("Status", f"{label(item.status)} ({item.status})"),
        ("Source", "/" + join(job.source_path, item.path)),
        ("Destination", "" if item.destination_path is None else "/" + item.destination_path),
        ("New name", new or ""),
        ("Action", item.action),
        ("Size", "" if item.is_dir else size(item.size)),
        ("Attempts", f"{item.attempts:,}" if item.attempts else ""),
        ("Last error", item.last_error or ""),
        ("Why", why),
        ("Modified", when(item.mtime)),
        ("Recorded", when(item.updated_at)),
        ("Execution", f"#{item.execution_id}" if item.execution_id else ""),
    ]
    return [(name, value) for name, value in facts if value]


class ItemDetailScreen(ModalScreen[None]):
    """Every fact about one item, wrapped to the window and scrolled with the arrow keys;
    Esc or Enter closes it."""

    DEFAULT_CSS = """
    ItemDetailScreen {
        align: center middle;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "dismiss", "Close", id="close-item-detail")]

    def __init__(self, item: ItemRecord, job: JobRecord) -> None:
        super().__init__()
        self.item = item
        self.job = job

    def compose(self) -> ComposeResult:
        text = Text()
        for name, value in item_facts(self.item, self.job):
            text.append(f"{name}: ", style="bold")
            text.append(printable(value) + "\n")  # a Text: never read as markup
        text.rstrip()
        with VerticalScroll(classes="dialog", id="item-detail"):
            yield Static(plain(self.item.path.rpartition("/")[2] or "/"), classes="dialog-title")
            yield Static(text, id="item-facts")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="item-close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#item-detail", VerticalScroll).focus()  # the arrows scroll it

    @on(Button.Pressed, "#item-close")
    def _close(self) -> None:
        self.dismiss(None)
