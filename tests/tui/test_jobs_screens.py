"""The jobs list, the job builder, the import dialog and the monitor, driven with Pilot over a
real state file, real local folders and the real engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, Select

from core.home import Home
from tests.e2e.conftest import clean_env, dryviq_command
from tests.tui.conftest import (
    SIZE,
    World,
    job_json,
    running,
    table_rows,
    text_of,
    wait_for,
    write_files,
)
from tui import app as app_module
from tui.app import COMMANDS, DryvIQApp
from tui.keymap import key_problem, read_keymap
from tui.screens import PlaceholderScreen
from tui.screens.job_builder import JobBuilderScreen
from tui.screens.jobs import ImportJobScreen, JobsScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.quit import QuitScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.format import clock


def jobs_table(app: DryvIQApp) -> list[list[str]]:
    return table_rows(app, "#jobs-table")


async def type_into(pilot: Pilot[int], selector: str, text: str) -> None:
    """Type `text` into an Input: all but its last key pasted (Pilot takes a while per key),
    the last one pressed, so the screen sees a real key press."""
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    await pilot.pause()
    field.value = text[:-1]
    field.cursor_position = len(field.value)
    await pilot.press(*text[-1:] or ["backspace"])


async def choose(pilot: Pilot[int], selector: str, option: str) -> None:
    """Open a Select, type to find the option, take it: as a user at the keyboard does."""
    pilot.app.screen.query_one(selector, Select).focus()
    await pilot.press("enter", *option, "enter")


def arrived(world: World) -> int:
    return sum(1 for _ in (world.destination / "copy").rglob("*.bin"))


async def open_monitor(app: DryvIQApp, pilot: Pilot[int]) -> MonitorScreen:
    await pilot.press("m")
    await wait_for(lambda: isinstance(app.screen, MonitorScreen), what="the monitor")
    assert isinstance(app.screen, MonitorScreen)
    return app.screen


def monitor_says(app: DryvIQApp, text: str, selector: str = "#monitor-status") -> bool:
    return isinstance(app.screen, MonitorScreen) and text in text_of(app, selector)


# -- the builder --------------------------------------------------------------------------------


async def test_a_job_built_from_fields_is_saved_and_listed(world: World) -> None:
    async with running(world) as (app, pilot):
        assert "No jobs yet" in text_of(app, "#jobs-empty")
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen))
        builder = app.screen
        assert isinstance(builder, JobBuilderScreen)
        await type_into(pilot, "#field-name", "Drawings out")
        await choose(pilot, "#field-source_connection", "plans")
        await type_into(pilot, "#field-source_path", "/")
        await choose(pilot, "#field-destination_connection", "share")
        await type_into(pilot, "#field-destination_path", "/Out")
        await type_into(pilot, "#field-parallel_writes", "3")
        await pilot.pause()
        shown = json.loads(builder.text)  # the preview is what Save stores
        assert shown["transfer"]["source"] == {"connection": {"id": "plans"},
                                               "target": {"path": "/"}}
        assert shown["transfer"]["performance"] == {"parallel_writes": 3}
        await pilot.press("ctrl+s")
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")
        await wait_for(lambda: jobs_table(app) != [], what="the new row")
        assert jobs_table(app)[0] == ["Drawings out", "never run", "", "copy", "",
                                      "plans:/ → share:/Out"]
    [job] = await world.state.find_jobs()
    assert (job.name, job.parallel_writes, job.destination_path) == ("Drawings out", 3, "Out")
    assert json.loads(job.definition) == shown


async def test_invalid_fields_are_shown_inline_and_nothing_is_saved(world: World) -> None:
    async with running(world) as (app, pilot):
        app.open_builder(source=("plans", "Drawings"), destination=("share", "/Out"))
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen))
        await pilot.pause()
        builder = app.screen
        assert json.loads(builder.text)["transfer"]["source"]["target"] == {"path": "/Drawings"}
        await type_into(pilot, "#field-name", "picked")
        await type_into(pilot, "#field-parallel_writes", "0")
        await pilot.pause()
        assert "expected an integer from 1 to 64, got 0" in text_of(
            app, "#error-parallel_writes")
        await type_into(pilot, "#field-destination_path", "")
        assert not builder.query_one("#error-destination_path").display  # not yet: untouched
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, JobBuilderScreen), "an invalid job must not be saved"
        assert "required" in text_of(app, "#error-destination_path")
        assert "from 1 to 64" in text_of(app, "#error-parallel_writes")
        assert not builder.query_one("#error-name").display
        assert await world.state.find_jobs() == []

        await type_into(pilot, "#field-destination_path", "/Drawings copy")
        await type_into(pilot, "#field-parallel_writes", "2")
        builder.query_one("#field-source_connection", Select).value = "share"
        await pilot.press("ctrl+s")  # share:/Drawings copy -> core accepts it
        await wait_for(lambda: isinstance(app.screen, JobsScreen))
    assert [j.name for j in await world.state.find_jobs()] == ["picked"]


async def test_a_file_imported_into_the_builder_keeps_what_the_form_lacks(
        world: World, tmp_path: Path) -> None:
    given = json.loads(job_json(name="with filters"))
    given["transfer"]["filter"] = {"source": [{"action": "exclude", "type": "filter_rule",
                                               "rules": [{"type": "filter_extension",
                                                          "extensions": ["tmp"]}]}]}
    given["transfer"]["destination"]["connection"]["id"] = "nowhere"
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"type": "job", "job": given}))
    async with running(world) as (app, pilot):
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen))
        builder = app.screen
        await type_into(pilot, "#builder-import-path", str(path))
        await pilot.press("enter")
        await pilot.pause()
        assert builder.query_one("#field-name", Input).value == "with filters"
        assert builder.query_one("#field-parallel_writes", Input).value == "4"
        assert json.loads(builder.text)["transfer"]["filter"] == given["transfer"]["filter"]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert 'no connection with id or name "nowhere"' in text_of(
            app, "#error-destination_connection")
        await choose(pilot, "#field-destination_connection", "share")
        await pilot.press("ctrl+s")
        await wait_for(lambda: isinstance(app.screen, JobsScreen))
    [job] = await world.state.find_jobs()
    assert json.loads(job.definition)["transfer"]["filter"] == given["transfer"]["filter"]
    assert job.parallel_writes == 4


async def test_importing_a_malformed_file_shows_the_error_and_saves_nothing(
        world: World, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "half a job", "transfer": {"source": ')
    good = tmp_path / "good.json"
    good.write_text(job_json(name="from a file"))
    async with running(world) as (app, pilot):
        await pilot.press("i")
        await wait_for(lambda: isinstance(app.screen, ImportJobScreen))
        await type_into(pilot, "#import-path", str(broken))
        await pilot.press("enter")
        await pilot.pause()
        assert "not valid JSON" in text_of(app, "#import-errors")
        assert isinstance(app.screen, ImportJobScreen)
        assert await world.state.find_jobs() == []

        await type_into(pilot, "#import-path", str(good))
        await pilot.press("enter")
        await wait_for(lambda: jobs_table(app) != [] if isinstance(app.screen, JobsScreen)
                       else False, what="the imported job in the list")
        assert jobs_table(app)[0][0] == "from a file"
        assert app.selected_job is not None and app.selected_job.name == "from a file"


# -- running and monitoring ---------------------------------------------------------------------


async def test_a_job_run_from_the_list_is_watched_to_completion(world: World) -> None:
    write_files(world.source, 200, size=4096, per_folder=40)
    await world.job()
    async with running(world) as (app, pilot):
        await pilot.press("r")
        monitor = await open_monitor(app, pilot)
        await wait_for(lambda: monitor_says(app, "Completed"), what="Completed")
        assert "Files 200 of 200" in text_of(app, "#monitor-counts")
        assert "800.0 KiB of 800.0 KiB" in text_of(app, "#monitor-counts")
        assert monitor.query_one("#monitor-history", DataTable).row_count == 1
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, JobsScreen))
        await wait_for(lambda: jobs_table(app)[0][1] == "completed", what="the list's status")
    assert arrived(world) == 200
    for path in (world.destination / "copy").rglob("*.bin"):
        assert path.read_bytes() == (world.source / path.relative_to(
            world.destination / "copy")).read_bytes()


# enough files that a run lasts seconds here, long enough to pause it mid-run, or to see the
# heartbeat (once a second) of a run in another process before it ends
LONG_RUN_FILES = 30_000


async def test_the_run_outlives_its_monitor_and_pauses_then_resumes(world: World) -> None:
    write_files(world.source, LONG_RUN_FILES, per_folder=1000)
    job = await world.job(job_json(parallel=1))
    async with running(world) as (app, pilot):
        monitor = await open_monitor(app, pilot)
        assert "Never run" in text_of(app, "#monitor-status")
        # Pilot's key presses wait for the CPU to go idle, which a run never lets it do:
        # press the button and close the screen directly, as a click and escape would
        monitor.query_one("#monitor-start", Button).press()
        await wait_for(lambda: world.service.runs_here(job.id), what="the run")
        await monitor.dismiss()  # closing the monitor leaves the run going
        await wait_for(lambda: isinstance(app.screen, JobsScreen))
        assert world.service.runs_here(job.id)
        await wait_for(lambda: arrived(world) > 0, what="the first files")
        await pilot.press("p")  # from the list: the highlighted job
        monitor = await open_monitor(app, pilot)
        await wait_for(lambda: monitor_says(app, "Interrupted by your pause"),
                       what="the paused state")
        assert str(monitor.query_one("#monitor-start").label) == "Resume"
        [execution] = await world.state.executions(job.id)
        assert execution.status == "interrupted"
        assert 0 < arrived(world) < LONG_RUN_FILES, "the pause should land mid-run"

        monitor.query_one("#monitor-start", Button).press()
        await wait_for(lambda: monitor_says(app, "Completed"), what="the resumed run to end")
    assert arrived(world) == LONG_RUN_FILES
    assert [e.status for e in await world.state.executions(job.id)] == ["completed",
                                                                          "interrupted"]


async def test_the_monitor_shows_a_rate_limit_pause_and_the_budget(world: World) -> None:
    """A run waiting for the hourly API budget (here in another process: this test holds
    the job's lock and writes its heartbeat) says until when, and that it goes on alone."""
    job = await world.job()
    now = time.time()
    await world.state.db.execute(
        "INSERT INTO rate_budgets (client_key, hourly_limit, hourly_remaining, hourly_reset, "
        "blocked_until, updated_at) VALUES ('procore:demo', 3600, 0, ?, 0, ?)",
        (now + 300, now))
    with world.home.job_lock(job.id):
        execution = await world.state.start_execution(job.id)
        await world.state.update_execution(execution.id, phase="executing", stats={
            "transferred": 7, "planned_files": 20, "api_calls": 3240, "rate_limit_waits": 1,
            "waiting_until": now + 300})
        async with running(world) as (app, pilot):
            await open_monitor(app, pilot)
            await wait_for(lambda: monitor_says(
                app, f"Paused until {clock(now + 300)} (rate limit): continues by itself",
                "#monitor-waiting"), what="the rate-limit pause")
            assert "Phase: waiting for the API rate limit" in text_of(app, "#monitor-details")
            assert "ETA paused" in text_of(app, "#monitor-counts")
            api = text_of(app, "#monitor-api")
            assert "3,240 API calls · 1 rate-limit wait" in api
            # while paused, the pause is the one countdown (no "resets in" beside it)
            assert api.endswith("hourly budget 0 of 3,600 calls left")


@pytest.mark.slow
async def test_the_monitor_attaches_to_a_run_in_another_process(world: World) -> None:
    write_files(world.source, LONG_RUN_FILES, per_folder=1000)
    job = await world.job(job_json(parallel=1))
    process = subprocess.Popen(
        [*dryviq_command(), "--home", str(world.home.root), "jobs", "run", job.name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        async def progressing() -> bool:
            live = await world.service.live(job.id)
            return live.where == "elsewhere" and live.stats.transferred > 0

        await wait_for(progressing, timeout=30, what="the other process's first heartbeat")
        os.kill(process.pid, signal.SIGSTOP)  # hold it mid-run while the monitor looks
        async with running(world) as (app, pilot):
            await wait_for(lambda: jobs_table(app)[0][1] == "running elsewhere")
            await open_monitor(app, pilot)
            await wait_for(lambda: monitor_says(app, "Running in another process"))
            counts = text_of(app, "#monitor-counts")
            assert "Files 0 of" not in counts and "ETA" in counts
            await pilot.press("p")  # a pause request: it finishes what is in flight, stops
            os.kill(process.pid, signal.SIGCONT)
            assert process.wait(timeout=30) == 3
            await wait_for(lambda: monitor_says(app, "Interrupted: resumable"))

            await pilot.press("r")  # resumed in this app
            await wait_for(lambda: monitor_says(app, "Completed"), timeout=30)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.communicate()
    assert arrived(world) == LONG_RUN_FILES


# -- the app shell ------------------------------------------------------------------------------


async def test_keys_are_remapped_from_config_and_bad_entries_reported(world: World) -> None:
    config = world.home.config_path
    config.write_text('[keys]\nrun-job = "ctrl+r"\nshow-jobs = "f2"\nno-such-binding = "x"\n'
                      'new-job = "hyper+nonsense"\n')
    config.chmod(0o600)
    write_files(world.source, 10)
    job = await world.job()
    async with running(world) as (app, pilot):
        messages = [str(n.message) for n in app._notifications]
        assert any("no-such-binding: no binding has this id" in m for m in messages)
        assert any("new-job" in m and "unknown key 'nonsense'" in m for m in messages)
        await pilot.press("r")  # remapped away: does nothing
        await pilot.pause()
        assert not world.service.runs_here(job.id)
        await pilot.press("ctrl+r")
        await world.service.wait(job.id)
        assert (await world.service.live(job.id)).status == "completed"
        await pilot.press("n")  # its remap was refused, so the default key still works
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen))


async def test_the_palette_offers_every_action(world: World) -> None:
    async with running(world) as (app, pilot):
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {title for title, _, _ in COMMANDS} | {"Quit"} <= titles
        await pilot.press("ctrl+p")
        await pilot.press(*"New job")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")


async def test_a_screen_missing_from_the_build_is_a_placeholder(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app_module.SCREENS, "browser",
                        ("tui.screens.not_written_yet", "BrowserScreen", "Browser"))
    async with running(world) as (app, pilot):
        await pilot.press("b")
        await wait_for(lambda: isinstance(app.screen, PlaceholderScreen))
        assert "not available" in text_of(app, ".placeholder")
        await pilot.press("j")
        await wait_for(lambda: isinstance(app.screen, JobsScreen))



async def test_a_state_file_it_cannot_read_ends_the_app_with_a_message(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    home.state_path.write_bytes(b"this is not a SQLite database, just bytes" * 100)
    app = DryvIQApp(home=home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
    assert app.return_code == 1

@pytest.mark.parametrize(("keys", "problem"), [
    ("ctrl+r", None), ("f5,R", None), ("question_mark", None), ("ctrl+shift+up", None),
    ("ctrl+", "no key after"), ("cmd+r", "unknown modifier 'cmd'"), ("florp", "unknown key"),
    ("a,,b", "empty key"),
])
def test_key_names_are_checked(keys: str, problem: str | None) -> None:
    found = key_problem(keys)
    assert found is None if problem is None else problem in (found or "")


def test_a_keys_entry_that_is_not_a_table_is_reported() -> None:
    assert read_keymap({"keys": "ctrl+r"}, {"run-job": "r"}) == (
        {}, ['config.toml: [keys] must be a table of binding id = "key"'])
    assert read_keymap({"keys": {"run-job": 5}}, {"run-job": "r"})[1] == [
        'config.toml [keys] run-job: expected a key such as "ctrl+r" in quotes']


# -- edit, duplicate, delete, filter (issue 11) -----------------------------------------------


async def test_a_job_is_edited_in_the_builder_and_keeps_its_history(world: World) -> None:
    job = await world.job()
    await world.service.start(job.id)
    await world.service.wait(job.id)
    async with running(world) as (app, pilot):
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        builder = app.screen
        assert builder.query_one("#field-name", Input).value == "Tower A"
        assert builder.query_one("#field-destination_path", Input).value == "/copy"
        await type_into(pilot, "#field-name", "Tower A, edited")
        await pilot.press("ctrl+s")
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")
        await wait_for(lambda: jobs_table(app)[0][0] == "Tower A, edited", what="the new name")
    [edited] = await world.state.find_jobs()
    assert (edited.id, edited.name) == (job.id, "Tower A, edited")
    assert json.loads(edited.definition)["category"] == {"name": "Tests"}  # kept as it was
    assert len(await world.state.executions(job.id)) == 1


async def test_an_edit_to_a_taken_name_is_refused_beside_the_name(world: World) -> None:
    await world.job(job_json("First"))
    await world.job(job_json("Second"))
    async with running(world) as (app, pilot):
        await wait_for(lambda: len(jobs_table(app)) == 2, what="both jobs")
        await pilot.press("down", "e")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        await type_into(pilot, "#field-name", "First")
        await pilot.press("ctrl+s")
        await wait_for(lambda: "already exists" in text_of(app, "#error-name"),
                       what="the refusal beside the name")
        assert isinstance(app.screen, JobBuilderScreen)
    assert sorted(j.name for j in await world.state.find_jobs()) == ["First", "Second"]


async def test_a_duplicate_gets_a_free_name(world: World) -> None:
    await world.job()
    async with running(world) as (app, pilot):
        await pilot.press("y")
        await wait_for(lambda: len(jobs_table(app)) == 2, what="the copy")
        await pilot.press("up", "up", "y")
        await wait_for(lambda: len(jobs_table(app)) == 3, what="the second copy")
    names = [j.name for j in await world.state.find_jobs()]
    assert names == ["Tower A", "Tower A (copy)", "Tower A (copy 2)"]


async def test_delete_asks_first_and_is_refused_while_the_job_runs(world: World) -> None:
    job = await world.job()
    async with running(world) as (app, pilot):
        await pilot.press("delete")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("enter")  # the focused answer keeps it
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")
        assert [j.id for j in await world.state.find_jobs()] == [job.id]

        with world.home.job_lock(job.id):  # as a `jobs run` elsewhere holds it
            await pilot.press("delete")
            await pilot.pause()
            assert isinstance(app.screen, JobsScreen)
            assert any("while it runs" in str(n.message) for n in app._notifications)

        await pilot.press("delete")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.click("#confirm-yes")
        await wait_for(lambda: jobs_table(app) == [], what="the row to go")
    assert await world.state.find_jobs() == []


async def test_a_job_deleted_from_the_palette_closes_its_monitor(world: World) -> None:
    await world.job()
    async with running(world) as (app, pilot):
        await open_monitor(app, pilot)
        await app.run_action("delete_job")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen)
                       and app.screen.focused is not None, what="the question")
        # pressed, not clicked: a click on a busy machine may land before the dialog's layout
        app.screen.query_one("#confirm-yes", Button).press()
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")
        assert app.selected_job is None
    assert await world.state.find_jobs() == []


async def test_slash_filters_the_jobs_by_name(world: World) -> None:
    for name in ("Tower A drawings", "Tower B specs", "Annex photos"):
        await world.job(job_json(name))
    async with running(world) as (app, pilot):
        await wait_for(lambda: len(jobs_table(app)) == 3, what="the jobs")
        await pilot.press("slash", *"tower")
        await wait_for(lambda: len(jobs_table(app)) == 2, what="the filtered list")
        assert [row[0] for row in jobs_table(app)] == ["Tower A drawings", "Tower B specs"]
        await pilot.press(*" b", "enter")
        await wait_for(lambda: len(jobs_table(app)) == 1, what="one job")
        assert app.selected_job is not None and app.selected_job.name == "Tower B specs"
        await pilot.press("escape")  # on the list: clears the filter
        await wait_for(lambda: len(jobs_table(app)) == 3, what="every job again")


async def test_job_keys_without_a_job_say_so_once(world: World) -> None:
    async with running(world) as (app, pilot):
        await pilot.press("r", "m", "p", "r", "x")
        await pilot.pause()
        hints = [n for n in app._notifications if "No job selected" in str(n.message)]
        assert len(hints) == 1


async def test_an_empty_home_says_a_connection_comes_first(tmp_path: Path) -> None:
    app = DryvIQApp(home=Home(tmp_path / "home"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.pause()
        shown = text_of(app, "#jobs-empty")
        assert "add a connection first" in shown and "c for Connections, then a" in shown


async def test_names_are_shown_as_typed_not_as_markup(world: World) -> None:
    await world.job(job_json("[red]x[/] [b]bold"))
    async with running(world) as (app, pilot):
        await wait_for(lambda: jobs_table(app) != [], what="the job")
        assert jobs_table(app)[0][0] == "[red]x[/] [b]bold"
        assert "History of [red]x[/] [b]bold" in text_of(app, "#jobs-history-title")
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
        assert "[red]x[/]" in app.screen.sub_title


@pytest.mark.parametrize(("size", "name_shown"), [((80, 24), False), ((120, 40), True)])
async def test_the_jobs_table_uses_the_window(world: World, size: tuple[int, int],
                                              name_shown: bool) -> None:
    name = "Tower A drawings to the office share"
    await world.job(job_json(name))
    app = DryvIQApp(world.service)
    async with app.run_test(size=size) as pilot:
        await wait_for(lambda: jobs_table(app) != [], what="the job")
        await pilot.pause()
        table = app.screen.query_one("#jobs-table", DataTable)
        widths = {str(key.value): column.width for key, column in table.columns.items()}
        assert (widths["name"] >= len(name)) is name_shown
        assert widths["route"] >= len("plans:/ → share:/copy")
        assert sum(w + 2 for w in widths.values()) <= size[0], "no column off screen"


async def test_a_long_name_does_not_keep_its_width_after_it_is_gone(world: World) -> None:
    long_job = await world.job(job_json("L" * 128))
    await world.job(job_json("Short"))
    async with running(world) as (app, pilot):
        await wait_for(lambda: len(jobs_table(app)) == 2, what="the jobs")
        table = app.screen.query_one("#jobs-table", DataTable)
        assert table.columns[next(iter(table.columns))].width <= 40
        await world.state.remove_job(long_job.id)
        await wait_for(lambda: len(jobs_table(app)) == 1, what="the long one to go")
        await pilot.pause()
        assert table.columns[next(iter(table.columns))].width == len("Short")


async def quit_asked(app: DryvIQApp) -> QuitScreen:
    # Pilot's key presses wait for the CPU to go idle, which a run never lets it do
    await app.run_action("quit")
    await wait_for(lambda: isinstance(app.screen, QuitScreen)
                   and app.screen.focused is not None, what="the question")
    assert isinstance(app.screen, QuitScreen)
    return app.screen


async def test_quit_while_a_job_runs_says_which_stops_and_that_it_resumes(world: World) -> None:
    write_files(world.source, LONG_RUN_FILES, per_folder=1000)
    job = await world.job(job_json(parallel=1))
    async with running(world) as (app, _pilot):
        await world.service.start(job.id)
        await wait_for(lambda: arrived(world) > 0, what="the first files")
        question = await quit_asked(app)
        assert "Tower A" in question.detail and "resumes" in question.detail
        assert question.focused is question.query_one("#quit-keep")
        question.query_one("#quit-keep", Button).press()
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")
        assert world.service.runs_here(job.id)

        question = await quit_asked(app)
        question.query_one("#quit-pause", Button).press()
        await world.service.wait(job.id)
        await wait_for(lambda: app._exit, what="the app to end")
    [execution] = await world.state.executions(job.id)
    assert execution.status == "interrupted"
    assert 0 < arrived(world) < LONG_RUN_FILES


async def test_the_demo_does_not_offer_to_run_in_the_background(world: World) -> None:
    """The demo's sandbox lives in the app's process: a run left behind would lose it."""
    write_files(world.source, LONG_RUN_FILES, per_folder=1000)
    job = await world.job(job_json(parallel=1))
    app = DryvIQApp(world.service, background_runs=False)
    async with app.run_test(size=SIZE):
        await world.service.start(job.id)
        await wait_for(lambda: arrived(world) > 0, what="the first files")
        question = await quit_asked(app)
        assert not question.query("#quit-background")
        assert "background" not in question.detail
        question.query_one("#quit-keep", Button).press()
        await world.service.cancel(job.id)
        await world.service.wait(job.id)


@pytest.mark.slow
async def test_quit_can_leave_a_job_running_in_the_background(world: World) -> None:
    write_files(world.source, LONG_RUN_FILES, per_folder=1000)
    job = await world.job(job_json(parallel=1))
    async with running(world) as (app, _pilot):
        await world.service.start(job.id)
        await wait_for(lambda: arrived(world) > 0, what="the first files")
        question = await quit_asked(app)
        question.query_one("#quit-background", Button).press()
        await wait_for(lambda: app._exit, what="the app to end")

    async def resumed_elsewhere() -> bool:
        newest = (await world.state.executions(job.id))[0]
        return newest.status == "running" and newest.pid != os.getpid()

    await wait_for(resumed_elsewhere, timeout=60, what="the headless run")
    newest = (await world.state.executions(job.id))[0]
    try:
        log = world.home.root / "logs" / f"job-{job.id}.log"
        assert log.exists()
        assert [e.status for e in await world.state.executions(job.id)][1] == "interrupted"
    finally:
        os.kill(newest.pid, signal.SIGTERM)
    await wait_for(lambda: not world.home.job_locked(job.id), timeout=60,
                   what="the headless run to stop")


async def test_only_a_resumable_run_is_handed_to_the_background(world: World, monkeypatch) -> None:
    """A run that completed while the app paused it has nothing to continue: no process is
    started for it, and the terminal is told so after the app."""
    started: list[str] = []
    monkeypatch.setattr(app_module, "run_in_background",
                        lambda home, job_id: (started.append(job_id), (4242, Path("x.log")))[1])
    done = await world.job(job_json("Done already"))
    await world.service.start(done.id)
    await world.service.wait(done.id)
    stopped = await world.job(job_json("Stopped part-way"))
    execution = await world.state.start_execution(stopped.id)
    await world.state.update_execution(execution.id, status="interrupted", phase="complete",
                                       ended_at=time.time())
    app = DryvIQApp(world.service)
    assert "nothing to continue" in await app._hand_over(done)
    assert "process 4242" in await app._hand_over(stopped)
    assert started == [stopped.id]
