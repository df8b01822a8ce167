"""Live progress of a job as Server-Sent Events: `GET v1/jobs/{id}/events`.

The stream reads the state file about once a second, so a run in any process (the agent,
`serve`'s scheduler, `jobs run`, the app) is seen. Events, each with an `id:`:
- `progress`: the job's newest execution (DryvIQ's JobExecution, as v1/jobs/history gives it)
  on connecting, and whenever it changes (while a run goes, about every second);
- `rate_limit`: a run paused for the API budget, and its resume (`paused` true, then false);
- `flagged`: each item that became flagged (status remediation), as v1/transfers/items
  gives items, with `job_id` and `execution_id`;
- `finished`: an execution ended (its final body), after every item it flagged;
- `removed` / `revoked`: the last event when the job was removed or the stream's token
  revoked (checked every few seconds), `{job_id, message}`; a reconnect would be refused.
A `: keepalive` comment comes when nothing else did for 15 seconds. The stream stays open
for the next runs; `?once=1` follows one run to its end and then ends the stream, for curl
and scripts: the run going now, else the one asked to start, else the newest (whose end then
comes at once). When the server stops, each stream ends at once with a comment saying so
(EventSource reconnects to the server's next start).

Event ids are `EXECUTION.FLAGGED_SINCE` (milliseconds), `.end` added once that execution's
`finished` was sent. Reconnecting with `Last-Event-ID` carries on from there: the end of a
run that finished meanwhile is sent, and items flagged since. Memory per stream is bounded:
the items it already sent of the last few seconds, at most FLAG_BATCH read per look."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from core import control
from core.api.context import Api, api_of
from core.api.jobs import find_execution, job_of, switch
from core.api.shapes import execution_body
from core.api.tokens import ApiToken, find_token
from core.api.transfers import api_item
from core.home import Home
from core.leases import job_running
from core.readout import PauseWatch
from core.sides import recorded_stats
from core.state import ITEM_COLUMNS, ItemRecord, JobRecord, State

POLL = 1.0  # seconds between looks at the state file
KEEPALIVE = 15.0  # seconds of silence before a keepalive comment
TOKEN_CHECK = 5.0  # seconds between checks that the stream's token was not revoked
RETRY_MS = 2000  # how soon a client reconnects after losing the stream
# items are committed in batches a moment after they were recorded, so each look goes back
# this far and skips those already sent
FLAG_SLACK = 2.0
FLAG_BATCH = 200  # flagged items read per look at most (the rest come with the next looks)


@dataclass
class Position:
    """Where a stream is: the execution it follows (0: none yet), whether that one's end
    was sent, and the time after which flagged items are new."""

    execution_id: int = 0
    ended: bool = False
    flagged_since: float = 0.0

    @property
    def event_id(self) -> str:
        text = f"{self.execution_id}.{int(self.flagged_since * 1000)}"
        return text + ".end" if self.ended else text

    @classmethod
    def parse(cls, text: str | None) -> Position | None:
        """The position a Last-Event-ID names; None when it names none."""
        parts = (text or "").strip().split(".")
        if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) < 19 for p in parts[:2]):
            return None
        if len(parts) == 3 and parts[2] != "end":
            return None
        return cls(int(parts[0]), len(parts) == 3, int(parts[1]) / 1000)


@dataclass(frozen=True)
class Event:
    kind: str
    body: dict[str, Any]
    id: str

    @property
    def text(self) -> str:
        return f"id: {self.id}\nevent: {self.kind}\ndata: {json.dumps(self.body)}\n\n"


class JobWatch:
    """Turns what the state file says of one job, look after look, into events."""

    def __init__(self, state: State, home: Home, job: JobRecord, at: Position, *,
                 newest_end: bool = False) -> None:
        """`newest_end`: on a first connection, send the end of the newest run even when it
        ended before (`once` with no run asked for: that run is the one to follow)."""
        self.state, self.home, self.job, self.at = state, home, job, at
        self.newest_end = newest_end
        self.removed = False  # the job is gone: the stream ends
        self.shown: tuple[Any, ...] | None = None  # the progress last sent
        self.pauses = PauseWatch()
        self.sent_flags: dict[tuple[str, float], None] = {}  # recent items sent, in order
        self.flag_backlog = False  # the last look read a full batch of new flagged items
        self.first = True

    def _event(self, kind: str, body: dict[str, Any]) -> Event:
        """An event, its id the position reached with it."""
        return Event(kind, body, self.at.event_id)

    async def look(self) -> list[Event]:
        newest = next(iter(await self.state.executions(self.job.id, 1)), None)
        if newest is None and not await self.state.find_jobs(self.job.id):
            self.removed = True
            return []
        # a run's flagged items come before its end (`once` ends the stream there); while
        # more wait than a look reads, the end waits for them
        events = await self._flagged()
        if self.flag_backlog:
            return events
        alive = await job_running(self.state, self.home, self.job.id)
        if newest is not None and newest.id != self.at.execution_id:
            if self.at.execution_id and not self.at.ended:
                events += await self._end_of(self.at.execution_id)
            # on a first connect the newest run's end is old news: its progress says it
            fresh = self.first and self.at.execution_id == 0
            self.at.execution_id, self.at.ended = newest.id, False
            self.shown, self.pauses = None, PauseWatch()
            if fresh and newest.ended_at is not None and not self.newest_end:
                self.at.ended = True
        if newest is not None:
            body = execution_body(newest, alive=alive)
            shown = (body["status_detail"], body["phase"], newest.heartbeat_at)
            if shown != self.shown:
                self.shown = shown
                events.append(self._event("progress", body))
            events += [self._event("rate_limit", self._pause(body, kind, text))
                       for kind, text in self.pauses(recorded_stats(newest.stats))]
            if body["end_time"] is not None and not self.at.ended:
                self.at.ended = True
                events.append(self._event("finished", body))
        self.first = False
        return events

    def last(self, kind: str, message: str) -> Event:
        """The event that ends the stream (`removed`, `revoked`), saying why."""
        return self._event(kind, {"job_id": self.job.id, "message": message})

    async def _end_of(self, execution_id: int) -> list[Event]:
        """The end of the run followed until a newer one started."""
        execution = await find_execution(self.state, execution_id)
        if execution is None or execution.job_id != self.job.id:
            return []
        self.at.ended = True
        return [self._event("finished", execution_body(execution, alive=False))]

    def _pause(self, body: dict[str, Any], kind: str, text: str) -> dict[str, Any]:
        paused = kind == "paused"
        return {"job_id": self.job.id, "execution_id": body["id"], "paused": paused,
                "until": int(self.pauses.until) if paused and self.pauses.until else None,
                "message": text}

    async def _flagged(self) -> list[Event]:
        since = self.at.flagged_since - (0 if self.first else FLAG_SLACK)
        rows = await self.state.db.execute_fetchall(
            f"SELECT {', '.join(ITEM_COLUMNS)} FROM items WHERE job_id = ? AND "
            "status = 'remediation' AND updated_at > ? ORDER BY updated_at, path LIMIT ?",
            (self.job.id, since, FLAG_BATCH))
        events = []
        for row in rows:
            item = ItemRecord(*row)
            key = (item.path, item.updated_at)
            if key in self.sent_flags:
                continue
            self.sent_flags[key] = None
            self.at.flagged_since = max(self.at.flagged_since, item.updated_at)
            events.append(self._event("flagged", self._item(item)))
        self.flag_backlog = len(rows) == FLAG_BATCH and bool(events)
        horizon = self.at.flagged_since - FLAG_SLACK
        for key in [key for key in self.sent_flags if key[1] <= horizon]:
            del self.sent_flags[key]
        return events

    def _item(self, item: ItemRecord) -> dict[str, Any]:
        item.is_dir = bool(item.is_dir)
        return api_item(self.job, item) | {"execution_id": item.execution_id}


async def _stream(watch: JobWatch, once: bool, api: Api,
                  token: ApiToken | None) -> AsyncIterator[str]:
    """Events until the client goes (Starlette then cancels this), or after the first
    `finished` with `once`; a last event when the job is removed or the token revoked, a
    last comment when the server stops."""
    yield f"retry: {RETRY_MS}\n\n"
    quiet_since = checked_at = time.monotonic()
    while True:
        for event in await watch.look():
            yield event.text
            quiet_since = time.monotonic()
            if once and event.kind == "finished":
                return
        if watch.removed:
            yield watch.last("removed", "the job was removed").text
            return
        if time.monotonic() - checked_at >= TOKEN_CHECK:
            checked_at = time.monotonic()
            if token is not None and await find_token(api.state, token.id) is None:
                yield watch.last("revoked", f"the token {token.name!r} was revoked").text
                return
        if time.monotonic() - quiet_since >= KEEPALIVE:
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()
        if not watch.flag_backlog:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(api.stopping.wait(), POLL)
        if api.stopping.is_set():
            yield ": the server is stopping\n\n"
            return


async def job_events(request: Request) -> Response:
    job = await job_of(request)
    api = api_of(request)
    once = switch(request, "once")
    at = Position.parse(request.headers.get("last-event-id"))
    # once, with no run going and none asked for, follows the newest run: it has ended
    newest_end = at is None and once and await control.pending_for(api.state, job.id) is None
    watch = JobWatch(api.state, api.home, job, at or Position(flagged_since=time.time()),
                     newest_end=newest_end)
    return StreamingResponse(
        _stream(watch, once, api, request.scope["state"]["token"]),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


routes: list[BaseRoute] = [Route("/v1/jobs/{id}/events", job_events, methods=["GET"])]
