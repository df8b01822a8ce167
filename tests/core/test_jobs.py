"""DryvIQ job JSON: the documented examples parse, bad jobs report every problem by JSON path,
nothing is dropped on the way, and filters admit what the spec says they do."""

import copy
import json
import time
from collections.abc import AsyncIterator

import pytest

from core.connections import add_local
from core.job_store import create_job, job_named
from core.jobs import (
    Endpoint,
    Filter,
    FilterRule,
    Filters,
    JobError,
    StopPolicy,
    load_job_json,
    parse_job,
)
from core.state import State

# Verbatim from DryvIQ's Procore connector page (shared/reference/procore-connector-seed.txt).
PRODUCT_PAGE_JOB = """{ "name":"Simple Job", "kind": "transfer", "transfer": { "transfer_type": "copy", "source": { "connection": { "id": "Source connection ID" }, "target": { "path": "/sourceDocumentLibrary" } }, "destination": { "connection": { "id": "Destination Connection ID" }, "target": { "path": "/destinationFolder" } }, "simulation_mode": false }, "schedule": { "mode": "manual" }, "stop_policy": { "on_success": 5, "on_failure": 5, "on_execute": 25 }, "category": { "name": "Report {Name}" } }"""  # noqa: E501

# The example of dryviq-jobs.md §2.
SPEC_JOB = """
{"name":"Demo drawings to share","kind":"transfer",
 "transfer":{"transfer_type":"copy",
   "source":{"connection":{"id":"procore-demo"},"target":{"path":"/Drawings"}},
   "destination":{"connection":{"id":"office-share"},"target":{"path":"/Projects/Demo"}},
   "simulation_mode":true,"conflict_resolution":"latest","empty_containers":"create",
   "performance":{"parallel_writes":{"requested":4}},
   "filter":{"source":[{"action":"exclude","type":"filter_rule",
     "rules":[{"type":"filter_extension","extensions":["tmp","bak"]}]}]}},
 "schedule":{"mode":"auto","days":["weekdays"],"start_window":{"hr":19,"min":0},
   "end_window":{"hr":23,"min":0}},
 "stop_policy":{"on_success":3,"on_failure":5,"on_execute":50},
 "category":{"name":"Demo project"},"status":"paused"}
"""

DAY = 86_400


def minimal() -> dict:
    return {
        "name": "Minimal",
        "transfer": {
            "transfer_type": "copy",
            "source": {"connection": {"id": "procore"}, "target": {"path": "/Drawings/A/"}},
            "destination": {"connection": {"id": "share"}, "target": {"path": "/"}},
        },
    }


def changed(change) -> str:
    """The minimal job as JSON after `change` edits a copy of it."""
    job = copy.deepcopy(minimal())
    change(job)
    return json.dumps(job)


def errors_of(text: str) -> list[str]:
    with pytest.raises(JobError) as caught:
        parse_job(text)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


def test_product_page_job_parses_without_errors_or_warnings():
    job = parse_job(PRODUCT_PAGE_JOB)
    assert job.name == "Simple Job"
    assert job.kind == "transfer"
    assert job.transfer.transfer_type == "copy"
    assert job.transfer.source == Endpoint("Source connection ID", "sourceDocumentLibrary")
    assert job.transfer.destination == Endpoint("Destination Connection ID", "destinationFolder")
    assert job.transfer.simulation_mode is False
    assert job.schedule_mode == "manual"
    assert job.stop_policy == StopPolicy(5, 5, 25)
    assert job.category == "Report {Name}"
    assert job.status is None
    assert job.warnings == ()
    assert job.definition == json.loads(PRODUCT_PAGE_JOB)


def test_spec_example_parses_with_its_values():
    job = parse_job(SPEC_JOB)
    transfer = job.transfer
    assert transfer.source == Endpoint("procore-demo", "Drawings")
    assert transfer.destination == Endpoint("office-share", "Projects/Demo")
    assert transfer.simulation_mode is True
    assert transfer.conflict_resolution == "latest"
    assert transfer.empty_containers == "create"
    assert transfer.parallel_writes == 4
    assert transfer.source_filters == Filters(
        (Filter("exclude", (FilterRule("extension", extensions=("tmp", "bak")),)),)
    )
    assert transfer.destination_filters == Filters()
    assert job.schedule_mode == "auto"
    assert job.status == "paused"
    assert job.stop_policy == StopPolicy(3, 5, 50)
    assert job.category == "Demo project"
    assert job.warnings == ()


