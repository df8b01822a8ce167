"""A sample construction project (folders, files, sizes) for the demo and the tests.

Deterministic: the same names, sizes, times and bytes every time, so a demo run and a test
can both say exactly what should arrive.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

KIB = 1024

# (folder, file names, typical size in KiB)
SAMPLE_FOLDERS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("Drawings/Architectural", ("A-101 Floor Plan Level 1.pdf", "A-102 Floor Plan Level 2.pdf",
                                "A-201 Building Elevations.pdf", "A-301 Wall Sections.pdf"), 900),
    ("Drawings/Structural", ("S-001 General Notes.pdf", "S-101 Foundation Plan.pdf",
                             "S-201 Framing Plan Level 2.pdf"), 700),
    ("Drawings/MEP", ("M-101 HVAC Plan.pdf", "E-101 Lighting Plan.pdf",
                      "P-101 Plumbing Riser.pdf"), 600),
    ("Specifications", ("Division 03 - Concrete.pdf", "Division 05 - Metals.pdf",
                        "Division 08 - Openings.docx", "Division 09 - Finishes.docx"), 250),
    ("Submittals/03 30 00 Cast-in-Place Concrete", ("Mix Design 4000 psi.pdf",
                                                    "Rebar Shop Drawings Rev 2.pdf"), 400),
    ("Submittals/08 71 00 Door Hardware", ("Hardware Schedule.xlsx", "Cut Sheets.pdf"), 150),
    ("RFIs", ("RFI 001 - Footing depth at grid C4.pdf", "RFI 002 - Curtain wall anchors.pdf",
              "RFI #003: Door swing at stair 2?.pdf"), 120),
    ("Photos/2026-10 Site Progress", tuple(f"IMG_{4100 + i}.jpg" for i in range(12)), 1800),
    ("Photos/2026-11 Site Progress", tuple(f"IMG_{4300 + i}.jpg" for i in range(8)), 1800),
    ("Closeout/O&M Manuals", ("Elevator O&M.pdf", "Rooftop Units O&M.pdf"), 1200),
    ("Closeout/Warranties", ("Roofing Warranty.pdf", "Window Warranty .pdf"), 90),
    ("Closeout/As-Builts", (), 0),
)

DEMO_JOB = {
    "name": "Sample project documents to office share",
    "kind": "transfer",
    "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "procore-demo"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "office-share"},
                        "target": {"path": "/Projects/Sample Project"}},
        "simulation_mode": False,
        "performance": {"parallel_writes": {"requested": 4}},
    },
    "schedule": {"mode": "manual"},
    "stop_policy": {"on_success": 5, "on_failure": 5, "on_execute": 25},
    "category": {"name": "Demo"},
}


def sample_files(seed: int = 7) -> Iterator[tuple[str, int, float]]:
    """(path, size, mtime) of every sample file; empty folders appear as (path + '/', 0, 0)."""
    rng = random.Random(seed)
    base = 1_790_000_000.0  # autumn 2026
    for folder, names, typical in SAMPLE_FOLDERS:
        if not names:
            yield folder + "/", 0, 0.0
        for name in names:
            size = max(1, int(typical * KIB * rng.uniform(0.3, 1.7)))
            yield f"{folder}/{name}", size, base + rng.randrange(0, 60 * 86400)


def sample_bytes(path: str, size: int) -> bytes:
    """The content of one sample file: deterministic for its path and size."""
    return random.Random(f"{path}:{size}").randbytes(size)


def write_sample_project(root: Path) -> None:
    """Write the sample project under `root` (created if missing)."""
    for path, size, mtime in sample_files():
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(sample_bytes(path, size))
        os.utime(target, (mtime, mtime))
