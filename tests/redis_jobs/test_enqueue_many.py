"""`RedisJobs.enqueue_many` beyond the conformance suite (RJ2): chunked pipelines, one
entry per job with `enqueue`'s messages, counters, a flushed script cache."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import redis
import trio
import trio.testing

from trio_sched import ConflictError, InvalidArgumentError
from trio_sched.jobs import BatchJobsRuntime, Job
from trio_sched.jobs import redis as redis_jobs

from .conftest import MakeJobs


def _job(i: int, *, queue: str = "q", **fields: object) -> Job:
    return dataclasses.replace(Job(id=f"job-{i}", name="work", queue=queue), **fields)


async def test_is_a_batch_jobs_runtime(make_jobs: MakeJobs) -> None:
    assert isinstance(make_jobs(), BatchJobsRuntime)


async def test_a_batch_larger_than_a_chunk_is_stored_whole(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    chunk = redis_jobs._ENQUEUE_CHUNK
    count = 2 * chunk + 7
    batch = [_job(i, idempotency_key=f"key-{i}") for i in range(count)]
    batch.append(_job(count, idempotency_key="key-0"))  # a duplicate two chunks later
    await jobs.health_check()  # the first call's persistence check (R7) is not counted
    before = jobs.statistics().driver.round_trips
    results = await jobs.enqueue_many(batch)
    assert results[:count] == [None] * count
    assert isinstance(results[count], ConflictError)
    assert str(results[count]) == "duplicate idempotency key 'key-0': job 'job-0' has it"
    # One pipelined round trip per chunk, not one per job.
    assert jobs.statistics().driver.round_trips - before == 3
    stats = jobs.statistics()
    assert (stats.enqueued, stats.duplicates) == (count, 1)
    assert (await jobs.queue_statistics("q")).stream == count
    for i in (0, chunk - 1, chunk, 2 * chunk, count - 1):
        assert await jobs.get(f"job-{i}") == batch[i]
    assert await jobs.get(f"job-{count}") is None


async def test_each_job_gets_the_entry_enqueue_would_raise(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    await jobs.enqueue(_job(1, idempotency_key="held"))
    batch = [
        _job(2, run_at=datetime.now(UTC) + timedelta(hours=1)),  # delayed
        _job(3, run_at=datetime(2026, 1, 1)),  # naive: refused before sending
        _job(4, idempotency_key="held"),  # its key belongs to job-1
        _job(1),  # its id is stored
        _job(5, queue=""),  # not a queue name
        _job(6),
    ]
    results = await jobs.enqueue_many(batch)
    assert results[0] is None
    assert results[5] is None
    for index in (1, 4):
        assert isinstance(results[index], InvalidArgumentError)
    for index in (2, 3):
        assert isinstance(results[index], ConflictError)
        with pytest.raises(ConflictError) as alone:
            await jobs.enqueue(batch[index])
        assert str(results[index]) == str(alone.value)
    assert str(results[2]) == "duplicate idempotency key 'held': job 'job-1' has it"
    assert str(results[3]) == "a job with id 'job-1' is already stored"
    stats = jobs.statistics()
    assert (stats.enqueued, stats.delayed, stats.duplicates) == (3, 1, 2 + 2)
    queue = await jobs.queue_statistics("q")
    assert (queue.stream, queue.delayed) == (2, 1)  # job-1 and job-6; job-2 waits
    assert await jobs.get("job-3") is None


async def test_a_flushed_script_cache_is_loaded_again(make_jobs: MakeJobs, redis_url: str) -> None:
    jobs = make_jobs()
    client = redis.Redis.from_url(redis_url)
    try:
        await trio.to_thread.run_sync(client.script_flush)
    finally:
        client.close()
    assert await jobs.enqueue_many([_job(1), _job(2)]) == [None, None]
    assert await jobs.get("job-2") == _job(2)


async def test_an_item_that_is_not_a_job_sends_nothing(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    with pytest.raises(InvalidArgumentError, match="enqueue_many expects Jobs, got str"):
        await jobs.enqueue_many([_job(1), "job-2"])  # type: ignore[list-item]
    assert jobs.statistics().driver.round_trips == 0
    assert await jobs.get("job-1") is None


async def test_an_empty_batch_makes_no_round_trip(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    with trio.testing.assert_checkpoints():
        assert await jobs.enqueue_many([]) == []
    (refused,) = await jobs.enqueue_many([_job(1, queue="")])  # refused: nothing to send
    assert isinstance(refused, InvalidArgumentError)
    assert jobs.statistics().driver.round_trips == 0
