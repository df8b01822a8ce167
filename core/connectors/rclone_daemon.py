"""One `rclone rcd` process on loopback, private to the connector that started it.

Its user and password are random, made for this process only, and reach rclone through its
environment (RCLONE_RC_USER / RCLONE_RC_PASS), never its argv, which `ps` shows every local
user; /proc/PID/environ is readable by its owner only. The port is the one rclone picks itself
(port 0) and reports. rclone dies with us: the kernel sends it SIGTERM when the thread that
started it ends (PR_SET_PDEATHSIG), so a killed job leaves no server behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import functools
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import IO, Any
from urllib.parse import quote

import h11
import httpx

from core.connectors.base import ConnectorError, Fatal

MIN_VERSION = (1, 60)
INSTALL = ("install rclone 1.60 or newer: `apt-get install rclone`, or see "
           "https://rclone.org/install/")
READY_TIMEOUT = 30.0  # seconds for rclone to start serving (a busy machine is slow)
SMALL_BODY = 1 << 20  # bytes: a file up to this size is sent in one piece
STOP_TIMEOUT = 5.0  # seconds for rclone to exit on SIGTERM before it is killed
_SERVING = re.compile(rb"Serving remote control on http://127\.0\.0\.1:(\d+)/")
_VERSION = re.compile(r"rclone v(\d+)\.(\d+)")
# rclone reads every RCLONE_* variable as an option: these would change how the server is
# reached (RCLONE_RC_NO_AUTH, RCLONE_RC_ADDR...) or write our password into its log (-vv)
_DROPPED = re.compile(r"RCLONE_(RC_|VERBOSE|LOG_)")
PR_SET_PDEATHSIG = 1


class DaemonGone(Exception):
    """The rclone process is not answering: it died, or was never started."""


@functools.cache
def _version_of(binary: str) -> tuple[int, int] | None:
    try:
        output = subprocess.run([binary, "version"], capture_output=True, text=True,
                                timeout=30, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.match(output)
    return (int(match[1]), int(match[2])) if match else None


def rclone_binary() -> str:
    """The rclone on PATH, if it is recent enough; ConnectorError saying how to install it."""
    binary = shutil.which("rclone")
    if binary is None:
        raise ConnectorError(f"rclone is not installed (not found on PATH): {INSTALL}")
    version = _version_of(binary)
    if version is None:
        raise ConnectorError(f"{binary} does not run as rclone: {INSTALL}")
    if version < MIN_VERSION:
        raise ConnectorError(f"{binary} is rclone {version[0]}.{version[1]}, too old: {INSTALL}")
    return binary


def rclone_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an rclone process we start. rclone 1.60's S3 backend fails when
    AWS_CA_BUNDLE is set ("unsupported transport"), so the variable is dropped and the same
    bundle is given to rclone as its own --ca-cert (`ca_cert`): TLS is still verified
    against the roots the user chose."""
    env = {key: value for key, value in os.environ.items()
           if key != "AWS_CA_BUNDLE" and not _DROPPED.match(key)}
    env.update(extra or {})
    return env


def ca_cert() -> str | None:
    """The CA bundle rclone gets as --ca-cert: AWS_CA_BUNDLE's (see `rclone_env`)."""
    bundle = os.environ.get("AWS_CA_BUNDLE")
    return bundle if bundle and "RCLONE_CA_CERT" not in os.environ else None


def config_args(config: str | None) -> list[str]:
    return ["--config", config] if config else []


@functools.cache
def _prctl() -> Any:
    """libc's prctl, looked up before a fork (not in the child, where loading is unsafe)."""
    return ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGTERM when the thread that started it ends."""
    _prctl()(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _last_line(log: IO[bytes]) -> str:
    log.seek(0)
    lines = [line.strip() for line in log.read().decode(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "no message"


class _Calls:
    """rc calls (a small JSON body each way) over keep-alive HTTP/1.1 connections to our own
    rclone on loopback, framed by h11 on asyncio streams. httpx spends about 2 ms of CPU on
    each request (measured, 1,000 calls: 2.4 s against 0.15 s without it): with one call per
    file, that was more than all of rclone's own copying. Streams (uploads, downloads) stay
    with httpx. Raises OSError, h11.ProtocolError or asyncio.IncompleteReadError when rclone
    does not answer."""

    def __init__(self, port: int, auth: tuple[str, str]) -> None:
        self.port = port
        self.authorization = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self._headers = [("Host", f"127.0.0.1:{port}"), ("Authorization", self.authorization),
                         ("Content-Type", "application/json")]
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]] = []

    async def post(self, method: str, params: dict[str, Any]) -> tuple[int, str]:
        """rclone's HTTP status and answer."""
        body = json.dumps(params).encode()
        if self._idle:
            reader, writer, http = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            http = h11.Connection(h11.CLIENT)
        try:
            writer.write(http.send(h11.Request(
                method="POST", target=f"/{method}",
                headers=[*self._headers, ("Content-Length", str(len(body)))])))
            writer.write(http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage()))
            status, answer = await _response(reader, http)
        except BaseException:
            writer.close()  # a request without its answer: the connection is done
            raise
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
            self._idle.append((reader, writer, http))
        else:
            writer.close()
        return status, answer

    def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


