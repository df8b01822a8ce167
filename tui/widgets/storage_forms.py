"""The Add connection dialog's forms for the other side of the wire: an SMB file share (reached
without mounting it) and any rclone remote (S3, SharePoint, OneDrive, Google Drive, ...).

Both save through core's `add_checked`, which tries the connection first and saves it only if
its top folder lists; the password goes to the state file with the connection, never to the
screen (a masked field), a log or a notification.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from core.connections import (
    ConnectionInputError,
    add_checked,
    describe,
    rclone_config,
    smb_config,
)
from core.connectors.base import ConnectorError
from core.connectors.rclone import list_remotes
from core.state import Connection
from tui.service import AppService
from tui.widgets.format import plain, printable
from tui.widgets.platform_form import FieldOpenings, PlatformForm, field_error, form_row

CONFIG_PAUSE = 0.3  # seconds: the typed config path is read once the typing pauses
DEFAULT_CONFIG = "rclone's own config"
NO_REMOTES = ("No remotes in {where}. Make one in a terminal with `rclone config` (n, for a "
              "new remote: S3, SharePoint, OneDrive, Google Drive, ...), then press Read again.")


class CheckedForm(PlatformForm):
    """A form whose connection is tried before it is saved (core's add_checked)."""

    def __init__(self, service: AppService) -> None:
        super().__init__(service)
        self._tried = ""  # describe() of the connection last tried: its errors repeat it

    async def save_checked(self, name: str, config: dict[str, Any],
                           secrets: dict[str, Any] | None = None) -> Connection:
        self._tried = describe(Connection("", name, self.key, config, 0.0))
        return await add_checked(self.service.state, self.service.home, name, self.key,
                                 config, secrets)

    def error_text(self, error: Exception) -> str:
        """Under a field, the connection it was about goes without saying."""
        return str(error).removeprefix(f"{self._tried}: ") if self._tried else str(error)

    @on(Input.Changed)
    def _forget_error(self, event: Input.Changed) -> None:
        """An error about a field goes once the user changes that field."""
        for shown in self.query(f"#{event.input.id}-error"):
            shown.display = False


class SmbForm(CheckedForm):
    """A Windows, Samba or NAS file share over SMB 2/3, without mounting it."""

    key, title = "smb", "SMB share"
    field_openings: ClassVar[FieldOpenings] = (
        ("#smb-password", ("the server refused the username or password",)),
        ("#smb-share", ("share ",)),
        ("#smb-path", ("not found",)),
        ("#smb-port", ("port ",)),
        ("#smb-server", ("server ", "cannot reach")),
        ("#smb-username", ("username",)),
    )

    def compose(self) -> ComposeResult:
        yield form_row("Server", Input(placeholder="fileserver.example.com or 10.0.0.5",
                                       id="smb-server", compact=True),
                       Label("Port", id="smb-port-label"),
                       Input("445", type="integer", max_length=5, id="smb-port", compact=True))
        yield field_error("smb-server")
        yield field_error("smb-port")
        yield form_row("Share", Input(placeholder="Projects", id="smb-share", compact=True))
        yield field_error("smb-share")
        yield form_row("Folder", Input(placeholder="/Tower A (optional: the share's top)",
                                       id="smb-path", compact=True))
        yield field_error("smb-path")
        yield form_row("Username", Input(placeholder="DOMAIN\\user, user@domain or user",
                                         id="smb-username", compact=True))
        yield field_error("smb-username")
        yield form_row("Password", Input(password=True, id="smb-password", compact=True))
        yield field_error("smb-password")
        yield Checkbox("Require encryption (SMB 3)", id="smb-encrypt", compact=True)

    def _text(self, field: str) -> str:
        return self.query_one(f"#smb-{field}", Input).value.strip()

    def ready(self) -> bool:
        return all(self._text(field) for field in ("server", "share", "username", "password"))

    def saving_note(self) -> str:
        return printable(f"Connecting to //{self._text('server')}/{self._text('share')}…")

    async def finish(self, name: str) -> Connection:
        port = self._text("port")
        if not port.isdigit():
            raise ConnectionInputError(f"port {port!r}: give a number from 1 to 65535 "
                                       "(445 unless the server says otherwise)")
        config = smb_config(server=self._text("server"), share=self._text("share"),
                            username=self._text("username"), port=int(port),
                            path=self._text("path"),
                            encrypt=self.query_one("#smb-encrypt", Checkbox).value)
        password = self.query_one("#smb-password", Input).value  # as typed: spaces count
        return await self.save_checked(name, config, {"password": password})


class RcloneForm(CheckedForm):
    """Any remote of an rclone config (rclone's own, or a file given), and a folder in it."""

    key, title, short_title = "rclone", "Cloud storage (rclone remote)", "Cloud (rclone)"
    field_openings: ClassVar[FieldOpenings] = (
        ("#rclone-remote", ("remote ", "there is no remote")),
        ("#rclone-config", ("config ", "rclone config ", "rclone cannot read its config")),
        ("#rclone-path", ("not found", " does not exist", " is a file")),
    )

    def __init__(self, service: AppService) -> None:
        super().__init__(service)
        self._read = False  # the remotes were read once (the form was shown)

    def compose(self) -> ComposeResult:
        yield form_row("Config file", Input(placeholder=f"(optional: {DEFAULT_CONFIG})",
                                            id="rclone-config", compact=True),
                       Button("Read again", id="rclone-reload", compact=True))
        yield field_error("rclone-config")
        yield form_row("Remote", Select[str]([], prompt="(reading the remotes…)",
                                             id="rclone-remote", compact=True))
        yield field_error("rclone-remote")
        yield Static(id="rclone-note", classes="hint conn-note", markup=False)
        yield form_row("Folder", Input(placeholder="bucket/folder (optional: the remote's top)",
                                       id="rclone-path", compact=True))
        yield field_error("rclone-path")

    def shown(self) -> None:
        if not self._read:
            self._read = True
            self._reload()

    def _config(self) -> str | None:
        text = self.query_one("#rclone-config", Input).value.strip()
        return str(Path(text).expanduser()) if text else None

    @on(Input.Changed, "#rclone-config")
    def _config_typed(self) -> None:
        self._reload(pause=CONFIG_PAUSE)

    @on(Button.Pressed, "#rclone-reload")
    def _read_again(self) -> None:
        self._reload()

    def _reload(self, pause: float = 0.0) -> None:
        """Forget the remotes offered (Done cannot take one of the old file's), read again."""
        remote = self.query_one("#rclone-remote", Select)
        remote.prompt = "(reading the remotes…)"
        remote.set_options([])  # it stays a tab stop, so Tab lands there whatever the timing
        self._note("")
        self.query_one("#rclone-config-error").display = False
        self.run_worker(self._read_remotes(pause), group="remotes", exclusive=True)

    async def _read_remotes(self, pause: float) -> None:
        await asyncio.sleep(pause)
        config = self._config()
        remote = self.query_one("#rclone-remote", Select)
        try:
            remotes = await list_remotes(config)
        except ConnectorError as exc:  # rclone missing, or its config unreadable
            remote.prompt = "(no remotes)"
            if not self.show_error(exc, focus=False):
                self._note(f"⚠ {exc}")
            return
        if not remotes:
            remote.prompt = "(no remotes)"
            self._note("⚠ " + NO_REMOTES.format(where=config or DEFAULT_CONFIG))
            return
        remote.prompt = "(choose one)"
        remote.set_options([(plain(name), name) for name in remotes])
        if len(remotes) == 1:
            remote.value = remotes[0]

    def _note(self, text: str) -> None:
        note = self.query_one("#rclone-note", Static)
        note.update(plain(text))
        note.display = bool(text)

    @on(Select.Changed, "#rclone-remote")
    def _remote_chosen(self) -> None:
        self.query_one("#rclone-remote-error").display = False

    def _remote(self) -> str:
        """REMOTE:path as rclone names it, from the remote chosen and the folder typed."""
        chosen = self.query_one("#rclone-remote", Select).value
        name = chosen if isinstance(chosen, str) else ""
        name = name if name.endswith(":") else f"{name}:"
        return name + self.query_one("#rclone-path", Input).value.strip()

    def ready(self) -> bool:
        return isinstance(self.query_one("#rclone-remote", Select).value, str)

    def error_opening(self, message: str) -> str:
        """rclone's word on a missing bucket or folder opens on the remote tried."""
        return message.removeprefix(self._remote())

    def saving_note(self) -> str:
        return printable(f"Connecting to {self._remote()}…")

    async def finish(self, name: str) -> Connection:
        if not self.ready():
            raise ConnectionInputError("remote: choose one of the config's remotes")
        return await self.save_checked(name, rclone_config(remote=self._remote(),
                                                           config=self._config()))
