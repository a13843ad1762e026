"""The protocol between a jobs runtime and its workers: `ConsumableJobs` and the
records it passes (`Delivery`, `DeadLetter`, `FailOutcome`).

A runtime that implements it (`MemoryJobs`, ``RedisJobs``, ``PostgresJobs``) can be
consumed by `open_worker` (`trio_sched.jobs._worker`, rules WK1-WK7).

The protocol (what a runtime implements for the worker), rules W1-W9:
- W1 ``claim(queues, max_jobs=, wait=)`` takes up to ``max_jobs`` due jobs from
  ``queues`` and returns them as `Delivery` values; it waits at most about ``wait``
  seconds when none is due (blocking read / notification, never a tight poll) and may
  return an empty list. A claimed job is *leased* to this runtime object for
  ``visibility_timeout`` seconds; nobody else gets it meanwhile.
- W2 At-least-once: a lease that is neither completed, failed, released nor extended
  within ``visibility_timeout`` expires, and the job is delivered again (to any worker).
  That redelivery counts as an attempt, so a job that kills its worker every time is
  dead-lettered after ``max_attempts`` like a failing one (a runtime may do it when
  claiming; the worker dead-letters a delivery whose attempt exceeds ``max_attempts``
  without running it, WK2).
- W3 ``Delivery.job.attempt`` is the attempt number of *this* delivery: the enqueued
  ``attempt`` (normally 1) plus the number of earlier deliveries. Every other `Job`
  field is exactly what was enqueued.
- W4 Only due jobs are claimed: a job whose ``run_at`` lies in the future (wall clock)
  waits until then; a retried job waits until its ``retry_in`` has passed.
- W5 ``complete(delivery)`` removes the job for good and returns True; it returns False
  (and changes nothing) when the lease is *stale* - the job was already completed,
  failed or released through another delivery (after a lease expiry and redelivery).
- W6 ``fail(delivery, error=, retry_in=)``: with ``retry_in`` not None and
  ``delivery.job.attempt < max_attempts`` the job is delivered again after ``retry_in``
  seconds (``"retried"``); otherwise it moves to the queue's dead letters with `error`
  (``"dead_lettered"``). ``"stale"`` as in W5. The worker computes ``retry_in``
  (exponential backoff); the runtime owns ``max_attempts``.
- W7 ``extend(delivery)`` renews the lease for another ``visibility_timeout`` seconds
  and returns True, or False when the lease was lost (expired and taken over, or
  finished elsewhere). ``release(delivery)`` gives an unfinished job back for immediate
  redelivery without counting its attempt (graceful shutdown); stale releases are no-ops.
- W8 ``dead_letters(queue, limit=)`` lists dead letters oldest first;
  ``redrive(queue, ids=None)`` re-queues the named dead letters (all when None) with
  ``attempt`` reset to the enqueued value, and returns how many it re-queued.
- W9 Every method is a checkpoint. A cancelled ``claim`` leaves nothing hidden: jobs it
  took are either returned to the queue or redelivered after the visibility timeout
  (W2); a cancelled ``complete``/``fail``/``extend``/``release`` either happened wholly
  or not at all. After ``aclose`` they raise `ClosedError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, final, runtime_checkable

from trio_sched.jobs._job import Job, JobsRuntime

__all__ = ["ConsumableJobs", "DeadLetter", "Delivery", "FailOutcome"]

FailOutcome = Literal["retried", "dead_lettered", "stale"]


@final
@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed job (W1): `job` with its delivery `attempt` (W3) and the runtime's
    opaque `receipt` naming this lease."""

    job: Job
    receipt: str


@final
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job that exhausted its attempts (W6): `id` names it for `redrive`, `job` has
    the last attempt's number, `error` the last failure, `failed_at` when (aware)."""

    id: str
    job: Job
    error: str
    failed_at: datetime


@runtime_checkable
class ConsumableJobs(JobsRuntime, Protocol):
    """A jobs runtime workers can take from (rules W1-W9 above)."""

    @property
    def visibility_timeout(self) -> float: ...

    @property
    def max_attempts(self) -> int: ...

    async def claim(
        self, queues: Sequence[str], *, max_jobs: int, wait: float
    ) -> list[Delivery]: ...

    async def complete(self, delivery: Delivery) -> bool: ...

    async def fail(
        self, delivery: Delivery, *, error: str, retry_in: float | None
    ) -> FailOutcome: ...

    async def extend(self, delivery: Delivery) -> bool: ...

    async def release(self, delivery: Delivery) -> None: ...

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]: ...

    async def redrive(self, queue: str, ids: Sequence[str] | None = None) -> int: ...
