"""Secrets in a shared state, encrypted with the installation's key (issue 16: being built).

Every host of an installation holds the same key: DRYVIQ_SECRET_KEY, else `secret.key` in the
home (mode 0600). What State stores in its secrets table goes through `seal` and comes back
through `open`.
"""

from __future__ import annotations


class SecretBox:
    """Authenticated encryption of the secrets JSON with the installation's key."""

    def seal(self, text: str) -> str:
        raise NotImplementedError

    def open(self, stored: str) -> str:
        raise NotImplementedError
