"""Bandwidth throttles: a job's `performance.upload/download.bytes_per_second`.

A Throttle is a token bucket shared by every file a job moves in one direction, so files in
parallel stay under the rate together. It holds at most `burst` seconds of bytes, so a job
that waited (listing, an API call) sends at most about one second's worth at once.

What "upload" and "download" mean: the bytes this machine sends to, and receives from, a
remote platform (Procore; later SMB and rclone remotes), as its network link sees them. A file
copied from Procore to a local folder is downloaded; from a local folder to Procore, uploaded;
from one Procore project to another, both (the bytes come in and go out again). A job between
two local folders is neither, and runs unthrottled: a local disk (and a share mounted into
it, whose traffic the operating system carries) is not the link these settings protect, and
its kernel copy never passes through Python's hands. A connector is remote when it cannot
hand out its files as local files (`Features.local_files` is False).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from core.connectors.base import Features

BURST = 1.0  # seconds of bytes a full bucket holds


class Throttle:
    """A token bucket of `bytes_per_second`, holding at most `burst` seconds of bytes.

    `take(n)` returns once `n` bytes may pass. Callers queue in turn (a lock), so a large
    file cannot starve a small one; a chunk larger than the bucket is paid for by waiting
    for the bytes it lacks. `clock` and `sleep` are injectable so tests run on a fake clock.
    """

    def __init__(self, bytes_per_second: int, *, burst: float = BURST,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        if bytes_per_second < 1:
            raise ValueError(f"a throttle needs a positive rate, not {bytes_per_second}")
        self.rate = bytes_per_second
        self.capacity = max(1, int(bytes_per_second * burst))
        self.waited = 0.0  # seconds spent waiting for bytes, for a monitor to show
        self._clock, self._sleep = clock, sleep
        self._tokens = float(self.capacity)
        self._last = clock()
        self._turn = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def take(self, size: int) -> None:
        """Wait until `size` more bytes may pass."""
        async with self._turn:
            self._refill()
            self._tokens -= size
            if self._tokens >= 0:
                return
            delay = -self._tokens / self.rate
            try:
                await self._sleep(delay)
            except asyncio.CancelledError:
                self._tokens += size  # those bytes never went
                raise
            self.waited += delay
            self._refill()


@dataclass(frozen=True, slots=True)
class JobThrottles:
    """A job's two throttles, each None when its rate is unset."""

    upload: Throttle | None = None
    download: Throttle | None = None

    @classmethod
    def of(cls, upload_bytes_per_second: int | None,
           download_bytes_per_second: int | None) -> JobThrottles:
        """The throttles of a job's Transfer (its upload/download_bytes_per_second)."""
        return cls(*(Throttle(rate) if rate else None
                     for rate in (upload_bytes_per_second, download_bytes_per_second)))

    def between(self, reading: Features, writing: Features) -> tuple[Throttle, ...]:
        """The throttles a file read from one connector and written to the other passes:
        download where it is read from a remote platform, upload where it is written to one."""
        chosen = (self.download if remote(reading) else None,
                  self.upload if remote(writing) else None)
        return tuple(throttle for throttle in chosen if throttle is not None)


def remote(features: Features) -> bool:
    """Whether a connector's bytes cross the network link (see the module's docstring)."""
    return not features.local_files


async def throttled(chunks: AsyncIterable[bytes], *throttles: Throttle | None,
                    ) -> AsyncIterator[bytes]:
    """`chunks` as they may pass every throttle given (None ones are ignored). A chunk larger
    than a bucket goes in bucket-sized pieces, so no burst exceeds what the bucket holds;
    closing this closes `chunks`."""
    active = [throttle for throttle in throttles if throttle is not None]
    piece = min((throttle.capacity for throttle in active), default=0)
    async with contextlib.AsyncExitStack() as stack:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            stack.push_async_callback(close)
        async for chunk in chunks:
            if not active or not chunk:
                yield chunk
                continue
            view = memoryview(chunk)
            for start in range(0, len(chunk), piece):
                part = view[start:start + piece]
                for throttle in active:
                    await throttle.take(len(part))
                yield chunk if len(part) == len(chunk) else part.tobytes()
