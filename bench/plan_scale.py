"""Peak memory and time of planning a copy of a synthetic tree of N items, for several N.

The source is a generated connector (no disk): folders of --files-per-folder files under a
tree of folders with --fanout subfolders each, built so that files + folders = N exactly. The
destination is an empty local folder. The job runs with `simulation_mode: true` through the
real engine (`core.engine.runner.run_job`) against a real state file, so the march, the
planner and the item records in SQLite cover every item, and nothing is written anywhere but
the state file.

Each size runs in its own child process (this script re-invoked with `--child N`); the parent
reads the child's peak RSS (ru_maxrss) from os.wait4. The target: peak(1,000,000) is at most
1.2 x peak(100,000), i.e. memory follows the largest folder, not the size of the tree.

    python bench/plan_scale.py [--sizes 100000,1000000] [--files-per-folder 1000] [--fanout 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from machine import describe_checkout, load_average  # bench/machine.py

from core.connectors.base import (
    Connector,
    ConnectorError,
    Entry,
    Features,
    InvalidPath,
    NotFound,
)

PLATFORM = "bench-synthetic"  # a platform name only this benchmark uses
BASE_MTIME = 1_790_000_000.0


class SyntheticTree:
    """The shape of a tree of exactly `items` files and folders (the root not counted).

    Leaf folders (level 0, named folder-NNNNNN) hold the files, at most `files_per_folder`
    each, spread evenly. Above them, group folders (level k >= 1, named gK-NNNNNN) hold up to
    `fanout` folders of level k - 1; the root holds the top level. A folder's children follow
    from its name alone, so nothing is stored.
    """

    def __init__(self, items: int, files_per_folder: int = 1000, fanout: int = 10) -> None:
        if items < 1 or files_per_folder < 1 or fanout < 2:
            raise ValueError("items >= 1, files_per_folder >= 1 and fanout >= 2")
        self.items, self.files_per_folder, self.fanout = items, files_per_folder, fanout
        leaves = max(1, math.ceil(items / (files_per_folder + 1)))
        while leaves > 1 and self._capacity(leaves - 1) >= items:
            leaves -= 1
        while self._capacity(leaves) < items:
            leaves += 1
        self.levels = self._levels(leaves)  # folders per level, leaves first
        self.folders = sum(self.levels)
        self.files = items - self.folders
        if self.files < 0:
            raise ValueError(f"{items} items are too few for this shape")
        self._base, self._extra = divmod(self.files, leaves)

    def _levels(self, leaves: int) -> list[int]:
        levels = [leaves]
        while levels[-1] > self.fanout:
            levels.append(math.ceil(levels[-1] / self.fanout))
        return levels

    def _capacity(self, leaves: int) -> int:
        return leaves * self.files_per_folder + sum(self._levels(leaves))

    def files_in(self, leaf: int) -> int:
        return self._base + (leaf < self._extra)

    @staticmethod
    def folder_name(level: int, index: int) -> str:
        return f"folder-{index:06d}" if level == 0 else f"g{level}-{index:06d}"

    @staticmethod
    def _parse_folder(name: str) -> tuple[int, int] | None:
        kind, _, number = name.partition("-")
        if not number.isdigit():
            return None
        if kind == "folder":
            return 0, int(number)
        if kind[:1] == "g" and kind[1:].isdigit():
            return int(kind[1:]), int(number)
        return None

    def children_range(self, level: int, index: int) -> range:
        """Indexes of the level `level - 1` folders inside folder (level, index)."""
        return range(index * self.fanout, min((index + 1) * self.fanout, self.levels[level - 1]))

    def locate(self, path: str) -> tuple[int, int] | None:
        """(level, index) of the folder at `path`, None for the root; NotFound if none."""
        level, index = len(self.levels), 0  # the root, one level above the top
        for segment in filter(None, path.split("/")):
            parsed = self._parse_folder(segment)
            inside = (range(self.levels[-1]) if level == len(self.levels)
                      else self.children_range(level, index) if level > 0 else range(0))
            if parsed is None or parsed[0] != level - 1 or parsed[1] not in inside:
                raise NotFound(f"not found: {path!r}")
            level, index = parsed
        return None if level == len(self.levels) else (level, index)


class SyntheticConnector:
    """A read-only Connector over a SyntheticTree: listings and stat, nothing to read."""

    def __init__(self, tree: SyntheticTree) -> None:
        self.tree = tree
        self.features = Features(mtime_precision=1.0, can_set_mtime=False)

    def _folder(self, level: int, index: int) -> Entry:
        return Entry(self.tree.folder_name(level, index), True, mtime=BASE_MTIME,
                     native_id=f"d{level}-{index}")

    def _file(self, leaf: int, number: int) -> Entry:
        serial = leaf * self.tree.files_per_folder + number
        return Entry(f"file-{number:04d}.dat", False, size=1024 + serial * 7919 % 100_000,
                     mtime=BASE_MTIME + serial % 86_400, native_id=f"f{serial}")

    async def list_dir(self, path: str) -> list[Entry]:
        where = self.tree.locate(path)
        if where is None:
            top = len(self.tree.levels) - 1
            return [self._folder(top, i) for i in range(self.tree.levels[top])]
        level, index = where
        if level == 0:
            return [self._file(index, n) for n in range(self.tree.files_in(index))]
        return [self._folder(level - 1, i) for i in self.tree.children_range(level, index)]

    async def stat(self, path: str) -> Entry:
        parent, _, name = path.rpartition("/")
        if not name:
            return Entry("", True, mtime=BASE_MTIME)
        for entry in await self.list_dir(parent):
            if entry.name == name:
                return entry
        raise NotFound(f"not found: {path!r}")

    async def read(self, path: str, entry: Entry) -> AsyncIterator[bytes]:
        raise ConnectorError("the synthetic connector has no content: plan only")
        yield b""  # pragma: no cover -- makes this an async generator

    async def write(self, path: str, chunks: AsyncIterable[bytes], *, size: int,
                    mtime: float | None, replacing: Entry | None = None) -> Entry:
        raise InvalidPath("the synthetic connector is read-only")

    async def mkdir(self, path: str) -> Entry:
        raise InvalidPath("the synthetic connector is read-only")

    async def remove(self, path: str, entry: Entry) -> None:
        raise InvalidPath("the synthetic connector is read-only")

    async def rmdir(self, path: str, entry: Entry) -> None:
        raise InvalidPath("the synthetic connector is read-only")

    async def set_mtime(self, path: str, mtime: float) -> None:
        raise InvalidPath("the synthetic connector is read-only")

    async def close(self) -> None:
        pass


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def plan_once(args: argparse.Namespace) -> dict[str, object]:
    """In the child: plan a simulated copy of a synthetic tree of `args.child` items."""
    from core.connections import add_local
    from core.engine import runner
    from core.home import Home
    from core.job_store import create_job
    from core.state import State

    tree = SyntheticTree(args.child, args.files_per_folder, args.fanout)
    work = Path(args.dir)
    home = Home(work / "home")
    home.ensure()
    (work / "destination").mkdir()
    state = await State.open(home.state_path)
    try:
        await state.add_connection("synthetic-source", PLATFORM, {"items": args.child})
        await add_local(state, "empty-destination", str(work / "destination"))
        job = {
            "name": "plan-scale", "kind": "transfer",
            "transfer": {
                "transfer_type": "copy",
                "source": {"connection": {"id": "synthetic-source"}, "target": {"path": "/"}},
                "destination": {"connection": {"id": "empty-destination"},
                                "target": {"path": "/"}},
                "simulation_mode": True,
                "performance": {"parallel_writes": {"requested": args.parallel}},
            },
            "schedule": {"mode": "manual"},
        }
        record, _ = await create_job(state, json.dumps(job))

        # Benchmark-only shortcut: the registry (core.connectors.open_connector) knows no
        # synthetic platform, so this process swaps the name the runner imported for one that
        # opens the synthetic connector for PLATFORM and defers to the real one otherwise.
        real_open = runner.open_connector

        def open_connector(connection: Any, secrets: dict[str, Any],
                           opening: Any = None) -> Connector:
            if getattr(connection, "platform", None) == PLATFORM:
                return SyntheticConnector(tree)
            return real_open(connection, secrets, opening)

        runner.open_connector = open_connector

        rss_ready = _max_rss_mib()
        start = time.perf_counter()
        result = await runner.run_job(state, home, record)
        elapsed = time.perf_counter() - start
        rows, folder_rows = await (await state.db.execute(
            "SELECT count(*), coalesce(sum(is_dir), 0) FROM items WHERE job_id = ?",
            (record.id,))).fetchone()
    finally:
        await state.close()
    db_bytes = sum(p.stat().st_size for p in home.root.glob("state.db*"))
    return {
        "items": args.child, "files": tree.files, "folders": tree.folders,
        "status": result.status, "error": result.error,
        "seen_files": result.stats.files, "seen_folders": result.stats.folders,
        "planned_files": result.stats.planned_files, "rows": rows, "folder_rows": folder_rows,
        "plan_seconds": elapsed, "rss_ready_mib": rss_ready, "rss_peak_self_mib": _max_rss_mib(),
        "db_mib": db_bytes / 2**20,
    }


def run_child(size: int, args: argparse.Namespace, work: Path) -> dict[str, object]:
    """Plan `size` items in a fresh process; adds its wall time and peak RSS from wait4."""
    folder = work / f"n{size}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    command = [sys.executable, os.path.abspath(__file__), "--child", str(size),
               "--dir", str(folder), "--files-per-folder", str(args.files_per_folder),
               "--fanout", str(args.fanout), "--parallel", str(args.parallel)]
    out_path = folder / "child.out"
    with open(out_path, "wb") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, not by Popen
    output = out_path.read_text(errors="replace")
    if child.returncode != 0:
        sys.exit(f"the child for {size:,} items failed (exit {child.returncode}):\n{output}")
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    if not args.keep:
        shutil.rmtree(folder)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated item counts (default: 100000,1000000)")
    parser.add_argument("--files-per-folder", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=10, help="subfolders per group folder")
    parser.add_argument("--parallel", type=int, default=4, help="the job's parallel_writes")
    parser.add_argument("--dir", help="work folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the state files")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asyncio.run(plan_once(args))))
        return 0

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    work = Path(args.dir).absolute() if args.dir else Path(tempfile.mkdtemp(prefix="plan-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    checkout = describe_checkout()
    print(f"dryviq-tui {checkout}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
          f"load average {load_average()}; work folder {work}")
    results = []
    try:
        for size in sizes:
            tree = SyntheticTree(size, args.files_per_folder, args.fanout)
            print(f"planning {size:,} items ({tree.files:,} files in {tree.levels[0]:,} folders "
                  f"of up to {args.files_per_folder:,}, {tree.folders:,} folders in all, "
                  f"{len(tree.levels)} levels) ...", flush=True)
            results.append(run_child(size, args, work))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'items':>10} {'wall s':>7} {'plan s':>7} {'items/s':>8} {'peak RSS MiB':>13} "
          f"{'RSS ready MiB':>14} {'rows':>10} {'state MiB':>10}  check")
    for r in results:
        complete = (r["rows"] == r["items"] and r["seen_files"] == r["files"]
                    and r["seen_folders"] == r["folders"] and r["status"] == "completed")
        print(f"{r['items']:>10,} {r['wall_seconds']:>7.1f} {r['plan_seconds']:>7.1f} "
              f"{r['items'] / r['plan_seconds']:>8,.0f} {r['peak_rss_mib']:>13.1f} "
              f"{r['rss_ready_mib']:>14.1f} {r['rows']:>10,} {r['db_mib']:>10.1f}  "
              + ("every item planned and recorded" if complete else
                 f"INCOMPLETE: status {r['status']}, {r['seen_files']:,} files and "
                 f"{r['seen_folders']:,} folders seen, {r['rows']:,} rows, error {r['error']}"))
    first = results[0]
    for r in results[1:]:
        ratio = r["peak_rss_mib"] / first["peak_rss_mib"]
        print(f"\npeak({r['items']:,}) / peak({first['items']:,}) = {ratio:.2f}   target <= 1.2")
    print("\n'RSS ready' is the child's peak before run_job (interpreter, imports, state open);"
          "\n'peak RSS' is ru_maxrss of the whole child process from wait4.")
    print(f"load average at the end {load_average()}")
    if describe_checkout() != checkout:
        print(f"WARNING: the code changed during the run: started on {checkout}, ended on "
              f"{describe_checkout()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
