"""Crash test on Redis: two worker processes on one queue, one SIGKILLed mid-job (the
scenario and its checks are in ``tests/jobs/_crash.py``)."""

from __future__ import annotations

from pathlib import Path

from jobs._crash import sigkilled_worker_loses_no_job

from .conftest import MakeJobs


async def test_sigkilled_worker_loses_no_job(
    make_jobs: MakeJobs, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    jobs = make_jobs(visibility_timeout=1.0, max_attempts=3)
    await sigkilled_worker_loses_no_job(jobs, "redis", redis_url, redis_prefix, tmp_path)
    stats = await jobs.queue_statistics("q")
    assert (stats.stream, stats.leased, stats.delayed) == (0, 0, 0)
