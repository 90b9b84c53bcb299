"""The queue as a Python object: what the `queuectl` commands do, for a program to call.

`Queue` returns values; it never prints and never exits. Errors are the exceptions of
`queuectl` (`InputError` for a bad argument, `JobNotFoundError`, `StoreError`, ...), with the
messages the CLI shows after `Error:`. The CLI is built on this class: each command reads
its flags, calls one or two methods, and prints what they return.

The parts with a concern of their own live in small modules it calls and re-exports the
reports of: `explain` (why a job is where it is), `wait` (waiting for jobs to end), `logs`
(where a job's log is) and `database` (migrate, backup, check).

Cheap to import (every command imports it at start): nothing here beyond what the CLI
loads anyway; `json` and the supervisor are imported where they are used.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from queuectl import InputError, _core, database, explain, flow, logs, wait
from queuectl.config import Config
from queuectl.database import BackupReport, CheckReport, MigrateReport
from queuectl.explain import Explanation
from queuectl.home import Home
from queuectl.logs import LogLocation
from queuectl.text import shown_location
from queuectl.wait import ENDED_STATES, WaitResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "ENDED_STATES",
    "JOB_STATES",
    "BackupReport",
    "CancelReport",
    "CheckReport",
    "EnqueueReport",
    "Explanation",
    "LogLocation",
    "MigrateReport",
    "Queue",
    "WaitResult",
    "WorkerStatus",
    "busy_timeout_ms",
    "command_job",
]

JOB_STATES: tuple[str, ...] = tuple(_core.JOB_STATES)


def busy_timeout_ms() -> int:
    """How long an operation waits for another process's write lock: QUEUECTL_BUSY_TIMEOUT
    seconds, 30 by default."""
    text = os.environ.get("QUEUECTL_BUSY_TIMEOUT")
    if text is None:
        return _core.DEFAULT_BUSY_TIMEOUT_MS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86_400:
        raise InputError(f"QUEUECTL_BUSY_TIMEOUT must be seconds from 0 to 86400, got {text!r}")
    return round(seconds * 1000)


def _seconds(name: str, value: float) -> float:
    """`value` if it is a finite number of seconds >= 0, else InputError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and 0 <= value <= 1e12):
        raise InputError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def command_job(
    command: str,
    *,
    id: str | None = None,
    priority: int | None = None,
    max_retries: int | None = None,
    timeout_s: float | None = None,
    run_at: str | None = None,
    delay_s: float | None = None,
    env: Mapping[str, str] | None = None,
    queue: str | None = None,
    unique_key: str | None = None,
    after: Iterable[str] = (),
    key: str | None = None,
    slots: int | None = None,
    retry_delays: Iterable[float] | None = None,
    retry_on: Iterable[int] | None = None,
    no_retry_on: Iterable[int | str] | None = None,
    expires: str | float | None = None,
) -> str:
    """The enqueue JSON of one job given by its fields; the store validates each of them
    (InputError naming the field), this checks only what never reaches it. `expires` (a
    duration from now, in seconds or as text such as "30m", or an ISO-8601 time) becomes
    `expires_at`."""
    import json

    if run_at is not None and delay_s is not None:
        raise InputError("give run_at or delay_s, not both")
    spec: dict[str, object] = {"command": command}
    if id is not None:
        spec["id"] = id
    if priority is not None:
        spec["priority"] = priority
    if max_retries is not None:
        spec["max_retries"] = max_retries
    if timeout_s is not None:
        spec["timeout"] = _seconds("timeout_s", timeout_s)
    if run_at is not None:
        _core.parse_time(run_at)  # InputError saying what an ISO-8601 time looks like
        spec["run_at"] = run_at
    if delay_s is not None:
        delay_ms = round(_seconds("delay_s", delay_s) * 1000)
        spec["run_at"] = _core.format_time(_core.now_ms() + delay_ms)
    if env:
        spec["env"] = dict(env)
    if queue is not None:
        spec["queue"] = queue
    if unique_key is not None:
        spec["unique_key"] = unique_key
    parents = _unique(after)
    if parents:
        spec["after"] = parents
    flow_fields = {
        "key": key,
        "slots": slots,
        "retry_delays": None if retry_delays is None else list(retry_delays),
        "retry_on": None if retry_on is None else list(retry_on),
        "no_retry_on": None if no_retry_on is None else list(no_retry_on),
    }
    spec.update((k, v) for k, v in flow_fields.items() if v is not None)
    if expires is not None:
        try:
            spec["expires_at"] = flow.expiry(expires)
        except ValueError as e:
            raise InputError(f"expires: {e}") from None
    return json.dumps(spec)


