"""`dryviq-tui agent`: run scheduled jobs headless (systemd, cron @reboot, tmux over SSH)."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import CommandFailed


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    agent = commands.add_parser(
        "agent", help="run scheduled jobs headless, one agent per home, until SIGTERM", **leaf)
    agent.set_defaults(handler=_agent)


async def _agent(args: argparse.Namespace) -> int:
    raise CommandFailed("not_built", "the agent is being written (issue 14)")
