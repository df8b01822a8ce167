"""Two-way sync, property-based: a hypothesis state machine plays a user editing two real local
folders between sync runs (creates, edits, deletes, renames, folder moves, edits on both sides
of one file) and kills some runs part-way. After every completed run:
(a) no content the user wrote, and did not itself overwrite or delete, is lost: it is in a file
    on one side or in a conflict copy (outside the trash: stricter than the issue, which lets
    it be in a `.dryviq-trash/`, since an edit sent to the trash is one the user must find);
(b) both sides hold the same tree (folders, file names and bytes) outside the trash;
(c) a sync right after a sync changes nothing.
(a) is checked after a killed run too: a kill may leave work undone, never content lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from core.connectors.local import LocalConnector
from core.engine import runner
from core.home import Home
from core.job_store import create_job
from core.state import ItemLog, State

TRASH = ".dryviq-trash"
SIDES = st.sampled_from(["a", "b"])
# file and folder names never meet, so a file never stands where the other side has a folder
FOLDERS = ["", "d", "e", "d/e", "e/d"]
NAMES = ["x.txt", "y.txt", "z.bin"]
# the connector calls that change a side: a kill lands after the n-th of them
CHANGES = ("write", "write_local", "copy_small", "mkdir", "trash", "rename", "remove", "rmdir")


def join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


class LocalSide:
    """One side as the user sees it: a folder on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()

    def files(self) -> dict[str, bytes]:
        """Every file outside the trash, by path, with its bytes."""
        return {p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in self.root.rglob("*") if p.is_file() and not self._trashed(p)}

    def folders(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                if p.is_dir() and not self._trashed(p)}

    def kept(self) -> list[bytes]:
        """The bytes of every file, the trash's included."""
        return [p.read_bytes() for p in self.root.rglob("*") if p.is_file()]

    def _trashed(self, path: Path) -> bool:
        return path.relative_to(self.root).parts[0] == TRASH

    def write(self, path: str, data: bytes, mtime: float) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.utime(target, (mtime, mtime))

    def delete(self, path: str) -> None:
        target = self.root / path
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    def move(self, path: str, to: str) -> None:
        """Rename or move a file or a folder (mtimes kept, as a user's move keeps them)."""
        target = self.root / to
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.root / path, target)

    def mkdir(self, path: str) -> None:
        (self.root / path).mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def after_each_change(hook: Callable[[], Awaitable[None]],
                      connectors: tuple[type, ...]) -> Iterator[list[ItemLog]]:
    """Await `hook` after each change call of `connectors` has returned; yields the run's
    item logs, which save their records only when told (or at the run's end), not every
    0.2 s: what a killed run saved must not depend on timing, or the machine is not
    reproducible."""
    originals = {(cls, name): getattr(cls, name) for cls in connectors for name in CHANGES
                 if hasattr(cls, name)}
    enter = ItemLog.__aenter__
    logs: list[ItemLog] = []

    def wrap(original: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[object]]:
        @functools.wraps(original)
        async def counted(*args: object, **kwargs: object) -> object:
            try:
                return await original(*args, **kwargs)
            finally:
                await hook()
        return counted

    async def entered(self: ItemLog) -> ItemLog:
        self._interval = 3600
        logs.append(self)
        return await enter(self)

    for (cls, name), original in originals.items():
        setattr(cls, name, wrap(original))
    ItemLog.__aenter__ = entered  # type: ignore[method-assign]
    try:
        yield logs
    finally:
        for (cls, name), original in originals.items():
            setattr(cls, name, original)
        ItemLog.__aenter__ = enter  # type: ignore[method-assign]


