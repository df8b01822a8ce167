"""A home that cannot be used is one line naming it and the problem, exit 2, for every command and
the app; an existing home open to other users is made private (it holds secrets)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from core.cli import main
from core.home import Home, HomeError

ROOT = os.geteuid() == 0


def _file(tmp_path: Path) -> Path:
    (tmp_path / "home").write_text("not a folder")
    return tmp_path / "home"


def _missing_parent(tmp_path: Path) -> Path:
    return tmp_path / "no-such-folder" / "home"


def _parent_is_a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "home"


def _unreadable(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir(mode=0o300)
    return tmp_path / "home"


def _not_writable(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir(mode=0o500)
    return tmp_path / "home"


def _proc(tmp_path: Path) -> Path:
    return Path("/proc")


def _state_is_a_folder(tmp_path: Path) -> Path:
    (tmp_path / "home" / "state.db").mkdir(parents=True)
    return tmp_path / "home"


needs_modes = pytest.mark.skipif(ROOT, reason="root ignores file modes")
BAD_HOMES = [
    pytest.param(_file, "is a file, not a folder", id="a-file"),
    pytest.param(_missing_parent, "parent folder", id="missing-parent"),
    pytest.param(_parent_is_a_file, "is not a folder", id="parent-is-a-file"),
    pytest.param(_unreadable, "cannot read it (permission denied)", id="unreadable",
                 marks=needs_modes),
    pytest.param(_not_writable, "cannot write in it (permission denied)", id="not-writable",
                 marks=needs_modes),
    pytest.param(_proc, "/proc", id="proc"),
    pytest.param(_state_is_a_folder, "is a folder, not a state file", id="state-is-a-folder"),
]
COMMANDS = [
    ["jobs", "list"],
    ["connections", "list", "--json"],
    ["connections", "add", "local", "share", "--path", "/tmp"],
    ["jobs", "history", "some job"],
    ["ls", "share"],
    ["doctor"],
]


@pytest.fixture(autouse=True)
def _restore_modes(tmp_path: Path):
    yield
    for folder in tmp_path.rglob("*"):
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(0o700)


@pytest.mark.parametrize("make, problem", BAD_HOMES)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda words: "-".join(words[:2]))
def test_a_bad_home_is_one_line_and_exit_2(make: Callable[[Path], Path], problem: str,
                                           command: list[str], tmp_path: Path, capsys) -> None:
    home = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(["--home", str(home), *command]) == 2
    out, err = capsys.readouterr()
    if "--json" in command:
        error = json.loads(out)["error"]
        assert error["code"] == "home" and problem in error["message"]
        assert err == ""
    else:
        assert out == ""
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("dryviq-tui: error: ") and problem in err
        assert str(home).split("/")[1] in err and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing made


@pytest.mark.parametrize("make, problem", BAD_HOMES)
def test_the_app_refuses_a_bad_home_before_it_opens(make: Callable[[Path], Path],
                                                    problem: str, tmp_path: Path,
                                                    capsys) -> None:
    opened = []

    async def open_app(home: Home, **options: object) -> int:
        opened.append(home)
        return 0

    assert main(["--home", str(make(tmp_path))], open_app=open_app) == 2
    assert opened == []
    assert problem in capsys.readouterr().err


def test_the_home_comes_from_dryviq_home_too(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DRYVIQ_HOME", str(_file(tmp_path)))
    assert main(["jobs", "list"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_named_home_is_made_but_not_its_missing_parents(tmp_path: Path) -> None:
    Home.resolve(str(tmp_path / "home")).ensure()
    assert (tmp_path / "home" / "state.db").is_file()
    with pytest.raises(HomeError, match=r"parent folder .*/a does not exist"):
        Home.resolve(str(tmp_path / "a" / "b")).ensure()
    assert not (tmp_path / "a").exists()


def test_the_default_home_is_made_with_its_parents(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DRYVIQ_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x" / "share"))
    home = Home.resolve()
    home.ensure()
    assert home.root == tmp_path / "x" / "share" / "dryviq-tui"
    assert stat.S_IMODE(home.root.stat().st_mode) == 0o700


def test_an_existing_home_open_to_others_becomes_private(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    (home / "state.db").touch(mode=0o644)
    os.chmod(home / "state.db", 0o644)
    assert main(["--home", str(home), "jobs", "list"]) == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "state.db").stat().st_mode) == 0o600
    assert "warning" not in capsys.readouterr().err
    log = (home / "logs" / "dryviq-tui.log").read_text()
    assert "jobs list" in log


@pytest.mark.skipif(not ROOT, reason="only root can give a folder to another user")
def test_a_home_of_another_user_open_to_others_is_left_with_a_warning(tmp_path: Path,
                                                                      capsys) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    os.chown(home, 65534, 65534)
    assert main(["--home", str(home), "jobs", "list"]) == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o777
    err = capsys.readouterr().err
    assert f"warning: {home} is open to other users (mode 777)" in err
    assert "left as it is" in err


def test_a_shared_folder_named_as_home_keeps_its_mode(tmp_path: Path, capsys) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    (shared / "someone-elses.txt").write_text("")
    assert main(["--home", str(shared), "jobs", "list"]) == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert "not only dryviq-tui's folder" in capsys.readouterr().err
