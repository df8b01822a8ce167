"""A hand-made `Analysis` of a small construction project, fixed to the byte and the second, for
the HTML report's and the Analyze screen's tests (the walk itself is tested in
tests/core/test_analyze.py). One file name tries to run a script."""

from __future__ import annotations

import dataclasses
from typing import Any

from core.analyze import (
    Analysis,
    Bucket,
    Comparison,
    Duplicates,
    Estimate,
    FlaggedName,
    PathSize,
)

FINISHED = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
EVIL = "<script>alert(1)</script>.pdf"
MIB = 1024 * 1024

BY_EXTENSION = (Bucket(".pdf", 31, 412 * MIB), Bucket(".dwg", 12, 230 * MIB),
                Bucket(".jpg", 48, 96 * MIB), Bucket(".xlsx", 6, 3 * MIB),
                Bucket("", 2, 4096))
BY_SIZE = (Bucket("< 1 MB", 20, 6 * MIB), Bucket("1-10 MB", 61, 311 * MIB),
           Bucket("10-100 MB", 18, 428 * MIB), Bucket("100 MB-1 GB", 0, 0),
           Bucket("> 1 GB", 0, 0))
BY_AGE = (Bucket("< 30 days", 9, 40 * MIB), Bucket("< 1 year", 52, 402 * MIB),
          Bucket("1-3 years", 30, 261 * MIB), Bucket("> 3 years", 8, 42 * MIB))
BY_FOLDER = (Bucket("Drawings", 40, 520 * MIB), Bucket("Photos", 48, 96 * MIB),
             Bucket("RFIs", 9, 125 * MIB), Bucket("Specifications", 2, 4 * MIB))


def sample_analysis(**changes: Any) -> Analysis:
    analysis = Analysis(
        connection="procore-demo", path="", platform="procore",
        started_at=FINISHED - 12, finished_at=FINISHED, api_calls=23,
        files=99, folders=14, bytes=sum(b.bytes for b in BY_EXTENSION),
        by_extension=BY_EXTENSION, by_folder=BY_FOLDER, by_size=BY_SIZE, by_age=BY_AGE,
        largest=(PathSize("Drawings/A-001 Site Plan.dwg", 48 * MIB),
                 PathSize("RFIs/RFI 012 Survey.pdf", 31 * MIB)),
        deepest=(PathSize("Drawings/Architectural/Level 1/Details/A-501.pdf", 5),),
        empty_folders=("Submittals/Pending",), empty_folder_count=1,
        duplicates=(Duplicates("name and size", 2 * MIB,
                               ("Photos/IMG_0001.jpg", "Photos/Old/IMG_0001.jpg")),),
        flagged=(FlaggedName(f"RFIs/{EVIL}", "contains < > characters", "RFIs/_script_"
                             "alert(1)__script_.pdf"),
                 FlaggedName("Photos/Site: north.jpg", "contains ':'", "Photos/Site_ north.jpg"),
                 FlaggedName("Drawings/" + "x" * 300 + ".pdf", "longer than 255 characters",
                             None)),
        flagged_count=3, destination_platform="smb",
        estimate=Estimate(api_calls=142, hourly_limit=3600, remaining_now=3100,
                          reset_at=FINISHED + 1800, hours=142 / 3240,
                          hours_from_now=142 / 3240, basis="a copy out of Procore",
                          listing_calls=15, transfer_calls=127, files=99,
                          bytes=741 * MIB, reserve=0.1))
    return dataclasses.replace(analysis, **changes)


def compared(**changes: Any) -> Analysis:
    """The sample compared with an office share (`--against`)."""
    comparison = Comparison(
        only_here=Bucket("only_here", 40, 300 * MIB), only_there=Bucket("only_there", 3, MIB),
        different=Bucket("different", 5, 20 * MIB), identical=Bucket("identical", 54, 420 * MIB),
        samples={"only_here": ("Drawings/A-101.pdf",), "only_there": (f"Old/{EVIL}",),
                 "different": ("RFIs/RFI 001.pdf",)},
        first_sync={"create": 40, "update": 5, "conflict": 0})
    return sample_analysis(against="office-share", against_path="Projects/Riverside",
                           comparison=comparison, **changes)
