"""Both stores of the state, for tests of the state layer: `store` runs a test once on a
state.db in tmp_path and once on a fresh PostgreSQL database (`-k sqlite` / `-k postgresql`
selects one)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.state import State

STORES = ("sqlite", "postgresql")


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[State]:
    """An open State of each kind, closed after the test."""
    if request.param == "sqlite":
        state = await State.open(tmp_path / "state.db")
    else:
        state = await State.open_url(request.getfixturevalue("postgres_url"))
    try:
        yield state
    finally:
        await state.close()
