"""The Procore sign-in page that `GET v1/connections/platforms/procore/new` answers with: a
person opens it in a browser, names the connection, signs in to Procore, picks the company
and the project, and the connection is made (core.procore_signin does the work, as for the
command line and the app).

The page needs no API token: its link is the key. The link is random (256 bits), lives 15
minutes, belongs to the first browser that opens it (a cookie, so a link seen in a log is of
no use once opened), and dies when the connection is made. Sign-in is out of band (Procore
shows a code, pasted back here), or, where the Procore app lists this server's callback
(`/signin/procore/callback`) among its redirect URIs, Procore sends the browser back with the
code and the OAuth state that must be the one this sign-in made. Plain HTML, no scripts,
every value escaped, nothing saved until the last step succeeds."""

from __future__ import annotations

import asyncio
import html
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.api.context import Api, api_of
from core.api.envelope import ApiError
from core.auth import (
    DEFAULT_DOMAIN,
    ClientApp,
    SignInError,
    authorization_url,
    normalize_domain,
    system_default_app,
)
from core.connections import ConnectionInputError, check_new_name, describe
from core.connectors import Opening
from core.connectors.base import ConnectorError
from core.home import ConfigError
from core.procore_signin import Choice, ProcoreSignIn
from core.state import Connection

LIFETIME = 15 * 60  # seconds a link is good for
MAX_PENDING = 100  # sign-ins in progress at once; a new one ends the oldest
PAGE = "/signin/procore/"
CALLBACK = PAGE + "callback"
COOKIE = "dryviq-signin-"  # + the start of the link's id: one browser may run several
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the link is the key: Procore never sees it
    "X-Content-Type-Options": "nosniff",
}
FAILURES = (SignInError, ConnectorError, ConnectionInputError, ConfigError, LookupError)


@dataclass
class Pending:
    """One sign-in in progress, from the link to the saved connection."""

    id: str
    expires_at: float
    name: str  # the connection's name, as asked for or as typed
    browser: str | None = None  # the cookie of the browser that opened the link first
    signin: ProcoreSignIn | None = None  # once the app is chosen
    code_url: str = ""  # Procore's sign-in, showing a code to paste back
    back_url: str | None = None  # Procore's sign-in, sending the browser to CALLBACK
    back_state: str | None = None  # that sign-in's OAuth state
    identity: dict[str, Any] | None = None  # once signed in
    companies: list[Choice] = field(default_factory=list)
    company: Choice | None = None
    projects: list[Choice] = field(default_factory=list)
    # one step at a time: a form sent twice must not sign in or save twice
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def step(self) -> str:
        if self.signin is None:
            return "start"
        if self.identity is None:
            return "code"
        return "company" if self.company is None else "project"


def _pending(api: Api) -> dict[str, Pending]:
    return api.areas.setdefault("signin", {})


async def _end(api: Api, pending: Pending) -> None:
    _pending(api).pop(pending.id, None)
    if pending.signin is not None:
        await pending.signin.close()


async def _forget_expired(api: Api) -> None:
    now = time.time()
    for pending in [p for p in _pending(api).values() if p.expires_at <= now]:
        await _end(api, pending)


async def begin(request: Request) -> tuple[str, int]:
    """A new sign-in: (the page's one-time address, when it expires in epoch seconds)."""
    token = getattr(request.state, "token", None)
    if token is not None and token.read_only:
        raise ApiError(403, f"the token {token.name!r} is read-only: starting a sign-in makes a "
                            "connection, so it needs a token without --read-only",
                       code="read_only")
    api = api_of(request)
    await _forget_expired(api)
    waiting = _pending(api)
    while len(waiting) >= MAX_PENDING:
        await _end(api, min(waiting.values(), key=lambda p: p.expires_at))
    pending = Pending(secrets.token_urlsafe(32), time.time() + LIFETIME,
                      request.query_params.get("name", "").strip())
    waiting[pending.id] = pending
    return f"{api.public_url}{PAGE}{pending.id}", int(pending.expires_at)


# -- the pages -------------------------------------------------------------------------------

