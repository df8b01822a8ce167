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
    sandbox.add_argument("--redirect-uri", action="append", default=[], metavar="URL",
                         help="register this redirect URI on the sandbox's clients, beside "
                              "the out-of-band one and http://localhost (repeatable)")
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
        SERVICE_CLIENT_ID,
        SERVICE_CLIENT_SECRET,
        SandboxConfig,
        demo_world,
        serve,
    )

    config = SandboxConfig(hourly_limit=args.hourly_limit, hourly_window=args.hourly_window,
                           spike_limit=args.spike_limit, clock_offset=args.clock_offset,
                           redirect_uris=tuple(uri.strip() for uri in args.redirect_uri))
    world = demo_world(config)
    service_company = world.service_user.company_ids[0]
    registered = sorted(world.clients[SANDBOX_CLIENT_ID].redirect_uris)
    loopback = next((uri for uri in args.redirect_uri if uri.startswith("http://")), None)

    def ready(running: Any) -> None:
        connect = (f"dryviq-tui connections add procore Sandbox --domain {running.url} "
                   f"--client-id {SANDBOX_CLIENT_ID} --client-secret-env SANDBOX_SECRET")
        print(f"Procore sandbox: {running.url} (file storage at {running.storage_url})\n"
              f"Its public test client: ID {SANDBOX_CLIENT_ID}, secret {SANDBOX_CLIENT_SECRET}"
              f"\nSign in as {SANDBOX_LOGIN}, password {SANDBOX_PASSWORD}\n"
              f"Redirect URIs registered: {', '.join(registered)}\n"
              f"Its service account (client credentials): ID {SERVICE_CLIENT_ID}, secret "
              f"{SERVICE_CLIENT_SECRET}, company {service_company}\n\n"
              "Connect to it:\n"
              f"  export SANDBOX_SECRET={SANDBOX_CLIENT_SECRET}\n"
              f"  {connect}\n"
              + (f"  # or finish the sign-in in a browser on this machine:\n"
                 f"  {connect} --redirect-uri {loopback}\n" if loopback else "")
              + "As the service account:\n"
              f"  export SERVICE_SECRET={SERVICE_CLIENT_SECRET}\n"
              f"  dryviq-tui connections add procore Service --domain {running.url} "
              f"--client-id {SERVICE_CLIENT_ID} --client-secret-env SERVICE_SECRET "
              f"--grant client_credentials --company {service_company}\n\n"
              "Ctrl-C stops it (its data lives in memory only).", flush=True)

    with contextlib.suppress(asyncio.CancelledError):
        await serve(world, args.host, args.port, args.storage_port, ready=ready)
    return 0
