"""What `connections add smb|rclone` stores is checked before anything is probed or saved, and
describes itself in one line without secrets; two connections onto the same share or remote
folder are recognised as the same place, so a job cannot copy a folder into itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.connections import (
    ConnectionInputError,
    describe,
    overlap,
    rclone_config,
    smb_config,
)
from core.state import Connection


def _smb(**given: object) -> dict[str, object]:
    fields: dict[str, object] = {"server": "files.example.com", "share": "Projects",
                                 "username": "ACME\\ana"}
    fields.update(given)
    return smb_config(**fields)  # type: ignore[arg-type]


def test_an_smb_config_is_normalised() -> None:
    config = _smb(share="\\Projects\\", path="\\Jobs\\2026\\")
    assert config == {"server": "files.example.com", "port": 445, "share": "Projects",
                      "path": "/Jobs/2026", "username": "ACME\\ana", "encrypt": False}
    assert _smb(path="/")["path"] == ""


@pytest.mark.parametrize(("given", "field"), [
    ({"server": ""}, "server"), ({"server": "//files/Projects"}, "server"),
    ({"server": "ana@files"}, "server"), ({"share": "Projects/Jobs"}, "share"),
    ({"share": " "}, "share"), ({"username": ""}, "username"), ({"port": 0}, "port"),
    ({"port": 70000}, "port"), ({"path": "/Jobs/../../etc"}, "path"),
])
def test_a_bad_smb_field_is_named(given: dict[str, object], field: str) -> None:
    with pytest.raises(ConnectionInputError, match=f"^{field}"):
        _smb(**given)


def test_an_rclone_remote_needs_its_colon_and_an_existing_config(tmp_path: Path) -> None:
    with pytest.raises(ConnectionInputError, match=r"^remote 'sharepoint'"):
        rclone_config(remote="sharepoint")
    with pytest.raises(ConnectionInputError, match=r"^remote ':x'"):
        rclone_config(remote=":x")
    with pytest.raises(ConnectionInputError, match="no such file"):
        rclone_config(remote="s3:bucket", config=str(tmp_path / "missing.conf"))
    with pytest.raises(ConnectionInputError, match=r"'\.\.' is not a usable"):
        rclone_config(remote="lt:/data/projects/../archive")
    conf = tmp_path / "rclone.conf"
    conf.write_text("")
    assert rclone_config(remote=" s3:bucket/docs ", config=str(conf)) == {
        "remote": "s3:bucket/docs", "config": str(conf)}


def test_an_rclone_remote_takes_no_inline_options() -> None:
    """rclone reads `s3,secret_access_key=KEY:bucket` as a remote with options: the key would
    be stored, listed and put on rclone's command line in plain sight."""
    with pytest.raises(ConnectionInputError, match="in rclone's config"):
        rclone_config(remote="s3,secret_access_key=TOPSECRET:bucket")


def _connection(platform: str, config: dict[str, object], name: str = "c") -> Connection:
    return Connection(name, name, platform, config, 0.0)


def test_descriptions_name_the_place_and_never_a_secret() -> None:
    smb = _connection("smb", _smb(path="/Jobs", port=4455, encrypt=True))
    assert describe(smb) == "//files.example.com:4455/Projects/Jobs (as ACME\\ana, encrypted)"
    assert describe(_connection("smb", _smb())) == "//files.example.com/Projects (as ACME\\ana)"
    remote = _connection("rclone", {"remote": "s3:bucket/docs", "config": None})
    assert describe(remote) == "s3:bucket/docs"


def test_two_connections_onto_one_share_overlap_whatever_the_case() -> None:
    whole = _connection("smb", _smb(), "a")
    jobs = _connection("smb", _smb(server="FILES.example.com", share="projects", path="/jobs"),
                       "b")
    assert (overlap(whole, "Jobs/2026", jobs, "2026")
            == "the destination is the source folder itself")
    assert overlap(whole, "", jobs, "") == ("the destination is inside the source folder, so "
                                            "a run would copy its own output")
    other = _connection("smb", _smb(share="Archive"), "c")
    assert overlap(whole, "", other, "") is None


def test_two_connections_onto_one_rclone_remote_overlap() -> None:
    bucket = _connection("rclone", {"remote": "s3:bucket", "config": None}, "a")
    docs = _connection("rclone", {"remote": "s3:bucket/docs", "config": None}, "b")
    assert overlap(bucket, "docs", docs, "") == "the destination is the source folder itself"
    assert overlap(docs, "", bucket, "") == "the source is inside the destination folder"
    shouting = _connection("rclone", {"remote": "s3:BUCKET/Docs/copy", "config": None}, "d")
    assert overlap(docs, "", shouting, "") is not None  # OneDrive and Drive ignore case
    elsewhere = _connection("rclone", {"remote": "s3:bucket", "config": "/etc/other.conf"}, "c")
    assert overlap(bucket, "", elsewhere, "") is None
