"""What every command shares: the resolved home and a lazily opened store."""

from __future__ import annotations

from queuectl import _core
from queuectl.config import Config
from queuectl.home import Home


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
            self._store = _core.Store(self.home.db)
        return self._store

    def config(self) -> Config:
        return Config(self.store.config_list())
