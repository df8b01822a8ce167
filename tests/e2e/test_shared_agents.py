"""Several agents, one installation (issue 16): `dryviq-tui agent` processes on homes of their
own (as on hosts of their own) sharing one PostgreSQL state and one Procore client's budget,
against the sandbox over real HTTP with small rate limits.

Each agent runs under a host name of its own (a UTS namespace, as `unshare --uts` makes), so
it is another host to the leases: a killed agent's job is taken over only once its lease has
lapsed, as across machines (on one host, a holder whose process is gone counts for nothing).

The sandbox's world here also notes which window refused each refused request, and how often
each file's bytes were fetched, so a test can tell a job run twice, a file sent twice, or a
budget the agents overspent together, from the outcome alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from core.pacer import DEFAULT_RESERVE
from core.sandbox import SANDBOX_CLIENT_ID, SandboxConfig, World
from core.sandbox.samples import sample_content
from core.sandbox.world import Blob, Rate
from tests.e2e.conftest import TIMEOUT, Cli, clean_env, dryviq_command, is_part
from tests.e2e.test_procore import COMPANY, PROJECT, add_procore, local, remote

pytestmark = pytest.mark.slow

LEASE = 4  # seconds: [agent] lease_seconds, small so a dead agent's job is taken soon
PARALLEL = 2  # files each job writes at once: at most these are in flight at a kill
WAIT = 200  # seconds: a run this late is hung (well within pytest's timeout of 300)


class Ledger(World):
    """The sandbox's world, also keeping when each request was refused and by which window,
    and how many times each file's bytes were fetched."""

    def __init__(self, config: SandboxConfig) -> None:
        super().__init__(config)
        self.refused: list[tuple[float, str]] = []  # (when, "spike" or "hourly")
        self.charged: list[float] = []  # when each request counted against the windows went
        self.fetched: Counter[int] = Counter()  # blob id -> times its bytes were sent

    def charge(self, client_id: str) -> Rate:
        rate = super().charge(client_id)
        with self.lock:
            now = self.clock()
            if rate.allowed:
                self.charged.append(now)
            else:
                hourly = self.windows[client_id][1]
                self.refused.append((now, "hourly" if hourly.remaining <= 0 else "spike"))
        return rate

    def signed_blob(self, blob_id: int, signature: str) -> Blob:
        blob = super().signed_blob(blob_id, signature)
        with self.lock:
            self.fetched[blob_id] += 1
        return blob

    def hourly_counts(self) -> list[int]:
        """Requests counted in each hourly window so far, the current one last."""
        with self.lock:
            hourly = self.windows[SANDBOX_CLIENT_ID][1]
            return [*hourly.past, hourly.count]


@dataclass
class Site:
    """The sandbox project: folders of small files, and each file's blob by path."""

    world: Ledger
    blobs: dict[str, int] = field(default_factory=dict)  # "Area 00/Sheet 000.pdf" -> blob id

    @classmethod
    def build(cls, config: SandboxConfig, folders: dict[str, int], size: int) -> Site:
        site = cls(Ledger(config))
        project = site.world.add_project(site.world.add_company(COMPANY).id, PROJECT)
        for folder, files in folders.items():
            for n in range(files):
                path = f"{folder}/Sheet {n:03d}.pdf"
                node = site.world.add_file(project.id, path,
                                           sample_content(7, path + "\n", size))
                site.blobs[path] = node.latest.blob.id
        return site

    def fetches(self, folder: str) -> dict[str, int]:
        """Times each file of `folder` was downloaded, by its path within the folder."""
        prefix = folder + "/"
        return {path[len(prefix):]: self.world.fetched[blob]
                for path, blob in self.blobs.items() if path.startswith(prefix)}


def home(root: Path, url: str) -> Cli:
    """A host's home: its config names the shared state (the URL holds a password: the file is
    private) and a short lease. The secret key comes from DRYVIQ_SECRET_KEY, set for all."""
    root.mkdir(mode=0o700)
    config = root / "config.toml"
    config.write_text(f"[state]\nurl = {json.dumps(url)}\n\n[agent]\nlease_seconds = {LEASE}\n",
                      encoding="utf-8")
    config.chmod(0o600)
    return Cli(root)


