"""The push side of a `MemoryJobs` (`trio_sched.jobs.memory`): the jobs it buffers until
a consumer takes them, the ``subscribe`` handlers that run them (J2), and the warning
about a queue nothing consumes.

`MemoryJobs` keeps one `PushQueues`. It accepts a job (J2-J4) and files it here: in
`ready` when its queue has a handler, else in `parked` (J1), where it waits until a
handler subscribes (then it moves to `ready`) or a worker claims its queue (then
`trio_sched.jobs._memory_leases` takes it, J9). While the runtime runs, `dispatch` hands
ready jobs to their handlers in the runtime's handler nursery, at most
``max_concurrency`` at once, in enqueue order. Counts go to the runtime's `Tally`.

Rules (of the runtime `trio_sched.jobs.memory`, numbered with its J1-J11):
- J5 A handler's ``Exception`` is caught, counted (``handler_errors``) and logged on the
  ``trio_sched.jobs.memory`` logger; it never crashes the runtime. `BaseException`
  (cancellation, KeyboardInterrupt) propagates as usual.
- J10 A queue nothing consumes is reported: when jobs for a queue with neither a
  ``subscribe`` handler nor a worker claiming from it are still waiting
  ``unserved_warning`` seconds (default 5) after the first of them was accepted by a
  running runtime, one warning names the queue and the queues that are consumed (a
  mistyped `Task.queue`?). Once per queue; ``unserved_warning=None`` turns it off. An
  un-entered runtime only buffers (J1) and does not warn.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, final

import trio

from trio_sched.jobs._control import JobState
from trio_sched.jobs._job import Job
from trio_sched.jobs._memory_control import Track, Tracks
from trio_sched.jobs._memory_stats import Tally
from trio_sched.jobs._worker_types import JobHandler

__all__ = ["PushQueues"]

logger: Final = logging.getLogger("trio_sched.jobs.memory")  # the runtime's (J5, J10)


@final
class PushQueues:
    """The buffered jobs and ``subscribe`` handlers of one `MemoryJobs` (J1, J2, J5,
    J10). `workers` are the queues workers claim from (`LeasedQueues.names`); `notify`
    wakes the runtime's waiters when a handler finished."""

    def __init__(
        self,
        tally: Tally,
        notify: Callable[[], None],
        tracks: Tracks,
        workers: set[str],
        *,
        max_concurrency: int,
        unserved_warning: float | None,
    ) -> None:
        self.handlers: dict[str, JobHandler] = {}
        self.ready: deque[Job] = deque()  # queue has a handler: waits for a slot
        self.parked: dict[str, deque[Job]] = {}  # queue has no handler yet
        self._tally = tally
        self._notify = notify
        self._tracks = tracks
        self._workers = workers
        self._limiter = trio.CapacityLimiter(max_concurrency)
        self._unserved_warning = unserved_warning
        self._watched: set[str] = set()  # queues checked for a consumer once (J10)
        self._handler_nursery: trio.Nursery | None = None

    def park(self, job: Job) -> None:
        """Buffer `job` until its queue has a consumer (J1), watched by J10."""
        self.parked.setdefault(job.queue, deque()).append(job)
        if job.queue not in self._watched:
            self._watch(job.queue)

    def subscribe(self, queue: str, handler: JobHandler) -> None:
        """Register `handler` for `queue` (the runtime checked it may); the jobs parked
        for `queue` become ready, in order."""
        self.handlers[queue] = handler
        self._tally.queue(queue)
        parked = self.parked.pop(queue, None)
        if parked:
            self.ready.extend(parked)
            self._notify()

    def started(self, handlers: trio.Nursery) -> None:
        """The runtime runs: handlers (and J10's checks) run in `handlers` from now on."""
        self._handler_nursery = handlers
        for queue in list(self.parked):  # buffered before the start (J10)
            self._watch(queue)

    def stopped(self) -> None:
        self._handler_nursery = None

    def drop(self) -> None:
        """At close (J6): buffered jobs leave `pending` (the runtime adds the pending
        total to ``dropped``)."""
        for job in self.ready:
            self._tally.queue(job.queue).pending -= 1
        for queue, parked in self.parked.items():
            self._tally.queue(queue).pending -= len(parked)
        self.ready.clear()
        self.parked.clear()

    async def dispatch(self, handlers: trio.Nursery, wait: Callable[[], Awaitable[None]]) -> None:
        """Hand ready jobs to their handlers in `handlers`, one slot each, for ever;
        `wait` waits for the runtime's next change."""
        while True:
            while not self.ready:
                await wait()
            # Take a slot first and only then pop: if we are cancelled while waiting for
            # a slot, the job is still in the buffer (and counted as dropped on close).
            borrower = object()
            await self._limiter.acquire_on_behalf_of(borrower)
            if not self.ready:  # pragma: no cover - only _close_now empties it
                self._limiter.release_on_behalf_of(borrower)
                continue
            job = self.ready.popleft()
            counters = self._tally.queue(job.queue)
            counters.pending -= 1
            counters.delivered += 1
            counters.in_flight += 1
            self._tally.pending -= 1
            scope = trio.CancelScope()  # cancel() of a running push job (J11)
            track = self._tracks.of(job)
            if track is not None:
                track.handed(scope)
            handler = self.handlers[job.queue]
            handlers.start_soon(self._run_handler, job, handler, borrower, scope, track)

    async def _run_handler(
        self,
        job: Job,
        handler: JobHandler,
        borrower: object,
        scope: trio.CancelScope,
        track: Track | None,
    ) -> None:
        counters = self._tally.queue(job.queue)
        try:
            with scope:
                await handler(job)
        except Exception:
            counters.handler_errors += 1
            logger.exception("handler for queue %r failed on job %r", job.queue, job.id)
        else:
            if not scope.cancelled_caught:
                counters.completed += 1
        finally:
            if track is not None:
                track.ended(JobState.DONE)
            counters.in_flight -= 1
            self._limiter.release_on_behalf_of(borrower)
            self._notify()

    def _watch(self, queue: str) -> None:
        """Check once, `unserved_warning` seconds from now, that `queue` is consumed."""
        nursery = self._handler_nursery
        if nursery is None or self._unserved_warning is None or queue in self._watched:
            return  # not running (J1: a buffer only), turned off, or checked already
        self._watched.add(queue)
        nursery.start_soon(self._warn_if_unserved, queue, self._unserved_warning)

    async def _warn_if_unserved(self, queue: str, after: float) -> None:
        await trio.sleep(after)
        waiting = len(self.parked.get(queue, ()))
        if waiting and queue not in self.handlers and queue not in self._workers:
            consumed = sorted(set(self.handlers) | self._workers)
            logger.warning(
                "%d job(s) for queue %r have waited %gs and nothing consumes that queue: "
                "no subscribe() handler and no worker claims from it (a mistyped "
                "Task.queue?); consumed queues: %s. Warned once per queue.",
                waiting,
                queue,
                after,
                consumed,
            )
