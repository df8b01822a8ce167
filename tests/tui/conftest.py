"""TUI fixtures: a real home and state file under tmp_path, real local folders made into
connections with core, and helpers to wait for what the screens show (they poll the service
every half second, so a test waits for a condition rather than sleeping a fixed time)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from core.connections import add_local
from core.demo import connect_sandbox
from core.home import Home
from core.job_store import create_job
from core.sandbox import SandboxThread
from core.state import Connection, JobRecord, State
from tui.app import DryvIQApp
from tui.screens.jobs import JobsScreen
from tui.service import AppService

SIZE = (100, 32)


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Times on screen in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def job_json(name: str = "Tower A", source: str = "plans", destination: str = "share",
             parallel: int = 4, **transfer: Any) -> str:
    return json.dumps({
        "name": name, "kind": "transfer",
        "transfer": {"transfer_type": "copy",
                     "source": {"connection": {"id": source}, "target": {"path": "/"}},
                     "destination": {"connection": {"id": destination},
                                     "target": {"path": "/copy"}},
                     "performance": {"parallel_writes": {"requested": parallel}}, **transfer},
        "schedule": {"mode": "manual"}, "category": {"name": "Tests"}})


def write_files(root: Path, count: int, size: int = 1024, per_folder: int = 50) -> None:
    """`count` files of `size` bytes, `per_folder` to a folder. They are hard links to the
    first one: thousands cost milliseconds (a written file costs ~0.5 ms on this disk), and
    the engine copies each as a file of its own."""
    first: Path | None = None
    for i in range(count):
        folder = root / f"folder-{i // per_folder:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"doc-{i:05d}.bin"
        if first is None:
            path.write_bytes(os.urandom(size))
            first = path
        else:
            os.link(first, path)


async def add_sandbox_procore(state: State, home: Home, sandbox: SandboxThread,
                              name: str = "riverside") -> Connection:
    """A Procore connection to the sandbox's demo project, signed in through core."""
    return await connect_sandbox(state, home, sandbox.url, sandbox.world, name)


@dataclass
class World:
    """A home with two local connections, `plans` (source) and `share` (destination)."""

    home: Home
    state: State
    service: AppService
    source: Path
    destination: Path

    async def job(self, text: str | None = None) -> JobRecord:
        record, _ = await create_job(self.state, text or job_json())
        return record


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    home = Home(tmp_path / "home")
    service = await AppService.open(home)
    source, destination = tmp_path / "plans", tmp_path / "share"
    source.mkdir()
    destination.mkdir()
    await add_local(service.state, "plans", str(source))
    await add_local(service.state, "share", str(destination))
    yield World(home, service.state, service, source, destination)
    await service.close()


async def wait_for(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 60.0,
                   what: str = "the condition") -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def text_of(app: DryvIQApp, selector: str) -> str:
    """What a Static shows, as plain text."""
    return str(app.screen.query_one(selector).render())


@asynccontextmanager
async def running(world: World) -> AsyncIterator[tuple[DryvIQApp, Pilot[int]]]:
    """The app over the world's service, on the jobs screen with its rows loaded."""
    app = DryvIQApp(world.service)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.pause()
        yield app, pilot


def table_rows(app: DryvIQApp, selector: str) -> list[list[str]]:
    """The cells of the current screen's table, as text."""
    table = app.screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