def copy_job(folder: str) -> str:
    """A copy of one project folder to the office share, run once by whichever agent claims it
    (auto, no repeat: due at once)."""
    return json.dumps({
        "name": folder, "kind": "transfer",
        "transfer": {"transfer_type": "copy",
                     "source": {"connection": {"id": "procore"}, "target": {"path": f"/{folder}"}},
                     "destination": {"connection": {"id": "office"},
                                     "target": {"path": f"/{folder}"}},
                     "performance": {"parallel_writes": {"requested": PARALLEL}}},
        "schedule": {"mode": "auto", "repeat_count": 0}})


@dataclass
class Agent:
    """One `dryviq-tui agent` process on a host of its own; its output goes to a file, read
    when a test fails."""

    host: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def name(self) -> str:
        """How executions name it: host:pid."""
        return f"{self.host}:{self.proc.pid}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def agents(homes: list[Cli]) -> Iterator[list[Agent]]:
    """An agent on each home; each left running is stopped by SIGTERM at the end (and must
    stop cleanly), or killed if the test failed."""
    started = []
    # a UTS namespace of its own (root may make one; another user, inside a user namespace);
    # unshare and sh exec the agent in place, so the process is the agent
    unshare = ["unshare", "--uts"] if os.geteuid() == 0 else [
        "unshare", "--user", "--map-current-user", "--uts"]
    for cli in homes:
        host, log = cli.home.name, cli.home / "agent.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*unshare, "sh", "-c", 'hostname "$0" && exec "$@"', host, *dryviq_command(),
                 "--home", str(cli.home), "agent"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env())
        started.append(Agent(host, proc, log))
    try:
        yield started
        for agent in started:
            if agent.proc.poll() is None:
                agent.proc.send_signal(signal.SIGTERM)
                agent.proc.wait(timeout=TIMEOUT)
                assert agent.proc.returncode == 0, agent.output()
    finally:
        for agent in started:
            if agent.proc.poll() is None:
                agent.proc.kill()
                agent.proc.wait()


