"""The pacer on a real state file, with a virtual clock so waits are exact and instant."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from core.connectors.base import BudgetSpent, Retryable
from core.home import ConfigError
from core.pacer import BudgetStore, Pacer, ResponseLost, Usage, pacer_settings
from core.state import State

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START
        self.starts: list[float] = []  # when each call was let through

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture
async def state(tmp_path):
    state = await State.open(tmp_path / "state.db")
    yield state
    await state.close()


@pytest.fixture
async def stores(state):
    opened: list[BudgetStore] = []

    def make() -> BudgetStore:
        opened.append(BudgetStore(state.path))
        return opened[-1]

    yield make
    for store in opened:
        await store.close()


def pacer(store: BudgetStore, clock: Clock, **options) -> Pacer:
    return Pacer(store, "client@api.example", clock=clock, sleep=clock.sleep, **options)


def headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {"X-Rate-Limit-Limit": str(limit), "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": str(int(reset))}


async def calls(p: Pacer, clock: Clock, n: int, usage: Usage | None = None) -> None:
    for _ in range(n):
        await p.acquire(usage or Usage())
        clock.starts.append(clock.now)


async def test_calls_are_spread_to_fit_the_spike_window(stores) -> None:
    clock = Clock()
    p = pacer(stores(), clock)
    await p.observe(httpx.Response(200, headers=headers(5, 4, START + 10)))
    await calls(p, clock, 12)
    for i, start in enumerate(clock.starts):
        in_window = [s for s in clock.starts[i:] if s < start + 10]
        assert len(in_window) <= 5
    assert clock.now - START < 26  # evenly spaced, not stalled: 12 calls at 5 per 10 s


async def test_a_job_stops_at_the_reserve_and_browsing_goes_on(stores) -> None:
    clock = Clock()
    job = pacer(stores(), clock, wait=False)
    browse = pacer(stores(), clock, interactive=True)
    await job.observe(httpx.Response(200, headers=headers(100, 12, START + 1800)))
    await calls(job, clock, 2)  # 12 -> 10 left: the 10% reserve
    with pytest.raises(BudgetSpent) as spent:
        await job.acquire(Usage())
    assert spent.value.until == START + 1800
    await calls(browse, clock, 10)  # the reserve is browsing's
    assert clock.now == START


async def test_a_waiting_job_continues_after_the_hourly_reset(stores) -> None:
    clock = Clock()
    job = pacer(stores(), clock)
    usage = Usage()
    await job.observe(httpx.Response(200, headers=headers(100, 10, START + 600)))
    await calls(job, clock, 1, usage)
    assert clock.starts[0] >= START + 600
    assert usage.rate_limit_waits == 1
    assert usage.waiting_until is None  # cleared once the wait is over


async def test_a_429_holds_every_pacer_of_the_client_until_the_reset(stores) -> None:
    clock = Clock()
    first, second = pacer(stores(), clock), pacer(stores(), clock)  # as two processes
    await first.observe(httpx.Response(429, headers=headers(25, 0, START + 7), text="slow"))
    await calls(second, clock, 1)
    assert clock.starts[0] >= START + 7


async def test_retry_after_is_honoured(stores) -> None:
    clock = Clock()
    p = pacer(stores(), clock)
    await p.observe(httpx.Response(503, headers={"Retry-After": "30"}))
    await calls(p, clock, 1)
    assert clock.starts[0] >= START + 30


async def test_two_processes_share_one_spike_budget(stores) -> None:
    clock = Clock()
    a, b = pacer(stores(), clock), pacer(stores(), clock)
    await a.observe(httpx.Response(200, headers=headers(4, 4, START + 10)))
    for _ in range(4):
        await calls(a, clock, 1)
        await calls(b, clock, 1)
    assert clock.starts[4] >= START + 10  # the fifth call of the pair waits for the window


async def test_request_retries_server_errors_and_waits_out_429s(stores) -> None:
    clock = Clock()
    p = pacer(stores(), clock)
    answers = [httpx.Response(502), httpx.Response(429, headers=headers(10, 0, START + 5)),
               httpx.Response(200, json={"ok": True})]

    async def send() -> httpx.Response:
        return answers.pop(0)

    usage = Usage()
    response = await p.request(send, usage)
    assert response.json() == {"ok": True}
    assert usage.api_calls == 3 and usage.rate_limited == 1
    assert clock.now >= START + 5


async def test_a_create_whose_answer_is_lost_is_not_retried_blindly(stores) -> None:
    clock = Clock()
    p = pacer(stores(), clock)

    async def send() -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection")

    with pytest.raises(ResponseLost):
        await p.request(send, Usage(), idempotent=False)


async def test_request_gives_up_after_bounded_retries(stores) -> None:
    clock = Clock()
    p = pacer(stores(), clock)
    sent = 0

    async def send() -> httpx.Response:
        nonlocal sent
        sent += 1
        return httpx.Response(500)

    with pytest.raises(Retryable, match="500"):
        await p.request(send, Usage())
    assert sent == 6
    assert clock.now - START < 120  # backoff is bounded


def test_pacer_settings_are_checked() -> None:
    assert pacer_settings({"pacer": {"reserve": 0.2, "hourly_limit": 600}}) == {
        "reserve": 0.2, "default_hourly": 600}
    with pytest.raises(ConfigError, match="reserve"):
        pacer_settings({"pacer": {"reserve": 1.5}})
    with pytest.raises(ConfigError, match="hourly_limit"):
        pacer_settings({"pacer": {"hourly_limit": "lots"}})


async def test_the_budget_survives_in_the_state_file(state, stores) -> None:
    clock = Clock()
    await pacer(stores(), clock).observe(
        httpx.Response(200, headers=headers(600, 42, START + 3000)))
    budget = (await state.rate_budgets())["client@api.example"]  # as the app shows it
    assert (budget["hourly_limit"], budget["hourly_remaining"]) == (600, 42)


async def test_a_stop_ends_a_wait_for_the_hourly_reset_as_paused(stores) -> None:
    stop = asyncio.Event()
    p = Pacer(stores(), "client@api.example", stop=stop)  # the real clock and sleep
    await p.observe(httpx.Response(200, headers=headers(100, 5, time.time() + 1800)))
    asyncio.get_running_loop().call_later(0.1, stop.set)
    started = time.monotonic()
    with pytest.raises(BudgetSpent):
        await p.acquire(Usage())
    assert time.monotonic() - started < 5


async def test_a_job_that_does_not_wait_stops_at_a_long_429_too(stores) -> None:
    clock = Clock()
    job = pacer(stores(), clock, wait=False)
    await job.observe(httpx.Response(429, headers=headers(3600, 0, START + 3000)))
    with pytest.raises(BudgetSpent) as spent:
        await job.acquire(Usage())
    assert spent.value.until == START + 3000 and clock.now == START
