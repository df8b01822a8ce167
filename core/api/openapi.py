"""The OpenAPI document, written by hand in parts (spec/base.json, then one file per area of the
API), joined here: each part adds its `paths` and `components.schemas`. The 413 every write
may answer (the body cap in limits.py, in front of every route) is added here, once."""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

PARTS = ("connections", "jobs", "events", "transfers", "reports")
WRITES = ("post", "patch", "put")


@functools.cache
def _joined() -> dict[str, Any]:
    folder = resources.files("core.api") / "spec"
    spec = json.loads((folder / "base.json").read_text())
    for part in PARTS:
        piece = json.loads((folder / f"{part}.json").read_text())
        spec["paths"].update(piece.get("paths", {}))
        spec["components"]["schemas"].update(piece.get("components", {}).get("schemas", {}))
    for operations in spec["paths"].values():
        for method in WRITES:
            if method in operations:
                operations[method]["responses"].setdefault(
                    "413", {"$ref": "#/components/responses/Error"})
    return spec


def document(public_url: str) -> dict[str, Any]:
    """The document, its server being this one."""
    spec = copy.deepcopy(_joined())
    spec["servers"] = [{"url": public_url.rstrip("/") + "/"}]
    return spec
