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


def test_a_stopped_first_meeting_conflict_keeps_both_versions(machine: SyncMachine) -> None:
    """Both sides have y.txt and z.bin, never synced; the run that would keep both as a
    conflict copy stops before it reaches them. Its pending record, made from one side's file,
    was then taken for the state both sides had last been in step in: the next run saw only
    the other side changed and overwrote the newer versions, with no conflict copy."""
    for side in ("b", "a"):
        machine.create_several(side, "", same_size=True)
    machine.delete(Draw("x.txt"), "a")  # the run's first change sends x.txt back to `a`
    machine.killed_sync(after=1, saved=0, graceful=True)
    machine.sync()


class Draw:
    """Stands in for hypothesis's data: the choice a rule draws."""

    def __init__(self, value: str) -> None:
        self.value = value

    def draw(self, strategy: object) -> str:
        return self.value


@pytest.mark.parametrize("after", range(1, 9))
def test_a_cancelled_run_leaves_no_writer_running(machine: SyncMachine, after: int) -> None:
    """Cancelled (a second Ctrl-C, an app closing) while it queued the end of its work, a run
    returned with its file writers still running: they went on writing, with the job's lock
    released and after the state DB closed."""
    for folder in ("", "d", "e"):
        machine.create_several("b", folder, same_size=False)  # written back one at a time
    machine.killed_sync(after=after, saved=0, graceful=False)
