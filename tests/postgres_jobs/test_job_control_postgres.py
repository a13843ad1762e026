"""`PostgresJobs` as a `JobControl` beyond the conformance suite (rule PJ8): the upgrade
of a table made before the ``cancelled`` state, and the cleanup of cancelled rows."""

from __future__ import annotations

import trio
from psycopg import sql

from postgres._helpers import sync_connect
from trio_sched.jobs import Job, JobControl, JobState

from .conftest import MakeJobs


def _state_check(url: str, table: str) -> list[str]:
    with sync_connect(url) as conn:
        rows = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = to_regclass(%s) AND contype = 'c'",
            (table,),
        ).fetchall()
    return [str(row[0]) for row in rows]


async def test_an_earlier_table_is_upgraded_in_place(
    make_jobs: MakeJobs, postgres_url: str, jobs_table: str
) -> None:
    first = make_jobs()
    await first.ensure_schema()
    await first.aclose()
    # Make it the table of an earlier trio-sched: the state check without 'cancelled',
    # no cancelled index, and a job waiting in it.
    with sync_connect(postgres_url) as conn:
        (name,) = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'c'",
            (jobs_table,),
        ).fetchone() or ("",)
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} DROP CONSTRAINT {}, ADD CONSTRAINT {}"
                " CHECK (state IN ('ready', 'leased', 'dead', 'done'))"
            ).format(sql.Identifier(jobs_table), sql.Identifier(name), sql.Identifier(name))
        )
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(f"{jobs_table}_cancelled_idx")))
    assert not any("cancelled" in text for text in _state_check(postgres_url, jobs_table))
    with sync_connect(postgres_url) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, queue, name, payload, headers, content_type,"
                " idempotency_key, attempt, available_at)"
                " VALUES ('old', 'q', 'n', '', '{{}}', 'application/json', 'old-key', 1, now())"
            ).format(sql.Identifier(jobs_table))
        )
    jobs = make_jobs()
    assert isinstance(jobs, JobControl)
    assert await jobs.job_state("old-key") is JobState.QUEUED  # the first call upgrades
    checks = _state_check(postgres_url, jobs_table)
    assert len(checks) == 1, checks
    assert "cancelled" in checks[0], checks
    assert await jobs.cancel("old-key") is True
    assert await jobs.job_state("old-key") is JobState.CANCELLED
    assert not await jobs.claim(["q"], max_jobs=5, wait=0)
    # A second start finds nothing to upgrade and works the same.
    again = make_jobs()
    await again.ensure_schema()
    assert _state_check(postgres_url, jobs_table) == checks
    assert await again.job_state("old-key") is JobState.CANCELLED


async def test_cancelled_rows_are_cleaned_up_after_the_retention(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(dedupe_retention=0.05, cleanup_interval=None)
    await jobs.enqueue(Job(id="a", name="n", queue="q", idempotency_key="key-a"))
    assert await jobs.cancel("key-a") is True
    assert await jobs.cleanup_done() == 0  # remembered for dedupe_retention (JC4)
    assert await jobs.job_state("key-a") is JobState.CANCELLED
    await trio.sleep(0.1)
    assert await jobs.cleanup_done() == 1
    assert await jobs.job_state("key-a") is JobState.UNKNOWN
    await jobs.enqueue(Job(id="b", name="n", queue="q", idempotency_key="key-a"))
    assert await jobs.job_state("key-a") is JobState.QUEUED
