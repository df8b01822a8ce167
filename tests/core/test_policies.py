"""Every transfer policy of a copy job, each value against the others on the same starting tree,
through the real engine (runner.run_job) from an in-memory source to a real folder.

The destination is a local folder with the disk's own rules, or the same folder standing for
a share with Procore's rules (invalid characters, whitespace, a 255-character path limit, case
insensitive), so each policy shows what it changes on the disk and in the state DB.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.connectors.local import LocalConnector
from core.connectors.procore import PROCORE_RULES
from core.engine import runner
from core.home import Home
from core.job_store import create_job
from core.state import JobRecord, State
from tests.fakes import MemoryConnector

DESTINATION = "out"  # the job's destination folder below the destination connection's root
# a share that refuses what Procore refuses (as a Windows share does), on a disk that still
# allows 255 bytes to a name
SHARE = {"path_rules": dataclasses.replace(PROCORE_RULES, max_name_length=255,
                                           name_length_in_bytes=True),
         "case_insensitive": True}
DESTINATIONS = ("posix", "share")  # and "procore": tests/e2e/test_policies_procore.py


def job_json(**transfer: object) -> str:
    return json.dumps({"name": "policies", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": f"/{DESTINATION}"}},
        **transfer}})


@dataclass
class Rig:
    """A home and state, an in-memory source ('src') and a local destination ('dst')."""

    home: Home
    state: State
    source: MemoryConnector
    root: Path  # the destination connection's root
    features: dict[str, object] = dataclasses.field(default_factory=dict)  # over the disk's

    async def job(self, **transfer: object) -> JobRecord:
        record, _ = await create_job(self.state, job_json(**transfer))
        return record

    async def run(self, job: JobRecord) -> runner.RunResult:
        return await runner.run_job(self.state, self.home, job)

    def tree(self) -> dict[str, bytes | None]:
        """Everything under the job's destination folder: bytes of files, None for folders."""
        top = self.root / DESTINATION
        return {str(p.relative_to(top)): None if p.is_dir() else p.read_bytes()
                for p in top.rglob("*")}

    async def items(self, job: JobRecord) -> dict[str, tuple[str, str | None]]:
        """Each item's status and where it went, by its source path."""
        return {i.path: (i.status, i.destination_path) for i in await self.state.items(job.id)}

    async def notes(self, job: JobRecord) -> dict[str, str | None]:
        return {i.path: i.note for i in await self.state.items(job.id)}


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    (tmp_path / "dest").mkdir()
    await state.add_connection("src", "memory", {})
    await state.add_connection("dst", "local", {"path": str(tmp_path / "dest")})
    made = Rig(home, state, MemoryConnector({}), tmp_path / "dest")

    def open_connector(connection, secrets, opening=None):  # type: ignore[no-untyped-def]
        if connection.platform == "memory":
            return made.source
        local = LocalConnector(connection.config["path"])
        local.features = dataclasses.replace(local.features, **made.features)  # type: ignore[arg-type]
        return local

    monkeypatch.setattr(runner, "open_connector", open_connector)
    yield made
    await state.close()


# -- segment_transform x encode_invalid_characters x segment_truncate -------------------------

LONG_FOLDER = "F" * 100  # "out/FFF…" leaves 150 characters for a name below it (255 in all)
NO_ROOM = "G" * 249  # "out/GGG…" leaves 1 character: no name with an extension fits
PAYLOAD = {  # the same names on every destination; each has its own bytes
    "RFI: 12?.pdf": b"invalid characters",
    " Addendum.pdf": b"leading whitespace",
    LONG_FOLDER: {
        "N" * 200 + ".pdf": b"too long for the path",
        "Q:?" + "N" * 142 + ".pdf": b"fits with '_' for ':?', not with their hex",
    },
    "é" * 130 + ".pdf": b"264 bytes of name",
    NO_ROOM: {"x.pdf": b"even truncated, too long for the path"},
}
COMBINATIONS = list(itertools.product((True, False), repeat=3))


