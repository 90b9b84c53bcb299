"""Starting, detaching and stopping workers, and telling which ones are alive.

Stop requests go through the database so they reach workers in any terminal, service or
host; signals only tell the workers of this process to read their stop flag.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType
from typing import NamedTuple

from queuectl import QueuectlError, _core
from queuectl._platform import detach_options, node_name, pid_alive, stop_signals
from queuectl.home import Home

STOP_GRACEFUL = _core.STOP_GRACEFUL
STOP_FORCE = _core.STOP_FORCE


def host_name() -> str:
    """This host's name as workers record it; QUEUECTL_HOST overrides it (tests, containers)."""
    return os.environ.get("QUEUECTL_HOST") or node_name()


def worker_state(w: _core.Worker, now_ms: int, host: str) -> str:
    """idle, busy, stopping, lost (no heartbeat within its lease) or exited."""
    if w.state == "exited":
        return "exited"
    if _core.worker_lost(w.heartbeat_ms, w.lease_ms, now_ms) or (
        w.host == host and not pid_alive(w.pid)
    ):
        return "lost"
    if w.stop_requested:
        return "stopping"
    return w.state


def live_workers(store: _core.Store, host: str | None = None) -> list[tuple[_core.Worker, str]]:
    """Workers that are running (not exited or lost), optionally only those of `host`."""
    now, here = _core.now_ms(), host_name()
    out = []
    for w in store.workers(False):
        state = worker_state(w, now, here)
        if state not in ("exited", "lost") and (host is None or w.host == host):
            out.append((w, state))
    return out


class WorkerSettings(NamedTuple):
    worker_count: int
    burst: bool
    lease_s: float
    verbose: bool = True
    #: The named queues the workers take jobs from; None: every queue.
    queues: tuple[str, ...] | None = None
    #: After a stop signal, how long running jobs get to finish before they are killed and
    #: requeued; None: as long as they take.
    stop_timeout_s: float | None = None
    #: Slots of the process: its running jobs' slots add up to at most this; None: as
    #: many as workers.
    slots: int | None = None

    def pool(self, home: Home) -> _core.WorkerPool:
        lease_ms = max(1000, round(self.lease_s * 1000))
        home.ensure()
        return _core.WorkerPool(
            home.db,
            self.worker_count,
            logs_dir=str(home.logs_dir),
            host=host_name(),
            pid=os.getpid(),
            lease_ms=lease_ms,
            heartbeat_ms=min(_core.DEFAULT_HEARTBEAT_MS, lease_ms // 3),
            burst=self.burst,
            verbose=self.verbose,
            queues=list(self.queues) if self.queues is not None else None,
            slots=self.slots,
        )


def notify_service_manager(state: str) -> None:
    """Tells systemd (Type=notify) `state`, e.g. READY=1, when it started this process."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not hasattr(signal, "SIGKILL"):
        return
    import socket

    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:  # type: ignore[attr-defined,unused-ignore]
            s.connect(address)
            s.sendall(state.encode())
    except OSError:
        pass


def run_foreground(home: Home, settings: WorkerSettings, announce: bool = True) -> dict[str, int]:
    """Runs the workers until they stop. The first SIGINT, SIGTERM or SIGHUP lets running
    jobs finish (for at most `stop_timeout_s`, when set); a second one, or the end of that
    time, kills them and puts them back to pending."""
    pool = settings.pool(home)
    if announce:
        print(
            f"started {settings.worker_count} worker(s) in process {os.getpid()}: "
            f"{', '.join(pool.worker_ids)}",
            file=sys.stderr,
            flush=True,
        )
    # Every worker is registered once the pool is up: a service manager waiting for
    # READY=1 returns from `start` now.
    notify_service_manager("READY=1")
    received = [0]
    graceful_since: list[float] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received[0] += 1
        if received[0] == 1:
            limit = settings.stop_timeout_s
            then = f" (for up to {limit:g}s)" if limit is not None else ""
            print(
                f"stopping: running jobs will finish{then} (signal again to kill them)",
                file=sys.stderr,
                flush=True,
            )
            notify_service_manager("STOPPING=1")
            graceful_since.append(time.monotonic())
            pool.request_stop(STOP_GRACEFUL)
        else:
            print(
                "stopping now: killing running jobs and requeueing them",
                file=sys.stderr,
                flush=True,
            )
            pool.request_stop(STOP_FORCE)

    previous = {sig: signal.signal(sig, on_signal) for sig in stop_signals()}
    try:
        # Short waits so Python gets to run the signal handlers between them.
        while not pool.wait(0.25):
            limit = settings.stop_timeout_s
            waited = time.monotonic() - graceful_since[0] if graceful_since else 0.0
            if limit is not None and received[0] == 1 and graceful_since and waited >= limit:
                received[0] += 1
                print(
                    f"stopping now: jobs still running after {limit:g}s are killed and requeued",
                    file=sys.stderr,
                    flush=True,
                )
                pool.request_stop(STOP_FORCE)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return pool.join()


def _self_command() -> list[str]:
    """How to run this same queuectl again: the one-file binary, or this interpreter."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "queuectl"]


def start_detached(home: Home, settings: WorkerSettings, wait_s: float = 20.0) -> int:
    """Starts the workers in a background process; returns its pid once all are registered."""
    import subprocess  # only here: it costs every other command a few ms of start-up

    home.ensure()
    args = [
        *_self_command(),
        "--home",
        str(home.dir),
        "--db",
        home.db,
        "worker",
        "start",
        "--count",
        str(settings.worker_count),
        "--lease",
        str(settings.lease_s),
    ]
    if settings.burst:
        args.append("--burst")
    if settings.queues is not None:
        args += ["--queue", ",".join(settings.queues)]
    if settings.stop_timeout_s is not None:
        args += ["--stop-timeout", f"{settings.stop_timeout_s:g}"]
    if settings.slots is not None:
        args += ["--slots", str(settings.slots)]
    with open(home.worker_log, "ab") as log:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, **detach_options()
        )
    store = _core.Store(home.db)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        mine = [w for w in store.workers(True) if w.pid == proc.pid and w.host == host_name()]
        if len(mine) >= settings.worker_count:
            return proc.pid
        if proc.poll() is not None:
            if settings.burst and mine:
                return proc.pid
            raise QueuectlError(
                f"the workers exited at start (exit code {proc.returncode}); see {home.worker_log}"
            )
        time.sleep(0.05)
    raise QueuectlError(f"the workers did not register within {wait_s:.0f}s; see {home.worker_log}")


def stop(
    store: _core.Store,
    force: bool,
    wait: bool,
    timeout_s: float | None,
    host: str | None,
    worker: str | None = None,
) -> int:
    """Asks every running worker (of `host`, or only `worker`, when given) to stop and,
    with `wait`, waits until none of them runs. Returns how many were asked."""
    store.reap()

    def running_now() -> list[tuple[_core.Worker, str]]:
        return [ws for ws in live_workers(store, host) if worker is None or ws[0].id == worker]

    running = running_now()
    if not running:
        return 0
    store.request_stop(STOP_FORCE if force else STOP_GRACEFUL, host, worker)
    if not wait:
        return len(running)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while running_now():
        if deadline is not None and time.monotonic() >= deadline:
            left = len(running_now())
            raise QueuectlError(
                f"{left} worker(s) still running after {timeout_s:g}s; the stop request stands"
            )
        time.sleep(0.1)
    return len(running)
