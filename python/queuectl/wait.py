"""Waiting for jobs to end (`queuectl wait`, `Queue.wait`): the states a job ends in, the
wait on the store's wake-ups, and what it reports.

Cheap to import (the API imports it at every start): nothing beyond the standard library.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from queuectl import _core

__all__ = ["ENDED_STATES", "WaitResult", "until_ended"]

#: The states a job ends in (the core's final states): `wait` returns once every job is in
#: one of them.
ENDED_STATES = tuple(_core.FINAL_STATES)


class WaitResult(NamedTuple):
    """Where `Queue.wait` left the jobs: their states, and whether it gave up first."""

    states: dict[str, str]
    timed_out: bool

    @property
    def all_completed(self) -> bool:
        return not self.timed_out and all(s == "completed" for s in self.states.values())


def until_ended(store: _core.Store, ids: list[str], timeout_s: float | None) -> WaitResult:
    """Blocks until every job of `ids` in `store` has ended or `timeout_s` (checked
    already) passes (see Queue.wait)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    store.wait_for_change(0)  # from here on, every commit wakes the waits below
    while True:
        states: dict[str, str] = {job_id: store.get(job_id).state for job_id in ids}
        if all(state in ENDED_STATES for state in states.values()):
            return WaitResult(states, timed_out=False)
        left = 1.0 if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return WaitResult(states, timed_out=True)
        store.wait_for_change(min(left, 1.0))
