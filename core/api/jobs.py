"""Jobs and their executions over the API, as DryvIQ serves them: `v1/jobs` (list, create,
and control of several with `?start=1&ids=` or `&category=`),
`v1/jobs/{id}` (get, edit, replace, remove, and control with `?start=1`, `pause=1`,
`resume=1`, `cancel=1`), and `v1/jobs/history` (executions; `.csv` as `jobs history --csv`).
`{id}` is a job's id or its name, as the command line takes them.

Creating and editing go through core.job_store, so a job is checked as `jobs create` and
`jobs update` check it: every problem is one entry of `errors[]`, its `field` the JSON path
in the job. An edit (PATCH with a body) is a JSON merge patch (RFC 7386) of the stored job:
the keys sent replace those stored, `null` removes one; PUT replaces the whole job. A job
read, changed and sent back carries the server's keys and `status` as GET showed it: those
are ignored, so only a start asks for a run (`?start=1`, never a status). Control writes a request
(core.control) that whichever process schedules or runs the job carries out: a start is
taken up by the scheduler when it has room (`serve` runs one when no agent does), a pause or
cancel by the run itself; a pause or cancel of a job whose start still waits withdraws it."""

from __future__ import annotations

import io
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core import control
from core.api.context import api_of
from core.api.envelope import (
    ApiError,
    Page,
    Problem,
    by_method,
    json_body,
    listing,
    not_found,
    page_of,
    single,
    whole_number,
)
from core.api.shapes import (
    SERVER_KEYS,
    definition_of,
    execution_body,
    execution_status,
    job_view,
)
from core.cli.output import write_csv
from core.history_csv import COLUMNS as HISTORY_COLUMNS
from core.history_csv import history_csv_row
from core.home import Home, JobBusy
from core.job_store import create_job, remove_job, update_job
from core.jobs import JobError
from core.leases import job_running
from core.state import EXECUTION_COLUMNS, NO_LIMIT, Execution, JobRecord, State, execution_of

# DryvIQ's control switches, and the request each writes (resume: start what was paused)
CONTROLS = {"start": "start", "resume": "start", "pause": "pause", "cancel": "cancel"}
_TOP = "(top level)"  # core's path for the job as a whole: no field to name
# a start asked for and not taken up yet: the scheduler may be busy with as many runs as it
# may run at once, so it waits (shapes' text promises seconds)
QUEUED = ("asked to start: queued until the scheduler has room for it (pause=1 or cancel=1 "
          "withdraws the request)")


def switch(request: Request, name: str) -> bool:
    """A DryvIQ switch in the query (`?start=1`): 1 or true is on, 0 or false (or none) off;
    anything else is a 400 naming it."""
    value = request.query_params.get(name)
    if value is None or value.lower() in ("0", "false"):
        return False
    if value.lower() in ("1", "true"):
        return True
    raise ApiError(400, f"{name} must be 1 or true (or 0 or false)", field=name)


async def job_of(request: Request, value: str | None = None, field: str = "id") -> JobRecord:
    """The job named by the path's `{id}` (or `value`): its id, else its unique name."""
    wanted = request.path_params["id"] if value is None else value
    jobs = await api_of(request).state.find_jobs(wanted)
    if not jobs:
        raise not_found("job", wanted, field)
    if len(jobs) > 1:
        raise ApiError(409, f"{len(jobs)} jobs are named {wanted!r}; use an id: "
                       + ", ".join(job.id for job in jobs), field=field)
    return jobs[0]


async def _view(request: Request, job: JobRecord) -> dict[str, Any]:
    api = api_of(request)
    asked = await control.pending_for(api.state, job.id)
    view = await job_view(api.state, api.home, job, asked.action if asked else None)
    if view["status"] == "start":
        view["status_reason"] = QUEUED
    return view


def _problems(exc: JobError) -> list[Problem]:
    """Core's errors ("transfer.source.connection.id: no connection ...") with their paths
    as fields."""
    problems = []
    for error in exc.errors:
        where, sep, _ = error.partition(": ")
        field = where if sep and " " not in where and where != _TOP else None
        problems.append(Problem("invalid", error, field))
    return problems


