"""One label per status code for people, and an item's detail naming both names."""

from core.state import ItemRecord
from core.status import EXECUTION_LABELS, ITEM_LABELS, attempts, item_detail, label


def item(**fields: object) -> ItemRecord:
    base: dict[str, object] = dict(job_id="j", path="Drawings/bad:name?.pdf",
                                   parent="Drawings", is_dir=False, size=23, mtime=None,
                                   action="create", status="processed")
    return ItemRecord(**(base | fields))  # type: ignore[arg-type]


def test_every_code_has_one_distinct_label() -> None:
    labels = {**EXECUTION_LABELS, **ITEM_LABELS}
    assert len(set(labels.values())) == len(labels)
    assert label("no_changes") == "no changes" and label("warn") == "completed, flagged"
    assert label("paused") == "paused: rate limit"
    assert label("interrupted") == "interrupted, resumable"
    assert label("remediation") == "flagged" and label("something_new") == "something new"


def test_a_renamed_item_names_both_names() -> None:
    renamed = item(note="renamed from 'bad:name?.pdf': characters Procore refuses",
                   destination_path="Out/Drawings/bad_name_.pdf")
    assert item_detail(renamed) == ("renamed from 'bad:name?.pdf' to 'bad_name_.pdf': "
                                    "characters Procore refuses")
    moved = item(note=None, destination_path="Out/Drawings/bad_name_.pdf")
    assert item_detail(moved) == "named 'bad_name_.pdf' at the destination"
    same = item(path="a.pdf", note="taken as the same file", destination_path="Out/a.pdf")
    assert item_detail(same) == "taken as the same file"
    failed = item(status="retry", last_error="disk full", note="renamed from 'x'")
    assert item_detail(failed) == "disk full"


def test_attempts_are_blank_until_one_failed() -> None:
    assert attempts(item(attempts=0)) == "" and attempts(item(attempts=2)) == "2"
