"""What every command shares: the resolved home and a lazily opened store."""

from __future__ import annotations

from queuectl import InputError, _core
from queuectl.config import Config
from queuectl.home import Home


def busy_timeout_ms() -> int:
    """How long a command waits for another process's write lock: QUEUECTL_BUSY_TIMEOUT
    seconds, 30 by default."""
    import os

    text = os.environ.get("QUEUECTL_BUSY_TIMEOUT", "30")
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86_400:
        raise InputError(f"QUEUECTL_BUSY_TIMEOUT must be seconds from 0 to 86400, got {text!r}")
    return round(seconds * 1000)


class App:
    def __init__(self, home: Home) -> None:
        self.home = home
        self._store: _core.Store | None = None

    @classmethod
    def from_options(cls, home: str | None, db: str | None) -> App:
        return cls(Home.resolve(home, db))

    @property
    def store(self) -> _core.Store:
        """The database, created and migrated on first use."""
        if self._store is None:
            self.home.ensure()
            self._store = _core.Store(self.home.db, busy_timeout_ms=busy_timeout_ms())
        return self._store

    def config(self) -> Config:
        return Config(self.store.config_list())
