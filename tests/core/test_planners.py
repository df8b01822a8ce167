"""The two-way and the other planners, decision by decision (pure: no storage)."""

import pytest

from core.connectors.base import Entry
from core.engine.march import Pair
from core.engine.planner import Action, Rules, plan_migrate, plan_move, plan_publish, plan_sync
from core.state import ItemRecord

RULES = Rules(mtime_precision=1e-6, propagation=("mirror",))
PROCORE_DESTINATION = Rules(mtime_precision=1.0, destination_sets_mtime=False,
                            propagation=("mirror",))


def f(size=1, mtime=100.0, version=None, name="x"):
    return Entry(name, is_dir=False, size=size, mtime=mtime, version=version)


def base(size=1, mtime=100.0, status="success", action="create", destination_version=None,
         destination_mtime=None):
    """The record of the last time both sides were in step."""
    return ItemRecord(job_id="j", path="x", parent="", is_dir=False, size=size, mtime=mtime,
                      action=action, status=status, destination_version=destination_version,
                      destination_mtime=destination_mtime)


def sync(source, destination, record=None, rules=RULES):
    return plan_sync(Pair(source, destination, "x"), record, rules)


def test_in_step_and_one_sided_changes():
    assert sync(f(), f(), base()).action is Action.NONE
    up = sync(f(size=2, mtime=200.0), f(), base())
    assert (up.action, up.to_source) == (Action.UPDATE, False)
    down = sync(f(), f(size=2, mtime=200.0), base())
    assert (down.action, down.to_source) == (Action.UPDATE, True)


def test_new_on_either_side_is_created_on_the_other():
    assert (sync(f(), None).action, sync(f(), None).to_source) == (Action.CREATE, False)
    assert (sync(None, f()).action, sync(None, f()).to_source) == (Action.CREATE, True)


@pytest.mark.parametrize("policy, action, to_source", [
    ("copy", Action.CONFLICT, True),  # the older, at the source, becomes the conflict copy
    ("latest", Action.UPDATE, True),  # the destination's edit is newer
    ("source", Action.UPDATE, False),
    ("destination", Action.UPDATE, True),
    ("failure", Action.FLAG, False),
])
def test_changed_on_both_sides(policy, action, to_source):
    rules = Rules(mtime_precision=1e-6, conflict_resolution=policy)
    plan = sync(f(size=2, mtime=200.0), f(size=3, mtime=300.0), base(), rules)
    assert (plan.action, plan.to_source, plan.conflict) == (action, to_source, True)


def test_a_delete_propagates_unless_ignored_and_never_over_an_edit():
    assert sync(f(), None, base()).action is Action.DELETE  # deleted at the destination
    assert sync(f(), None, base()).to_source is True
    assert sync(None, f(), base()).action is Action.DELETE
    assert sync(None, f(), base()).to_source is False
    kept = sync(f(size=2, mtime=200.0), None, base())  # edited at the source meanwhile
    assert (kept.action, kept.to_source) == (Action.CREATE, False)
    ignored = Rules(mtime_precision=1e-6, propagation=("ignore_destination",))
    assert sync(f(), None, base(), ignored).action is Action.NONE
    assert sync(None, f(), base(), ignored).action is Action.DELETE


def test_gone_from_both_sides_forgets_the_record():
    assert sync(None, None, base()).action is Action.FORGET


def test_a_deleted_items_record_is_no_base_for_a_new_file_of_that_name():
    tombstone = base(action="delete_source")
    assert sync(f(), None, tombstone).action is Action.CREATE


def test_an_interrupted_write_is_recognised_as_its_own_not_as_an_edit():
    # the run died after its upload to Procore landed, before the record said so: the
    # pending record still holds the base, and the destination has a new version
    pending = base(status="pending", action="update", destination_version="v1",
                   destination_mtime=100.0)
    landed = sync(f(size=2, mtime=200.0), f(size=2, mtime=900.0, version="v2"), pending,
                  PROCORE_DESTINATION)
    assert (landed.action, landed.unrecorded) == (Action.NONE, True)
    lost = sync(f(size=2, mtime=200.0), f(version="v1"), pending, PROCORE_DESTINATION)
    assert lost.action is Action.UPDATE  # v1 still there: the write never landed


def test_a_first_sync_merges_matching_files_and_resolves_the_rest():
    assert sync(f(), f()).action is Action.NONE
    assert sync(f(size=2), f(size=3, mtime=50.0)).conflict
    # Procore keeps no mtime of ours: the same size is taken as the same file
    assert sync(f(mtime=100.0), f(mtime=900.0), None, PROCORE_DESTINATION).action is Action.NONE


def test_large_files_follow_large_item_on_the_side_written():
    small_source = Rules(mtime_precision=1e-6, max_to_source=10)
    assert sync(None, f(size=11), None, small_source).action is Action.FLAG
    skipping = Rules(mtime_precision=1e-6, max_to_source=10, skip_large=True)
    assert sync(None, f(size=11), None, skipping).action is Action.SKIP
    assert sync(f(size=11), None, None, small_source).action is Action.CREATE


def test_publish_deletes_and_reverts_migrate_never_looks_again_move_moves():
    pair = Pair(None, f(), "x")
    assert plan_publish(pair, None, RULES).action is Action.DELETE
    reverted = plan_publish(Pair(f(), f(size=2, mtime=200.0), "x"), base(), RULES)
    assert reverted.action is Action.UPDATE and "reverts" in reverted.reason
    assert plan_migrate(Pair(f(size=2, mtime=200.0), f(), "x"), base(), RULES).action is (
        Action.NONE)
    assert plan_migrate(Pair(f(size=2), f(), "x"), None, RULES).action is Action.UPDATE
    moving = plan_move(Pair(f(), None, "x"), None, RULES)
    assert (moving.action, moving.move) == (Action.CREATE, True)
    assert plan_move(Pair(f(), f(size=2), "x"), None, RULES).action is Action.FLAG
    finish = plan_move(Pair(f(), f(), "x"), base(), RULES)  # copied, then the run stopped
    assert (finish.action, finish.to_source) == (Action.DELETE, True)


@pytest.mark.parametrize("status", ["pending", "success"])
def test_a_download_that_landed_before_a_kill_is_in_step(status):
    """In step at v1, Procore edited (v2), the killed run brought v2 down to the local source
    (its mtime set to Procore's) and its record was left pending or lost: met again, the two
    are one file, not an edit on both sides (it made a conflict copy of itself)."""
    record = base(status=status, action="update_source" if status == "pending" else "create",
                  destination_version="v1", destination_mtime=100.0)
    landed = sync(f(size=5, mtime=500.0), f(size=5, mtime=500.0, version="v2"), record,
                  PROCORE_DESTINATION)
    assert (landed.action, landed.conflict) == (Action.NONE, False)
    # an edit of the same size made here within the same second is still an edit
    edited = sync(f(size=5, mtime=500.4), f(size=5, mtime=500.0, version="v2"), record,
                  PROCORE_DESTINATION)
    assert edited.conflict
