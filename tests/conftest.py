"""Fixtures shared by every test layer: the Procore sandbox served over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from core.sandbox import SandboxConfig, SandboxThread, World, demo_world


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    """The demo world, served on free local ports for one test."""
    with SandboxThread(demo_world()) as running:
        yield running


@pytest.fixture
def make_sandbox() -> Iterator[Callable[[SandboxConfig | World | None], SandboxThread]]:
    """Serve a world of the test's choosing: a config (limits, faults) over the demo world, or
    a whole World. Every sandbox made is stopped after the test."""
    started: list[SandboxThread] = []

    def make(setup: SandboxConfig | World | None = None) -> SandboxThread:
        world = setup if isinstance(setup, World) else demo_world(setup)
        running = SandboxThread(world).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


# Real servers for the SMB and rclone connectors (each module says what it starts)
from tests.s3 import s3_bucket, s3_server  # noqa: E402, F401
from tests.samba import samba, smb_folder  # noqa: E402, F401
from tests.postgres import postgres_server, postgres_url  # noqa: E402, F401
from tests.stores import store  # noqa: E402, F401
