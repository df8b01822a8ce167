"""With --json every error is JSON on stdout, `{"error": {"code", "message", "path"}}`, with the
exit code a person gets; and --no-mouse is offered only where the app opens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main


def error_of(capsys) -> dict:
    out, err = capsys.readouterr()
    assert err == ""
    return json.loads(out)["error"]


@pytest.mark.parametrize("argv, message", [
    (["jobs", "list", "--bogus"], "unrecognized arguments: --bogus"),
    (["jobs", "run"], "the following arguments are required: job"),
    (["jobs", "items", "x", "--status", "lost"], "invalid choice: 'lost'"),
    (["nosuch"], "invalid choice: 'nosuch'"),
])
def test_usage_errors_from_argparse_are_json_too(argv: list[str], message: str,
                                                 tmp_path: Path, capsys) -> None:
    assert main(["--home", str(tmp_path / "home"), *argv, "--json"]) == 2
    error = error_of(capsys)
    assert error["code"] == "usage" and message in error["message"]
    assert error["path"] is None


def test_usage_errors_without_json_are_argparse_s(tmp_path: Path, capsys) -> None:
    assert main(["--home", str(tmp_path / "home"), "jobs", "run"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: dryviq-tui jobs run")
    assert "dryviq-tui jobs run: error: the following arguments are required: job" in err


def test_an_unknown_job_is_a_json_error(tmp_path: Path, capsys) -> None:
    assert main(["--home", str(tmp_path / "home"), "jobs", "show", "nope", "--json"]) == 2
    error = error_of(capsys)
    assert error["code"] == "usage" and "nope" in error["message"]


def test_a_job_file_with_problems_lists_them_in_the_json_error(tmp_path: Path,
                                                              capsys) -> None:
    job = tmp_path / "job.json"
    job.write_text('{"name": "j", "kind": "transfer"}')
    assert main(["--home", str(tmp_path / "home"), "jobs", "create", "--file", str(job),
                 "--json"]) == 2
    error = error_of(capsys)
    assert error["code"] == "usage" and error["path"] == str(job)
    assert "the job was not created" in error["message"]
    assert error["details"] and all(isinstance(line, str) for line in error["details"])
    assert main(["--home", str(tmp_path / "home"), "jobs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_bad_home_is_a_json_error_with_its_path(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("")
    assert main(["connections", "list", "--json", "--home", str(tmp_path / "file")]) == 2
    assert error_of(capsys) == {"code": "home", "path": str(tmp_path / "file"),
                                "message": f"{tmp_path / 'file'}: is a file, not a folder"}


def test_no_mouse_is_only_where_the_app_opens(tmp_path: Path, capsys) -> None:
    home = str(tmp_path / "home")
    assert main(["--home", home, "jobs", "list", "--no-mouse"]) == 2
    assert "unrecognized arguments: --no-mouse" in capsys.readouterr().err
    for words in (["jobs", "list"], ["connections", "show"], ["ls"], ["doctor"]):
        with pytest.raises(SystemExit):
            main([*words, "--help"])
        assert "--no-mouse" not in capsys.readouterr().out
    for words in ([], ["demo"]):
        with pytest.raises(SystemExit):
            main([*words, "--help"])
        assert "--no-mouse" in capsys.readouterr().out

    opened = []

    async def open_app(home: object, *, mouse: bool = True, **options: object) -> int:
        opened.append(mouse)
        return 0

    assert main(["--home", home, "--no-mouse"], open_app=open_app) == 0
    assert main(["--home", home], open_app=open_app) == 0
    assert opened == [False, True]
