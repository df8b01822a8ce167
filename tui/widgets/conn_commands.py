"""Command-palette entries for the keys of the screen in view (the connections list, the
browser): every action there is reachable by name as well as by its key."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.types import IgnoreReturnCallbackType


class ScreenKeysProvider(Provider):
    """The screen's own key bindings, by their descriptions."""

    def _commands(self) -> Iterator[tuple[str, str, IgnoreReturnCallbackType]]:
        screen = self.screen
        for active in screen.active_bindings.values():  # as remapped in config.toml
            binding = active.binding
            if active.node is screen and binding.description and binding.show:
                key = self.app.get_key_display(binding)
                what = f"{binding.tooltip} · " if binding.tooltip else ""
                yield (binding.description, f"{what}{screen.sub_title}: key {key}",
                       partial(screen.run_action, binding.action))

    async def discover(self) -> Hits:
        for name, help_text, run in self._commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, run in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
