"""Where queuectl keeps its data (docs/internals/data.md): the home folder, the
database, logs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

DB_FILE = "qctl.db"


def _is_url(db: str) -> bool:
    return "://" in db


class Home(NamedTuple):
    """The resolved home folder and database location (a NamedTuple: no dataclasses
    import, which costs a few milliseconds of every command's start)."""

    dir: Path
    db: str

    @classmethod
    def resolve(cls, home: str | None, db: str | None) -> Home:
        """Flags win over QUEUECTL_HOME / QUEUECTL_DB, which win over the per-user default."""
        home = home or os.environ.get("QUEUECTL_HOME")
        if home:
            folder = Path(home).expanduser()
        else:
            import platformdirs

            folder = Path(platformdirs.user_data_dir("queuectl", appauthor=False))
        db = db or os.environ.get("QUEUECTL_DB")
        if not db:
            db = str(folder / DB_FILE)
        elif not _is_url(db):
            db = str(Path(db).expanduser())
        return cls(dir=folder.absolute(), db=db)

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def worker_log(self) -> Path:
        """Where detached workers write what foreground workers print to stderr."""
        return self.dir / "worker.log"

    def ensure(self) -> None:
        """Creates the home and logs folders, owner-only, when they are missing."""
        for folder in (self.dir, self.logs_dir):
            if not folder.is_dir():
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
