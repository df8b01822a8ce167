"""Copy 200 MB local -> SMB share and local -> S3 with `dryviq-tui jobs run`, against the tools
made for each: `smbclient`'s mput and `rclone copy` to rclone's own SMB backend for the share,
`rclone copy` for S3.

The source is a construction project's folder: --files documents (drawings, specifications,
submittals, RFIs, site photos, minutes; sizes drawn per kind, scaled so they total --small-mib
MiB) in a dozen folders, plus --large models of --large-mib MiB each (by default 1,000 files
plus two of 50 MiB: 200 MiB). The content is random, so nothing compresses.

Both servers are the test suite's (tests/samba.py, tests/s3.py): a real smbd on a loopback port
and moto's S3 server, in this process, behind an rclone config. Every tool copies into a
destination of its own, empty before it starts: a new folder on the share, a new versioned
bucket. Each run is a child process timed from spawn to exit (CPU time from os.wait4 on its
pid, its own children included: rclone rcd for dryviq); setup (`connections add`, `jobs
create`, the rclone config) is not timed. No memory is shown: a child's ru_maxrss includes its
parent's resident set at the spawn (the kernel counts the old address space at exec), and this
process holds moto's objects. After each run its destination is listed through a client other
than dryviq-tui (smbclient for the share, rclone for S3) and compared with the source path by
path (count, bytes, sizes, leftover temporary files), so a broken run is not read as a fast
one.

    python bench/share_cloud_copy.py [--repeat 3] [--skip-smb] [--skip-s3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from copy_vs_rclone import Measured, bytecode_env, copy_job, dryviq_command, measure  # noqa: E402
from machine import describe_checkout, load_average  # noqa: E402

from tests.s3 import S3_REMOTE, S3Server, rclone_env, running_s3  # noqa: E402
from tests.samba import SambaServer, running_samba  # noqa: E402

MIB = 1024 * 1024
SEED = 13
SMB_REMOTE = "benchsmb"
PASSWORD_VARIABLE = "DRYVIQ_BENCH_SMB_PASSWORD"
Manifest = dict[str, int]  # relative path ("a/b.pdf") -> size in bytes
SMB_TOOLS = ["dryviq", "smbclient", "rclone"]  # dryviq first: the others are its references
S3_TOOLS = ["dryviq", "rclone"]
RUN_FOLDERS = ("samba", "s3", "smb-runs", "s3-runs")  # what a run leaves in the work folder

# (folder, name pattern, weight among the documents, median size in KiB): what a project's
# document control holds; each file's size is drawn around its kind's median
KINDS = (
    ("01 Drawings/Architectural", "A-{n:03d} Floor Plan Rev {r}.pdf", 14, 420),
    ("01 Drawings/Structural", "S-{n:03d} Framing Plan Rev {r}.pdf", 10, 380),
    ("01 Drawings/MEP", "M-{n:03d} Mechanical Layout Rev {r}.pdf", 10, 350),
    ("02 Specifications", "Section {n:02d} {r}0 00 Specification.pdf", 8, 160),
    ("03 Submittals", "Submittal {n:04d}-{r} Product Data.pdf", 14, 300),
    ("04 RFIs", "RFI-{n:04d} Response {r}.pdf", 12, 60),
    ("05 Photos/2026-03", "IMG_{n:04d}{r}.jpg", 10, 180),
    ("05 Photos/2026-04", "IMG_{n:04d}{r}.jpg", 10, 180),
    ("06 Meeting Minutes", "OAC Meeting {n:03d} Minutes v{r}.docx", 6, 35),
    ("07 Change Orders", "CO-{n:03d} Pricing v{r}.xlsx", 6, 45),
)
LARGE_FOLDER = "08 Models"
LARGE_NAMES = ("Federated Model {n}.rvt", "Site Survey {n}.e57")


def document_sizes(files: int, total: int, rng: random.Random) -> list[tuple[str, int]]:
    """`files` (relative path, size) pairs: kinds by weight, sizes log-normal around each
    kind's median, then all scaled so they sum to exactly `total` bytes."""
    weights = [kind[2] for kind in KINDS]
    drawn: list[tuple[str, float]] = []
    for n, (folder, pattern, _, median_kib) in enumerate(
            rng.choices(KINDS, weights=weights, k=files)):
        size = median_kib * 1024 * math.exp(rng.gauss(0, 0.8))
        drawn.append((f"{folder}/{pattern.format(n=n, r=rng.randrange(1, 5))}", size))
    scale = total / sum(size for _, size in drawn)
    sizes = [(path, max(1, int(size * scale))) for path, size in drawn]
    path, last = sizes[-1]
    sizes[-1] = (path, last + total - sum(size for _, size in sizes))
    return sizes


