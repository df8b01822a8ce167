"""Who runs a home's schedules, agent > serve > app: a job started over the API runs in `serve`,
never in an open app (or a `web` tab) that may close; each says who schedules; a second serve
waits for the first; the agent names serve; a run a person paused says so."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core import control, scheduling
from core.cli.agent import note_line
from core.home import Home
from core.scheduler import Holder, agent_lock
from core.scheduling import Scheduling, schedule_unless_agent
from tests.api import served_api
from tests.core.test_api_jobs import folders, held_copies, job_json, wait_for

HERE = f"pid {os.getpid()} on {socket.gethostname()}"


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_app_leaves_the_schedules_to_serve_and_both_leave_them_to_an_agent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "HANDOVER", 0.05)
    released = held_copies(monkeypatch)
    async with served_api(Home(tmp_path / "home")) as served:
        await folders(served, tmp_path, files=2)
        seen: dict[str, list[Scheduling]] = {"app": [], "serve": [], "second serve": []}
        notes: list[str] = []
        launched_by_app: list[str] = []

        async def app_launch(job, stop, agent, scheduled):  # type: ignore[no-untyped-def]
            launched_by_app.append(job.name)

        def start(name: str, **extra: object) -> asyncio.Task[None]:
            return asyncio.create_task(schedule_unless_agent(
                served.state, served.home, name.rpartition(" ")[2],
                on_change=seen[name].append, **extra))  # type: ignore[arg-type]

        def now(name: str) -> str:
            return seen[name][-1].words if seen[name] else ""

        app = start("app", launch=app_launch)
        await until(lambda: now("app").startswith("Schedules: run by this app"), "the app")
        serve = start("serve", on_note=lambda note: notes.append(note_line(note)))
        second: asyncio.Task[None] | None = None
        try:
            await until(lambda: now("serve") == "Schedules: run by this server (no agent on "
                        "this home)", "serve to take the schedules from the app")
            assert now("app") == f"Schedules: run by the API server (serve), {HERE}"

            # a job started over the API runs in serve; a pause over the API says so
            job = (await served.client.post("/v1/jobs", json=job_json(
                "Slow", performance={"parallel_writes": {"requested": 1}}))).json()["job"]
            url = f"/v1/jobs/{job['id']}"
            await served.client.patch(url, params={"start": 1})
            await wait_for(served.client, job["id"], "running")
            await served.client.patch(url, params={"pause": 1})
            while await control.pending_for(served.state, job["id"]):
                await asyncio.sleep(0.05)
            released.set()
            await wait_for(served.client, job["id"], "interrupted")
            await until(lambda: any(n.startswith("finished") for n in notes), "the run's end")
            assert launched_by_app == []
            assert notes[0] == "started Slow (on request)"
            assert notes[1].startswith("finished Slow: interrupted") and notes[1].endswith(
                "; paused on request"), notes

            second = start("second serve")  # serves HTTP, leaves the schedules to the first
            await until(lambda: now("second serve") == now("app"), "the second serve")
            lock = agent_lock(served.home)
            assert await lock.acquire(Holder("build-01:4242", "agent", time.time()))
            try:
                agent = "Schedules: run by the agent, pid 4242 on build-01"
                await until(lambda: now("serve") == now("second serve") == now("app") == agent,
                            "all to leave the schedules to the agent")
            finally:
                lock.release()
            await until(lambda: now("serve").startswith("Schedules: run by this server"),
                        "serve to take the schedules back")
            serve.cancel()  # the second serve takes over, and the app leaves them to it
            await until(lambda: now("second serve").startswith("Schedules: run by this server")
                        and now("app").startswith("Schedules: run by the API server"),
                        "the second serve to take over")
            second.cancel()
            await until(lambda: now("app").startswith("Schedules: run by this app"),
                        "the app to take the schedules back")
            assert launched_by_app == []
        finally:
            for task in (app, serve, second):
                if task is not None:
                    task.cancel()
            await asyncio.gather(app, serve, *([second] if second else []),
                                 return_exceptions=True)


def test_the_agent_names_serve_when_it_waits_for_it() -> None:
    since = time.time()
    assert Holder("build-01:2017", "serve", since).describe().startswith(
        "the API server (serve, pid 2017 on build-01, since ")
    assert Holder("build-01:2017", "app", since).describe().startswith(
        "the app (pid 2017 on build-01, since ")
