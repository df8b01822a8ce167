"""Asked on quit while jobs started in the app run: which stop, that they resume, and the
choice to hand them to a headless process that keeps going after the app ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from core.paths import printable
from core.state import JobRecord
from tui.widgets.format import count

QuitChoice = Literal["pause", "background"]


def quit_question(jobs: Sequence[JobRecord], background: bool) -> tuple[str, str]:
    """The dialog's title and text for quitting while `jobs` run (`background`: whether
    handing them to a headless process is offered)."""
    title = f"Quit while {count(len(jobs), 'job')} run{'s' if len(jobs) == 1 else ''}?"
    names = ", ".join(printable(job.name) for job in jobs)
    text = (f"Running: {names}.\n"
            "Pause and quit: they stop after the files in flight, and the next run (r, or "
            "`dryviq-tui jobs run`) resumes from where they stopped.")
    if background:
        text += ("\nRun in background: they go on in a headless `dryviq-tui jobs run` after "
                 "the app ends (output in the home's logs/ folder; the monitor attaches to it "
                 "when you come back).")
    return title, text


class QuitScreen(ModalScreen[QuitChoice | None]):
    """Dismisses "pause", "background", or None to keep working (focused; Esc too)."""

    DEFAULT_CSS = """
    QuitScreen {
        align: center middle;
    }
    QuitScreen .dialog {
        max-width: 76;
    }
    """
    AUTO_FOCUS = "#quit-keep"  # the safe answer: Enter twice never stops a run
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "keep", "Keep working", id="close-quit")]

    def __init__(self, jobs: Sequence[JobRecord], *, background: bool = True) -> None:
        super().__init__()
        self.background = background
        self.title_text, self.detail = quit_question(jobs, background)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.detail, classes="hint", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Pause and quit", id="quit-pause", variant="error", compact=True)
                if self.background:
                    yield Button("Run in background", id="quit-background", variant="primary",
                                 compact=True)
                yield Button("Keep working", id="quit-keep", compact=True)

    @on(Button.Pressed, "#quit-pause")
    def _pause(self) -> None:
        self.dismiss("pause")

    @on(Button.Pressed, "#quit-background")
    def _background(self) -> None:
        self.dismiss("background")

    @on(Button.Pressed, "#quit-keep")
    def action_keep(self) -> None:
        self.dismiss(None)
