"""Procore's REST API over HTTP: sign-in tokens, the pacer, pagination, errors, transfers.

Every call goes through `ProcoreClient.send`, which takes a slot from the pacer, adds the
Bearer token (refreshing once on a 401), and classifies failures into the connector errors,
so the connector above deals in folders and files only. The token is sent to Procore's own
hosts and never to a storage host: not the one a download redirects to, nor the one an
upload goes to (whichever host Procore hands out: it "may vary between companies and may also
change over time", tutorials/tutorial_uploads.md).
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import httpx

from core.auth import USER_AGENT, Authenticator, ClientApp
from core.connectors.base import (
    AlreadyExists,
    AuthExpired,
    ConnectorError,
    Fatal,
    InvalidPath,
    NotFound,
    Retryable,
)
from core.pacer import MAX_RETRIES, Pacer, Usage, backoff, server_lead

COMMERCIAL_DOMAIN, FEDERAL_DOMAIN = "procore.com", "procoregov.com"
PER_PAGE = 2000  # Procore's advised maximum page size
MAX_REDIRECTS = 5
CHUNK = 1 << 20
TIMEOUT = httpx.Timeout(60.0, connect=15.0)


def error_text(response: httpx.Response) -> str:
    """What Procore said went wrong; its error bodies come in several shapes."""
    try:
        body: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text.strip()[:300] or response.reason_phrase
    for key in ("errors", "error", "message"):
        if isinstance(body, dict) and key in body:
            body = body[key]
            break
    if isinstance(body, dict):
        if "message" in body:
            return str(body["message"])
        return "; ".join(f"{field} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                         for field, v in body.items())
    if isinstance(body, list):
        return "; ".join(map(str, body))
    return str(body)


def _field_errors(response: httpx.Response) -> bool:
    """Whether the answer refuses fields by name (`{"errors": {"name": [...]}}`), as a
    validation failure does, rather than the request as a whole (a missing parameter)."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and isinstance(body.get("errors"), dict)


def classify(response: httpx.Response, what: str) -> ConnectorError:
    """The connector error for a failed answer (401, 429 and 5xx are handled before)."""
    status, text = response.status_code, error_text(response)
    message = f"{what}: {text} (HTTP {status})"
    if status == 404:
        return NotFound(f"{what}: not found, or not visible to this sign-in")
    if status == 409 or (status in (400, 422) and "has already been taken" in text):
        # Procore's OpenAPI lists 400 for the Documents calls and captures show 400 for a taken
        # folder name; Rails' usual 422 is accepted too, so either status reads the same.
        # Its error reference (api_essentials/error_reference.md) gives 409 to "a resource
        # that already exists".
        return AlreadyExists(message)
    if status == 422 or (status == 400 and _field_errors(response)):
        return InvalidPath(message)
    if status == 410:
        return Retryable(message)
    if status == 403 and "project" in text.lower():
        return Fatal(message)
    return ConnectorError(message)


def _within(host: str, domain: str) -> bool:
    """Whether `host` is `domain` or one of its subdomains."""
    host = host.lower()
    return host == domain or host.endswith(f".{domain}")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def is_loopback(host: str | None) -> bool:
    """A name or address of this machine only (the sandbox's hosts)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class UploadGone(ConnectorError):
    """The storage host or Procore no longer takes this upload (expired URL, 403/404/410):
    it must start again with a new one. `server_time`: when the storage host refused it, on
    its clock (its Date), to tell an upload's expiry from other refusals."""

    def __init__(self, message: str, server_time: float | None = None) -> None:
        super().__init__(message)
        self.server_time = server_time


UPLOAD_GONE = (403, 404, 410)


