"""core.explain: one line for every transfer type and policy value, different for each value,
the default said as such, and nothing for a value a job cannot hold."""

from __future__ import annotations

import pytest

from core.explain import DOWNLOAD, KEYS, UPLOAD, explain, explained, throttle, values
from core.jobs import POLICY_CHOICES, TRANSFER_TYPES

CHOICES = {"transfer_type": TRANSFER_TYPES, **POLICY_CHOICES,
           "delete_propagation": ("mirror", "ignore_source", "ignore_destination",
                                  "ignore_both"),
           "versioning.select": ("latest", "all")}
FLAGS = ("simulation_mode", "segment_transform", "encode_invalid_characters",
         "segment_truncate", "trash")


@pytest.mark.parametrize("key", [*CHOICES, *FLAGS])
def test_every_value_has_a_line_of_its_own(key: str) -> None:
    offered = CHOICES.get(key, (True, False))
    assert set(values(key)) == set(offered)
    lines = [explain(key, value) for value in offered]
    assert all(lines) and len(set(lines)) == len(lines)
    assert all("\n" not in line for line in lines)


def test_the_sync_line_says_two_way_and_deletes() -> None:
    assert explain("transfer_type", "sync") == (
        "two way: changes on either side go to the other; deletes follow delete propagation")


def test_an_unset_key_explains_its_default() -> None:
    assert explain("conflict_resolution") == "not set (copy): " + explain(
        "conflict_resolution", "copy")
    assert explain("trash", None).startswith("not set (true): deletes go to a trash")
    assert explain("delete_propagation", None, transfer_type="sync").startswith(
        "not set (mirror)")
    assert explain("delete_propagation", None, transfer_type="copy").startswith(
        "not set (ignore_source)")
    assert explain("delete_propagation", ["ignore_both"]) == explain("delete_propagation",
                                                                     "ignore_both")


def test_numbers_say_their_value() -> None:
    assert "more than 25% of either side" in explain("max_delete", 25)
    assert "anything" in explain("max_delete", 0)
    assert explain("max_delete", None).startswith("not set (50)")
    assert explain(UPLOAD, 1_048_576) == "uploads at most 1.0 MiB/s"
    assert explain(DOWNLOAD) == "not set: downloads at full speed"
    assert throttle(1_048_576, None) == "throttled to 1.0 MiB/s up"
    assert throttle(None, 512 * 1024) == "throttled to 512.0 KiB/s down"
    assert throttle(None, None) is None


@pytest.mark.parametrize(("key", "value"), [
    ("transfer_type", "teleport"), ("max_delete", 101), ("max_delete", "50"),
    ("trash", "yes"), (UPLOAD, 0), ("conflict_resolution", ["copy", "latest"]),
    ("name", "anything"), ("source.connection.id", None)])
def test_what_a_job_cannot_hold_gets_no_line(key: str, value: object) -> None:
    assert explain(key, value) == ""


def test_explained_lists_every_key() -> None:
    rows = list(explained())
    assert {key for key, _, _ in rows} == set(KEYS)
    assert all(line for _, _, line in rows)
