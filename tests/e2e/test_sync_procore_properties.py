"""Two-way sync between a local folder and Procore (the embedded sandbox over real HTTP),
property-based: the state machine of tests/core/test_sync_properties.py, with side `b` a
folder of the sandbox's project that the "user" changes directly in the sandbox (uploads,
renames, moves, deletes to the Recycle Bin). Beside its invariants, after every completed run:
no file is duplicated in Procore (no "name (1).ext" copy, no two names alike but for case in
one folder), and every version the user ever uploaded is still in Procore: in a file's
versions, live or in the Recycle Bin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from core.connectors.local import LocalConnector
from core.connectors.procore import ProcoreConnector
from core.demo import connect_sandbox
from core.sandbox import SandboxConfig, SandboxThread
from core.sandbox.samples import DEMO_PROJECT
from core.sandbox.world import World
from tests.core.test_sync_properties import LocalSide, SyncMachine, run_machine

pytestmark = [pytest.mark.slow,
              pytest.mark.xdist_group("cpu")]  # busy for a minute: never beside tmux tests

ROOT = "Sync"  # the job's folder in the project; each machine gets its own below it
COPY = re.compile(r" \(\d+\)(\.[^.]*)?$")  # "name (1).ext": a name Procore made unique


class ProcoreSide:
    """One side as the user sees it: a folder of the sandbox's demo project."""

    def __init__(self, world: World, folder: str) -> None:
        self.world, self.folder = world, folder
        self.project = next(p for p in world.projects.values() if p.name == DEMO_PROJECT)
        world.add_folder(self.project.id, folder)

    def _path(self, path: str) -> str:
        return f"{self.folder}/{path}"

    def _items(self) -> dict[str, bytes | None]:
        prefix = self.folder + "/"
        return {path[len(prefix):]: data
                for path, data in self.world.tree(self.project.id).items()
                if path.startswith(prefix)}

    def files(self) -> dict[str, bytes]:
        return {path: data for path, data in self._items().items() if data is not None}

    def folders(self) -> set[str]:
        return {path for path, data in self._items().items() if data is None}

    def kept(self) -> list[bytes]:
        """Every version of every file of the project, deleted ones' too."""
        with self.world.lock:
            return [version.blob.data for node in self.project.nodes.values()
                    for version in node.versions]

    def write(self, path: str, data: bytes, mtime: float) -> None:
        self.world.add_file(self.project.id, self._path(path), data)  # Procore dates it

    def delete(self, path: str) -> None:
        self.world.delete(self.world.node_at(self.project.id, self._path(path)))

    def move(self, path: str, to: str) -> None:
        node = self.world.node_at(self.project.id, self._path(path))
        folder, _, name = self._path(to).rpartition("/")
        parent = self.world.add_folder(self.project.id, folder)
        self.world.change(node, name=name, parent_id=parent.id)

    def mkdir(self, path: str) -> None:
        self.world.add_folder(self.project.id, self._path(path))


class ProcoreSyncMachine(SyncMachine):
    """The sync machine with Procore as the destination."""

    sandbox: SandboxThread  # set by the test
    made = 0
    connectors = (LocalConnector, ProcoreConnector)

    def make_sides(self) -> dict[str, LocalSide | ProcoreSide]:  # type: ignore[override]
        ProcoreSyncMachine.made += 1
        folder = f"{ROOT}/run {ProcoreSyncMachine.made}"
        self.destination = "/" + folder
        self.uploaded: set[bytes] = set()  # every version the user uploaded to Procore
        return {"a": LocalSide(self.tmp / "a"), "b": ProcoreSide(self.sandbox.world, folder)}

    async def connect(self) -> None:
        await self.state.add_connection("a", "local", {"path": str(self.tmp / "a")})
        await connect_sandbox(self.state, self.home, self.sandbox.url, self.sandbox.world,
                              name="b")

    def content(self, side: str, path: str, same_size: bool) -> bytes:
        """As the local machine's, but of a size no other content has: Procore keeps no
        checksum and dates files itself, so the engine takes two files of one size at one
        path, with no record of them in step, for the same (ASSUMED_SAME on a first meeting,
        and a killed run's own write): a known limit (see the test below), left out here so
        the machine looks for everything else."""
        data = super().content(side, path, same_size)
        return data.ljust(100 + self.versions, b".")

    def put(self, side: str, path: str, same_size: bool) -> None:
        super().put(side, path, same_size)
        if side == "b":
            self.uploaded.add(self.sides["b"].files()[path])

    def check(self) -> None:
        super().check()
        procore = self.sides["b"]
        copies = sorted(p for p in procore.files() if COPY.search(p.rpartition("/")[2]))
        assert not copies, f"duplicated in Procore: {copies}"
        paths = [*procore.files(), *procore.folders()]
        assert len({p.casefold() for p in paths}) == len(paths), f"names alike: {paths}"
        lost = self.uploaded - set(procore.kept())
        assert not lost, f"versions gone from Procore: {sorted(lost)}"


@pytest.fixture
def unlimited_sandbox(make_sandbox) -> Iterator[SandboxThread]:
    """The demo world without rate limits: the machine makes many runs quickly."""
    yield make_sandbox(SandboxConfig(hourly_limit=10**9, spike_limit=10**9))


@pytest.mark.timeout(900)
def test_sync_with_procore_keeps_every_edit_and_duplicates_nothing(
        unlimited_sandbox: SandboxThread) -> None:
    """About 200 completed runs and 180 killed or stopped ones, in about 75 s."""
    ProcoreSyncMachine.sandbox = unlimited_sandbox
    run_machine(ProcoreSyncMachine, examples=50, steps=20)


class SizeOnlyMachine(ProcoreSyncMachine):
    """The machine with the local machine's content: sizes may repeat."""

    content = SyncMachine.content


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "a design limit, not fixed here: on a first meeting with Procore, which keeps no checksum "
    "and dates files itself, the planner takes two files of one size for the same "
    "(ASSUMED_SAME) and neither goes to the other side; telling them apart needs a download "
    "and a byte comparison, or a conflict copy of every such pair"))
def test_a_first_meeting_with_procore_tells_apart_two_files_of_one_size(
        unlimited_sandbox: SandboxThread) -> None:
    SizeOnlyMachine.sandbox = unlimited_sandbox
    machine = SizeOnlyMachine()
    try:
        machine.create("a", "", "x.txt", same_size=True)
        machine.create("b", "", "x.txt", same_size=True)
        machine.sync()
    finally:
        machine.teardown()
