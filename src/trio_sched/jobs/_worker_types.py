"""The public values of a worker (`trio_sched.jobs._worker`, rules WK1-WK7): the
`JobHandler` it runs, the `WorkerState` it goes through (WK5), the `WorkerStatistics` it
reports, and the per-job `JobContext` a handler reads with `current_job` (WK4).

A `Worker` sets the context around each handler call; `current_job()` reads it from
code deeper in the handler's call stack.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, final

from trio_sched.jobs._consumable import Delivery
from trio_sched.jobs._job import Job

if TYPE_CHECKING:  # only for the annotation: the worker imports this module
    from trio_sched.jobs._worker import Worker

__all__ = [
    "JobContext",
    "JobHandler",
    "WorkerState",
    "WorkerStatistics",
    "current_job",
]

JobHandler = Callable[[Job], Awaitable[None]]
"""An async callable that processes one job."""

WorkerState = Literal["new", "running", "stopping", "stopped"]
"""A worker's life: ``new`` until entered, ``running``, ``stopping`` once a graceful or
hard stop began (no more claims), ``stopped`` once the ``async with`` block has left."""


@final
@dataclass(frozen=True, slots=True)
class JobContext:
    """What `current_job` returns inside a handler (WK4)."""

    job: Job
    delivery: Delivery
    worker: Worker

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def headers(self) -> Mapping[str, str]:
        return self.job.headers

    @property
    def tenant_id(self) -> str | None:
        return self.job.tenant_id


# Set by `Worker` around each handler call (WK4).
running_job: contextvars.ContextVar[JobContext] = contextvars.ContextVar("trio_sched_job")


def current_job() -> JobContext:
    """The `JobContext` of the handler running in this task; `LookupError` outside one."""
    return running_job.get()


@final
@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """A snapshot of a `Worker`'s counters.

    `taken` jobs each end as `succeeded` or `failed` (then `retried`, `dead_lettered`
    or stale), or `released` at shutdown, or `lease_lost`; `in_flight` are running now.
    `timed_out`, `unknown_name` and `exhausted` (a delivery past ``max_attempts`` after
    expired leases, not run: W2) are failures by cause; `crashed` counts handlers that
    raised a non-``Exception`` (`SystemExit`, ...), failed before the worker went down.
    `claim_errors` and `ack_errors` count backend errors (WK6).
    """

    running: bool
    stopping: bool
    concurrency: int
    taken: int
    succeeded: int
    failed: int
    retried: int
    dead_lettered: int
    released: int
    lease_lost: int
    timed_out: int
    unknown_name: int
    exhausted: int
    claim_errors: int
    ack_errors: int
    in_flight: int
    crashed: int = 0
