"""The worker queues of a `MemoryJobs` (`trio_sched.jobs.memory`, rule J8): a due heap
per queue, leases by receipt and dead letters, behind the `ConsumableJobs` calls
(rules W1-W9 of `trio_sched.jobs._consumable`).

`MemoryJobs` keeps one `LeasedQueues`; it checks that it is open and takes the
checkpoint of each call, then hands over. Counts go to the runtime's `Tally`.

Rules:
- J9 On worker queues, ``run_at`` in the future delays delivery (measured on the wall
  clock at claim time, then waited on Trio's clock, so tests can use `MockClock`), a
  lease lasts ``visibility_timeout`` seconds, a failed job is retried up to
  ``max_attempts`` and then kept in the queue's dead letters (``dead_letters`` /
  ``redrive``). Leased jobs count as ``in_flight``, waiting ones as ``pending``; at close
  both are dropped (counted as ``dropped``) and later protocol calls raise `ClosedError`.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import final

import trio

from trio_sched.jobs._consumable import DeadLetter, Delivery, FailOutcome
from trio_sched.jobs._control import JobState
from trio_sched.jobs._job import Job
from trio_sched.jobs._memory_control import Track, Tracks
from trio_sched.jobs._memory_stats import Tally

__all__ = ["LeasedQueues"]


@dataclass(slots=True, eq=False)
class _Item:
    """A job on a worker queue: `job` as enqueued, `tries` deliveries so far (J9)."""

    job: Job
    tries: int = 0
    track: Track | None = None  # while its key is remembered (J11)


@dataclass(slots=True)
class _Lease:
    item: _Item
    deadline: float  # Trio clock


@final
class LeasedQueues:
    """The worker queues of one `MemoryJobs` (J8, J9). `names` are the queues workers
    claim from; `notify` wakes the runtime's waiters when a job is (back) on a queue."""

    def __init__(
        self,
        tally: Tally,
        notify: Callable[[], None],
        tracks: Tracks,
        *,
        visibility_timeout: float,
        max_attempts: int,
    ) -> None:
        self.visibility_timeout = visibility_timeout
        self.max_attempts = max_attempts
        self.names: set[str] = set()
        # Due heap per queue, leases by receipt, dead letters per queue.
        self._waiting: dict[str, list[tuple[float, int, _Item]]] = {}
        self._leases: dict[str, _Lease] = {}
        self._dead: dict[str, dict[str, tuple[DeadLetter, Job]]] = {}
        self._sequence = itertools.count()
        self._tally = tally
        self._notify = notify
        self._tracks = tracks

    def take(
        self, queues: Sequence[str], parked: dict[str, deque[Job]], *, max_jobs: int, now: float
    ) -> list[Delivery]:
        """Lease up to `max_jobs` jobs of `queues` due at `now` (W1), after redelivering
        expired leases (W2) and admitting the jobs `parked` for these queues (J9)."""
        self._expire_leases(now)
        taken: list[Delivery] = []
        for queue in queues:
            self._admit_parked(queue, parked, now)
            heap = self._waiting.get(queue)
            while heap and heap[0][0] <= now and len(taken) < max_jobs:
                _, _, item = heapq.heappop(heap)
                taken.append(self._lease(item, now))
        return taken

    def complete(self, delivery: Delivery) -> bool:
        lease = self._take_lease(delivery)
        if lease is None:
            return False
        self._tally.queue(delivery.job.queue).completed += 1
        _end(lease.item, JobState.DONE)
        return True

    def fail(self, delivery: Delivery, *, error: str, retry_in: float | None) -> FailOutcome:
        lease = self._take_lease(delivery)
        if lease is None:
            return "stale"
        queue = delivery.job.queue
        counters = self._tally.queue(queue)
        counters.handler_errors += 1
        if retry_in is not None and delivery.job.attempt < self.max_attempts:
            counters.retried += 1
            self._push(lease.item, trio.current_time() + max(0.0, retry_in))
            return "retried"
        counters.dead_lettered += 1
        letters = self._dead.setdefault(queue, {})
        letter = DeadLetter(
            id=f"{next(self._sequence)}",
            job=delivery.job,
            error=error,
            failed_at=datetime.now(UTC),
        )
        letters[letter.id] = (letter, lease.item.job)
        _end(lease.item, JobState.DEAD)
        return "dead_lettered"

    def extend(self, delivery: Delivery) -> bool:
        lease = self._leases.get(delivery.receipt)
        if lease is None:
            return False
        lease.deadline = trio.current_time() + self.visibility_timeout
        return True

    def release(self, delivery: Delivery) -> None:
        lease = self._take_lease(delivery)
        if lease is not None:
            lease.item.tries -= 1
            self._push(lease.item, trio.current_time())

    def cancel(self, track: Track) -> bool:
        """Remove the job of `track` from its lease (revoked: the holder's calls are
        stale from now on, and nothing is redelivered) or its due heap (JC3); False
        when it is in neither (still parked, or not on a worker queue)."""
        receipt = track.receipt
        lease = None if receipt is None else self._leases.get(receipt)
        if receipt is not None and lease is not None and lease.item.track is track:
            del self._leases[receipt]
            self._tally.queue(track.queue).in_flight -= 1
            _end(lease.item, JobState.CANCELLED)
            return True
        heap = self._waiting.get(track.queue, [])
        for index, (_, _, item) in enumerate(heap):
            if item.track is track:
                heap[index] = heap[-1]
                heap.pop()
                heapq.heapify(heap)
                self._tally.queue(track.queue).pending -= 1
                self._tally.pending -= 1
                _end(item, JobState.CANCELLED)
                return True
        return False

    def dead_letters(self, queue: str, *, limit: int) -> list[DeadLetter]:
        letters = self._dead.get(queue, {})
        return [letter for letter, _ in itertools.islice(letters.values(), limit)]

    def redrive(self, queue: str, ids: Sequence[str] | None) -> int:
        letters = self._dead.get(queue, {})
        chosen = list(letters) if ids is None else [i for i in ids if i in letters]
        now = trio.current_time()
        for letter_id in chosen:
            _, job = letters.pop(letter_id)
            self._push(_Item(job, track=self._tracks.of(job)), now)
        return len(chosen)

    def next_wake(self, queues: Sequence[str]) -> float:
        """When the next delayed job of `queues` or the next lease expiry is due."""
        wake = math.inf
        for queue in queues:
            heap = self._waiting.get(queue)
            if heap:
                wake = min(wake, heap[0][0])
        for lease in self._leases.values():
            wake = min(wake, lease.deadline)
        return wake

    def drop(self) -> None:
        """At close (J9): waiting jobs leave `pending`, leased ones `in_flight` (counted
        as dropped here; the runtime adds the pending total to ``dropped``)."""
        for queue, waiting in self._waiting.items():
            self._tally.queue(queue).pending -= len(waiting)
        for lease in self._leases.values():
            self._tally.queue(lease.item.job.queue).in_flight -= 1
            self._tally.dropped += 1
        self._waiting.clear()
        self._leases.clear()

    def _admit_parked(self, queue: str, parked: dict[str, deque[Job]], now: float) -> None:
        """Move jobs enqueued to a worker queue into its due heap (J9)."""
        jobs = parked.pop(queue, None)
        if not jobs:
            return
        wall = datetime.now(UTC)
        heap = self._waiting.setdefault(queue, [])
        for job in jobs:
            delay = 0.0 if job.run_at is None else (job.run_at - wall).total_seconds()
            item = _Item(job, track=self._tracks.of(job))
            heapq.heappush(heap, (now + max(0.0, delay), next(self._sequence), item))

    def _lease(self, item: _Item, now: float) -> Delivery:
        item.tries += 1
        receipt = f"{next(self._sequence)}"
        lease = self._leases[receipt] = _Lease(item, now + self.visibility_timeout)
        if item.track is not None:
            item.track.leased(receipt, lease)
        counters = self._tally.queue(item.job.queue)
        counters.pending -= 1
        counters.delivered += 1
        counters.in_flight += 1
        self._tally.pending -= 1
        job = dataclasses.replace(item.job, attempt=item.job.attempt + item.tries - 1)
        return Delivery(job=job, receipt=receipt)

    def _take_lease(self, delivery: Delivery) -> _Lease | None:
        lease = self._leases.pop(delivery.receipt, None)
        if lease is not None:
            self._tally.queue(lease.item.job.queue).in_flight -= 1
        return lease

    def _push(self, item: _Item, due: float) -> None:
        """Put `item` (back) on its worker queue, due at `due` (Trio clock)."""
        heap = self._waiting.setdefault(item.job.queue, [])
        heapq.heappush(heap, (due, next(self._sequence), item))
        if item.track is not None:
            item.track.queued()
        self._tally.queue(item.job.queue).pending += 1
        self._tally.pending += 1
        self._notify()

    def _expire_leases(self, now: float) -> None:
        """Redeliver jobs whose lease ran out (W2); the lost delivery counted a try."""
        for receipt in [r for r, lease in self._leases.items() if lease.deadline <= now]:
            lease = self._leases.pop(receipt)
            self._tally.queue(lease.item.job.queue).in_flight -= 1
            self._push(lease.item, now)


def _end(item: _Item, state: JobState) -> None:
    if item.track is not None:
        item.track.ended(state)
