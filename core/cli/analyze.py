"""`dryviq-tui analyze CONN[:/path] [--against CONN[:/path]] [--json|--csv] [--html FILE]`:
what a connection's folder holds, what the other platform would refuse, and what a job costs."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import CommandFailed


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    analyze = commands.add_parser(
        "analyze", help="walk a connection's folder (listings only) and report what it holds, "
                        "what the other side would refuse, and what a job would cost", **leaf)
    analyze.add_argument("target", metavar="CONN[:/path]", help="connection name or id, and "
                                                                 "a folder in it")
    analyze.add_argument("--against", metavar="CONN[:/path]",
                         help="compare with this connection's folder (DryvIQ's platform "
                              "comparison), checking names against its rules")
    analyze.add_argument("--csv", action="store_true", help="print CSV")
    analyze.add_argument("--html", metavar="FILE",
                         help="also write a self-contained HTML report to FILE")
    analyze.set_defaults(handler=_analyze)


async def _analyze(args: argparse.Namespace) -> int:
    raise CommandFailed("not_built", "analyze is being written (issue 14)")
