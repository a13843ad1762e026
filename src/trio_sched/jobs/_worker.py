"""Trio workers for jobs runtimes: `open_worker` and the `Worker` it makes.

A worker takes jobs from a runtime that implements `ConsumableJobs` (`MemoryJobs`,
``RedisJobs``, ``PostgresJobs``), runs the handler named by ``job.name`` and
reports the outcome back. Code moves from embedded to Redis or Postgres by changing the
runtime's constructor only.

The protocol it uses, what a runtime implements for the worker (rules W1-W9), is in
`trio_sched.jobs._consumable`; the worker's public values (the handler type,
`WorkerState`, `WorkerStatistics`, `current_job` of WK4) are in
`trio_sched.jobs._worker_types`.

The worker, rules WK1-WK7:
- WK1 One `Worker` owns one nursery; at most ``concurrency`` handlers run at once, and
  it claims only as many jobs as it has free slots (no prefetch beyond that).
- WK2 Handlers are looked up by ``job.name``. A name without a handler, a handler's
  ``Exception`` and a handler timeout (``handler_timeout``) are failures: the job is
  retried with exponential backoff (``retry_backoff * 2 ** (attempt - 1)``, capped at
  ``max_retry_backoff``, with "equal jitter": between half and all of it) and
  dead-lettered after ``max_attempts`` (W6). The first job of each name without a
  handler is logged as a warning naming the handlers the worker has (once per name:
  another worker may have the handler, so the job is still retried). A delivery whose
  attempt already exceeds ``max_attempts`` (its earlier leases expired: W2) is a
  failure without running the handler. Nothing is dropped silently. An error is
  described defensively (an exception whose ``__str__`` raises is named by its type),
  so no handler's error can crash the worker. A handler that raises a `BaseException`
  other than a cancellation (`SystemExit`, `KeyboardInterrupt`) crashes the worker, as
  it should, but its delivery is first failed like any other (``crashed``), so the
  attempt counts and a job that kills every worker reaches the dead letters after
  ``max_attempts``.
- WK3 While a handler runs, its lease is extended every ``visibility_timeout / 3``
  seconds, by one keeper task for all running handlers (not a task per job). When an
  extension reports the lease lost, the handler is cancelled (the job belongs to another
  delivery now, or was cancelled: JC3) and the job is not acknowledged.
- WK4 Per-job context: the handler gets the `Job` (``attempt``, ``headers``,
  ``tenant_id``); `current_job()` returns the running job's `JobContext` from a
  context variable, for code deeper in the call stack.
- WK5 Graceful shutdown, when the ``async with`` block ends normally or `Worker.stop`
  is called: stop claiming at once (a claim in progress is cancelled, W9), let in-flight
  handlers finish for up to ``drain_timeout`` seconds, then cancel the rest and
  `release` them (bounded by ``release_timeout``) so they are redelivered at once. When
  the block raises, in-flight handlers are cancelled and released without draining.
  `Worker.state` goes ``new`` -> ``running`` -> ``stopping`` (no more claims) ->
  ``stopped`` (the block has left); other tasks can ``await worker.wait_state(...)``.
- WK6 Backend errors while claiming are logged and retried after ``error_backoff``
  seconds, except the ones no retry can cure, which end the worker with that error: the
  runtime is closed (`ClosedError`) or refuses the queues for good (`ConflictError`:
  a `MemoryJobs` queue with a ``subscribe`` handler, foreign data under a Redis prefix;
  `InvalidArgumentError`). Errors while acknowledging are logged and counted
  (``ack_errors``): the job is then redelivered after its lease expires
  (at-least-once, never lost).
- WK7 `BaseException` other than Trio's cancellation (KeyboardInterrupt, a bug in the
  worker itself) propagates and ends the worker.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Self, TypeVar, final

import trio
from trio_util import AsyncValue, periodic

from trio_sched._errors import ClosedError, ConflictError, InvalidArgumentError
from trio_sched.jobs._consumable import ConsumableJobs, DeadLetter, Delivery, FailOutcome
from trio_sched.jobs._job import Job
from trio_sched.jobs._worker_types import (
    JobContext,
    JobHandler,
    WorkerState,
    WorkerStatistics,
    current_job,
    running_job,
)

# The protocol and the worker's values are importable from here too, beside the worker.
__all__ = [
    "ConsumableJobs",
    "DeadLetter",
    "Delivery",
    "FailOutcome",
    "JobContext",
    "JobHandler",
    "Worker",
    "WorkerState",
    "WorkerStatistics",
    "current_job",
    "open_worker",
]

logger = logging.getLogger("trio_sched.jobs.worker")

_T = TypeVar("_T")


# Claim errors a retry cannot cure: they end the worker instead of being retried (WK6).
_FATAL_CLAIM_ERRORS = (ClosedError, ConflictError, InvalidArgumentError)


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` for a failure record; never raises, even for an exception
    whose ``__str__`` raises (or returns something that is not text)."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:
        return f"{name}: <unprintable {name}>"
    return f"{name}: {text}"


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_cancellation(inner) for inner in exc.exceptions)
    return isinstance(exc, trio.Cancelled)


class _Running:
    """One handler in flight: its delivery, cancel scope and lease state."""

    __slots__ = ("delivery", "handling", "lost", "scope")

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.scope = trio.CancelScope()
        self.handling = True  # the handler has not returned yet: keep its lease
        self.lost = False


@final
class Worker:
    """A running worker (rules WK1-WK7); made by `open_worker`, used with ``async with``."""

    def __init__(
        self,
        jobs: ConsumableJobs,
        handlers: Mapping[str, JobHandler],
        *,
        queues: Sequence[str],
        concurrency: int,
        handler_timeout: float | None,
        drain_timeout: float,
        release_timeout: float,
        poll_wait: float,
        retry_backoff: float,
        max_retry_backoff: float,
        error_backoff: float,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if isinstance(queues, str) or not queues or not all(isinstance(q, str) for q in queues):
            raise InvalidArgumentError(f"queues must be a non-empty list of str, got {queues!r}")
        _check_handlers(handlers)
        if handler_timeout is not None:
            _check_seconds("handler_timeout", handler_timeout)
        _check_seconds("poll_wait", poll_wait)
        for name, value in (
            ("drain_timeout", drain_timeout),
            ("release_timeout", release_timeout),
            ("retry_backoff", retry_backoff),
            ("max_retry_backoff", max_retry_backoff),
            ("error_backoff", error_backoff),
        ):
            _check_seconds(name, value, allow_zero=True)
        self._jobs = jobs
        self._handlers = dict(handlers)
        self._unknown_names: set[str] = set()  # job names already warned about (WK2)
        self._queues = list(dict.fromkeys(queues))
        self._concurrency = concurrency
        self._handler_timeout = handler_timeout
        self._drain_timeout = drain_timeout
        self._release_timeout = release_timeout
        self._poll_wait = poll_wait
        self._retry_backoff = retry_backoff
        self._max_retry_backoff = max_retry_backoff
        self._error_backoff = error_backoff
        self._nursery: trio.Nursery | None = None
        self._claim_scope = trio.CancelScope()
        self._state: AsyncValue[WorkerState] = AsyncValue("new")
        # Handlers running now: the claim loop waits for a free slot, `wait_idle` for 0.
        self._in_flight: AsyncValue[int] = AsyncValue(0)
        self._handling: dict[int, _Running] = {}
        self._keeper_scope = trio.CancelScope()
        self._abandoning = False
        self._entered = False
        self._counts = dict.fromkeys(
            (
                "crashed",
                "taken",
                "succeeded",
                "failed",
                "retried",
                "dead_lettered",
                "released",
                "lease_lost",
                "timed_out",
                "unknown_name",
                "exhausted",
                "claim_errors",
                "ack_errors",
            ),
            0,
        )
        self._nursery_manager: AbstractAsyncContextManager[trio.Nursery] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a Worker can be entered once")
        self._entered = True
        manager = trio.open_nursery()
        self._nursery = await manager.__aenter__()
        self._nursery_manager = manager
        self._state.value = "running"
        self._nursery.start_soon(self._claim_loop)
        self._nursery.start_soon(self._keep_leases)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        manager = self._nursery_manager
        if manager is None:  # pragma: no cover - only reachable by misuse
            raise RuntimeError("__aexit__ without __aenter__")
        try:
            await self._shut_down(graceful=exc is None)
        except BaseException as error:
            # Cancelled while draining: let the nursery see it and finish the job.
            exc_type, exc, tb = type(error), error, error.__traceback__
        try:
            return await manager.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # Our nursery wraps the block's own exception, or the one error that ended
            # the worker (WK6, WK7); give it back as raised. Several stay a group.
            if len(group.exceptions) != 1:
                raise
            single = group.exceptions[0]
            context = single.__context__  # keep its own cause and context, not the group
            try:
                raise single
            finally:
                single.__context__ = context
        finally:
            self._state.value = "stopped"

    def stop(self) -> None:
        """Start a graceful shutdown (WK5) without leaving the block; not a checkpoint.

        Leaving the ``async with`` block then waits for the drain.
        """
        if self._state.value in ("new", "running"):
            self._state.value = "stopping"
        self._claim_scope.cancel()

    @property
    def state(self) -> WorkerState:
        """``new``, ``running``, ``stopping`` or ``stopped`` (see `WorkerState`)."""
        state: WorkerState = self._state.value
        return state

    async def wait_state(self, *states: WorkerState) -> WorkerState:
        """Wait until the worker is in one of `states` and return it. A checkpoint;
        cancelling it changes nothing. For example ``await worker.wait_state("stopped")``
        after `stop` waits for the drain from another task."""
        if not states:
            raise InvalidArgumentError("wait_state needs at least one state")
        result: WorkerState = await self._state.wait_value(lambda state: state in states)
        return result

    @property
    def queues(self) -> Sequence[str]:
        return tuple(self._queues)

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(
            running=self._state.value in ("running", "stopping"),
            stopping=self._stop_requested,
            concurrency=self._concurrency,
            in_flight=self._in_flight.value,
            **self._counts,
        )

    async def wait_idle(self) -> None:
        """Wait until no handler runs (in-flight count zero). A checkpoint."""
        await self._in_flight.wait_value(0)

    # -- internals ----------------------------------------------------------------------

    async def _shut_down(self, *, graceful: bool) -> None:
        self.stop()
        if graceful:
            with trio.move_on_after(self._drain_timeout, shield=True):
                await self.wait_idle()
        self._abandoning = True
        for running in list(self._handling.values()):
            running.scope.cancel()  # each run task then releases its job (shielded)
        self._maybe_stop_keeper()

    async def _claim_loop(self) -> None:
        assert self._nursery is not None
        start = 0
        with self._claim_scope:
            while True:
                await self._in_flight.wait_value(lambda n: n < self._concurrency)
                # Rotate the queue order so one busy queue does not starve the others.
                queues = self._queues[start:] + self._queues[:start]
                start = (start + 1) % len(self._queues)
                try:
                    deliveries = await self._jobs.claim(
                        queues,
                        max_jobs=self._concurrency - self._in_flight.value,
                        wait=self._poll_wait,
                    )
                except _FATAL_CLAIM_ERRORS:
                    # Not a passing backend fault: the runtime is closed, or it refuses
                    # these queues (a queue with a push handler, foreign data under the
                    # prefix). Retrying would spin forever serving nothing (WK6).
                    raise
                except Exception as exc:
                    self._counts["claim_errors"] += 1
                    logger.warning("claim from %s failed: %r", queues, exc)
                    await trio.sleep(self._error_backoff)
                    continue
                for delivery in deliveries:
                    self._counts["taken"] += 1
                    self._in_flight.value += 1
                    running = _Running(delivery)
                    self._handling[id(running)] = running
                    self._nursery.start_soon(self._run, running)

    async def _run(self, running: _Running) -> None:
        try:
            if self._abandoning:
                running.scope.cancel()  # claimed while shutting down: give it back
            await self._process(running)
        finally:
            del self._handling[id(running)]
            self._in_flight.value -= 1
            self._maybe_stop_keeper()

    async def _process(self, running: _Running) -> None:
        delivery = running.delivery
        job = delivery.job
        finished: list[str | None] = []  # the handler's outcome, once it returned
        try:
            with running.scope:
                finished.append(await self._call_handler(delivery))
        except BaseException as exc:
            if not finished and not running.lost:
                if _is_cancellation(exc):
                    # An enclosing scope was cancelled too (the block raised, or the
                    # caller was cancelled): the Cancelled passes our scope, so give the
                    # job back here.
                    await self._release(delivery)
                else:
                    # The handler raised SystemExit or the like: the worker goes down,
                    # but the attempt counts first (WK2), or the job would take down
                    # every worker forever without ever being dead-lettered.
                    await self._fail_crashed(delivery, exc)
            raise
        finally:
            running.handling = False
        if not finished:
            if running.lost:
                self._counts["lease_lost"] += 1
                logger.warning("lease of job %r lost: taken over, or cancelled", job.id)
            else:  # cancelled by the shutdown (WK5)
                await self._release(delivery)
            return
        # A handler that returned is acknowledged even if shutdown began meanwhile.
        error = finished[0]
        if error is None:
            self._counts["succeeded"] += 1
            await self._ack(self._jobs.complete(delivery), job)
            return
        self._counts["failed"] += 1
        retry_in = self._backoff(job.attempt)
        outcome = await self._ack(self._jobs.fail(delivery, error=error, retry_in=retry_in), job)
        if outcome == "retried":
            self._counts["retried"] += 1
        elif outcome == "dead_lettered":
            self._counts["dead_lettered"] += 1
            logger.warning("job %r dead-lettered after attempt %d: %s", job.id, job.attempt, error)

    async def _call_handler(self, delivery: Delivery) -> str | None:
        """Run the handler; the failure text, or None on success. Cancellation passes."""
        job = delivery.job
        if job.attempt > self._jobs.max_attempts:
            # W2: earlier deliveries expired unfinished (their workers died). Running the
            # job again could kill this worker too: dead-letter it without running it.
            self._counts["exhausted"] += 1
            return (
                f"attempt {job.attempt} exceeds max_attempts={self._jobs.max_attempts}: "
                "earlier deliveries expired unfinished (did the handler kill its worker?)"
            )
        handler = self._handlers.get(job.name)
        if handler is None:
            self._counts["unknown_name"] += 1
            self._warn_unknown_name(job)
            return f"no handler for job name {job.name!r} on this worker"
        token = running_job.set(JobContext(job=job, delivery=delivery, worker=self))
        try:
            timeout = math.inf if self._handler_timeout is None else self._handler_timeout
            with trio.move_on_after(timeout) as deadline:
                await handler(job)
            if deadline.cancelled_caught:
                self._counts["timed_out"] += 1
                return f"handler timed out after {self._handler_timeout:g}s"
            return None
        except Exception as exc:
            logger.warning(
                "handler %r failed on job %r (attempt %d)",
                job.name,
                job.id,
                job.attempt,
                exc_info=True,
            )
            return describe_error(exc)
        finally:
            running_job.reset(token)

    def _warn_unknown_name(self, job: Job) -> None:
        if job.name in self._unknown_names:
            return
        self._unknown_names.add(job.name)
        logger.warning(
            "no handler for job name %r (job %r, queue %r) on this worker, which handles "
            "%s: the job is retried and dead-lettered after max_attempts=%d unless a "
            "worker with that handler takes it (a typo in Task.job_name or in the "
            "handlers mapping?). Warned once per job name.",
            job.name,
            job.id,
            job.queue,
            sorted(self._handlers),
            self._jobs.max_attempts,
        )

    async def _keep_leases(self) -> None:
        """One task for all leases (WK3): every ``visibility_timeout / 3`` seconds,
        extend each running handler's lease, concurrently."""
        interval = self._jobs.visibility_timeout / 3
        if not math.isfinite(interval):
            return
        # aclosing: closed here when cancelled, not later by the garbage collector.
        with self._keeper_scope:
            async with contextlib.aclosing(periodic(interval)) as ticks:
                await anext(ticks)  # the first tick is now: no lease is a third old yet
                async for _ in ticks:
                    due = [r for r in self._handling.values() if r.handling]
                    if due:
                        async with trio.open_nursery() as nursery:
                            for running in due:
                                nursery.start_soon(self._extend, running)

    async def _extend(self, running: _Running) -> None:
        try:
            kept = await self._jobs.extend(running.delivery)
        except Exception as exc:
            # Transient: the next round may work; the lease lasts three rounds.
            logger.warning("extending the lease of job %r failed: %r", running.delivery.job.id, exc)
            return
        if not kept and running.handling:
            running.lost = True
            running.scope.cancel()

    def _maybe_stop_keeper(self) -> None:
        # The keeper runs until shutdown began and the last handler is gone: a graceful
        # drain still needs its leases kept.
        if self._stop_requested and not self._in_flight.value:
            self._keeper_scope.cancel()

    async def _fail_crashed(self, delivery: Delivery, exc: BaseException) -> None:
        job = delivery.job
        self._counts["crashed"] += 1
        error = f"handler crashed the worker: {describe_error(exc)}"
        logger.error("handler %r crashed the worker on job %r: %s", job.name, job.id, error)
        with trio.move_on_after(self._release_timeout, shield=True):
            fail = self._jobs.fail(delivery, error=error, retry_in=self._backoff(job.attempt))
            if await self._ack(fail, job) == "dead_lettered":
                self._counts["dead_lettered"] += 1

    async def _release(self, delivery: Delivery) -> None:
        with trio.move_on_after(self._release_timeout, shield=True):
            try:
                await self._jobs.release(delivery)
            except Exception as exc:
                self._counts["ack_errors"] += 1
                logger.warning(
                    "releasing job %r failed (redelivered after its lease expires): %r",
                    delivery.job.id,
                    exc,
                )
                return
            self._counts["released"] += 1

    async def _ack(self, call: Awaitable[_T], job: Job) -> _T | None:
        try:
            return await call
        except Exception as exc:
            self._counts["ack_errors"] += 1
            logger.warning(
                "reporting the outcome of job %r failed (redelivered after its lease expires): %r",
                job.id,
                exc,
            )
            return None

    def _backoff(self, attempt: int) -> float:
        full = min(self._max_retry_backoff, self._retry_backoff * 2.0 ** max(0, attempt - 1))
        return full / 2 + random.uniform(0, full / 2)

    @property
    def _stop_requested(self) -> bool:
        return self._state.value in ("stopping", "stopped")


