"""`dryviq-tui connections add procore` and `connections signin`: sign in over SSH or locally,
pick company and project.

The client secret comes from an environment variable (`--client-secret-env`), else a prompt or
stdin; the sign-in code is pasted at a prompt (or read from stdin). Neither is ever an argument.
A loopback sign-in listens on the redirect URI registered on the Procore app (`--redirect-uri`,
a custom connection's stored one, or `[procore] redirect_uri`): Procore accepts no other.
Imported only when one of these commands runs (see procore.py), because the sign-in libraries
(authlib, httpx) take longer to import than a whole no-change run of a local job.
"""

from __future__ import annotations

import argparse
import sys

from core.auth import (
    EXAMPLE_REDIRECT,
    OOB_REDIRECT,
    ClientApp,
    SignInError,
    loopback_redirect,
    normalize_domain,
    system_default_app,
)
from core.cli import CommandFailed, UsageError, opened_state, read_line, read_secret
from core.cli.output import reply
from core.connections import ConnectionInputError, check_new_name, describe
from core.connectors import Opening
from core.connectors.base import ConnectorError
from core.connectors.procore import procore_app, signed_in_as
from core.home import Home
from core.paths import printable
from core.procore_signin import Choice, ProcoreSignIn, pick

NO_REDIRECT = (
    "a sign-in through a browser on this machine needs the redirect URI registered on your "
    f"Procore app (Procore accepts no other): pass --redirect-uri URL, such as {EXAMPLE_REDIRECT},"
    " after adding it to the app's Redirect URIs in the Procore Developer Portal (for the "
    "installation's credentials: [procore] redirect_uri in config.toml or "
    "DRYVIQ_PROCORE_REDIRECT_URI); or leave out --loopback and paste the code")
NO_COMPANY = (
    "a service account (--grant client_credentials) signs in to one company, named first: pass "
    "--company ID, the company's numeric id. The company administrator who installed the app "
    "sees it in the address of any company page in Procore: "
    "https://app.procore.com/ID/company/home/list")


def _app(args: argparse.Namespace, home: Home) -> tuple[ClientApp, bool]:
    if args.client_id is None:
        if args.client_secret_env or args.domain:
            raise UsageError("--domain and --client-secret-env go with --client-id (custom "
                             "client credentials)")
        app = system_default_app(home.config())
        if app is None:
            raise UsageError("no system default client credentials: set "
                             "DRYVIQ_PROCORE_CLIENT_ID and DRYVIQ_PROCORE_CLIENT_SECRET (or "
                             "[procore] in config.toml), or pass --client-id")
        return app, False
    secret = read_secret("--client-secret-env", args.client_secret_env, "Client secret: ")
    try:
        domain = normalize_domain(args.domain or "https://api.procore.com")
        login = normalize_domain(args.login_url) if args.login_url else None
    except SignInError as exc:
        raise UsageError(f"--domain/--login-url: {exc}") from None
    return ClientApp(domain, args.client_id, secret, login), True


def _redirect_uri(args: argparse.Namespace, configured: str | None) -> str | None:
    """The loopback sign-in's redirect URI, or None for the out-of-band paste. An http
    --redirect-uri means a loopback sign-in; --loopback alone uses the configured one."""
    given = args.redirect_uri.strip() if args.redirect_uri else None
    if args.grant == "client_credentials":
        if given or args.loopback:
            raise UsageError("--loopback and --redirect-uri are for signing in as a user; a "
                             "service account (client_credentials) signs in without a browser")
        return None
    if given == OOB_REDIRECT:
        if args.loopback:
            raise UsageError(f"--loopback needs an http:// --redirect-uri, not {OOB_REDIRECT}")
        return None
    uri = given or (configured if args.loopback else None)
    if uri is None:
        if args.loopback:
            raise UsageError(NO_REDIRECT)
        return None
    try:
        loopback_redirect(uri)
    except SignInError as exc:
        raise UsageError(f"--redirect-uri: {exc}" if given else
                         f"the configured redirect URI: {exc}; or pass --redirect-uri") from None
    return uri


def _service_company(args: argparse.Namespace) -> int | None:
    """A service account's company id (asked at a terminal), or None for a user's sign-in."""
    if args.grant != "client_credentials":
        return None
    wanted = args.company
    if wanted is None:
        if not sys.stdin.isatty():
            raise UsageError(NO_COMPANY)
        print("A service account signs in to one company. Its id is the number in the address "
              "of any company page in Procore (https://app.procore.com/ID/company/...).",
              file=sys.stderr)
        wanted = read_line("Company ID: ")
    if not wanted.strip().isdigit():
        raise UsageError(f"--company {wanted!r}: {NO_COMPANY}")
    return int(wanted)


