"""Path rules as pure functions: safe segments, match keys, and fitting names to a platform.

Everything here is deterministic and free of I/O, so the planner, the connectors and the TUI's
details pane all judge a name the same way.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from core.connectors.base import InvalidPath, PathRules

# What a terminal would act on rather than show: C0 controls, DEL, C1 controls, the bidi
# marks, embeddings, overrides and isolates (they reorder what follows: "invoice\u202efdp.exe"),
# and the line and paragraph separators. Printed names show them escaped; names given to a
# job or a connection may not hold them; Procore destinations rename them.
CONTROL_CHARS = "".join(
    [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]
    + ["\u061c", "\u200e", "\u200f", "\u2028", "\u2029", *map(chr, range(0x202A, 0x202F)),
       *map(chr, range(0x2066, 0x206A))])
_CONTROL = re.compile(f"[{re.escape(CONTROL_CHARS)}]")
_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def control_problem(text: str) -> str | None:
    """Why `text` may not be a name or a job value: the control characters (CONTROL_CHARS) it
    holds, escaped; None when it holds none."""
    bad = sorted(set(_CONTROL.findall(text)))
    if bad:
        return f"contains control characters ({' '.join(map(printable, bad))}), not allowed"
    return None

# Job and connection names: long enough for "Drawings to the office share, nightly (phase 2)",
# short enough for a table column and a `NAME:/path` argument.
NAME_MAX = 128


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def valid_utf8(text: str) -> str:
    """`text` as valid UTF-8, to store it: bytes that were not UTF-8 (lone surrogates from the
    OS) become \\xNN escapes; everything else, control characters included, stays exact."""
    if is_utf8(text):
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no OS name produced
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """`text` safe to print: valid UTF-8 (valid_utf8), and the control characters a terminal
    would act on (CONTROL_CHARS) shown as escapes such as \\x1b, \\n or \\u202e. Every name or
    message from a remote, a disk or a job file passes here before it reaches a terminal."""
    if text.isprintable():  # no control, format, separator or surrogate character: as is
        return text
    return _CONTROL.sub(_escape, valid_utf8(text))


def printable_lines(text: str) -> str:
    """Several lines of `text` (a job file as given), each printable; tabs kept."""
    return "\n".join("\t".join(map(printable, line.split("\t"))) for line in text.split("\n"))


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a job or a connection, or None: names are printed in tables and
    typed on command lines, so they hold no control characters and are at most NAME_MAX long."""
    if len(name) > NAME_MAX:
        return f"{len(name):,} characters, more than the {NAME_MAX} allowed"
    if not is_utf8(name):
        return "is not valid UTF-8 text"
    return control_problem(name)


def segment_problem(name: str) -> str | None:
    """Why `name` cannot be a single path segment on any platform, or None if it can."""
    if name in ("", ".", ".."):
        return f"{name!r} is not a usable file or folder name"
    if "/" in name:
        return f"{name!r} contains a path separator"
    if "\0" in name:
        return f"{name!r} contains a NUL character"
    if not is_utf8(name):
        return (f"{printable(name)!r} is not valid UTF-8 text, which other platforms cannot "
                "store; rename it at the source")
    return None


def is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes from the OS arrive as lone surrogates
        return False
    return True


def split_path(path: str) -> list[str]:
    """The segments of a user-given path ('/a/b/' -> ['a', 'b']); refuses anything that climbs."""
    segments = [s for s in path.replace("\\", "/").split("/") if s]
    for segment in segments:
        problem = segment_problem(segment)
        if problem:
            raise InvalidPath(f"path {path!r}: {problem}")
    return segments


def normalize_path(path: str) -> str:
    """A user-given path in connector form: relative, '/'-joined, '' for the root."""
    return "/".join(split_path(path))


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def match_key(name: str, case_insensitive: bool) -> str:
    """The key two listings are merged on: NFC, case-folded where either side ignores case."""
    key = unicodedata.normalize("NFC", name)
    return key.casefold() if case_insensitive else key


def name_key(name: str) -> str:
    """What two job names, or two connection names, are compared on: "Nightly", "nightly "
    and a decomposed "Café" all name one, since a person choosing from a list or typing
    `jobs run NAME` cannot tell them apart (lookups by name stay exact)."""
    return match_key(name.strip(), case_insensitive=True)


@functools.cache
def _invalid(chars: str) -> re.Pattern[str]:
    """A pattern matching any of `chars`: names are checked by the ten thousand."""
    return re.compile(f"[{re.escape(chars)}]")


def _trailing_whitespace(name: str) -> bool:
    stem, ext = os.path.splitext(name)
    return name != name.rstrip() or bool(ext and stem != stem.rstrip())


def _device_stem(name: str) -> str:
    """The part of `name` Windows compares with its device names: up to the first dot, without
    the spaces before it ("con .txt" -> "con")."""
    return name.split(".", 1)[0].rstrip(" ")


def _reserved(name: str, rules: PathRules) -> bool:
    return bool(rules.reserved_names) and _device_stem(name).upper() in rules.reserved_names


def name_problems(name: str, rules: PathRules) -> list[str]:
    """Every rule of the platform that `name` breaks, in words a user can act on."""
    problems = []
    bad = sorted(set(_invalid(rules.invalid_chars).findall(name)))
    if bad:
        shown = " ".join("NUL" if c == "\0" else printable(c) for c in bad)
        problems.append(f"contains characters the destination does not allow: {shown}")
    if rules.no_trailing_whitespace and _trailing_whitespace(name):
        problems.append("has whitespace before the extension or at the end")
    if rules.no_leading_whitespace and name != name.lstrip():
        problems.append("starts with whitespace")
    if rules.no_trailing_dot_or_space and name.endswith((".", " ")):
        problems.append("ends with a dot or a space, which the destination drops")
    if _reserved(name, rules):
        problems.append(f"{_device_stem(name)!r} is a device name the destination reserves")
    measure, unit = (_utf8_length, "bytes") if rules.name_length_in_bytes else (len, "characters")
    if rules.max_name_length is not None and measure(name) > rules.max_name_length:
        problems.append(f"is longer than {rules.max_name_length} {unit}")
    return problems


