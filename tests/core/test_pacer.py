"""The pacer on a real state file, with a virtual clock so waits are exact and instant."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time

import httpx
import pytest

from core.budget_postgres import PostgresBudgetStore
from core.connectors.base import BudgetSpent, Retryable
from core.home import ConfigError
from core.pacer import (
    Budgets,
    BudgetStore,
    Pacer,
    ResponseLost,
    Usage,
    budget_store_for,
    pacer_settings,
)
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


@pytest.fixture(params=["sqlite", "postgresql"])
async def state(request, tmp_path):
    """Each store's test runs on both: a state.db, and a shared state in PostgreSQL."""
    if request.param == "sqlite":
        state = await State.open(tmp_path / "state.db")
    else:
        state = await State.open_url(request.getfixturevalue("postgres_url"))
    yield state
    await state.close()


@pytest.fixture
async def stores(state):
    """Stores of the state's budget, as separate processes would have them. A shared state's
    store is on the database's clock, unless a test's virtual `clock` stands in for it."""
    opened: list[Budgets] = []

    def make(clock: Clock | None = None) -> Budgets:
        if state.shared is None:
            opened.append(BudgetStore(state.path))
        else:
            opened.append(PostgresBudgetStore(state.url, clock))
        return opened[-1]

    yield make
    for store in opened:
        await store.close()


def pacer(store: Budgets, clock: Clock, **options) -> Pacer:
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
    p = pacer(stores(clock), clock)
    await p.observe(httpx.Response(200, headers=headers(5, 4, START + 10)))
    await calls(p, clock, 12)
    for i, start in enumerate(clock.starts):
        in_window = [s for s in clock.starts[i:] if s < start + 10]
        assert len(in_window) <= 5
    assert clock.now - START < 26  # evenly spaced, not stalled: 12 calls at 5 per 10 s


async def test_a_job_stops_at_the_reserve_and_browsing_goes_on(stores) -> None:
    clock = Clock()
    job = pacer(stores(clock), clock, wait=False)
    browse = pacer(stores(clock), clock, interactive=True)
    await job.observe(httpx.Response(200, headers=headers(100, 12, START + 1800)))
    await calls(job, clock, 2)  # 12 -> 10 left: the 10% reserve
    with pytest.raises(BudgetSpent) as spent:
        await job.acquire(Usage())
    assert spent.value.until == START + 1800
    await calls(browse, clock, 10)  # the reserve is browsing's
    assert clock.now == START


async def test_a_waiting_job_continues_after_the_hourly_reset(stores) -> None:
    clock = Clock()
    job = pacer(stores(clock), clock)
    usage = Usage()
    await job.observe(httpx.Response(200, headers=headers(100, 10, START + 600)))
    await calls(job, clock, 1, usage)
    assert clock.starts[0] >= START + 600
    assert usage.rate_limit_waits == 1
    assert usage.waiting_until is None  # cleared once the wait is over


async def test_a_429_holds_every_pacer_of_the_client_until_the_reset(stores) -> None:
    clock = Clock()
    first, second = pacer(stores(clock), clock), pacer(stores(clock), clock)  # as two processes
    await first.observe(httpx.Response(429, headers=headers(25, 0, START + 7), text="slow"))
    await calls(second, clock, 1)
    assert clock.starts[0] >= START + 7


async def test_retry_after_is_honoured(stores) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    await p.observe(httpx.Response(503, headers={"Retry-After": "30"}))
    await calls(p, clock, 1)
    assert clock.starts[0] >= START + 30


async def test_two_processes_share_one_spike_budget(stores) -> None:
    clock = Clock()
    a, b = pacer(stores(clock), clock), pacer(stores(clock), clock)
    await a.observe(httpx.Response(200, headers=headers(4, 4, START + 10)))
    for _ in range(4):
        await calls(a, clock, 1)
        await calls(b, clock, 1)
    assert clock.starts[4] >= START + 10  # the fifth call of the pair waits for the window


async def test_request_retries_server_errors_and_waits_out_429s(stores) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
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
    p = pacer(stores(clock), clock)

    async def send() -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection")

    with pytest.raises(ResponseLost):
        await p.request(send, Usage(), idempotent=False)


