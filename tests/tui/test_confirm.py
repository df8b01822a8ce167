"""The shared yes/no dialog: the safe answer has the focus, so Enter never destroys."""

from textual.app import App

from tui.widgets.confirm import ConfirmScreen


class Asker(App[None]):
    answer: bool | None = None

    def on_mount(self) -> None:
        self.push_screen(ConfirmScreen("Discard?", "Discard"), self._answered)

    def _answered(self, answer: bool | None) -> None:
        self.answer = answer


async def test_enter_keeps_and_the_other_button_confirms() -> None:
    for keys, expected in ((["enter"], False), (["escape"], False),
                           (["shift+tab", "enter"], True)):
        app = Asker()
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press(*keys)
            await pilot.pause()
        assert app.answer is expected, keys