def open_worker(
    jobs: ConsumableJobs,
    handlers: Mapping[str, JobHandler],
    *,
    queues: Sequence[str] = ("default",),
    concurrency: int = 8,
    handler_timeout: float | None = None,
    drain_timeout: float = 10.0,
    release_timeout: float = 5.0,
    poll_wait: float = 1.0,
    retry_backoff: float = 1.0,
    max_retry_backoff: float = 300.0,
    error_backoff: float = 1.0,
) -> Worker:
    """A worker taking jobs from `queues` of `jobs` and running `handlers` by job name.

    Use as ``async with open_worker(jobs, {"name": handler}) as worker:``; the worker
    runs for the duration of the block (rules WK1-WK7). `handlers` maps a job name
    (`Task.job_name`) to an async callable taking the `Job`; it must not be empty.
    `queues` defaults to ``["default"]``, the default `Task.queue`. ``handler_timeout``
    bounds each handler (None: unbounded); ``drain_timeout`` how long a graceful exit
    waits for in-flight handlers; ``release_timeout`` each release at shutdown;
    ``poll_wait`` how long one claim waits for work; ``retry_backoff`` and
    ``max_retry_backoff`` the retry delays (WK2); ``error_backoff`` the pause after a
    failed claim. Entering is a checkpoint; leaving waits as WK5 says. Raises
    `InvalidArgumentError` for bad arguments (no handlers, a handler that is not
    callable, no queues); a claim the runtime refuses for good (`ClosedError`,
    `ConflictError`, `InvalidArgumentError`: WK6) ends the worker with that error.
    """
    return Worker(
        jobs,
        handlers,
        queues=queues,
        concurrency=concurrency,
        handler_timeout=handler_timeout,
        drain_timeout=drain_timeout,
        release_timeout=release_timeout,
        poll_wait=poll_wait,
        retry_backoff=retry_backoff,
        max_retry_backoff=max_retry_backoff,
        error_backoff=error_backoff,
    )


def _check_handlers(handlers: object) -> None:
    if not isinstance(handlers, Mapping):
        raise InvalidArgumentError(
            f"handlers must be a mapping of job name to async handler, got "
            f"{type(handlers).__name__}"
        )
    if not handlers:
        raise InvalidArgumentError(
            "handlers is empty: a worker without handlers can only fail every job it "
            "takes; pass {job_name: handler}"
        )
    for name, handler in handlers.items():
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"handler names must be non-empty str, got {name!r}")
        if not callable(handler):
            raise InvalidArgumentError(
                f"the handler for job name {name!r} is not callable: {handler!r}"
            )


def _check_seconds(name: str, value: object, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{name} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond the float range
        raise InvalidArgumentError(f"{name} must be a finite number of seconds") from None
    if math.isnan(seconds):
        raise InvalidArgumentError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgumentError(f"{name} must be {'>=' if allow_zero else '>'} 0, got {value!r}")
