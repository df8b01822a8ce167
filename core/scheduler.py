"""The scheduler: runs due jobs by themselves, in `dryviq-tui agent` and in the open app.

One scheduler per home at a time does the scheduling (a lock; a heartbeat row in `agents`);
jobs that share one Procore client's budget are ordered so that none starves and the pacer's
reserve for browsing holds. The clock is injectable, so tests run a week in seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Now, and waiting: the real one uses time.time and asyncio.sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
