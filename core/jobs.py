"""DryvIQ job JSON read into typed values (format: shared/reference/dryviq-jobs.md).

Jobs stay DryvIQ jobs: whatever the file holds is kept verbatim in `Job.definition` so it can be
written back, keys dryviq-tui does not apply become warnings, and every problem is reported at
once under its JSON path, so a user fixes a file in one pass instead of one error per run.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from core.connectors.base import InvalidPath
from core.paths import control_problem, is_utf8, name_problem, normalize_path, printable

TRANSFER_TYPES = ("copy", "sync", "move", "migrate", "publish", "taxonomy")

_TOP = "(top level)"  # the path of an error about the document as a whole
# Limits far above any real job (a few kilobytes, six or seven levels deep), low enough that
# a hostile file is refused before it costs memory, recursion or a slow int conversion.
MAX_JOB_CHARS = 1_000_000
MAX_DEPTH = 32
MAX_DIGITS = 100
_MISSING = object()

POLICY_CHOICES = {
    "conflict_resolution": ("copy", "latest", "source", "destination", "failure"),
    "failure_policy": ("continue", "halt"),
    "duplicate_names": ("rename", "warn"),
    "large_item": ("fail", "skip"),
    "empty_containers": ("create", "skip"),
}
_FLAGS = ("simulation_mode", "segment_transform", "encode_invalid_characters", "segment_truncate")
_DELETE_PROPAGATION = ("mirror", "ignore_source", "ignore_destination", "ignore_both")
_AUDIT_LEVELS = ("none", "trace", "debug", "info", "warn", "error")
# DryvIQ applies these; dryviq-tui keeps them for the round trip but does not (spec §3.3).
_KEPT_TRANSFER_KEYS = (
    "permissions", "account_map", "group_map", "metadata_import", "item_overwrite",
    "restricted_content", "lock_propagation", "batch_mode", "max_items_per_container",
    "preserve_owners", "timestamps", "tags", "rendition", "item_inspection_policy",
    "audit_level",
)
_ENDPOINT = 'an object such as {"connection": {"id": "…"}, "target": {"path": "/…"}}'
_METADATA_KEYS = ("description", "priority", "disabled", "id", "execution", "previous_execution")

SCHEDULE_MODES = ("manual", "ad-hoc", "auto")
_DAYS = (
    "everyday", "weekdays", "weekends",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)
_CLOCK = {"hr": 23, "min": 59, "sec": 59, "ms": 999}  # each part's highest value
# a schedule's durations: {"value": 30, "unit": "m"}
INTERVAL_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
                    "d": 86_400.0}
_INTERVAL_UNITS = tuple(INTERVAL_SECONDS)
# A schedule's dates and durations must fit a datetime (years up to 9999; a day spare for the
# machine's zone): a larger one, stored, would stop every command that shows when it runs.
LATEST_DATE = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
MIN_REPEAT = 60.0  # seconds: a shorter repeat_interval is raised to it (it would run back to back)

_RULE_TYPES = {
    "filter_extension": "extension", "filter_size": "size",
    "filter_date": "date", "filter_pattern": "pattern",
}
_DATE_TARGETS = ("created_on", "modified_on", "accessed_on", "last_touched", "all", "none")
_PATTERN_TARGETS = ("item", "container", "all", "none")
# "Within the last n months/years" uses fixed lengths: a filter needs no calendar precision.
_UNIT_SECONDS = {"day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400, "year": 365 * 86_400}


class JobError(ValueError):
    """Raised with every problem found (not just the first), so one edit can fix them all."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = [printable(error) for error in errors]  # they quote the file's text
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class Endpoint:
    """One side of a transfer: a connection (id or name, as written) and a folder in it."""

    connection: str
    path: str  # connector form: "/Drawings/A/" -> "Drawings/A", "/" -> ""


@dataclass(frozen=True)
class StopPolicy:
    """Stop the job after this many no-change, failed or total runs; None for no limit."""

    on_success: int | None
    on_failure: int | None
    on_execute: int | None