def fix_name(name: str, rules: PathRules, *, encode: bool = False) -> str:
    """`name` with invalid characters replaced ('_', or their UTF-8 bytes as hex), stray
    whitespace removed, trailing dots and spaces replaced and a reserved device name given a
    '_' ("CON.txt" -> "CON_.txt"): DryvIQ's segment transform."""
    fixed = "".join(
        (c.encode().hex().upper() if encode else "_") if c in rules.invalid_chars else c
        for c in name
    )
    if rules.no_trailing_whitespace:
        stem, ext = os.path.splitext(fixed.rstrip())
        fixed = stem.rstrip() + ext
    if rules.no_leading_whitespace:
        fixed = fixed.lstrip()
    if rules.no_trailing_dot_or_space:  # each trailing dot or space replaced, never dropped
        kept = fixed.rstrip(". ")
        fixed = kept + "".join(
            (c.encode().hex().upper() if encode else "_") for c in fixed[len(kept):])
    if _reserved(fixed, rules):  # "CON.txt" -> "CON_.txt"
        end = len(_device_stem(fixed))
        fixed = f"{fixed[:end]}_{fixed[end:]}"
    return fixed


def truncate_name(name: str, limit: int, measure: Callable[[str], int] = len) -> str | None:
    """Drop right-most characters of the stem (the extension is kept) until `measure(name)`
    is at most `limit`; None when even a one-character stem does not fit."""
    stem, ext = os.path.splitext(name)
    keep = len(stem)
    while keep >= 1 and measure(stem[:keep] + ext) > limit:
        keep -= 1
    return stem[:keep] + ext if keep >= 1 else None


def _utf8_length(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


@functools.lru_cache(maxsize=256)
def _length_limits(parent_length: int, rules: PathRules,
                   ) -> tuple[tuple[int, Callable[[str], int], str], ...]:
    """(limit, measure, what it limits) for a name in a folder whose path is that long."""
    limits = []
    if rules.max_name_length is not None:
        bytes_ = rules.name_length_in_bytes
        limits.append((rules.max_name_length, _utf8_length if bytes_ else len,
                       f"name length in {'bytes' if bytes_ else 'characters'}"))
    if rules.max_path_length is not None:
        limits.append((rules.max_path_length - (parent_length + 1 if parent_length else 0),
                       len, "path length in characters"))
    return tuple(limits)


@dataclass(slots=True)
class FittedName:
    """The name to use at the destination; `note` says how it changed, `refusal` why it cannot."""

    name: str
    note: str | None = None
    refusal: str | None = None


@functools.lru_cache(maxsize=256)
def _plain_ascii(rules: PathRules, parent_length: int) -> tuple[re.Pattern[str], int]:
    """What makes an ASCII name need a closer look under these rules: a pattern (a character
    no platform or this one allows, whitespace at an edge it does not allow) and a length."""
    edges = []
    if rules.no_leading_whitespace:
        edges.append(r"^\s")
    if rules.no_trailing_whitespace:
        edges.append(r"\s(?:\.[^.]*)?$")
    if rules.no_trailing_dot_or_space:
        edges.append(r"[. ]$")
    if rules.reserved_names:
        names = "|".join(map(re.escape, sorted(rules.reserved_names)))
        edges.append(f"(?i:^(?:{names}) *(?:\\.|$))")
    suspect = re.compile("|".join([f"[{re.escape(rules.invalid_chars + '/')}\0]", *edges]))
    # an ASCII name has as many bytes as characters, so every length limit counts alike
    return suspect, min((limit for limit, _, _ in _length_limits(parent_length, rules)),
                        default=sys.maxsize)


def fit_name(
    name: str, parent: str, rules: PathRules, *,
    transform: bool = True, encode: bool = False, truncate: bool = False,
) -> FittedName:
    """Decide the destination name for source `name` under destination folder `parent`,
    following the job's segment policies (`segment_transform`, `encode_invalid_characters`,
    `segment_truncate`)."""
    suspect, longest = _plain_ascii(rules, len(parent))
    if (name.isascii() and 0 < len(name) <= longest and name not in (".", "..")
            and not suspect.search(name)):
        return FittedName(name)  # the common case, decided in one pass over the name
    problem = segment_problem(name)
    if problem:
        return FittedName(name, refusal=problem)
    fitted, notes = name, []
    problems = [p for p in name_problems(name, rules) if not p.startswith("is longer")]
    if problems:
        if not transform:
            return FittedName(name, refusal="; ".join(problems))
        fitted = fix_name(name, rules, encode=encode)
        if segment_problem(fitted):
            return FittedName(name, refusal="; ".join(problems))
        notes.append(f"renamed from {name!r}: {'; '.join(problems)}")
    for limit, measure, what in _length_limits(len(parent), rules):
        if measure(fitted) <= limit:
            continue
        shorter = truncate_name(fitted, limit, measure) if truncate else None
        if shorter is None:
            return FittedName(name, refusal=f"too long for the destination: {what} allows "
                                            f"{limit} for this name, it has {measure(fitted)}")
        notes.append(f"truncated from {fitted!r} to fit the destination's {what}")
        fitted = shorter
    return FittedName(fitted, note="; ".join(notes) or None)
