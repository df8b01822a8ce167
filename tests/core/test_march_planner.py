"""The march pairs one folder's listings; the planner decides each pair (pure, no storage)."""

from core.connectors.base import Entry, PathRules
from core.engine.march import NamePolicy, Pair, pair_folder
from core.engine.planner import Action, Rules, plan_copy
from core.jobs import parse_job
from core.state import ItemRecord

LOCAL = NamePolicy(PathRules(), case_insensitive=False)
PROCORE_LIKE = NamePolicy(PathRules(invalid_chars="/:?"), case_insensitive=True)


def f(name, size=1, mtime=100.0, **kw):
    return Entry(name, is_dir=False, size=size, mtime=mtime, **kw)


def d(name):
    return Entry(name, is_dir=True)


def names(pairs):
    return [(p.source.name if p.source else None, p.destination.name if p.destination else None,
             p.name) for p in pairs]


def test_merge_pairs_by_name_in_key_order():
    pairs = list(pair_folder([f("b"), f("a"), d("c")], [f("c"), f("a"), f("z")], "", LOCAL))
    assert names(pairs) == [("a", "a", "a"), ("b", None, "b"), ("c", "c", "c"),
                            (None, "z", "z")]


def test_unicode_forms_and_case_match_where_the_destination_ignores_case():
    pairs = list(pair_folder([f("Cafe\u0301.pdf"), f("PLAN.pdf")],
                             [f("Café.pdf"), f("plan.pdf")], "", PROCORE_LIKE))
    # matched pairs write to the name already at the destination
    assert names(pairs) == [("Cafe\u0301.pdf", "Café.pdf", "Café.pdf"),
                            ("PLAN.pdf", "plan.pdf", "plan.pdf")]


def test_names_that_collide_after_fitting_are_numbered_or_refused():
    pairs = list(pair_folder([f("a:b.txt"), f("a?b.txt"), f("A_B.txt")], [], "", PROCORE_LIKE))
    assert {p.source.name: p.name for p in pairs} == {
        "A_B.txt": "A_B.txt", "a:b.txt": "a_b (1).txt", "a?b.txt": "a_b (2).txt"}
    assert [p.note is None for p in pairs if p.source.name == "A_B.txt"] == [True]
    strict = NamePolicy(PathRules(invalid_chars="/:?"), True, rename_duplicates=False)
    refused = [p for p in pair_folder([f("a:b"), f("a?b")], [], "", strict) if p.refusal]
    assert len(refused) == 1 and "also becomes" in refused[0].refusal


def test_unusable_source_names_are_refused_not_paired():
    pairs = list(pair_folder([f(".."), f("a/b"), f("ok")], [f("ok"), d("..x")], "", LOCAL))
    assert {p.source.name for p in pairs if p.refusal} == {"..", "a/b"}
    assert all(p.destination is None for p in pairs if p.refusal)


def record(size=1, mtime=100.0, status="success", version=None):
    return ItemRecord(job_id="j", path="x", parent="", is_dir=False, size=size, mtime=mtime,
                      action="create", status=status, destination_version=version)


RULES = Rules(mtime_precision=1e-6)


def plan(src, dst, rec=None, rules=RULES, **pair):
    return plan_copy(Pair(src, dst, (src or dst).name, **pair), rec, rules)


def test_new_changed_and_equal_files():
    assert plan(f("x"), None).action is Action.CREATE
    assert plan(f("x"), f("x")).action is Action.NONE
    assert plan(f("x", size=2), f("x")).action is Action.UPDATE
    assert plan(f("x", mtime=101.0), f("x")).action is Action.UPDATE
    assert plan(d("x"), None).action is Action.MKDIR
    assert plan(d("x"), d("x")).action is Action.NONE
    assert plan(None, f("x")).action is Action.NONE  # copy never deletes


def test_mtime_compared_within_the_coarser_precision():
    coarse = Rules(mtime_precision=2.0)
    assert plan(f("x", mtime=100.0), f("x", mtime=101.5), rules=coarse).action is Action.NONE
    assert plan(f("x", mtime=100.0), f("x", mtime=103.0), rules=coarse).action is Action.UPDATE


def test_destination_without_mtimes_relies_on_the_record():
    no_mtime = Rules(mtime_precision=None)
    sent = record(size=1, mtime=100.0, version="v1")
    assert plan(f("x"), f("x", mtime=None, version="v1"), sent, no_mtime).action is Action.NONE
    assert plan(f("x", mtime=200.0), f("x", mtime=None, version="v1"), sent,
                no_mtime).action is Action.UPDATE


