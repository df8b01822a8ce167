"""`dryviq-tui`: the command-line entry point.

Headless commands run on the same core as the TUI and never import textual, so they start fast
and work from cron. With no subcommand the TUI opens: the console script (tui/__main__.py)
hands `main` the function that opens it, so core/ itself never imports the TUI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from core import __version__
from core.home import ConfigError, Home, HomeError
from core.logs import LEVELS, log_to_file, log_to_stderr, stop_logging
from core.paths import printable
from core.state import State, StateDamaged, StateError, StateReadOnly

log = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad input from the user: printed as an error, exit code 2, nothing changed. `details`
    are further lines (each problem of a job file, say)."""

    def __init__(self, message: str, *, details: Sequence[str] = (),
                 path: str | None = None) -> None:
        super().__init__(message)
        self.details = list(details)
        self.path = path


class CommandFailed(Exception):
    """A command ran and failed, nothing saved (Procore refused a sign-in, say): reported as
    every error is, `code` naming it for scripts, exit code 1."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _ArgumentError(Exception):
    """argparse found bad arguments; main reports it the way it reports every error."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that hands its errors to main (so --json can make them JSON) instead
    of printing them and exiting. Subparsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(self, message)


# Commands that only read the state, so they also work on a read-only state file.
READ_ONLY_COMMANDS = frozenset({
    ("connections", "list"), ("connections", "show"),
    ("jobs", "list"), ("jobs", "show"), ("jobs", "history"), ("jobs", "items"),
    ("reports", "list"), ("reports", "show"), ("tokens", "list"),
})
# `ls` is not one of them: listing Procore may refresh the sign-in, and a rotated refresh token
# that cannot be saved would be lost with it.


Command = Callable[[argparse.Namespace], Awaitable[int]]
# adds a subcommand: register(commands, leaf) as each module of core.cli has; the console
# script hands main those of the UI (`web`), so core never imports it
Register = Callable[[argparse._SubParsersAction, dict[str, Any]], None]


class OpenApp(Protocol):
    """Opens the TUI on a home until the user quits; returns the exit code. Without
    `background_runs` quitting never offers to hand runs to a headless process (the demo's
    sandbox is served from this process and would end with it)."""

    def __call__(self, home: Home, *, mouse: bool = True, greeting: str | None = None,
                 background_runs: bool = True) -> Awaitable[int]: ...


def stop_on_signals(stop: asyncio.Event, announce: Callable[[], None]) -> None:
    """First Ctrl-C or SIGTERM: set `stop` (what is in flight finishes, runs end resumable)
    and `announce` it. Second: cancel the command's task (in-flight files are rolled back)."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set():
            if main:
                main.cancel()
            return
        stop.set()
        announce()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


def read_line(prompt: str, *, secret: bool = False) -> str:
    """A line from the person at the terminal, or from stdin when it is not a terminal."""
    if sys.stdin.isatty():
        try:
            return (getpass.getpass(prompt) if secret else input(prompt)).strip()
        except EOFError:
            raise UsageError(f"{prompt.strip(': ')}: no answer") from None
    line = sys.stdin.readline()
    if not line:
        raise UsageError(f"{prompt.strip(': ')}: nothing on stdin")
    return line.strip()


def read_secret(flag: str, variable: str | None, prompt: str) -> str:
    """A secret from the environment variable named by `flag` (never from argv, where `ps`
    shows it), else asked for at the terminal or read from stdin's first line."""
    if variable is None:
        return read_line(prompt, secret=True)
    value = os.environ.get(variable)
    if not value:
        raise UsageError(f"{flag}: ${variable} is not set")
    return value


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
                        help="folder for the state file, run locks and logs (default: "
                             "$DRYVIQ_HOME, else ~/.local/share/dryviq-tui)")
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="also show the log on stderr (-vv: with debug records)")
    common.add_argument("--log-level", choices=LEVELS, default=argparse.SUPPRESS,
                        type=str.lower, metavar="LEVEL",
                        help=f"least important records kept in the log: {', '.join(LEVELS)} "
                             "(default: info)")
    return common


def add_mouse_option(parser: argparse.ArgumentParser) -> None:
    """--no-mouse, for the commands that open the app (and only those)."""
    parser.add_argument("--no-mouse", action="store_true", default=argparse.SUPPRESS,
                        help="the app ignores the mouse (avoids stray escape codes when an "
                             "SSH connection drops)")


def _json() -> argparse.ArgumentParser:
    flag = argparse.ArgumentParser(add_help=False)
    flag.add_argument("--json", action="store_true",
                      help="print JSON for scripts (errors too, on stdout)")
    return flag