STYLE = ("body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}"
         "label{display:block;margin:.6em 0}.error{color:#a00;font-weight:bold}"
         "fieldset{margin:1em 0}")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, status: int = 200, cookie: tuple[str, str] | None = None,
          *, secure: bool = False, expires_at: float = 0) -> HTMLResponse:
    response = HTMLResponse(
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)} · '
        f"dryviq-tui</title><style>{STYLE}</style></head>\n<body><h1>{_e(title)}</h1>\n{body}"
        "\n</body></html>\n", status, headers=SECURITY_HEADERS)
    if cookie is not None:
        response.set_cookie(cookie[0], cookie[1], max_age=max(1, int(expires_at - time.time())),
                            path=PAGE, secure=secure, httponly=True, samesite="lax")
    return response


GONE = ("<p>This sign-in link is not valid: it expired (links last 15 minutes), it was used "
        "already, or it is mistyped. Ask for a new one: <code>GET v1/connections/platforms/"
        "procore/new</code>.</p>")
ELSEWHERE = ("<p>This sign-in link was opened in another browser, and only that one may use "
             "it. Ask for a new link: <code>GET v1/connections/platforms/procore/new</code>."
             "</p>")


def _error(message: str | None) -> str:
    return f'<p class="error" role="alert">{_e(message)}</p>' if message else ""


def _form(pending: Pending, step: str, fields: str, button: str) -> str:
    return (f'<form method="post" action="{_e(PAGE + pending.id)}">'
            f'<input type="hidden" name="step" value="{_e(step)}">{fields}'
            f"<button type=\"submit\">{_e(button)}</button></form>")


def _choices(name: str, choices: list[Choice]) -> str:
    options = "".join(f'<option value="{c.id}">{_e(c.label or c.name)}</option>'
                      for c in choices)
    return f'<select name="{name}" required>{options}</select>'


def _step_body(api: Api, pending: Pending) -> str:
    if pending.step == "start":
        try:
            default = system_default_app(api.home.config()) is not None
        except ConfigError:  # said when the default is chosen
            default = False
        return _form(pending, "start", f"""
<label>Connection name <input name="name" value="{_e(pending.name)}" required></label>
<fieldset><legend>Procore app</legend>
<label><input type="radio" name="credentials" value="default"{" checked" if default else ""}>
This installation's app{"" if default else " (none is set up here)"}</label>
<label><input type="radio" name="credentials" value="custom"{"" if default else " checked"}>
Your company's own app:</label>
<label>Procore address <input name="domain" placeholder="{_e(DEFAULT_DOMAIN)}"></label>
<label>Client ID <input name="client_id" autocomplete="off"></label>
<label>Client secret <input type="password" name="client_secret" autocomplete="off"></label>
<label><input type="checkbox" name="redirect_back" value="1"> The app lists
<code>{_e(api.public_url + CALLBACK)}</code> among its redirect URIs (then Procore brings you
back here after you sign in)</label></fieldset>""", "Continue")
    if pending.step == "code":
        back = (f'<p>Or <a href="{_e(pending.back_url)}">sign in with Procore and come back '
                "here</a>.</p>") if pending.back_url else ""
        return (f"<p>Connection <b>{_e(pending.name)}</b>. <a href=\"{_e(pending.code_url)}\" "
                'target="_blank" rel="noopener noreferrer">Sign in with Procore</a>: after you '
                "sign in, Procore shows a code; paste it here.</p>"
                + _form(pending, "code", '<label>Code <input name="code" autocomplete="off" '
                                         "required></label>", "Continue") + back)
    who = (pending.identity or {}).get("name") or (pending.identity or {}).get("login") or ""
    signed_in = f"<p>Signed in to Procore as <b>{_e(who)}</b>.</p>"
    if pending.step == "company":
        return signed_in + _form(pending, "company", "<label>Company "
                                 + _choices("company", pending.companies) + "</label>",
                                 "Continue")
    assert pending.company is not None
    return signed_in + f"<p>Company: <b>{_e(pending.company.name)}</b></p>" + _form(
        pending, "project", "<label>Project " + _choices("project", pending.projects)
        + f'</label><label>Connection name <input name="name" value="{_e(pending.name)}" '
        "required></label>", "Make the connection")


