"""Where dryviq-tui keeps its files: `--home`, `DRYVIQ_HOME`, or the platform's user folders.

One home holds state.db (mode 0600: it will carry secrets) and the per-job run locks; config.toml
joins them when there is something to configure.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """config.toml cannot be read; the message names the file and the problem."""


class JobBusy(Exception):
    """Another process is running this job right now."""


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, home: str | None = None) -> Home:
        """The home named by the flag, else by DRYVIQ_HOME, else the XDG data folder."""
        chosen = home or os.environ.get("DRYVIQ_HOME")
        if not chosen:
            data = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
            chosen = os.path.join(data, "dryviq-tui")
        return cls(Path(chosen).expanduser().absolute())

    @property
    def state_path(self) -> Path:
        return self.root / "state.db"

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    def config(self) -> dict[str, Any]:
        """config.toml as a dict ({} when there is none); it may hold client secrets, so it
        is read only when its mode keeps it private to this user."""
        import tomllib  # here: most homes have no config.toml, and every command starts here

        try:
            with open(self.config_path, "rb") as file:
                if os.fstat(file.fileno()).st_mode & 0o077:
                    raise ConfigError(f"{self.config_path} is readable by other users; "
                                      f"run: chmod 600 {self.config_path}")
                return tomllib.load(file)
        except FileNotFoundError:
            return {}
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.config_path}: {exc}") from None

    def ensure(self) -> None:
        """Create the home (private to this user) and an empty private state file."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.root / "locks").mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.state_path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(self.state_path, 0o600)

    @contextlib.contextmanager
    def job_lock(self, job_id: str) -> Iterator[None]:
        """Hold the job's run lock; the OS releases it when the process dies, even by SIGKILL."""
        path = self.root / "locks" / f"job-{job_id}.lock"
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobBusy("this job is already running in another process") from None
            yield
        finally:
            os.close(fd)

    def job_running(self, job_id: str) -> bool:
        """Whether some process holds the job's run lock now."""
        try:
            with self.job_lock(job_id):
                return False
        except JobBusy:
            return True
