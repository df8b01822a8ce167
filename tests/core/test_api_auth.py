"""Who may call the REST API: bearer tokens over real HTTP (no token, a wrong one, a revoked
one, a read-only one writing), loopback-only serving (another client address, a Host naming
another machine), and tokens stored only as hashes."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from core.api.app import build_app
from core.api.auth import Authenticate
from core.api.context import Api
from core.api.envelope import ApiError, json_body, page_of
from core.api.tokens import (
    REMEMBER,
    TokenChecker,
    TokenExists,
    create_token,
    find_token,
    list_tokens,
    revoke_token,
)
from core.home import Home
from tests.api import ServedApi, served_api

WRITES = ("POST", "PATCH", "DELETE", "PUT")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServedApi]:
    async with served_api(Home(tmp_path / "home")) as running:
        yield running


def problem(response: httpx.Response) -> dict[str, Any]:
    """The first error of a DryvIQ error envelope (checking it is one)."""
    body = response.json()
    assert body["status"] == response.status_code and body["type"] == "error", body
    return body["errors"][0]


def refused(response: httpx.Response) -> bool:
    return response.status_code in (401, 403)


async def test_no_token_or_a_wrong_one_is_401_with_a_challenge(served: ServedApi) -> None:
    async with served.client_with(None) as anonymous:
        answer = await anonymous.get("/v1/jobs")
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "tokens create" in problem(answer)["description"]
        # the OpenAPI document needs no token
        assert (await anonymous.get("/v1/openapi.json")).status_code == 200
        assert (await anonymous.get("/v1/openapi.json/x")).status_code == 401
    for wrong in ("dq_" + "A" * 43, served.token[:-1], "not-even-ours", served.token + "x"):
        async with served.client_with(wrong) as client:
            answer = await client.get("/v1/jobs")
            assert answer.status_code == 401, wrong
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert problem(answer)["code"] == "unauthorized"
    basic = await served.client.get("/v1/jobs", headers={"Authorization": "Basic " + "eA=="})
    assert basic.status_code == 401


async def test_a_revoked_token_is_refused_once_its_remembered_check_runs_out(
        served: ServedApi) -> None:
    token, secret = await create_token(served.state, "short-lived", read_only=False)
    async with served.client_with(secret) as client:
        assert not refused(await client.get("/v1/jobs"))
        revoked = await revoke_token(served.state, token.id)
        assert revoked is not None and revoked.name == "short-lived"
        deadline = asyncio.get_running_loop().time() + REMEMBER + 10  # a slow machine's slack
        while (answer := await client.get("/v1/jobs")).status_code != 401:
            assert answer.status_code == 200
            assert asyncio.get_running_loop().time() < deadline, "the revoked token still works"
            await asyncio.sleep(0.1)
    assert "revoked" in problem(answer)["description"]


async def test_a_valid_token_is_trusted_for_the_remembered_time_only(served: ServedApi) -> None:
    """The bound on revocation: a token found valid is not read again for REMEMBER seconds;
    a secret found wrong is read again each time (a new token works at once)."""
    now = [100.0]
    checker = TokenChecker(served.state, clock=lambda: now[0])
    token, secret = await create_token(served.state, "remembered", read_only=True)
    assert await checker.check(secret.replace("dq_", "dq_x")) is None
    found = await checker.check(secret)
    assert found is not None and found.id == token.id and found.read_only
    await revoke_token(served.state, token.id)
    now[0] += REMEMBER - 0.01
    assert await checker.check(secret) == found
    now[0] += 0.01
    assert await checker.check(secret) is None
    again, secret = await create_token(served.state, "remembered", read_only=False)
    assert (await checker.check(secret) or found).id == again.id


async def test_a_read_only_token_reads_but_never_writes(served: ServedApi) -> None:
    async with served.client_with(served.read_only_token) as reader:
        for method in WRITES:
            answer = await reader.request(method, "/v1/jobs", json={"name": "x"})
            assert answer.status_code == 403, method
            assert problem(answer)["code"] == "read_only"
        assert not refused(await reader.get("/v1/jobs"))
        assert not refused(await reader.head("/v1/jobs"))
    for method in WRITES:  # the write token passes the check (what the route says is its own)
        assert not refused(await served.client.request(method, "/v1/jobs", json={}))


async def test_the_token_reaches_the_handlers_and_its_use_is_noted(tmp_path: Path) -> None:
    """The middleware on its own, in front of an app that answers with what it was given."""
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        token = scope["state"]["token"]
        await JSONResponse({"name": token.name, "read_only": token.read_only})(
            scope, receive, send)

    async with served_api(Home(tmp_path / "home")) as served:
        app = Authenticate(echo, TokenChecker(served.state), loopback_only=True)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answer = await client.get("/v1/anything", headers={
                "Authorization": f"Bearer {served.read_only_token}"})
        assert answer.status_code == 200
        assert answer.json() == {"name": "tests-read-only", "read_only": True}
        used = await find_token(served.state, "tests-read-only")
        assert used is not None and used.last_used_at is not None


async def test_loopback_only_refuses_other_clients_and_other_hosts(served: ServedApi) -> None:
    bearer = {"Authorization": f"Bearer {served.token}"}
    for loopback_only, expected in ((True, 403), (False, 404)):
        api = Api(served.home, served.state, public_url="http://127.0.0.1:9090",
                  loopback_only=loopback_only)
        transport = httpx.ASGITransport(app=build_app(api), client=("203.0.113.5", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9090",
                                     headers=bearer) as remote:
            answer = await remote.get("/v1/no-such-path")
        assert answer.status_code == expected, answer.text
        if expected == 403:
            assert problem(answer)["code"] == "not_loopback"
    # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1
    port = served.url.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "evil.example", "127.0.0.1.evil.example", "[::2]"):
        answer = await served.client.get("/v1/jobs", headers={"Host": host})
        assert answer.status_code == 403, host
        assert problem(answer)["code"] == "bad_host"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]:9090", "localhost"):
        assert not refused(await served.client.get("/v1/jobs", headers={"Host": host})), host


async def test_a_websocket_without_a_token_is_closed_unanswered(served: ServedApi) -> None:
    """No route takes a websocket, but the check must not answer one with an HTTP response."""
    reached: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    check = Authenticate(app, TokenChecker(served.state), loopback_only=True)
    await check({"type": "websocket", "path": "/v1/jobs/x/events", "client": ("127.0.0.1", 1),
                 "headers": [(b"host", b"127.0.0.1")]}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}] and reached == []


async def test_the_state_file_holds_hashes_never_secrets(served: ServedApi) -> None:
    _, secret = await create_token(served.state, "kept", read_only=True)
    await served.state.db.execute("PRAGMA wal_checkpoint(FULL)")
    files = [served.home.state_path, Path(f"{served.home.state_path}-wal")]
    stored = b"".join(path.read_bytes() for path in files if path.exists())
    for token in (secret, served.token, served.read_only_token):
        assert token.encode() not in stored
        assert token.split("_", 1)[1].encode() not in stored
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored


async def test_token_names_are_checked_and_unique(served: ServedApi) -> None:
    with pytest.raises(TokenExists):
        await create_token(served.state, "TESTS", read_only=True)  # names ignore case
    for bad in ("", "   ", "two\nlines", "x" * 65):
        with pytest.raises(ValueError, match="printable"):
            await create_token(served.state, bad, read_only=True)
    assert [token.name for token in await list_tokens(served.state)] == [
        "tests", "tests-read-only"]
    assert await revoke_token(served.state, "no-such-token") is None


# -- what every handler's input goes through (core/api/envelope.py) --------------------------


def request(query: bytes = b"", body: bytes = b"") -> Request:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "path": "/v1/x", "query_string": query,
                    "headers": []}, receive)


@pytest.mark.parametrize(("query", "field"), [
    (b"offset=-1", "offset"), (b"offset=%C2%B2", "offset"), (b"limit=%D9%A1", "limit"),
    (b"limit=0", "limit"), (b"limit=1001", "limit"), (b"offset=1e3", "offset"),
    (b"offset=9999999999999", "offset"), (b"offset=", "offset")])
def test_bad_paging_is_a_400_naming_the_parameter(query: bytes, field: str) -> None:
    with pytest.raises(ApiError) as refused:
        page_of(request(query))
    assert refused.value.status == 400 and refused.value.problems[0].field == field


@pytest.mark.parametrize("body", [
    b"{", b"\xff\xfe", b'{"a": NaN}', b"[Infinity]", b"[-Infinity]",
    pytest.param(b"[" * 100_000, id="nested")])
async def test_a_body_that_is_not_json_is_a_400(body: bytes) -> None:
    with pytest.raises(ApiError) as refused:
        await json_body(request(body=body))
    assert refused.value.status == 400 and refused.value.problems[0].code == "bad_json"