def _render(request: Request, pending: Pending, error: str | None = None, status: int = 200,
            cookie: tuple[str, str] | None = None) -> HTMLResponse:
    api = api_of(request)
    return _page("Connect to Procore", _error(error) + _step_body(api, pending), status, cookie,
                 secure=api.public_url.startswith("https:"), expires_at=pending.expires_at)


def _found(request: Request, link: str) -> Pending | None:
    pending = _pending(api_of(request)).get(link)
    return pending if pending is not None and pending.expires_at > time.time() else None


def _is_its_browser(request: Request, pending: Pending) -> bool:
    given = request.cookies.get(COOKIE + pending.id[:12], "")
    return pending.browser is not None and secrets.compare_digest(given.encode(),
                                                                  pending.browser.encode())


async def _show(request: Request) -> Response:
    pending = _found(request, request.path_params["link"])
    if pending is None:
        return _page("Sign-in link not valid", GONE, 404)
    if pending.browser is None:  # the first browser to open the link: it is this one's now
        pending.browser = secrets.token_urlsafe(32)
        return _render(request, pending, cookie=(COOKIE + pending.id[:12], pending.browser))
    if not _is_its_browser(request, pending):
        return _page("Sign-in link in use", ELSEWHERE, 403)
    return _render(request, pending)


async def _answer(request: Request) -> Response:
    pending = _found(request, request.path_params["link"])
    if pending is None:
        return _page("Sign-in link not valid", GONE, 404)
    if not _is_its_browser(request, pending):
        return _page("Sign-in link in use", ELSEWHERE, 403)
    form = {key: value for key, value in (await request.form()).items()
            if isinstance(value, str)}
    async with pending.turn:
        step = form.get("step", "")
        if step != pending.step:  # sent twice, or from an older tab
            return _render(request, pending, "That step is done already: continue here.", 409)
        try:
            made = await STEPS[step](request, pending, form)
        except FAILURES as exc:
            return _render(request, pending, str(exc), 400)
    if made is not None:
        return _made(made)
    return RedirectResponse(PAGE + pending.id, 303)


async def _callback(request: Request) -> Response:
    """Where Procore sends the browser back: the OAuth state names the sign-in it answers,
    and only one this server made, in this browser, is accepted."""
    query = request.query_params
    given = query.get("state", "").encode()
    pending = next((p for p in _pending(api_of(request)).values()
                    if p.back_state and p.expires_at > time.time()
                    and secrets.compare_digest(given, p.back_state.encode())), None)
    if pending is None:
        return _page("Sign-in refused", "<p>This answer from Procore belongs to no sign-in in "
                     "progress here (its state does not match: it may be forged, from an older "
                     "attempt, or its link expired). Start the sign-in again.</p>", 400)
    if not _is_its_browser(request, pending):
        return _page("Sign-in link in use", ELSEWHERE, 403)
    if pending.step != "code":
        return _render(request, pending, "That step is done already: continue here.", 409)
    _ask_back(api_of(request), pending)  # a state answers once: the next try gets its own
    if "error" in query or not query.get("code"):
        said = query.get("error_description") or query.get("error") or "no code came back"
        return _render(request, pending, f"Procore did not sign you in ({said}): sign in again.",
                       400)
    assert pending.signin is not None
    async with pending.turn:
        try:
            await pending.signin.finish_with_code(query["code"], api_of(request).public_url
                                                  + CALLBACK)
            await _signed_in(pending)
        except FAILURES as exc:
            return _render(request, pending, str(exc), 400)
    return RedirectResponse(PAGE + pending.id, 303)


def _made(connection: Connection) -> HTMLResponse:
    return _page("Procore connection made", f"<p>The connection <b>{_e(connection.name)}</b> "
                 f"(id <code>{_e(connection.id)}</code>) reaches {_e(describe(connection))}. "
                 "You can close this page.</p>")


# -- the steps: each returns the connection when it made one ---------------------------------