def build_parser(ui_commands: Sequence[Register] = ()) -> argparse.ArgumentParser:
    from core.cli import (
        agent,
        analyze,
        connections,
        demo,
        doctor,
        jobs,
        reports,
        sandbox,
        secrets,
        serve,
    )

    common, as_json = _common(), _json()
    parser = _Parser(
        prog="dryviq-tui", parents=[common],
        description="Analyze, copy, migrate and sync construction documents between Procore, "
                    "local folders and network shares. Jobs use DryvIQ's job JSON.")
    parser.add_argument("--version", action="version", version=f"dryviq-tui {__version__}")
    add_mouse_option(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    leaf = {"parents": [common, as_json]}
    connections.register(commands, leaf)
    jobs.register(commands, leaf)
    demo.register(commands, leaf)
    add_mouse_option(commands.choices["demo"])  # the demo opens the app
    sandbox.register(commands, leaf)
    doctor.register(commands, leaf)
    analyze.register(commands, leaf)
    reports.register(commands, leaf)
    agent.register(commands, leaf)
    serve.register(commands, leaf)
    secrets.register(commands, leaf)
    for register in ui_commands:
        register(commands, leaf)
    return parser


@dataclass(frozen=True)
class Failure:
    """An error as main reports it: a stable code for scripts, a one-line message, the file or
    folder it concerns, further lines, and the exit code."""

    code: str
    message: str
    exit_code: int
    path: str | None = None
    details: tuple[str, ...] = ()

    def report(self, as_json: bool) -> None:
        """JSON on stdout with --json (`{"error": {...}}`), else lines on stderr."""
        if as_json:
            error = {"code": self.code, "message": self.message, "path": self.path}
            if self.details:
                error["details"] = list(self.details)
            json.dump({"error": error}, sys.stdout, indent=2)
            sys.stdout.write("\n")
            sys.stdout.flush()
            return
        print(f"dryviq-tui: error: {printable(self.message)}", file=sys.stderr)
        for line in self.details:
            print(f"  {printable(line)}", file=sys.stderr)


# what main reports as errors
REPORTED = (UsageError, CommandFailed, HomeError, ConfigError, StateError)


def failure(exc: UsageError | CommandFailed | HomeError | ConfigError | StateError) -> Failure:
    """The Failure an expected error stands for (anything else is a bug: a traceback)."""
    if isinstance(exc, CommandFailed):
        return Failure(exc.code, str(exc), 1)
    if isinstance(exc, UsageError):
        return Failure("usage", str(exc), 2, exc.path, tuple(exc.details))
    if isinstance(exc, HomeError):
        return Failure("home", str(exc), 2, str(exc.path))
    if isinstance(exc, ConfigError):
        return Failure("config", str(exc), 2)
    code = {StateDamaged: "state_damaged", StateReadOnly: "state_read_only"}.get(
        type(exc), "state")
    return Failure(code, str(exc), 1, str(exc.path) if exc.path else None)


def _wants_json(argv: Sequence[str]) -> bool:
    return "--json" in argv[:argv.index("--")] if "--" in argv else "--json" in argv


def main(argv: list[str] | None = None, *, open_app: OpenApp | None = None,
         ui_commands: Sequence[Register] = ()) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(ui_commands)
    try:
        args = parser.parse_args(argv)
    except _ArgumentError as exc:
        if _wants_json(argv):
            Failure("usage", str(exc), 2).report(as_json=True)
        else:
            exc.parser.print_usage(sys.stderr)
            print(f"{exc.parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    args.open_app = None if open_app is None else _app_owning_the_terminal(open_app)
    as_json = bool(getattr(args, "json", False))
    verbose = getattr(args, "verbose", 0)
    handler: Command | None = getattr(args, "handler", None)
    if handler is None:
        if open_app is None:
            parser.print_help()
            return 0
        handler = _open_app
    level = getattr(args, "log_level", "info")
    log_to_stderr(("debug" if verbose > 1 else level) if verbose else None)
    try:
        code = asyncio.run(handler(args))
        log.info("%s: exit code %d", " ".join(_command_words(args)) or "app", code)
        return code
    except REPORTED as exc:
        found = failure(exc)
        log.error("%s", found.message)
        found.report(as_json)
        return found.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`... --json | head`): not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    finally:
        stop_logging()


def open_home(args: argparse.Namespace) -> Home:
    """The home named by the arguments, created if needed (HomeError if it cannot be used),
    with its log file open and this command recorded in it."""
    home = Home.resolve(getattr(args, "home", None))
    warnings = home.ensure()
    try:
        log_to_file(home.logs_path, getattr(args, "log_level", "info"))
    except OSError as exc:  # a read-only home: the command still runs, unlogged
        warnings.append(f"cannot write the log in {home.logs_path} ({exc.strerror})")
    log.info("dryviq-tui %s: %s", __version__, " ".join(_command_words(args)) or "app")
    for warning in warnings:
        log.warning("%s", warning)
        print(f"warning: {warning}", file=sys.stderr)
    return home


def _command_words(args: argparse.Namespace) -> list[str]:
    """The subcommand's words (`jobs run`), for the log: never the arguments, which may name
    things the user would rather not have logged."""
    return [w for w in (getattr(args, "command", None), getattr(args, "action", None),
                        getattr(args, "platform", None)) if isinstance(w, str)]


def _app_owning_the_terminal(open_app: OpenApp) -> OpenApp:
    """`open_app`, which first stops the log going to stderr (-v): the app draws there."""
    def opening(home: Home, *, mouse: bool = True, greeting: str | None = None,
                background_runs: bool = True) -> Awaitable[int]:
        log_to_stderr(None)
        return open_app(home, mouse=mouse, greeting=greeting, background_runs=background_runs)

    return opening


async def _open_app(args: argparse.Namespace) -> int:
    home = open_home(args)  # a bad home is reported here, before the app takes the terminal
    return await args.open_app(home, mouse=not getattr(args, "no_mouse", False))


@contextlib.asynccontextmanager
async def opened_state(args: argparse.Namespace) -> AsyncIterator[tuple[Home, State]]:
    """The home named by the arguments, created if needed, and its open state file. A command
    in READ_ONLY_COMMANDS opens a read-only state file read-only; any other says it needs to
    write it. SQLite's reports of a damaged or read-only file become StateDamaged or
    StateReadOnly, which say what to do."""
    home = open_home(args)
    read_only = (getattr(args, "command", None), getattr(args, "action", None)) in \
        READ_ONLY_COMMANDS
    state = await State.open_home(home, read_only_ok=read_only,
                                  purpose=f"dryviq-tui {' '.join(_command_words(args))}")
    try:
        yield home, state
    except state.DatabaseError as exc:
        raise state.translate(exc) from None
    finally:
        await state.close()
