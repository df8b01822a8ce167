"""The bandwidth throttle on a fake clock: bytes released per simulated second, never the
wall clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.connectors.base import Features
from core.engine.throttle import JobThrottles, Throttle, throttled
from tests.core import test_policies
from tests.core.test_policies import Rig

RATE = 1000  # bytes per second


class FakeClock:
    """Simulated time: it moves only when a throttle sleeps, by exactly what it asked for.
    `released` records (time, bytes) for every chunk let through."""

    def __init__(self) -> None:
        self.now = 0.0
        self.released: list[tuple[float, int]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)  # let the other streams run, as a real sleep would

    def throttle(self, rate: int = RATE) -> Throttle:
        return Throttle(rate, clock=self, sleep=self.sleep)

    async def drain(self, chunks: AsyncIterator[bytes],
                    log: list[tuple[float, int]] | None = None) -> bytes:
        received = []
        async for chunk in chunks:
            for released in (self.released, log if log is not None else []):
                released.append((self.now, len(chunk)))
            received.append(chunk)
        return b"".join(received)

    def released_by(self, moment: float) -> int:
        return sum(size for at, size in self.released if at <= moment + 1e-9)


async def source(data: bytes, chunk: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start:start + chunk]


async def test_a_full_bucket_lets_one_second_through_at_once_then_the_rate_holds() -> None:
    clock = FakeClock()
    await clock.drain(throttled(source(b"x" * 5000), clock.throttle()))
    assert clock.released_by(0.0) == 1000  # the burst: one second's worth, no wait
    for second in range(1, 5):
        assert clock.released_by(second) == 1000 + second * RATE
    assert clock.now == pytest.approx(4.0)


async def test_parallel_streams_share_one_rate_and_take_turns() -> None:
    clock = FakeClock()
    shared = clock.throttle()
    streams = [bytes([n]) * 10_000 for n in range(3)]
    logs: list[list[tuple[float, int]]] = [[], [], []]
    received = await asyncio.gather(*(clock.drain(throttled(source(data), shared), log)
                                      for data, log in zip(streams, logs, strict=True)))
    assert received == streams  # every byte, in order, per stream
    # 30,000 bytes at 1,000 per second, the first 1,000 free: 29 simulated seconds
    assert clock.now == pytest.approx(29.0)
    for second in range(30):  # never more than the rate plus the burst, at any moment
        assert clock.released_by(second) <= RATE * (second + 1)
    half = clock.now / 2
    # once the burst is spent (by whichever stream started first), they take turns
    by_stream = [sum(size for at, size in log if 1 < at <= half) for log in logs]
    assert max(by_stream) - min(by_stream) <= 100  # one chunk apart: nobody starves


async def test_an_idle_bucket_refills_to_one_second_and_no_more() -> None:
    clock = FakeClock()
    throttle = clock.throttle()
    await clock.drain(throttled(source(b"x" * 1000), throttle))
    assert clock.now == 0.0
    clock.now = 60.0  # a long listing: a minute without transfers
    await clock.drain(throttled(source(b"x" * 3000), throttle))
    assert clock.released_by(60.0) == 2000  # the first file and one second's burst
    assert clock.now == pytest.approx(62.0)


async def test_a_chunk_larger_than_the_bucket_goes_in_bucket_sized_pieces() -> None:
    clock = FakeClock()
    data = bytes(range(256)) * 20  # 5,120 bytes in one chunk
    assert await clock.drain(throttled(source(data, chunk=len(data)), clock.throttle())) == data
    assert [size for _, size in clock.released] == [1000] * 5 + [120]
    assert [at for at, _ in clock.released] == pytest.approx([0, 1, 2, 3, 4, 4.12])


async def test_download_and_upload_together_go_at_the_slower_rate() -> None:
    clock = FakeClock()
    down, up = clock.throttle(2000), clock.throttle(500)
    await clock.drain(throttled(source(b"x" * 10_500), down, up))
    assert clock.now == pytest.approx(20.0)  # (10,500 - 500 free) / 500
    assert (down.waited, up.waited) == (0.0, pytest.approx(20.0))


async def test_without_a_throttle_chunks_pass_unchanged_and_at_once() -> None:
    clock = FakeClock()
    chunks = [b"a" * 7, b"", b"b" * 70_000]
    async def given() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk
    assert [c async for c in throttled(given(), None)] == chunks
    assert clock.now == 0.0


async def test_closing_the_throttled_stream_closes_the_source_stream() -> None:
    closed = []

    async def reading() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 100
        finally:
            closed.append(True)

    clock = FakeClock()
    stream = throttled(reading(), clock.throttle())
    await anext(stream)
    await stream.aclose()
    assert closed == [True]


async def test_a_cancelled_wait_gives_its_bytes_back() -> None:
    never = asyncio.Event()

    async def stuck(seconds: float) -> None:
        await never.wait()

    clock = FakeClock()
    throttle = Throttle(RATE, clock=clock, sleep=stuck)
    await throttle.take(1000)  # the burst
    waiting = asyncio.create_task(throttle.take(500))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    clock.now = 1.0  # one second refills the whole bucket: nothing is owed for the 500
    await asyncio.wait_for(throttle.take(1000), 1)


def test_a_rate_below_one_byte_per_second_is_refused() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        Throttle(0)


LOCAL = Features(local_files=True)
REMOTE = Features(local_files=False)  # Procore, later SMB and rclone remotes


@pytest.mark.parametrize(("reading", "writing", "expected"), [
    (LOCAL, REMOTE, ("upload",)),  # a local folder to Procore
    (REMOTE, LOCAL, ("download",)),  # Procore to a local folder
    (REMOTE, REMOTE, ("download", "upload")),  # Procore to Procore: in and out again
    (LOCAL, LOCAL, ()),  # a disk to a disk: no network link to protect
])
def test_upload_means_sent_to_a_remote_platform_and_download_received_from_one(
        reading: Features, writing: Features, expected: tuple[str, ...]) -> None:
    throttles = JobThrottles.of(upload_bytes_per_second=100, download_bytes_per_second=200)
    chosen = throttles.between(reading, writing)
    named = {id(throttles.upload): "upload", id(throttles.download): "download"}
    assert tuple(named[id(throttle)] for throttle in chosen) == expected
    assert (throttles.upload.rate, throttles.download.rate) == (100, 200)


def test_a_job_without_rates_has_no_throttles() -> None:
    throttles = JobThrottles.of(None, None)
    assert throttles.between(REMOTE, REMOTE) == ()
    only_up = JobThrottles.of(1 << 20, None)
    assert only_up.between(REMOTE, REMOTE) == (only_up.upload,)


# -- the engine passes a job's transfers through its throttles ---------------------------------

rig = test_policies.rig  # the fixture: an in-memory source, a local destination folder


async def test_a_job_passes_what_it_reads_from_a_remote_platform_through_its_download_throttle(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[tuple[int, int]] = []  # (the throttle's rate, bytes)
    take = Throttle.take

    async def recorded(self: Throttle, size: int) -> None:
        taken.append((self.rate, size))
        await take(self, size)

    monkeypatch.setattr(Throttle, "take", recorded)
    assert not rig.source.features.local_files  # the in-memory source stands for Procore
    rig.source.tree.update({"a.pdf": b"a" * 300, "sub": {"b.pdf": b"b" * 200}})
    job = await rig.job(performance={"upload": {"bytes_per_second": 1 << 30},
                                     "download": {"bytes_per_second": 1 << 29}})
    result = await rig.run(job)
    assert (result.status, rig.tree()["sub/b.pdf"]) == ("completed", b"b" * 200)
    # downloaded once; the destination is a local folder, so nothing is uploaded
    assert {rate for rate, _ in taken} == {1 << 29}
    assert sum(size for _, size in taken) == 500
