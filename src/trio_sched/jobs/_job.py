"""What the scheduler dispatches: the `Job` value and the `JobsRuntime` interface
(docs/jobs.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from trio_sched._errors import InvalidArgumentError

__all__ = ["BatchJobsRuntime", "Job", "JobsRuntime"]


def _freeze(headers: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(headers))


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of work handed to a jobs runtime.

    `run_at` is the occurrence's nominal instant (aware datetime), never the wake-up
    time, so every scheduler instance builds the same job for the same occurrence.
    `headers` is read-only and names the task (``x-trio-sched-task``), the occurrence
    and the fencing token.
    """

    id: str
    name: str
    queue: str
    payload: bytes = b"{}"
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    tenant_id: str | None = None
    idempotency_key: str | None = None
    run_at: datetime | None = None
    created_at: datetime | None = None
    fencing_token: int | None = None
    attempt: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _freeze(self.headers))


@runtime_checkable
class JobsRuntime(Protocol):
    """Structural interface of a jobs runtime: any object with these methods works.

    ``enqueue`` may raise `ConflictError` for a duplicate idempotency key; the
    scheduler counts that as a successful dispatch (the job is already queued).
    """

    async def enqueue(self, job: Job) -> None: ...

    async def health_check(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BatchJobsRuntime(JobsRuntime, Protocol):
    """A `JobsRuntime` that also accepts many jobs in one call (optional capability).

    The scheduler enqueues every occurrence of one burst with one ``enqueue_many`` call
    when its runtime has the method (rule S9 of the runtime), instead of one ``enqueue``
    per occurrence. Contract (checked by `trio_sched.testing.check_jobs_runtime`):

    - It returns one entry per job, in order: ``None`` when the job was accepted,
      a `ConflictError` when its idempotency key (or id) is already enqueued (the job is
      not enqueued again, as ``enqueue`` would raise), or the exception that ``enqueue``
      would have raised for that job alone (for example `RetryableError` for a full
      buffer). Jobs are accepted in order; a duplicate inside one call is a conflict.
    - It raises, instead of returning, only for what concerns the whole call (closed,
      connection lost, timeout, an argument that is not a `Job`); the caller may then
      enqueue the jobs again, since idempotency keys make repeating safe.
    - It is a checkpoint, also for an empty sequence. Cancelled, any subset of the jobs
      may have been accepted (each at most once, by its idempotency key); the
      implementation documents whether it is all-or-nothing.
    """

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]: ...


def check_jobs(jobs: Sequence[object]) -> None:
    """Raise `InvalidArgumentError` unless every item is a `Job` (the argument check
    of every ``enqueue_many``, made before anything is sent)."""
    for job in jobs:
        if not isinstance(job, Job):
            raise InvalidArgumentError(f"enqueue_many expects Jobs, got {type(job).__name__}")
