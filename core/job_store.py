"""Creating and finding jobs: validation against existing connections, shared by CLI and TUI."""

from __future__ import annotations

import json
from collections.abc import Collection

from core.connections import overlap
from core.home import Home
from core.jobs import Job, JobError, job_object, parse_job
from core.leases import excluding
from core.paths import NAME_MAX, name_key
from core.reports import CategoryError, NewCategory, choose_category, join_category
from core.state import Category, Connection, JobRecord, State


class JobLookupError(LookupError):
    """No job, or more than one, answers to the name given."""


async def create_job(state: State, text: str) -> tuple[JobRecord, list[str]]:
    """Validate job JSON `text` and store it verbatim, in the category it names (made if new);
    returns the job and its warnings. Raises JobError naming every problem, connections and
    category ids that do not exist included."""
    job, found, category, warnings = await _checked(state, text)
    return await state.add_job(job, text, found[0].id, found[1].id,
                               await join_category(state, category)), warnings


async def _checked(state: State, text: str, editing: str | None = None,
                   ) -> tuple[Job, list[Connection], Category | NewCategory, list[str]]:
    """The job `text` stands for, its source and destination connections, its category, and
    warnings; `editing` is the id of the job `text` replaces (its own name is not a
    duplicate)."""
    job = parse_job(text)
    errors: list[str] = []
    twin = await job_named(state, job.name, other_than=editing)
    if twin is not None:
        errors.append(f"name: a job named {twin.name!r} already exists (id {twin.id})")
    endpoints = (("transfer.source.connection.id", job.transfer.source.connection),
                 ("transfer.destination.connection.id", job.transfer.destination.connection))
    found = []
    for where, wanted in endpoints:
        connection = await state.find_connection(wanted)
        if connection is None:
            known = ", ".join(repr(c.name) for c in await state.list_connections()) or "none"
            errors.append(f'{where}: no connection with id or name "{wanted}" '
                          f"(existing connections: {known})")
        else:
            found.append(connection)
    try:
        category: Category | NewCategory = await choose_category(state, job)
    except CategoryError as exc:
        errors.append(str(exc))
    if errors:
        raise JobError(errors)
    clash = overlap(found[0], job.transfer.source.path, found[1], job.transfer.destination.path)
    if clash:
        raise JobError([f"transfer.destination.target.path: {clash}"])
    return job, found, category, list(job.warnings)


async def job_named(state: State, name: str, *, other_than: str | None = None,
                    ) -> JobRecord | None:
    """The job whose name is `name` as name_key compares them, other than job `other_than`
    (the one being edited), or None."""
    key = name_key(name)
    return next((job for job in await state.find_jobs()
                 if job.id != other_than and name_key(job.name) == key), None)


async def find_job(state: State, id_or_name: str) -> JobRecord:
    jobs = await state.find_jobs(id_or_name)
    if not jobs:
        known = ", ".join(repr(j.name) for j in await state.find_jobs()) or "none yet"
        raise JobLookupError(f"no job named or with id {id_or_name!r} (jobs: {known})")
    if len(jobs) > 1:
        raise JobLookupError(f"{len(jobs)} jobs are named {id_or_name!r}; use an id: "
                             + ", ".join(j.id for j in jobs))
    return jobs[0]


# -- editing and copying a stored job (the app's edit and duplicate) ---------------------------


async def update_job(home: Home, state: State, old: JobRecord, text: str,
                     ) -> tuple[JobRecord, list[str]]:
    """Replace a job's definition with `text`, validated as at create; its id and history stay.
    A new source or destination starts with no item records, so the next run compares every
    file afresh. Raises JobError, also when another job already has the new name, and JobBusy
    while the job runs (its run lock is held for the change, so no run starts half-way)."""
    job, found, category, warnings = await _checked(state, text, editing=old.id)
    endpoints = (found[0].id, job.transfer.source.path, found[1].id, job.transfer.destination.path)
    async with excluding(state, home, old.id):
        if endpoints != (old.source_connection_id, old.source_path,
                         old.destination_connection_id, old.destination_path):
            await state.forget_items(old.id)  # first: a crash in between only costs a recheck
        return await state.update_job(old, job, text, found[0].id, found[1].id,
                                      await join_category(state, category)), warnings


async def remove_job(home: Home, state: State, job: JobRecord) -> None:
    """Remove a job with its history and item records; JobBusy while it runs, here or in
    another process (the run lock is held for the removal)."""
    async with excluding(state, home, job.id):
        await state.remove_job(job.id)


def copy_name(name: str, taken: Collection[str]) -> str:
    """The first free "NAME (copy)", "NAME (copy 2)", ... among the names `taken` (compared
    as name_key compares them)."""
    keys = {name_key(other) for other in taken}
    number = 1
    while True:
        suffix = " (copy)" if number == 1 else f" (copy {number})"
        candidate = name[:NAME_MAX - len(suffix)].rstrip() + suffix  # a long name is shortened
        if name_key(candidate) not in keys:
            return candidate
        number += 1


async def duplicate_job(state: State, job: JobRecord) -> tuple[JobRecord, list[str]]:
    """A new job with `job`'s definition under a free name like "NAME (copy)"."""
    definition = json.loads(job.definition)
    document, _ = job_object(definition)
    document["name"] = copy_name(job.name, {j.name for j in await state.find_jobs()})
    return await create_job(state, json.dumps(definition, indent=2, ensure_ascii=False))
