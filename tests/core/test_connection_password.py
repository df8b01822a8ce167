"""`connections password NAME`: an office password expires, the share's connection takes the new
one once the share accepts it, and its jobs keep their connection. A wrong new password changes
nothing; the password never reaches the output."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from core.cli import main
from core.state import State
from tests.samba import USER, SmbFolder


def _add(home: str, folder: SmbFolder, monkeypatch: pytest.MonkeyPatch) -> None:
    server = folder.server
    monkeypatch.setenv("SMB_PASSWORD", server.password)
    assert main(["--home", home, "connections", "add", "smb", "office", "--server", server.host,
                 "--port", str(server.port), "--share", server.share, "--path", folder.path,
                 "--username", server.username, "--password-env", "SMB_PASSWORD"]) == 0


def _set_samba_password(folder: SmbFolder, password: str) -> None:
    config = folder.server.root.parent / "smb.conf"
    subprocess.run(["smbpasswd", "-c", str(config), "-s", USER], check=True,
                   input=f"{password}\n{password}\n", text=True, capture_output=True)


def _stored_password(home: str) -> str:
    async def read() -> str:
        state = await State.open(Path(home) / "state.db")
        try:
            office = await state.find_connection("office")
            assert office is not None
            return (await state.connection_secrets(office.id))["password"]
        finally:
            await state.close()

    return asyncio.run(read())


def test_a_new_password_is_stored_once_the_share_accepts_it(
        tmp_path: Path, smb_folder: SmbFolder, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home, old = str(tmp_path / "home"), smb_folder.server.password
    (tmp_path / "home").mkdir()
    _add(home, smb_folder, monkeypatch)
    new = old + "-rotated"
    _set_samba_password(smb_folder, new)
    try:
        capsys.readouterr()
        monkeypatch.setenv("NEW_PASSWORD", new + "-typo")
        assert main(["--home", home, "connections", "password", "office",
                     "--password-env", "NEW_PASSWORD"]) == 2
        refused = capsys.readouterr()
        assert "password" in refused.err and new not in refused.err + refused.out
        assert _stored_password(home) == old

        monkeypatch.setenv("NEW_PASSWORD", new)
        assert main(["--home", home, "connections", "password", "office",
                     "--password-env", "NEW_PASSWORD"]) == 0
        accepted = capsys.readouterr()
        assert "Changed the password of office" in accepted.out
        assert new not in accepted.out + accepted.err
        assert _stored_password(home) == new
        assert main(["--home", home, "connections", "test", "office"]) == 0
    finally:
        _set_samba_password(smb_folder, old)  # the server is shared by the worker's tests


def test_only_a_share_has_a_password_here(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    assert main(["--home", home, "connections", "add", "local", "plans", "--path",
                 str(tmp_path)]) == 0
    assert main(["--home", home, "connections", "password", "plans"]) == 2
    assert "plans is not an SMB share" in capsys.readouterr().err
