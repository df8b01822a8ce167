"""`dryviq-tui web`: its arguments and the binding rule, checked before anything starts. The
console script hands this command to core.cli (core never imports the UI); the server itself
(tui/web_server.py, aiohttp and textual-serve) is imported only when the command runs, so
other commands start as fast as before."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import UsageError, deferred

DEFAULT_PORT = 8080


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    web = commands.add_parser(
        "web", help="the app in a browser: prints a one-time link that signs the browser in",
        parents=[leaf["parents"][0]])
    web.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1; any other needs TLS or "
                          "--insecure-http)")
    web.add_argument("--port", type=int, default=DEFAULT_PORT,
                     help=f"port to listen on (default: {DEFAULT_PORT}; 0: any free port)")
    web.add_argument("--cert", metavar="FILE", help="TLS certificate (PEM), with --key")
    web.add_argument("--key", metavar="FILE", help="TLS private key (PEM), with --cert")
    web.add_argument("--insecure-http", action="store_true",
                     help="serve plain HTTP on a non-loopback address (anyone on the network "
                          "path can read the session)")
    web.set_defaults(handler=deferred("tui.web_server", "serve_web"))


def check_binding(host: str, cert: str | None, key: str | None, insecure_http: bool) -> None:
    """The rule `serve` follows too: loopback may be plain HTTP; any other address needs TLS,
    or --insecure-http said out loud. UsageError (exit 2, nothing started) otherwise."""
    from core.api.auth import is_loopback  # here: it brings starlette, which other commands skip

    if bool(cert) != bool(key):
        raise UsageError("--cert and --key go together: give both, or neither")
    if cert and insecure_http:
        raise UsageError("--insecure-http with --cert/--key: choose TLS or plain HTTP")
    if not is_loopback(host) and not cert and not insecure_http:
        raise UsageError(f"--host {host} is reachable from other machines: serve TLS "
                         "(--cert FILE --key FILE) or say --insecure-http")

