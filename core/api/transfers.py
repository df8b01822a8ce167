"""Transfer items and job statistics, as DryvIQ serves them (reference/dryviq-jobs.md §8):
`GET v1/transfers/items?jobs=&item_status=` (and `.csv`), `GET v1/transfers/items/flagged`,
`GET|PATCH v1/transfers/items/{id}` (`?retry=1`, `?ignore=1`), `GET v1/transfers/{job}/stats`.

An item is one path of one job (core/api/ids.py gives it its id). Pages are read with SQL
LIMIT/OFFSET over the items' primary key (job, path) and counted once, so a page of a job with
millions of items costs what a page of a small one does. Retry and ignore are
core/item_actions.py's: refused (409) while the job runs, so they never race a run."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from core.api.context import api_of
from core.api.envelope import (
    ApiError,
    Page,
    Serialized,
    flag,
    listing,
    not_found,
    page_of,
    single,
)
from core.api.ids import item_id, parse_item_id
from core.api.transfer_stats import job_stats
from core.home import JobBusy
from core.item_actions import NotActionable, ignore_item, retry_item
from core.items_report import CSV_COLUMNS, csv_row, dryviq_item, epoch_time
from core.state import ItemRecord, JobRecord, State, item_of
from core.status import ITEM_LABELS

ITEM_STATUSES = tuple(ITEM_LABELS)  # DryvIQ's item statuses, as the command line knows them
CSV_ROWS_PER_READ = 1000  # the CSV is read (and sent) this many items at a time
ITEMS_KEPT = 20_000  # items kept serialized for the pages (about 750 bytes each)


def api_item(job: JobRecord, item: ItemRecord) -> dict[str, Any]:
    """One item as DryvIQ's TransferItem, with the API's ids (and its job's)."""
    # set in place: no second dict for each item of a page
    body = dryviq_item(job, item, time_of=epoch_time)
    body["type"] = "container" if item.is_dir else "item"
    body["id"] = item_id(job.id, item.path)
    body["parent_id"] = item_id(job.id, item.parent) if item.parent else None
    body["job_id"] = job.id
    return body


async def find_jobs(state: State, text: str | None, field: str = "jobs") -> list[JobRecord]:
    """The jobs named in `text`, comma-separated ids or names (every job when it is absent);
    one that no job has is a 404 naming `field`."""
    if text is None:
        return await state.find_jobs()
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ApiError(400, f"{field} names no job: give job ids or names, comma-separated",
                       field=field)
    chosen: dict[str, JobRecord] = {}
    for wanted in names:
        found = await state.find_jobs(wanted)
        if not found:
            raise not_found("job", wanted, field)
        chosen.update((job.id, job) for job in found)
    return list(chosen.values())


async def one_job(state: State, wanted: str, field: str) -> JobRecord:
    """The job with this id, else the one job with this name: none is a 404, several of the
    name a 400 (names need not be unique), each naming `field`."""
    found = await state.find_jobs(wanted)
    exact = [job for job in found if job.id == wanted] or found
    if not exact:
        raise not_found("job", wanted, field)
    if len(exact) > 1:
        raise ApiError(400, f"{len(exact)} jobs are named {wanted!r}: give the job's id",
                       field=field)
    return exact[0]


def item_statuses(request: Request) -> list[str]:
    """The statuses `?item_status=` asks for (absent: any)."""
    text = request.query_params.get("item_status")
    wanted = [] if text is None else [part.strip().lower() for part in text.split(",")]
    unknown = [status for status in wanted if status not in ITEM_STATUSES]
    if unknown:
        raise ApiError(400, f"no item status {unknown[0]!r}; item_status takes "
                            f"{', '.join(ITEM_STATUSES)} (comma-separated)",
                       field="item_status")
    return wanted


class ItemQuery:
    """Items of some jobs, in some statuses (any, when none are given)."""

    def __init__(self, jobs: Sequence[JobRecord], statuses: Sequence[str]) -> None:
        self.jobs = {job.id: job for job in jobs}
        self.statuses = list(statuses)

    async def page(self, state: State, offset: int, limit: int) -> list[ItemRecord]:
        return await state.item_page(list(self.jobs), self.statuses, offset=offset,
                                     limit=limit)

    async def listing(self, request: Request, page: Page) -> Response:
        api = api_of(request)
        rows = await api.state.item_rows(list(self.jobs), self.statuses, offset=page.offset,
                                         limit=page.limit)
        total = await api.state.count_items(list(self.jobs), self.statuses)
        kept: Serialized = api.areas.setdefault("transfers.items", Serialized(ITEMS_KEPT))
        return listing("item", [self._serialized(kept, row) for row in rows], page, total,
                       request)

    def _serialized(self, kept: Serialized, row: tuple[Any, ...]) -> Any:
        """The item as JSON, kept by all it is made of: its row and its job's source."""
        job = self.jobs[row[0]]  # ITEM_COLUMNS begin with the job's id
        return kept.get((job.source_path, row), lambda: api_item(job, item_of(row)))


async def _query(request: Request, statuses: Sequence[str]) -> ItemQuery:
    state = api_of(request).state
    return ItemQuery(await find_jobs(state, request.query_params.get("jobs")), statuses)


async def items(request: Request) -> Response:
    page = page_of(request)
    return await (await _query(request, item_statuses(request))).listing(request, page)


async def flagged(request: Request) -> Response:
    page = page_of(request)
    return await (await _query(request, ["remediation"])).listing(request, page)


async def items_csv(request: Request) -> Response:
    """Every item the filters select, as `jobs items --csv` writes them, then the job's id:
    streamed a batch of rows at a time, so a job of a million items is never held whole."""
    query = await _query(request, item_statuses(request))
    state = api_of(request).state

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*CSV_COLUMNS, "job_id"])
        offset = 0
        while batch := await query.page(state, offset, CSV_ROWS_PER_READ):
            writer.writerows((*_with_api_ids(csv_row(query.jobs[i.job_id], i), i), i.job_id)
                             for i in batch)
            offset += len(batch)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()  # the header, when nothing was selected

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8")