class SyncMachine(RuleBasedStateMachine):
    """A user working on two sides of a sync job, and the job run between their edits."""

    connectors: tuple[type, ...] = (LocalConnector,)  # whose changes a kill counts
    destination = "/"  # the job's destination folder

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="sync-props-"))
        self.loop = asyncio.new_event_loop()
        self.clock = time.time() - 1_000_000  # mtimes ten seconds apart, in the past
        self.versions = 0
        self.live: set[bytes] = set()  # every content the user wrote and still means to keep
        self.runs = self.kills = 0
        self.sides = self.make_sides()
        self.loop.run_until_complete(self.open())

    def make_sides(self) -> dict[str, LocalSide]:
        return {"a": LocalSide(self.tmp / "a"), "b": LocalSide(self.tmp / "b")}

    async def connect(self) -> None:
        for name in ("a", "b"):
            await self.state.add_connection(name, "local", {"path": str(self.tmp / name)})

    async def open(self) -> None:
        self.home = Home(self.tmp / "home")
        self.home.ensure()
        self.state = await State.open(self.home.state_path)
        await self.connect()
        text = json.dumps({"name": "sync", "transfer": {
            "transfer_type": "sync", "max_delete": 100,
            "source": {"connection": {"id": "a"}, "target": {"path": "/"}},
            "destination": {"connection": {"id": "b"}, "target": {"path": self.destination}}}})
        self.job, _ = await create_job(self.state, text)

    def teardown(self) -> None:
        self.loop.run_until_complete(self.state.close())
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the user

    def content(self, side: str, path: str, same_size: bool) -> bytes:
        """New content, never written before; of one fixed size where `same_size`, so only
        the mtime shows the change."""
        self.versions += 1
        if same_size:
            return b"v%07d" % self.versions
        return f"version {self.versions}, written at {side}:{path}\n".encode()

    def put(self, side: str, path: str, same_size: bool) -> None:
        files = self.sides[side].files()
        if path in files:
            self.live.discard(files[path])  # overwritten by the user: not theirs to keep
        data = self.content(side, path, same_size)
        self.clock += 10
        self.sides[side].write(path, data, self.clock)
        self.live.add(data)

    def pick(self, data: st.DataObject, choices: object) -> str | None:
        options = sorted(choices)  # type: ignore[call-overload]
        return data.draw(st.sampled_from(options)) if options else None

    @rule(side=SIDES, folder=st.sampled_from(FOLDERS), name=st.sampled_from(NAMES),
          same_size=st.booleans())
    def create(self, side: str, folder: str, name: str, same_size: bool) -> None:
        """A new file (or a new version of one that is there)."""
        self.put(side, join(folder, name), same_size)

    def any_files(self) -> bool:
        return any(side.files() for side in self.sides.values())

    def any_folders(self) -> bool:
        return any(side.folders() for side in self.sides.values())

    @rule(side=SIDES, folder=st.sampled_from(FOLDERS), same_size=st.booleans())
    def create_several(self, side: str, folder: str, same_size: bool) -> None:
        """A file of each name in one folder: a run with several changes to be killed in."""
        for name in NAMES:
            self.put(side, join(folder, name), same_size)

    @precondition(any_files)
    @rule(data=st.data(), side=SIDES, same_size=st.booleans())
    def edit(self, data: st.DataObject, side: str, same_size: bool) -> None:
        path = self.pick(data, self.sides[side].files())
        if path is not None:
            self.put(side, path, same_size)

    @precondition(lambda self: self.sides["a"].files().keys() & self.sides["b"].files().keys())
    @rule(data=st.data(), same_size=st.booleans(), b_first=st.booleans())
    def edit_both(self, data: st.DataObject, same_size: bool, b_first: bool) -> None:
        """The same file edited on both sides before the next run."""
        path = self.pick(data, self.sides["a"].files().keys() & self.sides["b"].files().keys())
        if path is not None:
            for side in ("b", "a") if b_first else ("a", "b"):
                self.put(side, path, same_size)

    @precondition(any_files)
    @rule(data=st.data(), side=SIDES)
    def delete(self, data: st.DataObject, side: str) -> None:
        files = self.sides[side].files()
        path = self.pick(data, files)
        if path is not None:
            self.live.discard(files[path])
            self.sides[side].delete(path)

    @precondition(any_folders)
    @rule(data=st.data(), side=SIDES)
    def delete_folder(self, data: st.DataObject, side: str) -> None:
        folder = self.pick(data, self.sides[side].folders())
        if folder is not None:
            for path, content in self.sides[side].files().items():
                if path.startswith(folder + "/"):
                    self.live.discard(content)
            self.sides[side].delete(folder)

    @precondition(any_files)
    @rule(data=st.data(), side=SIDES, folder=st.sampled_from(FOLDERS),
          name=st.sampled_from(NAMES))
    def rename(self, data: st.DataObject, side: str, folder: str, name: str) -> None:
        """A file renamed, or moved to another folder."""
        files = self.sides[side].files()
        path, to = self.pick(data, files), join(folder, name)
        if path is not None and to not in files:
            self.sides[side].move(path, to)

    @precondition(any_folders)
    @rule(data=st.data(), side=SIDES, to=st.sampled_from(FOLDERS[1:]))
    def move_folder(self, data: st.DataObject, side: str, to: str) -> None:
        folder = self.pick(data, self.sides[side].folders())
        if (folder is not None and to not in self.sides[side].folders()
                and not to.startswith(folder + "/")):
            self.sides[side].move(folder, to)

    @rule(side=SIDES, folder=st.sampled_from(FOLDERS[1:]))
    def mkdir(self, side: str, folder: str) -> None:
        self.sides[side].mkdir(folder)

    # -- the job

    async def run(self, stop: asyncio.Event | None = None, force: bool = False,
                  ) -> runner.RunResult:
        return await runner.run_job(self.state, self.home, self.job, stop=stop, force=force)

    @rule()
    def sync(self) -> None:
        self.runs += 1
        result = self.loop.run_until_complete(self.run())
        if result.status == "guarded":  # a side emptied by the user: proceed, as --force does
            result = self.loop.run_until_complete(self.run(force=True))
        assert result.status in ("completed", "no_changes"), (result.status, result.error,
                                                               result.stats)
        self.check()
        again = self.loop.run_until_complete(self.run())
        assert again.status == "no_changes", again.stats

    @rule(after=st.integers(1, 8), saved=st.integers(0, 8), graceful=st.booleans())
    def killed_sync(self, after: int, saved: int, graceful: bool) -> None:
        """A run killed (its task cancelled, its records since the last save lost with it)
        or stopped (as Ctrl-C does) after its `after`-th change; its records are saved after
        its `saved`-th change (0: never before the kill)."""
        self.kills += 1
        self.loop.run_until_complete(self.kill(after, saved, graceful))
        self.nothing_lost()

    async def kill(self, after: int, saved: int, graceful: bool) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run_job(self.state, self.home, self.job, stop=stop,
                                                  parallel=1))  # one order of changes
        changes = 0

        async def hook() -> None:
            nonlocal changes
            changes += 1
            if changes == saved and changes < after:
                await logs[-1].flush()
            if changes != after:
                return
            if graceful:
                stop.set()
                return
            # a killed process saves nothing more: its unsaved records are lost with it
            self.state.save_items = self.state.update_execution = _nothing  # type: ignore[method-assign]
            task.cancel()

        with (after_each_change(hook, self.connectors) as logs,
              contextlib.suppress(asyncio.CancelledError)):
            await task
        for name in ("save_items", "update_execution"):
            self.state.__dict__.pop(name, None)
        await asyncio.sleep(0)  # a task cancelled along with the run sees it here
        running = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not running, f"still running after the run was killed: {running}"

    # -- what must hold

    def check(self) -> None:
        """What must hold after a completed run."""
        self.nothing_lost()
        self.both_sides_agree()

    def nothing_lost(self) -> None:
        """Every live content is in a file on a side; the trash does not count: the engine
        trashes only what the other side's user deleted, which is no longer live. (The
        issue's weaker form counts the trash too.)"""
        kept = {data for side in self.sides.values() for data in side.files().values()}
        lost = self.live - kept
        trashed = {data for side in self.sides.values() for data in side.kept()} & lost
        assert not lost, f"user content lost: {sorted(lost)}, of which in the trash: {trashed}"

    def both_sides_agree(self) -> None:
        a, b = self.sides["a"], self.sides["b"]
        assert a.files() == b.files()
        assert a.folders() == b.folders()


async def _nothing(*args: object, **kwargs: object) -> None:
    return None


def run_machine(machine: type[RuleBasedStateMachine], examples: int, steps: int) -> None:
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, derandomize=True,
        database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


def test_sync_keeps_every_edit_and_converges() -> None:
    """About 200 completed runs and 170 killed or stopped ones, in about 10 s."""
    run_machine(SyncMachine, examples=50, steps=12)
