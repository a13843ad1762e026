"""Asking a jobs runtime about one job by its idempotency key, and cancelling it: the
optional `JobControl` protocol and the `JobState` it answers (docs/jobs.md, "Job state
and cancellation").

The scheduler's overlap policy needs it: ``FORBID`` skips an occurrence while the task's
previous job is queued or running, ``REPLACE`` cancels the previous job before
dispatching the new one. `MemoryJobs`, ``RedisJobs`` and ``PostgresJobs`` implement it;
`trio_sched.testing.check_jobs_runtime` checks it on any runtime that has it.

Rules JC1-JC5:
- JC1 Jobs are found by their `Job.idempotency_key`; jobs enqueued without one are
  `JobState.UNKNOWN` and cannot be cancelled. The key names the latest job enqueued
  with it (keys are unique while remembered: the runtimes refuse a second enqueue of a
  remembered key). A key that is not a non-empty str, or that holds text no runtime
  stores (a NUL character, a lone surrogate, as `Job` refuses), raises
  `InvalidArgumentError`.
- JC2 ``job_state(key)`` is a checkpoint and one round trip. ``QUEUED``: enqueued and not
  claimed (delayed and retry-waiting jobs included); ``RUNNING``: claimed, and the lease
  has not expired; a claimed job whose lease expired is ``QUEUED`` again (it will be
  redelivered, W2). ``DONE``: completed; ``DEAD``: in the dead letters; ``CANCELLED``:
  cancelled through ``cancel``; ``UNKNOWN``: never seen, or forgotten (JC4).
- JC3 ``cancel(key)``: a ``QUEUED`` job is removed and never delivered; a ``RUNNING``
  job's lease is revoked: the holder's next ``extend`` returns False (so a `Worker`
  cancels its handler within ``visibility_timeout / 3``, WK3), its ``complete`` and
  ``fail`` are stale (False, ``"stale"``) and the job is not redelivered. Either way the
  state becomes ``CANCELLED``. Returns True when it cancelled a queued or running job,
  False otherwise (unknown, done, dead, already cancelled). Atomic: a cancel racing a
  claim either removes the job before the claim or revokes the claim's lease.
- JC4 ``DONE``, ``DEAD`` and ``CANCELLED`` are remembered as long as the runtime
  remembers the key for its dedupe, then the job is ``UNKNOWN``: `MemoryJobs` the last
  ``dedupe_window`` keys; ``RedisJobs`` ``dedupe_retention`` from the enqueue (the
  dedupe key's lifetime); ``PostgresJobs`` ``dedupe_retention`` from the end for done
  and cancelled rows, and as long as the dead letter exists for dead ones.
- JC5 Every method is a checkpoint; after ``aclose`` they raise `ClosedError`; a
  cancelled call either happened wholly or not at all.
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

from trio_sched._errors import InvalidArgumentError

__all__ = ["JobControl", "JobState", "check_key"]


class JobState(enum.Enum):
    """What a runtime knows of the job holding an idempotency key (JC2)."""

    QUEUED = "queued"  # enqueued, not claimed (includes delayed/retry-waiting)
    RUNNING = "running"  # claimed: a worker holds an unexpired lease
    DONE = "done"  # completed (while the runtime still remembers it)
    DEAD = "dead"  # in the dead letters
    CANCELLED = "cancelled"  # cancelled through `cancel` (while remembered)
    UNKNOWN = "unknown"  # never seen, or forgotten


@runtime_checkable
class JobControl(Protocol):
    """A jobs runtime that answers for a job by its idempotency key (rules JC1-JC5)."""

    async def job_state(self, idempotency_key: str) -> JobState: ...

    async def cancel(self, idempotency_key: str) -> bool: ...


def check_key(key: object) -> str:
    """`key` when it can name a job (JC1), else `InvalidArgumentError`. No I/O; made
    before the checkpoint of every ``job_state`` and ``cancel``."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"an idempotency key must be a non-empty str, got {key!r}")
    if "\x00" in key:
        raise InvalidArgumentError(f"an idempotency key cannot contain NUL, got {key!r}")
    if not key.isascii():
        try:
            key.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                f"an idempotency key must be valid Unicode, got {key!r}"
            ) from None
    return key
