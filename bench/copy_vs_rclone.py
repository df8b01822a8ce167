"""Copy a tree local -> local with `dryviq-tui jobs run` and with `rclone copy`, in one run.

The tree is --small files of 4 KiB spread over --folders folders plus --large files of
--large-mib MiB. Each tool copies it into its own empty destination (the copy), then runs again
over the finished destination (the no-change rerun). Every run is a child process measured
from spawn to exit: wall time, and peak RSS and CPU time from os.wait4 on its pid. Setup
(`connections add local`, `jobs create`) is not timed.

dryviq-tui is measured as configured by default (`dryviq`: each file flushed to disk before it
is published) and, where `connections add local --no-fsync` exists, without the fsync
(`dryviq-nofsync`), which is what rclone does: rclone never fsyncs. The `flush s` column is
the `sync` run right after each copy (untimed in `wall s`): the writeback a tool left behind.

The page cache cannot be dropped without root, so the source stays warm for every tool; the
order of the tools rotates between repeats, and `sync` runs before every measured run, so no
tool pays for another's delayed writeback. Nothing is deleted until the end (deleting tens of
thousands of files slows the file creation that follows on some file systems), so the work
folder needs about 0.75 GB per repeat beside the 0.25 GB source.

On ext4, a copy runs slower right after another tool's copy into a sibling folder (here,
right after rclone: 0.9 s became 1.6 s, for rclone itself too; dropping the kernel's caches
did not help, so it is the layout on disk). For numbers that do not depend on the order,
--fresh-fs DEVICE (root) gives every tool's copy a file system of its own, made just before
it, with the source just written there.

    python bench/copy_vs_rclone.py [--repeat 3] [--small 10000] [--large 10] [--dir DIR]
    python bench/copy_vs_rclone.py --repeat 9 --dir /mnt/bench --fresh-fs /dev/loop0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from machine import describe_checkout, load_average  # bench/machine.py

SMALL_SIZE = 4 * 1024
MIB = 1024 * 1024
PHASES = ("copy", "no-change rerun")
RCLONE = "rclone"
SETTLE = 35  # seconds to wait after deleting earlier runs before measuring


@dataclass
class Measured:
    tool: str
    phase: str
    wall: float  # seconds, spawn to exit
    rss_mib: float  # peak resident set of the child (ru_maxrss)
    user: float  # CPU seconds of the child in user mode
    sys: float  # CPU seconds of the child in the kernel
    flush: float  # seconds of the `sync` right after the child exited
    returncode: int
    tail: str  # last line the child printed


def dryviq_command() -> list[str]:
    """The real console script (not a pyenv shim, whose bash start-up would be timed too)."""
    beside = Path(sys.executable).with_name("dryviq-tui")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("dryviq-tui")
    if found is None:
        sys.exit("dryviq-tui is not installed (pip install -e .)")
    return [found]


def measure(tool: str, phase: str, command: list[str], *, env: dict[str, str] | None,
            log: Path) -> Measured:
    """Run `command` to completion, its output going to `log`."""
    os.sync()  # untimed: flush earlier runs' dirty pages before this one starts
    with open(log, "wb") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, not by Popen
    start = time.perf_counter()
    os.sync()
    flush = time.perf_counter() - start
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return Measured(tool, phase, wall, usage.ru_maxrss / 1024, usage.ru_utime, usage.ru_stime,
                    flush, child.returncode, lines[-1] if lines else "")


def generate(src: Path, small: int, folders: int, large: int, large_mib: int,
             quiet: bool = False) -> None:
    """Write the source tree (random content, so nothing compresses or deduplicates)."""
    marker = src.with_name("source.json")
    wanted = {"small": small, "folders": folders, "large": large, "large_mib": large_mib}
    if src.is_dir() and marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"reusing the source tree in {src}")
        return
    marker.unlink(missing_ok=True)
    if src.exists():
        shutil.rmtree(src)
    if not quiet:
        print(f"generating {small:,} files of 4 KiB in {folders} folders and {large} files "
              f"of {large_mib} MiB in {src} ...", flush=True)
    start = time.perf_counter()
    src.mkdir(parents=True)
    for i in range(small):
        folder = src / f"folder-{i % folders:03d}"
        if i < folders:
            folder.mkdir()
        (folder / f"file-{i:05d}.bin").write_bytes(os.urandom(SMALL_SIZE))
    if large:
        (src / "large").mkdir()
    for i in range(large):
        with open(src / "large" / f"large-{i:02d}.bin", "wb") as out:
            for _ in range(large_mib):
                out.write(os.urandom(MIB))
    os.sync()
    marker.write_text(json.dumps(wanted))
    if not quiet:
        print(f"generated in {time.perf_counter() - start:.1f} s")


def manifest(root: Path) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """{relative path: (size, mtime ns)} of the regular files under `root`, and the names of
    any temporary files (dryviq-tui's .dryviq-*.part, rclone's *.partial) left behind."""
    files: dict[str, tuple[int, int]] = {}
    leftovers: list[str] = []
    for folder, _, names in os.walk(root):
        for name in names:
            full = os.path.join(folder, name)
            relative = os.path.relpath(full, root)
            if name.startswith(".dryviq-") or name.endswith(".partial"):
                leftovers.append(relative)
                continue
            info = os.stat(full)
            files[relative] = (info.st_size, info.st_mtime_ns)
    return files, leftovers


def verify(tool: str, source: dict[str, tuple[int, int]], destination: Path) -> bool:
    """Count files and bytes at `destination` and compare them with the source, path by path."""
    found, leftovers = manifest(destination)
    both = source.keys() & found.keys()
    missing = len(source.keys() - found.keys())
    extra = len(found.keys() - source.keys())
    wrong_size = sum(source[p][0] != found[p][0] for p in both)
    # kept to the microsecond: dryviq-tui's local precision (rclone keeps nanoseconds)
    wrong_mtime = sum(abs(source[p][1] - found[p][1]) > 1000 for p in both)
    ok = not (missing or extra or wrong_size or leftovers)
    print(f"    verify {tool:<15} {len(found):>7,} files {sum(s for s, _ in found.values()):>13,} "
          f"bytes; missing {missing}, extra {extra}, wrong size {wrong_size}, mtime differs "
          f"{wrong_mtime}, temporary files {len(leftovers)} -> "
          f"{'complete' if ok else 'INCOMPLETE'}")
    return ok


def copy_job(parallel: int) -> dict[str, object]:
    """The job both benchmarks run: a plain copy from bench-source to bench-destination."""
    return {
        "name": "bench-copy",
        "kind": "transfer",
        "transfer": {
            "transfer_type": "copy",
            "source": {"connection": {"id": "bench-source"}, "target": {"path": "/"}},
            "destination": {"connection": {"id": "bench-destination"}, "target": {"path": "/"}},
            "simulation_mode": False,
            "performance": {"parallel_writes": {"requested": parallel}},
        },
        "schedule": {"mode": "manual"},
        "category": {"name": "Benchmark"},
    }


def setup_dryviq(dryviq: list[str], home: Path, src: Path, dst: Path, parallel: int,
                 fsync: bool) -> None:
    """A fresh home with two local connections and the copy job (untimed)."""
    def cli(*args: str, stdin: str | None = None) -> None:
        subprocess.run([*dryviq, "--home", str(home), *args], input=stdin, text=True,
                       check=True, stdout=subprocess.DEVNULL)

    cli("connections", "add", "local", "bench-source", "--path", str(src))
    cli("connections", "add", "local", "bench-destination", "--path", str(dst),
        *(() if fsync else ("--no-fsync",)))
    cli("jobs", "create", "--file", "-", stdin=json.dumps(copy_job(parallel)))


def fresh_file_system(device: str, mountpoint: Path) -> None:
    """Make a new ext4 on `device` and mount it at `mountpoint` (root only). Every inode
    table and the journal are written now, not by a kernel thread during the runs."""
    subprocess.run(["umount", str(mountpoint)], stderr=subprocess.DEVNULL, check=False)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E",
                    "lazy_itable_init=0,lazy_journal_init=0,nodiscard", device], check=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", device, str(mountpoint)], check=True)


def run_repeat(number: int, tools: list[str], args: argparse.Namespace, work: Path, src: Path,
               source: dict[str, tuple[int, int]], dryviq: list[str]) -> list[Measured]:
    """One measurement of every tool and phase, each tool into its own empty destination.
    With --fresh-fs, each tool's copy runs on a file system made for it, the source just
    written there: no tool works in the layout another tool's tree left."""
    run = work / f"run-{number + 1}"
    shift = number % len(tools)
    results = []
    for tool in tools[shift:] + tools[:shift]:
        if args.fresh_fs:
            fresh_file_system(args.fresh_fs, work)
            generate(src, args.small, args.folders, args.large, args.large_mib, quiet=True)
            source, _ = manifest(src)
        destination = run / tool / "destination"
        destination.mkdir(parents=True)
        if tool == RCLONE:
            env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
            command = [args.rclone, "copy", str(src), str(destination),
                       "--transfers", str(args.parallel), "--config", os.devnull]
        else:
            home = run / tool / "home"
            setup_dryviq(dryviq, home, src, destination, args.parallel, fsync=tool == "dryviq")
            command = [*dryviq, "--home", str(home), "jobs", "run", "bench-copy"]
            env = bytecode_env()
        for phase in PHASES:
            result = measure(tool, phase, command, env=env,
                             log=run / tool / f"{phase.split()[-1]}.log")
            results.append(result)
            status = "" if result.returncode == 0 else f"  EXIT CODE {result.returncode}"
            print(f"  repeat {number + 1}: {tool:<15} {phase:<16} {result.wall:7.2f} s "
                  f"{result.rss_mib:7.1f} MiB  {result.tail[:60]}{status}", flush=True)
            if phase == "copy":
                verify(tool, source, destination)
    return results


