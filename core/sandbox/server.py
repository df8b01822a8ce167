"""The sandbox over real HTTP: three uvicorn servers in one event loop, for the Procore host
(login and API), its download host and its object store. Different ports are different
origins, so a client that sends its token to the object store, or relies on the hosts sharing
cookies or auth, is caught.

Which host may see the token is told by name, as with Procore (api.procore.com and
storage.procore.com may, the S3 host may not): the download host has the API's host name on a
port of its own, and the object store another loopback name for the same address (`localhost`
for an IP address such as 127.0.0.1, else 127.0.0.1), so a client's rule for the loopback
sandbox ("the API's host name, any port") lets the token reach the first and not the second.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

import uvicorn

from core.sandbox.app import ResponseDropped, create_app
from core.sandbox.samples import demo_world
from core.sandbox.world import World

START_TIMEOUT = 10.0  # seconds
SHUTDOWN_GRACE = 2.0  # seconds for requests in flight when the sandbox stops


@dataclass(frozen=True)
class RunningSandbox:
    """Where a served world answers: `url` for login and API, `download_url` for version
    downloads, `storage_url` for the bytes (the object store)."""

    world: World
    url: str
    storage_url: str
    download_url: str


class _Server(uvicorn.Server):
    """Leaves signals to whoever runs `serve`: two servers in one process must not fight over
    SIGINT, and stopping is cancelling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _HideDrops(logging.Filter):
    """uvicorn logs a response dropped on purpose as an application error; it is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResponseDropped))


_HIDE_DROPS = _HideDrops()


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Its protocol is named, not 0: asyncio turns Nagle's algorithm
    off only for sockets that say they are TCP, and with it on every answer waits ~40 ms."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def _url(sock: socket.socket, name: str | None = None) -> str:
    """The socket's URL, under `name` instead of its address if given."""
    host, port = sock.getsockname()[:2]
    host = name or host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def object_store_name(host: str) -> str:
    """Another name for the loopback address `host`, for the object store (module docstring)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "127.0.0.1"
    return "localhost"


async def serve(world: World, host: str = "127.0.0.1", port: int = 0, storage_port: int = 0,
                ready: Callable[[RunningSandbox], None] | None = None, *,
                download_port: int = 0) -> None:
    """Serve `world` until cancelled (port 0: any free port); `ready` hears where, once every
    server listens and the world knows its URLs."""
    logging.getLogger("uvicorn.error").addFilter(_HIDE_DROPS)
    app = create_app(world)
    sockets = [_listen(host, port), _listen(host, storage_port), _listen(host, download_port)]
    world.base_url, world.download_url = _url(sockets[0]), _url(sockets[2])
    world.storage_url = _url(sockets[1], object_store_name(sockets[1].getsockname()[0]))
    # date_header off: the app sends Date from the world's clock, which may be offset
    servers = [_Server(uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="off",
        http="h11", timeout_graceful_shutdown=SHUTDOWN_GRACE, date_header=False))
        for _ in sockets]
    tasks = [asyncio.create_task(server.serve(sockets=[sock]))
             for server, sock in zip(servers, sockets, strict=True)]
    try:
        while not all(server.started for server in servers):
            for task in tasks:
                if task.done():  # failed to start: its exception, or that it stopped
                    task.result()
                    raise RuntimeError("a sandbox server stopped while starting")
            await asyncio.sleep(0.005)
        if ready is not None:
            ready(RunningSandbox(world, world.base_url, world.storage_url, world.download_url))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.wait(tasks)
        for sock in sockets:
            sock.close()


class SandboxThread:
    """The sandbox served from a background thread with its own event loop, for tests and
    for callers that are not async: `with SandboxThread(world) as sandbox: sandbox.url`."""

    def __init__(self, world: World | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 storage_port: int = 0, timeout: float = START_TIMEOUT) -> None:
        self.world = world if world is not None else demo_world()
        self.host, self.port, self.storage_port = host, port, storage_port
        self.timeout = timeout
        self._running: RunningSandbox | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="dryviq-sandbox", daemon=True)

    @property
    def running(self) -> RunningSandbox:
        if self._running is None:
            raise RuntimeError("the sandbox is not running: use start() or a with block")
        return self._running

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def storage_url(self) -> str:
        return self.running.storage_url

    @property
    def download_url(self) -> str:
        return self.running.download_url

    def start(self) -> SandboxThread:
        """Serve, and return once both hosts answer (or raise why they do not)."""
        self._thread.start()
        if not self._ready.wait(self.timeout):
            self.stop()
            raise RuntimeError(f"the sandbox did not start within {self.timeout:g} s")
        if self._running is None:
            raise RuntimeError(f"the sandbox failed to start: {self._error!r}") from self._error
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (requests in flight get a short grace)."""
        loop, task = self._loop, self._task
        if not self._thread.is_alive():
            return
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(self.timeout)

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except asyncio.CancelledError:
            pass  # stopped
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        await serve(self.world, self.host, self.port, self.storage_port, ready=self._on_ready)

    def _on_ready(self, running: RunningSandbox) -> None:
        self._running = running
        self._ready.set()
