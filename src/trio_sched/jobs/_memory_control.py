"""The remembered idempotency keys of a `MemoryJobs` (`trio_sched.jobs.memory`, rule J3)
and, for each, where its job is: the memory side of `JobControl` (rules JC1-JC5 of
`trio_sched.jobs._control`).

Rules:
- J11 Every accepted job with an idempotency key gets a `Track`, kept as long as its key
  is remembered (the last ``dedupe_window`` keys, J3: JC4). The runtime moves it through
  ``QUEUED`` (buffered, parked, waiting in a due heap, or back after a retry, release,
  expiry or redrive), ``RUNNING`` (leased to a worker, or handed to a ``subscribe``
  handler) and ``DONE``, ``DEAD`` or ``CANCELLED``. A leased job whose lease ran out
  answers ``QUEUED`` before any claim noticed (JC2). A push handler's job is ``DONE``
  once its handler returned or raised (there are no retries there, J5); cancelling it
  while it runs cancels the handler. ``cancel`` finds a queued job by a scan of its
  queue (linear in that queue's length; cancels are rare), a leased one by its receipt.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Protocol, final

import trio

from trio_sched.jobs._control import JobState
from trio_sched.jobs._job import Job
from trio_sched.jobs._memory_stats import Tally

__all__ = ["Track", "Tracks", "unbuffer"]


class _HasDeadline(Protocol):
    deadline: float


@final
class Track:
    """Where the job holding one idempotency key is (J11). `lease` is the deadline
    holder of its current lease (anything with a ``deadline`` on Trio's clock) and
    `receipt` that lease's receipt, while leased; `scope` its push handler's cancel
    scope, while one runs."""

    __slots__ = ("job_id", "lease", "queue", "receipt", "scope", "state")

    def __init__(self, job: Job) -> None:
        self.job_id = job.id
        self.queue = job.queue
        self.state = JobState.QUEUED
        self.lease: _HasDeadline | None = None
        self.receipt: str | None = None
        self.scope: trio.CancelScope | None = None

    def leased(self, receipt: str, lease: _HasDeadline) -> None:
        self.state = JobState.RUNNING
        self.receipt, self.lease = receipt, lease

    def handed(self, scope: trio.CancelScope) -> None:
        self.state = JobState.RUNNING
        self.scope = scope

    def queued(self) -> None:
        self.state = JobState.QUEUED
        self.receipt = self.lease = self.scope = None

    def ended(self, state: JobState) -> None:
        """Done, dead or cancelled; a cancelled job stays cancelled whatever its holder
        reports afterwards."""
        if self.state is not JobState.CANCELLED:
            self.state = state
        self.receipt = self.lease = self.scope = None

    def now(self, now: float) -> JobState:
        """The state at `now` (Trio clock): an expired lease is queued again (JC2)."""
        lease = self.lease
        if self.state is JobState.RUNNING and lease is not None and lease.deadline <= now:
            return JobState.QUEUED
        return self.state


@final
class Tracks:
    """The last `window` idempotency keys accepted (J3), each with its `Track`."""

    __slots__ = ("_by_key", "_window")

    def __init__(self, window: int) -> None:
        self._window = window
        self._by_key: OrderedDict[str, Track] = OrderedDict()

    def holder(self, key: str) -> str | None:
        """The id of the job holding `key`, if the key is remembered."""
        track = self._by_key.get(key)
        return None if track is None else track.job_id

    def remember(self, job: Job) -> None:
        """Start tracking `job` (it has a key no remembered job holds)."""
        assert job.idempotency_key is not None
        self._by_key[job.idempotency_key] = Track(job)
        if len(self._by_key) > self._window:
            self._by_key.popitem(last=False)

    def get(self, key: str) -> Track | None:
        return self._by_key.get(key)

    def of(self, job: Job) -> Track | None:
        """The track of `job`, while its key is remembered (and names this job)."""
        key = job.idempotency_key
        if key is None:
            return None
        track = self._by_key.get(key)
        return track if track is not None and track.job_id == job.id else None


def unbuffer(
    parked: dict[str, deque[Job]], ready: deque[Job], tally: Tally, key: str, track: Track
) -> bool:
    """Drop the buffered job holding `key` (its `track`) from `parked` (its queue's) or
    `ready` (J1, J2), counting it out of ``pending``; False when it is not buffered."""
    for buffer in (parked.get(track.queue), ready):
        if buffer is None:
            continue
        for job in buffer:
            if job.idempotency_key == key and job.id == track.job_id:
                buffer.remove(job)
                tally.queue(job.queue).pending -= 1
                tally.pending -= 1
                return True
    return False
