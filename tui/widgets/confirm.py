"""One yes/no question in a small dialog, for anything that would lose work or data if the
user pressed a key by mistake: discarding a form's edits, deleting a job, quitting mid-run.

    if await self.app.push_screen_wait(ConfirmScreen("Discard the new job?", "Discard")):
        self.dismiss(None)
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from core.paths import printable, printable_lines


class DialogScroll(VerticalScroll):
    """A dialog's long text (a question's detail, a list of errors), scrolled inside the
    dialog so its buttons stay on an 80x24 screen; a tab stop only while it has more to show."""

    def allow_focus(self) -> bool:
        return self.max_scroll_y > 0


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses True when the user confirms, False on the other button or Esc. The safe
    answer (keep working) has the focus, so Enter twice never destroys anything."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen .dialog {
        max-width: 70;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "keep", "Keep", id="close-confirm")]

    def __init__(self, question: str, confirm_label: str, *, detail: str = "",
                 keep_label: str = "Keep editing") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.confirm_label = confirm_label
        self.keep_label = keep_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(printable(self.question), classes="dialog-title", markup=False)
            if self.detail:
                with DialogScroll(classes="dialog-scroll"):
                    yield Static(printable_lines(self.detail), classes="hint", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, id="confirm-yes", variant="error", compact=True)
                yield Button(self.keep_label, id="confirm-no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed, "#confirm-yes")
    def _confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-no")
    def action_keep(self) -> None:
        self.dismiss(False)


def dismiss_unless_kept(dialog: ModalScreen[Any], edited: bool, question: str) -> None:
    """Close `dialog` with None (Esc or Cancel): at once when it holds nothing typed, else
    only once the user confirms that the edits may go."""
    if not edited:
        dialog.dismiss(None)
        return

    def answered(discard: bool | None) -> None:
        if discard:
            dialog.dismiss(None)

    dialog.app.push_screen(ConfirmScreen(question, "Discard"), answered)
