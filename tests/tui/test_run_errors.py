"""A run that stops on an error shows the error's message, never its repr: a damaged state
file says what to do, not `StateDamaged('…')`."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from core.state import StateDamaged
from tests.tui.conftest import World, running, wait_for
from tui import service as service_module


def notifications(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


@pytest.mark.parametrize("error, shown", [
    (StateDamaged.__name__, "Tower A: the state file {path} is damaged (file is not a database); "
                            "nothing was changed. Run `dryviq-tui doctor`"),
    ("database disk image is malformed",
     "Tower A: the state file {path} is damaged (database disk image is malformed)"),
    ("boom", "Tower A: the run stopped on an unexpected error: boom"),
])
async def test_a_run_stopped_by_an_error_shows_its_message(world: World, monkeypatch,
                                                           error: str, shown: str) -> None:
    path = world.service.home.state_path

    async def failing_run(*args: object, **kwargs: object) -> None:
        if error == StateDamaged.__name__:
            raise StateDamaged(path, "file is not a database")
        if error == "boom":
            raise RuntimeError(error)
        raise sqlite3.DatabaseError(error)

    monkeypatch.setattr(service_module, "run_job", failing_run)
    await world.job()
    async with running(world) as (app, pilot):
        await pilot.press("r")
        expected = shown.format(path=path)
        await wait_for(lambda: any(m.startswith(expected) for m in notifications(app)),
                       what=expected)
        assert not any("Error(" in m or "Damaged(" in m for m in notifications(app))
