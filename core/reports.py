"""Categories and their reports: DryvIQ's `category` groups jobs, and a report is a category's
totals (jobs, executions, files and bytes moved, flagged, failed, API calls, time waiting for
the rate limit).

A job's `category` is `{"name": …}`, which joins the category of that name (names compared as
job names are, by core.paths.name_key) or creates it; `{"id": …}`, which joins an existing
one; or absent: DryvIQ's Default (-1). A name is kept verbatim: "Report {Name}" is one
category called "Report {Name}", not one per job named after it. DryvIQ documents no
expansion, and a category exists to group many jobs: expanding the job's name would give each
job a category of its own, and a report of one job is what `jobs history` already is.

The data functions return dataclasses whose `as_dict` follows DryvIQ's `GET v1/reports`
(`{id, name, description, parameters: {job_category_id}}`) and `reports/{id}/stats|jobs`,
for the CLI now and the REST API later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.jobs import Job
from core.paths import name_key
from core.state import DEFAULT_CATEGORY, Category, Execution, JobRecord, JobTotals, State


class CategoryError(LookupError):
    """A job's category id, or a category asked for by name or id, that does not exist."""


@dataclass(frozen=True)
class NewCategory:
    """A category a job names that does not exist yet: made when the job is saved."""

    name: str


async def choose_category(state: State, job: Job) -> Category | NewCategory:
    """The category `job` joins: the one its id names, the one its name matches, or a new one
    of that name. Raises CategoryError, naming `category.id` (or `category.name`, when both
    are given and disagree), for an id that no category has."""
    given = job.definition.get("category") or {}
    name, wanted = given.get("name"), given.get("id")
    known = await state.categories()
    if wanted is not None:
        found = next((c for c in known if str(c.id) == str(wanted).strip()), None)
        if found is None:
            raise CategoryError(f"category.id: no category with id {wanted!r} ("
                                f"{_listed(known)}); to make one, give a name instead")
        if name is not None and name_key(name) != name_key(found.name):
            raise CategoryError(f"category.name: category {found.id} is named "
                                f"{found.name!r}, not {name!r}")
        return found
    if name is None:
        return DEFAULT_CATEGORY
    key = name_key(name)
    return next((c for c in known if name_key(c.name) == key), NewCategory(name))


async def join_category(state: State, chosen: Category | NewCategory) -> Category:
    """The category chosen, made now if it is new."""
    return await state.add_category(chosen.name) if isinstance(chosen, NewCategory) else chosen


def _listed(categories: list[Category]) -> str:
    return "categories: " + ", ".join(f"{c.id} {c.name!r}" for c in categories)


@dataclass
class Totals:
    """A category's totals: its jobs' JobTotals added up."""

    jobs: int = 0
    executions: int = 0
    by_status: dict[str, int] = field(default_factory=dict)  # executions by their status
    files_moved: int = 0
    bytes_moved: int = 0
    flagged: int = 0  # items flagged now
    failed: int = 0  # items whose last attempt failed, retried by the next run
    api_calls: int = 0
    rate_limit_waits: int = 0
    rate_limit_wait_seconds: float = 0.0

    def add(self, job: JobTotals) -> None:
        self.jobs += 1
        self.executions += job.executions
        for status, runs in job.by_status.items():
            self.by_status[status] = self.by_status.get(status, 0) + runs
        self.files_moved += job.files_moved
        self.bytes_moved += job.bytes_moved
        self.flagged += job.flagged
        self.failed += job.failed
        self.api_calls += job.api_calls
        self.rate_limit_waits += job.rate_limit_waits
        self.rate_limit_wait_seconds += job.rate_limit_wait_seconds

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 3)}


@dataclass(frozen=True)
class Report:
    """A category and its totals (DryvIQ: a report is a category)."""

    category: Category
    totals: Totals

    def as_dict(self) -> dict[str, Any]:
        """DryvIQ's report object, with its stats."""
        category = self.category
        return {"id": category.id, "name": category.name, "description": category.description,
                "parameters": {"job_category_id": category.id},
                "stats": self.totals.as_dict()}


@dataclass(frozen=True)
class ReportJob:
    """One job of a category: its totals and its last execution."""

    job: JobRecord
    totals: JobTotals
    last: Execution | None

    def as_dict(self) -> dict[str, Any]:
        job, last, totals = self.job, self.last, asdict(self.totals)
        totals.pop("job_id")
        return {"id": job.id, "name": job.name, "transfer_type": job.transfer_type,
                "simulation_mode": job.simulation_mode, "status": job.status,
                "stats": totals | {"rate_limit_wait_seconds":
                                   round(self.totals.rate_limit_wait_seconds, 3)},
                "last_execution": None if last is None else {
                    "id": last.id, "status": last.status, "start_time": last.started_at,
                    "end_time": last.ended_at}}


async def reports(state: State) -> list[Report]:
    """Every category (Default first, then by name) with its totals."""
    categories = await state.categories()
    jobs = {job.id: job.category_id for job in await state.find_jobs()}
    totals = {category.id: Totals() for category in categories}
    for job in await state.job_totals():
        totals[jobs[job.job_id]].add(job)
    return [Report(category, totals[category.id]) for category in categories]


async def find_category(state: State, id_or_name: str) -> Category:
    """The category with this id, else the one with this name (compared as name_key does).
    Raises CategoryError listing the categories there are."""
    known = await state.categories()
    wanted = id_or_name.strip()
    found = next((c for c in known if str(c.id) == wanted), None) or next(
        (c for c in known if name_key(c.name) == name_key(id_or_name)), None)
    if found is None:
        raise CategoryError(f"no category named or with id {id_or_name!r} ({_listed(known)})")
    return found


async def report(state: State, category: Category) -> tuple[Report, list[ReportJob]]:
    """One category's report and its jobs (oldest first), each with its last execution."""
    jobs = [job for job in await state.find_jobs() if job.category_id == category.id]
    by_job = {totals.job_id: totals for totals in await state.job_totals()}
    members = [ReportJob(job, by_job[job.id],
                         next(iter(await state.executions(job.id, limit=1)), None))
               for job in jobs]
    totals = Totals()
    for member in members:
        totals.add(member.totals)
    return Report(category, totals), members
