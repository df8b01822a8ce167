"""Which hosts may see the sign-in token, in Procore's commercial zone and in its Federal Zone
(platform_concepts/federal_zone_overview.md: api.procoregov.com, login.procoregov.com)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.auth import ClientApp, MemoryTokenStore, normalize_domain
from core.connectors import Opening
from core.connectors.procore import procore_client
from core.connectors.procore_client import ProcoreClient
from core.home import Home
from core.state import State


@contextlib.asynccontextmanager
async def client_of(tmp_path: Path, domain: str) -> AsyncIterator[ProcoreClient]:
    """A client of an app on `domain` (no call is made: only its host rules are asked)."""
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    app = ClientApp(normalize_domain(domain), "client", "secret")
    client = procore_client(app, MemoryTokenStore(), Opening(state, home))
    try:
        yield client
    finally:
        await client.close()
        await client.pacer.store.close()
        await state.close()


@pytest.fixture
async def federal(tmp_path: Path) -> AsyncIterator[ProcoreClient]:
    async with client_of(tmp_path, "api.procoregov.com") as client:
        yield client


def test_a_federal_app_signs_in_at_the_federal_login_host() -> None:
    app = ClientApp(normalize_domain("https://api.procoregov.com/"), "id", "secret")
    assert app.domain == "https://api.procoregov.com"
    assert app.login == "https://login.procoregov.com"
    overridden = ClientApp(app.domain, "id", "secret", "https://login.example.gov")
    assert overridden.login == "https://login.example.gov"


@pytest.mark.parametrize("url", [
    "https://api.procoregov.com/rest/v1.0/me",
    "https://login.procoregov.com/oauth/token",
    "https://storage.procoregov.com/api/v5/files/1",
    "https://procoregov.com/x",
    "https://API.ProcoreGov.com/rest/v1.0/me",
])
def test_the_token_goes_to_procore_hosts_of_its_zone(federal: ProcoreClient, url: str) -> None:
    assert federal.may_carry_token(url)


@pytest.mark.parametrize("url", [
    "http://api.procoregov.com/rest/v1.0/me",  # plain http: never
    "https://procoregov.com.evil.example/x",
    "https://evilprocoregov.com/x",
    "https://procoregov.co/x",
    "https://s3.us-gov-west-1.amazonaws.com/bucket/x",  # the object store
    "https://api.procoregov.com.attacker.example/rest",
    "https://app.procore.com/fas/api/v5/x",  # the commercial zone: another tenant's tokens
])
def test_the_token_never_goes_anywhere_else(federal: ProcoreClient, url: str) -> None:
    assert not federal.may_carry_token(url)


async def test_a_commercial_token_never_goes_to_the_federal_zone(tmp_path: Path) -> None:
    async with client_of(tmp_path, "api.procore.com") as client:
        assert client.may_carry_token("https://storage.procore.com/api/v5/files/1")
        assert not client.may_carry_token("https://storage.procoregov.com/api/v5/files/1")
        assert not client.may_carry_token("https://api.procoregov.com/rest/v1.0/me")
