"""`open_worker` on `RedisJobs` against a real server (rules W1-W9, WK1-WK7, RJ1-RJ6).

Real time with short timeouts (visibility 1 s or less); waits poll the statistics with a
deadline (`_until`), so a broken feature fails rather than hangs.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
import trio

from trio_sched import ConflictError, InvalidArgumentError, ValidationError
from trio_sched.jobs import ConsumableJobs, Job, current_job, open_worker
from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

from .conftest import MakeJobs

FAST = {"poll_wait": 0.2, "retry_backoff": 0.05, "max_retry_backoff": 0.2}


def _job(i: int, *, name: str = "work", queue: str = "q", **fields: object) -> Job:
    return dataclasses.replace(Job(id=f"job-{i}", name=name, queue=queue), **fields)


async def _never(job: Job) -> None:  # a handler for a name no job has
    raise AssertionError(f"unexpected job {job.id}")


async def _until(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - statistics have no event to wait on
            await trio.sleep(0.01)


def test_import_jobs_does_not_import_redis() -> None:
    code = "import sys, trio_sched.jobs; assert 'redis' not in sys.modules, 'redis imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_validates_and_redacts() -> None:
    config = RedisJobsConfig(url="redis://user:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in repr(RedisJobs(config))
    for bad in ({"visibility_timeout": 0}, {"max_attempts": 0}, {"url": "http://x"}):
        with pytest.raises(ValidationError):
            RedisJobsConfig(**bad)  # type: ignore[arg-type]


async def test_is_consumable(make_jobs: MakeJobs) -> None:
    assert isinstance(make_jobs(), ConsumableJobs)


async def test_naive_run_at_is_refused(make_jobs: MakeJobs) -> None:
    with pytest.raises(InvalidArgumentError):
        await make_jobs().enqueue(_job(1, run_at=datetime(2026, 1, 1)))


async def test_same_job_id_twice_is_a_conflict(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    await jobs.enqueue(_job(1))
    with pytest.raises(ConflictError):
        await jobs.enqueue(_job(1))
    assert jobs.statistics().duplicates == 1


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
    assert (stats.stream, stats.leased, stats.delayed, stats.dead) == (0, 0, 0, 0)
    assert await jobs.get("job-0") is None  # completed jobs leave the data hash


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
        assert (letter.job.id, letter.job.attempt) == ("job-1", 3)
        assert letter.error == "RuntimeError: always fails"
        assert (await jobs.queue_statistics("q")).dead == 1
        healed = True
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
    assert await jobs.redrive("q") == 1  # all
    assert (await jobs.queue_statistics("q")).stream == 1


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
    assert await survivor.get("job-1") is None


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
    async with open_worker(jobs, {"work": work}, queues=["q"], **FAST):
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
    assert await jobs.get("job-1") is None


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
    assert (stats.stream, stats.leased) == (1, 0)

    async def quick(job: Job) -> None:
        attempts.append(job.attempt)

    async with open_worker(jobs, {"stuck": quick}, queues=["q"], **FAST) as second:
        await _until(lambda: second.statistics().succeeded == 1, limit=5.0)
    assert attempts == [1, 1]  # the released attempt is not counted


async def test_cancelled_blocking_claim_gives_its_jobs_back(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(visibility_timeout=30.0)
    await jobs.claim(["q"], max_jobs=1, wait=0)  # creates the group
    with trio.move_on_after(0.1):
        await jobs.claim(["q"], max_jobs=1, wait=0.8)  # abandoned mid-XREADGROUP BLOCK
    # The abandoned read is still blocked on the server: it gets this job, then its undo
    # gives it back (RJ3), instead of leaving it leased for the visibility timeout.
    await jobs.enqueue(_job(1))
    other = make_jobs(visibility_timeout=30.0)
    got = []
    with trio.fail_after(5):
        while not got:
            got = await other.claim(["q"], max_jobs=1, wait=0.2)
    assert (got[0].job.id, got[0].job.attempt) == ("job-1", 1)
    assert jobs.statistics().driver.undos >= 1


async def test_closed_runtime_refuses(make_jobs: MakeJobs) -> None:
    from trio_sched import ClosedError

    jobs = make_jobs()
    await jobs.aclose()
    await jobs.aclose()
    with pytest.raises(ClosedError):
        await jobs.claim(["q"], max_jobs=1, wait=0)


async def test_a_blocking_claim_over_several_queues_takes_at_most_max_jobs(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_prefix: str
) -> None:
    # W1: XREADGROUP's COUNT is per stream, so a blocking read over two queues could
    # return twice max_jobs (seen as 5 handlers on a worker with concurrency 4). Force the
    # blocking path: the first script reports nothing due although both queues hold jobs.
    import trio_sched.jobs._redis_claim as redis_claim

    jobs = make_jobs()
    assert await jobs.claim(["a", "b"], max_jobs=1, wait=0) == []  # creates the groups
    for i in range(3):
        await jobs.enqueue(_job(i, queue="a"))
        await jobs.enqueue(_job(10 + i, queue="b"))

    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        epoch = client.get(f"{redis_prefix}:jobs:epoch")  # RJ7: the claim script reads it

    class NothingDue:
        def run(self, *args: object) -> list[object]:
            return [0, epoch, -1, [0, 0]]

    monkeypatch.setattr(redis_claim, "CLAIM", NothingDue())
    taken = await jobs.claim(["a", "b"], max_jobs=2, wait=1.0)
    assert len(taken) == 2
    monkeypatch.undo()
    rest = await jobs.claim(["a", "b"], max_jobs=10, wait=0)
    ids = sorted(d.job.id for d in [*taken, *rest])
    assert ids == sorted([f"job-{i}" for i in (0, 1, 2, 10, 11, 12)])  # none lost or doubled
    assert all(d.job.attempt == 1 for d in [*taken, *rest])  # given back uncounted
