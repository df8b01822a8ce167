"""The job builder: fields for the main parts of a DryvIQ job, the job JSON they make (shown
live, exactly what Save stores) and core's verdict on it, each problem beside its field.

The form edits a document rather than replacing it: a file imported here keeps every key the
form has no field for (filters, versioning, ...), so a DryvIQ job round-trips unchanged.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from core.explain import DOWNLOAD, UPLOAD, explain, values
from core.home import JobBusy
from core.job_store import update_job
from core.jobs import (
    POLICY_CHOICES,
    SCHEDULE_MODES,
    TRANSFER_TYPES,
    JobError,
    load_job_json,
    parse_job,
)
from core.paths import printable, printable_lines
from core.state import JobRecord
from tui.screens import AppScreen
from tui.service import AppService, Created, read_job_file
from tui.widgets.choice import TypeToChoose
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.format import count, plain

Endpoint = tuple[str, str]  # (connection name, folder path)


@dataclass(frozen=True)
class FormField:
    """One field of the form and where its value lives in the job JSON."""

    name: str
    label: str
    path: str  # dotted JSON path: the value is written there, and core reports errors there
    kind: str = "text"  # text | number | choice | boolean | connection | flag
    choices: tuple[str, ...] = ()
    default: str | bool | None = None  # for a new job
    placeholder: str = ""
    required: bool = False  # kept in place when empty, so core names the missing key itself
    nested: str | None = None  # the key holding the value when the JSON has an object there
    beside: tuple[tuple[str, Any], ...] = ()  # keys set with a value when the JSON lacks them

    @property
    def widget_id(self) -> str:
        return f"field-{self.name}"


FIELDS = (
    FormField("name", "Name", "name", placeholder="e.g. Tower A drawings to the share",
              required=True),
    FormField("transfer_type", "Transfer type", "transfer.transfer_type", "choice",
              TRANSFER_TYPES, default="copy"),
    FormField("source_connection", "Source", "transfer.source.connection.id", "connection",
              required=True),
    FormField("source_path", "Source folder", "transfer.source.target.path",
              placeholder="e.g. /Drawings", required=True),
    FormField("destination_connection", "Destination", "transfer.destination.connection.id",
              "connection", required=True),
    FormField("destination_path", "Destination folder", "transfer.destination.target.path",
              placeholder="e.g. /Projects/Tower A", required=True),
    FormField("simulation_mode", "Simulation", "transfer.simulation_mode", "flag",
              default=False),
    FormField("conflict_resolution", "Conflicts", "transfer.conflict_resolution", "choice",
              POLICY_CHOICES["conflict_resolution"], default="copy"),
    FormField("delete_propagation", "Deletes", "transfer.delete_propagation", "choice",
              values("delete_propagation")),
    FormField("failure_policy", "On failure", "transfer.failure_policy", "choice",
              POLICY_CHOICES["failure_policy"]),
    FormField("duplicate_names", "Duplicate names", "transfer.duplicate_names", "choice",
              POLICY_CHOICES["duplicate_names"]),
    FormField("large_item", "Too large", "transfer.large_item", "choice",
              POLICY_CHOICES["large_item"]),
    FormField("empty_containers", "Empty folders", "transfer.empty_containers", "choice",
              POLICY_CHOICES["empty_containers"]),
    FormField("segment_transform", "Fix bad names", "transfer.segment_transform", "flag",
              default=True),
    FormField("encode_invalid_characters", "Encode as hex", "transfer.encode_invalid_characters",
              "boolean"),
    FormField("segment_truncate", "Truncate names", "transfer.segment_truncate", "boolean"),
    FormField("versions", "Versions", "transfer.versioning.select", "choice",
              values("versioning.select"), beside=(("preserve", "native"),)),
    FormField("max_delete", "Delete guard %", "transfer.max_delete", "number",
              placeholder="empty: 50 (0 to 100)"),
    FormField("trash", "Trash", "transfer.trash", "boolean"),
    FormField("parallel_writes", "Parallel writes", "transfer.performance.parallel_writes",
              "number", placeholder="empty: 2 (1 to 64)", nested="requested"),
    FormField("upload_limit", "Upload bytes/s", f"transfer.{UPLOAD}", "number",
              placeholder="empty: no limit"),
    FormField("download_limit", "Download bytes/s", f"transfer.{DOWNLOAD}", "number",
              placeholder="empty: no limit"),
    FormField("schedule_mode", "Schedule", "schedule.mode", "choice", SCHEDULE_MODES,
              default="manual"),
    FormField("on_success", "Stop: successes", "stop_policy.on_success", "number",
              placeholder="empty: no limit"),
    FormField("on_failure", "Stop: failures", "stop_policy.on_failure", "number",
              placeholder="empty: no limit"),
    FormField("on_execute", "Stop: runs", "stop_policy.on_execute", "number",
              placeholder="empty: no limit"),
    FormField("category", "Category", "category.name", placeholder="empty: Default"),
)
FLAG_LABELS = {"simulation_mode": "plan only, change nothing",
               "segment_transform": "rename what the destination refuses"}
# a section title before the field it names
SECTIONS = {"conflict_resolution": "Policies", "max_delete": "Deletes",
            "parallel_writes": "Performance", "schedule_mode": "Schedule"}
BOOLEANS = {"true": True, "false": False}
TYPE_FIELD = next(field for field in FIELDS if field.name == "transfer_type")
_ABSENT = object()  # a key the document does not have


def explanation(field: FormField, value: Any, transfer_type: str | None) -> str:
    """core's one line for the field's value, for transfer keys; "" for the others."""
    if not field.path.startswith("transfer.") or field.name == "parallel_writes":
        return ""
    return explain(field.path.removeprefix("transfer."), value, transfer_type=transfer_type)


def choices(field: FormField) -> list[tuple[str | Text, str]]:
    """A choice field's (label, value) options."""
    if field.kind == "boolean":
        return [(name, name) for name in BOOLEANS]
    return [(c, c) for c in field.choices]


