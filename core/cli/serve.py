"""`dryviq-tui serve`: the DryvIQ-compatible REST API over a home, and `dryviq-tui tokens`: the
bearer tokens it accepts.

`serve` listens on loopback unless told otherwise; any other address needs TLS (--cert/--key)
or an explicit --insecure-http, since tokens would otherwise cross the network in clear text.
It runs the home's schedules while no agent does (core/scheduling.py), so a job started over
the API runs with `serve` alone. SIGTERM or Ctrl-C stops it as it stops the agent: no new run,
the files in flight finish, each run ends interrupted and resumable, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import ssl
import sys
from typing import TYPE_CHECKING, Any

from core.api.tokens import (
    ApiToken,
    TokenExists,
    create_token,
    list_tokens,
    revoke_token,
)
from core.cli import UsageError, opened_state, stop_on_signals
from core.cli.agent import note_line, say
from core.cli.listening import (
    add_listening_arguments,
    checked_tls,
    listening_socket,
    reachable_name,
)
from core.cli.output import emit_json, table, when
from core.home import Home
from core.scheduling import schedule_unless_agent

if TYPE_CHECKING:  # the web server and the API are imported when `serve` runs, not with
    import uvicorn  # every command's parser

    from core.api.context import Api

DEFAULT_PORT = 9090
# seconds an open response (an event stream) may hold up the stop before it is cut
GRACEFUL_SHUTDOWN = 5


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    serve = commands.add_parser(
        "serve", help="serve the DryvIQ-compatible REST API (and run the schedules) until "
                      "SIGTERM", **leaf)
    add_listening_arguments(serve, DEFAULT_PORT, "tokens")
    serve.set_defaults(handler=_serve)

    group = commands.add_parser("tokens", help="the bearer tokens the REST API accepts")
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="make a token; its secret is printed once",
                            **leaf)
    create.add_argument("name", help="what the token is for (unique)")
    create.add_argument("--read-only", action="store_true",
                        help="the token may only read (GET), never change anything")
    create.set_defaults(handler=_create)
    sub.add_parser("list", help="every token (never its secret)", **leaf).set_defaults(
        handler=_list)
    revoke = sub.add_parser("revoke", help="stop a token working, at once", **leaf)
    revoke.add_argument("token", metavar="NAME|ID", help="the token's name or id")
    revoke.set_defaults(handler=_revoke)


# -- serve ---------------------------------------------------------------------------------


def _public_url(host: str, sock: socket.socket, *, tls: bool, loopback: bool) -> str:
    """How clients reach the server: the bound address (loopback), else the name given."""
    name = reachable_name(sock.getsockname()[0] if loopback else host)
    return f"{'https' if tls else 'http'}://{name}:{sock.getsockname()[1]}"


def _server(api: Api, tls: tuple[str, str] | None) -> uvicorn.Server:
    """uvicorn serving the API, its TLS files checked; the signals are left to stop_on_signals
    (uvicorn's own handlers would raise SIGTERM again once it has stopped, ending the process
    before the runs have stopped)."""
    import uvicorn

    from core.api.app import build_app

    config = uvicorn.Config(
        build_app(api), lifespan="off", log_level="warning", access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN, server_header=False,
        ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None)
    try:
        config.load()
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--cert/--key: cannot use them for TLS ({exc})") from None
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    return server


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


async def _serve(args: argparse.Namespace) -> int:
    from core.api.auth import is_loopback
    from core.api.context import Api

    tls = checked_tls(args)
    loopback = is_loopback(args.host)
    stop = asyncio.Event()
    stop_on_signals(stop, lambda: say(
        "stopping: no new runs; the files in flight finish (again to stop now)"))
    with listening_socket(args.host, args.port) as sock:
        async with opened_state(args) as (home, state):
            api = Api(home, state, _public_url(args.host, sock, tls=tls is not None,
                                         loopback=loopback),
                      loopback_only=loopback, stopping=stop)  # streams end on the signal
            server = _server(api, tls)
            if not loopback and tls is None:
                _warn(f"serving plain http on {args.host}: every request's token crosses the "
                      "network in clear text, readable by anyone on the way. Use --cert and "
                      "--key unless this network is yours alone.")
            say(f"serving the REST API of {home.root} at {api.public_url}/v1/ "
                "(Ctrl-C to stop)")
            if not await list_tokens(state):
                say(f"no token yet: make one with `{_token_command(home)}`")
            return await _until_stopped(server, sock, state, home, stop)


def _token_command(home: Home) -> str:
    return f"dryviq-tui --home {home.root} tokens create NAME"


async def _until_stopped(server: uvicorn.Server, sock: socket.socket, state: Any, home: Home,
                         stop: asyncio.Event) -> int:
    """Serve and schedule until `stop` (the first signal); then stop both, letting the runs
    end resumable. A second signal cancels this and the runs with it."""
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="serve")
    scheduling = asyncio.create_task(schedule_unless_agent(
        state, home, "serve", on_note=lambda note: say(note_line(note)),
        on_change=lambda now: say(now.words)), name="schedules")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        scheduling.cancel()  # once: the scheduler asks its runs to stop and waits for them
        await asyncio.gather(scheduling, return_exceptions=True)
        await serving
    except asyncio.CancelledError:  # the second signal
        for task in (serving, scheduling):
            task.cancel()
        await asyncio.gather(serving, scheduling, return_exceptions=True)
        say("stopped now: the files in flight were rolled back; each run continues where it "
            "stopped")
        return 0
    finally:
        stopping.cancel()
    say("stopped")
    return 0


# -- tokens --------------------------------------------------------------------------------


def _token_row(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "read_only": token.read_only,
            "created_at": token.created_at, "last_used_at": token.last_used_at}


async def _create(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        try:
            token, secret = await create_token(state, args.name, read_only=args.read_only)
        except TokenExists as exc:
            raise UsageError(f"{exc}; revoke it first or pick another name") from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        emit_json({**_token_row(token), "token": secret})
        return 0
    access = "read-only" if token.read_only else "read and write"
    print(f"token {token.name!r} (id {token.id}, {access}); it is shown only now, keep it: "
          "clients send it as `Authorization: Bearer <token>`", file=sys.stderr)
    print(secret)
    return 0


async def _list(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        tokens = await list_tokens(state)
    if args.json:
        emit_json([_token_row(token) for token in tokens])
    elif not tokens:
        print("no tokens: make one with `dryviq-tui tokens create NAME`", file=sys.stderr)
    else:
        print(table([(token.name, token.id, "read-only" if token.read_only else "read-write",
                      when(token.created_at), when(token.last_used_at) or "never")
                     for token in tokens], ("NAME", "ID", "ACCESS", "CREATED", "LAST USED")))
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    async with opened_state(args) as (_, state):
        token = await revoke_token(state, args.token)
    if token is None:
        raise UsageError(f"no token named {args.token!r} or with that id "
                         "(`dryviq-tui tokens list` shows them)")
    if args.json:
        emit_json({"revoked": _token_row(token)})
    else:
        print(f"revoked token {token.name!r} (id {token.id}): it no longer works")
    return 0
