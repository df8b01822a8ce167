"""`dryviq-tui analyze` at scale: a generated local tree and a synthetic sandbox project.

1. Local trees of --local items (default 10,000 and 100,000: files in folders of about 100,
   under top-level folders of ten; sizes from 0 to 50 MB as sparse files, modification times
   spread over five years, one name in 50 with a character Procore refuses).
2. Procore projects of --procore items (default 1,000 and 10,000) in the embedded sandbox,
   served over real HTTP from this process (bulk_project: files in folders of ten to a
   parent).

Each analysis is `dryviq-tui analyze NAME --json` in a child process of its own: wall time
from spawn to exit, and its peak RSS from os.wait4 (the interpreter and its imports included:
what matters is that it stays flat from the smaller size to the larger one). API calls are
the sandbox's own count, against the listing minimum: the documents index's pages (2,000
items each, the project's root folder among them) or one call per folder, whichever is fewer.

    python bench/analyze.py [--local 10000 --local 100000] [--procore 1000 --procore 10000]
        [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from copy_vs_rclone import dryviq_command, measure  # bench/copy_vs_rclone.py
from machine import describe_checkout, load_average  # bench/machine.py
from procore_calls import Dryviq  # bench/procore_calls.py

from core.sandbox import DEMO_COMPANY, SandboxThread, bulk_project, demo_world

PER_FOLDER = 100  # files per folder of a generated local tree
YEAR = 365 * 86400


def local_tree(root: Path, items: int) -> tuple[int, int]:
    """About `items` files and folders under `root`; returns (files, folders)."""
    rng = random.Random(items)
    folders = max(1, items // (PER_FOLDER + 1))
    tops = math.ceil(folders / 10)
    files = items - folders - tops
    now = time.time()
    for index in range(files):
        folder = index % folders
        name = f"Sheet {index:06d}{':' if index % 50 == 0 else ''}.pdf"
        path = root / f"Area {folder // 10:03d}" / f"Folder {folder:05d}" / name
        if index < folders:
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            out.truncate(int(rng.paretovariate(1.2) * 20_000) % 50_000_000)  # sparse
        when = now - rng.random() * 5 * YEAR
        os.utime(path, (when, when))
    return files, folders + tops


def analyze(dryviq: Dryviq, name: str, log: Path) -> tuple[dict, float, float]:
    """The analysis's JSON, its wall time and peak RSS (MiB)."""
    measured = measure("dryviq", "analyze", [*dryviq_command(), "--home", str(dryviq.home),
                                             "analyze", name, "--json"],
                       env=dryviq.env, log=log)
    if measured.returncode != 0:
        sys.exit(f"analyze {name} failed ({measured.returncode}): see {log}")
    text = log.read_text()
    return json.loads(text[text.index("{"):]), measured.wall, measured.rss_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", type=int, action="append", metavar="ITEMS")
    parser.add_argument("--procore", type=int, action="append", metavar="ITEMS")
    parser.add_argument("--dir", type=Path, help="where to generate (default: a temporary "
                                                 "folder)")
    parser.add_argument("--keep", action="store_true", help="keep what was generated")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-analyze-", dir=args.dir))
    print(f"{describe_checkout()}; load average {load_average()}")
    print(f"{'what':<22} {'items':>8} {'files':>8} {'wall s':>7} {'items/s':>8} "
          f"{'peak RSS MiB':>12} {'API calls':>9} {'minimum':>7}")
    try:
        for items in args.local or [10_000, 100_000]:
            root = work / f"local-{items}"
            files, folders = local_tree(root, items)
            dryviq = Dryviq(work / f"home-local-{items}")
            dryviq("connections", "add", "local", "tree", "--path", str(root))
            found, wall, rss = analyze(dryviq, "tree", work / f"local-{items}.log")
            assert (found["files"], found["folders"]) == (files, folders), found
            print(f"{'local tree':<22} {files + folders:>8,} {files:>8,} {wall:>7.1f} "
                  f"{(files + folders) / wall:>8,.0f} {rss:>12.0f} {found['api_calls']:>9} "
                  f"{0:>7}")
            if not args.keep:
                shutil.rmtree(root)
        world = demo_world()
        company = next(c.id for c in world.companies.values() if c.name == DEMO_COMPANY)
        with SandboxThread(world) as sandbox:
            for items in args.procore or [1_000, 10_000]:
                folders = max(1, items // 20)
                project = f"Bench {items}"
                bulk_project(world, company, project, items - folders, folders)
                dryviq = Dryviq(work / f"home-procore-{items}")
                dryviq.connect(sandbox, "project", project)
                before = world.api_calls
                found, wall, rss = analyze(dryviq, "project", work / f"procore-{items}.log")
                spent = world.api_calls - before
                assert found["files"] + found["folders"] == items, found
                # the index lists the project's root folder too
                minimum = min(math.ceil((items + 1) / 2000), folders + 1)
                print(f"{'sandbox project':<22} {items:>8,} {found['files']:>8,} "
                      f"{wall:>7.1f} {items / wall:>8,.0f} {rss:>12.0f} {spent:>9} "
                      f"{minimum:>7}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept in {work}")
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
