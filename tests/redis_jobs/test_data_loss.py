"""Lost queue data on Redis (issue 11, rule RJ7), on a throwaway server of the test's own
restarted empty: every client that knew the old epoch detects the loss on its next
enqueue or claim (nothing stored or claimed by that call), logs it once and reports
how many jobs it knew to be pending, per queue; the queues work again afterwards."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from redis_backend.conftest import throwaway_redis
from redis_backend.servers import RedisProcess
from trio_sched import DataLossError, RetryableError
from trio_sched.jobs import Job
from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

__all__ = ["throwaway_redis"]

MakeJobs = Callable[[], RedisJobs]


def _job(i: int, queue: str = "q", **fields: object) -> Job:
    return Job(id=f"job-{i}", name="work", queue=queue, payload=b"x", **fields)  # type: ignore[arg-type]


@pytest.fixture
async def make_jobs(throwaway_redis: RedisProcess) -> AsyncIterator[MakeJobs]:
    made: list[RedisJobs] = []

    def make() -> RedisJobs:
        jobs = RedisJobs(
            RedisJobsConfig(
                url=throwaway_redis.url, prefix="loss", operation_timeout=1.0, max_attempts=3
            )
        )
        made.append(jobs)
        return jobs

    yield make
    for jobs in made:
        await jobs.aclose()


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_lost_queue_data_is_detected_and_the_vanished_jobs_counted(
    throwaway_redis: RedisProcess, make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    producer, worker = make_jobs(), make_jobs()
    for i in range(5):
        await producer.enqueue(_job(i))
    later = datetime.now(UTC) + timedelta(hours=1)
    await producer.enqueue(_job(10, queue="other"))
    await producer.enqueue(_job(11, queue="other", run_at=later))  # delayed
    (leased,) = await worker.claim(["q"], max_jobs=1, wait=0)
    throwaway_redis.restart()  # empty: the seven jobs are gone

    with pytest.raises(DataLossError) as info:
        await producer.enqueue(_job(20))
    assert isinstance(info.value, RetryableError)  # the scheduler enqueues it again
    assert dict(info.value.vanished) == {"q": 5, "other": 2}
    assert "7 job(s)" in str(info.value)
    assert await producer.get("job-20") is None  # the detecting call stored nothing
    stats = producer.statistics()
    assert (stats.data_losses, stats.jobs_vanished) == (1, 7)

    # The worker knew its own part (what it saw when it claimed): reported by its claim.
    with pytest.raises(DataLossError) as claimed:
        await worker.claim(["q"], max_jobs=10, wait=0)
    assert dict(claimed.value.vanished) == {"q": 5}
    assert claimed.value.detected_at == info.value.detected_at  # one loss instant
    assert not await worker.complete(leased)  # its lease went with the data: stale
    assert len(_errors(caplog)) == 2  # once per client

    # Back to work: nothing reported twice.
    await producer.enqueue(_job(20))
    (again,) = await worker.claim(["q"], max_jobs=10, wait=0)
    assert again.job.id == "job-20"
    assert await worker.complete(again)
    assert len(_errors(caplog)) == 2
    assert worker.statistics().jobs_vanished == 5


async def test_enqueue_many_reports_the_loss_for_every_job_of_the_call_once(
    throwaway_redis: RedisProcess, make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    producer = make_jobs()
    assert await producer.enqueue_many([_job(i) for i in range(3)]) == [None] * 3
    throwaway_redis.restart()
    results = await producer.enqueue_many([_job(i) for i in range(10, 14)])
    assert all(isinstance(r, DataLossError) for r in results)
    assert {tuple(r.vanished.items()) for r in results if isinstance(r, DataLossError)} == {
        (("q", 3),)
    }
    assert len(_errors(caplog)) == 1
    assert producer.statistics().jobs_vanished == 3
    assert await producer.enqueue_many([_job(i) for i in range(10, 14)]) == [None] * 4
    assert (await producer.queue_statistics("q")).stream == 4