def test_defaults_follow_the_spec():
    def drop_type(job):
        del job["transfer"]["transfer_type"]

    job = parse_job(changed(drop_type))
    assert job.kind == "transfer"
    assert job.transfer.transfer_type == "sync"
    assert job.transfer.source.path == "Drawings/A"
    assert job.transfer.destination.path == ""
    assert job.transfer.delete_propagation == ()  # left to the type: a sync mirrors deletes
    assert job.transfer.propagation == ("mirror",)
    assert (job.transfer.max_delete, job.transfer.trash, job.transfer.versions) == (
        50, True, "latest")
    assert job.transfer.parallel_writes == 2
    assert (job.schedule_mode, job.category, job.stop_policy) == (
        "manual", "Default", StopPolicy(None, None, None),
    )


def test_envelope_is_unwrapped():
    job = parse_job(json.dumps({"status": 200, "type": "job", "job": minimal()}))
    assert job.name == "Minimal"
    assert job.definition == minimal()
    assert job.warnings == ()


def test_accepted_alternative_spellings():
    def alternatives(job):
        transfer = job["transfer"]
        transfer["transfer_type"] = "default"
        transfer["source"]["connection"]["id"] = 42
        transfer["delete_propagation"] = "mirror"
        transfer["performance"] = {"parallel_writes": 8}
        job["category"] = {"id": 7}
        job["stop_policy"] = {"policy": "on_success", "on_success": 2, "completions": 1}

    job = parse_job(changed(alternatives))
    assert job.transfer.transfer_type == "sync"
    assert job.transfer.source.connection == "42"
    assert job.transfer.delete_propagation == ("mirror",)
    assert job.transfer.parallel_writes == 8
    assert job.category == "7"
    assert job.stop_policy == StopPolicy(2, None, None)
    assert job.warnings == ()


def set_in(path: str, value):
    """A change setting the dotted `path` of the job to `value`."""
    *parents, last = path.split(".")

    def change(job):
        node = job
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return change


def delete(path: str):
    *parents, last = path.split(".")

    def change(job):
        node = job
        for key in parents:
            node = node[key]
        del node[last]

    return change


BAD_RULE_FILTER = {"source": [{"rules": [{"type": "filter_glob", "text": "*"}]}]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('{"name": "x",\n  "kind": "transfer"\n    "transfer": {}}',
                     "job JSON is not valid JSON: Expecting ',' delimiter (line 3, column 5)",
                     id="invalid JSON"),
        pytest.param("[]", "(top level): expected a job object, got an empty array",
                     id="top-level array"),
        pytest.param(changed(delete("name")), "name: required, a non-empty string",
                     id="missing name"),
        pytest.param(changed(set_in("name", ["x"])), "name: expected a non-empty string",
                     id="name not a string"),
        pytest.param(changed(set_in("transfer.transfer_type", "cpy")),
                     'transfer.transfer_type: "cpy" is not one of copy, sync, move, migrate, '
                     "publish, taxonomy", id="transfer_type cpy"),
        pytest.param(changed(set_in("transfer.simulation_mode", "yes")),
                     'transfer.simulation_mode: expected true or false, got "yes"',
                     id="simulation_mode yes"),
        pytest.param(changed(set_in("transfer.performance", {"parallel_writes": {"requested": 0}})),
                     "transfer.performance.parallel_writes.requested: "
                     "expected an integer from 1 to 64, got 0", id="parallel_writes 0"),
        pytest.param(changed(set_in("transfer.source.target.path", "/Drawings/../../etc")),
                     "transfer.source.target.path: ", id="path with .."),
        pytest.param(changed(delete("transfer.source")), "transfer.source: required",
                     id="missing source"),
        pytest.param(changed(delete("transfer.destination.connection.id")),
                     "transfer.destination.connection.id: required", id="missing connection id"),
        pytest.param(changed(set_in("transfer.source.target", {"item": {"id": "123"}})),
                     "transfer.source.target.item: only target.path is supported",
                     id="target item"),
        pytest.param(changed(set_in("transfer.filter", BAD_RULE_FILTER)),
                     'transfer.filter.source[0].rules[0].type: "filter_glob" is not one of',
                     id="unknown filter rule type"),
        pytest.param(changed(set_in("status", "paused")),
                     'status: "paused" holds an auto job', id="paused with manual schedule"),
        pytest.param(changed(set_in("kind", "folder_mapping")),
                     "kind: folder_mapping jobs are not supported yet", id="folder_mapping"),
        pytest.param(changed(set_in("schedule", {"mode": "cron"})),
                     'schedule.mode: "cron" is not one of manual, ad-hoc, auto', id="bad mode"),
        pytest.param(changed(set_in("stop_policy", {"on_failure": -1})),
                     "stop_policy.on_failure: expected a non-negative integer, got -1",
                     id="negative stop policy"),
    ],
)
def test_malformed_job_is_refused_at_its_path(text: str, expected: str):
    errors = errors_of(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected)


