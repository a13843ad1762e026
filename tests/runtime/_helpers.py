"""Helpers for runtime tests: a fake wall clock on Trio's clock, recording backends.

Tests run on `trio.testing.MockClock` with autojump (the ``autojump_clock`` fixture of
pytest-trio) and a wall clock derived from ``trio.current_time()``, so schedules that
span days run in milliseconds and every instant is exact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import trio

from trio_sched import Config
from trio_sched.jobs import Job
from trio_sched.locks import AcquireRequest, Held, LockLease, LockProvider

# The logger of the runtime tests' schedulers: errors the tests provoke stay quiet.
QUIET = logging.getLogger("trio_sched.tests.quiet")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def at(h: int, m: int, s: int = 0, day: int = 5) -> datetime:
    """An instant on 2026-01-05 (a Monday) or `day` of January 2026, UTC."""
    return datetime(2026, 1, day, h, m, s, tzinfo=UTC)


def config(wall: FakeWall, **kw: object) -> Config:
    """A `Config` on the fake wall clock `wall`, logging to `QUIET` unless told."""
    kw.setdefault("logger", QUIET)
    return Config(wall_clock=wall, **kw)  # type: ignore[arg-type]


class FakeWall:
    """wall = base + (trio.current_time() - t0) + skew; `jump` moves the skew."""

    def __init__(self, base: datetime, skew: float = 0.0) -> None:
        self.base = base
        self.t0 = trio.current_time()
        self.skew = skew

    def __call__(self) -> datetime:
        return self.base + timedelta(seconds=trio.current_time() - self.t0 + self.skew)

    def jump(self, seconds: float) -> None:
        self.skew += seconds

    def trio_time_of(self, wall: datetime) -> float:
        """The Trio time at which this wall clock shows `wall` (at the current skew)."""
        return self.t0 + (wall - self.base).total_seconds() - self.skew


def loop_tasks(name: str) -> int:
    """How many Trio tasks run the loop of task `name` right now."""
    count = 0
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        count += task.name == f"trio_sched:{name}"
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return count


class _Mode:
    """Which `RecordingJobs` the tests get (set per test by ``tests/runtime/conftest.py``):
    without ``enqueue_many`` every occurrence is dispatched by its loop (rule D7 of the
    runtime), with it a burst is enqueued in one call (D6). Every test runs both ways."""

    batch = False


MODE = _Mode()


class RecordingJobs:
    """A JobsRuntime that records every enqueue (no dedupe: double fires stay visible).

    `delay` makes enqueue slow (seconds on Trio's clock); `fail` is raised (and
    decremented) while `failures` > 0. ``RecordingJobs()`` makes a `BatchRecordingJobs`
    while the test runs in batch mode (`MODE`).
    """

    def __new__(cls, *, delay: float = 0.0) -> RecordingJobs:
        if cls is RecordingJobs and MODE.batch:
            cls = BatchRecordingJobs
        return super().__new__(cls)

    def __init__(self, *, delay: float = 0.0) -> None:
        self.enqueue_calls: list[str] = []  # task name of every `enqueue` call
        self.jobs: list[Job] = []
        self.enqueued_at: list[float] = []
        self.delay = delay
        self.failures = 0
        self.fail: Exception | None = None
        self.closed = False

    async def enqueue(self, job: Job) -> None:
        self.enqueue_calls.append(job.headers["x-trio-sched-task"])
        await trio.sleep(self.delay)
        if self.failures > 0 and self.fail is not None:
            self.failures -= 1
            raise self.fail
        self.jobs.append(job)
        self.enqueued_at.append(trio.current_time())

    async def health_check(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()

    def nominals(self, task: str | None = None) -> list[datetime]:
        return [
            j.run_at
            for j in self.jobs
            if j.run_at is not None and (task is None or j.headers["x-trio-sched-task"] == task)
        ]


class BatchRecordingJobs(RecordingJobs):
    """`RecordingJobs` with ``enqueue_many`` (a `BatchJobsRuntime`).

    One call waits `delay` once; `fail` (while `failures` > 0) fails the whole call;
    `job_errors` maps a job's task name to an exception returned as that job's result
    (the job is then not recorded). `calls` counts the jobs of every call.
    """

    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.calls: list[int] = []
        self.job_errors: dict[str, Exception] = {}

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        self.calls.append(len(jobs))
        await trio.sleep(self.delay)
        if self.failures > 0 and self.fail is not None:
            self.failures -= 1
            raise self.fail
        results: list[Exception | None] = []
        for job in jobs:
            error = self.job_errors.get(job.headers["x-trio-sched-task"])
            if error is None:
                self.jobs.append(job)
                self.enqueued_at.append(trio.current_time())
            results.append(error)
        return results


class WrappedLocks:
    """A LockProvider wrapper that counts calls and can inject failures."""

    def __init__(self, inner: LockProvider) -> None:
        self.inner = inner
        self.batch_sizes: list[int] = []
        self.batch_keys: list[list[str]] = []  # the lock keys of every acquire_batch
        self.advance_calls: list[dict[str, int]] = []
        self.marked: list[LockLease] = []  # leases passed to mark_dispatched
        self.get_watermark_calls: list[list[str]] = []
        self.renewals = 0
        self.reject_renewals = False
        self.reject_keys: set[str] = set()  # renewals of these lock keys are rejected
        self.hang_renewals = False
        self.batch_error: Exception | None = None
        self.batch_failures = 0
        self.closed = False

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        return await self.inner.acquire(key, ttl)

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        self.batch_sizes.append(len(requests))
        self.batch_keys.append([request.key for request in requests])
        if self.batch_failures > 0 and self.batch_error is not None:
            self.batch_failures -= 1
            await trio.lowlevel.checkpoint()
            raise self.batch_error
        return await self.inner.acquire_batch(requests)

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        self.renewals += 1
        if self.hang_renewals:
            await trio.sleep_forever()
        if self.reject_renewals or lease.key in self.reject_keys:
            from trio_sched import LeaseLostError

            await trio.lowlevel.checkpoint()
            raise LeaseLostError("renewal rejected by the test")
        return await self.inner.renew(lease, ttl)

    async def release(self, lease: LockLease) -> bool:
        return await self.inner.release(lease)

    async def mark_dispatched(self, leases: Sequence[LockLease]) -> list[bool]:
        self.marked.extend(leases)
        return await self.inner.mark_dispatched(leases)

    async def get_watermarks(self, names: Sequence[str]) -> dict[str, int]:
        self.get_watermark_calls.append(list(names))
        return await self.inner.get_watermarks(names)

    async def advance_watermarks(self, marks: Mapping[str, int]) -> None:
        self.advance_calls.append(dict(marks))
        await self.inner.advance_watermarks(marks)

    async def health_check(self) -> None:
        await self.inner.health_check()

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()
