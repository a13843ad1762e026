"""`RedisJobs` as a `JobControl` beyond the conformance suite (rule RJ8): what the keys
hold, the dedupe key's lifetime for remembered ends, and a cancelled waiting entry."""

from __future__ import annotations

import redis
import trio

from trio_sched.jobs import Job, JobControl, JobState

from .conftest import MakeJobs


async def test_ends_are_remembered_as_long_as_the_dedupe_key(
    make_jobs: MakeJobs, redis_url: str, redis_prefix: str
) -> None:
    jobs = make_jobs(dedupe_retention=0.3)
    assert isinstance(jobs, JobControl)
    for label in ("done", "cancelled"):
        await jobs.enqueue(Job(id=label, name="n", queue="q", idempotency_key=f"key-{label}"))
    (delivery,) = await jobs.claim(["q"], max_jobs=1, wait=0)
    assert delivery.job.id == "done"
    client = redis.Redis.from_url(redis_url)
    try:
        base = f"{redis_prefix}:jobs:"
        assert client.hget(base + "leases", "done") == delivery.receipt.encode()
        assert await jobs.complete(delivery)
        assert client.hget(base + "leases", "done") is None
        assert await jobs.cancel("key-cancelled")
        assert await jobs.job_state("key-done") is JobState.DONE
        assert await jobs.job_state("key-cancelled") is JobState.CANCELLED
        for label in ("done", "cancelled"):
            ttl = client.pttl(f"{base}ended:key-{label}")
            assert 0 < ttl <= client.pttl(f"{base}dedupe:key-{label}") + 5
        # The cancelled job's entry waited in the stream: the next claim drops it.
        assert client.xlen(base + "q:q") == 1
        assert await jobs.claim(["q"], max_jobs=5, wait=0) == []
        assert client.xlen(base + "q:q") == 0
        await trio.sleep(0.4)
        assert await jobs.job_state("key-done") is JobState.UNKNOWN
        assert await jobs.job_state("key-cancelled") is JobState.UNKNOWN
    finally:
        client.close()


async def test_a_job_delivered_without_a_leases_entry_reads_as_queued(
    make_jobs: MakeJobs, redis_url: str, redis_prefix: str
) -> None:
    # As delivered by an earlier trio-sched (RJ8): QUEUED until its next delivery, and
    # cancel still revokes it: its entry is not found, but the job is gone from data.
    jobs = make_jobs()
    await jobs.enqueue(Job(id="j", name="n", queue="q", idempotency_key="key-j"))
    (delivery,) = await jobs.claim(["q"], max_jobs=1, wait=0)
    client = redis.Redis.from_url(redis_url)
    try:
        client.hdel(f"{redis_prefix}:jobs:leases", "j")
    finally:
        client.close()
    assert await jobs.job_state("key-j") is JobState.QUEUED
    assert await jobs.cancel("key-j")
    assert not await jobs.complete(delivery)  # the job is gone; its entry was dropped