def _with_api_ids(row: tuple[Any, ...], item: ItemRecord) -> tuple[Any, ...]:
    """A CSV row whose id and parent_id are the API's (the command line's are paths)."""
    parent = item_id(item.job_id, item.parent) if item.parent else ""
    return (item_id(item.job_id, item.path), parent, *row[2:])


async def _item(request: Request) -> tuple[JobRecord, ItemRecord]:
    text = request.path_params["id"]
    parsed = parse_item_id(text)
    state = api_of(request).state
    jobs = await state.find_jobs(parsed[0]) if parsed else []
    job = next((job for job in jobs if parsed and job.id == parsed[0]), None)
    record = await state.item(job.id, parsed[1]) if job and parsed else None
    if job is None or record is None:
        raise not_found("item", text)
    return job, record


async def item(request: Request) -> Response:
    """One item (GET), or a person's decision about it (PATCH): one route, so that a method
    it does not take is answered with both it takes."""
    if request.method == "PATCH":
        return await act_on_item(request)
    job, record = await _item(request)
    return single("item", api_item(job, record))


async def act_on_item(request: Request) -> Response:
    """`?retry=1`: back to the next run; `?ignore=1`: left by every run until retried."""
    retry, ignore = flag(request, "retry"), flag(request, "ignore")
    if retry == ignore:
        raise ApiError(400, "give one of ?retry=1 or ?ignore=1", field="retry")
    job, record = await _item(request)
    api = api_of(request)
    token = request.scope.get("state", {}).get("token")
    by = f"API token {token.name!r}" if token is not None else "the API"
    action = retry_item if retry else ignore_item
    try:
        changed = await action(api.state, api.home, job.id, record.path, by)
    except JobBusy:
        raise ApiError(409, f"the job {job.name!r} is running: wait for it to end (or pause "
                            "it), then ask again", code="job_running",
                       field="retry" if retry else "ignore") from None
    except NotActionable as exc:
        raise ApiError(409, str(exc), code="delivered",
                       field="retry" if retry else "ignore") from None
    if changed is None:  # a run dropped it meanwhile: gone from both sides
        raise not_found("item", request.path_params["id"])
    return single("item", api_item(job, changed))


async def stats(request: Request) -> Response:
    state = api_of(request).state
    return single("stats", await job_stats(state, await one_job(
        state, request.path_params["job"], "job")))


routes: list[BaseRoute] = [
    Route("/v1/transfers/items", items, methods=["GET"]),
    Route("/v1/transfers/items.csv", items_csv, methods=["GET"]),
    Route("/v1/transfers/items/flagged", flagged, methods=["GET"]),
    Route("/v1/transfers/items/{id}", item, methods=["GET", "PATCH"]),
    Route("/v1/transfers/{job}/stats", stats, methods=["GET"]),
]
