"""`dryviq-tui sandbox`: serve the embedded Procore-compatible API, for trying things out
without a Procore account (and for scripts that test against it)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    sandbox = commands.add_parser(
        "sandbox", help="serve the embedded Procore-compatible API with sample projects",
        parents=[leaf["parents"][0]])
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on "
                                                             "(default: 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=0,
                         help="port of the API and sign-in (default: any free port)")
    sandbox.add_argument("--storage-port", type=int, default=0,
                         help="port of the file storage host (default: any free port)")
    sandbox.add_argument("--hourly-limit", type=int, default=3600, metavar="N",
                         help="API calls per client per hourly window (default: 3600)")
    sandbox.add_argument("--hourly-window", type=float, default=3600.0, metavar="SECONDS",
                         help="length of the 'hourly' window (default: 3600; shorten it to "
                              "see a paused job continue soon)")
    sandbox.add_argument("--spike-limit", type=int, default=100, metavar="N",
                         help="API calls per client per 10 seconds (default: 100)")
    sandbox.add_argument("--clock-offset", type=float, default=0.0, metavar="SECONDS",
                         help="run the sandbox's clock this far ahead of this machine's "
                              "(negative: behind); its Date header and rate-limit resets follow")
    sandbox.set_defaults(handler=_sandbox)


async def _sandbox(args: argparse.Namespace) -> int:
    from core.sandbox import (
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        SANDBOX_LOGIN,
        SANDBOX_PASSWORD,
        SandboxConfig,
        demo_world,
        serve,
    )

    config = SandboxConfig(hourly_limit=args.hourly_limit, hourly_window=args.hourly_window,
                           spike_limit=args.spike_limit, clock_offset=args.clock_offset)

    def ready(running: Any) -> None:
        print(f"Procore sandbox: {running.url} (file storage at {running.storage_url})\n"
              f"Its public test client: ID {SANDBOX_CLIENT_ID}, secret {SANDBOX_CLIENT_SECRET}"
              f"\nSign in as {SANDBOX_LOGIN}, password {SANDBOX_PASSWORD}\n\n"
              "Connect to it:\n"
              f"  export SANDBOX_SECRET={SANDBOX_CLIENT_SECRET}\n"
              f"  dryviq-tui connections add procore Sandbox --domain {running.url} "
              f"--client-id {SANDBOX_CLIENT_ID} --client-secret-env SANDBOX_SECRET\n\n"
              "Ctrl-C stops it (its data lives in memory only).", flush=True)

    with contextlib.suppress(asyncio.CancelledError):
        await serve(demo_world(config), args.host, args.port, args.storage_port, ready=ready)
    return 0
