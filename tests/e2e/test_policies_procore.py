"""The naming policies against the Procore sandbox over real HTTP: every combination of
segment_transform x encode_invalid_characters x segment_truncate, and duplicate names on a
case-insensitive destination, through the real engine (runner.run_job) from an in-memory
source to the sandbox's project, whose own name rules refuse what the job fails to fix."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from core.auth import OOB_REDIRECT, ClientApp, MemoryTokenStore, exchange_code
from core.connectors.procore import ProcoreConnector, procore_client
from core.engine import runner
from core.home import Home
from core.job_store import create_job
from core.sandbox import DEMO_COMPANY, DEMO_PROJECT, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from core.state import JobRecord, State
from tests.core.test_policies import (
    COLLIDING,
    COMBINATIONS,
    DESTINATION,
    FILTER_TMP,
    LONG_FOLDER,
    PAYLOAD,
    WITH_EMPTIES,
    assert_segment_policies,
    combination_id,
    fitted_names,
    job_json,
)
from tests.fakes import MemoryConnector

pytestmark = pytest.mark.slow


@dataclass
class ProcoreRig:
    """An in-memory source ('src') and the sandbox's demo project ('dst')."""

    home: Home
    state: State
    source: MemoryConnector
    world: object  # core.sandbox World
    project: int

    async def job(self, **transfer: object) -> JobRecord:
        record, _ = await create_job(self.state, job_json(**transfer))
        return record

    async def run(self, job: JobRecord) -> runner.RunResult:
        return await runner.run_job(self.state, self.home, job)

    def tree(self) -> dict[str, bytes | None]:
        """The project's documents below the job's destination folder, by relative path."""
        prefix = f"{DESTINATION}/"
        return {path[len(prefix):]: data
                for path, data in self.world.tree(self.project).items()  # type: ignore[attr-defined]
                if path.startswith(prefix)}

    async def items(self, job: JobRecord) -> dict[str, tuple[str, str | None]]:
        return {i.path: (i.status, i.destination_path) for i in await self.state.items(job.id)}


@pytest.fixture
async def rig(sandbox, tmp_path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ProcoreRig]:
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    await state.add_connection("src", "memory", {})
    await state.add_connection("dst", "procore-sandbox", {})
    world = sandbox.world
    app = ClientApp(sandbox.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
    tokens = MemoryTokenStore(await exchange_code(
        app, world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT)))
    company = next(c.id for c in world.companies.values() if c.name == DEMO_COMPANY)
    project = next(p.id for p in world.projects.values() if p.name == DEMO_PROJECT)
    made = ProcoreRig(home, state, MemoryConnector({}), world, project)

    def open_connector(connection, secrets, opening=None):  # type: ignore[no-untyped-def]
        if connection.platform == "memory":
            return made.source
        client = procore_client(app, tokens, opening, company_id=company)
        return ProcoreConnector(client, project, state=state)

    monkeypatch.setattr(runner, "open_connector", open_connector)
    yield made
    await state.close()


@pytest.mark.parametrize("combination", COMBINATIONS, ids=map(combination_id, COMBINATIONS))
async def test_segment_policies_fit_names_to_procore_or_flag_them(
        rig: ProcoreRig, combination: tuple[bool, bool, bool]) -> None:
    transform, encode, truncate = combination
    rig.source.tree.update(copy.deepcopy(PAYLOAD))
    job = await rig.job(segment_transform=transform, encode_invalid_characters=encode,
                        segment_truncate=truncate)
    result = await rig.run(job)
    expected = fitted_names(transform, encode, truncate, destination="procore")
    assert_segment_policies(rig.tree(), await rig.items(job), result, expected)
    assert result.stats.failed == 0  # nothing the job sent was refused by Procore
    before = rig.tree()
    again = await rig.run(job)  # found again under their fitted names: no new versions
    assert (again.stats.transferred, again.exit_code, rig.tree()) == (0, result.exit_code,
                                                                      before)


@pytest.mark.parametrize("duplicate_names", ["rename", "warn"])
async def test_duplicate_names_on_procore_which_ignores_case(
        rig: ProcoreRig, duplicate_names: str) -> None:
    rig.source.tree.update(COLLIDING)
    job = await rig.job(duplicate_names=duplicate_names)
    result = await rig.run(job)
    items = await rig.items(job)
    kept = {"a_b.txt": b"underscore", "Plan.pdf": b"upper case"}
    if duplicate_names == "rename":
        assert rig.tree() == {**kept, "a_b (1).txt": b"colon", "plan (1).pdf": b"lower case"}
        assert (result.status, result.exit_code) == ("completed", 0)
        assert items["plan.pdf"] == ("processed", f"{DESTINATION}/plan (1).pdf")
    else:
        assert rig.tree() == kept
        assert (result.status, result.exit_code, result.stats.flagged) == ("warn", 4, 2)
        assert items["a:b.txt"][0] == items["plan.pdf"][0] == "remediation"
    again = await rig.run(job)
    assert again.stats.transferred == 0


@pytest.mark.parametrize("empty_containers", ["create", "skip"])
async def test_empty_containers_on_procore(rig: ProcoreRig, empty_containers: str) -> None:
    rig.source.tree.update(copy.deepcopy(WITH_EMPTIES))
    job = await rig.job(empty_containers=empty_containers, filter=FILTER_TMP)
    result = await rig.run(job)
    assert (result.status, result.exit_code) == ("completed", 0)
    with_files = {"full": None, "full/f.txt": b"f"}
    if empty_containers == "create":
        assert rig.tree() == {**with_files, "empty": None, "empty/deeper": None,
                              "filtered": None, "filtered/sub": None}
    else:
        assert rig.tree() == with_files
    again = await rig.run(job)
    assert (again.status, again.stats.folders_created) == ("no_changes", 0)


async def test_a_renamed_duplicate_of_a_truncated_name_is_accepted_by_procore(
        rig: ProcoreRig) -> None:
    rig.source.tree.update({LONG_FOLDER: {"N" * 200 + "A.pdf": b"a", "N" * 200 + "B.pdf": b"b"}})
    job = await rig.job(segment_truncate=True, duplicate_names="rename")
    result = await rig.run(job)
    assert (result.stats.failed, result.stats.transferred) == (0, 2)
    assert len([data for data in rig.tree().values() if data is not None]) == 2



async def test_a_renamed_duplicate_never_adds_a_version_to_a_document_only_in_procore(
        rig: ProcoreRig) -> None:
    site = b"the site's own document"
    rig.world.add_file(rig.project, f"{DESTINATION}/plan (1).pdf", site)  # type: ignore[attr-defined]
    rig.source.tree.update({"Plan.pdf": b"upper case", "plan.pdf": b"lower case"})
    job = await rig.job(duplicate_names="rename")
    await rig.run(job)
    assert rig.tree()["plan (1).pdf"] == site
    assert rig.world.versions(rig.project, f"{DESTINATION}/plan (1).pdf") == 1  # type: ignore[attr-defined]
    assert rig.tree()["plan (2).pdf"] == b"lower case"