def combination_id(combination: tuple[bool, bool, bool]) -> str:
    return "-".join(f"{'' if on else 'no_'}{name}" for on, name in zip(
        combination, ("transform", "encode", "truncate"), strict=True))


def fitted_names(transform: bool, encode: bool, truncate: bool, *, destination: str,
                 ) -> dict[str, str | None]:
    """Where each source file of PAYLOAD should land (its path below the job's destination
    folder), or None where the item is flagged for a person; worked out by hand from DryvIQ's
    policy descriptions, not from the code under test."""
    long_name, hex_name = "N" * 200 + ".pdf", "Q:?" + "N" * 142 + ".pdf"
    accented = "é" * 130 + ".pdf"  # 134 characters, 264 bytes
    # a disk allows 255 bytes to a name; Procore counts characters, and allows 255 to a path
    disk_fit = "é" * 125 + ".pdf" if truncate else None
    if destination == "posix":  # only '/' and NUL are invalid
        return {"RFI: 12?.pdf": "RFI: 12?.pdf", " Addendum.pdf": " Addendum.pdf",
                f"{LONG_FOLDER}/{long_name}": f"{LONG_FOLDER}/{long_name}",
                f"{LONG_FOLDER}/{hex_name}": f"{LONG_FOLDER}/{hex_name}",
                accented: disk_fit, f"{NO_ROOM}/x.pdf": f"{NO_ROOM}/x.pdf"}
    fixed = transform or None  # with segment_transform off, a name that breaks a rule is flagged
    if not encode:
        rfi, near_limit = "RFI_ 12_.pdf", "Q__" + "N" * 142 + ".pdf"  # 149 characters fit
    else:  # ':' and '?' as hex make it 151 characters: it fits only truncated
        rfi, near_limit = "RFI3A 123F.pdf", "Q3A3F" + "N" * 141 + ".pdf" if truncate else None
    return {"RFI: 12?.pdf": fixed and rfi,
            " Addendum.pdf": fixed and "Addendum.pdf",
            f"{LONG_FOLDER}/{long_name}":
                f"{LONG_FOLDER}/{'N' * 146}.pdf" if truncate else None,
            f"{LONG_FOLDER}/{hex_name}": fixed and near_limit and f"{LONG_FOLDER}/{near_limit}",
            accented: accented if destination == "procore" else disk_fit,
            f"{NO_ROOM}/x.pdf": None}  # truncation keeps one character and the extension


def payload_files() -> dict[str, bytes]:
    """PAYLOAD's files by their source path."""
    files = {}
    for name, value in PAYLOAD.items():
        if isinstance(value, dict):
            files.update({f"{name}/{child}": data for child, data in value.items()})
        else:
            files[name] = value  # type: ignore[assignment]
    return files


def expected_outcome(expected: dict[str, str | None]) -> tuple[dict[str, bytes], set[str],
                                                                 int]:
    """The files that should land (destination path -> bytes), the source paths flagged, and
    the exit code of the run."""
    files = payload_files()
    landed = {target: files[path] for path, target in expected.items() if target is not None}
    flagged = {path for path, target in expected.items() if target is None}
    return landed, flagged, 4 if flagged else 0


def assert_segment_policies(
        tree: dict[str, bytes | None], statuses: dict[str, tuple[str, str | None]],
        result: runner.RunResult, expected: dict[str, str | None]) -> None:
    """What a run under one combination left: files (`tree`: below the job's destination
    folder), item statuses, exit code."""
    landed, flagged, exit_code = expected_outcome(expected)
    assert {path: data for path, data in tree.items() if data is not None} == landed
    assert result.exit_code == exit_code
    for path, target in expected.items():
        status, destination = statuses[path]
        if target is None:
            assert status == "remediation", path
            continue
        # "processed": delivered under a name changed to fit, with a note saying how
        assert status == ("success" if target == path else "processed"), path
        assert destination == f"{DESTINATION}/{target}", path
    assert result.stats.flagged == len(flagged)