def _skeleton() -> dict[str, Any]:
    """The fields' keys in a readable order, every value absent."""
    skeleton: dict[str, Any] = {"name": _ABSENT, "kind": "transfer"}
    for field in FIELDS:
        *parents, key = field.path.split(".")
        node = skeleton
        for part in parents:
            node = node.setdefault(part, {})
        for beside, _ in field.beside:
            node.setdefault(beside, _ABSENT)
        node.setdefault(key, _ABSENT)
    return skeleton


def _merged(skeleton: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with the skeleton's order first and its own other keys after."""
    out: dict[str, Any] = {}
    for key, value in skeleton.items():
        given = base.get(key, _ABSENT)
        if isinstance(value, dict) and isinstance(given, dict):
            out[key] = _merged(value, given)
        else:
            out[key] = value if given is _ABSENT else copy.deepcopy(given)
    out.update({k: copy.deepcopy(v) for k, v in base.items() if k not in out})
    return out


def _put(document: dict[str, Any], field: FormField, value: Any) -> None:
    *parents, key = field.path.split(".")
    node = document
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if field.nested and isinstance(node.get(key), dict):
        node, key = node[key], field.nested
    given = node.get(key)
    if isinstance(given, list) and _listed(given) == value:
        return  # an array the field shows as one choice: kept as the file has it
    node[key] = _ABSENT if value is None else value
    if value is not None:
        node.update({k: v for k, v in field.beside if node.get(k, _ABSENT) is _ABSENT})


def _listed(values: list[Any]) -> str:
    """An array of choices as one value (delete_propagation may be ["ignore_destination"])."""
    return ", ".join(map(str, values))


def _prune(node: dict[str, Any], keep: frozenset[str], path: str = "") -> dict[str, Any]:
    """Drop absent values and emptied objects, except along required fields' paths."""
    out = {}
    for key, value in node.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            value = _prune(value, keep, where)
            if not value and where not in keep:
                continue
        if value is not _ABSENT:
            out[key] = value
    return out


_KEEP = frozenset(".".join(f.path.split(".")[:i]) for f in FIELDS if f.required
                  for i in range(1, f.path.count(".") + 1))


def job_document(base: Mapping[str, Any], values: Mapping[FormField, Any]) -> dict[str, Any]:
    """The job JSON object the form stands for: `base` (an imported job, or nothing) with each
    field's value set, a None value meaning "leave the key out"."""
    document = _merged(_skeleton(), base)
    for field, value in values.items():
        _put(document, field, value)
    return _prune(document, _KEEP)


def field_value(document: Mapping[str, Any], field: FormField) -> Any:
    """The value a field shows for `document` (None when it has none)."""
    node: Any = document
    for part in field.path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if field.nested and isinstance(node, dict):
        node = node.get(field.nested)
    if isinstance(node, list) and field.kind == "choice":
        return _listed(node)
    return node


def field_of(error_path: str) -> FormField | None:
    """The field a core error belongs to: the one at its path, below it, or above it."""
    for field in FIELDS:
        for outer, inner in ((field.path, error_path), (error_path, field.path)):
            if inner == outer or inner.startswith((outer + ".", outer + "[")):
                return field
    return None


def load_job_document(path: str) -> dict[str, Any]:
    """A job file's JSON object (the API's {"type": "job", "job": …} envelope unwrapped), read
    by core's rules: a hostile file is refused here as `jobs create` refuses it."""
    return load_job_json(read_job_file(path))


class JobBuilderScreen(AppScreen[Created | None]):
    """Builds a job from fields or an imported file, or edits a stored one (`existing`);
    dismisses with the saved job. Esc asks before it throws edits away."""

    SUB_TITLE = "New job"
    TAKES_TYPING = True  # a form: no one-letter key of the app acts while it is open
    DEFAULT_CSS = """
    JobBuilderScreen .explain {
        height: auto;
        color: $text-muted;
        padding-left: 2;
    }
    JobBuilderScreen Input > .input--placeholder {
        color: $text-disabled;
        text-style: italic;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="save-job", priority=True),
        Binding("escape", "close", "Cancel", id="close-builder"),
    ]

    def __init__(self, service: AppService, *, source: Endpoint | None = None,
                 destination: Endpoint | None = None, existing: JobRecord | None = None,
                 ) -> None:
        super().__init__(service)
        self.existing = existing
        self._base: dict[str, Any] = {}
        if existing is not None:
            self.sub_title = f"Edit job {printable(existing.name)}"
            self._base = load_job_json(existing.definition)
        self._picks = {"source": source, "destination": destination}
        self._options: dict[str, list[tuple[str | Text, str]]] = {}
        self._connection_names: dict[str, str] = {}  # id -> name
        self._submitted = False  # after a Save, empty required fields are called out too
        self._saved_text = ""  # the JSON as opened: anything else is an edit Esc asks about
        self.text = ""  # the job JSON Save would store

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="builder-body"):
            with VerticalScroll(id="builder-form"):
                yield Static("Import a DryvIQ job JSON file", classes="section")
                with Horizontal(classes="field-row"):
                    yield Input(placeholder="path of a job file", id="builder-import-path",
                                compact=True)
                    yield Button("Load", id="builder-load", compact=True)
                yield Static(id="builder-import-errors", classes="field-error", markup=False)
                yield Static("Job", classes="section")
                for field in FIELDS:
                    if field.name in SECTIONS:
                        yield Static(SECTIONS[field.name], classes="section")
                    with Horizontal(classes="field-row"):
                        yield Label(field.label, classes="field-label")
                        yield self._widget(field)
                    yield Static(id=f"explain-{field.name}", classes="explain", markup=False)
                    yield Static(id=f"error-{field.name}", classes="field-error", markup=False)
                with Horizontal(id="builder-buttons"):
                    yield Button("Save", id="builder-save", variant="primary", compact=True)
                    yield Button("Cancel", id="builder-cancel", compact=True)
            with Vertical(id="builder-side"):
                yield Static("Job JSON to save", classes="section")
                yield Static(id="builder-errors", classes="field-error", markup=False)
                with VerticalScroll(id="builder-json-scroll"):
                    yield Static(id="builder-json")

    @staticmethod
    def _widget(field: FormField) -> Widget:
        if field.kind == "flag":
            return Checkbox(FLAG_LABELS.get(field.name, ""), value=bool(field.default),
                            id=field.widget_id, compact=True)
        if field.kind in ("choice", "boolean", "connection"):
            return TypeToChoose(choices(field), prompt="(not set)",
                          value=field.default or Select.NULL, id=field.widget_id,
                          compact=True)
        return Input(placeholder=field.placeholder, id=field.widget_id, compact=True)

    async def on_mount(self) -> None:
        connections = [c for c, _ in await self.service.connections()]
        self._connection_names = {c.id: c.name for c in connections}
        names = [(plain(c.name), c.name) for c in connections]
        for field in FIELDS:
            if field.kind == "connection":
                self._set_options(field, names)
        picks = {}
        for side, pick in self._picks.items():
            if pick:
                name, path = pick
                picks[f"{side}_connection"], picks[f"{side}_path"] = name, "/" + path.lstrip("/")
        if self.existing is not None:
            self._fill({field.name: field_value(self._base, field) for field in FIELDS})
        else:
            self._fill({f.name: picks.get(f.name, f.default) for f in FIELDS})
        self._saved_text = self.text
        self.query_one(f"#{FIELDS[0].widget_id}").focus()

    @property
    def edited(self) -> bool:
        """Whether closing now would lose something the user typed."""
        typed_path = self.query_one("#builder-import-path", Input).value.strip()
        return self.text != self._saved_text or bool(typed_path)

    # -- the form and its document ----------------------------------------------------------

    def _set_options(self, field: FormField, options: list[tuple[str | Text, str]]) -> None:
        self._options[field.name] = options
        self.query_one(f"#{field.widget_id}", Select).set_options(options)

    def _fill(self, values: Mapping[str, Any]) -> None:
        """Show `values` (by field name) in the widgets."""
        for field in FIELDS:
            value = values.get(field.name)
            widget = self.query_one(f"#{field.widget_id}")
            if isinstance(widget, Checkbox):
                widget.value = value if isinstance(value, bool) else bool(field.default)
            elif isinstance(widget, Select):
                widget.value = self._option(field, widget, value)
            elif isinstance(widget, Input):
                widget.value = "" if value is None else (
                    value if isinstance(value, str) else json.dumps(value))
        self._refresh()

    def _option(self, field: FormField, select: Select[str], value: Any) -> Any:
        """The Select value for `value`; one the list lacks is added, marked, so an imported
        file keeps it and core names the problem."""
        if value is None:
            return Select.NULL
        if isinstance(value, bool) and field.kind == "boolean":
            value = "true" if value else "false"
        if not isinstance(value, str):
            value = json.dumps(value)  # a number or an object where a choice belongs
        value = self._connection_names.get(value, value) if field.kind == "connection" else value
        options = self._options.setdefault(field.name, choices(field))
        if not any(value == v for _, v in options):
            self._set_options(field, [*options, (plain(f"{value} (unknown)"), value)])
        return value

    def _value(self, field: FormField) -> Any:
        widget = self.query_one(f"#{field.widget_id}")
        if isinstance(widget, Checkbox):
            return widget.value
        if isinstance(widget, Select):
            if widget.value is Select.NULL:
                return None
            return BOOLEANS.get(widget.value, widget.value) if field.kind == "boolean" \
                else widget.value
        text = widget.value.strip() if isinstance(widget, Input) else ""
        if field.kind == "number" and text:
            try:
                return int(text)
            except ValueError:
                return text  # as typed: core says what it expected
        return text or None

    def _refresh(self) -> None:
        """Rebuild the JSON from the fields and show core's verdict on it."""
        values = {field: self._value(field) for field in FIELDS}
        self.text = json.dumps(job_document(self._base, values), indent=2, ensure_ascii=False)
        self.query_one("#builder-json", Static).update(
            Syntax(printable_lines(self.text), "json", theme="ansi_dark",  # U+202E, C1 as is
                   background_color="default", word_wrap=True))
        errors: list[str] = []
        try:
            parse_job(self.text)
        except JobError as exc:
            errors = list(exc.errors)
        self._show_errors(errors, values)
        self._explain(values)

    def _explain(self, values: Mapping[FormField, Any]) -> None:
        """Under each policy, what its chosen value does (core's words)."""
        transfer_type = values[TYPE_FIELD]
        for field, value in values.items():
            shown = self.query_one(f"#explain-{field.name}", Static)
            line = explanation(field, value, transfer_type)
            shown.update(line)
            shown.display = bool(line)

    def _show_errors(self, errors: Iterable[str], values: Mapping[FormField, Any]) -> None:
        """Each error beside its field; an empty field's only once Save was pressed."""
        by_field: dict[str, list[str]] = {}
        general = []
        for error in errors:
            path, _, message = error.partition(": ")
            field = field_of(path)
            if field is None:
                general.append(error)
            elif self._submitted or values[field] not in (None, ""):
                by_field.setdefault(field.name, []).append(f"⚠ {printable(message or path)}")
        for field in FIELDS:
            shown = self.query_one(f"#error-{field.name}", Static)
            shown.update("\n".join(by_field.get(field.name, [])))
            shown.display = field.name in by_field
        box = self.query_one("#builder-errors", Static)
        box.update("\n".join(f"⚠ {printable(e)}" for e in general))
        box.display = bool(general)

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Input.Changed | Select.Changed | Checkbox.Changed) -> None:
        if getattr(event.control, "id", "") != "builder-import-path":
            self._refresh()

    # -- import and save --------------------------------------------------------------------

    @on(Input.Submitted, "#builder-import-path")
    @on(Button.Pressed, "#builder-load")
    def _load(self) -> None:
        path = self.query_one("#builder-import-path", Input).value.strip()
        problems = self.query_one("#builder-import-errors", Static)
        try:
            document = load_job_document(path) if path else None
        except JobError as exc:
            problems.update("\n".join(f"⚠ {printable(e)}" for e in exc.errors))
            problems.display = True
            return
        if document is None:
            problems.update("⚠ type the path of a job file")
            problems.display = True
            return
        problems.display = False
        self._base = document
        self._fill({field.name: field_value(document, field) for field in FIELDS})
        self.notify(f"Loaded {printable(path)}: check the fields, then save", markup=False)

    @on(Button.Pressed, "#builder-save")
    async def action_save(self) -> None:
        self._submitted = True
        self._refresh()
        try:
            if self.existing is None:
                saved = await self.service.create_job(self.text)
            else:
                saved = await update_job(self.service.home, self.service.state, self.existing,
                                         self.text)
        except JobError as exc:
            self._show_errors(exc.errors, {field: self._value(field) for field in FIELDS})
            self.notify(f"The job was not saved: {count(len(exc.errors), 'problem')} to fix",
                        severity="error")
            return
        except JobBusy:
            self.notify("The job was not saved: it started running meanwhile; save again once "
                        "it has stopped", severity="error")
            return
        self.dismiss(saved)

    @on(Button.Pressed, "#builder-cancel")
    async def action_close(self) -> None:
        """Close; with edits, only once the user says they may go."""
        if self.edited:
            what = "the changes to this job" if self.existing else "this new job"
            self.app.push_screen(
                ConfirmScreen(f"Discard {what}?", "Discard",
                              detail="What you typed is lost; Keep editing goes back to it."),
                self._discard)
        else:
            self.dismiss(None)

    def _discard(self, confirmed: bool | None) -> None:
        if confirmed:
            self.dismiss(None)
