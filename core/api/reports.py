"""Reports and stored analyses over the API.

Reports, as DryvIQ serves them (reference/dryviq-jobs.md §6: a report is a job category):
`GET v1/reports` (`{id, name, description, parameters: {job_category_id}, stats}`), `GET
v1/reports/{id}`, and its `stats` (SDK `TransferJobStatistics`: `v1/transfers/{job}/stats` over
all its jobs at once, plus our category `totals`), `jobs` and `items` (the items of its jobs, as
`transfers/items` gives them). `{id}` is the category's id, or its name.

Analyses (dryviq-tui's own; DryvIQ has no such resource): `GET v1/analysis` lists the stored
ones, newest first, each as a summary; `GET v1/analysis/{id}` is one whole, as `analyze --json`
prints it. Nothing here starts a walk: an analysis is made by `analyze` or the app."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.analyze import Analysis
from core.api.context import api_of
from core.api.envelope import listing, not_found, page_of, single
from core.api.transfer_stats import breakdowns, timeline
from core.api.transfers import ItemQuery, item_statuses
from core.reports import CategoryError, find_category, report, reports
from core.state import Category, State


async def _category(request: Request) -> Category:
    wanted = request.path_params["id"]
    try:
        return await find_category(api_of(request).state, wanted)
    except CategoryError:
        raise not_found("report", wanted) from None


async def list_reports(request: Request) -> Response:
    page = page_of(request)
    every = await reports(api_of(request).state)
    shown = every[page.offset:page.offset + page.limit]
    return listing("reports", [r.as_dict() for r in shown], page, len(every), request)


async def one_report(request: Request) -> Response:
    found, _ = await report(api_of(request).state, await _category(request))
    return single("report", found.as_dict())


async def report_stats(request: Request) -> Response:
    state = api_of(request).state
    found, members = await report(state, await _category(request))
    job_ids = [member.job.id for member in members]
    category = found.category
    return single("stats", {"id": category.id, "name": category.name}
                  | await breakdowns(state, job_ids)
                  | {"timeline": await timeline(state, job_ids),
                     "totals": found.totals.as_dict()})


async def report_jobs(request: Request) -> Response:
    page = page_of(request)
    _, members = await report(api_of(request).state, await _category(request))
    shown = members[page.offset:page.offset + page.limit]
    return listing("jobs", [m.as_dict() for m in shown], page, len(members), request)


async def report_items(request: Request) -> Response:
    page = page_of(request)
    statuses = item_statuses(request)
    state = api_of(request).state
    category = await _category(request)
    jobs = [job for job in await state.find_jobs() if job.category_id == category.id]
    return await ItemQuery(jobs, statuses).listing(request, page)


# -- analyses -----------------------------------------------------------------------------

_SUMMARY = ("id", "connection_id", "path", "against_connection_id", "against_path",
            "started_at", "finished_at")
_FROM_RESULT = ("connection", "platform", "against", "files", "folders", "bytes",
                "flagged_count")


def _summary(row: Any) -> dict[str, Any]:
    summary = dict(zip(_SUMMARY + _FROM_RESULT, row, strict=True))
    summary["path"] = "/" + summary["path"]
    if summary["against_path"] is not None:
        summary["against_path"] = "/" + summary["against_path"]
    return summary


async def _analysis_rows(state: State, where: str, args: tuple[Any, ...],
                         extra: str = "") -> list[Any]:
    picked = ", ".join((*_SUMMARY, *(state.json_value("result", key) for key in _FROM_RESULT)))
    return list(await state.db.execute_fetchall(
        f"SELECT {picked}{extra} FROM analyses {where}", args))


async def list_analyses(request: Request) -> Response:
    page = page_of(request)
    state = api_of(request).state
    rows = await _analysis_rows(state, "ORDER BY id DESC LIMIT ? OFFSET ?",
                                (page.limit, page.offset))
    (total,), = await state.db.execute_fetchall("SELECT COUNT(*) FROM analyses")
    return listing("analyses", [_summary(row) for row in rows], page, total, request)


async def one_analysis(request: Request) -> Response:
    wanted = request.path_params["id"]
    number = wanted.isascii() and wanted.isdigit() and len(wanted) < 19
    rows = await _analysis_rows(api_of(request).state, "WHERE id = ?", (int(wanted),),
                                ", result") if number else []
    if not rows:
        raise not_found("analysis", wanted)
    *summary, result = rows[0]
    analysis = Analysis.from_dict(json.loads(result))
    return single("analysis", _summary(summary) | {"result": analysis.as_dict()})


routes: list[BaseRoute] = [
    Route("/v1/reports", list_reports, methods=["GET"]),
    Route("/v1/reports/{id}", one_report, methods=["GET"]),
    Route("/v1/reports/{id}/stats", report_stats, methods=["GET"]),
    Route("/v1/reports/{id}/jobs", report_jobs, methods=["GET"]),
    Route("/v1/reports/{id}/items", report_items, methods=["GET"]),
    Route("/v1/analysis", list_analyses, methods=["GET"]),
    Route("/v1/analysis/{id}", one_analysis, methods=["GET"]),
]
