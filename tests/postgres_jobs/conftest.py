"""Fixtures for the Postgres jobs tests.

The server fixtures (``postgres_url``: env URL, else 127.0.0.1:5432/test, else a
throwaway pgserver; never skipped; ``tables``: random table names dropped at the end of
the session) are the ones of ``tests/postgres``, imported, not copied. Every test gets
its own jobs table, so queue names may repeat across tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from postgres.conftest import Tables, postgres_url, tables
from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig

__all__ = ["MakeJobs", "jobs_table", "make_jobs", "postgres_url", "tables"]

MakeJobs = Callable[..., PostgresJobs]


@pytest.fixture
def jobs_table(tables: Tables) -> str:
    """A fresh jobs table name for this test (created on first use, dropped at the end
    of the session)."""
    return tables.new("trio_sched_jobs")


@pytest.fixture
async def make_jobs(postgres_url: str, jobs_table: str) -> AsyncIterator[MakeJobs]:
    """``make_jobs(**config)``: a `PostgresJobs` on the test's table with short timeouts
    (visibility 1 s, operation 3 s, 3 attempts); every one made is closed after the
    test."""
    made: list[PostgresJobs] = []

    def make(**overrides: object) -> PostgresJobs:
        options: dict[str, object] = {
            "url": postgres_url,
            "table": jobs_table,
            "visibility_timeout": 1.0,
            "operation_timeout": 3.0,
            "max_attempts": 3,
        }
        options.update(overrides)
        jobs = PostgresJobs(PostgresJobsConfig(**options))  # type: ignore[arg-type]
        made.append(jobs)
        return jobs

    yield make
    for jobs in made:
        await jobs.aclose()