def _unique(ids: Iterable[str]) -> list[str]:
    """The ids in the order given, each once (a lone string is one id)."""
    return list(dict.fromkeys([ids] if isinstance(ids, str) else ids))


class EnqueueReport(NamedTuple):
    """What an enqueue did: the id of every job given, in order, and the positions of
    those it skipped because an unfinished job already had their `unique_key` (their id
    is that job's)."""

    ids: list[str]
    skipped: list[int]


class CancelReport(NamedTuple):
    """What `Queue.cancel` did: the jobs cancelled at once (they were waiting to run), and
    the running ones whose workers were asked to kill them (they end `cancelled` within
    about a heartbeat; one that finished in the meantime keeps its result)."""

    cancelled: list[str]
    killing: list[str]


class WorkerStatus(NamedTuple):
    """A worker with its state as shown: idle, busy, stopping, lost or exited."""

    worker: _core.Worker
    state: str


class Queue:
    """One queue: a home folder (logs, the detached workers' log) and its database.

    The store is opened, and the database created and migrated, on the first operation
    that needs it.
    """

    def __init__(self, home: Home) -> None:
        self.home = home
        self._store: _core.Store | None = None

    @classmethod
    def open(cls, home: str | None = None, db: str | None = None) -> Queue:
        """The queue the CLI would use with `--home home --db db`: arguments win over
        QUEUECTL_HOME / QUEUECTL_DB, which win over the per-user data folder."""
        return cls(Home.resolve(home, db))

    def __repr__(self) -> str:
        return f"Queue(home={str(self.home.dir)!r}, db={shown_location(self.home.db)!r})"

    @property
    def store(self) -> _core.Store:
        """The underlying store, opened on first use with the busy timeout of
        QUEUECTL_BUSY_TIMEOUT."""
        if self._store is None:
            self.home.ensure()
            self._store = _core.Store(self.home.db, busy_timeout_ms=busy_timeout_ms())
        return self._store

    def close(self) -> None:
        """Lets go of the store's connection; the next operation opens it again."""
        self._store = None

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Jobs in

    def enqueue(
        self,
        text: str,
        *,
        batch: bool = False,
        progress: Callable[[int, int], object] | None = None,
    ) -> list[str]:
        """Adds the jobs of enqueue JSON `text` and returns their ids: one JSON object, or
        with `batch` JSON Lines or an array, all or nothing. Fields a job leaves out get the
        queue's config (max-retries, job-timeout) and the current directory as its cwd.
        `progress(done, total)` is called now and then during a large batch. A job whose
        `unique_key` an unfinished job has is not added: its id is that job's
        (`enqueue_report` says which)."""
        return self.enqueue_report(text, batch=batch, progress=progress).ids

    def enqueue_report(
        self,
        text: str,
        *,
        batch: bool = False,
        progress: Callable[[int, int], object] | None = None,
    ) -> EnqueueReport:
        """`enqueue`, saying which jobs were skipped for their unique key."""
        cfg = self.config()
        ids, skipped = self.store.enqueue_json(
            text,
            batch=batch,
            max_retries=cfg.max_retries,
            timeout_ms=round(cfg.job_timeout_s * 1000),
            cwd=os.getcwd(),
            progress=progress,
        )
        return EnqueueReport(ids, skipped)

    def enqueue_command(
        self,
        command: str,
        *,
        id: str | None = None,
        priority: int | None = None,
        max_retries: int | None = None,
        timeout_s: float | None = None,
        run_at: str | None = None,
        delay_s: float | None = None,
        env: Mapping[str, str] | None = None,
        queue: str | None = None,
        unique_key: str | None = None,
        after: Iterable[str] = (),
        key: str | None = None,
        slots: int | None = None,
        retry_delays: Iterable[float] | None = None,
        retry_on: Iterable[int] | None = None,
        no_retry_on: Iterable[int | str] | None = None,
        expires: str | float | None = None,
    ) -> str:
        """Adds one shell command and returns its id (generated unless `id` is given; the
        unfinished job's when one holds `unique_key`). With `after` (job ids), it waits
        until all of those have completed, and is cancelled if one of them ends dead or
        cancelled.
        `run_at` is an ISO-8601 time (UTC without an offset); `delay_s` counts from now;
        give one of them at most. `env` is added to the job's environment; its values are
        stored but never shown. `queue` names its queue (default "default").
        Flow control (docs/guide/flow-control.md): at most the queue's key limit of jobs
        with the same `key` run at once; the job needs `slots` of a worker process (1 to
        1024, default 1); `retry_delays` (seconds) are the waits before each retry, the
        last repeating; only exit codes in `retry_on` are retried, and those in
        `no_retry_on` (which may name "timeout") end it dead at once; a job not started by
        `expires` (seconds or a duration such as "30m" from now, or an ISO-8601 time) ends
        cancelled, "expired"."""
        text = command_job(
            command,
            id=id,
            priority=priority,
            max_retries=max_retries,
            timeout_s=timeout_s,
            run_at=run_at,
            delay_s=delay_s,
            env=env,
            queue=queue,
            unique_key=unique_key,
            after=after,
            key=key,
            slots=slots,
            retry_delays=retry_delays,
            retry_on=retry_on,
            no_retry_on=no_retry_on,
            expires=expires,
        )
        (new_id,) = self.enqueue(text)
        return new_id

    # Jobs out

    def get(self, id: str) -> _core.Job:
        """The job `id`; JobNotFoundError when there is none."""
        return self.store.get(id)

    def jobs(
        self, state: str | None = None, limit: int | None = None, queue: str | None = None
    ) -> list[_core.Job]:
        """Jobs in enqueue order, optionally of one state (see JOB_STATES) and of one named
        queue, at most `limit`."""
        return self.store.jobs(state, limit, queue)

    def jobs_page(
        self,
        state: str | None = None,
        queue: str | None = None,
        search: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> tuple[list[_core.Job], int | None]:
        """A page of jobs, newest first: of one state and one queue when given, whose id or
        command contains `search`, enqueued before the cursor `before` (the `next` of the
        page before). Returns (jobs, next); next is None when no older job is left. Where
        no index keeps the filter in order, a page looks through at most 50,000 enqueue
        positions, so it may hold fewer than `limit` jobs and still have a next page."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InputError(f"a page holds 1 to 1000 jobs, got {limit!r}")
        if state is not None and state not in JOB_STATES:
            raise InputError(f"unknown state {state!r}: use one of {', '.join(JOB_STATES)}")
        if before is not None and (isinstance(before, bool) or not isinstance(before, int)):
            raise InputError(f"a page cursor is a whole number, got {before!r}")
        return self.store.jobs_page(state, queue, search or None, before, limit)

    def oldest_pending(self) -> _core.Job | None:
        """The pending job enqueued first, or None."""
        jobs = self.store.jobs("pending", 1)
        return jobs[0] if jobs else None

    def stats(self, since_ms: int | None = None) -> list[tuple[int, str, str, int]]:
        """What workers did, from the store's per-minute rollup: the totals since the
        queue began when `since_ms` is None, else each minute from `since_ms` on, as
        (minute_ms, queue, metric, value) rows. Metrics: started, completed, retried,
        dead, cancelled, fenced, requeued, leases_expired, run_ms_sum, wait_ms_sum and the
        histogram buckets run_le_MS / wait_le_MS (`inf` for the last)."""
        return self.store.stats(since_ms)

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state, every state included."""
        return dict(self.store.counts())

    def parents(self, id: str) -> list[tuple[str, str]]:
        """The jobs job `id` runs after (its `after`), in enqueue order, with their states."""
        self.get(id)  # JobNotFoundError for an unknown id
        return self.store.parents(id)

    def attempts(self, id: str) -> list[_core.Attempt]:
        """The finished attempts of job `id`, first to last, with the tail of each output."""
        return self.store.attempts(id)

    def retry_dead(self, ids: Iterable[str]) -> int:
        """Puts the dead jobs `ids` back to pending with attempts reset; all or nothing:
        an unknown id or a job that is not dead changes nothing. Returns how many."""
        wanted = [ids] if isinstance(ids, str) else list(ids)
        return self.store.dead_retry(wanted)

    def retry(self, ids: Iterable[str]) -> int:
        """Puts failed, dead or cancelled jobs back to pending with attempts reset,
        runnable now; all or nothing: an unknown id or a job in another state changes
        nothing. Returns how many."""
        return self.store.retry(_unique(ids))

    def cancel(self, ids: Iterable[str]) -> CancelReport:
        """Cancels jobs: pending or failed ones end `cancelled` at once, never to run
        again; a processing one is killed by its worker (wherever it runs) at the worker's
        next heartbeat, its whole process tree as a timeout kills it, and settles
        `cancelled`, not retried. All or nothing: an unknown id or a job that has ended
        (completed, dead, cancelled) changes nothing."""
        # The store says what it did to each job, as it found the job under its lock: a
        # running one was flagged for its worker, any other cancelled.
        cancelled, killing = self.store.cancel(_unique(ids))
        return CancelReport(cancelled, killing)

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Removes jobs that are not processing, with their history and their log files
        here; all or nothing: an unknown or processing job changes nothing. Returns the
        ids deleted."""
        wanted = _unique(ids)
        self.store.delete(wanted)
        for job_id in wanted:
            self.log_path(job_id).unlink(missing_ok=True)
        return wanted

    def wait(self, ids: Iterable[str], timeout_s: float | None = None) -> WaitResult:
        """Blocks until every job of `ids` has ended (completed, dead or cancelled), or `timeout_s`
        passes. Sleeps on the store's own wake-ups (a commit by anyone), not a busy poll;
        an unknown id raises JobNotFoundError at once."""
        wanted = _unique(ids)
        limit = None if timeout_s is None else _seconds("timeout_s", timeout_s)
        return wait.until_ended(self.store, wanted, limit)

    def retry_all_dead(self) -> int:
        """Puts every dead job back to pending; returns how many."""
        return self.store.dead_retry_all()

    def purge(self, state: str, older_than_s: float | None = None) -> list[str]:
        """Deletes the jobs in `state` (completed, dead or cancelled), only those that reached it at
        least `older_than_s` ago when given, with their history and their log files here.
        Returns the ids deleted."""
        cutoff = None
        if older_than_s is not None:
            cutoff = _core.now_ms() - round(_seconds("older_than_s", older_than_s) * 1000)
        ids = self.store.purge(state, cutoff)
        for job_id in ids:
            self.log_path(job_id).unlink(missing_ok=True)
        return ids

    # Named queues

    def queues(self) -> list[_core.Queue]:
        """Every named queue that has jobs or settings, by name, with counts by state."""
        return self.store.queues()

    def pause(self, names: Iterable[str]) -> int:
        """Holds the queues on every host: their jobs are not claimed, running ones finish.
        All or nothing (a bad name changes none); a queue need not have jobs yet."""
        return self.store.queue_pause(_unique(names), True)

    def resume(self, names: Iterable[str]) -> int:
        """Releases paused queues."""
        return self.store.queue_pause(_unique(names), False)

    def set_limit(self, name: str, limit: int) -> int:
        """At most `limit` jobs of queue `name` processing at once over every worker on
        every host; 0 lifts the limit."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InputError(f"a queue limit must be an integer >= 0, got {limit!r}")
        return self.store.queue_limit(name, limit)

    def set_rate(self, name: str, n: int, period_s: float = 1.0) -> int:
        """At most `n` jobs of queue `name` start in any window of `period_s` seconds (a
        sliding window, over every worker on every host); the jobs past it stay pending.
        `n` is 1 to 1,000,000 and `period_s` above 0 and at most 30 days; `n` 0 lifts
        the rate."""
        try:
            r = flow.rate(n, period_s)
        except ValueError as e:
            raise InputError(str(e)) from None
        return self.store.queue_rate(name, r.n, r.period_ms)

    def set_key_limit(self, name: str, limit: int) -> int:
        """At most `limit` jobs of queue `name` with the same `key` processing at once,
        over every worker on every host (jobs without a key are not counted); 0 lifts
        the limit."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InputError(f"a key limit must be an integer >= 0, got {limit!r}")
        return self.store.queue_key_limit(name, limit)

    # Logs

    def log_path(self, id: str) -> Path:
        """Where this host keeps the full log of job `id` (the file exists once the job
        has printed something on this host)."""
        return _core.log_path(str(self.home.logs_dir), id)

    def log_location(self, id: str) -> LogLocation:
        """The job `id` and where its full log lives: on the host of the worker that ran it
        last, or this host when none did (or the worker is no longer known)."""
        return logs.locate(self.store, self.home.logs_dir, id)

    def explain(self, id: str) -> Explanation:
        """Why job `id` is where it is, in short sentences: when it is due and how many
        jobs are ahead of it, which worker runs it, when a failed job tries again and how
        many tries it has left, why a dead job is dead, and whether any worker is running."""
        return explain.explain(self, id)

    # Schedules

    def schedule_add(
        self,
        name: str,
        cron: str,
        job: str,
        *,
        tz: str | None = None,
        overlap: str = "skip",
    ) -> _core.Schedule:
        """Adds a schedule: `job` (enqueue JSON, without id, run_at or after) is enqueued at
        every occurrence of `cron` (5 fields, @hourly, @daily, @weekly, @monthly, @yearly,
        or @every 10m) read in zone `tz` (IANA, default UTC). Running workers fire it;
        `overlap` "skip" (the default) skips an occurrence while the previous one's job is
        unfinished, "allow" enqueues it anyway. Missing max_retries, timeout and cwd are
        taken from the config and the current folder now."""
        cfg = self.config()
        return self.store.schedule_add(
            name,
            cron,
            tz=tz,
            overlap=overlap,
            job=job,
            max_retries=cfg.max_retries,
            timeout_ms=round(cfg.job_timeout_s * 1000),
            cwd=os.getcwd(),
        )

    def schedules(self) -> list[_core.Schedule]:
        """Every schedule, by name."""
        return self.store.schedules()

    def schedule(self, name: str) -> _core.Schedule:
        """The schedule `name`; InputError when there is none."""
        found = self.store.schedules(name)
        if not found:
            raise InputError(f"there is no schedule named {name!r} (see `queuectl schedule list`)")
        return found[0]

    def schedule_next(self, name: str, count: int = 5) -> list[tuple[int, str]]:
        """The next `count` occurrences of schedule `name` from now: (ms, local time)."""
        s = self.schedule(name)
        after = max(_core.now_ms(), s.next_fire_ms - 1) if not s.paused else _core.now_ms()
        return _core.schedule_times(s.cron, s.tz, after, count)

    def schedule_pause(self, name: str) -> None:
        """No occurrence of it fires until it is resumed."""
        self.store.schedule_change(name, "pause")

    def schedule_resume(self, name: str) -> None:
        """It fires again from its next occurrence after now (none missed while paused)."""
        self.store.schedule_change(name, "resume")

    def schedule_remove(self, name: str) -> None:
        """Removes the schedule; jobs it enqueued stay."""
        self.store.schedule_change(name, "remove")

    # Workers

    def workers(self, include_exited: bool = False) -> list[WorkerStatus]:
        """Running workers on every host; with `include_exited` also exited and lost ones."""
        from queuectl import supervisor

        now, here = _core.now_ms(), supervisor.host_name()
        rows = [
            WorkerStatus(w, supervisor.worker_state(w, now, here))
            for w in self.store.workers(include_exited)
        ]
        if not include_exited:
            rows = [r for r in rows if r.state not in ("exited", "lost")]
        return rows

    def live_workers(self, host: str | None = None) -> list[WorkerStatus]:
        """Workers that are running (not exited or lost), optionally only those of `host`."""
        from queuectl import supervisor

        return [WorkerStatus(w, s) for w, s in supervisor.live_workers(self.store, host)]

    def stop_workers(
        self,
        force: bool = False,
        wait: bool = False,
        timeout_s: float | None = None,
        host: str | None = None,
        worker: str | None = None,
    ) -> int:
        """Asks every running worker (of `host`, or only the worker `worker`, when given)
        to stop, through the database so it reaches any host; `force` kills running jobs
        and requeues them. With `wait`, returns once none runs, or raises QueuectlError
        after `timeout_s`. Returns how many workers were asked (0: none was running)."""
        from queuectl import supervisor

        if timeout_s is not None:
            timeout_s = _seconds("timeout_s", timeout_s)
        return supervisor.stop(
            self.store, force=force, wait=wait, timeout_s=timeout_s, host=host, worker=worker
        )

    # Config

    def config(self) -> Config:
        """Every setting of this queue, defaults included."""
        return Config(self.store.config_list())

    def config_get(self, key: str) -> str:
        """The value of `key` (either spelling: max_retries or max-retries)."""
        from queuectl import config as settings

        name = settings.canonical(key)
        return self.config().get(name)

    def config_set(self, key: str, value: str | float) -> tuple[str, str]:
        """Sets `key`, validated as `queuectl config set` does (InputError naming what is
        allowed; nothing changes then). Returns the key and the value as stored."""
        from queuectl import config as settings

        name, stored = settings.normalize(key, str(value))
        self.store.config_set(name, stored)
        return name, stored

    # Whole queues

    def migrate_to(self, target: str) -> MigrateReport:
        """Copies every job, its history and the config into `target`, the other kind of
        store (a postgresql:// URL from SQLite, a SQLite file from PostgreSQL), in one
        transaction. Refuses (InputError) while workers run or with no queue to copy, and
        (DuplicateJobError, nothing copied) when an id is in both. The source is unchanged."""
        return database.migrate(self.home.db, target, lambda: len(self.live_workers()))

    def backup(self, path: str | os.PathLike[str]) -> BackupReport:
        """Writes a consistent copy of the whole queue to `path`, a new owner-only SQLite
        file (never overwriting one); workers may keep running. Jobs running at that moment
        are pending in the copy."""
        return database.backup(self.home.db, path)

    def check(self) -> CheckReport:
        """SQLite's integrity check, the schema version and the queue's own invariants; a
        queue that does not exist is a problem too (and is not created)."""
        return database.check(self.home.db)
