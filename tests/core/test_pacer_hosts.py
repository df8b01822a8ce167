"""One client's budget in PostgreSQL, drawn on by several processes standing in for hosts whose
clocks disagree, against the sandbox over HTTP: its counters say what Procore would have seen."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.budget_postgres import PostgresBudgetStore
from core.pacer import Pacer, Usage
from core.sandbox import SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET, SandboxConfig

HOURLY = 60
SPIKE = 30  # calls per 10 s: spaced 0.35 s apart, less than the hosts' clocks disagree
SKEWS = (-0.5, 0.0, 0.5)  # seconds each host's clock is off
KEY = "service@sandbox"

# One host: three workers calling through one job pacer until the budget (less the reserve)
# is spent; prints its calls and 429s. Its secrets come in its environment.
HOST = """
import asyncio, os, time
import httpx
from core.budget_postgres import PostgresBudgetStore
from core.connectors.base import BudgetSpent
from core.pacer import Pacer, Usage

async def main():
    skew = float(os.environ["HOST_SKEW"])
    store = PostgresBudgetStore(os.environ["DRYVIQ_STATE_URL"])
    pacer = Pacer(store, os.environ["BUDGET_KEY"], wait=False,
                  default_hourly=int(os.environ["HOURLY"]), clock=lambda: time.time() + skew)
    usage = Usage()
    headers = {"Authorization": "Bearer " + os.environ["TOKEN"],
               "Procore-Company-Id": os.environ["COMPANY"]}
    async with httpx.AsyncClient(base_url=os.environ["SANDBOX"], headers=headers) as http:
        async def worker():
            while True:
                try:
                    response = await pacer.request(lambda: http.get("/rest/v1.0/companies"),
                                                   usage)
                except BudgetSpent:
                    return
                assert response.status_code == 200, response.status_code
        await asyncio.gather(*(worker() for _ in range(3)))
    await store.close()
    print(usage.api_calls, usage.rate_limited)

asyncio.run(main())
"""


@pytest.mark.slow
async def test_hosts_on_one_budget_stay_under_both_windows_and_leave_the_reserve(
        postgres_url, make_sandbox) -> None:
    from core.state import State

    state = await State.open_url(postgres_url)  # the schema, as any host's State makes it
    await state.close()
    sandbox = make_sandbox(SandboxConfig(hourly_limit=HOURLY, spike_limit=SPIKE))
    world = sandbox.world
    token = httpx.post(f"{sandbox.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": SERVICE_CLIENT_ID,
        "client_secret": SERVICE_CLIENT_SECRET}).json()["access_token"]
    company = str(next(iter(world.companies)))
    root = Path(__file__).resolve().parents[2]
    hosts = [subprocess.Popen(
        [sys.executable, "-c", HOST], stdout=subprocess.PIPE, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "DRYVIQ_STATE_URL": postgres_url,
             "TOKEN": token, "COMPANY": company, "SANDBOX": sandbox.url,
             "HOST_SKEW": str(skew), "BUDGET_KEY": KEY, "HOURLY": str(HOURLY)})
        for skew in SKEWS]
    outputs = [await asyncio.to_thread(host.communicate) for host in hosts]
    assert [host.returncode for host in hosts] == [0] * len(hosts)
    calls = [tuple(map(int, out.split())) for out, _ in outputs]
    assert all(made > 0 for made, _ in calls)  # every host drew on the budget
    # jobs took the budget less the 10% reserve, and Procore refused none of it
    assert (world.api_calls, world.rate_limited) == (HOURLY - HOURLY // 10, 0)
    assert sum(made for made, _ in calls) == world.api_calls

    # the reserve is browsing's: at the spike pace, not after the hour (an hour's wait would
    # hold the test an hour)
    store = PostgresBudgetStore(postgres_url)
    browse = Pacer(store, KEY, interactive=True, default_hourly=HOURLY)
    async with httpx.AsyncClient(base_url=sandbox.url, headers={
            "Authorization": f"Bearer {token}", "Procore-Company-Id": company}) as http:
        for _ in range(HOURLY // 10):
            response = await browse.request(lambda: http.get("/rest/v1.0/companies"), Usage())
            assert response.status_code == 200
    await store.close()
    assert (world.api_calls, world.rate_limited) == (HOURLY, 0)  # the hour, never past it
