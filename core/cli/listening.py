"""Where a server command (`serve`, `web`) listens: the same options and the same rule for
both. Loopback may be plain HTTP; any other address needs TLS (--cert/--key) or an explicit
--insecure-http, since tokens and sessions would otherwise cross the network in clear text."""

from __future__ import annotations

import argparse
import socket

from core.cli import UsageError

DEFAULT_HOST = "127.0.0.1"


def add_listening_arguments(parser: argparse.ArgumentParser, default_port: int,
                            carried: str) -> None:
    """--host, --port, --cert, --key, --insecure-http; `carried` says what plain HTTP would
    expose ("tokens", "the sign-in link and the session")."""
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default: {DEFAULT_HOST}, this machine "
                             "only); any other needs --cert/--key or --insecure-http")
    parser.add_argument("--port", type=int, default=default_port,
                        help=f"port to listen on (default: {default_port}; 0: any free one)")
    parser.add_argument("--cert", metavar="FILE", help="TLS certificate (PEM), with --key")
    parser.add_argument("--key", metavar="FILE", help="the certificate's private key (PEM)")
    parser.add_argument("--insecure-http", action="store_true",
                        help=f"serve plain http on a non-loopback address ({carried} travel "
                             "in clear text: only on a network you trust)")


def checked_tls(args: argparse.Namespace) -> tuple[str, str] | None:
    """The (certificate, key) to serve TLS with, or None for plain HTTP; UsageError (exit 2,
    nothing started) when the options break the rule."""
    from core.api.auth import is_loopback  # here: it brings starlette, which other commands skip

    if bool(args.cert) != bool(args.key):
        raise UsageError("--cert and --key go together: give both, or neither")
    if args.cert and args.insecure_http:
        raise UsageError("--insecure-http with --cert/--key: choose TLS or plain HTTP")
    if not is_loopback(args.host) and not args.cert and not args.insecure_http:
        raise UsageError(f"--host {args.host} reaches other machines: serve TLS (--cert FILE "
                         "--key FILE), or say --insecure-http on a network you trust; "
                         "nothing was started")
    return (args.cert, args.key) if args.cert else None


def reachable_name(host: str) -> str:
    """The name clients use for `host` in a URL: this machine's name for a wildcard address
    (no place to browse to), IPv6 in brackets."""
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host