def generate(src: Path, files: int, small_mib: int, large: int, large_mib: int) -> None:
    """Write the source tree once (reused while its parameters stay the same)."""
    marker = src.with_name("source.json")
    wanted = {"files": files, "small_mib": small_mib, "large": large, "large_mib": large_mib,
              "seed": SEED}
    if src.is_dir() and marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"reusing the source tree in {src}")
        return
    marker.unlink(missing_ok=True)
    shutil.rmtree(src, ignore_errors=True)
    print(f"generating {files:,} documents ({small_mib} MiB) and {large} models of "
          f"{large_mib} MiB in {src} ...", flush=True)
    rng = random.Random(SEED)
    planned = document_sizes(files, small_mib * MIB, rng)
    planned += [(f"{LARGE_FOLDER}/{LARGE_NAMES[n % len(LARGE_NAMES)].format(n=n + 1)}",
                 large_mib * MIB) for n in range(large)]
    for relative, size in planned:
        path = src / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for offset in range(0, size, MIB):
                out.write(os.urandom(min(MIB, size - offset)))
    os.sync()
    marker.write_text(json.dumps(wanted))


def local_manifest(root: Path) -> Manifest:
    return {str(path.relative_to(root)): path.stat().st_size
            for path in root.rglob("*") if path.is_file()}


# one entry of smbclient's `ls`: two spaces, the name, attribute letters, size, date
SMB_ENTRY = re.compile(r"^  (?P<name>.+?)\s+(?P<attrs>[A-Z]*)\s+(?P<size>\d+)"
                       r"\s+\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}$")


def share_manifest(server: SambaServer, folder: str) -> Manifest:
    """The files under `folder` on the share as Samba's own client lists them."""
    listing = server.smbclient("recurse on", f'cd "{folder}"', "ls").stdout
    found: Manifest = {}
    current = ""
    prefix = f"\\{folder}"
    for line in listing.splitlines():
        if line.startswith("\\"):
            current = line[len(prefix):].strip("\\").replace("\\", "/")
            continue
        entry = SMB_ENTRY.match(line)
        if entry is None or "D" in entry["attrs"]:
            continue
        found[f"{current}/{entry['name']}".lstrip("/")] = int(entry["size"])
    return found


def bucket_manifest(server: S3Server, bucket: str) -> Manifest:
    """The objects in `bucket` as rclone itself lists them."""
    listing = server.rclone("lsjson", "-R", "--files-only", f"{S3_REMOTE}:{bucket}").stdout
    return {item["Path"]: item["Size"] for item in json.loads(listing)}


def verify(tool: str, source: Manifest, found: Manifest) -> bool:
    """Compare a destination with the source, path by path, and print the outcome."""
    leftovers = [p for p in found
                 if p.rsplit("/", 1)[-1].startswith(".dryviq-") or p.endswith(".partial")]
    missing = len(source.keys() - found.keys())
    extra = len(found.keys() - source.keys()) - len(leftovers)
    wrong_size = sum(source[p] != found[p] for p in source.keys() & found.keys())
    ok = not (missing or extra or wrong_size or leftovers)
    print(f"    verify {tool:<10} {len(found):>6,} files {sum(found.values()):>12,} bytes; "
          f"missing {missing}, extra {extra}, wrong size {wrong_size}, temporary files "
          f"{len(leftovers)} -> {'complete' if ok else 'INCOMPLETE'}", flush=True)
    return ok


