"""core/ stays free of the UI: no module under it imports textual, and the CLI never loads it."""

import ast
import subprocess
import sys
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


def test_headless_commands_do_not_load_textual(tmp_path):
    code = ("import sys, core.cli; core.cli.main(['--home', sys.argv[1], 'jobs', 'list']); "
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().endswith("False")
