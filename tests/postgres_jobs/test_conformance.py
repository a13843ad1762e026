"""`check_jobs_runtime` on `PostgresJobs`, and the suite against a Postgres runtime with
a deliberate bug (it must fail)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest

from trio_sched.jobs import BatchJobsRuntime, Job
from trio_sched.jobs.postgres import PostgresJobs
from trio_sched.testing import CheckFailed, check_jobs_runtime

from .conftest import MakeJobs


async def _read_back(jobs: PostgresJobs, job_id: str) -> Job | None:
    return await jobs.get(job_id)


async def test_postgres_jobs_conform(make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch) -> None:
    # PostgresJobs has enqueue_many, so the suite must run its batch checks on it (rule JS5).
    assert isinstance(make_jobs(), BatchJobsRuntime)
    batches: list[int] = []
    real = PostgresJobs.enqueue_many

    async def counted(self: PostgresJobs, jobs: Sequence[Job]) -> list[Exception | None]:
        batches.append(len(jobs))
        return await real(self, jobs)

    monkeypatch.setattr(PostgresJobs, "enqueue_many", counted)
    cancels: list[str] = []
    real_cancel = PostgresJobs.cancel

    async def counted_cancel(self: PostgresJobs, idempotency_key: str) -> bool:
        cancels.append(idempotency_key)
        return await real_cancel(self, idempotency_key)

    monkeypatch.setattr(PostgresJobs, "cancel", counted_cancel)

    @asynccontextmanager
    async def make() -> AsyncIterator[PostgresJobs]:
        async with make_jobs() as jobs:
            yield jobs

    await check_jobs_runtime(make, read_back=_read_back, concurrency=20)
    assert 0 in batches  # the empty batch, among others
    assert len(batches) >= 5
    assert len(cancels) >= 10  # the JobControl checks ran too (rule JS6)


class _ForgetsKeys:
    """A PostgresJobs that drops the idempotency key before enqueueing: no dedupe."""

    def __init__(self, inner: PostgresJobs) -> None:
        self.inner = inner

    async def enqueue(self, job: Job) -> None:
        await self.inner.enqueue(dataclasses.replace(job, idempotency_key=None))

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
