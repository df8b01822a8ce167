"""Screens of the app. Each takes the app's service; none owns long-running work."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen, ScreenResultType
from textual.widgets import Footer, Header, Static

from tui.service import AppService

if TYPE_CHECKING:
    from tui.app import DryvIQApp

# The job controls, on every screen that has a job in view; they act on the app's selected job.
JOB_CONTROL_BINDINGS = [
    Binding("r", "app.run_job", "Run", id="run-job"),
    Binding("p", "app.pause_job", "Pause", id="pause-job"),
    Binding("x", "app.cancel_job", "Cancel", id="cancel-job"),
]


class AppScreen(Screen[ScreenResultType]):
    """A full screen of the app: header, the screen's body, and the footer of keys."""

    def __init__(self, service: AppService) -> None:
        super().__init__()
        self.service = service

    @property
    def dryviq(self) -> DryvIQApp:
        return cast("DryvIQApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.compose_body()
        yield Footer(compact=True)

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
