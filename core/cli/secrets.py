"""`dryviq-tui secrets rotate [--key-file FILE]`: seal a shared state's secrets with a new key
(core/secret_box.py), and say what the other hosts need. The key itself is never printed."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from core.cli import UsageError, opened_state
from core.cli.output import reply
from core.home import Home
from core.secret_box import KEY_VARIABLE, key_path, rotate


def register(commands: argparse._SubParsersAction, leaf: dict[str, Any]) -> None:
    group = commands.add_parser("secrets", help="the key that seals secrets in a shared "
                                                "(PostgreSQL) state")
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    rotate_ = sub.add_parser(
        "rotate", help="seal every secret with a new key, written to the home's secret.key "
                       "(the previous key kept after it); then copy that file to the other "
                       "hosts", **leaf)
    rotate_.add_argument("--key-file", metavar="FILE", type=Path,
                         help=f"with ${KEY_VARIABLE} set: the file to write the new key to "
                              "(mode 0600); then set the variable from it on every host")
    rotate_.set_defaults(handler=_rotate)


def _key_file(args: argparse.Namespace, home_key: Path) -> Path:
    """Where the new key goes: the home's secret.key, or with DRYVIQ_SECRET_KEY (which this
    command cannot change) the file the user names. Usage errors, before anything opens."""
    from_variable = bool(os.environ.get(KEY_VARIABLE, "").strip())
    if from_variable and args.key_file is None:
        raise UsageError(f"${KEY_VARIABLE} holds this host's key and rotate cannot change it: "
                         "give --key-file FILE to write the new key to, then set the variable "
                         "from that file on every host")
    if not from_variable and args.key_file is not None:
        raise UsageError(f"--key-file is for hosts that take the key from ${KEY_VARIABLE}; "
                         f"without it the new key goes to {home_key}")
    path = (args.key_file or home_key).absolute()
    if not path.parent.is_dir():
        raise UsageError(f"--key-file: the folder {path.parent} does not exist",
                         path=str(path))
    return path


async def _rotate(args: argparse.Namespace) -> int:
    home = Home.resolve(getattr(args, "home", None))
    if home.state_url() is None:
        raise UsageError("nothing to rotate: a state.db keeps secrets in your private file "
                         f"{home.state_path}, unencrypted by design")
    key_file = _key_file(args, key_path(home))
    async with opened_state(args) as (_, state):
        count = await rotate(state, home, key_file)
        where = str(state.shared)
    if args.key_file is None:
        then = (f"copy {key_file} to the home of every other host of this installation "
                "(mode 0600). Until a host has it, commands there are refused with a message "
                "saying so, and its running agents cannot read secrets (they read the file "
                "again when it arrives); what they seal meanwhile still opens here.")
    else:
        then = (f"set ${KEY_VARIABLE} on this and every other host to the keys in {key_file} "
                "(its lines that are not comments, space-separated; the first is the new "
                "one), e.g. DRYVIQ_SECRET_KEY=\"$(grep -v '^#' FILE | tr '\\n' ' ')\". Until "
                "then commands there are refused with a message saying so.")
    reply(args, {"rotated": count, "database": where, "key_file": str(key_file)},
          f"sealed the secrets of {count} connection{'' if count == 1 else 's'} in the {where} "
          f"with a new key, written to {key_file} (the previous key kept after it).\n"
          f"Next: {then}")
    return 0
