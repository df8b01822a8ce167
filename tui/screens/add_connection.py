"""The Add connection dialog, as DryvIQ's product page lays it out: choose the platform, name
the connection ("Display as"), give what that platform needs; Done saves it through core.

Each platform is one `PlatformForm` subclass (tui/widgets/platform_form.py) listed in
`PLATFORMS`; the SMB share and rclone remote forms live in tui/widgets/storage_forms.py. Done
runs in a worker of the dialog, so trying a share or a remote leaves it live. Procore's form
signs in (a pasted code over SSH, a browser on this machine, or a service account), then picks
the company and the project; its network calls run in workers of the form, so closing the
dialog cancels a sign-in in progress, and nothing is saved before Done. The same form signs an
existing Procore connection in again.
"""

from __future__ import annotations

import os
import sys
import webbrowser
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, HorizontalScroll, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    ContentSwitcher,
    Input,
    RadioButton,
    RadioSet,
    Select,
    Static,
)
from textual.worker import Worker, get_current_worker

from core.auth import (
    DEFAULT_DOMAIN,
    EXAMPLE_REDIRECT,
    ClientApp,
    SignInError,
    loopback_redirect,
    normalize_domain,
    system_default_app,
)
from core.connections import ConnectionInputError, add_local, check_name
from core.connectors import Opening
from core.connectors.base import ConnectorError
from core.connectors.procore import procore_app, signed_in_as
from core.home import ConfigError
from core.procore_signin import Choice, ProcoreSignIn, pick
from core.state import Connection, StateError
from tui.service import AppService
from tui.widgets.confirm import dismiss_unless_kept
from tui.widgets.format import plain, printable, printable_lines
from tui.widgets.platform_form import PlatformForm
from tui.widgets.platform_form import form_row as _row
from tui.widgets.storage_forms import RcloneForm, SmbForm

SIGN_IN_FIRST, COMPANY_FIRST = "(sign in first)", "(choose the company first)"
NO_DEFAULT = ("none are set up on this machine (set DRYVIQ_PROCORE_CLIENT_ID and "
              "DRYVIQ_PROCORE_CLIENT_SECRET, or [procore] in config.toml)")
PASTE_NOTE = ("Copied to your clipboard. Open it in any browser, sign in, and paste the code "
              "Procore shows:")
LOOPBACK_NOTE = ("Copied to your clipboard. Open it in a browser on this machine and sign in; "
                 "the sign-in finishes here by itself:")
NO_REDIRECT = ("Type the Redirect URI registered on your Procore app (such as "
               f"{EXAMPLE_REDIRECT}: Procore sends the browser only there), or sign in with "
               "Procore and paste the code")
NO_DEFAULT_REDIRECT = ("The system default client credentials have no redirect URI: set "
                       "[procore] redirect_uri in config.toml to the one registered on the "
                       "Procore app, or use custom client credentials and type its Redirect "
                       "URI, or sign in with Procore and paste the code")
NO_COMPANY = ("Type the Company ID: a service account signs in to one company, by its numeric "
              "id, which the company administrator sees in the address of any company page in "
              "Procore (app.procore.com/ID/company/...)")


