"""Connection names are told apart as job names are (core.paths.name_key): a new one equal to
an existing one but for case, spacing or Unicode form is refused, naming the existing one, in
`connections add` (local and Procore) and in the app; lookups by name stay exact."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from core.auth import ClientApp
from core.cli import main
from core.connections import ConnectionInputError, add_local
from core.connectors import Opening
from core.home import Home
from core.procore_signin import Choice, ProcoreSignIn
from core.state import State


@pytest.fixture
async def state(tmp_path: Path):
    state = await State.open(tmp_path / "state.db")
    (tmp_path / "cafe").mkdir()
    await add_local(state, "Café Plans", str(tmp_path / "cafe"))
    yield state
    await state.close()


@pytest.mark.parametrize("name", ["café plans", " CAFÉ PLANS ",
                                  unicodedata.normalize("NFD", "Café Plans")])
async def test_a_local_connection_named_like_another_is_refused(state: State, tmp_path: Path,
                                                                name: str) -> None:
    with pytest.raises(ConnectionInputError, match="a connection named 'Café Plans' already "
                                                   "exists"):
        await add_local(state, name, str(tmp_path))
    assert [c.name for c in await state.list_connections()] == ["Café Plans"]
    assert await state.find_connection("café plans") is None  # lookups stay exact


async def test_a_procore_sign_in_saves_no_connection_named_like_another(state: State,
                                                                        tmp_path: Path) -> None:
    home = Home.resolve(str(tmp_path / "home"))
    home.ensure()
    signin = ProcoreSignIn(Opening(state, home, interactive=True),
                           ClientApp("https://api.procore.example", "id", "secret"),
                           custom=False)
    try:
        with pytest.raises(ConnectionInputError, match="'Café Plans' already exists"):
            await signin.save("CAFÉ PLANS", Choice(1, "Summit"), Choice(2, "Riverside"), {})
    finally:
        await signin.close()
    assert len(await state.list_connections()) == 1


@pytest.mark.parametrize("platform", [["local", "--path", "{folder}"], ["procore"]])
def test_connections_add_refuses_it_with_exit_code_2(tmp_path: Path, capsys,
                                                     platform: list[str]) -> None:
    home = str(tmp_path / "home")
    assert main(["--home", home, "connections", "add", "local", "Plans", "--path",
                 str(tmp_path)]) == 0
    capsys.readouterr()
    argv = [arg.format(folder=tmp_path) for arg in platform]
    assert main(["--home", home, "connections", "add", *argv[:1], "plans", *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert "error: a connection named 'Plans' already exists ('plans' differs from it only in " \
           "case or spacing); choose another name" in err
