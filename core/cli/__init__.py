"""`dryviq-tui`: the command-line entry point.

Headless commands run on the same core as the TUI and never import textual, so they start fast
and work from cron. With no subcommand the TUI opens: the console script (tui/__main__.py)
hands `main` the function that opens it, so core/ itself never imports the TUI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from core import __version__
from core.home import ConfigError, Home
from core.paths import printable
from core.state import State, StateError


class UsageError(Exception):
    """Bad input from the user: printed as an error, exit code 2, nothing changed."""


Command = Callable[[argparse.Namespace], Awaitable[int]]


class OpenApp(Protocol):
    """Opens the TUI on a home until the user quits; returns the exit code."""

    def __call__(self, home: Home, *, mouse: bool = True,
                 greeting: str | None = None) -> Awaitable[int]: ...


def deferred(module: str, name: str) -> Command:
    """The handler `name` of `module`, imported when its command runs rather than when the
    parser is built: commands that need the sign-in libraries or the sandbox should not slow
    every other command's start."""
    async def handler(args: argparse.Namespace) -> int:
        command: Command = getattr(importlib.import_module(module), name)
        return await command(args)

    return handler


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", default=argparse.SUPPRESS, metavar="DIR",
                        help="folder for the state file and run locks (default: $DRYVIQ_HOME, "
                             "else ~/.local/share/dryviq-tui)")
    common.add_argument("--no-mouse", action="store_true", default=argparse.SUPPRESS,
                        help="the app ignores the mouse (avoids stray escape codes when an "
                             "SSH connection drops)")
    return common


def _json() -> argparse.ArgumentParser:
    flag = argparse.ArgumentParser(add_help=False)
    flag.add_argument("--json", action="store_true", help="print JSON for scripts")
    return flag


def build_parser() -> argparse.ArgumentParser:
    from core.cli import connections, demo, jobs, sandbox

    common, as_json = _common(), _json()
    parser = argparse.ArgumentParser(
        prog="dryviq-tui", parents=[common],
        description="Analyze, copy, migrate and sync construction documents between Procore, "
                    "local folders and network shares. Jobs use DryvIQ's job JSON.")
    parser.add_argument("--version", action="version", version=f"dryviq-tui {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    leaf = {"parents": [common, as_json]}
    connections.register(commands, leaf)
    jobs.register(commands, leaf)
    demo.register(commands, leaf)
    sandbox.register(commands, leaf)
    return parser


def main(argv: list[str] | None = None, *, open_app: OpenApp | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.open_app = open_app
    handler: Command | None = getattr(args, "handler", None)
    if handler is None:
        if open_app is None:
            parser.print_help()
            return 0
        handler = _open_app
    try:
        return asyncio.run(handler(args))
    except UsageError as exc:
        print(f"dryviq-tui: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except StateError as exc:
        print(f"dryviq-tui: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"dryviq-tui: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`... --json | head`): not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE


async def _open_app(args: argparse.Namespace) -> int:
    home = Home.resolve(getattr(args, "home", None))
    return await args.open_app(home, mouse=not getattr(args, "no_mouse", False))


@contextlib.asynccontextmanager
async def opened_state(args: argparse.Namespace) -> AsyncIterator[tuple[Home, State]]:
    """The home named by the arguments, created if needed, and its open state file."""
    home = Home.resolve(getattr(args, "home", None))
    home.ensure()
    state = await State.open(home.state_path)
    try:
        yield home, state
    finally:
        await state.close()
