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
- J5 A handler's ``Exception`` is caught, counted (``handler_errors``) and logged on the
  ``trio_sched.jobs.memory`` logger; it never crashes the runtime. `BaseException`
  (cancellation, KeyboardInterrupt) propagates as usual.
- J6 Closing: leaving the ``async with`` block normally stops taking new work only once
  the buffer is drained and in-flight handlers finished, waiting at most
  ``drain_timeout`` seconds; then, or at once when the block raised or ``aclose()`` was
  called, the remaining handlers are cancelled and still-buffered jobs are dropped
  (counted as ``dropped``).
- J7 One `MemoryJobs` belongs to one Trio run; it is not thread-safe.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Self, final

import trio

from trio_sched._errors import (
    ClosedError,
    ConflictError,
    InvalidArgumentError,
    RetryableError,
)
from trio_sched.jobs._job import Job

__all__ = ["JobHandler", "MemoryJobs", "MemoryJobsStatistics", "QueueStatistics"]

logger = logging.getLogger(__name__)

JobHandler = Callable[[Job], Awaitable[None]]
"""An async callable that processes one job."""


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """Counters of one queue.

    `delivered` counts jobs handed to the handler; each then ends as `completed` or
    `handler_errors` (or is cancelled at close). `pending` are accepted jobs not yet
    handed over (buffered).
    """

    enqueued: int
    duplicates: int
    delivered: int
    completed: int
    handler_errors: int
    in_flight: int
    pending: int
    subscribed: bool


@dataclass(frozen=True, slots=True)
class MemoryJobsStatistics:
    """A snapshot of a `MemoryJobs`: totals plus `queues` (read-only, by queue name)."""

    running: bool
    closed: bool
    max_concurrency: int
    enqueued: int
    duplicates: int
    delivered: int
    completed: int
    handler_errors: int
    in_flight: int
    pending: int
    dropped: int
    queues: Mapping[str, QueueStatistics]


@dataclass(slots=True)
class _Counters:
    enqueued: int = 0
    duplicates: int = 0
    delivered: int = 0
    completed: int = 0
    handler_errors: int = 0
    in_flight: int = 0
    pending: int = 0


