"""The REST API served for real, in the test's event loop: uvicorn on a loopback port over a
home's state, with a write token and a read-only token, and an httpx client carrying the first.
`schedule=True` also runs the home's scheduler in the same process, as `dryviq-tui serve` does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import uvicorn

from core.api.app import build_app
from core.api.context import Api
from core.api.tokens import create_token
from core.home import Home
from core.state import State


@dataclass
class ServedApi:
    url: str  # http://127.0.0.1:PORT
    home: Home
    state: State
    token: str  # may write
    read_only_token: str
    client: httpx.AsyncClient  # base_url is `url`, sends `token`

    def client_with(self, token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@contextlib.asynccontextmanager
async def served_api(home: Home, *, schedule: bool = False) -> AsyncIterator[ServedApi]:
    home.ensure()
    state = await State.open(home.state_path)
    _, token = await create_token(state, "tests", read_only=False)
    _, read_only = await create_token(state, "tests-read-only", read_only=True)
    api = Api(home, state, public_url="")
    server = uvicorn.Server(uvicorn.Config(build_app(api), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    scheduling = None
    try:
        while not server.started:
            if serving.done():
                await serving
                raise RuntimeError("the API server did not start")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        api.public_url = f"http://127.0.0.1:{port}"
        if schedule:
            from core.scheduling import schedule_unless_agent

            scheduling = asyncio.create_task(schedule_unless_agent(state, home, "serve"))
        async with httpx.AsyncClient(base_url=api.public_url, timeout=30, headers={
                "Authorization": f"Bearer {token}"}) as client:
            yield ServedApi(api.public_url, home, state, token, read_only, client)
    finally:
        if scheduling is not None:
            scheduling.cancel()
            await asyncio.gather(scheduling, return_exceptions=True)
        server.should_exit = True
        await serving
        await state.close()
