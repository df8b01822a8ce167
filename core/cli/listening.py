"""Where a server command (`serve`, `web`) listens: the same options and the same rule for
both. Loopback may be plain HTTP; any other address needs TLS (--cert/--key) or an explicit
--insecure-http, since tokens and sessions would otherwise cross the network in clear text."""

from __future__ import annotations

import argparse
import errno
import socket

from core.cli import CommandFailed, UsageError

DEFAULT_HOST = "127.0.0.1"
BACKLOG = 2048  # connections the system queues until they are accepted (uvicorn's default)


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


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (bound here, so a port in use is said plainly before
    anything starts; listening at once, so a client that read the URL is never refused)."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: a port is from 0 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise UsageError(
            f"--host {host}: not an address of this machine ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CommandFailed("port_in_use", f"port {port} on {host} is in use by another "
                                "program; stop it or serve on another --port") from None
        raise CommandFailed("cannot_listen",
                            f"cannot listen on {host} port {port}: {exc.strerror}") from None
    sock.listen(BACKLOG)
    return sock
