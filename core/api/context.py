"""What every request handler of the API reaches through `request.app.state.api`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from core.home import Home
from core.state import State


@dataclass
class Api:
    """The open home and state the API serves, and how it is reached."""

    home: Home
    state: State
    public_url: str  # how clients reach this server, e.g. http://127.0.0.1:9090
    loopback_only: bool = True  # bound to a loopback address: refuse anything else
    # per-process data of the areas (the sign-in page's pending sign-ins, say), by area name
    areas: dict[str, Any] = field(default_factory=dict)
    # set when the server starts stopping: open responses (event streams) end at once, so
    # the stop does not wait for them and cut them
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def api_of(request: Any) -> Api:
    """The Api of the app serving `request` (a Starlette Request or WebSocket)."""
    return request.app.state.api
