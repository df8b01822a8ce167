"""User key remapping from config.toml's `[keys]` table: binding id = "key[,key...]".

Read and checked here so a typo in config.toml costs the user a notification naming the bad
entry, never a crash, and the other bindings still apply.

    [keys]
    show-jobs = "f2"
    run-job = "ctrl+r,R"
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.keys import Keys, key_to_character

MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})
_NAMED_KEYS = frozenset(key.value for key in Keys if "+" not in key.value
                        and not key.value.startswith("<"))


def binding_ids(owners: Iterable[type[DOMNode]]) -> dict[str, str]:
    """Every binding id the given apps, screens and widgets declare, with its default key."""
    found: dict[str, str] = {}
    for owner in owners:
        for cls in owner.__mro__:
            for binding in _bindings(getattr(cls, "BINDINGS", ())):
                if binding.id:
                    found.setdefault(binding.id, binding.key)
    return found


def package_binding_ids(package: str) -> dict[str, str]:
    """The binding ids of every app, screen and widget class in the imported modules of
    `package` (import the screens first), so any of them can be remapped."""
    owners = [value for name, module in list(sys.modules.items())
              if name == package or name.startswith(package + ".")
              for value in vars(module).values()
              if isinstance(value, type) and issubclass(value, DOMNode)
              and value.__module__ == name]
    return binding_ids(owners)


def _bindings(declared: Iterable[BindingType]) -> Iterable[Binding]:
    return (b for b in declared if isinstance(b, Binding))


def key_problem(keys: str) -> str | None:
    """Why `keys` (comma-separated, e.g. "ctrl+r,f5") is not a key Textual knows, or None."""
    for key in (part.strip() for part in keys.split(",")):
        if not key:
            return f"{keys!r} has an empty key"
        *modifiers, name = key.split("+") if len(key) > 1 else [key]
        if not name:
            return f"{key!r} has no key after its modifiers"
        unknown = [m for m in modifiers if m not in MODIFIERS]
        if unknown:
            return f"{key!r}: unknown modifier {unknown[0]!r} (use {', '.join(sorted(MODIFIERS))})"
        if not (len(name) == 1 or name in _NAMED_KEYS or key_to_character(name)):
            return f"{key!r}: unknown key {name!r}"
    return None


def read_keymap(config: Mapping[str, Any], known: Mapping[str, str],
                ) -> tuple[dict[str, str], list[str]]:
    """The keymap for App.set_keymap from config.toml's `[keys]`, and a message for each entry
    that was left out."""
    table = config.get("keys", {})
    if not isinstance(table, Mapping):
        return {}, ["config.toml: [keys] must be a table of binding id = \"key\""]
    keymap, problems = {}, []
    for binding_id, keys in table.items():
        where = f"config.toml [keys] {binding_id}"
        if binding_id not in known:
            problems.append(f"{where}: no binding has this id (ids: {', '.join(sorted(known))})")
        elif not isinstance(keys, str):
            problems.append(f"{where}: expected a key such as \"ctrl+r\" in quotes")
        elif problem := key_problem(keys):
            problems.append(f"{where}: {problem}")
        else:
            keymap[binding_id] = ",".join(part.strip() for part in keys.split(","))
    return keymap, problems
