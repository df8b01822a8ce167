"""Setting up a Procore connection: sign in, pick the company and the project, save.

Shared by `connections add procore` and the TUI's Add connection dialog, which only ask the
questions. A connection reaches one project of one company (as DryvIQ's does); the sign-in's
token is kept with the connection's secrets, never in its visible config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.auth import (
    OOB_REDIRECT,
    ClientApp,
    MemoryTokenStore,
    StateTokenStore,
    authorization_url,
    client_credentials_token,
    exchange_code,
    loopback_sign_in,
)
from core.connections import check_new_name
from core.connectors import Opening
from core.connectors.procore import procore_client
from core.connectors.procore_client import ProcoreClient
from core.state import Connection


@dataclass(frozen=True)
class Choice:
    """A company or project to pick from."""

    id: int
    name: str
    label: str = ""  # how Procore displays it ("2024-017 - Riverside Medical Center")

    def matches(self, wanted: str) -> bool:
        return wanted == str(self.id) or wanted.casefold() in (
            self.name.casefold(), self.label.casefold())


class ProcoreSignIn:
    """One Add-connection conversation with Procore, from sign-in to the saved connection."""

    def __init__(self, opening: Opening, app: ClientApp, *, custom: bool) -> None:
        self.opening = opening
        self.app = app
        self.custom = custom  # the connection's own client, not the installation's default
        self.store = MemoryTokenStore()
        self.grant = "authorization_code"
        self.client: ProcoreClient = procore_client(app, self.store, opening)
        self.redirect_uri: str | None = None  # the loopback sign-in's, once it ran
        self.service_company: int | None = None  # a service account's company, given first
        self._state: str | None = None

    async def close(self) -> None:
        await self.client.close()
        await self.client.pacer.store.close()

    def sign_in_url(self) -> str:
        """The page where the user signs in; Procore then shows a code to paste back."""
        url, self._state = authorization_url(self.app, OOB_REDIRECT)
        return url

    async def finish_with_code(self, code: str, redirect_uri: str = OOB_REDIRECT) -> None:
        """Trade the code Procore showed (or sent to `redirect_uri`, the page that asked for
        it: the API's sign-in page) for the sign-in."""
        await self.store.save(await exchange_code(self.app, code.strip(), redirect_uri))

    async def finish_with_loopback(self, show_url: Callable[[str], None],
                                   redirect_uri: str) -> None:
        """Sign in through a browser on this machine, which Procore sends to `redirect_uri`,
        a loopback address registered on the app."""
        await self.store.save(await loopback_sign_in(self.app, show_url, redirect_uri))
        self.redirect_uri = redirect_uri

    async def finish_with_client_credentials(self, company_id: int) -> None:
        """A service account (DMSA) signs in with its client credentials alone. Its token
        sends the company header on every call, `/me` and `/companies` included
        (oauth/oauth_client_credentials.md, "Using DMSAs with MPR"), so the company comes
        first."""
        self.grant = "client_credentials"
        self.service_company = self.client.company_id = company_id
        await self.store.save(await client_credentials_token(self.app))

    async def identity(self) -> dict[str, Any]:
        """Who is signed in (`/me`), so a service account named for the integration shows."""
        return dict(await self.client.get_json("/rest/v1.0/me", what="read the signed-in user"))

    async def companies(self) -> list[Choice]:
        self.client.company_id = self.service_company  # a user's list needs no company
        return [Choice(int(c["id"]), c["name"]) async for page in self.client.pages(
            "/rest/v1.0/companies", what="list companies") for c in page
            if c.get("is_active", True)]

    async def projects(self, company: Choice) -> list[Choice]:
        self.client.company_id = company.id
        return [Choice(int(p["id"]), p["name"], p.get("display_name") or p["name"])
                async for page in self.client.pages(
                    "/rest/v1.0/projects", what=f"list the projects of {company.name}",
                    params={"company_id": company.id}) for p in page]

    async def renew(self, existing: Connection, identity: dict[str, Any]) -> Connection:
        """Store this sign-in as `existing`'s, once it is known to reach the same project;
        under the connection's token lock, since a job elsewhere may be refreshing the old
        one. Raises LookupError (nothing changed) when the project is out of its reach."""
        config = existing.config
        company = next((c for c in await self.companies()
                        if c.id == int(config["company_id"])), None)
        projects = await self.projects(company) if company else []
        if not any(p.id == int(config["project_id"]) for p in projects):
            raise LookupError(f"this sign-in cannot reach {config['company_name']} / "
                              f"{config['project_name']}: sign in as a user with access to "
                              "that project")
        token = await self.store.load()
        assert token is not None, "sign in first"
        store = StateTokenStore(self.opening.state, self.opening.home, existing.id)
        async with store.lock():
            await store.save(token)
        config = {**config, "grant": self.grant, **self._redirect_setting(),
                  "user": {k: identity.get(k) for k in ("id", "login", "name")}}
        await self.opening.state.update_connection_config(existing.id, config)
        return Connection(existing.id, existing.name, existing.platform, config,
                          existing.created_at)

    async def save(self, name: str, company: Choice, project: Choice,
                   identity: dict[str, Any]) -> Connection:
        """The new connection, named `name` (ConnectionInputError when check_new_name
        refuses it)."""
        name = await check_new_name(self.opening.state, name)
        token = await self.store.load()
        assert token is not None, "sign in first"
        config = {"domain": self.app.domain, "login_url": self.app.login_url,
                  "credentials": "custom" if self.custom else "default",
                  "client_id": self.app.client_id, "grant": self.grant,
                  "company_id": company.id, "company_name": company.name,
                  "project_id": project.id, "project_name": project.name,
                  **self._redirect_setting(),
                  "user": {k: identity.get(k) for k in ("id", "login", "name")}}
        secrets: dict[str, Any] = {"token": token.to_dict()}
        if self.custom:
            secrets["client_secret"] = self.app.client_secret
        return await self.opening.state.add_connection(name, "procore", config, secrets)


    def _redirect_setting(self) -> dict[str, str]:
        """The loopback redirect URI to keep with the connection, so signing in again reuses
        it: a custom client's, or one that differs from the installation's setting."""
        if self.redirect_uri is None or self.redirect_uri == self.app.redirect_uri:
            return {}
        return {"redirect_uri": self.redirect_uri}


def pick(choices: list[Choice], wanted: str | None, what: str) -> Choice | None:
    """The choice named by id or name; the only one when there is one; else None (ask).
    Raises LookupError when `wanted` names none of them."""
    if wanted is not None:
        found = next((c for c in choices if c.matches(wanted)), None)
        if found is None:
            known = ", ".join(f"{c.label or c.name} ({c.id})" for c in choices) or "none"
            raise LookupError(f"no {what} {wanted!r} for this sign-in; it can reach: {known}")
        return found
    return choices[0] if len(choices) == 1 else None