@dataclass(frozen=True)
class FilterRule:
    """One filter rule; `kind` says which of the other fields apply."""

    kind: str  # extension | size | date | pattern
    targets: str = "item"  # date: created_on|modified_on|…; pattern: item|container|all|none
    extensions: tuple[str, ...] = ()  # extension: case-folded, without the dot
    min_size: int | None = None  # size: bytes, inclusive
    max_size: int | None = None
    since: float | None = None  # date: epoch seconds, inclusive
    until: float | None = None
    within: float | None = None  # date: seconds before now, instead of `since`
    patterns: tuple[str, ...] = ()  # pattern: case-folded fnmatch patterns for the name

    def matches(self, name: str, is_dir: bool, size: int, mtime: float | None) -> bool:
        if self.kind == "pattern":
            applies = self.targets == "all" or self.targets == ("container" if is_dir else "item")
            folded = name.casefold()
            return applies and any(fnmatchcase(folded, pattern) for pattern in self.patterns)
        if is_dir:
            return False  # extension, size and date rules describe files
        if self.kind == "extension":
            folded = name.casefold()
            return any(folded.endswith("." + extension) for extension in self.extensions)
        if self.kind == "size":
            return (self.min_size is None or size >= self.min_size) and (
                self.max_size is None or size <= self.max_size
            )
        # Every date target but "none" is judged by the modification time: it is the only time
        # every platform gives. A file without one cannot be shown to be in range.
        if self.targets == "none" or mtime is None:
            return False
        since = self.since if self.within is None else time.time() - self.within
        return (since is None or mtime >= since) and (self.until is None or mtime <= self.until)


@dataclass(frozen=True)
class Filter:
    """Rules sharing one action; the filter matches an item when any of its rules does."""

    action: str  # include | exclude
    rules: tuple[FilterRule, ...]

    def matches(self, name: str, is_dir: bool, size: int, mtime: float | None) -> bool:
        return any(rule.matches(name, is_dir, size, mtime) for rule in self.rules)


@dataclass(frozen=True)
class Filters:
    """The filters of one side of a transfer."""

    filters: tuple[Filter, ...] = ()

    def admits(self, name: str, is_dir: bool, size: int, mtime: float | None) -> bool:
        """Whether the item takes part: exclude beats include; once there is an include filter
        a file must match one. Folders pass include filters, or nothing under them is reached."""
        excluded = any(
            f.matches(name, is_dir, size, mtime) for f in self.filters if f.action == "exclude"
        )
        if excluded:
            return False
        includes = [f for f in self.filters if f.action == "include"]
        return is_dir or not includes or any(f.matches(name, is_dir, size, mtime) for f in includes)


@dataclass(frozen=True)
class Transfer:
    """What to copy where, and the policies for it (spec §3); defaults are DryvIQ's."""

    transfer_type: str
    source: Endpoint
    destination: Endpoint
    simulation_mode: bool = False
    conflict_resolution: str = "copy"
    # as written; () when the job leaves it to the type (see `propagation`)
    delete_propagation: tuple[str, ...] = ()
    failure_policy: str = "continue"
    duplicate_names: str = "rename"
    large_item: str = "fail"
    segment_transform: bool = True
    encode_invalid_characters: bool = False
    segment_truncate: bool = False
    empty_containers: str = "create"
    parallel_writes: int = 2
    source_filters: Filters = Filters()
    destination_filters: Filters = Filters()
    # dryviq-tui's own keys: the delete guard (percent of either side one run may delete) and
    # whether deletes go to a trash (Procore's Recycle Bin, `.dryviq-trash/` elsewhere)
    max_delete: int = 50
    trash: bool = True
    versions: str = "latest"  # "all" with versioning {"preserve": "native", "select": "all"}
    upload_bytes_per_second: int | None = None  # performance.upload/download throttles
    download_bytes_per_second: int | None = None

    @property
    def propagation(self) -> tuple[str, ...]:
        """The delete propagation in force: as written, else the type's default (DryvIQ names
        ignore_source for copy; a two-way sync mirrors deletes, guarded by max_delete)."""
        if self.delete_propagation:
            return self.delete_propagation
        return ("mirror",) if self.transfer_type == "sync" else ("ignore_source",)


