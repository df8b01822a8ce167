"""The achieved rate of a job's bandwidth throttle against the rate it is set to.

Several streams (as a job's parallel file transfers) push chunks through one shared
`core.engine.throttle.Throttle` on the real clock for about --seconds each, at each rate of
--rates. Each row prints the bytes through, the time, the achieved rate and its ratio to the
configured one: overall (the first second's burst included, so a little above 1.0) and after
the burst (what a long transfer sees; the target is 0.98 to 1.01).

    python bench/throttle.py [--rates 65536,1048576,16777216] [--streams 4] [--seconds 5]
        [--chunk 65536]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

from machine import describe_checkout, load_average  # bench/machine.py

from core.engine.throttle import Throttle, throttled


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="65536,1048576,16777216",
                        help="configured rates in bytes per second, comma-separated")
    parser.add_argument("--streams", type=int, default=4, help="parallel transfers")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--chunk", type=int, default=65536, help="chunk size in bytes")
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


if __name__ == "__main__":
    main()