def report(results: list[Measured], tools: list[str], repeats: int) -> None:
    def values(tool: str, phase: str, value: str) -> list[float]:
        return [getattr(r, value) for r in results if (r.tool, r.phase) == (tool, phase)]

    def median(tool: str, phase: str, value: str) -> float:
        return statistics.median(values(tool, phase, value))

    print(f"\nMedian of {repeats} run(s) each; min and max of the wall time beside it:\n")
    print(f"{'tool':<15} {'phase':<16} {'wall s':>7} {'min':>6} {'max':>6} {'peak RSS MiB':>13} "
          f"{'user s':>7} {'sys s':>6} {'flush s':>8}")
    for phase in PHASES:
        for tool in tools:
            walls = values(tool, phase, "wall")
            print(f"{tool:<15} {phase:<16} {statistics.median(walls):>7.2f} {min(walls):>6.2f} "
                  f"{max(walls):>6.2f} {median(tool, phase, 'rss_mib'):>13.1f} "
                  f"{median(tool, phase, 'user'):>7.2f} {median(tool, phase, 'sys'):>6.2f} "
                  f"{median(tool, phase, 'flush'):>8.2f}")
    targets = {"copy": "time <= 1.0, memory < 1.0",
               "no-change rerun": "time <= 2.0, memory < 1.0"}
    print(f"\n{'ratio to rclone (medians)':<37} {'time':>6} {'memory':>7} {'best time':>10}   "
          "targets")
    for tool in tools:
        if tool == RCLONE:
            continue
        for phase in PHASES:
            time_ratio = median(tool, phase, "wall") / median(RCLONE, phase, "wall")
            rss_ratio = median(tool, phase, "rss_mib") / median(RCLONE, phase, "rss_mib")
            best = min(values(tool, phase, "wall")) / min(values(RCLONE, phase, "wall"))
            print(f"{tool + '/rclone':<21} {phase:<15} {time_ratio:>6.2f} {rss_ratio:>7.2f} "
                  f"{best:>10.2f}   {targets[phase]}")
    print("('best time' divides the fastest run of each: the one least disturbed by the machine)")
    if "dryviq" in tools and RCLONE in tools:
        # the durable default against rclone plus the `sync` that makes its copy durable
        durable = [r.wall + r.flush for r in results if (r.tool, r.phase) == (RCLONE, "copy")]
        print(f"{'dryviq/(rclone+sync)':<21} {'copy':<15} "
              f"{median('dryviq', 'copy', 'wall') / statistics.median(durable):>6.2f}"
              "   (both durable when done)")
    failed = [r for r in results if r.returncode != 0]
    if failed:
        print(f"\nWARNING: {len(failed)} run(s) exited non-zero: "
              + ", ".join(f"{r.tool} {r.phase} ({r.returncode})" for r in failed))