@final
class MemoryJobs:
    """An in-process jobs runtime (rules J1-J7 above).

    ``max_concurrency`` bounds handlers running at once; ``dedupe_window`` the number of
    remembered idempotency keys; ``history`` the length of `enqueued`; ``max_pending``
    the number of buffered jobs; ``drain_timeout`` (seconds, may be ``math.inf``) how
    long a normal exit waits for buffered and running handlers.
    """

    def __init__(
        self,
        *,
        max_concurrency: int = 16,
        dedupe_window: int = 100_000,
        history: int = 100_000,
        max_pending: int = 100_000,
        drain_timeout: float = 10.0,
    ) -> None:
        for name, value in (
            ("max_concurrency", max_concurrency),
            ("dedupe_window", dedupe_window),
            ("history", history),
            ("max_pending", max_pending),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be an int >= 1, got {value!r}")
        if not (drain_timeout >= 0 and not math.isnan(drain_timeout)):
            raise InvalidArgumentError(f"drain_timeout must be >= 0, got {drain_timeout!r}")
        self._max_concurrency = max_concurrency
        self._limiter = trio.CapacityLimiter(max_concurrency)
        self._dedupe_window = dedupe_window
        self._max_pending = max_pending
        self._drain_timeout = drain_timeout
        self._seen: OrderedDict[str, str] = OrderedDict()  # idempotency key -> job id
        self._history: deque[Job] = deque(maxlen=history)
        self._handlers: dict[str, JobHandler] = {}
        self._ready: deque[Job] = deque()  # queue has a handler: waits for a slot
        self._parked: dict[str, deque[Job]] = {}  # queue has no handler yet
        self._pending = 0
        self._dropped = 0
        self._counters: dict[str, _Counters] = {}
        self._changed = trio.Event()
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
                    task_status.started()
                    await self._dispatch(handlers)
            finally:
                self._running = False

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
        counters = self._counters_for(job.queue)
        key = job.idempotency_key
        if key is not None and key in self._seen:
            counters.duplicates += 1
            raise ConflictError(
                f"duplicate idempotency key {key!r}: job {self._seen[key]!r} has it"
            )
        if self._pending >= self._max_pending:
            raise RetryableError(f"MemoryJobs buffer is full ({self._max_pending} jobs pending)")
        if key is not None:
            self._seen[key] = job.id
            if len(self._seen) > self._dedupe_window:
                self._seen.popitem(last=False)
        self._history.append(job)
        counters.enqueued += 1
        counters.pending += 1
        self._pending += 1
        if job.queue in self._handlers:
            self._ready.append(job)
            self._notify()
        else:
            self._parked.setdefault(job.queue, deque()).append(job)

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
        if queue in self._handlers:
            raise ConflictError(f"queue {queue!r} already has a handler")
        self._handlers[queue] = handler
        self._counters_for(queue)
        parked = self._parked.pop(queue, None)
        if parked:
            self._ready.extend(parked)
            self._notify()

    @property
    def enqueued(self) -> Sequence[Job]:
        """The accepted jobs, oldest first (the last ``history`` of them), as a tuple."""
        return tuple(self._history)

    def statistics(self) -> MemoryJobsStatistics:
        queues = {
            name: QueueStatistics(
                enqueued=c.enqueued,
                duplicates=c.duplicates,
                delivered=c.delivered,
                completed=c.completed,
                handler_errors=c.handler_errors,
                in_flight=c.in_flight,
                pending=c.pending,
                subscribed=name in self._handlers,
            )
            for name, c in self._counters.items()
        }
        values = list(queues.values())
        return MemoryJobsStatistics(
            running=self._running,
            closed=self._closed,
            max_concurrency=self._max_concurrency,
            enqueued=sum(q.enqueued for q in values),
            duplicates=sum(q.duplicates for q in values),
            delivered=sum(q.delivered for q in values),
            completed=sum(q.completed for q in values),
            handler_errors=sum(q.handler_errors for q in values),
            in_flight=sum(q.in_flight for q in values),
            pending=self._pending,
            dropped=self._dropped,
            queues=MappingProxyType(queues),
        )

    # -- internals ------------------------------------------------------------------

    async def _dispatch(self, handlers: trio.Nursery) -> None:
        while True:
            while not self._ready:
                await self._changed.wait()
            # Take a slot first and only then pop: if we are cancelled while waiting for
            # a slot, the job is still in the buffer (and counted as dropped on close).
            borrower = object()
            await self._limiter.acquire_on_behalf_of(borrower)
            if not self._ready:  # pragma: no cover - only _close_now empties it
                self._limiter.release_on_behalf_of(borrower)
                continue
            job = self._ready.popleft()
            counters = self._counters_for(job.queue)
            counters.pending -= 1
            counters.delivered += 1
            counters.in_flight += 1
            self._pending -= 1
            handlers.start_soon(self._run_handler, job, self._handlers[job.queue], borrower)

    async def _run_handler(self, job: Job, handler: JobHandler, borrower: object) -> None:
        counters = self._counters_for(job.queue)
        try:
            await handler(job)
        except Exception:
            counters.handler_errors += 1
            logger.exception("handler for queue %r failed on job %r", job.queue, job.id)
        else:
            counters.completed += 1
        finally:
            counters.in_flight -= 1
            self._limiter.release_on_behalf_of(borrower)
            self._notify()

    async def _wait_idle(self) -> None:
        while not self._closed and (self._ready or self._in_flight()):
            await self._changed.wait()

    def _in_flight(self) -> int:
        return sum(c.in_flight for c in self._counters.values())

    def _close_now(self) -> None:
        if self._closed:
            return
        self._closed = True
        for job in self._ready:
            self._counters_for(job.queue).pending -= 1
        for queue, parked in self._parked.items():
            self._counters_for(queue).pending -= len(parked)
        self._dropped += self._pending
        self._pending = 0
        self._ready.clear()
        self._parked.clear()
        if self._serve_scope is not None:
            self._serve_scope.cancel()
        self._notify()

    def _notify(self) -> None:
        # Wake every waiter; each re-checks its condition (no lost wake-ups: waiters
        # check and wait without a checkpoint in between).
        self._changed.set()
        self._changed = trio.Event()

    def _counters_for(self, queue: str) -> _Counters:
        counters = self._counters.get(queue)
        if counters is None:
            counters = self._counters[queue] = _Counters()
        return counters