@pytest.mark.parametrize("destination", DESTINATIONS)
@pytest.mark.parametrize("combination", COMBINATIONS, ids=map(combination_id, COMBINATIONS))
async def test_segment_policies_fit_names_or_flag_them(
        rig: Rig, combination: tuple[bool, bool, bool], destination: str) -> None:
    transform, encode, truncate = combination
    rig.features = SHARE if destination == "share" else {}
    rig.source.tree.update(copy.deepcopy(PAYLOAD))
    job = await rig.job(segment_transform=transform, encode_invalid_characters=encode,
                        segment_truncate=truncate)
    result = await rig.run(job)
    expected = fitted_names(transform, encode, truncate, destination=destination)
    assert_segment_policies(rig.tree(), await rig.items(job), result, expected)
    notes = await rig.notes(job)
    for path, target in expected.items():
        assert (notes[path] is None) == (target == path), path  # every change says why
    before = rig.tree()
    again = await rig.run(job)  # the fitted names are found again: nothing is sent twice
    assert (again.stats.transferred, again.exit_code) == (0, result.exit_code)
    assert rig.tree() == before


# -- duplicate_names ---------------------------------------------------------------------------

COLLIDING = {"a:b.txt": b"colon", "a_b.txt": b"underscore",  # the same name once fitted
             "Plan.pdf": b"upper case", "plan.pdf": b"lower case"}  # one name, case aside


@pytest.mark.parametrize("destination", DESTINATIONS)
@pytest.mark.parametrize("duplicate_names", ["rename", "warn"])
async def test_duplicate_names_rename_with_a_number_or_flag_the_second(
        rig: Rig, duplicate_names: str, destination: str) -> None:
    rig.features = SHARE if destination == "share" else {}
    rig.source.tree.update(COLLIDING)
    job = await rig.job(duplicate_names=duplicate_names)
    result = await rig.run(job)
    items = await rig.items(job)
    if destination == "posix":  # case-sensitive and ':' allowed: nothing collides at all
        assert rig.tree() == COLLIDING
        assert (result.status, result.exit_code) == ("completed", 0)
        assert {status for status, _ in items.values()} == {"success"}
        return
    kept = {"a_b.txt": b"underscore", "Plan.pdf": b"upper case"}  # needed no fixing, or first
    if duplicate_names == "rename":
        assert rig.tree() == {**kept, "a_b (1).txt": b"colon", "plan (1).pdf": b"lower case"}
        assert (result.status, result.exit_code, result.stats.flagged) == ("completed", 0, 0)
        assert items["a:b.txt"] == ("processed", f"{DESTINATION}/a_b (1).txt")
        assert items["plan.pdf"] == ("processed", f"{DESTINATION}/plan (1).pdf")
        assert "renamed to 'plan (1).pdf'" in (await rig.notes(job))["plan.pdf"]
    else:
        assert rig.tree() == kept
        assert (result.status, result.exit_code, result.stats.flagged) == ("warn", 4, 2)
        assert items["a:b.txt"][0] == items["plan.pdf"][0] == "remediation"
        assert "also becomes 'a_b.txt'" in (await rig.notes(job))["a:b.txt"]
    assert items["a_b.txt"][0] == items["Plan.pdf"][0] == "success"
    before = rig.tree()
    again = await rig.run(job)  # the same name is chosen again: nothing is sent twice
    assert (again.stats.transferred, rig.tree()) == (0, before)



async def test_a_renamed_duplicate_keeps_its_number_when_another_collision_appears(
        rig: Rig) -> None:
    rig.features = SHARE
    rig.source.tree.update({"a_b.txt": b"underscore", "a:b.txt": b"colon"})
    job = await rig.job(duplicate_names="rename")
    await rig.run(job)
    assert rig.tree() == {"a_b.txt": b"underscore", "a_b (1).txt": b"colon"}
    rig.source.tree["a*b.txt"] = b"star"  # sorts before "a:b.txt"
    result = await rig.run(job)
    assert rig.tree() == {"a_b.txt": b"underscore", "a_b (1).txt": b"colon",
                          "a_b (2).txt": b"star"}
    assert result.stats.transferred == 1  # only the new file