@dataclass(frozen=True)
class Job:
    """A validated job; `definition` is the job object as given, for writing it back."""

    name: str
    kind: str
    transfer: Transfer
    schedule_mode: str = "manual"
    stop_policy: StopPolicy = StopPolicy(None, None, None)
    category: str = "Default"
    status: str | None = None
    definition: dict[str, Any] = field(default_factory=dict, hash=False)
    warnings: tuple[str, ...] = ()


# Converters turn one JSON value into a typed one, or raise _Invalid saying what was expected.
_Convert = Callable[[Any], Any]


class _Invalid(ValueError):
    pass


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array" if value else "an empty array"
    return json.dumps(value)


def _expected(what: str, value: Any) -> _Invalid:
    return _Invalid(f"expected {what}, got {_show(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise _expected("a non-empty string", value)


def _name(value: Any) -> str:
    """A job or category name: printed in tables and typed on command lines."""
    name = _string(value)
    problem = name_problem(name)
    if problem:
        raise _Invalid(problem)
    return name


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _expected("true or false", value)


def _number(value: Any) -> float:
    if (_is_int(value) or isinstance(value, float)) and value >= 0:
        return value
    raise _expected("a non-negative number", value)


def _integer(low: int, high: int | None = None) -> _Convert:
    if high is not None:
        what = f"an integer from {low} to {high}"
    else:
        what = "a non-negative integer" if low == 0 else f"an integer of at least {low}"

    def convert(value: Any) -> int:
        if _is_int(value) and low <= value and (high is None or value <= high):
            return value
        raise _expected(what, value)

    return convert


def _one_of(*allowed: str) -> _Convert:
    def convert(value: Any) -> str:
        if isinstance(value, str) and value in allowed:
            return value
        raise _Invalid(f"{_show(value)} is not one of {', '.join(allowed)}")

    return convert


def _identifier(value: Any) -> str:
    if _is_int(value):
        return str(value)
    if isinstance(value, str) and value.strip():
        return _name(value)
    raise _expected("a non-empty string or an integer", value)


def _kind(value: Any) -> str:
    if value == "folder_mapping":
        raise _Invalid("folder_mapping jobs are not supported yet; only transfer jobs are")
    return _one_of("transfer")(value)


def _transfer_type(value: Any) -> str:
    return "sync" if value == "default" else _one_of(*TRANSFER_TYPES)(value)


def _target_path(value: Any) -> str:
    if not isinstance(value, str):
        raise _expected('a path such as "/Drawings"', value)
    try:
        return normalize_path(value)
    except InvalidPath as exc:
        raise _Invalid(str(exc)) from exc


def _moment(value: Any) -> float:
    """Epoch seconds or ISO 8601 (the spec leaves the encoding open); no zone means UTC."""
    if _is_int(value) or isinstance(value, float):
        return float(value)
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _expected("epoch seconds or an ISO 8601 date", value) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _extension(value: Any) -> str:
    extension = value.strip().removeprefix(".").casefold() if isinstance(value, str) else ""
    if extension:
        return extension
    raise _expected('an extension such as "pdf"', value)


def _patterns(value: Any) -> tuple[str, ...]:
    """"*.txt; *.TMP" -> ("*.txt", "*.tmp"): names are matched case-insensitively."""
    parts = value.split(";") if isinstance(value, str) else []
    patterns = tuple(part.strip().casefold() for part in parts if part.strip())
    if patterns:
        return patterns
    raise _expected('patterns such as "*.txt;*.tmp"', value)


class _Log:
    """The problems found so far, and every object read, to report unread keys at the end."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.readers: list[_Reader] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def convert(self, path: str, value: Any, convert: _Convert, default: Any = None) -> Any:
        try:
            return convert(value)
        except _Invalid as exc:
            self.error(path, str(exc))
            return default

    def warn_unread(self) -> None:
        for reader in self.readers:
            for key in reader.data:
                if key not in reader.read:
                    self.warnings.append(f"{reader.at(key)}: unknown key, kept but not used")


class _Reader:
    """One JSON object under validation: it knows its path, so every problem lands where it
    is, and which keys were read, so the rest can be reported as unknown."""

    def __init__(self, data: dict[str, Any], path: str, log: _Log) -> None:
        self.data, self.path, self.log = data, path, log
        self.read: set[str] = set()
        log.readers.append(self)

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def error(self, message: str, key: str | None = None) -> None:
        """Log a problem with `key` (marking it read), or with this object as a whole."""
        if key is None:
            self.log.error(self.path or _TOP, message)
        else:
            self.read.add(key)
            self.log.error(self.at(key), message)

    def _fetch(self, key: str, required: str | None) -> Any:
        self.read.add(key)
        value = self.data.get(key, _MISSING)
        if value is _MISSING and required:
            self.log.error(self.at(key), f"required, {required}")
        return value

    def get(
        self, key: str, convert: _Convert, default: Any = None, *, required: str | None = None
    ) -> Any:
        """The converted value, or `default` when it is absent or wrong (wrong is logged)."""
        value = self._fetch(key, required)
        if value is _MISSING:
            return default
        return self.log.convert(self.at(key), value, convert, default)

    def many(
        self, key: str, convert: _Convert, what: str, *, single: bool = False,
        required: bool = False,
    ) -> tuple[Any, ...] | None:
        """A non-empty array, each value checked at its index; `single` also takes a bare value."""
        value = self._fetch(key, what if required else None)
        path = self.at(key)
        if value is _MISSING:
            return None
        if single and not isinstance(value, list):
            value = self.log.convert(path, value, convert)
            return None if value is None else (value,)
        if not isinstance(value, list) or not value:
            self.log.error(path, f"expected {what}, got {_show(value)}")
            return None
        items = tuple(self.log.convert(f"{path}[{i}]", v, convert) for i, v in enumerate(value))
        return None if None in items else items

    def child(self, key: str, what: str = "an object", *, required: bool = False) -> _Reader | None:
        value = self._fetch(key, what if required else None)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            self.log.error(self.at(key), f"expected {what}, got {_show(value)}")
            return None
        return _Reader(value, self.at(key), self.log)

    def children(self, key: str, what: str, *, required: bool = False) -> list[_Reader]:
        """The objects of an array; `required` also refuses an empty one."""
        value = self._fetch(key, what if required else None)
        path = self.at(key)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or (required and not value):
            self.log.error(path, f"expected {what}, got {_show(value)}")
            return []
        readers = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                readers.append(_Reader(item, f"{path}[{i}]", self.log))
            else:
                self.log.error(f"{path}[{i}]", f"expected an object, got {_show(item)}")
        return readers

    def kept(self, *keys: str) -> None:
        """Keys DryvIQ applies and dryviq-tui does not: kept, with a warning saying so."""
        for key in keys:
            if key in self.data:
                self.read.add(key)
                self.log.warnings.append(
                    f"{self.at(key)}: accepted and kept, not applied by dryviq-tui"
                )

    def accept(self, *keys: str) -> None:
        """Keys that are plain metadata: kept without a word."""
        self.read.update(keys)


# job statuses a DryvIQ server reports (SDK): a job exported from one may carry them
_SERVER_STATUSES = ("awaiting-user", "cancel", "cancelling", "complete", "deleted", "failed",
                    "idle", "not-complete", "resume", "running", "success", "warn",
                    "failed-to-start")


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The values that were given, so the dataclass defaults apply to the rest."""
    return {key: value for key, value in values.items() if value is not None}


def _json_path(parts: list[str | int]) -> str:
    """["transfer", "filter", "source", 0] -> "transfer.filter.source[0]", as _Reader says it."""
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}" if path else part
    return path or _TOP


