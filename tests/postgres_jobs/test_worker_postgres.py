"""`open_worker` on `PostgresJobs` against a real server (rules W1-W9, WK1-WK7, PJ1-PJ7).

Real time with short timeouts (visibility 1 s or less); waits poll the statistics with a
deadline (`_until`), so a broken feature fails rather than hangs.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import trio
from psycopg import sql

from trio_sched import ClosedError, ConflictError, InvalidArgumentError, ValidationError
from trio_sched.jobs import ConsumableJobs, Delivery, Job, current_job, open_worker
from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig

from .conftest import MakeJobs

FAST: dict[str, Any] = {"poll_wait": 0.2, "retry_backoff": 0.05, "max_retry_backoff": 0.2}


def _job(i: int, *, name: str = "work", queue: str = "q", **fields: Any) -> Job:
    return dataclasses.replace(Job(id=f"job-{i}", name=name, queue=queue), **fields)


async def _never(job: Job) -> None:  # a handler for a name no job has
    raise AssertionError(f"unexpected job {job.id}")


async def _until(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - statistics have no event to wait on
            await trio.sleep(0.01)


def test_import_jobs_does_not_import_psycopg() -> None:
    code = "import sys, trio_sched.jobs; assert 'psycopg' not in sys.modules, 'psycopg imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_validates_and_redacts() -> None:
    config = PostgresJobsConfig(url="postgresql://user:hunter2@127.0.0.1:5432/test")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in repr(PostgresJobs(config))
    bad: dict[str, Any]
    for bad in (
        {"visibility_timeout": 0},
        {"max_attempts": 0},
        {"poll_interval": float("inf")},
        {"listen": 1},
    ):
        with pytest.raises(ValidationError):
            PostgresJobsConfig(**bad)


@pytest.mark.parametrize(
    "table",
    ["jobs; DROP TABLE x", 'jobs"', "a.b.c", "1jobs", "", "jobs table", "x" * 49],
)
def test_table_name_is_validated(table: str) -> None:
    with pytest.raises(ValidationError):
        PostgresJobsConfig(table=table)


async def test_schema_qualified_table(make_jobs: MakeJobs, jobs_table: str) -> None:
    jobs = make_jobs(table=f"public.{jobs_table}")
    await jobs.enqueue(_job(1))
    (got,) = await jobs.claim(["q"], max_jobs=1, wait=0)
    assert got.job.id == "job-1"


async def test_concurrent_schema_creation(make_jobs: MakeJobs) -> None:
    runtimes = [make_jobs() for _ in range(4)]
    async with trio.open_nursery() as nursery:
        for jobs in runtimes:
            nursery.start_soon(jobs.ensure_schema)
    assert all(jobs.statistics().schema_ready for jobs in runtimes)
    await runtimes[0].enqueue(_job(1))
    assert (await runtimes[3].queue_statistics("q")).ready == 1


async def test_table_dropped_under_us_is_recreated(
    make_jobs: MakeJobs, postgres_url: str, jobs_table: str
) -> None:
    jobs = make_jobs()
    await jobs.enqueue(_job(1))

    def drop() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(jobs_table)))

    await trio.to_thread.run_sync(drop)
    await jobs.enqueue(_job(2))
    assert (await jobs.queue_statistics("q")).ready == 1


async def test_is_consumable(make_jobs: MakeJobs) -> None:
    assert isinstance(make_jobs(), ConsumableJobs)


async def test_naive_run_at_and_huge_fencing_token_are_refused(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    with pytest.raises(InvalidArgumentError):
        await jobs.enqueue(_job(1, run_at=datetime(2026, 1, 1)))
    with pytest.raises(InvalidArgumentError):
        await jobs.enqueue(_job(2, fencing_token=2**63))


async def test_same_job_id_twice_is_a_conflict(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    await jobs.enqueue(_job(1))
    with pytest.raises(ConflictError, match="id 'job-1'"):
        await jobs.enqueue(_job(1))
    assert jobs.statistics().duplicates == 1


async def test_completed_key_is_still_refused(make_jobs: MakeJobs) -> None:
    # PJ3: a re-fire of the same occurrence after the first one completed is refused.
    jobs = make_jobs()
    await jobs.enqueue(_job(1, idempotency_key="task:1000"))
    (delivery,) = await jobs.claim(["q"], max_jobs=1, wait=0)
    assert await jobs.complete(delivery) is True
    with pytest.raises(ConflictError, match="task:1000"):
        await jobs.enqueue(_job(2, idempotency_key="task:1000"))
    stats = await jobs.queue_statistics("q")
    assert (stats.ready, stats.leased, stats.done) == (0, 0, 1)
    assert await jobs.cleanup_done() == 0  # kept for dedupe_retention
    short = make_jobs(dedupe_retention=0.01)
    await trio.sleep(0.05)
    assert await short.cleanup_done() == 1
    await jobs.enqueue(_job(3, idempotency_key="task:1000"))  # forgotten: accepted


async def test_every_job_once_with_bounded_concurrency(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    running = 0
    peak = 0
    seen: list[str] = []

    async def work(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(0.02)
        seen.append(job.id)
        running -= 1

    for i in range(30):
        await jobs.enqueue(_job(i))
    async with open_worker(jobs, {"work": work}, queues=["q"], concurrency=4, **FAST) as w:
        await _until(lambda: len(seen) == 30)
    assert sorted(seen) == sorted(f"job-{i}" for i in range(30))
    assert 1 <= peak <= 4
    assert (w.statistics().succeeded, w.statistics().failed) == (30, 0)
    stats = await jobs.queue_statistics("q")
    assert (stats.ready, stats.delayed, stats.leased, stats.dead) == (0, 0, 0, 0)
    assert await jobs.get("job-0") is None  # completed jobs without a key are deleted


async def test_two_workers_share_a_queue_without_duplicates(make_jobs: MakeJobs) -> None:
    a, b = make_jobs(), make_jobs()
    seen: list[str] = []

    async def work(job: Job) -> None:
        await trio.sleep(0.005)
        seen.append(job.id)

    for i in range(60):
        await a.enqueue(_job(i))
    async with (
        open_worker(a, {"work": work}, queues=["q"], concurrency=4, **FAST) as wa,
        open_worker(b, {"work": work}, queues=["q"], concurrency=4, **FAST) as wb,
    ):
        await _until(lambda: len(seen) >= 60)
    assert sorted(seen) == sorted(f"job-{i}" for i in range(60))  # SKIP LOCKED: no twice
    assert wa.statistics().succeeded + wb.statistics().succeeded == 60


async def test_handler_sees_every_field_and_its_context(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    got: list[tuple[Job, int, str | None]] = []

    async def work(job: Job) -> None:
        context = current_job()
        got.append((job, context.attempt, context.tenant_id))

    job = _job(
        1,
        payload=b"\x00\xff binary",
        headers={"x-trio-sched-task": "t", "x-trio-sched-fencing-token": "7"},
        content_type="application/octet-stream",
        tenant_id="acme",
        idempotency_key="t:1000",
        run_at=datetime(2026, 1, 1, tzinfo=UTC),
        created_at=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        fencing_token=2**60,
    )
    await jobs.enqueue(job)
    async with open_worker(jobs, {"work": work}, queues=["q"], **FAST):
        await _until(lambda: bool(got))
    assert got == [(job, 1, "acme")]


async def test_retry_backoff_dead_letter_and_redrive(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(max_attempts=3)
    attempts: list[int] = []
    healed = False

    async def flaky(job: Job) -> None:
        attempts.append(job.attempt)
        if not healed:
            raise RuntimeError("always fails")

    await jobs.enqueue(_job(1, name="flaky"))
    async with open_worker(jobs, {"flaky": flaky}, queues=["q"], **FAST) as worker:
        await _until(lambda: worker.statistics().dead_lettered == 1)
        assert attempts == [1, 2, 3]
        (letter,) = await jobs.dead_letters("q")
        assert (letter.id, letter.job.id, letter.job.attempt) == ("job-1", "job-1", 3)
        assert letter.error == "RuntimeError: always fails"
        assert letter.failed_at.utcoffset() is not None
        assert (await jobs.queue_statistics("q")).dead == 1
        assert await jobs.get("job-1") is None  # dead letters are not waiting jobs
        healed = True
        assert await jobs.redrive("q", ["no-such-id"]) == 0
        assert await jobs.redrive("q", [letter.id]) == 1
        await _until(lambda: worker.statistics().succeeded == 1)
    assert attempts == [1, 2, 3, 1]  # redriven: back to the enqueued attempt
    assert await jobs.dead_letters("q") == []
    assert (worker.statistics().retried, worker.statistics().failed) == (2, 3)


async def test_unknown_name_goes_to_dead_letters(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(max_attempts=2)
    await jobs.enqueue(_job(1, name="nobody"))
    async with open_worker(jobs, {"somebody": _never}, queues=["q"], **FAST) as worker:
        await _until(lambda: worker.statistics().dead_lettered == 1)
    assert worker.statistics().unknown_name == 2
    (letter,) = await jobs.dead_letters("q")
    assert "no handler for job name 'nobody'" in letter.error
    assert await jobs.dead_letters("other") == []
    assert await jobs.redrive("q") == 1  # all
    assert (await jobs.queue_statistics("q")).ready == 1


async def test_handler_timeout_retries(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    attempts: list[int] = []

    async def slow(job: Job) -> None:
        attempts.append(job.attempt)
        if job.attempt == 1:
            await trio.sleep(30)

    await jobs.enqueue(_job(1, name="slow"))
    async with open_worker(jobs, {"slow": slow}, queues=["q"], handler_timeout=0.2, **FAST) as w:
        await _until(lambda: w.statistics().succeeded == 1)
    assert attempts == [1, 2]
    assert w.statistics().timed_out == 1


async def test_dead_worker_lease_is_redelivered_after_visibility_timeout(
    make_jobs: MakeJobs,
) -> None:
    crashed = make_jobs(visibility_timeout=0.5)
    survivor = make_jobs(visibility_timeout=0.5)
    await crashed.enqueue(_job(1))
    (lost,) = await crashed.claim(["q"], max_jobs=5, wait=0)  # its worker then "dies"
    assert await survivor.claim(["q"], max_jobs=5, wait=0) == []  # leased: not visible
    seen: list[int] = []

    async def work(job: Job) -> None:
        seen.append(job.attempt)

    async with open_worker(survivor, {"work": work}, queues=["q"], **FAST) as worker:
        await _until(lambda: worker.statistics().succeeded == 1)
    assert seen == [2]  # the lost delivery counted as attempt 1 (W2)
    assert await crashed.complete(lost) is False  # stale (W5)
    assert await crashed.extend(lost) is False
    assert await crashed.fail(lost, error="late", retry_in=0) == "stale"
    assert await survivor.get("job-1") is None


async def test_expired_lease_without_attempts_left_is_dead_lettered(make_jobs: MakeJobs) -> None:
    # PJ4: a job that kills its worker on every attempt ends in the dead letters.
    jobs = make_jobs(visibility_timeout=0.2, max_attempts=2)
    await jobs.enqueue(_job(1))
    got: list[Delivery] = []
    with trio.fail_after(10):
        while len(got) < 2:
            got += await jobs.claim(["q"], max_jobs=1, wait=1.0)  # leases left to expire
    assert [d.job.attempt for d in got] == [1, 2]
    with trio.fail_after(10):
        while not await jobs.dead_letters("q"):
            assert await jobs.claim(["q"], max_jobs=1, wait=0.3) == []
    (letter,) = await jobs.dead_letters("q")
    assert letter.job.attempt == 2
    assert "lease expired on attempt 2" in letter.error
    assert jobs.statistics().expired_dead_lettered == 1


async def test_long_handler_keeps_its_lease(make_jobs: MakeJobs) -> None:
    a, b = make_jobs(visibility_timeout=0.4), make_jobs(visibility_timeout=0.4)
    attempts: list[int] = []

    async def long(job: Job) -> None:
        attempts.append(job.attempt)
        await trio.sleep(1.5)  # several visibility timeouts

    await a.enqueue(_job(1, name="long"))
    async with (
        open_worker(a, {"long": long}, queues=["q"], **FAST) as wa,
        open_worker(b, {"long": long}, queues=["q"], **FAST) as wb,
    ):
        await _until(lambda: wa.statistics().succeeded + wb.statistics().succeeded == 1)
    assert attempts == [1]
    assert a.statistics().extended + b.statistics().extended >= 1


async def test_delayed_job_waits_until_run_at(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    handled_at: dict[str, float] = {}

    async def work(job: Job) -> None:
        handled_at[job.id] = time.time()

    due = datetime.now(UTC) + timedelta(seconds=0.8)
    await jobs.enqueue(_job(1, run_at=due))
    await jobs.enqueue(_job(2))
    assert jobs.statistics().delayed == 1
    assert (await jobs.queue_statistics("q")).delayed == 1
    # Long poll settings: the claim must wake for the due time on its own (PJ5).
    async with open_worker(jobs, {"work": work}, queues=["q"], poll_wait=30.0):
        await _until(lambda: len(handled_at) == 2)
    # Not before run_at (server and test share this machine's clock; 5 ms of rounding).
    assert handled_at["job-1"] >= due.timestamp() - 0.005
    assert handled_at["job-2"] < handled_at["job-1"]


async def test_graceful_exit_finishes_in_flight_jobs(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    started = trio.Event()
    done: list[str] = []

    async def work(job: Job) -> None:
        started.set()
        await trio.sleep(0.3)
        done.append(job.id)

    await jobs.enqueue(_job(1))
    async with open_worker(jobs, {"work": work}, queues=["q"], drain_timeout=5.0, **FAST):
        await started.wait()
    assert done == ["job-1"]
    stats = await jobs.queue_statistics("q")
    assert (stats.ready, stats.leased) == (0, 0)


async def test_drain_timeout_releases_for_immediate_redelivery(make_jobs: MakeJobs) -> None:
    # Visibility 30 s: the job comes back at once because it was released, not expired.
    jobs = make_jobs(visibility_timeout=30.0)
    started = trio.Event()
    attempts: list[int] = []

    async def stuck(job: Job) -> None:
        attempts.append(job.attempt)
        started.set()
        await trio.sleep_forever()

    await jobs.enqueue(_job(1, name="stuck"))
    async with open_worker(jobs, {"stuck": stuck}, queues=["q"], drain_timeout=0.2, **FAST) as w:
        await started.wait()
    assert w.statistics().released == 1
    stats = await jobs.queue_statistics("q")
    assert (stats.ready, stats.leased) == (1, 0)

    async def quick(job: Job) -> None:
        attempts.append(job.attempt)

    async with open_worker(jobs, {"stuck": quick}, queues=["q"], **FAST) as second:
        await _until(lambda: second.statistics().succeeded == 1, limit=5.0)
    assert attempts == [1, 1]  # the released attempt is not counted


async def test_notify_wakes_an_idle_worker(make_jobs: MakeJobs) -> None:
    # Poll settings far beyond the test's deadline: only the NOTIFY of the enqueue (from
    # another runtime, as from a scheduler process) can wake the waiting claim in time.
    worker_jobs = make_jobs(poll_interval=60.0)
    producer = make_jobs()
    handled: list[str] = []

    async def work(job: Job) -> None:
        handled.append(job.id)

    async with open_worker(worker_jobs, {"work": work}, queues=["q"], poll_wait=60.0):
        await _until(lambda: worker_jobs.statistics().listening)
        await trio.sleep(0.2)  # let the claim settle into its wait on the empty queue
        await producer.enqueue(_job(1))
        await _until(lambda: handled == ["job-1"])
        # Settle again: a claim still running when job 2 arrives would find it by its
        # query, and the second NOTIFY would wake nobody (that made this test flaky).
        await trio.sleep(0.2)
        await producer.enqueue(_job(2))  # and again, on the same listening connection
        await _until(lambda: handled == ["job-1", "job-2"])
    assert worker_jobs.statistics().notifications >= 2


async def test_without_listen_the_idle_worker_waits_for_its_poll(make_jobs: MakeJobs) -> None:
    # The control for the test above: with listen=False and the same poll settings the
    # job is not picked up (so that test passes because of the NOTIFY).
    worker_jobs = make_jobs(poll_interval=60.0, listen=False)
    handled: list[str] = []

    async def work(job: Job) -> None:
        handled.append(job.id)

    async with open_worker(worker_jobs, {"work": work}, queues=["q"], poll_wait=60.0) as w:
        await trio.sleep(0.2)
        await make_jobs().enqueue(_job(1))
        await trio.sleep(1.0)
        assert handled == []
        w.stop()
    assert worker_jobs.statistics().notifications == 0


async def test_retry_notifies_a_waiting_claim(make_jobs: MakeJobs) -> None:
    # A claim waiting on an empty queue learns of a retry scheduled later by another
    # runtime (NOTIFY, then the due time of the retry bounds its wait).
    waiting = make_jobs(poll_interval=60.0)
    other = make_jobs()
    await other.enqueue(_job(1))
    (delivery,) = await other.claim(["q"], max_jobs=1, wait=0)
    got: list[int] = []

    async def wait_for_it() -> None:
        got.extend(d.job.attempt for d in await waiting.claim(["q"], max_jobs=1, wait=60.0))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_it)
            await _until(lambda: waiting.statistics().listening)
            await trio.sleep(0.2)
            assert await other.fail(delivery, error="again", retry_in=0.3) == "retried"
    assert got == [2]


async def test_cancelled_claim_gives_its_jobs_back(
    make_jobs: MakeJobs, postgres_url: str, jobs_table: str
) -> None:
    jobs = make_jobs(visibility_timeout=30.0)
    await jobs.enqueue(_job(1))
    locked = trio.Event()
    unlock = threading.Event()

    def hold_table_lock() -> None:
        with psycopg.connect(postgres_url) as conn:
            conn.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(jobs_table))
            )
            trio.from_thread.run_sync(locked.set)
            unlock.wait(10)
            conn.rollback()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, hold_table_lock)
        await locked.wait()
        with trio.move_on_after(0.3) as scope:
            await jobs.claim(["q"], max_jobs=1, wait=0)  # blocked behind the lock
        assert scope.cancelled_caught
        unlock.set()  # the abandoned statement now takes the job; its undo gives it back
    other = make_jobs(visibility_timeout=30.0)
    got: list[Delivery] = []
    with trio.fail_after(10):
        while not got:
            got = await other.claim(["q"], max_jobs=1, wait=0.2)
    assert (got[0].job.id, got[0].job.attempt) == ("job-1", 1)
    assert jobs.statistics().driver.undos >= 1


async def test_closed_runtime_refuses(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    await jobs.claim(["q"], max_jobs=1, wait=0.05)  # opens the listening connection
    await jobs.aclose()
    await jobs.aclose()
    assert jobs.statistics().closed
    assert not jobs.statistics().listening
    with pytest.raises(ClosedError):
        await jobs.claim(["q"], max_jobs=1, wait=0)
    with pytest.raises(ClosedError):
        await jobs.enqueue(_job(1))


async def test_aclose_wakes_a_waiting_claim(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(poll_interval=60.0)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def claim() -> None:
                with pytest.raises(ClosedError):
                    await jobs.claim(["q"], max_jobs=1, wait=60.0)

            nursery.start_soon(claim)
            await _until(lambda: jobs.statistics().listening)
            await trio.sleep(0.1)
            await jobs.aclose()
