"""`dryviq-tui web`: its arguments (where it listens: the options and rule of `serve`, in
core/cli/listening.py). The console script hands this command to core.cli (core never imports
the UI); the server itself (tui/web_server.py, aiohttp and textual-serve) is imported only when
the command runs, so other commands start as fast as before."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import deferred
from core.cli.listening import add_listening_arguments

DEFAULT_PORT = 8080


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    web = commands.add_parser(
        "web", help="the app in a browser: prints a one-time link that signs the browser in",
        parents=[leaf["parents"][0]])
    add_listening_arguments(web, DEFAULT_PORT, "the sign-in link and the session")
    web.set_defaults(handler=deferred("tui.web_server", "serve_web"))
