"""The `dryviq-tui` console script: the headless commands of core.cli, the app when no
subcommand is given, and `web` (the app in a browser). Textual is imported only when the app
opens, so headless commands start fast and run where it is not installed."""

from __future__ import annotations

import sys

from core.cli import main as cli_main
from core.home import Home
from tui import web


async def open_app(home: Home, *, mouse: bool = True, greeting: str | None = None,
                   background_runs: bool = True) -> int:
    from tui.app import run

    return await run(home, mouse=mouse, greeting=greeting, background_runs=background_runs)


def main() -> int:
    return cli_main(open_app=open_app, ui_commands=[web.register])


if __name__ == "__main__":
    sys.exit(main())