_JSON_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'  # escapes included
# A string or one structural character; a lone '"' opens a broken string.
_JSON_TOKEN = re.compile(_JSON_STRING + r'|[][{},:"]')
_INNERMOST = re.compile(r"\[\]|\{\}")


def _too_deep(text: str) -> str | None:
    """The JSON path where `text` nests deeper than MAX_DEPTH, found without parsing it (the
    parser recurses, and a deep enough document ends it in a RecursionError); None when it
    does not, or when the text is broken in a way the parser reports better."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    brackets = re.sub(r"[^][{}]", "", re.sub(_JSON_STRING, "", text))
    for _ in range(MAX_DEPTH):  # each pass takes away one level, quickly
        brackets = _INNERMOST.sub("", brackets)
    if not brackets:
        return None
    # deeper, or unbalanced: find where, token by token
    parts: list[str | int] = []  # each open container's current key or index
    opened: list[str] = []
    previous = ""
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            if len(opened) == MAX_DEPTH:
                return _json_path(parts)
            opened.append(token)
            parts.append(0 if token == "[" else "")
        elif token in ("]", "}"):
            if not opened:
                return None
            opened.pop()
            parts.pop()
        elif token == "," and opened and opened[-1] == "[":
            parts[-1] = int(parts[-1]) + 1
        elif token == '"':
            return None
        elif token[0] == '"' and opened and opened[-1] == "{" and previous in ("{", ","):
            try:
                parts[-1] = json.loads(token)
            except ValueError:
                return None
        previous = token
    return None


class _Unusable:
    """A value json reads but a job cannot hold: a number too long to convert, or NaN and
    Infinity (not JSON at all); kept in place so the walk can say where it is."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _integer_text(digits: str) -> int | _Unusable:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        return _Unusable(f"a number of {len(digits.lstrip('-')):,} digits is too long "
                         f"(at most {MAX_DIGITS})")
    return int(digits)


