"""API calls and pacing against the embedded Procore sandbox, for issue 3's targets.

1. Copy a local tree of --files files in --folders folders into a Procore project whose spike
   limit is --spike-limit calls per 10 seconds, then run the job again with nothing changed.
   Prints the calls the sandbox counted against the minimum possible for the configured upload
   path, the 429s it sent, and the time taken against the ideal (the minimum calls at the
   spike limit's pace). Budgeted calls: one to list the destination, one per folder created,
   and per file the Uploads API's upload slot plus the create (two), or the create alone
   where --direct-upload-max sends the file with the deprecated file[data]; the POST of the
   bytes to the storage host is not a Procore API call and is shown apart. The rerun makes
   listing calls only.
2. --large-files files of --large-mib MiB each, sent in segments of --segment-size-mib: per
   file the upload slot, its completion and the create (three budgeted calls); the segment
   PUTs go to the storage host and are shown apart.
3. A no-change rerun over a project of --big-items items (Procore -> local, copied once
   first with the limits lifted): the calls it makes.

Everything runs through the real `dryviq-tui` command in child processes, with the sandbox
served over real HTTP from this process. Targets: calls <= 1.05x the minimum, zero 429s (the
same with the sandbox's clock ten minutes ahead or behind ours: --clock-offset), and the big
no-change rerun in at most 10 calls.

    python bench/procore_calls.py [--files 1000] [--folders 50] [--spike-limit 25]
        [--clock-offset 600 --clock-offset -600] [--direct-upload-max BYTES]
        [--large-files 2] [--large-mib 20] [--segment-size-mib 8]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe_checkout, load_average  # bench/machine.py

from core.auth import OOB_REDIRECT
from core.sandbox import (
    DEMO_COMPANY,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SandboxConfig,
    SandboxThread,
    World,
    bulk_project,
    demo_world,
)

SPIKE_WINDOW = 10.0
STORAGE_POST = "POST /uploads/{uuid}"
SEGMENT_PUT = "PUT /uploads/{uuid}/segments/{index}"


class Dryviq:
    """`dryviq-tui --home HOME ...` as a child process."""

    def __init__(self, home: Path, config: str = "") -> None:
        self.home = home
        home.mkdir(parents=True)
        (home / "config.toml").write_text(config)
        (home / "config.toml").chmod(0o600)
        beside = Path(sys.executable).parent / "dryviq-tui"
        self.command = [str(beside) if beside.exists() else "dryviq-tui", "--home", str(home)]
        self.env = {k: v for k, v in os.environ.items() if k != "DRYVIQ_HOME"}
        self.env["SANDBOX_SECRET"] = SANDBOX_CLIENT_SECRET

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run([*self.command, *args], input=stdin, capture_output=True,
                              text=True, env=self.env, check=False)
        if proc.returncode != 0:
            sys.exit(f"dryviq-tui {' '.join(args)} failed ({proc.returncode}):\n"
                     f"{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def connect(self, sandbox: SandboxThread, name: str, project: str) -> None:
        code = sandbox.world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT)
        self("connections", "add", "procore", name, "--domain", sandbox.url, "--client-id",
             SANDBOX_CLIENT_ID, "--client-secret-env", "SANDBOX_SECRET", "--company",
             DEMO_COMPANY, "--project", project, stdin=code + "\n")

    def job(self, name: str, source: tuple[str, str], destination: tuple[str, str]) -> None:
        definition = {"name": name, "kind": "transfer", "transfer": {
            "transfer_type": "copy",
            "source": {"connection": {"id": source[0]}, "target": {"path": source[1]}},
            "destination": {"connection": {"id": destination[0]},
                            "target": {"path": destination[1]}},
            "performance": {"parallel_writes": {"requested": 4}}},
            "schedule": {"mode": "manual"}}
        path = self.home.parent / f"{name}.json"
        path.write_text(json.dumps(definition))
        self("jobs", "create", "--file", str(path))

    def run(self, world: World, name: str) -> tuple[dict, int, int, float]:
        """The run's JSON, the calls and 429s the sandbox counted, and the wall time."""
        calls, limited = world.api_calls, world.rate_limited
        started = time.perf_counter()
        result = json.loads(self("jobs", "run", name, "--json"))
        return (result, world.api_calls - calls, world.rate_limited - limited,
                time.perf_counter() - started)


FILE_BYTES = 1024


