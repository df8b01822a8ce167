"""Sample Procore content: a general contractor's companies and projects with realistic
Documents, for the demo and the tests, and synthetic projects of any size for benchmarks.

Deterministic for a seed: names, sizes and bytes are the same every time; times are spread
over the months before today (UTC), so they only move from one day to the next.
"""

from __future__ import annotations

import functools
import random
import time

from core.sandbox.world import SandboxConfig, World

KIB = 1024
MIB = 1024 * KIB
DAY = 86400.0

DEMO_COMPANY = "Summit Builders"
DEMO_PROJECT = "Riverside Medical Center"
SECOND_PROJECT = "Harbor View Apartments"
SANDBOX_COMPANY = "Summit Builders – Sandbox"
SANDBOX_PROJECT = "Sandbox Test Project"

# (folder, file names, smallest and largest size in KiB)
RIVERSIDE: tuple[tuple[str, tuple[str, ...], tuple[int, int]], ...] = (
    ("Drawings/Architectural", (
        "A-000 Full Drawing Set.pdf", "A-001 Cover Sheet and Drawing Index.pdf",
        "A-101 Floor Plan Level 1.pdf", "A-102 Floor Plan Level 2.pdf", "A-103 Roof Plan.pdf",
        "A-201 Exterior Elevations.pdf", "A-301 Building Sections.pdf", "A-501 Wall Details.pdf",
        "Façade détails.pdf"),
     (200, 1500)),
    ("Drawings/Structural", (
        "S-001 General Notes.pdf", "S-101 Foundation Plan.pdf", "S-201 Level 2 Framing Plan.pdf",
        "S-301 Concrete Details.pdf", "S-401 Steel Connection Details.dwg"), (150, 1200)),
    ("Drawings/MEP", (
        "M-101 HVAC Plan Level 1.pdf", "M-102 HVAC Plan Level 2.pdf",
        "E-101 Lighting Plan Level 1.pdf", "E-201 Power Plan Level 1.pdf",
        "P-101 Plumbing Plan Level 1.pdf", "FP-101 Fire Protection Plan.pdf"), (150, 1000)),
    ("Specifications", (
        "00 01 10 Table of Contents.pdf", "03 30 00 Cast-in-Place Concrete.pdf",
        "05 12 00 Structural Steel Framing.pdf", "07 21 00 Thermal Insulation.pdf",
        "08 11 13 Hollow Metal Doors and Frames.pdf", "09 29 00 Gypsum Board.pdf",
        "23 05 00 Common Work Results for HVAC.pdf",
        "26 05 00 Common Work Results for Electrical.pdf"), (60, 500)),
    ("Submittals", (
        "03 30 00-001 Concrete Mix Design.pdf", "05 12 00-002 Steel Shop Drawings.pdf",
        "08 71 00-001 Door Hardware Schedule.xlsx",
        "23 73 13-001 Air Handling Units Product Data.pdf", "Submittal Log.xlsx"), (40, 900)),
    ("RFIs", (
        "RFI-001 Footing depth at grid C4.pdf", "RFI-007 Curtain wall anchor spacing.pdf",
        "RFI-014 Beam pocket conflict.pdf", "RFI-021 Door swing at Stair 2.pdf",
        "RFI Log.xlsx"), (30, 400)),
    ("Photos/2025-03-14 Foundations", tuple(f"IMG_{n}.jpg" for n in range(2041, 2047)),
     (150, 900)),
    ("Photos/2025-05-02 Steel Erection", tuple(f"IMG_{n}.jpg" for n in range(2388, 2394)),
     (150, 900)),
    ("Closeout", (
        "O&M Manual - Elevators.pdf", "Warranty - Roofing.pdf", "Punch List.xlsx",
        "Punch List Notes.txt", "Closeout Checklist.docx"), (20, 800)),
    ("Closeout/As-Builts", (), (0, 0)),
)
HARBOR: tuple[tuple[str, tuple[str, ...], tuple[int, int]], ...] = (
    ("Drawings", ("A-100 Site Plan.pdf", "A-110 Unit Plans.pdf"), (300, 1200)),
    ("Specifications", ("Project Manual Vol 1.pdf",), (200, 600)),
    ("Contracts", ("Owner-Contractor Agreement.pdf",), (100, 300)),
)
SANDBOX_FILES: tuple[tuple[str, tuple[str, ...], tuple[int, int]], ...] = (
    ("01 Design Files", ("file.pdf",), (40, 60)),
)
# sizes of their own: the empty file and the largest one
FIXED_SIZES = {"Closeout/Punch List Notes.txt": 0,
               "Drawings/Architectural/A-000 Full Drawing Set.pdf": 3 * MIB}