async def _job_text(request: Request) -> tuple[str, dict[str, Any]]:
    """The body's text as core reads it, and the job object in it: a bare job, DryvIQ's
    envelope {"type": "job", "job": …}, or the envelope without its type ({"job": …})."""
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a job object (or {\"job\": {…}})", code="bad_json")
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8", code="bad_json") from None
    if "job" in data and "type" not in data and not {"name", "transfer"} & data.keys():
        text = '{"type": "job", ' + text.lstrip()[1:]  # core reads the typed envelope
        data = {"type": "job", **data}
    inner = data["job"] if data.get("type") == "job" and "job" in data else data
    if not isinstance(inner, dict):
        raise ApiError(400, "job must be a job object", field="job")
    return text, inner


async def list_jobs(request: Request) -> Response:
    page = page_of(request)
    api = api_of(request)
    jobs = _in_category(request, await api.state.find_jobs())
    shown = jobs[page.offset:page.offset + page.limit]
    return listing("jobs", [await _view(request, job) for job in shown], page, len(jobs),
                   request)


def _in_category(request: Request, jobs: list[JobRecord]) -> list[JobRecord]:
    """The jobs of the category `?category=` names (its id or name), or all without one."""
    category = request.query_params.get("category")
    if not category:
        return jobs
    return [job for job in jobs if category == str(job.category_id)
            or job.category.casefold() == category.casefold()]


async def control_jobs(request: Request) -> Response:
    """The SDK's startMultiple() and pauseMultiple(): one switch for the jobs `?ids=` (ids or
    names, comma-separated) and `?category=` select. Each job it does not apply to (a start
    of one that runs, a pause of one that does not) is left as it is; the answer lists the
    jobs selected as they are now."""
    asked = _switches(request)
    if not asked:
        raise ApiError(400, "ask for start=1, pause=1, resume=1 or cancel=1 (jobs are "
                       "edited one at a time: PATCH v1/jobs/{id})", field="start")
    if await request.body():
        raise ApiError(409, f"?{asked[0]}=1 takes no body", field=asked[0])
    ids = request.query_params.get("ids")
    if not ids and not request.query_params.get("category"):
        raise ApiError(400, "name the jobs with ids= (ids or names, comma-separated) or "
                       "category=", field="ids")
    if ids:
        names = [wanted.strip() for wanted in ids.split(",")]
        if not all(names):
            raise ApiError(400, "ids must be job ids or names, comma-separated", field="ids")
        jobs = [await job_of(request, wanted, "ids") for wanted in names]
    else:
        jobs = await api_of(request).state.find_jobs()
    jobs = _in_category(request, list({job.id: job for job in jobs}.values()))
    for job in jobs:
        try:
            await _ask(request, job, asked)
        except ApiError as exc:
            if exc.status != 409:
                raise
    views = [await _view(request, job) for job in jobs]
    return listing("jobs", views, Page(0, max(1, len(views))), len(views), request)


def _switches(request: Request) -> list[str]:
    """The control switch the query turns on (`?start=1`), if any, as a list; two contradict
    each other: a 409, nothing is done."""
    if "reset" in request.query_params:
        raise ApiError(400, "reset is not supported: a run continues from its item records",
                       field="reset")
    asked = [name for name in CONTROLS if switch(request, name)]
    if len(asked) > 1:
        raise ApiError(409, f"ask for one of start, pause, resume, cancel at a time, not "
                       f"{' and '.join(asked)}", field=asked[1])
    return asked


async def add_job(request: Request) -> Response:
    text, _ = await _job_text(request)
    try:
        job, _ = await create_job(api_of(request).state, text)
    except JobError as exc:
        raise ApiError(400, "the job was not created", problems=_problems(exc)) from None
    return single("job", await _view(request, job), 201)


async def get_job(request: Request) -> Response:
    return single("job", await _view(request, await job_of(request)))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: `patch`'s keys replace `target`'s, recursively; a null removes a key."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


async def patch_job(request: Request) -> Response:
    job = await job_of(request)
    asked = _switches(request)
    if asked:
        if await request.body():
            raise ApiError(409, f"?{asked[0]}=1 takes no body: send changes and control "
                           "requests apart", field=asked[0])
        await _ask(request, job, asked)
        return single("job", await _view(request, job))
    if not await request.body():
        raise ApiError(400, "send the job's changes as JSON, or ?start=1, pause=1, resume=1 "
                       "or cancel=1", code="bad_json")
    return await _save(request, job, merge_patch(definition_of(job), await _changes(request, job)))


async def put_job(request: Request) -> Response:
    """The SDK's update(): the body is the whole job (a null is a key left out), checked as
    PATCH checks it."""
    job = await job_of(request)
    return await _save(request, job, merge_patch({}, await _changes(request, job)))


async def _changes(request: Request, job: JobRecord) -> dict[str, Any]:
    """The job object in the body without the server's keys. A `status` that is what GET
    shows now (read, changed and sent back), or other text (a server's status), leaves the
    stored one as it is; `paused` is job JSON's (an auto job waits for a manual first run), and core
    refuses what is not a string; `start` is refused: only ?start=1 asks for a run, so a
    job sent back never starts one."""
    _, changes = await _job_text(request)
    changes = {key: value for key, value in changes.items() if key not in SERVER_KEYS}
    if changes.get("status") is None:  # none, or null: removed
        return changes
    status = changes.pop("status")
    if isinstance(status, str) and (status == (await _view(request, job))["status"]
                                    or status not in ("start", "paused")):
        status = definition_of(job).get("status")
    elif status == "start":
        raise ApiError(400, 'status "start" starts a job only when it is created: ask for a '
                       "run with ?start=1", field="status")
    return changes if status is None else {**changes, "status": status}


async def _save(request: Request, job: JobRecord, document: dict[str, Any]) -> Response:
    text = json.dumps(document, indent=2, ensure_ascii=False)
    api = api_of(request)
    try:
        job, _ = await update_job(api.home, api.state, job, text)
    except JobError as exc:
        raise ApiError(400, "the job was not changed", problems=_problems(exc)) from None
    except JobBusy:
        raise ApiError(409, f"job {job.name!r} is running; pause or cancel it first") from None
    return single("job", await _view(request, job))


async def _ask(request: Request, job: JobRecord, asked: list[str]) -> None:
    """Ask for the one switch in `asked` on the job; a 409 when it does not apply now."""
    switch = asked[0]
    action = CONTROLS[switch]
    api = api_of(request)
    running = await control.job_runs(api.state, api.home, job.id)
    if action == "start" and running:
        raise ApiError(409, f"job {job.name!r} is running already", field=switch)
    if action != "start" and not running:
        if await _withdrawn(api.state, job.id):
            return
        # the scheduler may have just started it
        running = await control.job_runs(api.state, api.home, job.id)
    if action != "start" and not running:
        raise ApiError(409, f"job {job.name!r} is not running: nothing to {switch}",
                       field=switch)
    token = request.scope.get("state", {}).get("token")
    await control.request(api.state, job.id, action, f"api:{token.name if token else '?'}")


async def _withdrawn(state: State, job_id: str) -> bool:
    """Withdraw the job's start request that waits for the scheduler; False when there is
    none (or the scheduler took it meanwhile)."""
    asked = await control.pending_for(state, job_id)
    return asked is not None and asked.action == "start" and await control.take(state, asked)


async def delete_job(request: Request) -> Response:
    job = await job_of(request)
    api = api_of(request)
    try:
        await remove_job(api.home, api.state, job)
    except JobBusy:
        raise ApiError(409, f"job {job.name!r} is running; pause or cancel it first") from None
    return Response(status_code=204)


# -- executions (DryvIQ's job history) ---------------------------------------------------------


async def _executions(state: State, job_id: str | None, page: Page,
                      ) -> tuple[list[Execution], int]:
    """A page of the executions of job `job_id` (of every job with None), newest first, and
    how many there are."""
    where, args = ("WHERE job_id = ?", [job_id]) if job_id else ("", [])
    rows = await state.db.execute_fetchall(  # a negative limit: all of them
        f"SELECT {EXECUTION_COLUMNS} FROM executions {where} ORDER BY id DESC LIMIT ? OFFSET ?",
        [*args, page.limit if page.limit >= 0 else NO_LIMIT, page.offset])
    (total,), = await state.db.execute_fetchall(
        f"SELECT COUNT(*) FROM executions {where}", args)
    return [execution_of(row) for row in rows], total


async def find_execution(state: State, execution_id: int) -> Execution | None:
    rows = await state.db.execute_fetchall(
        f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?", (execution_id,))
    return execution_of(rows[0]) if rows else None


async def history(request: Request) -> Response:
    api = api_of(request)
    wanted = request.query_params.get("job")
    job = await job_of(request, wanted, "job") if wanted else None
    which = request.query_params.get("execution")
    if which is not None:
        return await _one_execution(request, job, which)
    page = page_of(request)
    executions, total = await _executions(api.state, job.id if job else None, page)
    alive: dict[str, bool] = {}
    for execution in executions:
        if execution.job_id not in alive:
            alive[execution.job_id] = await job_running(api.state, api.home,
                                                        execution.job_id)
    return listing("job_executions", [execution_body(e, alive=alive[e.job_id])
                                      for e in executions], page, total, request)


async def history_csv(request: Request) -> Response:
    """Every execution (of one job with `job`), newest first, as `jobs history --csv` writes
    them (the SDK's downloadCsv)."""
    api = api_of(request)
    wanted = request.query_params.get("job")
    job = await job_of(request, wanted, "job") if wanted else None
    executions, _ = await _executions(api.state, job.id if job else None,
                                      Page(0, -1))  # -1: no limit
    newest: dict[str, int] = {}
    for execution in executions:  # only a job's newest can run now
        newest.setdefault(execution.job_id, execution.id)
    running = {job_id for job_id in newest if await job_running(api.state, api.home, job_id)}
    out = io.StringIO()
    write_csv((history_csv_row(e, execution_status(e, alive=newest[e.job_id] == e.id
                                                   and e.job_id in running))
               for e in executions), HISTORY_COLUMNS, out)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")


async def _newest(state: State, home: Home, job: JobRecord | None, *,
                  running: bool) -> Execution | None:
    """The newest execution of `job` (of any job with None); with `running`, the newest one
    that runs now."""
    where = "WHERE job_id = ?" if job else "WHERE CAST(? AS TEXT) IS NULL"
    if running:
        where += " AND status = 'running'"
    rows = await state.db.execute_fetchall(
        f"SELECT {EXECUTION_COLUMNS} FROM executions {where} ORDER BY id DESC LIMIT 20",
        (job.id if job else None,))
    found = (execution_of(row) for row in rows)
    if not running:
        return next(found, None)
    # "running" rows of a process that died are left for its job's next run to settle
    for execution in found:
        if await job_running(state, home, execution.job_id):
            return execution
    return None


async def _one_execution(request: Request, job: JobRecord | None, which: str) -> Response:
    """`execution=last` (the newest), `current` (the one running now) or an execution id."""
    api = api_of(request)
    if which in ("last", "current"):
        newest = await _newest(api.state, api.home, job, running=which == "current")
        if newest is None:
            whose = f"job {job.name!r}" if job else "no job"
            raise ApiError(404, f"{whose} has no {which} execution", field="execution")
        return single("job_execution", execution_body(newest, alive=which == "current"
                                                      or await job_running(
                                                          api.state, api.home, newest.job_id)))
    if not which:
        raise ApiError(400, "execution must be last, current or an execution's id",
                       field="execution")
    execution = await find_execution(api.state, whole_number(request, "execution", 0))
    if execution is None or (job is not None and execution.job_id != job.id):
        raise not_found("execution", which, "execution")
    newest = next(iter(await api.state.executions(execution.job_id, 1)))
    alive = newest.id == execution.id and await job_running(api.state, api.home,
                                                            execution.job_id)
    return single("job_execution", execution_body(execution, alive=alive))


routes: list[BaseRoute] = [
    Route("/v1/jobs", by_method(GET=list_jobs, POST=add_job, PATCH=control_jobs),
          methods=["GET", "POST", "PATCH"]),
    # before /v1/jobs/{id}: "history" is not a job
    Route("/v1/jobs/history", history, methods=["GET"]),
    Route("/v1/jobs/history.csv", history_csv, methods=["GET"]),
    Route("/v1/jobs/{id}", by_method(GET=get_job, PATCH=patch_job, PUT=put_job,
                                     DELETE=delete_job),
          methods=["GET", "PATCH", "PUT", "DELETE"]),
]