def test_every_error_is_reported_at_once():
    job = minimal()
    del job["name"]
    job["transfer"].update(
        transfer_type="cpy",
        simulation_mode="yes",
        performance={"parallel_writes": {"requested": 0}},
        filter={"source": [{"rules": [
            {"type": "extension", "extensions": ["pdf"]},
            {"type": "extension", "extensions": "pdf"},
        ]}]},
    )
    job["transfer"]["source"]["target"]["path"] = "/a/../b"
    paths = [error.split(": ")[0] for error in errors_of(json.dumps(job))]
    assert paths == [
        "name",
        "transfer.transfer_type",
        "transfer.source.target.path",
        "transfer.simulation_mode",
        "transfer.performance.parallel_writes.requested",
        "transfer.filter.source[0].rules[1].extensions",
    ]


def test_unknown_and_unapplied_keys_are_kept_and_warned_about():
    job = minimal()
    job["owner"] = {"name": "Ana"}
    job["description"] = "plain metadata, no warning"
    job["schedule"] = {"mode": "manual", "timezone": "UTC"}
    job["transfer"]["permissions"] = {"mode": "none"}
    job["transfer"]["audit_level"] = "debug"
    job["transfer"]["source"]["target"]["extra"] = [1, 2]
    job["transfer"]["filter"] = {"source": [
        {"action": "include", "rules": [{"type": "pattern", "text": "*.pdf", "note": "mine"}]},
    ]}
    text = json.dumps(job)
    parsed = parse_job(text)
    assert parsed.definition == json.loads(text)
    assert sorted(parsed.warnings) == [
        "owner: unknown key, kept but not used",
        "schedule.timezone: unknown key, kept but not used",
        "transfer.audit_level: accepted and kept, not applied by dryviq-tui",
        "transfer.filter.source[0].rules[0].note: unknown key, kept but not used",
        "transfer.permissions: accepted and kept, not applied by dryviq-tui",
        "transfer.source.target.extra: unknown key, kept but not used",
    ]


def test_filters_are_parsed_from_long_and_short_rule_names():
    rules = [
        {"type": "extension", "extensions": [".PDF", "dwg"]},
        {"type": "filter_size", "min": 10},
        {"type": "date", "range": {"type": "range", "from": "2024-01-01", "to": 1735689600}},
        {"type": "filter_date", "targets": "created_on", "range": {"type": "week", "value": 2}},
        {"type": "filter_pattern", "text": "Old*; *.TMP", "targets": "container"},
    ]
    job = parse_job(changed(set_in("transfer.filter", {"destination": [{"rules": rules}]})))
    assert job.transfer.destination_filters == Filters((Filter("exclude", (
        FilterRule("extension", extensions=("pdf", "dwg")),
        FilterRule("size", min_size=10),
        FilterRule("date", "modified_on", since=1704067200.0, until=1735689600.0),
        FilterRule("date", "created_on", within=14 * DAY),
        FilterRule("pattern", "container", patterns=("old*", "*.tmp")),
    )),))


def filters(*specs: tuple[str, list[dict]]) -> Filters:
    """Filters read through parse_job, from (action, rules) pairs."""
    side = [{"action": action, "type": "filter_rule", "rules": rules} for action, rules in specs]
    return parse_job(changed(set_in("transfer.filter", {"source": side}))).transfer.source_filters


def test_extension_exclude_skips_matching_files_only():
    admits = filters(("exclude", [{"type": "filter_extension", "extensions": ["tmp"]}])).admits
    assert not admits("draft.TMP", False, 10, None)
    assert admits("plan.pdf", False, 10, None)
    assert admits("cache.tmp", True, 0, None)  # a folder has no extension