def _constant(name: str) -> _Unusable:
    return _Unusable(f"{name} is not a JSON value")


# Where a value sits, built as the walk goes down without copying: (parent's link, key or index)
_Link = tuple[Any, str | int] | None


def _path_of(link: _Link) -> str:
    parts: list[str | int] = []
    while link is not None:
        link, part = link
        parts.append(part)
    return _json_path(parts[::-1])


def _hostile_values(data: Any, duplicates: dict[int, list[str]]) -> list[str]:
    """Where `data` holds what json accepts and a job cannot: a key given twice in one object
    (json keeps the last without a word), a lone surrogate (SQLite cannot store it), a
    control character, an unusable number."""
    errors = []
    checked = (str, list, dict, _Unusable)  # numbers, booleans and null are fine as read
    pending: list[tuple[Any, _Link]] = [(data, None)]
    while pending:
        value, link = pending.pop()
        if isinstance(value, _Unusable):
            errors.append(f"{_path_of(link)}: {value.problem}")
        elif isinstance(value, str) and not is_utf8(value):
            errors.append(f"{_path_of(link)}: not valid Unicode text (a lone surrogate "
                          "such as \\ud800)")
        elif isinstance(value, str) and (problem := control_problem(value)):
            # a job's values are names, paths, patterns and codes, which never hold one; shown
            # raw (the builder's fields, a terminal) they could drive the terminal
            errors.append(f"{_path_of(link)}: {problem}")
        elif isinstance(value, list):
            pending.extend((item, (link, i)) for i, item in enumerate(value)
                           if isinstance(item, checked))
        elif isinstance(value, dict):
            for key in duplicates.get(id(value), []):
                errors.append(f"{_path_of((link, key))}: given more than once in one "
                              "object; keep one")
            for key, item in value.items():
                if not is_utf8(key):
                    errors.append(f"{_path_of(link)}: a key is not valid Unicode text (a "
                                  "lone surrogate such as \\ud800)")
                if isinstance(item, checked):
                    pending.append((item, (link, key)))
    return sorted(errors)


def job_object(data: Any) -> tuple[Any, str]:
    """The job object inside parsed job JSON, and its JSON path: the API's
    {"type": "job", "job": …} envelope's "job", else `data` itself (a bare job object)."""
    if isinstance(data, dict) and data.get("type") == "job" and "job" in data:
        return data["job"], "job"
    return data, _TOP