async def test_request_gives_up_after_bounded_retries(stores) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
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
    await pacer(stores(clock), clock).observe(
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
    job = pacer(stores(clock), clock, wait=False)
    await job.observe(httpx.Response(429, headers=headers(3600, 0, START + 3000)))
    with pytest.raises(BudgetSpent) as spent:
        await job.acquire(Usage())
    assert spent.value.until == START + 3000 and clock.now == START


# -- the server's clock: resets and Retry-After dates read against the response's Date -------

AHEAD, BEHIND = 600.0, -600.0  # the server's clock against ours


def server_headers(offset: float, now: float, limit: int | None = None,
                   remaining: int | None = None, reset_in: float | None = None,
                   **extra: str) -> dict[str, str]:
    """A response's headers from a server whose clock is `offset` ahead of ours at `now`: its
    Date (whole seconds, cut as a server does) and a reset `reset_in` seconds after it."""
    server_now = now + offset
    found = {"Date": email.utils.formatdate(server_now, usegmt=True), **extra}
    if limit is not None and remaining is not None and reset_in is not None:
        found.update(headers(limit, remaining, math.floor(server_now) + reset_in))
    return found


@pytest.mark.parametrize("offset", [AHEAD, BEHIND])
async def test_a_spike_window_on_a_skewed_server_paces_without_pausing(stores, offset) -> None:
    clock = Clock()
    job = pacer(stores(clock), clock, wait=False)
    await job.observe(httpx.Response(200, headers=server_headers(offset, clock.now, 5, 4, 10)))
    await calls(job, clock, 12)  # a false "budget spent" would raise BudgetSpent here
    for i, start in enumerate(clock.starts):
        assert len([s for s in clock.starts[i:] if s < start + 10]) <= 5
    assert clock.now - START < 26


@pytest.mark.parametrize("offset", [AHEAD, BEHIND])
async def test_a_429_on_a_skewed_server_waits_for_the_reset(stores, offset) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    await p.observe(httpx.Response(429, headers=server_headers(offset, clock.now, 25, 0, 7)))
    await calls(p, clock, 1)
    assert START + 7 <= clock.starts[0] <= START + 8.5  # neither at once nor ten minutes on


@pytest.mark.parametrize("offset", [AHEAD, BEHIND])
async def test_an_hourly_reset_on_a_skewed_server_is_placed_on_our_clock(stores, offset) -> None:
    clock = Clock()
    job = pacer(stores(clock), clock, wait=False)
    await job.observe(httpx.Response(200, headers=server_headers(offset, clock.now, 100, 10,
                                                                 1800)))
    with pytest.raises(BudgetSpent) as spent:
        await job.acquire(Usage())
    assert START + 1800 <= spent.value.until <= START + 1801


@pytest.mark.parametrize("offset", [AHEAD, BEHIND])
async def test_retry_after_as_an_http_date_is_read_on_the_servers_clock(stores, offset) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    retry = email.utils.formatdate(math.floor(clock.now + offset) + 30, usegmt=True)
    await p.observe(httpx.Response(429, headers=server_headers(offset, clock.now,
                                                               **{"Retry-After": retry})))
    await calls(p, clock, 1)
    assert START + 30 <= clock.starts[0] <= START + 31.5


@pytest.mark.parametrize("offset", [AHEAD, BEHIND])
async def test_retry_after_in_seconds_needs_no_clock(stores, offset) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    await p.observe(httpx.Response(429, headers=server_headers(offset, clock.now,
                                                               **{"Retry-After": "30"})))
    await calls(p, clock, 1)
    assert START + 30 <= clock.starts[0] <= START + 30.5


@pytest.mark.parametrize("date", [None, "not a date"])
async def test_without_a_readable_date_the_reset_is_read_on_our_clock(stores, date) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    extra = {} if date is None else {"Date": date}
    await p.observe(httpx.Response(429, headers={**headers(25, 0, START + 7), **extra}))
    await calls(p, clock, 1)
    assert START + 7 <= clock.starts[0] <= START + 7.5


async def test_a_date_cut_to_the_second_never_lets_a_call_go_early(stores) -> None:
    clock = Clock()
    clock.now = START + 0.9  # the server's Date says START: it cut off the 0.9 s
    p = pacer(stores(clock), clock)
    await p.observe(httpx.Response(429, headers=server_headers(0, clock.now, 25, 0, 10)))
    await calls(p, clock, 1)
    assert START + 10 <= clock.starts[0] <= START + 11.5


# -- the two windows, and the hourly limit remembered across resets -------------------------


async def budget_of(state, key: str = "client@api.example") -> dict:
    return (await state.rate_budgets())[key]


async def test_the_hour_in_its_last_seconds_is_not_taken_for_the_spike(state, stores) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    await p.observe(httpx.Response(200, headers=server_headers(AHEAD, clock.now, 20, 19, 10)))
    # the hourly window shows up for the first time 8 seconds before its end
    await p.observe(httpx.Response(200, headers=server_headers(AHEAD, clock.now, 100, 14, 8)))
    budget = await budget_of(state)
    assert (budget["spike_limit"], budget["hourly_limit"]) == (20, 100)
    assert budget["hourly_remaining"] == 14


async def test_a_near_reset_that_is_not_the_known_hours_is_the_spikes(state, stores) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    await p.observe(httpx.Response(200, headers=server_headers(BEHIND, clock.now, 600, 300,
                                                               1200)))
    # a spike limit of 25, then raised to 40: both are the spike window's
    for limit in (25, 40):
        await p.observe(httpx.Response(200, headers=server_headers(BEHIND, clock.now, limit,
                                                                   limit - 1, 10)))
        budget = await budget_of(state)
        assert (budget["spike_limit"], budget["hourly_limit"]) == (limit, 600)
        assert budget["hourly_reset"] > START + 1000


async def test_equal_limits_after_a_reset_the_near_one_is_the_spike(state, stores) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    await calls(p, clock, 1)
    await p.observe(httpx.Response(200, headers=server_headers(AHEAD, clock.now, 100, 100, 10)))
    await p.observe(httpx.Response(200, headers=server_headers(AHEAD, clock.now, 100, 50, 40)))
    clock.now = START + 45  # the hour has reset
    await calls(p, clock, 1)
    await p.observe(httpx.Response(200, headers=server_headers(AHEAD, clock.now, 100, 99, 10)))
    budget = await budget_of(state)
    assert (budget["spike_limit"], budget["hourly_limit"]) == (100, 100)
    assert budget["hourly_reset"] == 0  # not the spike's: not yet stated for this window


async def test_the_reserve_holds_from_the_start_of_the_next_window(stores) -> None:
    """The issue's case: an hourly limit of 100 learned in the first window, then a window
    whose headers only ever name the spike: jobs stop at 90 and browsing has its 10."""
    clock = Clock()
    job = pacer(stores(clock), clock, wait=False)
    browse = pacer(stores(clock), clock, interactive=True)
    await calls(job, clock, 1)  # the first call of the window
    await job.observe(httpx.Response(200, headers=server_headers(AHEAD, clock.now, 100, 40, 40)))
    clock.now = START + 41  # the first window has reset
    taken = 0
    with pytest.raises(BudgetSpent) as spent:
        while True:
            await job.acquire(Usage())
            taken += 1
            await job.observe(httpx.Response(200, headers=server_headers(
                AHEAD, clock.now, 100, 100 - taken, 10)))  # the spike's, with the same limit
    assert taken == 90
    assert START + 41 + 40 <= spent.value.until <= START + 41 + 43  # the window's estimated end
    before = clock.now
    await calls(browse, clock, 10)
    assert clock.now - before < 2  # browsing did not wait for the reset


async def test_calls_in_flight_count_against_what_a_response_says_remains(stores) -> None:
    clock = Clock()
    job = pacer(stores(clock), clock, wait=False)
    tickets = [await job.acquire(Usage()) for _ in range(3)]
    # the first call's answer: 12 left when it was counted, but two more calls went since
    await job.observe(httpx.Response(200, headers=server_headers(0, clock.now, 100, 12, 1800)),
                      tickets[0])
    with pytest.raises(BudgetSpent):
        await job.acquire(Usage())


async def test_a_spike_reset_that_falls_on_the_hours_is_still_the_spikes(state, stores) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    await p.observe(httpx.Response(200, headers=server_headers(AHEAD, clock.now, 20, 19, 10)))
    await p.observe(httpx.Response(200, headers=server_headers(AHEAD, clock.now, 100, 30, 40)))
    clock.now += 31  # a spike window that ends with the hour
    await p.observe(httpx.Response(200, headers=server_headers(AHEAD, clock.now, 20, 18, 9)))
    budget = await budget_of(state)
    assert (budget["spike_limit"], budget["spike_remaining"]) == (20, 18)
    assert (budget["hourly_limit"], budget["hourly_remaining"]) == (100, 30)


async def test_an_hourly_limit_above_the_assumed_one_replaces_the_assumed_count(
        state, stores) -> None:
    """Until the headers name the hourly limit, calls count against the assumed one (here 100);
    once named, a larger limit's remaining is the server's, not what is left of the guess."""
    clock = Clock()
    job = pacer(stores(clock), clock, wait=False, default_hourly=100)
    await calls(job, clock, 5)
    await job.observe(httpx.Response(200, headers=server_headers(0, clock.now, 10_000, 9_995,
                                                                 1800)))
    budget = await budget_of(state)
    assert (budget["hourly_limit"], budget["hourly_remaining"]) == (10_000, 9_995)
    await calls(job, clock, 200)  # far past the assumed 90: no BudgetSpent


async def hourly_window(store: Budgets) -> float:
    """The hourly window's length as learned (the app does not show it)."""
    async with store.budget("client@api.example", 3600) as budget:
        return budget.hourly_window


@pytest.mark.parametrize("offset", [AHEAD, BEHIND])
async def test_a_raised_spike_limit_is_not_taken_for_the_hourly_one(state, stores, offset) -> None:
    """Procore's limits "can change at any time": a spike limit raised from 25 to 50 before the
    hourly one is named shows a near reset with a limit between the spike's and the assumed
    hour's, and as many calls left as the old spike limit or more; the hour stays as assumed."""
    clock = Clock()
    p = pacer(stores(clock), clock)
    for limit, later in ((25, 0), (50, 0), (50, 60)):
        clock.now += later
        for i in range(3):
            ticket = await p.acquire(Usage())
            await p.observe(httpx.Response(200, headers=server_headers(
                offset, clock.now, limit, limit - 1 - i, 10)), ticket)
    budget = await budget_of(state)
    assert (budget["spike_limit"], budget["spike_remaining"]) == (50, 47)
    assert (budget["hourly_limit"], budget["hourly_reset"]) == (3600, 0)
    assert await hourly_window(stores()) == 0  # not a 12-second hour


async def test_a_near_hourly_reset_never_shrinks_the_hourly_window(state, stores) -> None:
    clock = Clock()
    p = pacer(stores(clock), clock)
    await calls(p, clock, 1)
    await p.observe(httpx.Response(200, headers=server_headers(0, clock.now, 20, 19, 10)))
    # a process started in the hour's last seconds: the hour (fewer calls left than the spike
    # allows) ends 9 s after its first call, which says nothing of how long the hour is
    await p.observe(httpx.Response(200, headers=server_headers(0, clock.now, 100, 12, 9)))
    assert ((await budget_of(state))["hourly_limit"], await hourly_window(stores())) == (100, 0)
    clock.now = START + 10  # the hour has reset
    await calls(p, clock, 1)
    await p.observe(httpx.Response(200, headers=server_headers(0, clock.now, 100, 60, 40)))
    clock.now = START + 51  # and again, after 40 s
    await calls(p, clock, 1)
    clock.now += 5
    await p.observe(httpx.Response(200, headers=server_headers(0, clock.now, 100, 12, 9)))
    budget = await budget_of(state)
    assert (budget["hourly_limit"], budget["hourly_remaining"]) == (100, 12)
    assert await hourly_window(stores()) == 40


async def test_each_state_gets_its_own_kind_of_store(state) -> None:
    store = budget_store_for(state)
    try:
        assert isinstance(store, BudgetStore if state.shared is None else PostgresBudgetStore)
    finally:
        await store.close()


@pytest.mark.parametrize("offset", [AHEAD, BEHIND])
async def test_a_pause_is_told_on_the_hosts_own_clock(stores, offset) -> None:
    """On a shared state the budget keeps the database's clock; a host whose clock is off
    still hears when its pause ends on its own clock, as its monitor and `--no-wait` use it."""
    def host() -> float:
        return time.time() + offset

    job = Pacer(stores(), "client@api.example", wait=False, clock=host)
    server_now = time.time()  # the server's clock and the database's agree here
    await job.observe(httpx.Response(200, headers={
        "Date": email.utils.formatdate(server_now, usegmt=True),
        **headers(100, 10, math.floor(server_now) + 1800)}))
    with pytest.raises(BudgetSpent) as spent:
        await job.acquire(Usage())
    assert host() + 1798 <= spent.value.until <= host() + 1801
