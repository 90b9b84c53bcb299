"""What every command shares: the resolved home and the queue on it."""

from __future__ import annotations

from queuectl.api import Queue
from queuectl.home import Home


class App:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.queue = Queue(home)

    @classmethod
    def from_options(cls, home: str | None, db: str | None) -> App:
        return cls(Home.resolve(home, db))
