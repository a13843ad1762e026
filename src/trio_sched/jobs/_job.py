"""What the scheduler dispatches: the `Job` value and the `JobsRuntime` interface
(docs/jobs.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

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

    Construction raises `InvalidArgumentError` when a text field (``id``, ``name``,
    ``queue``, ``content_type``, ``tenant_id``, ``idempotency_key``) or a header name or
    value contains a NUL character or a lone surrogate: no backend stores both
    (PostgreSQL refuses NUL in text and jsonb, UTF-8 has no surrogates), so such a job
    would be refused at every enqueue. Types are left to the runtimes to check.
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
        headers = _freeze(self.headers)
        object.__setattr__(self, "headers", headers)
        # Built for every fire of the scheduler, so one join and one scan for NUL and
        # non-ASCII over all the text; `_refuse_text` finds what is wrong, if anything.
        try:
            text = "".join(
                (
                    self.id,
                    self.name,
                    self.queue,
                    self.content_type,
                    self.tenant_id or "",
                    self.idempotency_key or "",
                    *headers,
                    *headers.values(),
                )
            )
        except TypeError:  # a field that is not a str: the runtimes check types
            _refuse_text(self)
        else:
            if "\x00" in text or not text.isascii():
                _refuse_text(self)


_TEXT_FIELDS = ("id", "name", "queue", "content_type", "tenant_id", "idempotency_key")


def _refuse_text(job: Job) -> None:
    """Raise `InvalidArgumentError` for the first text of `job` no backend can store (a
    NUL character, a lone surrogate); return when there is none (non-ASCII text is
    fine, and fields that are not str are not this check's business)."""
    items = [(f"Job.{name}", getattr(job, name)) for name in _TEXT_FIELDS]
    for key, value in job.headers.items():
        items.append(("a Job header name", key))
        items.append((f"the Job header {key!r}", value))
    for what, value in items:
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            raise InvalidArgumentError(
                f"{what} must not contain a NUL character (PostgreSQL refuses it), got {value!r}"
            )
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise InvalidArgumentError(
                    f"{what} must be valid Unicode (no lone surrogate), got {value!r}"
                ) from None


_FIELD_NAMES = tuple(f.name for f in fields(Job))


def restored_job(**values: Any) -> Job:
    """A `Job` rebuilt from what a runtime stored, without the text check of its
    constructor: a job stored by an earlier version, which accepted NUL characters, must
    stay claimable, inspectable and dead-letterable rather than fail every claim of its
    queue. Takes every field by name; ``headers`` is frozen as by the constructor."""
    if set(values) != set(_FIELD_NAMES):
        raise TypeError(f"restored_job needs exactly the fields {_FIELD_NAMES}")
    job = object.__new__(Job)
    for name in _FIELD_NAMES:
        object.__setattr__(job, name, values[name])
    object.__setattr__(job, "headers", _freeze(values["headers"]))
    return job


def with_attempt(job: Job, attempt: int) -> Job:
    """`job` with another ``attempt``, like ``dataclasses.replace`` but without the
    construction check (for jobs made by `restored_job`)."""
    values = {name: getattr(job, name) for name in _FIELD_NAMES}
    values["attempt"] = attempt
    return restored_job(**values)


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
    when its runtime has the method (rule D6 of the runtime), instead of one ``enqueue``
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