def test_include_only_pdf_still_admits_folders():
    admits = filters(("include", [{"type": "extension", "extensions": ["pdf"]}])).admits
    assert admits("A-101.pdf", False, 10, None)
    assert not admits("A-101.dwg", False, 10, None)
    assert admits("Drawings", True, 0, None)


def test_size_range_is_inclusive():
    admits = filters(("include", [{"type": "size", "min": 100, "max": 200}])).admits
    assert [admits("f", False, size, None) for size in (99, 100, 200, 201)] == [
        False, True, True, False,
    ]


def test_container_pattern_excludes_folders_not_files():
    admits = filters(
        ("exclude", [{"type": "pattern", "text": "_old*;backup", "targets": "container"}]),
    ).admits
    assert not admits("_Old drawings", True, 0, None)
    assert not admits("Backup", True, 0, None)
    assert admits("_old notes.txt", False, 5, None)
    assert admits("Current", True, 0, None)


def test_date_within_last_days():
    admits = filters(("include", [{"type": "date", "range": {"type": "day", "value": 7}}])).admits
    now = time.time()
    assert admits("recent.pdf", False, 1, now - 2 * DAY)
    assert not admits("stale.pdf", False, 1, now - 10 * DAY)
    assert not admits("unknown.pdf", False, 1, None)


def test_exclude_beats_include():
    admits = filters(
        ("include", [{"type": "extension", "extensions": ["pdf"]}]),
        ("exclude", [{"type": "pattern", "text": "*draft*"}]),
    ).admits
    assert admits("A-101.pdf", False, 1, None)
    assert not admits("A-101 draft.pdf", False, 1, None)


# -- hostile documents: valid JSON, or nearly, that must not end in a traceback --------------

def with_raw(member: str) -> str:
    """The minimal job with one more member, given as raw JSON text, at the top."""
    return "{" + member + ", " + json.dumps(minimal())[1:]