# -- empty_containers --------------------------------------------------------------------------

FILTER_TMP = {"source": [{"action": "exclude", "type": "filter_rule",
                          "rules": [{"type": "filter_extension", "extensions": ["tmp"]}]}]}
WITH_EMPTIES = {
    "empty": {"deeper": {}},
    "filtered": {"a.tmp": b"t", "sub": {"b.tmp": b"t"}},  # every file filtered out
    "full": {"f.txt": b"f", "scratch.tmp": b"t"},
}


@pytest.mark.parametrize("empty_containers", ["create", "skip"])
async def test_empty_containers_create_makes_every_folder_skip_only_those_with_files(
        rig: Rig, empty_containers: str) -> None:
    rig.source.tree.update(WITH_EMPTIES)
    job = await rig.job(empty_containers=empty_containers, filter=FILTER_TMP)
    result = await rig.run(job)
    assert (result.status, result.exit_code) == ("completed", 0)
    with_files = {"full": None, "full/f.txt": b"f"}
    items = await rig.items(job)
    assert {path: status for path, (status, _) in items.items() if path.endswith(".tmp")} == {
        "filtered/a.tmp": "skipped", "filtered/sub/b.tmp": "skipped",
        "full/scratch.tmp": "skipped"}
    if empty_containers == "create":
        assert rig.tree() == {**with_files, "empty": None, "empty/deeper": None,
                              "filtered": None, "filtered/sub": None}
        assert {path: items[path][0] for path in ("empty", "empty/deeper", "filtered")} == {
            "empty": "success", "empty/deeper": "success", "filtered": "success"}
        assert result.stats.folders_created == 6  # out, its five folders
    else:
        assert rig.tree() == with_files
        assert result.stats.folders_created == 2  # out and full, with the first file
    before = rig.tree()
    again = await rig.run(job)
    assert (again.status, again.stats.folders_created, rig.tree()) == ("no_changes", 0, before)


@pytest.mark.parametrize("empty_containers", ["create", "skip"])
async def test_a_source_with_nothing_to_copy_leaves_no_folder_when_empty_ones_are_skipped(
        rig: Rig, empty_containers: str) -> None:
    rig.source.tree.update({"filtered": {"a.tmp": b"t"}, "empty": {}})
    job = await rig.job(empty_containers=empty_containers, filter=FILTER_TMP)
    result = await rig.run(job)
    assert result.exit_code == 0
    if empty_containers == "create":
        assert rig.tree() == {"filtered": None, "empty": None}
    else:
        assert not (rig.root / DESTINATION).exists()



async def test_a_folder_renamed_to_fit_is_recorded_as_processed_like_a_file(rig: Rig) -> None:
    rig.features = SHARE
    rig.source.tree.update({"RFI: 1": {"a?.pdf": b"a"}})
    job = await rig.job()
    await rig.run(job)
    assert await rig.items(job) == {"RFI: 1": ("processed", f"{DESTINATION}/RFI_ 1"),
                                    "RFI: 1/a?.pdf": ("processed", f"{DESTINATION}/RFI_ 1/a_.pdf")}
    assert "renamed from 'RFI: 1'" in (await rig.notes(job))["RFI: 1"]


async def test_empty_containers_skip_records_the_folders_it_creates_as_create_does(
        rig: Rig) -> None:
    rig.features = SHARE
    rig.source.tree.update({"RFI: 1": {"a?.pdf": b"a"}, "empty": {}})
    job = await rig.job(empty_containers="skip")
    await rig.run(job)
    assert rig.tree() == {"RFI_ 1": None, "RFI_ 1/a_.pdf": b"a"}
    assert (await rig.items(job))["RFI: 1"][1] == f"{DESTINATION}/RFI_ 1"


# -- failure_policy ----------------------------------------------------------------------------

WITH_A_BAD_FILE = {"a-bad.pdf": b"unreadable", "b.pdf": b"b", "c.pdf": b"c",
                   "sub": {"d.pdf": b"d"}}


