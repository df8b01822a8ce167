"""A Select that takes typing: a letter typed on it opens the list at the first option that
matches, as in a browser's drop-down, instead of falling through to the app's one-letter keys
(typing "sync" on the Transfer type once opened a second builder and the Connections screen).
"""

from __future__ import annotations

from textual import events
from textual.widgets import Select
from textual.widgets._select import SelectOverlay


class TypeToChoose(Select[str]):
    """Printable keys are its own: typed while closed, they open the list and search it."""

    def check_consume_key(self, key: str, character: str | None = None) -> bool:
        return character is not None and character.isprintable()

    def on_key(self, event: events.Key) -> None:
        if self.expanded or not event.is_printable or event.character in (None, " "):
            return
        event.stop()
        event.prevent_default()
        self.action_show_overlay()
        self.query_one(SelectOverlay).post_message(events.Key(event.key, event.character))
