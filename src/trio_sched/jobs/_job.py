"""What the scheduler dispatches: the `Job` value and the `JobsRuntime` interface
(DESIGN.md section 5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

__all__ = ["Job", "JobsRuntime"]


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
