"""Where a job's full log is: the file in this host's logs folder, or on the host of the
worker that ran the job last (`queuectl logs`, `Queue.log_location`); and reading a log
while its job writes it (`queuectl logs`, the dashboard's live output).

Cheap to import (the API imports it at every start): nothing beyond the extension.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from queuectl import _core

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Chunk", "LogFollower", "LogLocation", "locate"]


class LogLocation(NamedTuple):
    """Where the full log of a job is: `path` on `host`, which is this host when `local`.
    Every host's logs folder names a job's log the same way; the database keeps the tail
    of each finished attempt wherever the file is."""

    job: _core.Job
    path: Path
    host: str
    local: bool


def locate(store: _core.Store, logs_dir: Path, id: str) -> LogLocation:
    """The job `id` of `store` and where its full log lives, `logs_dir` being this host's
    logs folder (see Queue.log_location)."""
    from queuectl.supervisor import host_name

    job = store.get(id)
    path = _core.log_path(str(logs_dir), id)
    here = host_name()
    hosts = {w.id: w.host for w in store.workers(True)}
    ran_on = hosts.get(job.worker_id or "", here)
    return LogLocation(job=job, path=path, host=ran_on, local=ran_on == here)


#: The end of the line the worker writes where `log-max-bytes` dropped output (the line is
#: `[queuectl: N earlier bytes of output dropped: log-max-bytes]`, N padded to 20 places).
DROPPED_LINE_END = b" earlier bytes of output dropped: log-max-bytes]\n"
DROPPED_LINE_LEN = len(b"[queuectl: ") + 20 + len(DROPPED_LINE_END)
#: How many of the last bytes read a follower checks are still where it read them: this
#: many, stretched back to the line break before them if they hold none (when one is within
#: FINGERPRINT_MAX), so that a run of one character within a line (padding, a progress
#: bar) cannot pass for another place in the log.
FINGERPRINT = 1024
FINGERPRINT_MAX = 65536
#: How much a follower reads at a time, and searches at a time.
READ_BYTES = 65536
SEARCH_BYTES = 1 << 20


class Chunk(NamedTuple):
    """What one LogFollower.read got: `data`, after `skipped` bytes of the file passed over
    to stay within the follower's window; `restarted` when `data` does not continue what
    the previous read returned (a skip, or output dropped by `log-max-bytes` before it was
    read: then `data` starts with the worker's line that says so); `newline` when, on a
    restart, the data before ended within a line, so that a newline must go first."""

    data: bytes
    skipped: int = 0
    restarted: bool = False
    newline: bool = False


class LogFollower:
    """Reads a job's log file as the worker writes it, from the start or, with `window`,
    never more than `window` bytes behind its end.

    The worker keeps a log within `log-max-bytes` by moving the newest output back to the
    start of the attempt's output, in the same file: a reader that only kept an offset would
    then read nothing until the file grew past it again, and then output out of order. So
    the follower keeps the last bytes it read (FINGERPRINT) and checks after every read that
    they are still just before its offset. When they are not, it finds them again (the
    output moved back: it goes on exactly after them), or, when they were dropped, goes on
    from the worker's "dropped" line. Output that repeats itself exactly (a run of one
    character) can fool the check; what is then shown is the same text.
    """

    def __init__(self, path: Path, window: int | None = None) -> None:
        self.path = path
        self.window = window
        self.offset = 0
        self._seen = b""
        # A skip or a restart not yet reported with data.
        self._skipped = 0
        self._restarted = False
        # Whether the data returned last ended a line (or there was none).
        self._line_ended = True

    def read(self, limit: int = READ_BYTES) -> Chunk:
        """The next bytes of the log, at most `limit`; empty when there is nothing new (or
        no file yet)."""
        # Opened for each read, not held: on Windows an open file cannot be deleted, and
        # `purge` must not fail because a dashboard shows the job.
        try:
            with self.path.open("rb") as f:
                return self._read(f, limit)
        except FileNotFoundError:
            return Chunk(b"")

    def _read(self, f: BinaryIO, limit: int) -> Chunk:
        for _ in range(3):
            size = os.fstat(f.fileno()).st_size
            if self.window is not None and size - self.offset > self.window:
                before = self.offset
                self._move(f, self._line_start(f, size - self.window))
                self._skipped += max(0, self.offset - before)
                self._restarted = True
            f.seek(self.offset)
            data = f.read(limit)
            # Checked after the read: a move that began before it or during it has changed
            # what is before the offset by now (a move writes from the start of the
            # attempt's output up), unless the offset is in the part it keeps, which stays
            # in place until the move is done.
            if self._in_place(f):
                break
            self._restarted = self._find_again(f) or self._restarted
        else:
            return Chunk(b"")
        if not data:
            return Chunk(b"")
        self.offset += len(data)
        self._seen = fingerprint(self._seen + data)
        newline = self._restarted and not self._line_ended
        chunk = Chunk(data, self._skipped, self._restarted, newline)
        self._skipped, self._restarted, self._line_ended = 0, False, data.endswith(b"\n")
        return chunk

    def _in_place(self, f: BinaryIO) -> bool:
        if not self._seen:
            return True
        f.seek(self.offset - len(self._seen))
        return f.read(len(self._seen)) == self._seen

    def _move(self, f: BinaryIO, offset: int) -> None:
        """Goes on from `offset`, remembering the bytes before it."""
        self.offset = offset
        start = max(0, offset - FINGERPRINT_MAX)
        f.seek(start)
        self._seen = fingerprint(f.read(offset - start))

    def _line_start(self, f: BinaryIO, offset: int) -> int:
        """The start of the first line that begins at or after `offset` (within a read)."""
        if offset <= 0:
            return 0
        f.seek(offset - 1)
        block = f.read(READ_BYTES)
        nl = block.find(b"\n")
        return offset if nl < 0 else offset + nl

    def _find_again(self, f: BinaryIO) -> bool:
        """After the worker moved the output: goes on where the bytes last read are now, or
        from the worker's newest "dropped" line when they were dropped, or from the start
        when neither is there. Returns whether the next read does not continue the last."""
        size = os.fstat(f.fileno()).st_size
        # Output only ever moves back, so what was read ends before the old offset.
        found = rfind(f, self._seen, min(size, self.offset))
        if found >= 0:
            self._move(f, found + len(self._seen))
            return False
        dropped = rfind(f, DROPPED_LINE_END, size)
        start = dropped + len(DROPPED_LINE_END) - DROPPED_LINE_LEN
        self._move(f, start if dropped >= 0 and start >= 0 else 0)
        return True


def fingerprint(read: bytes) -> bytes:
    """The end of `read` a follower checks (see FINGERPRINT)."""
    start = max(0, len(read) - FINGERPRINT)
    if b"\n" not in read[start:]:
        nl = read.rfind(b"\n", max(0, len(read) - FINGERPRINT_MAX), start)
        start = nl if nl >= 0 else start
    return read[start:]


def rfind(f: BinaryIO, needle: bytes, end: int) -> int:
    """Where the last `needle` that ends by `end` starts in `f`, or -1; reads backwards a
    block at a time."""
    hi = end
    while hi > 0:
        lo = max(0, hi - SEARCH_BYTES)
        f.seek(lo)
        block = f.read(min(end, hi + len(needle) - 1) - lo)
        at = block.rfind(needle)
        if at >= 0:
            return lo + at
        hi = lo
    return -1
