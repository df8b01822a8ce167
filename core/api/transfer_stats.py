"""Statistics of a set of jobs as DryvIQ's SDK `TransferJobStatistics` says them (`GET
v1/transfers/{job}/stats` for one job, `v1/reports/{id}/stats` for a category's): breakdowns of
their items `by_status`, `by_category` (our items' actions: what a run did with each, there being
no audit categories), `by_ext` and `by_size` (files only), each key holding `{source: {files,
folders, bytes}, destination: {…}}` (the source side: every item recorded; the destination side:
those delivered there); and a `timeline` of their executions.

Every breakdown is one SQL aggregate over the jobs' items: nothing reads an item into Python,
so a million items cost a few scans of their own rows."""

from __future__ import annotations

from typing import Any

from core.analysis_tally import SIZE_BUCKETS, extension
from core.api.shapes import EXECUTION_STATUS
from core.schedule import failed_to_start
from core.state import EXECUTION_COLUMNS, JobRecord, State, execution_of

# an item whose file or folder is at the destination now, as core/items_report.py says
_DELIVERED = ("status IN ('success', 'processed') AND destination_path IS NOT NULL "
              "AND action NOT LIKE 'delete%'")
# a file's name, and its extension as typed (from the name's last dot; none for ".profile")
_NAME = "substr(path, length(rtrim(path, replace(path, '/', ''))) + 1)"
_DOT = "length(rtrim(name, replace(name, '.', '')))"
_RAW_EXTENSION = f"CASE WHEN {_DOT} > 1 THEN substr(name, {_DOT}) ELSE '' END"
_SIZE_LABEL = "CASE " + " ".join(
    f"WHEN size < {bound} THEN '{label}'" for bound, label in SIZE_BUCKETS if bound) + \
    f" ELSE '{SIZE_BUCKETS[-1][1]}' END"
# of each group: files, folders and file bytes recorded; and the same delivered
_SUMS = ("COUNT(CASE WHEN is_dir = 0 THEN 1 END), COUNT(CASE WHEN is_dir != 0 THEN 1 END), "
         "SUM(CASE WHEN is_dir = 0 THEN size ELSE 0 END), "
         "COUNT(CASE WHEN delivered AND is_dir = 0 THEN 1 END), "
         "COUNT(CASE WHEN delivered AND is_dir != 0 THEN 1 END), "
         "SUM(CASE WHEN delivered AND is_dir = 0 THEN size ELSE 0 END)")


def counts(files: int, folders: int, size: float) -> dict[str, int]:
    return {"files": int(files), "folders": int(folders), "bytes": int(size)}


def _of_jobs(job_ids: list[str]) -> str:
    return f"job_id IN ({', '.join('?' * len(job_ids))})"


async def _breakdown(state: State, job_ids: list[str], key: str,
                     files_only: bool = False) -> dict[str, dict[str, Any]]:
    rows = await state.db.execute_fetchall(
        f"SELECT {key} AS k, {_SUMS} FROM (SELECT *, {_NAME} AS name, ({_DELIVERED}) AS "
        f"delivered FROM items WHERE {_of_jobs(job_ids)}"
        f"{' AND is_dir = 0' if files_only else ''}) AS chosen GROUP BY k ORDER BY k", job_ids)
    return {row[0]: {"source": counts(*row[1:4]), "destination": counts(*row[4:7])}
            for row in rows}


def _merged(by_raw: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Extensions as typed ("PDF", "pdf") merged under the analysis's label (".pdf")."""
    merged: dict[str, dict[str, Any]] = {}
    for raw, sides in by_raw.items():
        label = extension("x" + raw)
        into = merged.setdefault(label, {side: counts(0, 0, 0) for side in sides})
        for side, numbers in sides.items():
            for name, value in numbers.items():
                into[side][name] += value
    return dict(sorted(merged.items()))


def _in_size_order(by_label: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {label: by_label[label] for _, label in SIZE_BUCKETS if label in by_label}


async def breakdowns(state: State, job_ids: list[str]) -> dict[str, Any]:
    """The items of all `job_ids` by status, by category, by extension and by size."""
    return {
        "by_status": await _breakdown(state, job_ids, "status"),
        "by_category": await _breakdown(state, job_ids, "action"),
        "by_ext": _merged(await _breakdown(state, job_ids, _RAW_EXTENSION, files_only=True)),
        "by_size": _in_size_order(await _breakdown(state, job_ids, _SIZE_LABEL,
                                                    files_only=True))}


_TIMELINE_FIELDS = ("transferred", "folders_created", "bytes", "added_source", "updated_source",
                   "bytes_to_source", "skipped", "flagged", "failed")


async def timeline(state: State, job_ids: list[str]) -> list[dict[str, Any]]:
    """Each execution of `job_ids`, oldest first: its job, when it started, how it ended
    (DryvIQ's execution status; ours in status_detail), what it wrote to each side and what it
    skipped, flagged and failed."""
    rows = await state.db.execute_fetchall(
        f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE {_of_jobs(job_ids)} ORDER BY id",
        job_ids)
    entries = []
    for execution in map(execution_of, rows):
        got = {name: int(execution.stats.get(name) or 0) for name in _TIMELINE_FIELDS}
        status = EXECUTION_STATUS.get(execution.status, "failed")
        if failed_to_start(execution):
            status = "failed_to_start"
        sent_back = got["added_source"] + got["updated_source"]
        entries.append({
            "timestamp": execution.started_at, "job_id": execution.job_id,
            "execution_id": execution.id, "end_time": execution.ended_at,
            "status": status, "status_detail": execution.status,
            "stats": {"transferred": {
                "source": counts(sent_back, 0, got["bytes_to_source"]),
                "destination": counts(got["transferred"] - sent_back, got["folders_created"],
                                      got["bytes"] - got["bytes_to_source"])}},
            "skipped": got["skipped"], "flagged": got["flagged"], "failed": got["failed"]})
    return entries


async def job_stats(state: State, job: JobRecord) -> dict[str, Any]:
    return ({"id": job.id, "name": job.name} | await breakdowns(state, [job.id])
            | {"timeline": await timeline(state, [job.id])})