def _app(api: Api, form: Mapping[str, str]) -> tuple[ClientApp, bool, bool]:
    """(the Procore app, whether it is the company's own, whether Procore may send the
    browser back to this server)."""
    callback = api.public_url + CALLBACK
    if form.get("credentials") != "custom":
        app = system_default_app(api.home.config())
        if app is None:
            raise SignInError("This installation has no Procore app of its own (its "
                              "administrator sets DRYVIQ_PROCORE_CLIENT_ID and "
                              "DRYVIQ_PROCORE_CLIENT_SECRET, or [procore] in config.toml): "
                              "choose your company's own app and give its client ID and secret")
        return app, False, app.redirect_uri == callback
    client_id, secret = form.get("client_id", "").strip(), form.get("client_secret", "")
    if not client_id or not secret.strip():
        raise SignInError("Your company's own app needs its client ID and client secret (from "
                          "the Procore Developer Portal)")
    domain = normalize_domain(form.get("domain", "").strip() or DEFAULT_DOMAIN)
    return ClientApp(domain, client_id, secret.strip()), True, form.get("redirect_back") == "1"


async def _start(request: Request, pending: Pending, form: Mapping[str, str]) -> None:
    api = api_of(request)
    name = await check_new_name(api.state, form.get("name", ""))
    app, custom, back = _app(api, form)
    pending.name = name
    pending.signin = ProcoreSignIn(Opening(api.state, api.home, interactive=True), app,
                                   custom=custom)
    pending.code_url = pending.signin.sign_in_url()
    if back:
        _ask_back(api, pending)


def _ask_back(api: Api, pending: Pending) -> None:
    """A sign-in at Procore that sends the browser back to CALLBACK, with a new state."""
    assert pending.signin is not None
    pending.back_url, pending.back_state = authorization_url(pending.signin.app,
                                                             api.public_url + CALLBACK)


async def _code(request: Request, pending: Pending, form: Mapping[str, str]) -> None:
    assert pending.signin is not None
    await pending.signin.finish_with_code(form.get("code", ""))
    await _signed_in(pending)


async def _signed_in(pending: Pending) -> None:
    """Who signed in and their companies; the only company is picked at once."""
    assert pending.signin is not None
    pending.identity = await pending.signin.identity()
    pending.companies = await pending.signin.companies()
    if not pending.companies:
        pending.identity = None
        raise SignInError("This Procore user belongs to no active company: sign in as another")
    if len(pending.companies) == 1:
        await _pick_company(pending, pending.companies[0])


async def _pick_company(pending: Pending, company: Choice) -> None:
    assert pending.signin is not None
    projects = await pending.signin.projects(company)
    if not projects:
        raise LookupError(f"This sign-in can reach no project of {company.name}: pick another "
                          "company, or sign in as a user on the project")
    pending.company, pending.projects = company, projects


def _chosen(choices: list[Choice], given: str, what: str) -> Choice:
    found = next((c for c in choices if str(c.id) == given.strip()), None)
    if found is None:
        raise LookupError(f"Pick one of the {what} listed")
    return found


async def _company(request: Request, pending: Pending, form: Mapping[str, str]) -> None:
    await _pick_company(pending, _chosen(pending.companies, form.get("company", ""),
                                         "companies"))


async def _project(request: Request, pending: Pending, form: Mapping[str, str]) -> Connection:
    assert pending.signin is not None and pending.company and pending.identity is not None
    project = _chosen(pending.projects, form.get("project", ""), "projects")
    pending.name = form.get("name", pending.name)
    connection = await pending.signin.save(pending.name, pending.company, project,
                                           pending.identity)
    await _end(api_of(request), pending)
    return connection


Step = Callable[[Request, Pending, Mapping[str, str]], Awaitable[Connection | None]]
STEPS: dict[str, Step] = {"start": _start, "code": _code, "company": _company, "project": _project}

routes: list[BaseRoute] = [
    Route(CALLBACK, _callback, methods=["GET"]),
    Route(PAGE + "{link}", _show, methods=["GET"]),
    Route(PAGE + "{link}", _answer, methods=["POST"]),
]
