"""One platform's part of the Add connection dialog: its fields, what Done does with them, and
where an error that concerns one field is shown (under that field, its input kept, the focus
on it), so the user sees at once what to fix."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, Static

from core.state import Connection
from tui.service import AppService
from tui.widgets.format import plain

# An error concerns the first field (a selector) one of whose openings starts it, lower-cased:
# core's messages open on what they are about ("share 'x' not found on ...", "port 0: ...")
FieldOpenings = tuple[tuple[str, tuple[str, ...]], ...]


def form_row(label: str, *widgets: Any, id: str | None = None) -> Horizontal:
    """A label and its field(s), as every form of the dialog lines them up."""
    return Horizontal(Label(label, classes="conn-label"), *widgets, classes="conn-row", id=id)


def field_error(field: str) -> Static:
    """The line under a field where an error about it is shown (hidden until then)."""
    return Static(id=f"{field}-error", classes="field-error conn-field-error", markup=False)


def field_for(message: str, openings: FieldOpenings) -> str | None:
    """The field an error message is about, by how it opens, or None. Only the opening: the
    rest holds the user's own names (a share called "Shared Projects", say)."""
    lowered = message.lower()
    return next((field for field, starts in openings if lowered.startswith(starts)), None)


class PlatformForm(Vertical):
    """One platform's part of the dialog: its fields, and what Done does with them."""

    key: ClassVar[str]  # Connection.platform
    title: ClassVar[str]  # as the platform list shows it
    short_title: ClassVar[str] = ""  # in a table's column, where the title is too long
    default_name: ClassVar[str] = ""  # the name when "Display as" is left empty
    field_openings: ClassVar[FieldOpenings] = ()  # which field an error concerns (field_for)

    def __init__(self, service: AppService) -> None:
        super().__init__(id=f"platform-{self.key}", classes="platform-form")
        self.service = service

    def ready(self) -> bool:
        """Whether Done can save now, so Enter in a field may press it."""
        raise NotImplementedError

    def in_progress(self) -> bool:
        """Whether closing would throw away work beyond the typed fields (a sign-in)."""
        return False

    def shown(self) -> None:
        """The user chose this platform: a form may now read what it offers."""

    def saving_note(self) -> str:
        """What Done is doing while it runs (a connection being tried), or '' if instant."""
        return ""

    async def finish(self, name: str) -> Connection:
        """Save the connection; ConnectionInputError says what to fix."""
        raise NotImplementedError

    def clear_errors(self) -> None:
        for shown in self.query(".conn-field-error"):
            shown.display = False

    def show_error(self, error: Exception, *, focus: bool = True) -> bool:
        """Show the error under the field it concerns (and focus that field); False when it
        concerns none (the dialog then shows it above its buttons)."""
        message = self.error_text(error)
        field = field_for(self.error_opening(message), self.field_openings)
        if field is None:
            return False
        shown = self.query_one(f"{field}-error", Static)
        shown.update(plain(f"⚠ {message}"))
        shown.display = True
        if focus:
            self.query_one(field, Widget).focus()
        self.call_after_refresh(shown.scroll_visible, animate=False)  # laid out by then
        return True

    def error_opening(self, message: str) -> str:
        """The message as field_for reads it: a form drops a name of the user's it opens on."""
        return message

    def error_text(self, error: Exception) -> str:
        """The part of the error to show under a field (a form may drop what it repeats)."""
        return str(error)
