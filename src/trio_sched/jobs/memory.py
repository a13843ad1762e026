"""In-process `JobsRuntime`: dedupe, record, and hand jobs to async handlers.

Rules:
- J1 Lifecycle: ``MemoryJobs()`` starts *stopped*; ``async with MemoryJobs() as jobs:``
  runs it (it owns a nursery for the whole block); leaving the block or ``aclose()``
  closes it for good. While stopped, ``enqueue`` still accepts, dedupes and records jobs
  and *buffers* them; they are delivered once the runtime runs and their queue has a
  handler. So a scheduler can be tested against an un-entered ``MemoryJobs`` and read
  `MemoryJobs.enqueued`. After close, ``enqueue`` raises `ClosedError`.
- J2 ``enqueue`` never waits for a handler: it is one checkpoint followed by an atomic
  bookkeeping step. Handlers run in the runtime's own nursery, at most
  ``max_concurrency`` at once (a `trio.CapacityLimiter`), never in the enqueuer's task.
  Jobs beyond that wait in a FIFO buffer (across all queues, in enqueue order).
- J3 Dedupe: a job whose ``idempotency_key`` was accepted before raises `ConflictError`
  (the scheduler counts that as success). Keys are global (not per queue); the last
  ``dedupe_window`` keys (default 100,000) are remembered, older ones are forgotten, so
  memory stays bounded. Jobs without a key are never deduped.
- J4 Backpressure: at most ``max_pending`` accepted-but-undelivered jobs (buffered, not
  yet handed to a handler); beyond that ``enqueue`` raises `RetryableError` and records
  nothing.
- J5 Handler errors: rule J5 in `trio_sched.jobs._memory_push`, which runs the handlers.
- J6 Closing: leaving the ``async with`` block normally stops taking new work only once
  the buffer is drained and in-flight handlers finished, waiting at most
  ``drain_timeout`` seconds; then, or at once when the block raised or ``aclose()`` was
  called, the remaining handlers are cancelled and still-buffered jobs are dropped
  (counted as ``dropped``).
- J7 One `MemoryJobs` belongs to one Trio run; it is not thread-safe.
- J8 Workers: `MemoryJobs` also implements `ConsumableJobs` (rules W1-W9 of
  `trio_sched.jobs._consumable`), so ``open_worker(MemoryJobs(), ...)`` works like it does
  on Redis or Postgres. A queue is consumed either by a ``subscribe`` handler (push,
  J2-J6) or by workers (``claim``), never both: mixing raises `ConflictError`. Worker
  queues work whether or not the runtime was entered; handlers then run in the worker's
  nursery and ``max_concurrency`` does not apply to them.
- J9 Worker queues (delays, leases, retries, dead letters, what close drops): rule J9 in
  `trio_sched.jobs._memory_leases`, which holds them.
- J11 Job state and cancellation (`JobControl`, rules JC1-JC5 of
  `trio_sched.jobs._control`): rule J11 in `trio_sched.jobs._memory_control`.
- J10 A queue nothing consumes is reported (``unserved_warning``): rule J10 in
  `trio_sched.jobs._memory_push`, which holds the buffered jobs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Self, final

import trio

from trio_sched._errors import (
    ClosedError,
    ConflictError,
    InvalidArgumentError,
    RetryableError,
)
from trio_sched.jobs._consumable import DeadLetter, Delivery, FailOutcome
from trio_sched.jobs._control import JobState, check_key
from trio_sched.jobs._job import Job, check_jobs
from trio_sched.jobs._memory_control import Tracks, unbuffer
from trio_sched.jobs._memory_leases import LeasedQueues
from trio_sched.jobs._memory_push import PushQueues
from trio_sched.jobs._memory_stats import MemoryJobsStatistics, QueueStatistics, Tally
from trio_sched.jobs._worker_types import JobHandler

__all__ = ["JobHandler", "MemoryJobs", "MemoryJobsStatistics", "QueueStatistics"]


@final
class MemoryJobs:
    """An in-process jobs runtime (rules J1-J7 above).

    ``max_concurrency`` bounds handlers running at once; ``dedupe_window`` the number of
    remembered idempotency keys; ``history`` the length of `enqueued`; ``max_pending``
    the number of buffered jobs; ``drain_timeout`` (seconds, may be ``math.inf``) how
    long a normal exit waits for buffered and running handlers. ``visibility_timeout``
    and ``max_attempts`` apply to worker queues (J8, J9); ``unserved_warning`` (seconds,
    or None) when to warn about a queue nothing consumes (J10).
    """

    def __init__(
        self,
        *,
        max_concurrency: int = 16,
        dedupe_window: int = 100_000,
        history: int = 100_000,
        max_pending: int = 100_000,
        drain_timeout: float = 10.0,
        visibility_timeout: float = 30.0,
        max_attempts: int = 5,
        unserved_warning: float | None = 5.0,
    ) -> None:
        for name, value in (
            ("max_concurrency", max_concurrency),
            ("dedupe_window", dedupe_window),
            ("history", history),
            ("max_pending", max_pending),
            ("max_attempts", max_attempts),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(drain_timeout, bool) or not isinstance(drain_timeout, int | float):
            raise InvalidArgumentError(f"drain_timeout must be seconds, got {drain_timeout!r}")
        try:
            drain = float(drain_timeout)
        except OverflowError:  # a huge int: as good as math.inf, which is allowed
            drain = math.inf if drain_timeout > 0 else -math.inf
        if not drain >= 0:  # also NaN
            raise InvalidArgumentError(f"drain_timeout must be >= 0, got {drain_timeout!r}")
        drain_timeout = drain
        if isinstance(visibility_timeout, bool) or not (
            isinstance(visibility_timeout, int | float) and visibility_timeout > 0
        ):
            raise InvalidArgumentError(
                f"visibility_timeout must be > 0 seconds, got {visibility_timeout!r}"
            )
        if unserved_warning is not None and (
            isinstance(unserved_warning, bool)
            or not isinstance(unserved_warning, int | float)
            or not unserved_warning >= 0
        ):
            raise InvalidArgumentError(
                f"unserved_warning must be >= 0 seconds or None, got {unserved_warning!r}"
            )
        self._max_concurrency = max_concurrency
        self._max_pending = max_pending
        self._drain_timeout = drain_timeout
        self._tracks = Tracks(dedupe_window)  # remembered keys and their jobs (J3, J11)
        self._history: deque[Job] = deque(maxlen=history)
        self._tally = Tally()
        self._changed = trio.Event()
        # Worker queues (J8, J9): due heaps, leases, dead letters.
        self._leased = LeasedQueues(
            self._tally,
            self._notify,
            self._tracks,
            visibility_timeout=float(visibility_timeout),
            max_attempts=max_attempts,
        )
        # Buffered jobs and subscribe handlers (J1, J2, J5, J10).
        self._push = PushQueues(
            self._tally,
            self._notify,
            self._tracks,
            self._leased.names,
            max_concurrency=max_concurrency,
            unserved_warning=unserved_warning,
        )
        self._lifecycle: AbstractAsyncContextManager[None] | None = None
        self._serve_scope: trio.CancelScope | None = None
        self._running = False
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start delivering (rule J1). Raises `ClosedError` once closed and
        `ConflictError` when already running."""
        if self._closed:
            raise ClosedError("MemoryJobs is closed")
        if self._lifecycle is not None:
            raise ConflictError("MemoryJobs is already running")
        lifecycle = self._run()
        await lifecycle.__aenter__()
        self._lifecycle = lifecycle
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Drain then close (rule J6). An exception from the block propagates unwrapped."""
        lifecycle = self._lifecycle
        if lifecycle is None:  # pragma: no cover - only reachable by misuse
            raise RuntimeError("__aexit__ without __aenter__")
        try:
            return await lifecycle.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # Our nursery wraps the block's own exception; hand it back as the caller
            # raised it. Anything else (several errors) stays a group.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                raise exc from None
            raise

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._serve)
            try:
                yield
                with trio.move_on_after(self._drain_timeout):
                    await self._wait_idle()
            finally:
                self._close_now()

    async def _serve(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.CancelScope() as scope:
            self._serve_scope = scope
            self._running = True
            try:
                async with trio.open_nursery() as handlers:
                    self._push.started(handlers)
                    task_status.started()
                    await self._push.dispatch(handlers, self._wait_changed)
            finally:
                self._running = False
                self._push.stopped()

    async def aclose(self) -> None:
        """Close now: cancel running handlers, drop buffered jobs. Idempotent.

        Closes before its checkpoint, so it closes even when cancelled. Called inside
        the ``async with`` block, the block's exit then returns promptly.
        """
        self._close_now()
        await trio.lowlevel.checkpoint()

    # -- JobsRuntime ----------------------------------------------------------------

    async def enqueue(self, job: Job) -> None:
        """Accept `job` (rules J2-J4); never waits for a handler.

        One checkpoint, then an atomic decision: a cancelled enqueue accepted nothing.
        Raises `ConflictError` for a remembered idempotency key, `RetryableError` when
        the buffer is full and `ClosedError` after close.
        """
        if not isinstance(job, Job):
            raise InvalidArgumentError(f"enqueue expects a Job, got {type(job).__name__}")
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise ClosedError("MemoryJobs is closed")
        error = self._accept(job)
        if error is not None:
            raise error
        self._notify()

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        """Accept `jobs` in order (`BatchJobsRuntime`); never waits for a handler.

        One checkpoint, then each job is decided as `enqueue` would decide it alone: the
        entry is ``None`` (accepted), `ConflictError` (remembered idempotency key,
        including a duplicate earlier in the same call) or `RetryableError` (buffer
        full). Raises `ClosedError` after close and `InvalidArgumentError` when an item
        is not a `Job` (then nothing is accepted). A cancelled call accepted nothing.
        """
        check_jobs(jobs)
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise ClosedError("MemoryJobs is closed")
        accept = self._accept
        results = [accept(job) for job in jobs]
        self._notify()
        return results

    def _accept(self, job: Job) -> Exception | None:
        """Decide one job (J2-J4); the caller notifies consumers."""
        counters = self._tally.queue(job.queue)
        key = job.idempotency_key
        holder = None if key is None else self._tracks.holder(key)
        if holder is not None:
            counters.duplicates += 1
            return ConflictError(f"duplicate idempotency key {key!r}: job {holder!r} has it")
        if self._tally.pending >= self._max_pending:
            return RetryableError(f"MemoryJobs buffer is full ({self._max_pending} jobs pending)")
        if key is not None:
            self._tracks.remember(job)
        self._history.append(job)
        counters.enqueued += 1
        counters.pending += 1
        self._tally.pending += 1
        push = self._push
        if job.queue in push.handlers:
            push.ready.append(job)
        else:
            push.park(job)
        return None

    async def health_check(self) -> None:
        """Return while not closed; raise `ClosedError` after close. A checkpoint."""
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise ClosedError("MemoryJobs is closed")

    # -- consumers and introspection --------------------------------------------------

    def subscribe(self, queue: str, handler: JobHandler) -> None:
        """Register `handler` for `queue`: one handler per queue (`ConflictError` for a
        second). Jobs already buffered for `queue` become deliverable, in order."""
        if self._closed:
            raise ClosedError("MemoryJobs is closed")
        if queue in self._push.handlers:
            raise ConflictError(f"queue {queue!r} already has a handler")
        if queue in self._leased.names:
            raise ConflictError(f"queue {queue!r} is consumed by workers (rule J8)")
        self._push.subscribe(queue, handler)

    @property
    def enqueued(self) -> Sequence[Job]:
        """The accepted jobs, oldest first (the last ``history`` of them), as a tuple."""
        return tuple(self._history)

    def statistics(self) -> MemoryJobsStatistics:
        return self._tally.statistics(
            running=self._running,
            closed=self._closed,
            max_concurrency=self._max_concurrency,
            subscribed=self._push.handlers,
        )

    # -- ConsumableJobs (rules J8, J9 and W1-W9) ----------------------------------------

    @property
    def visibility_timeout(self) -> float:
        return self._leased.visibility_timeout

    @property
    def max_attempts(self) -> int:
        return self._leased.max_attempts

    async def claim(self, queues: Sequence[str], *, max_jobs: int, wait: float) -> list[Delivery]:
        """Take up to `max_jobs` due jobs from `queues` (W1), waiting up to `wait` seconds
        for one. A checkpoint; the take is atomic after the wait, so a cancelled claim
        took nothing."""
        if max_jobs < 1:
            raise InvalidArgumentError(f"max_jobs must be >= 1, got {max_jobs!r}")
        self._check_open()
        for queue in queues:
            if queue in self._push.handlers:
                raise ConflictError(f"queue {queue!r} has a subscribe handler (rule J8)")
        self._leased.names.update(queues)
        deadline = trio.current_time() + max(0.0, wait)
        await trio.lowlevel.checkpoint()
        while True:
            self._check_open()
            now = trio.current_time()
            taken = self._leased.take(queues, self._push.parked, max_jobs=max_jobs, now=now)
            if taken or now >= deadline:
                return taken
            with trio.move_on_at(min(deadline, self._leased.next_wake(queues))):
                await self._changed.wait()

    async def complete(self, delivery: Delivery) -> bool:
        """Finish a leased job (W5); False when the lease is stale. A checkpoint."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._leased.complete(delivery)

    async def fail(self, delivery: Delivery, *, error: str, retry_in: float | None) -> FailOutcome:
        """Retry or dead-letter a leased job (W6). A checkpoint; atomic after it."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._leased.fail(delivery, error=error, retry_in=retry_in)

    async def extend(self, delivery: Delivery) -> bool:
        """Renew a lease for `visibility_timeout` (W7); False when lost. A checkpoint."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._leased.extend(delivery)

    async def release(self, delivery: Delivery) -> None:
        """Give a leased job back for immediate redelivery, its attempt not counted (W7).
        A checkpoint; atomic after it."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        self._leased.release(delivery)

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """The dead letters of `queue`, oldest first, at most `limit` (W8). A checkpoint."""
        await trio.lowlevel.checkpoint()
        return self._leased.dead_letters(queue, limit=limit)

    async def redrive(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Re-queue dead letters of `queue` (all when `ids` is None) with their enqueued
        attempt (W8); returns how many. A checkpoint; atomic after it."""
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._leased.redrive(queue, ids)

    # -- JobControl (rules JC1-JC5, J11) ---------------------------------------------

    async def job_state(self, idempotency_key: str) -> JobState:
        """What became of the job holding `idempotency_key` (JC2, J11). A checkpoint;
        changes nothing."""
        check_key(idempotency_key)
        await trio.lowlevel.checkpoint()
        self._check_open()
        track = self._tracks.get(idempotency_key)
        return JobState.UNKNOWN if track is None else track.now(trio.current_time())

    async def cancel(self, idempotency_key: str) -> bool:
        """Cancel the queued or running job holding `idempotency_key` (JC3, J11); True
        when there was one. A checkpoint; atomic after it (a cancelled call cancelled
        nothing)."""
        check_key(idempotency_key)
        await trio.lowlevel.checkpoint()
        self._check_open()
        track = self._tracks.get(idempotency_key)
        if track is None or track.state not in (JobState.QUEUED, JobState.RUNNING):
            return False
        scope = track.scope
        if not self._leased.cancel(track) and not unbuffer(
            self._push.parked, self._push.ready, self._tally, idempotency_key, track
        ):
            if scope is None:  # pragma: no cover - every live track is somewhere
                return False
            scope.cancel()  # a push handler runs it: it ends as cancelled
        track.ended(JobState.CANCELLED)
        self._tally.queue(track.queue).cancelled += 1
        self._notify()
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("MemoryJobs is closed")

    # -- internals ------------------------------------------------------------------

    async def _wait_idle(self) -> None:
        while not self._closed and (self._push.ready or self._tally.in_flight()):
            await self._changed.wait()

    async def _wait_changed(self) -> None:
        await self._changed.wait()

    def _close_now(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._push.drop()
        self._leased.drop()
        self._tally.dropped += self._tally.pending
        self._tally.pending = 0
        if self._serve_scope is not None:
            self._serve_scope.cancel()
        self._notify()

    def _notify(self) -> None:
        # Wake every waiter; each re-checks its condition (no lost wake-ups: waiters
        # check and wait without a checkpoint in between).
        self._changed.set()
        self._changed = trio.Event()