def dryviq_env(**extra: str) -> dict[str, str]:
    """dryviq-tui runs this checkout's code, from bytecode, with rclone's environment."""
    env = {**bytecode_env(), **rclone_env(), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def setup_dryviq(dryviq: list[str], home: Path, src: Path, destination: list[str],
                 parallel: int, env: dict[str, str]) -> list[str]:
    """A fresh home with a local source, the destination connection (`connections add`
    arguments after the name) and a copy job; returns the command that runs the job."""
    def cli(*args: str, stdin: str | None = None) -> None:
        subprocess.run([*dryviq, "--home", str(home), *args], input=stdin, text=True,
                       check=True, stdout=subprocess.DEVNULL, env=env)

    cli("connections", "add", "local", "bench-source", "--path", str(src))
    cli("connections", "add", destination[0], "bench-destination", *destination[1:])
    cli("jobs", "create", "--file", "-", stdin=json.dumps(copy_job(parallel)))
    return [*dryviq, "--home", str(home), "jobs", "run", "bench-copy"]


def rclone_smb_config(server: SambaServer, path: Path) -> Path:
    """An rclone.conf with an `smb` remote on the server; the password obscured by
    `rclone obscure` reading it from stdin, so it is never on an argv."""
    obscured = subprocess.run(["rclone", "obscure", "-"], input=server.password, text=True,
                              capture_output=True, check=True, env=rclone_env()).stdout.strip()
    path.write_text(f"[{SMB_REMOTE}]\ntype = smb\nhost = {server.host}\nport = {server.port}\n"
                    f"user = {server.username}\npass = {obscured}\n")
    path.chmod(0o600)
    return path


Run = Callable[[str, str], tuple[Measured, Manifest]]  # (tool, run name) -> run, what it wrote


def rotated(tools: list[str], number: int) -> list[str]:
    shift = number % len(tools)
    return tools[shift:] + tools[:shift]


def run_tools(scenario: str, tools: list[str], repeats: int, source: Manifest,
              run: Run) -> tuple[list[Measured], list[str]]:
    """Every tool `repeats` times, the order rotating between repeats, each run's destination
    checked against the source; returns the runs and the names of those found incomplete."""
    results, incomplete = [], []
    for number in range(repeats):
        for tool in rotated(tools, number):
            name = f"run-{number + 1}-{tool}"
            result, found = run(tool, name)
            status = "" if result.returncode == 0 else f"  EXIT CODE {result.returncode}"
            print(f"  {scenario} repeat {number + 1}: {tool:<10} {result.wall:7.2f} s  "
                  f"{result.tail[:70]}{status}", flush=True)
            if not verify(tool, source, found):
                incomplete.append(name)
            results.append(result)
    return results, incomplete


def bench_smb(args: argparse.Namespace, work: Path, src: Path, source: Manifest,
              dryviq: list[str]) -> tuple[list[Measured], list[str]]:
    (work / "samba").mkdir()
    with running_samba(work / "samba") as server:
        config = rclone_smb_config(server, work / "rclone-smb.conf")
        print(f"smbd on {server.host}:{server.port}, share {server.share!r}")

        def run(tool: str, name: str) -> Measured:
            (server.root / name).mkdir()  # every tool starts from an existing empty folder
            logs = work / "smb-runs" / name
            logs.mkdir(parents=True)
            env = rclone_env()
            if tool == "smbclient":
                command = ["smbclient", f"//{server.host}/{server.share}", "-p",
                           str(server.port), "-A", str(server.auth_file), "-c",
                           f'prompt off; recurse on; lcd "{src}"; cd "{name}"; mput *']
            elif tool == "rclone":
                command = ["rclone", "--config", str(config), "copy", str(src),
                           f"{SMB_REMOTE}:{server.share}/{name}",
                           "--transfers", str(args.parallel)]
            else:
                env = dryviq_env()
                command = setup_dryviq(
                    dryviq, logs / "home", src,
                    ["smb", "--server", server.host, "--port", str(server.port), "--share",
                     server.share, "--path", f"/{name}", "--username", server.username,
                     "--password-env", PASSWORD_VARIABLE],
                    args.parallel, dryviq_env(**{PASSWORD_VARIABLE: server.password}))
            result = measure(tool, "local -> SMB", command, env=env, log=logs / "run.log")
            return result, share_manifest(server, name)

        return run_tools("SMB", SMB_TOOLS, args.repeat, source, run)


def empty_bucket(server: S3Server, bucket: str) -> None:
    """Delete every version in `bucket` and the bucket: moto holds them in this process."""
    import boto3

    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    while True:  # the first page again each time: deleting shifts the pages after it
        page = client.list_object_versions(Bucket=bucket)
        versions = page.get("Versions", []) + page.get("DeleteMarkers", [])
        if not versions:
            break
        client.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]})
    client.delete_bucket(Bucket=bucket)


def bench_s3(args: argparse.Namespace, work: Path, src: Path, source: Manifest,
             dryviq: list[str]) -> tuple[list[Measured], list[str]]:
    (work / "s3").mkdir()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's log line per request
    with running_s3(work / "s3") as server:
        print(f"moto S3 at {server.endpoint}, remote {S3_REMOTE}: in {server.config}")

        def run(tool: str, name: str) -> Measured:
            bucket = server.new_bucket()
            logs = work / "s3-runs" / name
            logs.mkdir(parents=True)
            if tool == "rclone":
                env = rclone_env()
                command = ["rclone", "--config", str(server.config), "copy", str(src),
                           f"{S3_REMOTE}:{bucket}", "--transfers", str(args.parallel)]
            else:
                env = dryviq_env()
                command = setup_dryviq(
                    dryviq, logs / "home", src,
                    ["rclone", "--remote", f"{S3_REMOTE}:{bucket}", "--config",
                     str(server.config)], args.parallel, env)
            result = measure(tool, "local -> S3", command, env=env, log=logs / "run.log")
            found = bucket_manifest(server, bucket)
            empty_bucket(server, bucket)
            return result, found

        return run_tools("S3", S3_TOOLS, args.repeat, source, run)