def load_job_json(text: str) -> dict[str, Any]:
    """The job object of DryvIQ job JSON `text` (a bare job object or the API's
    {"type": "job", "job": …} envelope). Raises JobError, naming the JSON path, for text that
    is not JSON, too large or too deep, or that holds what json accepts but a job cannot
    (duplicate keys, lone surrogates, numbers too long to read)."""
    if len(text) > MAX_JOB_CHARS:
        raise JobError([f"{_TOP}: the job JSON has {len(text):,} characters; a job file may "
                        f"have at most {MAX_JOB_CHARS:,}"])
    deep = _too_deep(text)
    if deep:
        raise JobError([f"{deep}: nested deeper than {MAX_DEPTH} levels; a job is never that "
                        "deep"])
    duplicates: dict[int, list[str]] = {}

    def pairs_to_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data = dict(pairs)
        if len(data) < len(pairs):
            counts = Counter(key for key, _ in pairs)
            duplicates[id(data)] = sorted(key for key, count in counts.items() if count > 1)
        return data

    try:
        data = json.loads(text, object_pairs_hook=pairs_to_object,
                          parse_int=_integer_text, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise JobError(
            [f"job JSON is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]
        ) from exc
    data, where = job_object(data)
    if not isinstance(data, dict):
        raise JobError([f"{where}: expected a job object, got {_show(data)}"])
    errors = _hostile_values(data, duplicates)
    if errors:
        raise JobError(errors)
    return data


def parse_job(text: str) -> Job:
    """Read DryvIQ job JSON: a bare job object or the API's {"type": "job", "job": …} envelope.
    Error paths are relative to the job object, whichever form it came in."""
    data = load_job_json(text)
    log = _Log()
    top = _Reader(data, "", log)
    name = top.get("name", _name, required="a non-empty string")
    kind = top.get("kind", _kind, "transfer")
    transfer = _transfer(top.child("transfer", "an object with source and destination",
                                   required=True))
    schedule = top.child("schedule")
    schedule_mode = _schedule(schedule) if schedule else None
    status = top.get("status", _one_of("start", "paused", *_SERVER_STATUSES))
    if status in _SERVER_STATUSES:
        log.warnings.append(f'status: "{status}" reports a job on a DryvIQ server; kept, not '
                            "applied by dryviq-tui")
        status = None
    if status == "paused" and schedule_mode != "auto":
        log.error("status", '"paused" holds an auto job until its first manual run; it needs '
                            f'schedule.mode auto, not {schedule_mode or "manual"}')
    stop_policy = top.child("stop_policy")
    category = top.child("category", 'an object such as {"name": "Reports"} or {"id": 3}')
    options = {
        "schedule_mode": schedule_mode,
        "stop_policy": _stop_policy(stop_policy) if stop_policy else None,
        "category": _category(category) if category else None,
        "status": status,
    }
    top.accept(*_METADATA_KEYS)
    log.warn_unread()
    if log.errors or name is None or transfer is None:
        raise JobError(log.errors)
    return Job(
        name, kind, transfer, **_given(options),
        definition=data,
        warnings=tuple(map(printable, log.warnings)),  # they quote the file's keys
    )


def _transfer(t: _Reader | None) -> Transfer | None:
    if t is None:
        return None
    transfer_type = t.get("transfer_type", _transfer_type, "sync")
    source = _endpoint(t.child("source", _ENDPOINT, required=True))
    destination = _endpoint(t.child("destination", _ENDPOINT, required=True))
    options = {key: t.get(key, _one_of(*values)) for key, values in POLICY_CHOICES.items()}
    options.update({key: t.get(key, _boolean) for key in _FLAGS})
    options["delete_propagation"] = t.many(
        "delete_propagation", _one_of(*_DELETE_PROPAGATION),
        f"one of {', '.join(_DELETE_PROPAGATION)}, or an array of them", single=True,
    )
    performance = t.child("performance")
    if performance:
        options["parallel_writes"] = _parallel_writes(performance)
        for direction in ("upload", "download"):
            throttle = performance.child(direction,
                                         'an object such as {"bytes_per_second": 1048576}')
            if throttle:
                options[f"{direction}_bytes_per_second"] = throttle.get(
                    "bytes_per_second", _integer(1))
                throttle.kept("window")
    filters = t.child("filter", "an object with source and destination filter lists")
    if filters:
        options["source_filters"] = _filters(filters, "source")
        options["destination_filters"] = _filters(filters, "destination")
    versioning = t.child("versioning", 'an object such as {"preserve": "native", "select": "all"}')
    if versioning:
        preserve = versioning.get("preserve", _one_of("none", "native"))
        select = versioning.get("select", _one_of("all", "latest"))
        if preserve != "none" and select == "all":
            options["versions"] = "all"
    options["max_delete"] = t.get("max_delete", _integer(0, 100))
    options["trash"] = t.get("trash", _boolean)
    t.get("audit_level", _one_of(*_AUDIT_LEVELS))
    t.kept(*_KEPT_TRANSFER_KEYS)
    if source is None or destination is None:
        return None
    return Transfer(transfer_type, source, destination, **_given(options))


def _endpoint(side: _Reader | None) -> Endpoint | None:
    if side is None:
        return None
    side.kept("impersonate_as")
    connection = side.child("connection", 'an object with an "id"', required=True)
    connection_id = connection and connection.get(
        "id", _identifier, required="the id or name of a connection"
    )
    target = side.child("target", 'an object with a "path"', required=True)
    if target is None:
        return None
    others = [key for key in ("item", "uri") if target.has(key)]
    if target.has("path"):
        target.kept(*others)  # a path says it all; DryvIQ echoes the item id alongside it
    else:
        for key in others:
            target.error("only target.path is supported", key)
    path = target.get("path", _target_path, required=None if others else 'a path such as "/"')
    if connection_id is None or path is None:
        return None
    return Endpoint(connection_id, path)


def _parallel_writes(performance: _Reader) -> int | None:
    """performance.parallel_writes: {"requested": n, "max": m}, or just n."""
    parallel = _integer(1, 64)
    if not isinstance(performance.data.get("parallel_writes"), dict):
        requested = performance.get("parallel_writes", parallel)
    elif writes := performance.child("parallel_writes"):
        requested = writes.get("requested", parallel)
        writes.get("max", _integer(1))
        writes.kept("max")
    performance.kept("retries")
    return requested


def _schedule(schedule: _Reader) -> str | None:
    """Check the whole schedule and return its mode; core.schedule.Schedule.of reads the
    checked keys into a typed schedule."""
    schedule.many("days", _one_of(*_DAYS), "a day name or an array of them", single=True)
    start, end = (schedule.get(key, _date) for key in ("start_date", "end_date"))
    if start is not None and end is not None and end <= start:
        schedule.error(f"end_date ({end}) is not after start_date ({start})", "end_date")
    for key in ("start_window", "end_window", "run_at"):
        clock = schedule.child(key, 'an object such as {"hr": 19, "min": 0}')
        if clock:
            for part, highest in _CLOCK.items():
                clock.get(part, _integer(0, highest))
    for key in ("repeat_interval", "max_execution"):
        interval = schedule.child(key, 'an object such as {"value": 30, "unit": "m"}')
        if interval:
            _interval(interval, positive=key == "repeat_interval")
    schedule.get("repeat_count", _integer(0))
    return schedule.get("mode", _one_of(*SCHEDULE_MODES))


def _date(value: Any) -> float:
    """A schedule's date: epoch seconds a datetime can hold."""
    number = _number(value)
    if not number <= LATEST_DATE:  # NaN and infinity too
        raise _Invalid(f"{_show(value)} is not a date (epoch seconds up to the year 9999)")
    return number


def _interval(interval: _Reader, *, positive: bool) -> None:
    """{"value": 30, "unit": "m"}: a duration a datetime can hold; a repeat_interval is
    positive, and one under MIN_REPEAT is raised to it with a warning."""
    value = interval.get("value", _number, required="a non-negative number")
    unit = interval.get("unit", _one_of(*_INTERVAL_UNITS),
                        required=f"one of {', '.join(_INTERVAL_UNITS)}")
    if value is None or unit is None:
        return
    seconds = value * INTERVAL_SECONDS[unit]
    if not seconds <= LATEST_DATE:
        interval.error(f"{_show(value)} {unit} is too long (at most "
                       f"{LATEST_DATE // 86_400:,.0f} d)", "value")
    elif positive and seconds <= 0:
        interval.error("must be more than 0 (0 would run the job back to back)", "value")
    elif positive and seconds < MIN_REPEAT:
        interval.log.warnings.append(f"{interval.path}: {_show(value)} {unit} is under "
                                     f"{MIN_REPEAT:.0f} s; the job repeats every "
                                     f"{MIN_REPEAT:.0f} s")


def _stop_policy(policy: _Reader) -> StopPolicy:
    counts = [policy.get(key, _integer(0)) for key in ("on_success", "on_failure", "on_execute")]
    # The SDK's own keys: a policy name and running counters, accepted as they come.
    policy.get("policy", _one_of("never", "on_success", "on_failure"))
    for key in ("completions", "failures", "executions"):
        policy.get(key, _integer(0))
    return StopPolicy(*counts)


def _category(category: _Reader) -> str | None:
    """The category's name, kept verbatim ("Report {Name}" is not expanded), else its id."""
    name = category.get("name", _name)
    identifier = category.get("id", _identifier)
    if not (category.has("name") or category.has("id")):
        category.error('expected {"name": …} or {"id": …}')
    return name or identifier


def _filters(filters: _Reader, side: str) -> Filters:
    parsed = []
    for item in filters.children(side, "an array of filters"):
        action = item.get("action", _one_of("include", "exclude"), "exclude")
        item.get("type", _one_of("filter_rule"))
        rules = [_rule(rule) for rule in item.children("rules", "an array of rules", required=True)]
        parsed.append(Filter(action, tuple(rule for rule in rules if rule)))
    return Filters(tuple(parsed))


def _rule(rule: _Reader) -> FilterRule | None:
    names = (*_RULE_TYPES, *_RULE_TYPES.values())
    kind = rule.get("type", _one_of(*names), required=f"one of {', '.join(names)}")
    return _RULE_READERS[_RULE_TYPES.get(kind, kind)](rule) if kind else None


def _extension_rule(rule: _Reader) -> FilterRule | None:
    extensions = rule.many("extensions", _extension, 'an array such as ["pdf", "dwg"]',
                           required=True)
    return FilterRule("extension", extensions=extensions) if extensions else None


def _size_rule(rule: _Reader) -> FilterRule:
    low, high = rule.get("min", _integer(0)), rule.get("max", _integer(0))
    if not (rule.has("min") or rule.has("max")):
        rule.error("needs min, max or both, in bytes")
    elif low is not None and high is not None and low > high:
        rule.error(f"min ({low}) is larger than max ({high})")
    return FilterRule("size", min_size=low, max_size=high)


def _date_rule(rule: _Reader) -> FilterRule | None:
    targets = rule.get("targets", _one_of(*_DATE_TARGETS), "modified_on")
    span = rule.child("range", 'an object such as {"type": "day", "value": 7}', required=True)
    units = ("range", *_UNIT_SECONDS)
    kind = span and span.get("type", _one_of(*units), required=f"one of {', '.join(units)}")
    if not span or not kind:
        return None
    if kind != "range":
        count = span.get("value", _integer(1), required=f"the number of {kind}s")
        return FilterRule("date", targets, within=count * _UNIT_SECONDS[kind]) if count else None
    since, until = span.get("from", _moment), span.get("to", _moment)
    if not (span.has("from") or span.has("to")):
        span.error("needs from, to or both (epoch seconds or ISO 8601)")
    elif since is not None and until is not None and since > until:
        span.error("from is later than to")
    return FilterRule("date", targets, since=since, until=until)


def _pattern_rule(rule: _Reader) -> FilterRule | None:
    patterns = rule.get("text", _patterns, required='patterns such as "*.txt;*.tmp"')
    targets = rule.get("targets", _one_of(*_PATTERN_TARGETS), "item")
    return FilterRule("pattern", targets, patterns=patterns) if patterns else None


_RULE_READERS: dict[str, Callable[[_Reader], FilterRule | None]] = {
    "extension": _extension_rule,
    "size": _size_rule,
    "date": _date_rule,
    "pattern": _pattern_rule,
}
