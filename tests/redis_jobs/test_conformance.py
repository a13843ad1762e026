"""`check_jobs_runtime` on `RedisJobs` and `MemoryJobs`, and the suite against a Redis
runtime with a deliberate bug (it must fail)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from trio_sched.jobs import BatchJobsRuntime, Job, MemoryJobs
from trio_sched.jobs.redis import RedisJobs
from trio_sched.testing import CheckFailed, check_jobs_runtime

from .conftest import MakeJobs


async def _read_back_redis(jobs: RedisJobs, job_id: str) -> Job | None:
    return await jobs.get(job_id)


async def _read_back_memory(jobs: MemoryJobs, job_id: str) -> Job | None:
    await trio.lowlevel.checkpoint()
    return next((job for job in jobs.enqueued if job.id == job_id), None)


async def test_redis_jobs_conform(make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch) -> None:
    # RedisJobs has enqueue_many, so the suite must run its batch checks on it (rule JS5).
    assert isinstance(make_jobs(), BatchJobsRuntime)
    batches: list[int] = []
    real = RedisJobs.enqueue_many

    async def counted(self: RedisJobs, jobs: Sequence[Job]) -> list[Exception | None]:
        batches.append(len(jobs))
        return await real(self, jobs)

    monkeypatch.setattr(RedisJobs, "enqueue_many", counted)
    cancels: list[str] = []
    real_cancel = RedisJobs.cancel

    async def counted_cancel(self: RedisJobs, idempotency_key: str) -> bool:
        cancels.append(idempotency_key)
        return await real_cancel(self, idempotency_key)

    monkeypatch.setattr(RedisJobs, "cancel", counted_cancel)

    @asynccontextmanager
    async def make() -> AsyncIterator[RedisJobs]:
        async with make_jobs() as jobs:
            yield jobs

    await check_jobs_runtime(make, read_back=_read_back_redis, concurrency=20)
    assert 0 in batches  # the empty batch, among others
    assert len(batches) >= 5
    assert len(cancels) >= 10  # the JobControl checks ran too (rule JS6)


async def test_memory_jobs_conform(autojump_clock: trio.testing.MockClock) -> None:
    await check_jobs_runtime(MemoryJobs, read_back=_read_back_memory)


class _ForgetsKeys:
    """A RedisJobs that drops the idempotency key before enqueueing: no dedupe."""

    def __init__(self, inner: RedisJobs) -> None:
        self.inner = inner

    async def enqueue(self, job: Job) -> None:
        from dataclasses import replace

        await self.inner.enqueue(replace(job, idempotency_key=None))

    async def health_check(self) -> None:
        await self.inner.health_check()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_suite_rejects_a_runtime_without_dedupe(make_jobs: MakeJobs) -> None:
    @asynccontextmanager
    async def make() -> AsyncIterator[_ForgetsKeys]:
        jobs = make_jobs()
        yield _ForgetsKeys(jobs)
        await jobs.aclose()

    async def read_back(runtime: _ForgetsKeys, job_id: str) -> Job | None:
        return await runtime.inner.get(job_id)

    with pytest.raises(CheckFailed):
        await check_jobs_runtime(make, read_back=read_back)
