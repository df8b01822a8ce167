"""core/ stays free of the UI: no module under it imports textual (tests/e2e also runs the
headless commands with a textual that refuses to load)."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"


def test_no_module_in_core_imports_textual():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] == "textual"]
    assert offenders == []

