"""The log: a rotating file in the home (`logs/dryviq-tui.log`, private to its user), and the
same records on stderr with `-v`.

What is logged: commands run, job start and finish, pauses and continues, rate-limit waits,
flagged and failed items with their reasons, retries. Never a secret: every record passes
`Redact`, a safety net that blanks tokens, client secrets, passwords and Authorization headers
that a message or a traceback might carry by mistake. Only our own loggers (`core`, `tui`) are
recorded; third-party libraries (httpx logs every URL, with its query) are left out.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from core.paths import printable

LOG_FILE = "dryviq-tui.log"
MAX_BYTES = 1024 * 1024
BACKUPS = 5
LEVELS = ("debug", "info", "warning", "error")
OUR_LOGGERS = ("core", "tui", "dryviq")
FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"

# a key naming a credential: any name ending in one of these words (client_secret,
# DRYVIQ_PROCORE_CLIENT_SECRET, procore_refresh_token, "access_token", api-key, ...)
_SECRET_KEY = r"[\w.-]*(?:secret|token|password|passwd|api[_-]?key)"
# a value: quoted to its closing quote (which may hold spaces), else up to a separator
_VALUE = r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s"',&;}\]]+)"""
_SECRETS = (
    # key=value, key: value, "key": "value" (JSON, env, form bodies, query strings, reprs)
    re.compile(rf"""(?i)(["']?(?<![\w.-]){_SECRET_KEY}["']?\s*[:=]\s*)({_VALUE})"""),
    # an OAuth authorization code in a query string or a form body (?code=..., &code=...),
    # where a bare "code" key means just that; "code" in a JSON error is left alone
    re.compile(r"""(?i)((?<![^?&\s"'])code=)([^\s&#"']+)"""),
    # Authorization: Bearer xyz / Basic xyz, also as a dict entry
    re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?(?:bearer|basic|token)?\s*)"""
               r"""([^"'\s,}]+)"""),
    re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]{8,})"),
)
REDACTED = "[redacted]"


def _blank(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = value[0] if value[:1] in ("'", '"') and len(value) > 1 else ""
    return f"{match.group(1)}{quote}{REDACTED}{quote}"


def redact(text: str) -> str:
    """`text` with the values of anything that looks like a credential blanked."""
    for pattern in _SECRETS:
        text = pattern.sub(_blank, text)
    return text


class Redact(logging.Filter):
    """Blanks credentials in a record's message and traceback before any handler writes it, and
    escapes control characters (a file name holding a newline cannot forge a log line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = printable(redact(message))
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files (the current one and each new one after a rollover)
    are created readable by their owner only."""

    def _open(self) -> IO[str]:
        fd = os.open(self.baseFilename, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)


EVENT_LEVELS = {"failed": logging.WARNING, "flagged": logging.WARNING, "warning": logging.WARNING}


def logged_events(sink: Callable[[str, str], None] | None,
                  logger: logging.Logger) -> Callable[[str, str], None]:
    """An event sink (kind, message) that also logs each event, flagged and failed items as
    warnings; `sink` may be None when nobody else listens."""
    def emit(kind: str, message: str) -> None:
        logger.log(EVENT_LEVELS.get(kind, logging.INFO), "%s",
                   message if kind == "info" else f"{kind}: {message}")
        if sink is not None:
            sink(kind, message)

    return emit


def level_number(name: str) -> int:
    return logging.getLevelNamesMapping()[name.upper()]


def _ours(handler: logging.Handler) -> logging.Handler:
    handler.addFilter(Redact())
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.set_name("dryviq")  # so setup can replace what an earlier setup added
    return handler


def _replace(kind: type[logging.Handler], handler: logging.Handler | None) -> None:
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "dryviq"
                    and type(h) is kind]:
            logger.removeHandler(old)
            old.close()
        if handler is not None:
            logger.addHandler(handler)
        if not any(type(h) is logging.NullHandler for h in logger.handlers):
            logger.addHandler(logging.NullHandler())  # else Python's last resort prints
        logger.setLevel(logging.DEBUG)


def log_to_stderr(level: str | None, stream: IO[str] | None = None) -> None:
    """Show our log records of `level` and above on stderr (None: show none)."""
    handler = None
    if level is not None:
        handler = _ours(logging.StreamHandler(stream or sys.stderr))
        handler.setLevel(level_number(level))
    _replace(logging.StreamHandler, handler)


def log_to_file(logs: Path, level: str = "info") -> Path:
    """Write our log records of `level` and above to `logs`/dryviq-tui.log, rotated at 1 MB
    with 5 old files kept. Returns the file's path."""
    path = logs / LOG_FILE
    handler = _ours(PrivateRotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                               encoding="utf-8"))
    handler.setLevel(level_number(level))
    _replace(PrivateRotatingFileHandler, handler)
    return path


def stop_logging() -> None:
    """Remove (and close) what log_to_stderr and log_to_file added."""
    _replace(logging.StreamHandler, None)
    _replace(PrivateRotatingFileHandler, None)
