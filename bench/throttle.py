"""The achieved rate of a job's bandwidth throttle against the rate it is set to.

Several streams (as a job's parallel file transfers) push chunks through one shared
`core.engine.throttle.Throttle` on the real clock for about --seconds each, at each rate of
--rates. Each row prints the bytes through, the time, the achieved rate and its ratio to the
configured one: overall (the first second's burst included, so a little above 1.0) and after
the burst (what a long transfer sees; the target is 0.98 to 1.01).

Then (unless --no-job) one copy job runs through the real engine (`runner.run_job`): --files
files of --file-size bytes from a generated source that stands for a remote platform (it
hands out no local files, so its reads are downloads) to a temporary local folder, with
`performance.download.bytes_per_second` set to the first of --rates and --streams parallel
writes. Its row compares the job's bytes per second of transfer with that rate; a ratio far
above 1 means the engine does not pass its reads through the throttle.

    python bench/throttle.py [--rates 65536,1048576,16777216] [--streams 4] [--seconds 5]
        [--chunk 65536] [--files 40] [--file-size 262144] [--no-job]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from machine import describe_checkout, load_average  # bench/machine.py

from core.connectors.base import Connector, Entry, Features, NotFound
from core.engine.throttle import Throttle, throttled

PLATFORM = "bench-remote"  # a platform name only this benchmark uses


async def _chunks(chunk: bytes, until: float) -> AsyncIterator[bytes]:
    while time.monotonic() < until:
        yield chunk


async def _stream(chunks: AsyncIterator[bytes], throttle: Throttle) -> int:
    sent = 0
    async for piece in throttled(chunks, throttle):
        sent += len(piece)
    return sent


async def measure(rate: int, streams: int, seconds: float, chunk: int) -> tuple[int, float]:
    """Bytes through one shared throttle from `streams` streams, and the seconds it took."""
    throttle = Throttle(rate)
    data = b"\0" * chunk
    started = time.monotonic()
    until = started + seconds
    sent = await asyncio.gather(*(_stream(_chunks(data, until), throttle)
                                  for _ in range(streams)))
    return sum(sent), time.monotonic() - started


class RemoteFiles:
    """A read-only source of `files` files of `size` zero bytes in one folder, standing for a
    remote platform: it has no local files, so the engine reads it chunk by chunk."""

    features = Features(mtime_precision=1.0, can_set_mtime=False)

    def __init__(self, files: int, size: int, chunk: int) -> None:
        self.files, self.size, self.chunk = files, size, b"\0" * chunk

    async def list_dir(self, path: str) -> list[Entry]:
        if path:
            raise NotFound(path)
        return [Entry(f"file-{n:04d}.dat", False, size=self.size, mtime=1_790_000_000.0)
                for n in range(self.files)]

    async def stat(self, path: str) -> Entry:
        if path:
            raise NotFound(path)
        return Entry("", True)

    async def read(self, path: str, entry: Entry) -> AsyncIterator[bytes]:
        left = entry.size
        while left:
            piece = self.chunk[:left]
            left -= len(piece)
            yield piece

    async def write(self, path: str, chunks: AsyncIterable[bytes], **_: object) -> Entry:
        raise AssertionError("the source is never written")

    async def close(self) -> None:
        pass


async def measure_job(rate: int, streams: int, files: int, size: int,
                      chunk: int) -> tuple[int, float, str]:
    """A copy job's bytes, the seconds it spent transferring, and its status."""
    from core.connections import add_local
    from core.engine import runner
    from core.home import Home
    from core.job_store import create_job
    from core.state import State

    with tempfile.TemporaryDirectory(prefix="dryviq-throttle-") as folder:
        work = Path(folder)
        home = Home(work / "home")
        home.ensure()
        (work / "destination").mkdir()
        state = await State.open(home.state_path)
        try:
            await state.add_connection("remote-source", PLATFORM, {})
            await add_local(state, "local-destination", str(work / "destination"), fsync=False)
            record, _ = await create_job(state, json.dumps({"name": "throttle", "transfer": {
                "transfer_type": "copy",
                "source": {"connection": {"id": "remote-source"}, "target": {"path": "/"}},
                "destination": {"connection": {"id": "local-destination"},
                                "target": {"path": "/"}},
                "performance": {"parallel_writes": streams,
                                "download": {"bytes_per_second": rate}}}}))
            # Benchmark-only shortcut (as bench/plan_scale.py): the registry knows no such
            # platform, so the name the runner imported opens the generated source for it.
            real_open = runner.open_connector

            def open_connector(connection: Any, secrets: dict[str, Any],
                               opening: Any = None) -> Connector:
                if connection.platform == PLATFORM:
                    return RemoteFiles(files, size, chunk)  # type: ignore[return-value]
                return real_open(connection, secrets, opening)

            runner.open_connector = open_connector
            started = time.monotonic()
            result = await runner.run_job(state, home, record)
            elapsed = time.monotonic() - started
        finally:
            await state.close()
    return result.stats.bytes, elapsed, result.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="65536,1048576,16777216",
                        help="configured rates in bytes per second, comma-separated")
    parser.add_argument("--streams", type=int, default=4, help="parallel transfers")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--chunk", type=int, default=65536, help="chunk size in bytes")
    parser.add_argument("--files", type=int, default=40, help="files of the job")
    parser.add_argument("--file-size", type=int, default=262144, help="bytes per file")
    parser.add_argument("--no-job", action="store_true", help="skip the job through the engine")
    args = parser.parse_args()
    print(f"{describe_checkout()}; load average {load_average()}")
    print(f"{args.streams} streams of {args.chunk:,}-byte chunks, {args.seconds:g} s per rate")
    print(f"{'configured B/s':>15} {'bytes':>13} {'seconds':>8} {'achieved B/s':>13} "
          f"{'ratio':>6} {'after burst':>11}")
    for rate in (int(r) for r in args.rates.split(",")):
        sent, elapsed = asyncio.run(measure(rate, args.streams, args.seconds, args.chunk))
        burst = Throttle(rate).capacity
        print(f"{rate:>15,} {sent:>13,} {elapsed:>8.2f} {sent / elapsed:>13,.0f} "
              f"{sent / elapsed / rate:>6.3f} {(sent - burst) / elapsed / rate:>11.3f}")


    if args.no_job:
        return
    rate = int(args.rates.split(",")[0])
    sent, elapsed, status = asyncio.run(measure_job(rate, args.streams, args.files,
                                                    args.file_size, args.chunk))
    burst = Throttle(rate).capacity
    print(f"\na copy job ({status}) of {args.files} files of {args.file_size:,} bytes from a "
          f"remote-like source, download limited to {rate:,} B/s:")
    print(f"{rate:>15,} {sent:>13,} {elapsed:>8.2f} {sent / elapsed:>13,.0f} "
          f"{sent / elapsed / rate:>6.3f} {(sent - burst) / elapsed / rate:>11.3f}")
    print("(the job's seconds include opening the state and listing: its ratio runs a little "
          "under the streams')")


if __name__ == "__main__":
    main()