def test_changes_only_at_the_destination_are_not_reverted():
    result = plan(f("x"), f("x", size=5, mtime=300.0), record())
    assert result.action is Action.SKIP and "only at the destination" in result.reason


def test_conflicts_follow_conflict_resolution():
    src, dst, rec = f("x", size=2, mtime=200.0), f("x", size=3, mtime=300.0), record()
    expected = {"source": Action.UPDATE, "destination": Action.SKIP, "latest": Action.SKIP,
                "failure": Action.FLAG, "copy": Action.KEEP_BOTH}
    for policy, action in expected.items():
        assert plan(src, dst, rec, Rules(conflict_resolution=policy,
                                         mtime_precision=1e-6)).action is action, policy


def test_skips_flags_and_filters():
    assert plan(f("x", skip_reason="symlink"), None).action is Action.SKIP
    assert plan(f("x"), None, refusal="bad name").action is Action.FLAG
    assert plan(f("x"), d("x")).action is Action.FLAG
    job = parse_job('{"name":"j","transfer":{"transfer_type":"copy",'
                    '"source":{"connection":{"id":"a"},"target":{"path":"/"}},'
                    '"destination":{"connection":{"id":"b"},"target":{"path":"/"}},'
                    '"filter":{"source":[{"action":"exclude","type":"filter_rule",'
                    '"rules":[{"type":"filter_extension","extensions":["tmp"]}]}]}}}')
    rules = Rules(source_filters=job.transfer.source_filters, mtime_precision=1e-6)
    assert plan(f("a.tmp"), None, rules=rules).action is Action.SKIP
    assert plan(f("a.pdf"), None, rules=rules).action is Action.CREATE


# Procore: a file's mtime there is when it was uploaded, never the source's
UPLOAD_TIMES = Rules(mtime_precision=1.0, destination_sets_mtime=False)
IN_PROCORE = f("x", size=5, mtime=9_000.0, version="v7")


def test_an_unrecorded_file_of_the_same_size_is_adopted_where_mtimes_are_upload_times():
    # another job's file, a lost state DB, a killed run's create that landed unrecorded
    for unsent in (None, record(status="pending"), record(status="retry")):
        adopted = plan(f("x", size=5), IN_PROCORE, unsent, UPLOAD_TIMES)
        assert adopted.action is Action.NONE and adopted.unrecorded, unsent
        assert "assumed identical, not uploaded" in adopted.reason


def test_an_unrecorded_file_of_another_size_gets_a_new_version():
    changed = plan(f("x", size=6), IN_PROCORE, None, UPLOAD_TIMES)
    assert changed.action is Action.UPDATE and changed.unrecorded


def test_an_adopted_file_is_then_judged_by_its_record_as_a_sent_one():
    adopted = record(size=5, mtime=100.0, status="processed", version="v7")
    unchanged = plan(f("x", size=5), IN_PROCORE, adopted, UPLOAD_TIMES)
    assert (unchanged.action, unchanged.reason) == (Action.NONE, None)
    edited = plan(f("x", size=5, mtime=200.0), IN_PROCORE, adopted, UPLOAD_TIMES)
    assert edited.action is Action.UPDATE  # same size, but the source changed since
    new_version = f("x", size=5, mtime=9_500.0, version="v8")  # someone uploaded in Procore
    assert plan(f("x", size=5), new_version, adopted, UPLOAD_TIMES).action is Action.SKIP


def test_a_destination_that_keeps_mtimes_still_updates_unrecorded_files():
    # a local disk: equal size and mtime is a match; an unrecorded mtime mismatch is sent
    for unsent in (None, record(status="pending")):
        updated = plan(f("x", size=5, mtime=100.0), f("x", size=5, mtime=200.0), unsent)
        assert updated.action is Action.UPDATE and updated.reason is None
    assert plan(f("x", size=5), f("x", size=5)).action is Action.NONE


def test_a_planned_write_is_judged_by_whether_the_version_it_replaces_is_still_there():
    # a run planned to replace v7 with a same-size edit, then died: no record of success
    planned = record(size=5, mtime=200.0, status="pending", version="v7")
    lost = plan(f("x", size=5, mtime=200.0), IN_PROCORE, planned, UPLOAD_TIMES)
    assert lost.action is Action.UPDATE  # v7 is still there: the edit never landed
    landed = f("x", size=5, mtime=9_600.0, version="v8")
    assert plan(f("x", size=5, mtime=200.0), landed, planned,
                UPLOAD_TIMES).action is Action.NONE  # it landed, unrecorded: adopted
