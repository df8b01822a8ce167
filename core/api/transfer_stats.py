"""A job's statistics as DryvIQ's `GET v1/transfers/{job}/stats` gives them (SDK
`TransferJobStatistics`): breakdowns of its items `by_status`, `by_category` (our items' actions:
what a run did with each, there being no audit categories), `by_ext` and `by_size` (files only),
each key holding `{source: {files, folders, bytes}, destination: {…}}` (the source side: every
item recorded; the destination side: those delivered there); and a `timeline` of its executions.

Everything is one SQL aggregate over the job's items (or executions): nothing reads an item
into Python, so a job of a million items costs a few scans of its own rows."""

from __future__ import annotations

from typing import Any

from core.analysis_tally import SIZE_BUCKETS, extension
from core.state import JobRecord, State

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
_SUMS = ("SUM(NOT is_dir), SUM(is_dir), TOTAL(CASE WHEN is_dir THEN 0 ELSE size END), "
         "SUM(delivered AND NOT is_dir), SUM(delivered AND is_dir), "
         "TOTAL(CASE WHEN delivered AND NOT is_dir THEN size ELSE 0 END)")


def counts(files: int, folders: int, size: float) -> dict[str, int]:
    return {"files": int(files), "folders": int(folders), "bytes": int(size)}


async def _breakdown(state: State, job_id: str, key: str,
                     files_only: bool = False) -> dict[str, dict[str, Any]]:
    rows = await state.db.execute_fetchall(
        f"SELECT {key} AS k, {_SUMS} FROM (SELECT *, {_NAME} AS name, ({_DELIVERED}) AS "
        f"delivered FROM items WHERE job_id = ?{' AND NOT is_dir' if files_only else ''}) "
        "GROUP BY k ORDER BY k", (job_id,))
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


async def timeline(state: State, job_id: str) -> list[dict[str, Any]]:
    """Each execution, oldest first: when it started, how it ended, what it wrote to each side
    and what it skipped, flagged and failed."""
    fields = ("transferred", "folders_created", "bytes", "added_source", "updated_source",
              "bytes_to_source", "skipped", "flagged", "failed")
    extracted = ", ".join(f"COALESCE(json_extract(stats, '$.{name}'), 0)" for name in fields)
    rows = await state.db.execute_fetchall(
        f"SELECT id, started_at, ended_at, status, {extracted} FROM executions "
        "WHERE job_id = ? ORDER BY id", (job_id,))
    entries = []
    for (execution_id, started, ended, status, transferred, folders, sent, added, updated,
         to_source, skipped, flagged, failed) in rows:
        entries.append({
            "timestamp": started, "execution_id": execution_id, "end_time": ended,
            "status": status,
            "stats": {"transferred": {
                "source": counts(added + updated, 0, to_source),
                "destination": counts(transferred - added - updated, folders,
                                      sent - to_source)}},
            "skipped": int(skipped), "flagged": int(flagged), "failed": int(failed)})
    return entries


async def job_stats(state: State, job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id, "name": job.name,
        "by_status": await _breakdown(state, job.id, "status"),
        "by_category": await _breakdown(state, job.id, "action"),
        "by_ext": _merged(await _breakdown(state, job.id, _RAW_EXTENSION, files_only=True)),
        "by_size": _in_size_order(await _breakdown(state, job.id, _SIZE_LABEL,
                                                    files_only=True)),
        "timeline": await timeline(state, job.id)}
