"""`PostgresJobs.enqueue_many` beyond the conformance suite (PJ3): duplicates inside a
batch decided in call order, one transaction for several statements, one NOTIFY per
queue, per-job entries with `enqueue`'s messages."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
import trio
import trio.testing
from psycopg import sql

from trio_sched import ConflictError, InvalidArgumentError
from trio_sched.jobs import BatchJobsRuntime, Job
from trio_sched.jobs import _postgres_enqueue as postgres_enqueue
from trio_sched.jobs import postgres as postgres_jobs
from trio_sched.jobs._job import restored_job

from .conftest import MakeJobs


def _job(i: int | str, *, queue: str = "q", **fields: Any) -> Job:
    return dataclasses.replace(Job(id=f"job-{i}", name="work", queue=queue), **fields)


def _unchecked(i: int | str, **fields: Any) -> Job:
    """A job with text `Job` itself refuses (NUL, lone surrogates), built without its
    check, as a job made some other way would be: the runtime must refuse it too."""
    values = {f.name: getattr(_job(0), f.name) for f in dataclasses.fields(Job)}
    values.update(id=f"job-{i}", **fields)
    with pytest.raises(InvalidArgumentError):
        Job(**values)
    return restored_job(**values)


async def test_is_a_batch_jobs_runtime(make_jobs: MakeJobs) -> None:
    assert isinstance(make_jobs(), BatchJobsRuntime)


async def test_a_batch_is_one_statement(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    assert await jobs.enqueue_many([_job(0)]) == [None]  # schema and amortised cleanup
    batch = [_job(i, idempotency_key=f"k{i}") for i in range(1, 301)]
    before = jobs.statistics().driver.round_trips
    assert await jobs.enqueue_many(batch) == [None] * len(batch)
    assert jobs.statistics().driver.round_trips - before == 1
    assert (await jobs.queue_statistics("q")).ready == len(batch) + 1
    # Enqueued again: all refused, named in one more read-only statement.
    before = jobs.statistics().driver.round_trips
    again = await jobs.enqueue_many(batch)
    assert jobs.statistics().driver.round_trips - before == 2
    assert [str(r) for r in again] == [
        f"a job with id {job.id!r} is already stored" for job in batch
    ]


async def test_duplicates_inside_a_batch(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    batch = [
        _job("a", idempotency_key="k"),
        _job("b", idempotency_key="k"),  # the key of job-a
        _job("a", idempotency_key="k2"),  # the id of job-a
        _job("d"),
    ]
    results = await jobs.enqueue_many(batch)
    assert results[0] is None
    assert results[3] is None
    assert str(results[1]) == "duplicate idempotency key 'k': job 'job-a' has it"
    assert str(results[2]) == "a job with id 'job-a' is already stored"
    assert all(isinstance(results[i], ConflictError) for i in (1, 2))
    assert await jobs.get("job-a") == batch[0]
    assert await jobs.get("job-b") is None
    stats = jobs.statistics()
    assert (stats.enqueued, stats.duplicates) == (2, 2)
    # The same messages as one enqueue per job.
    for index in (1, 2):
        with pytest.raises(ConflictError) as alone:
            await jobs.enqueue(batch[index])
        assert str(alone.value) == str(results[index])


async def test_the_earlier_job_wins_whatever_the_insert_order(make_jobs: MakeJobs) -> None:
    # Rows are inserted sorted by key; "k1" sorts before "k9", yet the job first in the
    # call is the one stored and the later one is the conflict.
    jobs = make_jobs()
    first, later = _job("x", idempotency_key="k9"), _job("x", idempotency_key="k1")
    results = await jobs.enqueue_many([first, later])
    assert results[0] is None
    assert str(results[1]) == "a job with id 'job-x' is already stored"
    assert await jobs.get("job-x") == first


async def test_a_job_whose_earlier_twin_was_refused_is_stored(make_jobs: MakeJobs) -> None:
    # One enqueue per job in order: job-y (key k1) is refused, so its id is still free
    # for the next job with that id.
    jobs = make_jobs()
    await jobs.enqueue(_job("x", idempotency_key="k1"))
    refused, stored = _job("y", idempotency_key="k1"), _job("y", idempotency_key="k2")
    results = await jobs.enqueue_many([refused, stored])
    assert str(results[0]) == "duplicate idempotency key 'k1': job 'job-x' has it"
    assert results[1] is None
    assert await jobs.get("job-y") == stored


async def test_several_statements_are_one_transaction(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_enqueue, "ENQUEUE_CHUNK", 2)
    jobs = make_jobs()
    batch = [_job(i, idempotency_key=f"k{i}") for i in range(5)]
    # The last row (by key) fails on the server in the third statement: out of the
    # integer range, which the client-side check (turned off here) would refuse.
    monkeypatch.setattr(postgres_enqueue, "check_job", lambda job: None)
    batch[4] = dataclasses.replace(batch[4], attempt=2**40)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        await jobs.enqueue_many(batch)
    for job in batch:
        assert await jobs.get(job.id) is None  # the first statements were rolled back
    monkeypatch.undo()
    monkeypatch.setattr(postgres_enqueue, "ENQUEUE_CHUNK", 2)
    before = jobs.statistics().driver.round_trips
    assert await jobs.enqueue_many(batch[:4]) == [None] * 4
    assert jobs.statistics().driver.round_trips - before == 2  # 2 INSERT statements
    assert [await jobs.get(job.id) for job in batch[:4]] == batch[:4]


async def test_one_notify_per_queue(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setattr(postgres_enqueue, "ENQUEUE_CHUNK", 2)
    jobs = make_jobs()
    await jobs.ensure_schema()
    batch = [_job(i, queue="q1" if i % 3 else "q2") for i in range(7)]
    batch.append(_job(0, queue="q3"))  # a duplicate id: refused, wakes nobody
    listener = await trio.to_thread.run_sync(lambda: psycopg.connect(postgres_url, autocommit=True))
    try:
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(jobs.channel))
        await trio.to_thread.run_sync(listener.execute, listen)
        results = await jobs.enqueue_many(batch)
        assert results[:7] == [None] * 7
        assert isinstance(results[7], ConflictError)
        # Sent at commit, before enqueue_many returned; then wait a little for more.
        notes = await trio.to_thread.run_sync(lambda: list(listener.notifies(timeout=0.5)))
    finally:
        listener.close()
    payloads = Counter(note.payload for note in notes)
    assert payloads == {"q1": 1, "q2": 1}


async def test_jobs_postgres_cannot_store_are_refused_alone(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    bad = [
        _job(1, run_at=datetime(2026, 1, 1)),  # naive
        _unchecked("nul\x00"),
        _unchecked(2, headers={"x": "a\x00b"}),  # jsonb refuses \u0000
        _job(3, attempt=2**31),
        _job(4, fencing_token=2**63),
        _unchecked(5, tenant_id="lone \ud800 surrogate"),
        _job(6, queue=""),
    ]
    good = _job(7, run_at=datetime.now(UTC) + timedelta(hours=1))
    results = await jobs.enqueue_many([*bad, good])
    assert all(isinstance(r, InvalidArgumentError) for r in results[:-1]), results
    assert results[-1] is None
    assert await jobs.get(good.id) == good
    stats = jobs.statistics()
    assert (stats.enqueued, stats.delayed) == (1, 1)
    for job in bad:  # enqueue refuses them the same way, before any statement
        with pytest.raises(InvalidArgumentError):
            await jobs.enqueue(job)


async def test_an_empty_batch_is_a_checkpoint_without_a_statement(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    with trio.testing.assert_checkpoints():
        assert await jobs.enqueue_many([]) == []
    assert jobs.statistics().driver.round_trips == 0


async def test_racing_batches_of_the_same_keys_do_not_deadlock(make_jobs: MakeJobs) -> None:
    # Two scheduler instances enqueue one burst's occurrences in opposite orders. Each
    # inserts in key order, so one waits for the other instead of both waiting for
    # each other (a deadlock Postgres would break by failing one call after a second).
    count = 3000
    batch = [_job(i, idempotency_key=f"k{i:05}") for i in range(count)]
    first, second = make_jobs(), make_jobs()
    for jobs in (first, second):  # connected, schema known: the two calls start together
        await jobs.ensure_schema()
        await jobs.health_check()
    outcomes: dict[str, list[Exception | None]] = {}

    async def enqueue(name: str, jobs: postgres_jobs.PostgresJobs, order: list[Job]) -> None:
        outcomes[name] = await jobs.enqueue_many(order)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(enqueue, "forward", first, batch)
        nursery.start_soon(enqueue, "backward", second, batch[::-1])
    forward, backward = outcomes["forward"], outcomes["backward"][::-1]
    for one, other in zip(forward, backward, strict=True):
        assert (one is None) != (other is None)  # each job stored by exactly one call
        assert isinstance(one or other, ConflictError)
    assert (await first.queue_statistics("q")).ready == count


@pytest.mark.parametrize(
    "batch",
    [
        [_job(1), _job(2)],  # every optional field None in every job
        [_job(1, fencing_token=2**62, attempt=2**31 - 1), _job(2, fencing_token=-5, attempt=0)],
        [
            _job(1),
            _job(
                "ü☃",
                tenant_id="t",
                idempotency_key="k☃",
                headers={"ä": 'q"u\\o{te}'},
                payload=bytearray(b"\x00\xff"),
                run_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5))),
                created_at=datetime.now(UTC),
            ),
        ],
    ],
    ids=["all-none", "int-sizes", "none-then-values"],
)
async def test_binary_arrays_carry_every_value(make_jobs: MakeJobs, batch: list[Job]) -> None:
    # The arrays travel in binary: a column None in every job, ints of several sizes
    # and text needing quotes in the text form must all come back as enqueued.
    jobs = make_jobs()
    assert await jobs.enqueue_many(batch) == [None] * len(batch)
    assert [await jobs.get(job.id) for job in batch] == batch