def wait_for(condition: Callable[[], bool], what: str, running: list[Agent]) -> None:
    """Poll until `condition`; an agent that ended meanwhile fails the test with its output.
    The deadline only keeps a hung run from hanging the suite (it comes before pytest's
    timeout, so the agents' output is shown)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        for agent in running:
            assert agent.proc.poll() is None, (
                f"agent {agent.name} ended (exit {agent.proc.returncode}) while waiting for "
                f"{what}:\n{agent.output()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" + "\n".join(
            f"--- agent {agent.name}\n{agent.output()[-3000:]}" for agent in running)
        time.sleep(0.2)


def executions(url: str) -> list[tuple[str, str, str, float]]:
    """(job name, status, agent, started_at) of every execution, read from the shared state."""
    with psycopg.connect(url) as db:
        return db.execute("SELECT j.name, e.status, e.agent, e.started_at FROM executions e "
                          "JOIN jobs j ON j.id = e.job_id ORDER BY e.id").fetchall()


def lease_expiry(url: str) -> float:
    """When the one job lease in the shared state lapses unless renewed."""
    with psycopg.connect(url) as db:
        [(expires_at,)] = db.execute("SELECT expires_at FROM job_leases").fetchall()
    return expires_at


def completed(url: str) -> Counter[str]:
    return Counter(name for name, status, *_ in executions(url) if status == "completed")


def visible(root: Path) -> dict[str, int]:
    """Files at the destination under their real name (complete), with their inodes: a file
    written again is published by a rename, so it gets a new one."""
    return {os.path.relpath(os.path.join(folder, name), root):
            os.stat(os.path.join(folder, name)).st_ino
            for folder, _, names in os.walk(root) for name in names if not is_part(name)}


def assert_budget_kept(world: Ledger, since: float) -> None:
    """No request refused by the hourly window; a refusal by the spike window only in the
    agents' first spike window, before any answer could tell the shared budget the limit; and
    no hourly window drawn below the reserve the pacer keeps for browsing."""
    config = world.config
    first = min(t for t in world.charged if t >= since)
    late = [(round(t - first, 2), window) for t, window in world.refused
            if t >= since and (window == "hourly" or t >= first + config.spike_window)]
    assert not late, f"429s after the first spike window (seconds after the first call): {late}"
    print(f"\ncalls in each hourly window: {world.hourly_counts()}; 429s (seconds after the "
          f"first call, window): {[(round(t - first, 2), w) for t, w in world.refused]}")
    floor = math.ceil(DEFAULT_RESERVE * config.hourly_limit)
    assert max(world.hourly_counts()) <= config.hourly_limit - floor, world.hourly_counts()


def setup_installation(tmp_path: Path, url: str, sandbox, hosts: int,
                       folders: list[str]) -> list[Cli]:
    """`hosts` homes on one shared state; the Procore and office connections and one copy job
    per folder made through the first, as a user would."""
    homes = [home(tmp_path / f"host{n}", url) for n in range(hosts)]
    first = homes[0]
    add_procore(first, sandbox)
    first("connections", "add", "local", "office", "--path", tmp_path / "office")
    for folder in folders:
        first("jobs", "create", "--file", "-", input=copy_job(folder))
    return homes


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """One key for every process of the installation, as every host holds the same one."""
    monkeypatch.setenv("DRYVIQ_SECRET_KEY", Fernet.generate_key().decode())


AREAS = [f"Area {n:02d}" for n in range(12)]
# a small spike window and a small "hour" (20 seconds here) that the jobs' 84 calls outrun, so
# the agents must share both: 40 calls in 10 s, then the hourly window is the one that binds
SMALL_LIMITS = SandboxConfig(spike_limit=40, spike_window=10.0, hourly_limit=60,
                             hourly_window=20.0)


def test_four_agents_share_twelve_jobs_and_one_budget(tmp_path, postgres_url, make_sandbox,
                                                      secret_key):
    site = Site.build(SMALL_LIMITS, {area: 6 for area in AREAS}, size=3000)
    sandbox = make_sandbox(site.world)
    (tmp_path / "office").mkdir()
    homes = setup_installation(tmp_path, postgres_url, sandbox, 4, AREAS)
    since = time.time()

    with agents(homes) as running:
        wait_for(lambda: sum(completed(postgres_url).values()) >= len(AREAS),
                 "every job to complete", running)
        names = {agent.name for agent in running}

    for area in AREAS:  # every job ran once, by one agent, and completed
        history = homes[-1].json("jobs", "history", area)
        assert [e["status"] for e in history] == ["completed"], (area, history)
        assert history[0]["agent"] in names, (history[0]["agent"], names)
        assert history[0]["stats"]["failed"] == 0
        assert local(tmp_path / "office" / area) == remote(site.world, area)
        assert site.fetches(area) == {path: 1 for path in site.fetches(area)}, area
    assert len({e[2] for e in executions(postgres_url)}) >= 2, "one agent did all the work"
    assert_budget_kept(site.world, since)


BIG = "Big"
BIG_FILES = 60


def test_a_killed_agents_job_is_resumed_by_another_after_its_lease(
        tmp_path, postgres_url, make_sandbox, secret_key):
    site = Site.build(SandboxConfig(spike_limit=40, spike_window=10.0),
                      {BIG: BIG_FILES}, size=16_000)
    sandbox = make_sandbox(site.world)
    copied = tmp_path / "office" / BIG
    copied.parent.mkdir()
    homes = setup_installation(tmp_path, postgres_url, sandbox, 2, [BIG])
    since = time.time()

    with agents(homes) as running:
        # whichever agent claimed the job is killed once the run is well under way
        wait_for(lambda: copied.is_dir() and len(visible(copied)) >= 10,
                 "the run to be under way", running)
        [(_, status, holder, _)] = executions(postgres_url)
        assert status == "running"
        [victim] = [agent for agent in running if agent.name == holder]
        [survivor] = [agent for agent in running if agent is not victim]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        lapses = lease_expiry(postgres_url)  # as last renewed: the holder is dead
        done_at_kill = visible(copied)
        assert len(done_at_kill) < BIG_FILES, "the kill should land mid-run"
        wait_for(lambda: completed(postgres_url)[BIG] >= 1, "the job to be taken and completed",
                 [survivor])

    history = homes[1].json("jobs", "history", BIG)  # newest first
    assert [(e["status"], e["agent"]) for e in history] == [
        ("completed", survivor.name), ("interrupted", victim.name)], history
    resumed = history[0]
    assert resumed["started_at"] >= lapses, "taken over before the dead holder's lease lapsed"
    assert local(copied) == remote(site.world, BIG)
    # what was complete at the kill stayed as it was: nothing finished was sent again
    after = visible(copied)
    assert {path: after[path] for path in done_at_kill} == done_at_kill
    assert resumed["stats"]["transferred"] == BIG_FILES - len(done_at_kill), resumed
    fetches = site.fetches(BIG)
    twice = sorted(path for path, times in fetches.items() if times > 1)
    assert min(fetches.values()) == 1 and max(fetches.values()) <= 2, fetches
    assert len(twice) <= PARALLEL and not set(twice) & set(done_at_kill), twice
    assert_budget_kept(site.world, since)
