"""The Procore sign-in page of the served API (tests/api.py) against the sandbox over real
HTTP, driven as a person's browser would (httpx, one cookie jar, the forms posted): the pasted
code and Procore's redirect back, ending with a connection that browses the project; and the
refusals: a forged OAuth state, a link used, expired or opened in another browser."""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx
import pytest
import pytest_asyncio

from core.api import signin
from core.home import Home
from core.sandbox import (
    DEMO_COMPANY,
    DEMO_PROJECT,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_LOGIN,
    SANDBOX_PASSWORD,
    SandboxThread,
    demo_world,
)
from tests.api import ServedApi, served_api

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(demo_world()) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory,
                 sandbox: SandboxThread) -> AsyncIterator[ServedApi]:
    """The API over a home whose default Procore app is the sandbox's."""
    home = Home(tmp_path_factory.mktemp("home"))
    home.ensure()
    home.config_path.write_text(f'[procore]\nclient_id = "{SANDBOX_CLIENT_ID}"\n'
                                f'client_secret = "{SANDBOX_CLIENT_SECRET}"\n'
                                f'domain = "{sandbox.url}"\n')
    os.chmod(home.config_path, 0o600)
    async with served_api(home) as running:
        yield running


class Forms(HTMLParser):
    """Each form of a page: where it posts and its hidden fields."""

    def __init__(self, page: httpx.Response) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.feed(page.text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.forms.append((found.get("action") or "", {}))
        elif tag == "input" and found.get("type") == "hidden" and self.forms:
            self.forms[-1][1][str(found["name"])] = found.get("value") or ""


class Browser:
    """A person's browser: one cookie jar, redirects followed, forms filled in."""

    def __init__(self) -> None:
        self.http = httpx.AsyncClient(follow_redirects=True, timeout=30)

    async def submit(self, page: httpx.Response, **fields: str) -> httpx.Response:
        action, hidden = Forms(page).forms[0]
        return await self.http.post(urljoin(str(page.url), action), data={**hidden, **fields})

    async def sign_in_at_procore(self, url: str) -> httpx.Response:
        """Open Procore's sign-in page, sign in, and follow where Procore sends the browser."""
        page = await self.http.get(url)
        assert page.status_code == 200, page.text
        return await self.submit(page, login=SANDBOX_LOGIN, password=SANDBOX_PASSWORD)


@pytest_asyncio.fixture(loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    opened = Browser()
    yield opened
    await opened.http.aclose()


async def new_link(served: ServedApi, name: str = "") -> str:
    answer = await served.client.get("/v1/connections/platforms/procore/new",
                                     params={"name": name} if name else None)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["type"] == "authorize" and body["authorize"]["method"] == "oauth2"
    return body["authorize"]["target"]


def link(page: httpx.Response, text: str) -> str:
    found = re.search(rf'<a href="([^"]+)"[^>]*>{text}', page.text)
    assert found is not None, page.text
    return html.unescape(found.group(1))


def option(page: httpx.Response, label: str) -> str:
    found = re.search(rf'<option value="(\d+)">[^<]*{re.escape(label)}', page.text)
    assert found is not None, page.text
    return found.group(1)


async def pick_and_make(browser: Browser, page: httpx.Response, name: str) -> str:
    """Company, project, name: the connection's id, from the page that says it is made."""
    assert "Signed in to Procore as <b>Pat Morgan</b>" in page.text, page.text
    page = await browser.submit(page, company=option(page, DEMO_COMPANY))
    page = await browser.submit(page, project=option(page, DEMO_PROJECT), name=name)
    assert page.status_code == 200 and "Procore connection made" in page.text, page.text
    found = re.search(r"id <code>([0-9a-f]+)</code>", page.text)
    assert found is not None
    return found.group(1)


def stored_secrets(served: ServedApi, connection_id: str) -> dict:
    with sqlite3.connect(served.home.state_path) as db:
        (data,) = db.execute("SELECT data FROM secrets WHERE connection_id = ?",
                             (connection_id,)).fetchone()
    return json.loads(data)


async def test_new_answers_a_one_time_page_and_needs_a_write_token(served: ServedApi) -> None:
    target = await new_link(served)
    assert re.fullmatch(re.escape(served.url) + r"/signin/procore/[\w-]{43}", target)
    assert target != await new_link(served)
    async with served.client_with(served.read_only_token) as reader:
        answer = await reader.get("/v1/connections/platforms/procore/new")
    assert answer.status_code == 403 and answer.json()["errors"][0]["code"] == "read_only"


async def test_pasted_code_makes_a_connection_that_browses_the_project(
        served: ServedApi, browser: Browser) -> None:
    target = await new_link(served, "Riverside")
    page = await browser.http.get(target)  # no API token: the link is the key
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert 'value="Riverside"' in page.text and "<script" not in page.text
    page = await browser.submit(page, name="Riverside", credentials="default")
    wrong = await browser.submit(page, code="not-a-code")
    assert wrong.status_code == 400 and "refused the sign-in code" in wrong.text
    procore = await browser.sign_in_at_procore(link(page, "Sign in with Procore"))
    code = re.search(r'<code id="authorization-code">([^<]+)</code>', procore.text)
    assert code is not None, procore.text
    page = await browser.submit(wrong, code=html.unescape(code.group(1)))
    connection_id = await pick_and_make(browser, page, "Riverside")
    items = await served.client.get(f"/v1/connections/{connection_id}/items")
    assert items.status_code == 200, items.text
    names = {item["name"] for item in items.json()["items"]}
    assert {"Drawings", "Specifications", "RFIs"} <= names
    shown = await served.client.get(f"/v1/connections/{connection_id}")
    assert shown.json()["connection"]["location"].startswith(f"{DEMO_COMPANY} / {DEMO_PROJECT}")
    token = stored_secrets(served, connection_id)["token"]
    for secret in (token["access_token"], token["refresh_token"]):
        assert secret not in shown.text and secret not in items.text
    used = await browser.http.get(target)
    assert used.status_code == 404 and "not valid" in used.text


async def test_procore_sends_the_browser_back_with_the_state_checked(
        served: ServedApi, sandbox: SandboxThread, browser: Browser) -> None:
    sandbox.world.register_redirect_uri(SANDBOX_CLIENT_ID,
                                        served.url + "/signin/procore/callback")
    page = await browser.http.get(await new_link(served))
    page = await browser.submit(page, name="Harbor own app", credentials="custom",
                                domain=sandbox.url, client_id=SANDBOX_CLIENT_ID,
                                client_secret=SANDBOX_CLIENT_SECRET, redirect_back="1")
    back = link(page, "sign in with Procore and come back here")
    forged = await browser.http.get(served.url + "/signin/procore/callback",
                                    params={"code": "stolen", "state": "forged"})
    assert forged.status_code == 400 and "state does not match" in forged.text
    page = await browser.sign_in_at_procore(back)  # Procore redirects to the callback
    assert str(page.url).startswith(served.url + "/signin/procore/"), page.url
    connection_id = await pick_and_make(browser, page, "Harbor own app")
    assert stored_secrets(served, connection_id)["client_secret"] == SANDBOX_CLIENT_SECRET
    shown = await served.client.get(f"/v1/connections/{connection_id}")
    assert shown.json()["connection"]["auth"]["credentials"] == "custom"
    assert SANDBOX_CLIENT_SECRET not in shown.text
    listed = await served.client.get("/v1/connections")
    assert SANDBOX_CLIENT_SECRET not in listed.text
    replayed = await browser.http.get(served.url + "/signin/procore/callback",
                                      params={"code": "x", "state": "whatever"})
    assert replayed.status_code == 400


async def test_a_link_belongs_to_the_first_browser_and_expires(
        served: ServedApi, browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    target = await new_link(served)
    assert (await browser.http.get(target)).status_code == 200
    async with httpx.AsyncClient() as other:
        assert (await other.get(target)).status_code == 403
        posted = await other.post(target, data={"step": "start", "name": "x"})
        assert posted.status_code == 403 and "another browser" in posted.text
    monkeypatch.setattr(signin, "LIFETIME", -1)
    expired = await browser.http.get(await new_link(served))
    assert expired.status_code == 404 and "expired" in expired.text
    mistyped = await browser.http.get(served.url + "/signin/procore/nope")
    assert mistyped.status_code == 404


async def test_errors_are_shown_on_the_page_and_nothing_is_saved(
        served: ServedApi, browser: Browser) -> None:
    before = (await served.client.get("/v1/connections")).json()["meta"]["total_count"]
    page = await browser.http.get(await new_link(served))
    for fields, said in (({"name": ""}, "needs a name"),
                         ({"name": "x", "credentials": "custom"}, "client ID and client secret"),
                         ({"name": "x", "credentials": "custom", "client_id": "i",
                           "client_secret": "<s>", "domain": "http://example.com"},
                          "does not use https")):
        answer = await browser.submit(page, **{"credentials": "default", **fields})
        assert answer.status_code == 400 and html.escape(said) in answer.text, answer.text
        assert "&lt;s&gt;" not in answer.text  # a secret typed is never shown back
    assert (await served.client.get("/v1/connections")).json()["meta"]["total_count"] == before
