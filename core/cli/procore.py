"""The options of the Procore commands (`connections add procore`, `connections signin`).

What they do is in signin.py, imported only when one of them runs: `jobs run` from cron should
not wait for the sign-in libraries.
"""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import deferred


def register(platforms: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    procore = platforms.add_parser(
        "procore", help="one project of one company in Procore (signs in)", **leaf)
    procore.add_argument("name", nargs="?", default="Procore",
                         help="display name (default: Procore)")
    procore.add_argument("--domain", help="Procore API URL for custom credentials "
                                          "(default: https://api.procore.com)")
    procore.add_argument("--login-url", help="sign-in host, if not the one the domain implies")
    procore.add_argument("--client-id", help="use custom client credentials with this client "
                                             "ID (default: the installation's credentials)")
    procore.add_argument("--client-secret-env", metavar="VAR",
                         help="environment variable holding the client secret (else: prompt, "
                              "or the first line of stdin)")
    procore.add_argument("--grant", choices=("authorization_code", "client_credentials"),
                         default="authorization_code",
                         help="sign in as a user (default) or as a service account (DMSA)")
    _loopback_options(procore)
    procore.add_argument("--company", metavar="ID|NAME",
                         help="the company (asked if several); a service account needs its "
                              "numeric id, asked first at a terminal")
    procore.add_argument("--project", metavar="ID|NAME", help="the project (asked if several)")
    procore.set_defaults(handler=deferred("core.cli.signin", "add_procore"))


def _loopback_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loopback", action="store_true",
                        help="finish the sign-in through a browser on this machine instead of "
                             "pasting the code, at the registered redirect URI")
    parser.add_argument("--redirect-uri", metavar="URL",
                        help="the loopback redirect URI registered on the Procore app, exactly "
                             "(such as http://localhost:8765/callback); implies --loopback. "
                             "Default: the connection's, or [procore] redirect_uri")


def register_signin(sub: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    signin = sub.add_parser("signin", help="sign a Procore connection in again (its jobs "
                                           "keep using it)", **leaf)
    signin.add_argument("name", help="connection name or id")
    _loopback_options(signin)
    signin.set_defaults(handler=deferred("core.cli.signin", "sign_in_again"))
