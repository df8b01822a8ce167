"""Screens of the app. Each takes the app's service; none owns long-running work."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen, ScreenResultType
from textual.widgets import Footer, Header, Input, Static, TextArea

from tui.service import AppService

if TYPE_CHECKING:
    from tui.app import DryvIQApp

# Widgets a user types into: one-letter keys never act globally while one of them has focus.
TYPING_WIDGETS = (Input, TextArea)
# Narrower than this, the footer's keys need the room the command palette's hint takes
# (ctrl+p still opens it, and the help screen lists it).
PALETTE_HINT_WIDTH = 100

# The job controls, on every screen that has a job in view; they act on the app's selected job.
JOB_CONTROL_BINDINGS = [
    Binding("r", "app.run_job", "Run", id="run-job"),
    Binding("p", "app.pause_job", "Pause", id="pause-job"),
    Binding("x", "app.cancel_job", "Cancel", id="cancel-job"),
]


class AppScreen(Screen[ScreenResultType]):
    """A full screen of the app: header, the screen's body, and the footer of keys.

    While the user types into a field, printable keys belong to the field: the app's and the
    screen's one-letter keys stand down (Textual drops bindings of the nodes above a widget
    whose `check_consume_key` claims the key). A form screen (`TAKES_TYPING`) claims them
    wherever its focus is, so a key typed on a checkbox or a button never leaves the form.
    """

    TAKES_TYPING: ClassVar[bool] = False

    def __init__(self, service: AppService) -> None:
        super().__init__()
        self.service = service

    @property
    def dryviq(self) -> DryvIQApp:
        return cast("DryvIQApp", self.app)

    def check_consume_key(self, key: str, character: str | None = None) -> bool:
        if character is None or not character.isprintable():
            return False
        return self.TAKES_TYPING or isinstance(self.focused, TYPING_WIDGETS)

    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.compose_body()
        yield Footer(compact=True, show_command_palette=self.app.size.width >= PALETTE_HINT_WIDTH)

    def on_resize(self, event: events.Resize) -> None:
        for footer in self.query(Footer):
            footer.show_command_palette = event.size.width >= PALETTE_HINT_WIDTH

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError


class PlaceholderScreen(AppScreen[None]):
    """Stands in for a screen this build does not have yet, so the app still runs."""

    def __init__(self, service: AppService, title: str, message: str) -> None:
        super().__init__(service)
        self.sub_title = title
        self._message = message

    def compose_body(self) -> ComposeResult:
        yield Static(self._message, classes="placeholder")
