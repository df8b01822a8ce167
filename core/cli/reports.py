"""`dryviq-tui reports list | show CATEGORY [--json|--csv]`: per-category totals."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import CommandFailed


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    group = commands.add_parser("reports", help="per-category totals of jobs and executions")
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="every category with its totals", **leaf).set_defaults(
        handler=_list)
    show = sub.add_parser("show", help="one category's totals and jobs", **leaf)
    show.add_argument("category", help="category name or id")
    show.set_defaults(handler=_show)
    for one in (sub.choices["list"], show):
        one.add_argument("--csv", action="store_true", help="print CSV")


async def _list(args: argparse.Namespace) -> int:
    raise CommandFailed("not_built", "reports are being written (issue 14)")


async def _show(args: argparse.Namespace) -> int:
    raise CommandFailed("not_built", "reports are being written (issue 14)")
