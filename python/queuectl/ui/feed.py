"""The dashboard's live side: the thread that watches the store's change feed and keeps the
counts snapshot fresh, and the two server-sent event streams an open page listens to,
`/events` ("changed": fetch your content again) and `/api/jobs/{id}/output` (a job's log
as it grows).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from queuectl import InputError, JobNotFoundError, QueuectlError, _core
from queuectl.api import ENDED_STATES, Queue
from queuectl.home import Home
from queuectl.logs import LogFollower

#: How often the event streams look at the change counter (or the log), and the least time
#: between two "changed" events one sends (seconds).
TICK_S = 0.25
MIN_GAP_S = 1.0
#: The least time between two snapshots of the counts while the queue keeps changing.
SNAPSHOT_EVERY_S = 5.0
#: A stream that has sent nothing for this long sends a comment, so proxies keep it open.
KEEPALIVE_S = 15.0
#: The most of a log the live output is behind its end, and sends a tick: a person cannot
#: read faster, and a page that took in all of a fast job's output would never keep up.
LIVE_WINDOW = 256 * 1024


class Snapshot(NamedTuple):
    """The counts that take a scan of the jobs (by state, by queue and state) and the
    oldest pending job, as of `taken_ms`."""

    counts: dict[str, int]
    queues: list[_core.Queue]
    oldest: _core.Job | None
    taken_ms: int


def take_snapshot(queue: Queue) -> Snapshot:
    return Snapshot(queue.counts(), queue.queues(), queue.oldest_pending(), _core.now_ms())


class Feed:
    """One thread that waits on the store's change feed for commits by other connections,
    counts them (`version`: every open page's event stream watches it), and keeps the
    Snapshot fresh: taken again after a change, at most every SNAPSHOT_EVERY_S (at once
    after an action here), so that no page waits for a count of a million jobs."""

    def __init__(self, home: Home) -> None:
        self.version = 0
        self.snapshot: Snapshot | None = None
        self._home = home
        self._stop = threading.Event()
        self._dirty = True
        self._urgent = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="queuectl-ui-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def soon(self) -> None:
        """An action changed the queue: take the snapshot again without waiting."""
        self._dirty = True
        self._urgent.set()

    def current(self) -> Snapshot:
        snap = self.snapshot
        if snap is None:
            with self._lock:  # the first request before the thread's first snapshot
                if self.snapshot is None:
                    self.snapshot = take_snapshot(Queue(self._home))
                snap = self.snapshot
        return snap

    def _run(self) -> None:
        store: _core.Store | None = None
        queue = Queue(self._home)
        last = 0.0
        while not self._stop.is_set():
            try:
                if store is None:
                    store = Queue(self._home).store
                    store.wait_for_change(0)
                if store.wait_for_change(0.25 if self._urgent.is_set() else 1.0):
                    self.version += 1
                    self._dirty = True
                due = time.monotonic() - last >= SNAPSHOT_EVERY_S or self._urgent.is_set()
                if self._dirty and due:
                    self._dirty = False
                    self._urgent.clear()
                    last = time.monotonic()
                    snap = take_snapshot(queue)
                    with self._lock:
                        self.snapshot = snap
                    self.version += 1
            except QueuectlError:
                store = None
                queue.close()
                self._stop.wait(1.0)

    async def events(self, request: Request) -> Response:
        """`/events`: `changed` whenever the store changed, at most once a second."""

        async def stream() -> AsyncIterator[str]:
            seen = self.version
            last_sent = 0.0
            quiet = 0.0
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                await asyncio.sleep(TICK_S)
                quiet += TICK_S
                now = time.monotonic()
                if self.version != seen and now - last_sent >= MIN_GAP_S:
                    seen, last_sent, quiet = self.version, now, 0.0
                    yield f"event: changed\ndata: {seen}\n\n"
                elif quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": idle\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers=no_cache())

    async def output(self, request: Request) -> Response:
        """`/api/jobs/{id}/output`: a job's log as it grows, `data:` events of JSON strings,
        then `end` with the state it ended in. At most the newest LIVE_WINDOW bytes of the
        log are behind its end at any time, and at most LIVE_WINDOW are sent a tick: past
        that, a line says how much is not shown and the stream goes on from the newest."""
        job_id = request.path_params["id"]
        q = Queue(self._home)
        try:
            path = q.log_path(job_id)
            await asyncio.to_thread(q.get, job_id)
        except (InputError, JobNotFoundError) as e:
            return PlainTextResponse(str(e), status_code=404)

        async def stream() -> AsyncIterator[str]:
            log = LogFollower(path, window=LIVE_WINDOW)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

            async def sends() -> AsyncIterator[str]:
                """Events for what the log has now, up to LIVE_WINDOW bytes of it."""
                sent = 0
                while sent < LIVE_WINDOW:
                    chunk = await asyncio.to_thread(log.read)
                    if not chunk.data:
                        return
                    text = ""
                    if chunk.restarted:
                        text = decoder.decode(b"", final=True)
                        decoder.reset()
                    if chunk.newline:
                        text += "\n"
                    if chunk.skipped:
                        text += skipped_line(chunk.skipped)
                    yield f"data: {json.dumps(text + decoder.decode(chunk.data))}\n\n"
                    sent += len(chunk.data)

            idle = 0.0
            while True:
                sent = False
                async for event in sends():
                    sent = True
                    yield event
                if not sent:
                    if await request.is_disconnected():
                        return
                    # Ended, or its attempt failed (and nothing more written): say so.
                    job = await asyncio.to_thread(q.get, job_id)
                    if job.state in (*ENDED_STATES, "failed"):
                        async for event in sends():
                            yield event
                        yield f"event: end\ndata: {json.dumps(job.state)}\n\n"
                        return
                    idle += TICK_S
                    if idle >= KEEPALIVE_S:
                        idle = 0.0
                        yield ": still running\n\n"
                else:
                    idle = 0.0
                await asyncio.sleep(TICK_S)

        return StreamingResponse(stream(), media_type="text/event-stream", headers=no_cache())


def skipped_line(skipped: int) -> str:
    """The line the live output shows where it passed over part of the log."""
    return f"[queuectl: {skipped:,} bytes of the log not shown here; `queuectl logs` has them]\n"


def no_cache() -> dict[str, str]:
    """Headers of an event stream: never cached, never buffered by a proxy."""
    return {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
