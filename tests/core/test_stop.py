"""A graceful stop (the app's pause, `jobs run`'s first Ctrl-C, the agent's SIGTERM, a
schedule's max_execution: the run's `stop` event) lets the files in flight finish and starts
nothing new, even where thousands of small files were queued at once; the next run sends the
rest."""

import asyncio
import json
import threading

from core.connections import add_local
from core.connectors import local
from core.connectors.local import LocalConnector
from core.engine import runner
from core.home import Home
from core.job_store import create_job
from core.state import State

FILES = 300


async def test_a_stop_leaves_queued_small_files_for_the_next_run(tmp_path, monkeypatch):
    home = Home(tmp_path / "home")
    home.ensure()
    state = await State.open(home.state_path)
    source, destination = tmp_path / "source", tmp_path / "destination"
    source.mkdir()
    destination.mkdir()
    for i in range(FILES):
        (source / f"sheet{i:03d}.pdf").write_bytes(b"sheet %03d " % i * 50)
    await add_local(state, "src", str(source), fsync=False)
    await add_local(state, "dst", str(destination), fsync=False)
    job, _ = await create_job(state, json.dumps({"name": "stop", "transfer": {
        "transfer_type": "copy",
        "source": {"connection": {"id": "src"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "dst"}, "target": {"path": "/"}}}}))
    stop, stopped = asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()
    opened = 0
    open_file, stop_copies = local._SourceFile.open, LocalConnector.stop_copies

    def open_and_stop_at_the_third(self):
        # in the thread copying the batch: Ctrl-C lands as the third file begins, and the
        # copy goes on once the stop reached the connector
        nonlocal opened
        opened += 1
        if opened == 3:
            loop.call_soon_threadsafe(stop.set)
            stopped.wait(timeout=60)
        return open_file(self)

    def stopping(self):
        stop_copies(self)
        stopped.set()

    monkeypatch.setattr(local._SourceFile, "open", open_and_stop_at_the_third)
    monkeypatch.setattr(LocalConnector, "stop_copies", stopping)
    first = await runner.run_job(state, home, job, stop=stop)
    monkeypatch.undo()
    arrived = {path.name: path.read_bytes() for path in destination.iterdir()}
    assert first.status == "interrupted"
    assert 3 <= len(arrived) < FILES, "the stop should leave queued files for the next run"
    assert all(data == (source / name).read_bytes() for name, data in arrived.items())
    assert first.stats.transferred == len(arrived)

    second = await runner.run_job(state, home, job)
    assert (second.status, second.stats.transferred) == ("completed", FILES - len(arrived))
    assert sorted(path.name for path in destination.iterdir()) == \
        sorted(path.name for path in source.iterdir())
    assert all((destination / path.name).read_bytes() == path.read_bytes()
               for path in source.iterdir())
    await state.close()