def make_tree(root: Path, files: int, folders: int) -> None:
    for index in range(folders):
        (root / f"Folder {index:03d}").mkdir(parents=True)
    for index in range(files):
        path = root / f"Folder {index % folders:03d}" / f"Sheet {index:05d}.pdf"
        path.write_bytes(index.to_bytes(4, "big") * (FILE_BYTES // 4))


def upload_config(args: argparse.Namespace) -> str:
    return (f"[procore]\ndirect_upload_max = {args.direct_upload_max}\n"
            f"segment_size_mib = {args.segment_size_mib}\n")


def paced_copy(args: argparse.Namespace, work: Path, offset: float) -> None:
    """The paced copy against a sandbox whose clock is `offset` seconds off this machine's."""
    config = SandboxConfig(spike_limit=args.spike_limit, clock_offset=offset)
    with SandboxThread(demo_world(config)) as sandbox:
        world = sandbox.world
        dryviq = Dryviq(work / f"home-paced{offset:+g}", upload_config(args))
        source = work / "tree"
        if not source.exists():
            make_tree(source, args.files, args.folders)
        dryviq("connections", "add", "local", "tree", "--path", str(source))
        dryviq.connect(sandbox, "procore", "Riverside Medical Center")
        dryviq.job("paced", ("tree", "/"), ("procore", "/Bench"))
        posts = world.requests[STORAGE_POST]
        result, calls, limited, wall = dryviq.run(world, "paced")
        direct = args.direct_upload_max >= FILE_BYTES
        per_file = 1 if direct else 2
        # one look at the destination (the documents index), /Bench, its folders, the files
        minimum = 1 + args.folders + 1 + per_file * args.files
        ideal = minimum * SPIKE_WINDOW / args.spike_limit
        path = ("the deprecated file[data] path (direct_upload_max): the create" if direct
                else "the Uploads API: the upload slot and the create")
        print(f"copy of {args.files} files of {FILE_BYTES} bytes in {args.folders} folders, "
              f"spike limit {args.spike_limit}/10 s, the sandbox's clock {offset:+g} s off "
              f"ours: {result['status']}")
        print(f"  budgeted calls per new file: {per_file}, by {path}; one per folder created, "
              "one to list the destination")
        print(f"  API calls {calls} (minimum {minimum}): {calls / minimum:.3f}x   "
              f"429s received {limited}   client counted {result['stats']['api_calls']}")
        print(f"  storage host POSTs (not API calls): {world.requests[STORAGE_POST] - posts}")
        print(f"  time {wall:.1f} s (ideal {ideal:.1f} s at the spike pace): "
              f"{wall / ideal:.2f}x")
        result, calls, limited, wall = dryviq.run(world, "paced")
        print(f"no-change rerun: {result['status']}, API calls {calls} (listing only), "
              f"429s {limited}, time {wall:.1f} s")


def segmented_copy(args: argparse.Namespace, work: Path) -> None:
    with SandboxThread(demo_world()) as sandbox:
        world = sandbox.world
        dryviq = Dryviq(work / "home-segmented", upload_config(args))
        source = work / "large"
        source.mkdir()
        for index in range(args.large_files):
            (source / f"Model {index}.rvt").write_bytes(os.urandom(args.large_mib << 20))
        dryviq("connections", "add", "local", "large", "--path", str(source))
        dryviq.connect(sandbox, "procore", "Riverside Medical Center")
        dryviq.job("segmented", ("large", "/"), ("procore", "/Large"))
        result, calls, limited, wall = dryviq.run(world, "segmented")
        segments = math.ceil(args.large_mib / args.segment_size_mib)
        # the destination listed, /Large, and per file: the slot, its completion, the create
        minimum = 2 + 3 * args.large_files
        print(f"copy of {args.large_files} files of {args.large_mib} MiB in segments of "
              f"{args.segment_size_mib} MiB: {result['status']}")
        print("  budgeted calls per new file: 3 (the upload slot, its completion, the create)")
        print(f"  API calls {calls} (minimum {minimum}): {calls / minimum:.3f}x   "
              f"429s received {limited}")
        print(f"  segment PUTs to the storage host (not API calls): "
              f"{world.requests[SEGMENT_PUT]} ({segments} per file)   time {wall:.1f} s")


def big_rerun(args: argparse.Namespace, work: Path) -> None:
    config = SandboxConfig(spike_limit=10**9, hourly_limit=10**9)
    world = demo_world(config)
    company = next(c.id for c in world.companies.values() if c.name == DEMO_COMPANY)
    folders = max(1, args.big_items // 100)
    bulk_project(world, company, "Bulk Project", args.big_items - folders, folders, size=64)
    with SandboxThread(world) as sandbox:
        dryviq = Dryviq(work / "home-big")
        copy = work / "big-copy"
        copy.mkdir()
        dryviq("connections", "add", "local", "copy", "--path", str(copy))
        dryviq.connect(sandbox, "bulk", "Bulk Project")
        dryviq.job("bulk", ("bulk", "/"), ("copy", "/"))
        result, calls, _, wall = dryviq.run(world, "bulk")
        print(f"copy of a {args.big_items}-item project to a local folder: "
              f"{result['status']}, {calls} API calls, {wall:.1f} s")
        result, calls, _, wall = dryviq.run(world, "bulk")
        pages = math.ceil(args.big_items / 2000)
        print(f"no-change rerun over {args.big_items} items: {result['status']}, "
              f"{calls} API calls (index pages at 2,000 per page: {pages}), {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--folders", type=int, default=50)
    parser.add_argument("--spike-limit", type=int, default=25)
    parser.add_argument("--big-items", type=int, default=10_000)
    parser.add_argument("--skip-paced", action="store_true")
    parser.add_argument("--direct-upload-max", type=int, default=0, metavar="BYTES",
                        help="config.toml's [procore] direct_upload_max for the paced copy "
                             f"(its files are {FILE_BYTES} bytes; default 0: the Uploads API)")
    parser.add_argument("--clock-offset", type=float, action="append", metavar="SECONDS",
                        help="run the paced copy against a sandbox whose clock is this far "
                             "ahead (negative: behind); repeatable (default: 0)")
    parser.add_argument("--large-files", type=int, default=2)
    parser.add_argument("--large-mib", type=int, default=20)
    parser.add_argument("--segment-size-mib", type=int, default=8)
    args = parser.parse_args()
    print(f"{describe_checkout()}; load average {load_average()}")
    with tempfile.TemporaryDirectory(prefix="dryviq-bench-") as work:
        if not args.skip_paced:
            for offset in args.clock_offset or [0.0]:
                paced_copy(args, Path(work), offset)
        if args.large_files:
            segmented_copy(args, Path(work))
        big_rerun(args, Path(work))


if __name__ == "__main__":
    main()
