"""Defects the sync state machine (test_sync_properties.py) found, each as the shrunk sequence of
user actions and runs that showed it, replayed on the same machine. Each test failed before
its fix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.core.test_sync_properties import NAMES, SyncMachine


@pytest.fixture
def machine() -> Iterator[SyncMachine]:
    made = SyncMachine()
    yield made
    made.teardown()


def test_a_user_file_is_not_taken_for_a_killed_runs_own_create(machine: SyncMachine) -> None:
    """A run killed after recording the create of z.bin at `a`, before writing it; the user
    then makes a z.bin of the same size at `a`. Sizes alone made the planner take it for the
    killed run's own create: neither side's z.bin went to the other, ever."""
    for name in NAMES:
        machine.create("b", "", name, same_size=True)
    machine.killed_sync(after=2, saved=1, graceful=False)
    machine.create("a", "", "z.bin", same_size=True)
    machine.sync()  # both kept: one under the name, the other as a conflict copy on both sides


def test_a_user_edit_is_not_taken_for_a_killed_runs_own_update(machine: SyncMachine) -> None:
    """The same for an update: a run killed after recording the update of z.bin at `a`,
    before writing it; the user then edits z.bin at `a` to the same size."""
    for name in NAMES:
        machine.create("b", "", name, same_size=True)
    machine.sync()
    for name in NAMES:
        machine.create("b", "", name, same_size=True)
    machine.killed_sync(after=2, saved=1, graceful=False)
    machine.create("a", "", "z.bin", same_size=True)
    machine.sync()
