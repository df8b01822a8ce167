"""The demo: the embedded Procore sandbox's sample project, an office share, a ready job.

`prepare_demo` signs in to a running sandbox (its own, so no browser is needed), and adds the
connections and the sample job to a home. The sandbox runs with a small rate limit, so the
pacing and a pause for the budget's reset show within a minute. `write_sample_project` writes
a local sample project, for tests that need one on disk.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path

from core.auth import OOB_REDIRECT, ClientApp
from core.connections import add_local
from core.connectors import Opening
from core.home import Home
from core.job_store import create_job
from core.procore_signin import ProcoreSignIn, pick
from core.sandbox import (
    DEMO_COMPANY,
    DEMO_PROJECT,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SandboxConfig,
    World,
)
from core.state import Connection, JobRecord, State

KIB = 1024

# (folder, file names, typical size in KiB)
SAMPLE_FOLDERS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("Drawings/Architectural", ("A-101 Floor Plan Level 1.pdf", "A-102 Floor Plan Level 2.pdf",
                                "A-201 Building Elevations.pdf", "A-301 Wall Sections.pdf"), 900),
    ("Drawings/Structural", ("S-001 General Notes.pdf", "S-101 Foundation Plan.pdf",
                             "S-201 Framing Plan Level 2.pdf"), 700),
    ("Drawings/MEP", ("M-101 HVAC Plan.pdf", "E-101 Lighting Plan.pdf",
                      "P-101 Plumbing Riser.pdf"), 600),
    ("Specifications", ("Division 03 - Concrete.pdf", "Division 05 - Metals.pdf",
                        "Division 08 - Openings.docx", "Division 09 - Finishes.docx"), 250),
    ("Submittals/03 30 00 Cast-in-Place Concrete", ("Mix Design 4000 psi.pdf",
                                                    "Rebar Shop Drawings Rev 2.pdf"), 400),
    ("Submittals/08 71 00 Door Hardware", ("Hardware Schedule.xlsx", "Cut Sheets.pdf"), 150),
    ("RFIs", ("RFI 001 - Footing depth at grid C4.pdf", "RFI 002 - Curtain wall anchors.pdf",
              "RFI #003: Door swing at stair 2?.pdf"), 120),
    ("Photos/2026-10 Site Progress", tuple(f"IMG_{4100 + i}.jpg" for i in range(12)), 1800),
    ("Photos/2026-11 Site Progress", tuple(f"IMG_{4300 + i}.jpg" for i in range(8)), 1800),
    ("Closeout/O&M Manuals", ("Elevator O&M.pdf", "Rooftop Units O&M.pdf"), 1200),
    ("Closeout/Warranties", ("Roofing Warranty.pdf", "Window Warranty .pdf"), 90),
    ("Closeout/As-Builts", (), 0),
)

# A budget small enough to see: 10 calls per 10 seconds, and an "hour" of 30 calls that
# lasts 45 seconds, so a job pauses for the reset and then continues by itself
DEMO_LIMITS = SandboxConfig(hourly_limit=30, hourly_window=45.0, spike_limit=10)
PROCORE_CONNECTION = "Riverside (Procore sandbox)"
SHARE_CONNECTION = "Office Share"
DEMO_JOB = {
    "name": "Riverside documents to the office share",
    "kind": "transfer",
    "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": PROCORE_CONNECTION}, "target": {"path": "/"}},
        "destination": {"connection": {"id": SHARE_CONNECTION},
                        "target": {"path": "/Projects/Riverside Medical Center"}},
        "simulation_mode": False,
        "performance": {"parallel_writes": {"requested": 4}},
    },
    "schedule": {"mode": "manual"},
    "stop_policy": {"on_success": 5, "on_failure": 5, "on_execute": 25},
    "category": {"name": "Demo"},
}


@contextmanager
def sandbox_as_default_client(url: str, environ: MutableMapping[str, str] = os.environ
                              ) -> Iterator[None]:
    """While the demo runs, the sandbox's client is the installation's default client, so
    "Add connection → Procore → default credentials → Sign in" works as it would at a company
    that set one up. Through the environment (which wins over config.toml), so nothing is
    written to the home, and everything is put back afterwards."""
    values = {"DRYVIQ_PROCORE_CLIENT_ID": SANDBOX_CLIENT_ID,
              "DRYVIQ_PROCORE_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
              "DRYVIQ_PROCORE_DOMAIN": url, "DRYVIQ_PROCORE_LOGIN_URL": url}
    unset = ("DRYVIQ_PROCORE_REDIRECT_URI",)  # the sandbox registers no loopback one
    saved = {key: environ.get(key) for key in (*values, *unset)}
    environ.update(values)
    for key in unset:
        environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value


async def connect_sandbox(state: State, home: Home, url: str, world: World,
                          name: str = PROCORE_CONNECTION) -> Connection:
    """Connection `name` to the sandbox's demo project, signed in as its user would be (no
    browser: it is our own sandbox); a connection made on an earlier run is renewed, since
    each run's sandbox has a new address and forgets old sign-ins."""
    app = ClientApp(url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
    signin = ProcoreSignIn(Opening(state, home, interactive=True), app, custom=True)
    try:
        await signin.finish_with_code(world.issue_code(SANDBOX_CLIENT_ID, OOB_REDIRECT))
        company = pick(await signin.companies(), DEMO_COMPANY, "company")
        assert company is not None  # pick() finds a named choice or raises
        project = pick(await signin.projects(company), DEMO_PROJECT, "project")
        assert project is not None
        existing = await state.find_connection(name)
        if existing is None:
            return await signin.save(name, company, project, await signin.identity())
        token = await signin.store.load()
        assert token is not None
        config = existing.config | {"domain": app.domain, "project_id": project.id}
        await state.update_connection_config(existing.id, config)
        await state.save_connection_secrets(existing.id, {"token": token.to_dict(),
                                                          "client_secret": app.client_secret})
        return Connection(existing.id, name, existing.platform, config, existing.created_at)
    finally:
        await signin.close()


async def prepare_demo(state: State, home: Home, url: str, world: World) -> JobRecord:
    """The demo's connections and job in `home`, against the sandbox served at `url`."""
    await connect_sandbox(state, home, url, world)
    if await state.find_connection(SHARE_CONNECTION) is None:
        share = home.root / "Office Share"
        share.mkdir(parents=True, exist_ok=True)
        await add_local(state, SHARE_CONNECTION, str(share))
    found = await state.find_jobs(str(DEMO_JOB["name"]))
    if found:
        return found[0]
    job, _ = await create_job(state, json.dumps(DEMO_JOB, indent=2))
    return job


def sample_files(seed: int = 7) -> Iterator[tuple[str, int, float]]:
    """(path, size, mtime) of every sample file; empty folders appear as (path + '/', 0, 0)."""
    rng = random.Random(seed)
    base = 1_790_000_000.0  # autumn 2026
    for folder, names, typical in SAMPLE_FOLDERS:
        if not names:
            yield folder + "/", 0, 0.0
        for name in names:
            size = max(1, int(typical * KIB * rng.uniform(0.3, 1.7)))
            yield f"{folder}/{name}", size, base + rng.randrange(0, 60 * 86400)


def sample_bytes(path: str, size: int) -> bytes:
    """The content of one sample file: deterministic for its path and size."""
    return random.Random(f"{path}:{size}").randbytes(size)


def write_sample_project(root: Path) -> None:
    """Write the sample project under `root` (created if missing)."""
    for path, size, mtime in sample_files():
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(sample_bytes(path, size))
        os.utime(target, (mtime, mtime))
