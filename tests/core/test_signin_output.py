"""`connections add procore` and `connections signin` in-process, over a stand-in for the
Procore conversation: company, project and user names as Procore sends them reach the terminal
printable, and a refused sign-in is an error like any other (JSON with --json, exit code 1)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from core.auth import SignInError
from core.cli import main
from core.cli import signin as signin_command
from core.procore_signin import Choice
from core.state import Connection

ESC = "\x1b"
COMPANIES = [Choice(1, f"Summit{ESC}]0;owned{ESC}\\"), Choice(2, f"Other{ESC}[2J")]


class FakeSignIn:
    """ProcoreSignIn's conversation without Procore: names with escape sequences in them."""

    refuse = False

    def __init__(self, opening: Any, app: Any, *, custom: bool) -> None:
        self.opening = opening

    def sign_in_url(self) -> str:
        return "https://login.procore.example/oauth/authorize"

    async def finish_with_code(self, code: str) -> None:
        if self.refuse:
            raise SignInError("Procore refused the code: invalid_grant")

    async def identity(self) -> dict[str, Any]:
        return {"id": 7, "login": "pm@summit.example", "name": f"Pat{ESC}[31m Morgan"}

    async def companies(self) -> list[Choice]:
        return COMPANIES

    async def projects(self, company: Choice) -> list[Choice]:
        return [Choice(3, f"Riverside{ESC}[31m")]

    async def save(self, name: str, company: Choice, project: Choice,
                   identity: dict[str, Any]) -> Connection:
        config = {"domain": "https://api.procore.com", "credentials": "default",
                  "company_id": company.id, "company_name": company.name,
                  "project_id": project.id, "project_name": project.name, "user": identity}
        return await self.opening.state.add_connection(name, "procore", config, {})

    async def renew(self, existing: Connection, identity: dict[str, Any]) -> Connection:
        raise AssertionError("refused before")

    async def close(self) -> None:
        pass


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(signin_command, "ProcoreSignIn", FakeSignIn)
    monkeypatch.setattr(FakeSignIn, "refuse", False)
    monkeypatch.setattr(sys, "stdin", io.StringIO("the code\n" * 4))
    monkeypatch.setenv("DRYVIQ_PROCORE_CLIENT_ID", "id")
    monkeypatch.setenv("DRYVIQ_PROCORE_CLIENT_SECRET", "secret")
    return str(tmp_path / "home")


def test_the_companies_to_pick_from_are_printable(home: str, capsys) -> None:
    assert main(["--home", home, "connections", "add", "procore", "site"]) == 2
    err = capsys.readouterr().err
    assert ESC not in err
    assert "error: several companies; pick one with --company:" in err
    assert "  1. Summit\\x1b]0;owned\\x1b\\ (1)" in err and "  2. Other\\x1b[2J (2)" in err


def test_the_added_connection_is_described_printably(home: str, capsys) -> None:
    assert main(["--home", home, "connections", "add", "procore", "site", "--company", "1"]) == 0
    out = capsys.readouterr().out
    assert ESC not in out
    assert "signed in as Pat\\x1b[31m Morgan (pm@summit.example)" in out
    assert "Summit\\x1b]0;owned\\x1b\\ / Riverside\\x1b[31m" in out


@pytest.mark.parametrize("argv, code, message", [
    (["connections", "add", "procore", "site", "--company", "1"], "connection_test",
     "Connection test failed: Procore refused the code: invalid_grant"),
    (["connections", "signin", "existing"], "signin",
     "Sign-in failed, nothing changed: Procore refused the code: invalid_grant"),
])
def test_a_refused_sign_in_is_a_json_error(home: str, capsys, argv: list[str], code: str,
                                           message: str) -> None:
    assert main(["--home", home, "connections", "add", "procore", "existing", "--company",
                 "1"]) == 0
    capsys.readouterr()
    FakeSignIn.refuse = True
    assert main(["--home", home, *argv, "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "error": {"code": code, "message": message, "path": None}}
    assert main(["--home", home, *argv]) == 1
    assert f"dryviq-tui: error: {message}" in capsys.readouterr().err