def report(title: str, runs: tuple[list[Measured], list[str]], tools: list[str],
           total: int) -> None:
    """Medians per tool, then the first tool's ratio to each of the others."""
    results, incomplete = runs
    def walls(tool: str) -> list[float]:
        return [r.wall for r in results if r.tool == tool]

    def median(tool: str, value: str) -> float:
        return statistics.median(getattr(r, value) for r in results if r.tool == tool)

    repeats = len(walls(tools[0]))
    print(f"\n{title}: median of {repeats} run(s) each; min and max of the wall time beside it")
    print(f"{'tool':<10} {'wall s':>7} {'min':>6} {'max':>6} {'MiB/s':>6} {'user s':>7} "
          f"{'sys s':>6}")
    for tool in tools:
        wall = statistics.median(walls(tool))
        print(f"{tool:<10} {wall:>7.2f} {min(walls(tool)):>6.2f} {max(walls(tool)):>6.2f} "
              f"{total / MIB / wall:>6.1f} {median(tool, 'user'):>7.2f} "
              f"{median(tool, 'sys'):>6.2f}")
    measured = tools[0]  # the others are its references
    for reference in tools[1:]:
        ratio = statistics.median(walls(measured)) / statistics.median(walls(reference))
        best = min(walls(measured)) / min(walls(reference))
        print(f"{measured + '/' + reference:<17} time {ratio:5.2f} (fastest runs {best:5.2f})"
              "   target <= 1.20")
    if incomplete:
        print(f"WARNING: incomplete destination(s), so their times mean nothing: "
              f"{', '.join(incomplete)}")
    failed = [r for r in results if r.returncode != 0]
    if failed:
        print("WARNING: run(s) exited non-zero: "
              + ", ".join(f"{r.tool} ({r.returncode})" for r in failed))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="documents")
    parser.add_argument("--small-mib", type=int, default=100, help="the documents' total size")
    parser.add_argument("--large", type=int, default=2, help="large files (models)")
    parser.add_argument("--large-mib", type=int, default=50, help="size of each large file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each tool N times and report the median")
    parser.add_argument("--parallel", type=int, default=4,
                        help="dryviq parallel_writes and rclone --transfers")
    parser.add_argument("--skip-smb", action="store_true", help="only local -> S3")
    parser.add_argument("--skip-s3", action="store_true", help="only local -> SMB")
    parser.add_argument("--dir", type=Path,
                        help="work folder (default: a new temporary one, removed at the end); "
                             "a --dir keeps its source tree for the next run")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (source, share, logs, dryviq homes)")
    args = parser.parse_args()
    for tool in ("rclone", *(() if args.skip_smb else ("smbd", "smbclient"))):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install rclone samba smbclient)")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "core")],
                   env=bytecode_env(), check=True)
    dryviq = dryviq_command()
    work = args.dir.absolute() if args.dir else Path(tempfile.mkdtemp(prefix="dryviq-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for old in RUN_FOLDERS:
        shutil.rmtree(work / old, ignore_errors=True)
    rclone = subprocess.run(["rclone", "version"], capture_output=True, text=True)
    smbd = subprocess.run(["smbd", "--version"], capture_output=True, text=True)
    checkout = describe_checkout()
    print(f"dryviq-tui {checkout}; {rclone.stdout.splitlines()[0]}; {smbd.stdout.strip()}; "
          f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average "
          f"{load_average()}; work folder {work}")
    try:
        src = work / "source"
        generate(src, args.files, args.small_mib, args.large, args.large_mib)
        source = local_manifest(src)
        total = sum(source.values())
        print(f"source: {len(source):,} files, {total:,} bytes; parallel {args.parallel}")
        if not args.skip_smb:
            report("local -> SMB", bench_smb(args, work, src, source, dryviq), SMB_TOOLS, total)
        if not args.skip_s3:
            report("local -> S3 (moto)", bench_s3(args, work, src, source, dryviq), S3_TOOLS,
                   total)
        print(f"\nload average at the end {load_average()} (other work on the machine skews "
              "every number above)")
        if describe_checkout() != checkout:
            print(f"WARNING: the code changed during the run: started on {checkout}, ended on "
                  f"{describe_checkout()}; the runs measured different code")
    finally:
        if args.keep:
            print(f"\nkept {work}")
        elif args.dir:
            for old in RUN_FOLDERS:
                shutil.rmtree(work / old, ignore_errors=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
