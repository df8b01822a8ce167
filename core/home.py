"""Where dryviq-tui keeps its files: `--home`, `DRYVIQ_HOME`, or the platform's user folders.

One home holds state.db (mode 0600: it will carry secrets), the per-job run locks and the log
file; config.toml joins them when there is something to configure. A home that cannot be used (a
file, a missing parent, no permission) is refused with one HomeError naming it and the problem.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """config.toml cannot be read; the message names the file and the problem."""


class HomeError(Exception):
    """The home cannot be used; the message names it and what is wrong."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


class JobBusy(Exception):
    """Another process is running this job right now; `holder` (a core.leases.Lease, when
    known) says which, and the message names it."""

    def __init__(self, message: str = "this job is already running in another process",
                 holder: Any = None) -> None:
        super().__init__(message)
        self.holder = holder

    @classmethod
    def by(cls, holder: Any) -> JobBusy:
        """Refused for `holder` (None: a process of this home not known by its lease yet)."""
        return cls(holder.describe(), holder) if holder is not None else cls()


def _why(exc: OSError) -> str:
    """An OSError as a short phrase, without the path (the caller names it)."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "on a read-only file system"
    return exc.strerror or str(exc)


@dataclass(frozen=True)
class Home:
    root: Path
    # whether the user named this home (--home, DRYVIQ_HOME): its parent must then exist, so a
    # typo or an unmounted disk is reported instead of silently starting an empty home
    named: bool = field(default=False, compare=False)

    @classmethod
    def resolve(cls, home: str | None = None) -> Home:
        """The home named by the flag, else by DRYVIQ_HOME, else the XDG data folder."""
        chosen = home or os.environ.get("DRYVIQ_HOME")
        named = bool(chosen)
        if not chosen:
            data = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
            chosen = os.path.join(data, "dryviq-tui")
        return cls(Path(chosen).expanduser().absolute(), named)

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

    def state_url(self) -> str | None:
        """Where a shared state lives (several hosts, one PostgreSQL database):
        DRYVIQ_STATE_URL, else `[state] url` in config.toml; None for this home's state.db."""
        url = os.environ.get("DRYVIQ_STATE_URL") or self.config().get("state", {}).get("url")
        if url is not None and not isinstance(url, str):
            raise ConfigError(f"{self.config_path}: [state] url must be a string")
        return url or None

    @property
    def logs_path(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> list[str]:
        """Create the home (private to this user) and an empty private state file; an existing
        home open to other users is made private when it is ours, else a warning is returned.
        A read-only home or state file is left read-only (read-only commands still work).
        Raises HomeError when the home cannot be used."""
        root = self.root
        if self.named and not root.exists() and not root.is_symlink():
            parent = root.parent
            if not parent.is_dir():
                raise HomeError(root, f"its parent folder {parent} does not exist"
                                      if not parent.exists() else f"{parent} is not a folder")
        try:
            root.mkdir(mode=0o700, parents=not self.named, exist_ok=True)
        except FileExistsError:
            raise HomeError(root, "is a file, not a folder") from None
        except OSError as exc:
            raise HomeError(root, f"cannot create it ({_why(exc)})") from None
        warnings = self._make_private()
        try:
            os.listdir(root)
        except OSError as exc:
            raise HomeError(root, f"cannot read it ({_why(exc)})") from None
        try:
            fd = os.open(self.state_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        except FileExistsError:
            if self.state_path.is_dir():
                raise HomeError(self.state_path, "is a folder, not a state file") from None
        except OSError as exc:
            raise HomeError(root, f"cannot write in it ({_why(exc)})") from None
        for folder in (root / "locks", self.logs_path):
            try:
                folder.mkdir(mode=0o700, exist_ok=True)
            except FileExistsError:
                raise HomeError(folder, "is a file, not a folder") from None
            except OSError as exc:
                if not folder.is_dir():
                    raise HomeError(root, f"cannot write in it ({_why(exc)})") from None
        with contextlib.suppress(OSError):  # keep a read-only file read-only: only drop bits
            mode = stat.S_IMODE(os.stat(self.state_path).st_mode)
            if mode & 0o077:
                os.chmod(self.state_path, mode & 0o700)
        return warnings

    def _make_private(self) -> list[str]:
        """Close the home to other users (it holds secrets); a home that belongs to someone
        else is left as it is, with a warning."""
        info = os.stat(self.root)
        mode = stat.S_IMODE(info.st_mode)
        if not mode & 0o077:
            return []
        open_to_others = f"{self.root} is open to other users (mode {mode:o}) and holds secrets"
        if info.st_uid != os.geteuid() or mode & stat.S_ISVTX or not self._only_ours():
            return [f"{open_to_others}; it is not only dryviq-tui's folder, so it is left as "
                    f"it is: give dryviq-tui a folder of its own, or its owner can run "
                    f"chmod 700 {self.root}"]
        try:
            os.chmod(self.root, mode & 0o700)
        except OSError as exc:
            return [f"{open_to_others}; it could not be made private ({_why(exc)})"]
        log.info("made the home %s private (mode %o, was %o)", self.root, mode & 0o700, mode)
        return []

    def _only_ours(self) -> bool:
        """Whether the home holds nothing but what dryviq-tui keeps there (so that changing
        its mode cannot lock others out of a shared folder such as /tmp or a user's home)."""
        with contextlib.suppress(OSError):
            return all(name in ("locks", "logs", "config.toml") or name.startswith("state.db")
                       for name in os.listdir(self.root))
        return False

    @contextlib.contextmanager
    def job_lock(self, job_id: str) -> Iterator[None]:
        """Hold the job's run lock; the OS releases it when the process dies, even by SIGKILL."""
        path = self.root / "locks" / f"job-{job_id}.lock"
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobBusy() from None
            yield
        finally:
            os.close(fd)

    def job_locked(self, job_id: str) -> bool:
        """Whether some process holds the job's run lock in this home now (whether one runs it
        anywhere: core.leases.job_running)."""
        try:
            with self.job_lock(job_id):
                return False
        except JobBusy:
            return True
