"""`open_worker` on `MemoryJobs` (rules WK1-WK7 of trio_sched.jobs._worker, J8-J9 of
trio_sched.jobs.memory), on Trio's `MockClock` with autojump: waits cost no real time."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from trio_sched import ClosedError, ConflictError, InvalidArgumentError, Task
from trio_sched.jobs import ConsumableJobs, Job, MemoryJobs, Worker, current_job, open_worker


def _job(i: int, *, name: str = "work", queue: str = "q", **fields: object) -> Job:
    return dataclasses.replace(Job(id=f"job-{i}", name=name, queue=queue), **fields)


async def _never(job: Job) -> None:  # a handler for a name no job has
    raise AssertionError(f"unexpected job {job.id}")


async def _until(predicate: object, step: float = 0.01) -> None:
    """Poll `predicate` (statistics have no event to wait on); free on the MockClock."""
    assert callable(predicate)
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(step)


def test_memory_jobs_is_consumable() -> None:
    assert isinstance(MemoryJobs(), ConsumableJobs)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"queues": []}, "queues"),
        ({"queues": "q"}, "queues"),
        ({"handler_timeout": 0}, "handler_timeout"),
        ({"handler_timeout": 10**400}, "handler_timeout must be a finite"),
        ({"drain_timeout": -(10**400)}, "drain_timeout"),
        ({"handlers": {}}, "handlers is empty"),
        ({"handlers": [("work", _never)]}, "handlers must be a mapping"),
        ({"handlers": {"work": "not a function"}}, "'work' is not callable"),
        ({"handlers": {"": _never}}, "non-empty str"),
    ],
)
def test_invalid_worker_arguments(kwargs: dict[str, object], words: str) -> None:
    options: dict[str, object] = {"queues": ["q"], "handlers": {"work": _never}} | kwargs
    handlers = options.pop("handlers")
    with pytest.raises(InvalidArgumentError, match=words):
        open_worker(MemoryJobs(), handlers, **options)  # type: ignore[arg-type]


async def test_queues_default_to_the_default_task_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs()
    seen: list[str] = []

    async def work(job: Job) -> None:
        seen.append(job.id)

    await jobs.enqueue(Job(id="j", name="work", queue=Task(name="t", schedule="@daily").queue))
    async with open_worker(jobs, {"work": work}) as worker:
        await _until(lambda: seen)
    assert worker.queues == ("default",)
    assert seen == ["j"]


async def test_an_unknown_job_name_is_warned_about_once_by_name(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = MemoryJobs(max_attempts=2)
    for i in range(3):
        await jobs.enqueue(_job(i, name="buld_report"))
    await jobs.enqueue(_job(9, name="other_typo"))
    with caplog.at_level("WARNING", logger="trio_sched.jobs.worker"):
        async with open_worker(
            jobs, {"build_report": _never}, queues=["q"], retry_backoff=0.5
        ) as worker:
            await _until(lambda: worker.statistics().dead_lettered == 4)
    assert worker.statistics().unknown_name == 8
    warnings = sorted(r.getMessage() for r in caplog.records if "Warned once" in r.message)
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("no handler for job name 'buld_report'")
    assert warnings[1].startswith("no handler for job name 'other_typo'")
    assert all("which handles ['build_report']" in w for w in warnings)


@pytest.mark.parametrize("closed", [False, True])
async def test_a_claim_refused_for_good_ends_the_worker_instead_of_spinning(
    autojump_clock: trio.testing.MockClock, closed: bool
) -> None:
    jobs = MemoryJobs()
    if closed:
        await jobs.aclose()
        expected: type[Exception] = ClosedError
    else:
        jobs.subscribe("q", _never)  # a push handler already consumes "q" (J8)
        expected = ConflictError
    # Before: logged, counted in claim_errors and retried every error_backoff, forever.
    with pytest.raises(expected):
        async with open_worker(jobs, {"work": _never}, queues=["q"]):
            await trio.sleep(3600)


async def test_every_job_handled_once_with_bounded_concurrency(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs()
    running = 0
    peak = 0
    seen: list[str] = []

    async def work(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(1)
        seen.append(job.id)
        running -= 1

    for i in range(20):
        await jobs.enqueue(_job(i))
    async with open_worker(jobs, {"work": work}, queues=["q"], concurrency=3) as worker:
        await _until(lambda: len(seen) == 20)
    assert sorted(seen) == sorted(f"job-{i}" for i in range(20))
    assert peak == 3
    stats = worker.statistics()
    assert (stats.taken, stats.succeeded, stats.failed, stats.in_flight) == (20, 20, 0, 0)
    assert jobs.statistics().completed == 20


async def test_handler_gets_attempt_headers_tenant_and_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs()
    got: list[tuple[Job, int, str | None]] = []

    async def work(job: Job) -> None:
        context = current_job()
        got.append((job, context.attempt, context.tenant_id))

    job = _job(1, headers={"x-trio-sched-task": "t"}, tenant_id="acme", attempt=2)
    await jobs.enqueue(job)
    async with open_worker(jobs, {"work": work}, queues=["q"]):
        await _until(lambda: got)
    assert got == [(job, 2, "acme")]
    with pytest.raises(LookupError):
        current_job()


async def test_failures_retry_with_backoff_then_dead_letter_then_redrive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs(max_attempts=3)
    calls: list[tuple[int, float]] = []
    healed = False

    async def flaky(job: Job) -> None:
        calls.append((job.attempt, trio.current_time()))
        if not healed:
            raise RuntimeError("boom")

    await jobs.enqueue(_job(1, name="flaky"))
    async with open_worker(
        jobs, {"flaky": flaky}, queues=["q"], retry_backoff=10.0, max_retry_backoff=100.0
    ) as worker:
        await _until(lambda: worker.statistics().dead_lettered == 1)
        assert [attempt for attempt, _ in calls] == [1, 2, 3]
        # Equal jitter: retry n waits between half and all of 10 * 2**(n-1) seconds.
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(calls)]
        assert 5.0 <= gaps[0] <= 10.0 + 0.1
        assert 10.0 <= gaps[1] <= 20.0 + 0.1
        letters = await jobs.dead_letters("q")
        assert [(d.job.id, d.job.attempt) for d in letters] == [("job-1", 3)]
        assert "RuntimeError: boom" in letters[0].error
        healed = True
        assert await jobs.redrive("q") == 1
        await _until(lambda: worker.statistics().succeeded == 1)
    assert calls[-1][0] == 1  # a redriven job starts again at its enqueued attempt
    assert await jobs.dead_letters("q") == []
    stats = worker.statistics()
    assert (stats.failed, stats.retried, stats.dead_lettered) == (3, 2, 1)


async def test_unknown_name_is_a_failure_not_a_drop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs(max_attempts=2)
    await jobs.enqueue(_job(1, name="nobody"))
    async with open_worker(jobs, {"somebody": _never}, queues=["q"], retry_backoff=0.5) as worker:
        await _until(lambda: worker.statistics().dead_lettered == 1)
    assert worker.statistics().unknown_name == 2
    (letter,) = await jobs.dead_letters("q")
    assert "no handler for job name 'nobody'" in letter.error


async def test_handler_timeout_fails_the_attempt(autojump_clock: trio.testing.MockClock) -> None:
    jobs = MemoryJobs(max_attempts=2)
    attempts: list[int] = []

    async def slow(job: Job) -> None:
        attempts.append(job.attempt)
        if job.attempt == 1:
            await trio.sleep(100)

    await jobs.enqueue(_job(1, name="slow"))
    async with open_worker(jobs, {"slow": slow}, queues=["q"], handler_timeout=5.0) as worker:
        await _until(lambda: worker.statistics().succeeded == 1)
    assert attempts == [1, 2]
    assert worker.statistics().timed_out == 1


async def test_graceful_exit_lets_in_flight_jobs_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs()
    done: list[str] = []
    started = trio.Event()

    async def work(job: Job) -> None:
        started.set()
        await trio.sleep(3)
        done.append(job.id)

    await jobs.enqueue(_job(1))
    async with open_worker(jobs, {"work": work}, queues=["q"], drain_timeout=10.0):
        await started.wait()
    assert done == ["job-1"]
    assert jobs.statistics().completed == 1


async def test_drain_timeout_releases_unfinished_jobs_for_redelivery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs()
    started = trio.Event()
    attempts: list[int] = []

    async def stuck(job: Job) -> None:
        attempts.append(job.attempt)
        started.set()
        await trio.sleep_forever()

    await jobs.enqueue(_job(1, name="stuck"))
    async with open_worker(jobs, {"stuck": stuck}, queues=["q"], drain_timeout=2.0) as first:
        await started.wait()
    assert first.statistics().released == 1
    assert jobs.statistics().pending == 1  # back on the queue, not lost

    async def quick(job: Job) -> None:
        attempts.append(job.attempt)

    async with open_worker(jobs, {"stuck": quick}, queues=["q"]) as second:
        await _until(lambda: second.statistics().succeeded == 1)
    assert attempts == [1, 1]  # a released attempt is not counted (W7)


async def test_block_error_releases_without_draining(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs()
    started = trio.Event()

    async def slow(job: Job) -> None:
        started.set()
        await trio.sleep(1000)

    await jobs.enqueue(_job(1, name="slow"))
    before = trio.current_time()

    async def run() -> None:
        async with open_worker(jobs, {"slow": slow}, queues=["q"], drain_timeout=500):
            await started.wait()
            raise KeyError("boom")  # the block's own error comes out unwrapped

    with pytest.raises(KeyError):
        await run()
    assert trio.current_time() - before < 500
    assert jobs.statistics().pending == 1


async def test_expired_lease_is_redelivered(autojump_clock: trio.testing.MockClock) -> None:
    # A claim that is never completed (its worker "died") comes back after the
    # visibility timeout, as the next attempt.
    jobs = MemoryJobs(visibility_timeout=5.0)
    await jobs.enqueue(_job(1))
    (lost,) = await jobs.claim(["q"], max_jobs=10, wait=0)
    assert await jobs.claim(["q"], max_jobs=10, wait=1.0) == []
    (again,) = await jobs.claim(["q"], max_jobs=10, wait=10.0)
    assert (again.job.id, again.job.attempt) == ("job-1", 2)
    assert await jobs.complete(lost) is False  # stale: the lease moved on
    assert await jobs.extend(lost) is False
    assert await jobs.complete(again) is True


async def test_a_job_whose_leases_keep_expiring_is_dead_lettered_unrun(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # W2/WK2: a job that kills its worker every time (simulated: claimed, never
    # finished, max_attempts times) must end in the dead letters, not loop forever.
    jobs = MemoryJobs(visibility_timeout=5.0, max_attempts=3)
    await jobs.enqueue(_job(1))
    for attempt in (1, 2, 3):
        (lost,) = await jobs.claim(["q"], max_jobs=1, wait=10.0)
        assert lost.job.attempt == attempt
    ran: list[int] = []

    async def handler(job: Job) -> None:
        ran.append(job.attempt)

    async with open_worker(jobs, {"work": handler}, queues=["q"]) as worker:
        with trio.move_on_after(120):  # virtual seconds: ample for one claim
            await _until(lambda: worker.statistics().dead_lettered == 1)
    assert ran == []  # attempt 4 > max_attempts: not run again
    assert worker.statistics().exhausted == 1
    (letter,) = await jobs.dead_letters("q")
    assert letter.job.id == "job-1"
    assert "exceeds max_attempts=3" in letter.error


async def test_long_handler_keeps_its_lease(autojump_clock: trio.testing.MockClock) -> None:
    jobs = MemoryJobs(visibility_timeout=3.0)
    attempts: list[int] = []

    async def long(job: Job) -> None:
        attempts.append(job.attempt)
        await trio.sleep(20)  # far beyond the visibility timeout

    await jobs.enqueue(_job(1, name="long"))
    async with open_worker(jobs, {"long": long}, queues=["q"], concurrency=2) as worker:
        await _until(lambda: worker.statistics().succeeded == 1)
    assert attempts == [1]  # never redelivered while it ran
    assert worker.statistics().lease_lost == 0


async def test_delayed_job_waits_until_due(autojump_clock: trio.testing.MockClock) -> None:
    jobs = MemoryJobs()
    ran_at: list[float] = []

    async def work(job: Job) -> None:
        ran_at.append(trio.current_time())

    start = trio.current_time()
    later = datetime.now(UTC) + timedelta(seconds=60)
    await jobs.enqueue(_job(1, run_at=later))
    await jobs.enqueue(_job(2))
    async with open_worker(jobs, {"work": work}, queues=["q"]):
        await _until(lambda: len(ran_at) == 2)
    assert ran_at[0] - start < 1
    assert ran_at[1] - start >= 59  # not before run_at (wall clock, waited on Trio's)


async def test_subscribe_and_workers_do_not_mix() -> None:
    jobs = MemoryJobs()

    async def handler(job: Job) -> None:
        pass

    jobs.subscribe("pushed", handler)
    with pytest.raises(ConflictError):
        await jobs.claim(["pushed"], max_jobs=1, wait=0)
    await jobs.claim(["pulled"], max_jobs=1, wait=0)
    with pytest.raises(ConflictError):
        jobs.subscribe("pulled", handler)


async def test_stop_ends_claiming_and_drains(autojump_clock: trio.testing.MockClock) -> None:
    jobs = MemoryJobs()
    done: list[str] = []

    async def work(job: Job) -> None:
        await trio.sleep(1)
        done.append(job.id)

    await jobs.enqueue(_job(1))
    async with open_worker(jobs, {"work": work}, queues=["q"]) as worker:
        await _until(lambda: worker.statistics().in_flight == 1)
        worker.stop()
        await jobs.enqueue(_job(2))  # arrives after stop: left on the queue
        await worker.wait_idle()
        await trio.sleep(5)
    assert done == ["job-1"]
    assert jobs.statistics().pending == 1


async def test_lost_lease_cancels_the_handler(autojump_clock: trio.testing.MockClock) -> None:
    # The lease moves on while the handler runs (here: the handler gives its own job
    # back, as another delivery finishing it would): the next extension reports it lost,
    # the handler is cancelled and the job is not acknowledged by this delivery (WK3).
    jobs = MemoryJobs(visibility_timeout=3.0)
    runs: list[int] = []
    cancelled: list[bool] = []

    async def work(job: Job) -> None:
        runs.append(job.attempt)
        if len(runs) == 1:
            await jobs.release(current_job().delivery)
            try:
                await trio.sleep(100)
            except trio.Cancelled:
                cancelled.append(True)
                raise

    await jobs.enqueue(_job(1))
    async with open_worker(jobs, {"work": work}, queues=["q"], concurrency=1) as worker:
        await _until(lambda: worker.statistics().succeeded == 1)
    assert cancelled == [True]
    assert worker.statistics().lease_lost == 1
    assert runs == [1, 1]
    assert jobs.statistics().completed == 1


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


async def test_an_error_whose_str_raises_is_a_failure_not_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs(max_attempts=2)

    async def poison(job: Job) -> None:
        raise _Unprintable

    await jobs.enqueue(_job(1, name="poison"))
    async with open_worker(jobs, {"poison": poison}, queues=["q"], retry_backoff=0.5) as worker:
        await _until(lambda: worker.statistics().dead_lettered == 1)
    (letter,) = await jobs.dead_letters("q")
    assert letter.error == "_Unprintable: <unprintable _Unprintable>"
    assert worker.statistics().failed == 2


async def test_a_job_that_raises_systemexit_counts_its_attempts_and_is_dead_lettered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each worker it runs on goes down (SystemExit propagates), but the attempt is
    recorded first, so after max_attempts the job is dead-lettered instead of taking
    down every worker forever."""
    jobs = MemoryJobs(max_attempts=3)
    runs: list[int] = []

    async def fatal(job: Job) -> None:
        runs.append(job.attempt)
        raise SystemExit(3)

    await jobs.enqueue(_job(1, name="fatal"))
    crashes = 0
    for _ in range(5):  # a supervisor restarting the worker each time it dies
        try:
            async with open_worker(jobs, {"fatal": fatal}, queues=["q"], retry_backoff=0.5):
                await trio.sleep(60)  # longer than any retry backoff here
        except BaseException as exc:  # SystemExit, maybe inside an ExceptionGroup
            group = exc if isinstance(exc, BaseExceptionGroup) else BaseExceptionGroup("", [exc])
            matched, rest = group.split(SystemExit)
            assert matched is not None
            assert rest is None
            crashes += 1
        else:
            break  # nothing left to crash it: the job is dead-lettered
    assert runs == [1, 2, 3]
    assert crashes == 3
    (letter,) = await jobs.dead_letters("q")
    assert letter.job.attempt == 3
    assert "handler crashed the worker: SystemExit: 3" in letter.error


async def test_state_can_be_awaited_from_another_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs()
    seen: list[tuple[str, float]] = []

    async def slow(job: Job) -> None:
        await trio.sleep(5)

    async def watch(worker: Worker) -> None:
        seen.append((await worker.wait_state("stopping", "stopped"), trio.current_time()))
        seen.append((await worker.wait_state("stopped"), trio.current_time()))

    await jobs.enqueue(_job(1, name="slow"))
    worker = open_worker(jobs, {"slow": slow}, queues=["q"])
    assert worker.state == "new"
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        async with worker:
            assert worker.state == "running"
            nursery.start_soon(watch, worker)
            await _until(lambda: worker.statistics().in_flight == 1)
            worker.stop()
            assert worker.state == "stopping"
        assert worker.state == "stopped"  # the drain let the handler finish
    assert [state for state, _ in seen] == ["stopping", "stopped"]
    assert seen[1][1] - start == pytest.approx(5, abs=0.1)
    assert worker.statistics().succeeded == 1
    with pytest.raises(InvalidArgumentError):
        await worker.wait_state()