# paths with more than one version, and how many
VERSIONS = {"Drawings/Architectural/A-101 Floor Plan Level 1.pdf": 2,
            "Drawings/Structural/S-101 Foundation Plan.pdf": 3,
            "Submittals/03 30 00-001 Concrete Mix Design.pdf": 2,
            "Specifications/03 30 00 Cast-in-Place Concrete.pdf": 2}


@functools.cache
def _block(seed: int) -> bytes:
    """64 KiB of seeded noise that every sample file repeats, so big files cost nothing."""
    return random.Random(seed).randbytes(64 * KIB)


def sample_content(seed: int, head: str, size: int) -> bytes:
    """`size` bytes: `head` (which makes each file differ), then the seed's block repeated."""
    block = _block(seed)
    start = head.encode()[:size]
    repeats, tail = divmod(size - len(start), len(block))
    return start + block * repeats + block[:tail]


def _today() -> float:
    return time.time() // DAY * DAY


def _fill(world: World, project_id: int,
          folders: tuple[tuple[str, tuple[str, ...], tuple[int, int]], ...],
          rng: random.Random) -> None:
    """Folders and files, with their versions spread over the last half year."""
    seed, today = world.config.seed, _today()
    for folder, names, (low, high) in folders:
        if not names:
            world.add_folder(project_id, folder, at=today - rng.randrange(120, 180) * DAY)
        for name in names:
            path = f"{folder}/{name}"
            days = sorted(rng.sample(range(1, 180), VERSIONS.get(path, 1)), reverse=True)
            for number, day in enumerate(days, start=1):
                size = FIXED_SIZES.get(path, rng.randrange(low * KIB, high * KIB + 1))
                at = today - day * DAY + rng.randrange(7 * 3600, 18 * 3600)
                world.add_file(project_id, path,
                               sample_content(seed, f"{path} v{number}\n", size), at=at)


def demo_world(config: SandboxConfig | None = None) -> World:
    """Summit Builders (whose first project, Riverside Medical Center, is the demo's and the
    service account's) and a second company with one project, so pickers have a choice."""
    world = World(config)
    rng = random.Random(world.config.seed)
    today = _today()
    company = world.add_company(DEMO_COMPANY)
    riverside = world.add_project(company.id, DEMO_PROJECT, number="2024-017",
                                  created_at=today - 240 * DAY)
    harbor = world.add_project(company.id, SECOND_PROJECT, number="2025-003",
                               created_at=today - 200 * DAY)
    other = world.add_company(SANDBOX_COMPANY)
    sandbox = world.add_project(other.id, SANDBOX_PROJECT, number="TEST-1",
                                created_at=today - 300 * DAY)
    world.permit_service_account(riverside.id)
    _fill(world, riverside.id, RIVERSIDE, rng)
    _fill(world, harbor.id, HARBOR, rng)
    _fill(world, sandbox.id, SANDBOX_FILES, rng)
    return world


def bulk_project(world: World, company_id: int, name: str, files: int, folders: int, *,
                 size: int = 4 * KIB) -> int:
    """A synthetic project of `files` files of `size` bytes spread evenly over `folders`
    folders (ten to a parent, so the tree is a few levels deep); returns its id."""
    project = world.add_project(company_id, name)
    paths: list[str] = []
    for index in range(folders):
        parent = paths[index // 10 - 1] + "/" if index >= 10 else ""
        paths.append(f"{parent}Folder {index:05d}")
        world.add_folder(project.id, paths[-1])
    for index in range(files):
        folder = paths[index % folders] + "/" if folders else ""
        path = f"{folder}File {index:06d}.bin"
        world.add_file(project.id, path, sample_content(world.config.seed, path + "\n", size),
                       content_type="application/octet-stream")
    return project.id