def _choose(choices: list[Choice], wanted: str | None, what: str, flag: str) -> Choice:
    try:
        found = pick(choices, wanted, what)
    except LookupError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if found is not None:
        return found
    if not choices:
        raise UsageError(f"this sign-in can reach no {what}")
    # names as Procore sends them: printable, so none can act on the terminal
    listing = [f"{n}. {printable(c.label or c.name)} ({c.id})" for n, c in enumerate(choices, 1)]
    if not sys.stdin.isatty():
        several = "companies" if what == "company" else f"{what}s"
        raise UsageError(f"several {several}; pick one with {flag}:", details=listing)
    print(f"Choose the {what}:", *(f"  {line}" for line in listing), sep="\n", file=sys.stderr)
    answer = read_line(f"{what} number: ")
    if not answer.isdigit() or not 1 <= int(answer) <= len(choices):
        raise UsageError(f"{answer!r} is not one of the numbers listed")
    return choices[int(answer) - 1]


async def _sign_in(args: argparse.Namespace, signin: ProcoreSignIn, *,
                   redirect_uri: str | None, company_id: int | None) -> None:
    if company_id is not None:
        await signin.finish_with_client_credentials(company_id)
    elif redirect_uri is not None:
        await signin.finish_with_loopback(
            lambda url: print(f"Open this address in a browser on this machine:\n{url}",
                              file=sys.stderr), redirect_uri)
    else:
        print("Sign in with Procore: open this address in any browser, sign in, and paste "
              f"the code it shows.\n{signin.sign_in_url()}", file=sys.stderr)
        await signin.finish_with_code(read_line("Code: ", secret=True))


async def add_procore(args: argparse.Namespace) -> int:
    async with opened_state(args) as (home, state):
        try:  # before signing in; save() checks again
            name = await check_new_name(state, args.name)
        except ConnectionInputError as exc:
            raise UsageError(str(exc)) from None
        company_id = _service_company(args)
        if args.client_id is not None:  # before the secret is asked for
            _redirect_uri(args, None)
        app, custom = _app(args, home)
        redirect_uri = _redirect_uri(args, app.redirect_uri)
        signin = ProcoreSignIn(Opening(state, home, interactive=True), app, custom=custom)
        try:
            await _sign_in(args, signin, redirect_uri=redirect_uri, company_id=company_id)
            identity = await signin.identity()
            wanted = args.company if company_id is None else str(company_id)
            company = _choose(await signin.companies(), wanted, "company", "--company")
            project = _choose(await signin.projects(company), args.project, "project",
                              "--project")
            connection = await signin.save(name, company, project, identity)
        except ConnectionInputError as exc:  # its name was taken while signing in
            raise UsageError(str(exc)) from None
        except (SignInError, ConnectorError) as exc:
            raise CommandFailed("connection_test", f"Connection test failed: {exc}") from None
        finally:
            await signin.close()
    reply(args, {"id": connection.id, "name": connection.name, "platform": "procore",
                 "location": describe(connection), "user": connection.config["user"]},
          printable("Connection test succeeded: signed in as "
                    f"{signed_in_as(connection.config['user'])}") + "\n" + printable(
              f"Added connection {connection.name} ({connection.id}): {describe(connection)}"))
    return 0


async def sign_in_again(args: argparse.Namespace) -> int:
    async with opened_state(args) as (home, state):
        connection = await state.find_connection(args.name)
        if connection is None or connection.platform != "procore":
            raise UsageError(f"no Procore connection named or with id {args.name!r}")
        config = connection.config
        try:
            app = procore_app(config, await state.connection_secrets(connection.id),
                              home.config())
        except ConnectorError as exc:
            raise UsageError(str(exc)) from None
        signin = ProcoreSignIn(Opening(state, home, interactive=True), app,
                               custom=config.get("credentials") == "custom")
        args.grant = config.get("grant", "authorization_code")
        redirect_uri = _redirect_uri(args, config.get("redirect_uri") or app.redirect_uri)
        company_id = int(config["company_id"]) if args.grant == "client_credentials" else None
        try:
            await _sign_in(args, signin, redirect_uri=redirect_uri, company_id=company_id)
            renewed = await signin.renew(connection, await signin.identity())
        except (SignInError, ConnectorError, LookupError) as exc:
            raise CommandFailed("signin", f"Sign-in failed, nothing changed: {exc}") from None
        finally:
            await signin.close()
    reply(args, {"id": renewed.id, "name": renewed.name, "user": renewed.config["user"]},
          printable(f"Signed in again: {renewed.name} as "
                    f"{signed_in_as(renewed.config['user'])}"))
    return 0