DEEP_OBJECT = '{"a": ' * 5_000 + "1" + "}" * 5_000
DEEP_IN_A_FILTER = json.dumps(
    {"source": [{"rules": [{"type": "extension", "extensions": ["pdf"]}, {"x": [[[[]]]]}]}]}
).replace("[[[[]]]]", "[" * 40 + "]" * 40)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(with_raw('"extra": ' + "[" * 100_000 + "]" * 100_000),
                     "extra" + "[0]" * 31 + ": nested deeper than 32 levels",
                     id="100,000 nested arrays"),
        pytest.param(with_raw('"extra": ' + DEEP_OBJECT),
                     "extra" + ".a" * 31 + ": nested deeper than 32 levels",
                     id="5,000 nested objects"),
        pytest.param(changed(set_in("transfer.filter", "FILTER")).replace(
                         '"FILTER"', DEEP_IN_A_FILTER),
                     "transfer.filter.source[0].rules[1].x" + "[0]" * 25 + ": nested deeper",
                     id="deep inside a filter"),
        pytest.param(changed(set_in("name", "\ud800")),
                     "name: not valid Unicode text (a lone surrogate", id="lone surrogate"),
        pytest.param(with_raw('"\\udfff": 1'),
                     "(top level): a key is not valid Unicode text", id="lone surrogate key"),
        pytest.param(with_raw('"priority": ' + "9" * 5_000),
                     "priority: a number of 5,000 digits is too long (at most 100)",
                     id="5,000-digit number"),
        pytest.param(changed(set_in("transfer.performance", {"parallel_writes": float("nan")})),
                     "transfer.performance.parallel_writes: NaN is not a JSON value", id="NaN"),
        pytest.param(with_raw('"name": "again"'),
                     "name: given more than once in one object", id="duplicate key"),
        pytest.param(changed(set_in("transfer.source", "SOURCE")).replace(
                         '"SOURCE"', '{"connection": {"id": "a", "id": "b"}, "target": {}}'),
                     "transfer.source.connection.id: given more than once",
                     id="duplicate nested key"),
        pytest.param(changed(set_in("name", "night\0ly")),
                     "name: contains control characters (\\x00), not allowed", id="NUL in name"),
        pytest.param(changed(set_in("name", "\x1b]52;c;ZWNobw==\x07")),
                     "name: contains control characters (\\x07 \\x1b), not allowed",
                     id="OSC 52 in name"),
        pytest.param(changed(set_in("name", "x" * 129)),
                     "name: 129 characters, more than the 128 allowed", id="name too long"),
        pytest.param(changed(set_in("name", "x" * 50_000_000)),
                     "(top level): the job JSON has 50,000,", id="50 MB name"),
        pytest.param(changed(set_in("category", {"name": "two\nlines"})),
                     "category.name: contains control characters (\\n)",
                     id="newline in category"),
        pytest.param(changed(set_in("transfer.source.connection.id", "share\0")),
                     "transfer.source.connection.id: contains control characters (\\x00)",
                     id="NUL in connection id"),
        pytest.param(changed(set_in("transfer.destination.target.path", "/a\x1b]0;x\x07")),
                     "transfer.destination.target.path: contains control characters "
                     "(\\x07 \\x1b)", id="escape sequence in a path"),
    ],
)
def test_hostile_json_is_refused_at_its_path(text: str, expected: str):
    errors = errors_of(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors


def test_a_name_of_the_maximum_length_is_accepted():
    assert parse_job(changed(set_in("name", "x" * 128))).name == "x" * 128


def test_errors_and_warnings_never_carry_control_characters():
    """They quote the file's keys: printed raw, a key could write escape sequences."""
    errors = errors_of(with_raw('"\\u001b[2J\\u202e": 1, "\\u001b[2J\\u202e": 2'))
    assert errors == ["\\x1b[2J\\u202e: given more than once in one object; keep one"]
    job = parse_job(with_raw('"\\u001b]0;title\\u0007": 1'))
    assert job.warnings == ("\\x1b]0;title\\x07: unknown key, kept but not used",)


def test_the_import_dialog_reads_files_by_the_same_rules():
    """load_job_json is what the app's import reads a file with."""
    with pytest.raises(JobError, match=r"nested deeper than 32 levels"):
        load_job_json(with_raw('"extra": ' + "[" * 100_000 + "]" * 100_000))
    envelope = json.dumps({"type": "job", "job": minimal()})
    assert load_job_json(envelope) == minimal()


# -- job names are unique ----------------------------------------------------------------------

@pytest.fixture
async def state(tmp_path) -> AsyncIterator[State]:
    """A state with connections "procore" and "share" (the minimal job's), both local."""
    opened = await State.open(tmp_path / "state.db")
    for name in ("procore", "share"):
        (tmp_path / name).mkdir()
        await add_local(opened, name, str(tmp_path / name))
    yield opened
    await opened.close()


def named(name: str) -> str:
    return changed(set_in("name", name))


@pytest.mark.parametrize("again", [
    "Nightly", "nightly", "NIGHTLY", " Nightly ", "Nightly\u00a0",
])
async def test_a_second_job_of_the_same_name_is_refused_naming_the_first(state, again):
    """Names compare case-insensitively, trimmed and Unicode-normalised: "Nightly" and
    "nightly" side by side in a list are a mistake, and `jobs run NAME` could not tell a
    composed "é" from a decomposed one."""
    first, _ = await create_job(state, named("Nightly"))
    with pytest.raises(JobError) as refused:
        await create_job(state, named(again))
    assert refused.value.errors == [
        f"name: a job named 'Nightly' already exists (id {first.id})"]
    assert [job.id for job in await state.find_jobs()] == [first.id]


async def test_composed_and_decomposed_accents_are_one_name(state):
    await create_job(state, named("Caf\u00e9 drawings"))
    with pytest.raises(JobError, match="already exists"):
        await create_job(state, named("Cafe\u0301 drawings"))


async def test_the_duplicate_is_reported_with_every_other_problem(state):
    await create_job(state, named("Nightly"))
    text = changed(lambda job: (set_in("name", "nightly")(job),
                                set_in("transfer.source.connection.id", "nowhere")(job)))
    with pytest.raises(JobError) as refused:
        await create_job(state, text)
    assert [error.split(":")[0] for error in refused.value.errors] == [
        "name", "transfer.source.connection.id"]


async def test_a_different_name_and_an_edited_job_keep_their_names(state):
    first, _ = await create_job(state, named("Nightly"))
    second, _ = await create_job(state, named("Nightly 2"))
    assert await job_named(state, "NIGHTLY") == first
    assert await job_named(state, "nightly", other_than=first.id) is None
    assert await job_named(state, "nightly 2", other_than=first.id) == second