async def _response(reader: asyncio.StreamReader, http: h11.Connection) -> tuple[int, str]:
    """One HTTP response's status and body, as h11 reads them off the stream."""
    status, parts = 0, []
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(await reader.read(65536))  # b"": the end, which h11 judges
        elif isinstance(event, h11.ConnectionClosed):
            raise asyncio.IncompleteReadError(b"", None)
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            parts.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return status, b"".join(parts).decode(errors="replace")


class RcloneDaemon:
    """Starts, calls and stops one `rclone rcd`. Calls raise DaemonGone when the process does
    not answer, and otherwise return rclone's answer, errors included, for the caller to
    classify."""

    def __init__(self, config: str | None) -> None:
        self._config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._auth = ("", "")
        self.base_url = ""
        self._client: httpx.AsyncClient | None = None  # for streams
        self._calls: _Calls | None = None  # for rc calls
        self._ready = False  # set by `mark_ready` once the starter has checked it serves

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def ready(self) -> bool:
        """Started, checked, and still running: calls may go to `base_url`."""
        return self._ready and self.running

    def mark_ready(self) -> None:
        """The process `spawn` started serves, and its remote works: calls may go to it."""
        self._ready = True

    def spawn(self) -> None:
        """Start rclone (cheap: a fork and exec, done in the caller's thread, whose end
        ends rclone); `wait_ready` then waits until it serves."""
        self._forget()
        binary = rclone_binary()
        if self._config and not os.path.isfile(self._config):
            raise Fatal(f"rclone config {self._config}: no such file")
        user, password = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        self._auth = (user, password)
        if self._log is not None:
            self._log.close()
        # rclone's messages: a file, so a long run never fills a pipe; closed by stop()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        argv = [binary, "rcd", "--rc-addr", "127.0.0.1:0", "--rc-serve",
                "--rc-server-read-timeout", "8760h", "--rc-server-write-timeout", "8760h",
                "--ask-password=false", "--log-level", "NOTICE",
                *config_args(self._config)]
        bundle = ca_cert()
        if bundle:
            argv += ["--ca-cert", bundle]
        env = rclone_env({"RCLONE_RC_USER": user, "RCLONE_RC_PASS": password})
        _prctl()
        parent = os.getpid()
        self._process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            env=env, start_new_session=True,  # a Ctrl-C reaches us, and we stop it in order
            preexec_fn=functools.partial(_die_with_parent, parent))

    def wait_ready(self) -> None:
        """Block until rclone says which port it serves on; ConnectorError if it exits or
        takes too long."""
        process, log = self._process, self._log
        assert process is not None and log is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            log.seek(0)
            match = _SERVING.search(log.read())
            if match:
                self.base_url = f"http://127.0.0.1:{int(match[1])}"
                self._calls = _Calls(int(match[1]), self._auth)
                return
            if process.poll() is not None:
                raise ConnectorError(f"rclone stopped at its start: {_last_line(log)}")
            if time.monotonic() > deadline:
                self.kill()
                raise ConnectorError(f"rclone did not start serving within {READY_TIMEOUT:.0f} s")
            time.sleep(0.01)

    def client(self) -> httpx.AsyncClient:
        """The client of the rclone that is ready; DaemonGone while there is none (a call
        to a port of an rclone that died could reach whatever listens there now, with our
        credentials)."""
        if not self.ready:
            raise DaemonGone("rclone is not serving (starting or stopped)")
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, auth=self._auth,
                timeout=httpx.Timeout(None, connect=30.0),  # rclone times out what it calls
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        return self._client

    def _forget(self) -> None:
        """No calls to the current process from now on (its client, if any, is closed by
        `stop`; `spawn` runs after `stop` or before any client)."""
        self._ready = False
        self.base_url = ""
        self._client = None
        calls, self._calls = self._calls, None
        if calls is not None:
            calls.close()

    def last_message(self) -> str:
        return _last_line(self._log) if self._log is not None else "not started"

    async def call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One rc call: rclone's HTTP status and its JSON answer."""
        if not self.ready or self._calls is None:  # see `client`
            raise DaemonGone("rclone is not serving (starting or stopped)")
        try:
            status, answer = await self._calls.post(method, params)
        except (OSError, asyncio.IncompleteReadError, h11.ProtocolError) as exc:
            raise DaemonGone(str(exc) or type(exc).__name__) from exc
        return status, _decoded(status, answer)

    def call_now(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """`call`, blocking (while rclone starts, in a worker thread): the standard library's
        client, which costs no TLS set-up (httpx's, 0.3 s of CPU, for a loopback call)."""
        if self._calls is None:
            raise DaemonGone("rclone is not started")
        connection = http.client.HTTPConnection("127.0.0.1", self._calls.port)
        try:
            connection.request("POST", f"/{method}", json.dumps(params).encode(), {
                "Authorization": self._calls.authorization,
                "Content-Type": "application/json"})
            response = connection.getresponse()
            status, text = response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonGone(str(exc) or type(exc).__name__) from exc
        finally:
            connection.close()
        return status, _decoded(status, text)

    async def upload(self, params: dict[str, str], name: str,
                     chunks: AsyncIterable[bytes]) -> tuple[int, dict[str, Any]]:
        """operations/uploadfile with one file, its bytes streamed as they come. A small file
        goes in one piece with its length (one send instead of one per chunk)."""
        boundary = secrets.token_hex(16)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename*=UTF-8''{quote(name, safe='')}\r\n"  # RFC 2231: any Unicode name
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        iterator = aiter(chunks)
        first: list[bytes] = [head]
        buffered, more = 0, True
        while buffered < SMALL_BODY:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                more = False
                break
            first.append(chunk)
            buffered += len(chunk)
        body = _streamed(first, iterator, tail) if more else b"".join([*first, tail])
        try:
            response = await self.client().post("/operations/uploadfile", params=params,
                                                headers=headers, content=body)
        except httpx.TransportError as exc:
            raise DaemonGone(str(exc) or type(exc).__name__) from exc
        return response.status_code, _json(response)

    @contextlib.asynccontextmanager
    async def download(self, fs: str, path: str) -> AsyncIterator[httpx.Response]:
        """The response serving the object `path` of the remote `fs` (--rc-serve)."""
        url = "/" + quote(_served_path(fs, path), safe="/:")  # rclone reads it decoded
        try:
            async with self.client().stream("GET", url) as response:
                yield response
        except httpx.TransportError as exc:
            raise DaemonGone(str(exc) or type(exc).__name__) from exc

    def kill(self) -> None:
        """End a start that failed; the process is forgotten, so the next call starts anew
        (a process that died by itself is remembered: the connector counts its restarts)."""
        self._forget()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    async def stop(self) -> None:
        """Ask rclone to exit (SIGTERM), kill it if it does not; release everything."""
        client = self._client
        self._forget()
        if client is not None:
            await client.aclose()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        if self._log is not None:
            self._log.close()
            self._log = None


def _served_path(fs: str, path: str) -> str:
    """`[fs]/path` as --rc-serve reads it. rclone takes the fs up to the first `]`, so a root
    folder holding one ("s3:bucket/Bids [2024]") is moved out of the brackets into the path:
    the brackets keep the root only up to the last '/' before its first `]` (a remote's name
    cannot hold one)."""
    cut = fs.find("]")
    if cut < 0:
        return f"[{fs}]/{path}"
    colon = fs.index(":") + 1
    slash = fs.rfind("/", colon, cut)
    if slash < 0:  # "drive:Bids [2024]": the remote's own root
        inside, under = fs[:colon], fs[colon:]
    elif slash == colon:  # "local:/Bids [2024]": the filesystem's root
        inside, under = fs[:colon + 1], fs[colon + 1:]
    else:
        inside, under = fs[:slash], fs[slash + 1:]
    return f"[{inside}]/{under}/{path}"


def _json(response: httpx.Response) -> dict[str, Any]:
    return _decoded(response.status_code, response.text)


def _decoded(status: int, text: str) -> dict[str, Any]:
    """rclone's JSON answer; what is not JSON becomes its error."""
    try:
        answer = json.loads(text)
    except ValueError:
        return {"error": text.strip()[:300] or f"HTTP {status}"}
    return answer if isinstance(answer, dict) else {}


async def _streamed(first: list[bytes], rest: AsyncIterator[bytes],
                   tail: bytes) -> AsyncIterator[bytes]:
    yield b"".join(first)
    async for chunk in rest:
        yield chunk
    yield tail


async def list_remote_names(config: str | None) -> list[str]:
    """`rclone listremotes`: the remotes of a config, as `name:`."""
    if config is not None and not os.path.isfile(config):
        raise ConnectorError(f"rclone config {config}: no such file")
    process = await asyncio.create_subprocess_exec(
        rclone_binary(), "listremotes", "--ask-password=false", *config_args(config),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=rclone_env())
    out, err = await process.communicate()
    if process.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines() or ["no message"]
        raise ConnectorError(f"rclone cannot read its config: {lines[-1]}")
    return [line.strip() for line in out.decode().splitlines() if line.strip()]