@pytest.mark.parametrize("failure_policy", ["continue", "halt"])
async def test_failure_policy_continue_goes_on_halt_stops_at_the_first_failure(
        rig: Rig, failure_policy: str) -> None:
    rig.source.tree.update(WITH_A_BAD_FILE)
    rig.source.unreadable.add("a-bad.pdf")  # the first file written (one at a time)
    job = await rig.job(failure_policy=failure_policy, performance={"parallel_writes": 1})
    result = await rig.run(job)
    items = await rig.items(job)
    assert items["a-bad.pdf"][0] == "retry"
    files = {path: data for path, data in rig.tree().items() if data is not None}
    if failure_policy == "continue":
        assert (result.status, result.exit_code, result.error) == ("warn", 4, None)
        assert files == {"b.pdf": b"b", "c.pdf": b"c", "sub/d.pdf": b"d"}
        assert {items[p][0] for p in ("b.pdf", "c.pdf", "sub/d.pdf")} == {"success"}
    else:
        assert (result.status, result.exit_code) == ("failed", 1)
        assert "failure_policy: halt" in result.error
        assert files == {}
        # planned but never written, or not reached before the halt: the next run sends them
        assert {items.get(p, ("pending",))[0] for p in ("b.pdf", "c.pdf", "sub/d.pdf")} == {
            "pending"}
    rig.source.unreadable.clear()
    again = await rig.run(job)
    assert (again.status, again.exit_code) == ("completed", 0)
    assert {path: data for path, data in rig.tree().items() if data is not None} == {
        "a-bad.pdf": b"unreadable", "b.pdf": b"b", "c.pdf": b"c", "sub/d.pdf": b"d"}


# -- large_item --------------------------------------------------------------------------------

@pytest.mark.parametrize("large_item", ["fail", "skip"])
async def test_large_item_fail_flags_skip_skips_a_file_over_the_destinations_limit(
        rig: Rig, large_item: str) -> None:
    rig.features = {"max_file_size": 1000}
    rig.source.tree.update({"big.bin": b"x" * 1001, "limit.bin": b"y" * 1000})
    job = await rig.job(large_item=large_item)
    result = await rig.run(job)
    assert rig.tree() == {"limit.bin": b"y" * 1000}  # at the limit is not over it
    items = await rig.items(job)
    assert items["limit.bin"][0] == "success"
    if large_item == "fail":
        assert (result.status, result.exit_code, result.stats.flagged) == ("warn", 4, 1)
        assert items["big.bin"][0] == "remediation"
    else:
        assert (result.status, result.exit_code, result.stats.skipped) == ("completed", 0, 1)
        assert items["big.bin"][0] == "skipped"
    assert (await rig.notes(job))["big.bin"]  # says why (best with the limit in it)



async def test_a_renamed_duplicate_never_lands_on_a_file_only_at_the_destination(
        rig: Rig) -> None:
    rig.features = SHARE
    rig.source.tree.update({"Plan.pdf": b"upper case", "plan.pdf": b"lower case"})
    (rig.root / DESTINATION).mkdir()
    (rig.root / DESTINATION / "plan (1).pdf").write_bytes(b"the site's own file")
    job = await rig.job(duplicate_names="rename")
    await rig.run(job)
    assert rig.tree()["plan (1).pdf"] == b"the site's own file"  # a copy leaves it alone
    assert rig.tree()["plan (2).pdf"] == b"lower case"


async def test_a_renamed_duplicate_still_fits_the_destinations_path_length(rig: Rig) -> None:
    rig.features = SHARE
    rig.source.tree.update({LONG_FOLDER: {"N" * 200 + "A.pdf": b"a", "N" * 200 + "B.pdf": b"b"}})
    job = await rig.job(segment_truncate=True, duplicate_names="rename")
    result = await rig.run(job)
    landed = [f"{DESTINATION}/{path}" for path, data in rig.tree().items() if data is not None]
    assert sorted(map(len, landed)) == [255, 255], landed  # both fit, one numbered
    assert result.stats.transferred == 2
