"""The `/` filter of a list screen (jobs, connections): typing narrows the rows to those whose
name (or other text) contains what was typed, ignoring case, as the browser's filter does."""

from __future__ import annotations

from textual import events
from textual.widget import Widget
from textual.widgets import Input


class ListFilter(Input):
    """Hidden until `open()`; stays in view while it holds text, so a narrowed list says so."""

    DEFAULT_CSS = """
    ListFilter {
        display: none;
    }
    ListFilter.-shown {
        display: block;
    }
    """

    def __init__(self, what: str, **kwargs: object) -> None:
        super().__init__(placeholder=f"filter {what} by name · Enter: back to the list · "
                                     "Esc twice: clear", compact=True, **kwargs)  # type: ignore[arg-type]

    def open(self) -> None:
        self.add_class("-shown")
        self.focus()

    def clear_filter(self) -> None:
        self.value = ""
        self.remove_class("-shown")

    def on_blur(self, _event: events.Blur) -> None:
        self.set_class(bool(self.value), "-shown")

    def matches(self, *texts: str) -> bool:
        wanted = self.value.strip().casefold()
        return not wanted or any(wanted in text.casefold() for text in texts)


def leave_filter(shown: ListFilter, the_list: Widget) -> None:
    """Esc (or Enter) in the filter goes back to the list, the filter kept; Esc on the list
    clears the filter."""
    if not shown.has_focus:
        shown.clear_filter()
    the_list.focus()