class ProcoreClient:
    """One signed-in API client for one company (the header every call but two needs)."""

    def __init__(self, app: ClientApp, auth: Authenticator, pacer: Pacer, *,
                 company_id: int | None = None, usage: Usage | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        self.app = app
        self.auth = auth
        self.pacer = pacer
        self.company_id = company_id
        self.usage = usage or Usage()
        self.http = http or httpx.AsyncClient(timeout=TIMEOUT,
                                              headers={"User-Agent": USER_AGENT})
        # the hosts that may see the token: the API's and the login host's, and those of
        # Procore's own domain in this client's zone (the Federal Zone's tenants, apps and
        # tokens are its own: federal_zone_overview.md)
        self._token_origins = {_origin(app.domain), _origin(app.login)}
        self._zone_domain = (FEDERAL_DOMAIN if _within(urlsplit(app.domain).hostname or "",
                                                       FEDERAL_DOMAIN) else COMMERCIAL_DOMAIN)

    async def close(self) -> None:
        await self.http.aclose()

    def may_carry_token(self, url: str) -> bool:
        """The API and login hosts of this client, the local sandbox's own hosts, and any https
        host of Procore's domain in this client's zone: procore.com, or procoregov.com for a
        Federal Zone client (platform_concepts/federal_zone_overview.md). Nothing else ever
        sees the token."""
        origin = _origin(url)
        return origin in self._token_origins or self._sandbox_host(url) or (
            origin[0] == "https" and _within(urlsplit(url).hostname or "", self._zone_domain))

    def _sandbox_host(self, url: str) -> bool:
        """For a plain-http loopback API (the local sandbox only): its host name on any port,
        as its download host is. Its object store answers under another loopback name, as
        S3 does under another domain than procore.com (core/sandbox/server.py)."""
        api, parts = urlsplit(self.app.domain), urlsplit(url)
        return (api.scheme == parts.scheme == "http" and is_loopback(api.hostname)
                and parts.hostname == api.hostname)

    def _url(self, path: str) -> str:
        return path if "://" in path else self.app.domain + path

    def _headers(self, token: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"}
        if self.company_id is not None:
            headers["Procore-Company-Id"] = str(self.company_id)
        return headers

    async def send(self, method: str, path: str, *, what: str, idempotent: bool = True,
                   params: Mapping[str, Any] | None = None, json_body: Any = None,
                   data: Mapping[str, Any] | None = None,
                   files: Mapping[str, Any] | None = None,
                   rewind: IO[bytes] | None = None,
                   follow: bool = False, ok: tuple[int, ...] = ()) -> httpx.Response:
        """One API call, paced; raises a ConnectorError unless it succeeded (2xx, or a status in
        `ok`). `rewind` is a file body to seek back to the start before a retry."""
        url = self._url(path)
        if not self.may_carry_token(url):  # a Link header, say, naming some other host
            raise ConnectorError(f"{what}: Procore pointed to {urlsplit(url).netloc}, which "
                                 "may not see the sign-in token")
        token = await self.auth.access_token()
        refreshed = False
        while True:
            async def attempt(token: str = token) -> httpx.Response:
                if rewind is not None:
                    rewind.seek(0)
                return await self.http.request(
                    method, url, params=params, json=json_body, data=data, files=files,
                    headers=self._headers(token), follow_redirects=False)

            response = await self.pacer.request(attempt, self.usage, idempotent=idempotent)
            if response.status_code == 401 and not refreshed:
                token, refreshed = await self.auth.after_unauthorized(token), True
                continue
            if response.status_code == 401:
                raise AuthExpired(f"{what}: Procore refused the sign-in "
                                  f"({error_text(response)}); sign in again")
            if response.is_success or response.status_code in ok or (
                    follow and response.is_redirect):
                return response
            raise classify(response, what)

    async def get_json(self, path: str, *, what: str, params: Mapping[str, Any] | None = None,
                       ) -> Any:
        return parse_json(await self.send("GET", path, what=what, params=params), what)

    async def pages(self, path: str, *, what: str, params: Mapping[str, Any] | None = None,
                    ) -> AsyncIterator[list[Any]]:
        """Every page of a paginated list, following `Link: rel="next"` to the end."""
        url: str | None = path
        query: Mapping[str, Any] | None = {"per_page": PER_PAGE, **(params or {})}
        while url:
            response = await self.send("GET", url, what=what, params=query)
            yield parse_json(response, what)
            following = response.links.get("next", {}).get("url")
            url, query = (following, None) if following else (None, None)

    async def download(self, url: str, *, what: str) -> AsyncIterator[bytes]:
        """Stream a file version: Procore answers with redirects to its storage host, which
        are followed by hand so the token goes only to hosts allowed to see it."""
        for _ in range(MAX_REDIRECTS + 1):
            if not self.may_carry_token(url):
                async for chunk in self._fetch_unauthenticated(url, what):
                    yield chunk
                return
            response = await self.send("GET", url, what=what, follow=True)
            if not response.is_redirect:
                yield response.content
                return
            url = urljoin(url, response.headers["location"])
        raise ConnectorError(f"{what}: too many redirects")

    async def _fetch_unauthenticated(self, url: str, what: str) -> AsyncIterator[bytes]:
        """Storage hosts are not rate limited and must never see the token."""
        for failures in range(MAX_RETRIES + 1):
            started = False
            try:
                async with self.http.stream("GET", url) as response:
                    if response.status_code >= 500:
                        raise Retryable(f"{what}: the storage host answered "
                                        f"{response.status_code}")
                    if not response.is_success:
                        await response.aread()
                        raise classify(response, f"{what} (storage host)")
                    async for chunk in response.aiter_bytes(CHUNK):
                        started = True
                        yield chunk
                    return
            except (httpx.TransportError, Retryable) as exc:
                if started or failures == MAX_RETRIES:  # part of it was already passed on
                    raise Retryable(f"{what}: the download failed ({type(exc).__name__})"
                                    ) from None
                await self.pacer.sleep(backoff(failures))

    async def upload_to_storage(self, url: str, fields: Mapping[str, str], name: str,
                                body: IO[bytes], *, what: str) -> None:
        """The storage half of a non-segmented upload: every field unchanged plus the file,
        without the token. Safe to repeat, so connection failures are retried."""
        check_storage_url(url, what)

        async def post() -> httpx.Response:
            body.seek(0)
            return await self.http.post(url, data=dict(fields), files={"file": (name, body)})

        await self._to_storage(post, what)

    async def put_segment(self, url: str, headers: Mapping[str, str], body: IO[bytes],
                          offset: int, size: int, *, what: str) -> str:
        """One segment of a segmented upload, `size` bytes of `body` from `offset`, PUT to its
        own URL with its own headers and no token, read from the file as it goes. Returns
        the storage host's ETag. Raises UploadGone when the URL no longer takes it."""
        check_storage_url(url, what)

        async def segment() -> AsyncIterator[bytes]:
            body.seek(offset)
            left = size
            while left:
                chunk = body.read(min(CHUNK, left))
                if not chunk:
                    raise ConnectorError(f"{what}: the spooled file is shorter than declared")
                left -= len(chunk)
                yield chunk

        async def put() -> httpx.Response:
            return await self.http.put(url, content=segment(), headers={
                **headers, "content-type": "application/octet-stream"})

        response = await self._to_storage(put, what)
        etag = response.headers.get("etag")
        if not etag:
            raise ConnectorError(f"{what}: the storage host answered without an ETag")
        return etag

    async def _to_storage(self, send: Callable[[], Awaitable[httpx.Response]], what: str,
                          ) -> httpx.Response:
        """A storage host request: retried on connection failures and 5xx, never paced (it is
        not a Procore API call)."""
        for failures in range(MAX_RETRIES + 1):
            try:
                response = await send()
            except httpx.TransportError as exc:
                if failures == MAX_RETRIES:
                    raise Retryable(f"{what}: the upload failed ({type(exc).__name__})") from None
            else:
                if response.is_success:
                    return response
                if response.status_code in UPLOAD_GONE:
                    now = time.time()
                    raise UploadGone(f"{what}: the storage host refused it "
                                     f"(HTTP {response.status_code}: {error_text(response)})",
                                     now - server_lead(response.headers, now))
                if response.status_code < 500 or failures == MAX_RETRIES:
                    raise classify(response, f"{what} (storage host)")
            await self.pacer.sleep(backoff(failures))
        raise AssertionError("unreachable")


def check_storage_url(url: str, what: str) -> None:
    """Any https host Procore hands out for an upload; plain http only on this machine (the
    local sandbox). The token is never sent there either way."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return
    raise ConnectorError(f"{what}: Procore handed out an upload URL on {parts.netloc} that is "
                         "not https; refusing to send the file in the clear")


def parse_json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        raise ConnectorError(f"{what}: Procore answered something that is not JSON") from None

