"""The job builder offers every transfer type and every policy of the job JSON, each with core's
one line for the value chosen (issue 12, item 7), and what it writes parses and round-trips."""

from __future__ import annotations

import json
from pathlib import Path

from core.explain import explain
from core.jobs import TRANSFER_TYPES, parse_job
from tests.tui.conftest import World, running, text_of, wait_for
from tests.tui.test_jobs_screens import choose, type_into
from tui.app import DryvIQApp
from tui.screens.job_builder import JobBuilderScreen
from tui.screens.jobs import JobsScreen


async def open_builder(app: DryvIQApp, pilot) -> JobBuilderScreen:
    await pilot.press("n")
    await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the builder")
    assert isinstance(app.screen, JobBuilderScreen)
    return app.screen


async def test_every_type_is_offered_and_explained(world: World) -> None:
    async with running(world) as (app, pilot):
        builder = await open_builder(app, pilot)
        lines = set()
        for kind in TRANSFER_TYPES:
            await choose(pilot, "#field-transfer_type", kind)
            await pilot.pause()
            assert json.loads(builder.text)["transfer"]["transfer_type"] == kind
            shown = text_of(app, "#explain-transfer_type")
            assert shown == explain("transfer_type", kind) and "not available" not in shown
            assert not builder.query_one("#error-transfer_type").display
            lines.add(shown)
            # the delete propagation a job without one gets follows the type
            default = "mirror" if kind == "sync" else "ignore_source"
            assert text_of(app, "#explain-delete_propagation").startswith(f"not set ({default})")
        assert len(lines) == len(TRANSFER_TYPES)
        assert "two way" in explain("transfer_type", "sync")


async def test_every_policy_is_set_explained_and_round_trips(world: World) -> None:
    async with running(world) as (app, pilot):
        builder = await open_builder(app, pilot)
        await type_into(pilot, "#field-name", "Two way")
        await choose(pilot, "#field-transfer_type", "sync")
        await choose(pilot, "#field-source_connection", "plans")
        await type_into(pilot, "#field-source_path", "/")
        await choose(pilot, "#field-destination_connection", "share")
        await type_into(pilot, "#field-destination_path", "/Out")
        before = text_of(app, "#explain-conflict_resolution")
        chosen = {"conflict_resolution": "latest", "delete_propagation": "ignore_destination",
                  "failure_policy": "halt", "duplicate_names": "warn", "large_item": "skip",
                  "empty_containers": "skip", "encode_invalid_characters": "true",
                  "segment_truncate": "true", "versions": "all", "trash": "false"}
        for name, value in chosen.items():
            await choose(pilot, f"#field-{name}", value)
        await pilot.pause()
        after = text_of(app, "#explain-conflict_resolution")
        assert before != after == explain("conflict_resolution", "latest")
        assert text_of(app, "#explain-trash") == explain("trash", False)
        assert text_of(app, "#explain-versions") == explain("versioning.select", "all")
        await type_into(pilot, "#field-max_delete", "20")
        await type_into(pilot, "#field-upload_limit", "1048576")
        await type_into(pilot, "#field-download_limit", "2097152")
        await pilot.pause()
        assert "more than 20% of either side" in text_of(app, "#explain-max_delete")
        assert text_of(app, "#explain-upload_limit") == "uploads at most 1.0 MiB/s"
        assert text_of(app, "#explain-download_limit") == "downloads at most 2.0 MiB/s"
        text = builder.text
        transfer = parse_job(text).transfer
        assert (transfer.transfer_type, transfer.conflict_resolution, transfer.propagation,
                transfer.failure_policy, transfer.duplicate_names, transfer.large_item,
                transfer.empty_containers) == ("sync", "latest", ("ignore_destination",),
                                               "halt", "warn", "skip", "skip")
        assert (transfer.encode_invalid_characters, transfer.segment_truncate,
                transfer.versions, transfer.trash, transfer.max_delete) == (
            True, True, "all", False, 20)
        assert (transfer.upload_bytes_per_second, transfer.download_bytes_per_second) == (
            1_048_576, 2_097_152)
        assert json.loads(text)["transfer"]["versioning"] == {"preserve": "native",
                                                              "select": "all"}
        await pilot.press("ctrl+s")
        await wait_for(lambda: isinstance(app.screen, JobsScreen), what="the jobs list")
        await wait_for(lambda: app.selected_job is not None, what="the saved job")
        await pilot.press("e")  # opened again, the form shows it all and writes it unchanged
        await wait_for(lambda: isinstance(app.screen, JobBuilderScreen), what="the editor")
        await pilot.pause()
        assert app.screen.text == text
        assert not app.screen.edited
        assert text_of(app, "#explain-delete_propagation") == explain("delete_propagation",
                                                                      "ignore_destination")


async def test_an_imported_array_and_versioning_stay_as_written(world: World,
                                                                tmp_path: Path) -> None:
    given = {"name": "Imported", "kind": "transfer", "transfer": {
        "transfer_type": "sync",
        "source": {"connection": {"id": "plans"}, "target": {"path": "/"}},
        "destination": {"connection": {"id": "share"}, "target": {"path": "/Out"}},
        "delete_propagation": ["ignore_source", "ignore_destination"],
        "versioning": {"preserve": "none", "select": "all"}, "trash": True}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(given))
    async with running(world) as (app, pilot):
        builder = await open_builder(app, pilot)
        await type_into(pilot, "#builder-import-path", str(path))
        await pilot.press("enter")
        await wait_for(lambda: json.loads(builder.text).get("name") == "Imported",
                       what="the import")
        transfer = json.loads(builder.text)["transfer"]
        assert transfer["delete_propagation"] == given["transfer"]["delete_propagation"]
        assert transfer["versioning"] == given["transfer"]["versioning"]
        assert transfer["trash"] is True
        assert text_of(app, "#explain-trash") == explain("trash", True)
        await choose(pilot, "#field-delete_propagation", "mirror")
        await pilot.pause()
        assert json.loads(builder.text)["transfer"]["delete_propagation"] == "mirror"
        assert parse_job(builder.text).transfer.propagation == ("mirror",)