def can_open_browser(environ: Mapping[str, str] = os.environ,
                     platform: str = sys.platform) -> bool:
    """Whether a browser opened here would show on the user's screen: a graphical session
    (X11, Wayland) or a desktop OS. Over plain SSH there is none, so the app never tries."""
    return platform in ("darwin", "win32") or bool(
        environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


class LocalFolderForm(PlatformForm):
    """A folder on this machine, or a network share mounted on it."""

    key, title = "local", "Local folder"

    def compose(self) -> ComposeResult:
        yield _row("Folder", Input(placeholder="/srv/projects/tower-a (or a mounted share)",
                                   id="local-path", compact=True))
        yield Checkbox("Flush each file to disk before it appears (fsync)", value=True,
                       id="local-fsync", compact=True)
        yield Static("Without fsync, many small files copy much faster; files still appear "
                     "whole, but a power cut may leave the newest ones empty.", classes="hint")

    def ready(self) -> bool:
        return bool(self.query_one("#local-path", Input).value.strip())

    async def finish(self, name: str) -> Connection:
        path = self.query_one("#local-path", Input).value.strip()
        if not path:
            raise ConnectionInputError("Type the folder's path")
        return await add_local(self.service.state, name, path,
                               fsync=self.query_one("#local-fsync", Checkbox).value)


class ProcoreForm(PlatformForm):
    """One project of one company in Procore: client credentials, sign-in, company, project.

    With `existing`, the connection's own client signs in again (its sign-in died, say) and
    Done replaces only its stored sign-in: its id, project and jobs stay."""

    key, title, default_name = "procore", "Procore", "Procore"

    def __init__(self, service: AppService, existing: Connection | None = None) -> None:
        super().__init__(service)
        self.existing = existing
        self._signin: ProcoreSignIn | None = None
        self._identity: dict[str, Any] | None = None
        self._companies: dict[int, Choice] = {}
        self._projects: dict[int, Choice] = {}
        self._url = ""
        self._default, self._no_default = self._system_default()

    def _system_default(self) -> tuple[ClientApp | None, str]:
        """The installation's client, or why there is none (said next to its option)."""
        try:
            app = system_default_app(self.service.home.config())
        except (ConfigError, SignInError) as exc:
            return None, f"unusable: {exc}"
        return app, "" if app else NO_DEFAULT

    def compose(self) -> ComposeResult:
        config = self.existing.config if self.existing else {}
        custom = config.get("credentials") == "custom" if self.existing else not self._default
        missing = self._no_default and not self.existing
        yield Static("Platform API credentials", classes="conn-caption")
        with RadioSet(id="procore-credentials", disabled=self.existing is not None):
            yield RadioButton("Use the system default client credentials"
                              + (" (none here)" if missing else ""), value=not custom,
                              id="procore-default", disabled=bool(missing))
            yield RadioButton("Use custom client credentials", value=custom, id="procore-custom")
        if missing:
            yield Static(f"System default client credentials: {self._no_default}",
                         id="procore-no-default", classes="hint", markup=False)
        with Vertical(id="procore-custom-fields"):
            yield _row("Domain", Input(config.get("domain", DEFAULT_DOMAIN), id="procore-domain",
                                       compact=True, disabled=self.existing is not None))
            yield _row("Client ID", Input(config.get("client_id", ""), id="procore-client-id",
                                          compact=True, disabled=self.existing is not None))
            yield _row("Client Secret", Input(
                password=True, id="procore-client-secret", compact=True,
                placeholder="(the stored secret is used)" if self.existing else "",
                disabled=self.existing is not None))
            yield _row("Redirect URI", Input(
                config.get("redirect_uri", ""), id="procore-redirect-uri", compact=True,
                placeholder=f"{EXAMPLE_REDIRECT}, as registered"))
        with Horizontal(classes="conn-buttons"):
            yield Button("Sign in with Procore", id="procore-sign-in", variant="primary",
                         compact=True)
            yield Button("Sign in with a browser on this machine", id="procore-loopback",
                         compact=True)
        with Horizontal(classes="conn-buttons conn-more"):
            yield Button("Service account (client credentials)", id="procore-service",
                         compact=True)
        service = config.get("grant") == "client_credentials"
        yield _row("Company ID", Input(
            str(config["company_id"]) if service else "", id="procore-company-id",
            compact=True, placeholder="a service account's company (numeric id)",
            disabled=self.existing is not None))
        with Vertical(id="procore-url-box"):
            yield Static(id="procore-url-note", classes="hint")
            with HorizontalScroll(id="procore-url-line"):
                yield Static(id="procore-url", markup=False)
            yield _row("Code", Input(placeholder="paste the code here", password=True,
                                     id="procore-code", compact=True),
                       Button("Finish sign-in", id="procore-finish", compact=True),
                       id="procore-code-row")
            with Horizontal(classes="conn-buttons"):
                yield Button("Show it alone, to copy", id="procore-show", compact=True)
                if can_open_browser():
                    yield Button("Open in a browser", id="procore-open", compact=True)
        yield Static(id="procore-status", classes="hint", markup=False)
        yield _row("Company", Select[int]([], prompt=SIGN_IN_FIRST, id="procore-company",
                                          compact=True, disabled=True))
        yield _row("Project", Select[int]([], prompt=COMPANY_FIRST,
                                          id="procore-project", compact=True, disabled=True))
        yield Static(id="procore-result", classes="conn-ok", markup=False)
        yield Static(id="procore-error", classes="errors", markup=False)

    def on_mount(self) -> None:
        self._show_custom()
        self.query_one("#procore-url-box").display = False

    @on(RadioSet.Changed, "#procore-credentials")
    def _show_custom(self) -> None:
        self.query_one("#procore-custom-fields").display = self._custom

    @property
    def _custom(self) -> bool:
        return self.query_one("#procore-custom", RadioButton).value

    # -- signing in -------------------------------------------------------------------------

    async def _client_app(self) -> tuple[ClientApp, bool]:
        """The API client to sign in with, and whether it is the connection's own."""
        if self.existing is not None:
            config = self.existing.config
            secrets = await self.service.state.connection_secrets(self.existing.id)
            return (procore_app(config, secrets, self.service.home.config()),
                    config.get("credentials") == "custom")
        if not self._custom:
            if self._default is None:
                raise SignInError(f"System default client credentials: {self._no_default}; "
                                  "or choose Use custom client credentials")
            return self._default, False
        domain = normalize_domain(self._text("#procore-domain") or DEFAULT_DOMAIN)
        client_id, secret = self._text("#procore-client-id"), self._text("#procore-client-secret")
        if not client_id or not secret:
            raise SignInError("Type the Client ID and the Client Secret your administrator "
                              "gave you (or use the system default client credentials)")
        return ClientApp(domain, client_id, secret), True

    def _text(self, selector: str) -> str:
        return self.query_one(selector, Input).value.strip()

    async def _restart(self) -> ProcoreSignIn | None:
        """A fresh sign-in with the credentials as they are now (the previous one ends)."""
        await self.workers.wait_for_complete(self.workers.cancel_node(self))
        await self._close_sign_in()
        self._identity, self._companies, self._projects = None, {}, {}
        for selector, prompt in (("#procore-company", SIGN_IN_FIRST),
                                 ("#procore-project", COMPANY_FIRST)):
            select = self.query_one(selector, Select)
            select.prompt = prompt
            select.set_options([])
            select.disabled = True
        self.query_one("#procore-url-box").display = False
        self.query_one("#procore-code", Input).value = ""
        self._say(status="", result="", error="")
        try:
            app, custom = await self._client_app()
        except (SignInError, ConnectorError, ConfigError) as exc:
            self._say(error=f"⚠ {exc}")
            return None
        self._signin = ProcoreSignIn(Opening(self.service.state, self.service.home,
                                             interactive=True), app, custom=custom)
        return self._signin

    async def _close_sign_in(self) -> None:
        if self._signin is not None:
            signin, self._signin = self._signin, None
            await signin.close()

    @on(Button.Pressed, "#procore-sign-in")
    async def _sign_in_with_code(self) -> None:
        signin = await self._restart()
        if signin is None:
            return
        self._show_url(signin.sign_in_url(), paste=True)
        self.query_one("#procore-code", Input).focus()

    def _redirect_uri(self, app: ClientApp) -> str:
        """The registered loopback redirect URI: the form's, else the connection's or the
        installation's. SignInError names the field to fill."""
        typed = self._text("#procore-redirect-uri") if self._custom else ""
        stored = self.existing.config.get("redirect_uri") if self.existing else None
        uri = typed or stored or app.redirect_uri
        if not uri:
            raise SignInError(NO_REDIRECT if self._custom else NO_DEFAULT_REDIRECT)
        loopback_redirect(uri)
        return uri

    def _company_id(self) -> int:
        text = self._text("#procore-company-id")
        if not text.isdigit():
            raise SignInError(NO_COMPANY)
        return int(text)

    @on(Button.Pressed, "#procore-loopback")
    async def _sign_in_with_loopback(self) -> None:
        signin = await self._restart()
        if signin is None:
            return
        try:
            redirect_uri = self._redirect_uri(signin.app)
        except SignInError as exc:
            self._say(error=f"⚠ {exc}")
            return
        self._say(status="Waiting for the sign-in in the browser…")
        self._run(self._signed_in(signin, signin.finish_with_loopback(self._show_url,
                                                                      redirect_uri)))

    @on(Input.Submitted, "#procore-company-id")
    @on(Button.Pressed, "#procore-service")
    async def _sign_in_as_service_account(self) -> None:
        signin = await self._restart()
        if signin is None:
            return
        try:
            company_id = self._company_id()
        except SignInError as exc:
            self._say(error=f"⚠ {exc}")
            self.query_one("#procore-company-id", Input).focus()
            return
        self._say(status="Signing in as the service account…")
        self._run(self._signed_in(signin, signin.finish_with_client_credentials(company_id)))

    @on(Input.Submitted, "#procore-code")
    @on(Button.Pressed, "#procore-finish")
    def _finish_with_code(self) -> None:
        code = self._text("#procore-code")
        if self._signin is None or not code:
            self._say(error="⚠ Paste the code Procore shows after you sign in" if self._signin
                      else "⚠ Press Sign in with Procore first")
            return
        self._say(status="Signing in…", error="")
        self._run(self._signed_in(self._signin, self._signin.finish_with_code(code)))

    def _run(self, work: Awaitable[None]) -> None:
        self.run_worker(work, name="procore sign-in", group="sign-in", exclusive=True)

    def _show_url(self, url: str, *, paste: bool = False) -> None:
        """The sign-in address, shown as text and copied (OSC 52): over SSH a browser here
        would open on the wrong machine. It stays on one line (scrolled sideways, never
        wrapped), so a terminal's selection copies it without line breaks."""
        self.app.copy_to_clipboard(url)
        self._url = url
        self.query_one("#procore-url-note", Static).update(PASTE_NOTE if paste else LOOPBACK_NOTE)
        self.query_one("#procore-url", Static).update(url)
        self.query_one("#procore-code-row").display = paste
        box = self.query_one("#procore-url-box")
        box.display = True
        last = [child for child in box.children if child.display][-1]
        self.call_after_refresh(last.scroll_visible, animate=False)

    @on(Button.Pressed, "#procore-show")
    def _show_url_alone(self) -> None:
        """The address on the terminal itself, the app set aside: the terminal wraps it softly,
        so its selection copies the whole address (where OSC 52 cannot reach the clipboard)."""
        try:
            with self.app.suspend():
                print(f"\nThe sign-in address; select it to copy:\n\n{self._url}\n")
                input("Press Enter to go back to dryviq-tui.")
        except SuspendNotSupported:
            self._say(error="⚠ The app cannot step aside here: copy the address from the "
                            "line above, scrolled sideways")

    @on(Button.Pressed, "#procore-open")
    def _open_in_browser(self) -> None:
        """Only on the user's request, and only where a display is present."""
        if self._url and not webbrowser.open(self._url):
            self._say(error="⚠ No browser could be opened here: copy the address instead")

    async def _signed_in(self, signin: ProcoreSignIn, finishing: Awaitable[None]) -> None:
        """Finish the sign-in, then find out who it is and which companies it reaches."""
        try:
            await finishing
            identity = await signin.identity()
            self._say(status=f"Signed in as {signed_in_as(identity)}; reading the companies…")
            companies = await signin.companies()
        except (SignInError, ConnectorError) as exc:
            self._say(status="", error=f"⚠ Sign-in failed: {exc}")
            return
        self._identity = identity
        self._companies = {c.id: c for c in companies}
        if self.existing is not None:
            await self._check_existing(signin)
            return
        if not companies:
            self._say(status="", error="⚠ This sign-in reaches no company: sign in as a user "
                                       "of the company that owns the project")
            return
        self._say(status=f"Signed in as {signed_in_as(identity)}: choose the company and "
                         "the project.")
        self._offer("#procore-company", companies,
                    self._companies.get(signin.service_company or 0)
                    or pick(companies, None, "company"))

    async def _check_existing(self, signin: ProcoreSignIn) -> None:
        """A new sign-in for a connection must still reach its project."""
        assert self.existing is not None
        config = self.existing.config
        company = self._companies.get(int(config["company_id"]))
        try:
            projects = await signin.projects(company) if company else []
        except (SignInError, ConnectorError) as exc:
            self._say(status="", error=f"⚠ {exc}")
            return
        project = next((p for p in projects if p.id == int(config["project_id"])), None)
        if company is None or project is None:
            self._say(status="", error=f"⚠ This sign-in cannot reach {config['company_name']} / "
                                       f"{config['project_name']}: sign in as a user with access"
                                       " to that project")
            return
        self._projects = {project.id: project}
        self._offer("#procore-company", [company], company)
        self._offer("#procore-project", [project], project)

    def _offer(self, selector: str, choices: list[Choice], chosen: Choice | None) -> None:
        select = self.query_one(selector, Select)
        select.prompt = "(choose one)"
        select.set_options([(plain(c.label or c.name), c.id) for c in choices])
        select.disabled = self.existing is not None
        if chosen is not None:
            select.value = chosen.id
        elif not select.disabled:
            select.focus()  # the user's turn: several to choose from

    @on(Select.Changed, "#procore-company")
    def _company_chosen(self, event: Select.Changed) -> None:
        if self.existing is not None:
            return  # fixed: a connection keeps its project
        self._projects = {}
        self._show_result()
        company = self._companies.get(event.value) if isinstance(event.value, int) else None
        if company is not None and self._signin is not None:
            project = self.query_one("#procore-project", Select)
            project.prompt = "(reading the projects…)"
            project.set_options([])
            project.disabled = True
            self._say(status=f"Reading the projects of {company.name}…", error="")
            self.run_worker(self._load_projects(self._signin, company), group="pick",
                            exclusive=True)

    async def _load_projects(self, signin: ProcoreSignIn, company: Choice) -> None:
        try:
            projects = await signin.projects(company)
        except (SignInError, ConnectorError) as exc:
            self._say(status="", error=f"⚠ {exc}")
            return
        self._projects = {p.id: p for p in projects}
        if not projects:
            self.query_one("#procore-project", Select).prompt = "(no project open to you)"
            self._say(status="", error=f"⚠ No project of {company.name} is open to this "
                                       "sign-in: choose another company")
            return
        self._say(status="")
        self._offer("#procore-project", projects, pick(projects, None, "project"))

    @on(Select.Changed, "#procore-project")
    def _show_result(self) -> None:
        ready = self._chosen() is not None
        self._say(result=f"✓ Connection test succeeded: signed in as "
                         f"{signed_in_as(self._identity or {})}" if ready else "")
        if ready:
            self._say(status="", error="")

    def ready(self) -> bool:
        return self._chosen() is not None

    def in_progress(self) -> bool:
        return self._signin is not None

    def _chosen(self) -> tuple[Choice, Choice] | None:
        """The company and project picked, once signed in."""
        company = self.query_one("#procore-company", Select).value
        project = self.query_one("#procore-project", Select).value
        if self._identity is None or not isinstance(company, int) or not isinstance(project, int):
            return None
        if company not in self._companies or project not in self._projects:
            return None
        return self._companies[company], self._projects[project]

    def _say(self, *, status: str | None = None, result: str | None = None,
             error: str | None = None) -> None:
        for selector, text in (("#procore-status", status), ("#procore-result", result),
                               ("#procore-error", error)):
            if text is not None:
                shown = self.query_one(selector, Static)
                shown.update(printable_lines(text))  # company, project and user names
                shown.display = bool(text)
                if text:
                    self.call_after_refresh(shown.scroll_visible, animate=False)  # laid out

    # -- Done -------------------------------------------------------------------------------

    async def finish(self, name: str) -> Connection:
        chosen = self._chosen()
        if self._signin is None or self._identity is None or chosen is None:
            raise ConnectionInputError("Sign in with Procore first, then choose the company and "
                                       "the project")
        if self.existing is not None:
            try:
                return await self._signin.renew(self.existing, self._identity)
            except LookupError as exc:
                raise ConnectionInputError(str(exc)) from None
        try:
            return await self._signin.save(name, *chosen, self._identity)
        except StateError as exc:
            raise ConnectionInputError(str(exc)) from None

    async def on_unmount(self) -> None:
        await self._close_sign_in()


PLATFORMS: tuple[type[PlatformForm], ...] = (ProcoreForm, LocalFolderForm, SmbForm, RcloneForm)


def platform_title(key: str) -> str:
    """A platform's name in tables and messages."""
    return next((p.short_title or p.title for p in PLATFORMS if p.key == key), key)


class DialogBody(VerticalScroll, can_focus=False):
    """The dialog's fields, scrolled as focus moves through them; never a tab stop itself, so
    the first field has the focus when the dialog opens."""


class AddConnectionScreen(ModalScreen[Connection | None]):
    """Dismisses with the saved connection, or None when cancelled; with `existing` (a
    Procore connection), signs it in again instead."""

    DEFAULT_CSS = """
    AddConnectionScreen {
        align: center middle;
    }
    #add-dialog {
        max-width: 100;
    }
    #add-body {
        height: auto;
        max-height: 55vh;  /* with the dialog's frame, Done stays on screen at 80x24 */
        scrollbar-size-vertical: 1;
    }
    .conn-row {
        height: auto;
    }
    .conn-label {
        width: 15;
        color: $text-muted;
    }
    .conn-row Input, .conn-row Select {
        width: 1fr;
    }
    .conn-caption {
        margin-top: 1;
        text-style: bold;
    }
    .conn-buttons {
        height: auto;
        margin: 1 0 0 0;
    }
    .conn-more {
        margin: 0;
    }
    #procore-no-default {
        padding-left: 4;
    }
    .conn-buttons Button, #procore-finish {
        margin-right: 1;
    }
    #procore-credentials {
        border: none;
        padding: 0;
        width: 1fr;
    }
    #procore-custom-fields {
        height: auto;
        padding-left: 4;
    }
    #procore-url-box {
        height: auto;
        margin-top: 1;
    }
    #procore-url-line {
        height: auto;
        scrollbar-size-horizontal: 1;
    }
    #procore-url {
        width: auto;
        text-wrap: nowrap;
        color: $accent;
    }
    .platform-form {
        height: auto;
    }
    #add-forms {
        height: auto;
    }
    .conn-ok {
        color: $success;
        text-style: bold;
    }
    #procore-status, #procore-result, #procore-error, #add-error, .conn-field-error,
    .conn-note, #add-status {
        display: none;
    }
    .conn-field-error, .conn-note {
        padding-left: 15;
    }
    #smb-port-label {
        width: auto;
        margin: 0 1 0 2;
        color: $text-muted;
    }
    #smb-port {
        width: 8;
    }
    #rclone-reload {
        margin-left: 1;
    }
    #add-status {
        width: 1fr;
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        color: $text-muted;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="close-add-connection")]

    def __init__(self, service: AppService, existing: Connection | None = None) -> None:
        super().__init__()
        self.service = service
        self.existing = existing
        self.forms: list[PlatformForm] = (
            [ProcoreForm(service, existing)] if existing else [p(service) for p in PLATFORMS])
        self._saving: Worker[None] | None = None  # Done at work: a connection being tried

    def compose(self) -> ComposeResult:
        first = self.forms[0]
        title = (f"Sign in again: {printable(self.existing.name)}" if self.existing
                 else "Add connection")
        with Vertical(id="add-dialog", classes="dialog"):
            yield Static(title, classes="dialog-title", markup=False)
            with DialogBody(id="add-body"):
                yield _row("Platform", Select([(f.title, f.key) for f in self.forms],
                                              value=first.key, allow_blank=False,
                                              id="add-platform", compact=True,
                                              disabled=len(self.forms) == 1))
                yield _row("Display as", Input(self.existing.name if self.existing else "",
                                               placeholder=first.default_name, id="add-name",
                                               compact=True, disabled=bool(self.existing)))
                with ContentSwitcher(initial=first.id, id="add-forms"):
                    yield from self.forms
                yield Static(id="add-error", classes="errors", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Static(id="add-status", markup=False)
                yield Button("Done", id="add-done", variant="primary", compact=True)
                yield Button("Cancel", id="add-cancel", compact=True)

    def on_mount(self) -> None:
        self._typed = self._inputs()
        if self.existing is not None:  # nothing to type: signing in is the first step
            self.query_one("#procore-sign-in", Button).focus()
        else:
            self.query_one("#add-platform", Select).focus()

    def _inputs(self) -> dict[str, str]:
        return {field.id or "": field.value for field in self.query(Input)}

    @property
    def form(self) -> PlatformForm:
        shown = self.query_one("#add-forms", ContentSwitcher).current
        return next(f for f in self.forms if f.id == shown)

    @on(Select.Changed, "#add-platform")
    def _platform_chosen(self, event: Select.Changed) -> None:
        form = next(f for f in self.forms if f.key == event.value)
        self.query_one("#add-forms", ContentSwitcher).current = form.id
        self.query_one("#add-name", Input).placeholder = form.default_name or "a name for it"
        self.query_one("#add-error").display = False
        form.shown()

    @property
    def saving(self) -> bool:
        return self._saving is not None and self._saving.is_running

    @on(Button.Pressed, "#add-done")
    def _done(self) -> None:
        """Save in a worker: trying a share or a remote takes a moment, and meanwhile the
        dialog stays live (Esc stops the try). A second Done waits for the first."""
        if not self.saving:
            self._saving = self.run_worker(self._save(self.form), name="save connection",
                                           group="save", exclusive=True)

    async def _save(self, form: PlatformForm) -> None:
        error = self.query_one("#add-error", Static)
        error.display = False
        form.clear_errors()
        self._status(form.saving_note())
        try:
            name = check_name(self.query_one("#add-name", Input).value or form.default_name)
            connection = await form.finish(name)
        except ConnectionInputError as exc:
            if not form.show_error(exc):
                error.update(plain(f"⚠ Not saved: {exc}"))
                error.display = True
                self.call_after_refresh(error.scroll_visible, animate=False)
            return
        finally:
            if self._saving is get_current_worker():  # not stopped meanwhile (Esc)
                self._status("")
        self.dismiss(connection)

    def _status(self, text: str) -> None:
        status = self.query_one("#add-status", Static)
        status.update(plain(text))
        status.display = bool(text)

    @on(Input.Submitted)
    def _enter(self, event: Input.Submitted) -> None:
        """Enter saves when Done can; otherwise it moves on to the next field. The code and
        the Company ID have their own step (finish the sign-in, sign in as the service)."""
        if event.input.id in ("procore-code", "procore-company-id"):
            return
        if self.form.ready():
            self._done()
        else:
            self.focus_next()

    @on(Select.Changed, "#procore-project")
    def _forget_not_saved(self) -> None:
        if self.form.ready():
            self.query_one("#add-error").display = False

    @on(Button.Pressed, "#add-cancel")
    def action_cancel(self) -> None:
        """Closes at once when nothing was typed; asks before throwing edits away. While a
        connection is being tried, Esc stops the try and keeps the dialog as it is."""
        if self.saving and self._saving is not None:
            # said at once: a blocked connect may take its time to notice the cancel
            stopping, self._saving = self._saving, None
            stopping.cancel()
            self._status("")
            error = self.query_one("#add-error", Static)
            error.update("Stopped before the connection answered: nothing was saved.")
            error.display = True
            return
        edited = self._inputs() != self._typed or self.form.in_progress()
        dismiss_unless_kept(self, edited, "Discard this sign-in?" if self.existing
                            else "Discard the new connection?")