def bytecode_env() -> dict[str, str]:
    """An installed dryviq-tui runs from cached bytecode (pip compiles it). Where the
    environment sets PYTHONDONTWRITEBYTECODE, as this sandbox does, every run would recompile
    each module first and be timed doing it; main() compiles core/ once instead."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000, help="files of 4 KiB")
    parser.add_argument("--folders", type=int, default=100, help="folders the small files fill")
    parser.add_argument("--large", type=int, default=10, help="large files")
    parser.add_argument("--large-mib", type=int, default=20, help="size of each large file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each tool and phase N times and report the median")
    parser.add_argument("--parallel", type=int, default=4,
                        help="dryviq parallel_writes and rclone --transfers")
    parser.add_argument("--fsync", choices=("on", "off", "both"), default="both",
                        help="dryviq variants: fsync each file (the default of a local "
                             "connection), --no-fsync (as rclone), or both")
    parser.add_argument("--dir", type=Path, help="work folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (source, destinations, logs, dryviq homes)")
    parser.add_argument("--rclone", default="rclone", help="the rclone binary")
    parser.add_argument("--fresh-fs", metavar="DEVICE",
                        help="root only: before each tool's copy, make a new ext4 on DEVICE "
                             "(ERASED; a loop device, say) and mount it at --dir")
    args = parser.parse_args()
    if args.fresh_fs and not args.dir:
        sys.exit("--fresh-fs needs --dir, the folder to mount it on")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve()
                    .parent.parent / "core")], env=bytecode_env(), check=True)
    if shutil.which(args.rclone) is None:
        sys.exit(f"{args.rclone} not found")
    dryviq = dryviq_command()
    tools = ["dryviq"] if args.fsync in ("on", "both") else []
    if args.fsync in ("off", "both"):
        helped = subprocess.run([*dryviq, "connections", "add", "local", "--help"],
                                capture_output=True, text=True).stdout
        if "--no-fsync" in helped:
            tools.append("dryviq-nofsync")
        else:
            print("note: this dryviq-tui has no `connections add local --no-fsync`; "
                  "measuring the default only")
            tools = ["dryviq"]
    tools.append(RCLONE)
    work = args.dir.absolute() if args.dir else Path(tempfile.mkdtemp(prefix="dryviq-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([args.rclone, "version"], capture_output=True, text=True)
    checkout = describe_checkout()
    print(f"dryviq-tui {checkout}; {version.stdout.splitlines()[0]}; "
          f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average "
          f"{load_average()}; work folder {work}")
    if args.fresh_fs:
        fresh_file_system(args.fresh_fs, work)
    try:
        old_runs = sorted(work.glob("run-*"))
        for old in old_runs:
            shutil.rmtree(old)
        src = work / "source"
        generate(src, args.small, args.folders, args.large, args.large_mib)
        if old_runs:
            # ext4 without a journal scans past recently deleted inodes on every create for
            # some 30 s (recently_deleted()): that slowed rclone's copy 5x in tests here
            print(f"removed {len(old_runs)} earlier run(s); waiting {SETTLE} s so the deletions "
                  "do not slow file creation", flush=True)
            time.sleep(SETTLE)
        source, _ = manifest(src)
        print(f"source: {len(source):,} files, {sum(s for s, _ in source.values()):,} bytes; "
              f"parallel {args.parallel}")
        results = []
        for number in range(args.repeat):
            results += run_repeat(number, tools, args, work, src, source, dryviq)
        report(results, tools, args.repeat)
        print(f"\nload average at the end {load_average()} (other work on the machine skews "
              "every number above)")
        if describe_checkout() != checkout:
            print(f"WARNING: the code changed during the run: started on {checkout}, ended on "
                  f"{describe_checkout()}; the runs measured different code")
    finally:
        if args.fresh_fs:
            print(f"\n{args.fresh_fs} stays mounted at {work}")
        elif args.keep:
            print(f"\nkept {work}")
        elif args.dir:
            for run in work.glob("run-*"):
                shutil.rmtree(run, ignore_errors=True)
            shutil.rmtree(work / "source", ignore_errors=True)
            (work / "source.json").unlink(missing_ok=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
