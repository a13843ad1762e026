"""MemoryJobs beyond the conformance suite: delivery, concurrency bound, handler
errors, buffering, unserved queues, bounds and close semantics (rules J1-J7, J10 of
trio_sched.jobs.memory)."""

from __future__ import annotations

import logging
import math

import pytest
import trio
import trio.testing

from trio_sched import (
    ClosedError,
    ConflictError,
    InvalidArgumentError,
    RetryableError,
)
from trio_sched.jobs import Job, JobsRuntime, MemoryJobs


def _job(i: int, *, queue: str = "q", key: str | None = None) -> Job:
    return Job(id=f"job-{i}", name="task", queue=queue, idempotency_key=key)


def test_is_a_jobs_runtime() -> None:
    assert isinstance(MemoryJobs(), JobsRuntime)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_concurrency": 0},
        {"max_concurrency": True},
        {"dedupe_window": 0},
        {"history": -1},
        {"max_pending": 1.5},
        {"drain_timeout": -1.0},
        {"drain_timeout": math.nan},
        {"drain_timeout": -(10**400)},
        {"drain_timeout": "10"},
        {"unserved_warning": -1},
        {"unserved_warning": "5"},
    ],
)
def test_invalid_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        MemoryJobs(**kwargs)  # type: ignore[arg-type]


def test_a_huge_drain_timeout_means_forever() -> None:
    assert MemoryJobs(drain_timeout=10**400)._drain_timeout == math.inf  # not OverflowError


async def test_enqueue_rejects_non_jobs() -> None:
    with pytest.raises(InvalidArgumentError, match="Job"):
        await MemoryJobs().enqueue("job")  # type: ignore[arg-type]


# -- delivery ---------------------------------------------------------------------------


async def test_handler_runs_in_the_runtime_not_the_enqueuer() -> None:
    enqueuer = trio.lowlevel.current_task()
    seen: list[tuple[Job, trio.lowlevel.Task]] = []

    async def handler(job: Job) -> None:
        seen.append((job, trio.lowlevel.current_task()))

    async with MemoryJobs() as jobs:
        jobs.subscribe("q", handler)
        job = _job(1)
        await jobs.enqueue(job)
        await trio.testing.wait_all_tasks_blocked()
    assert [s[0] for s in seen] == [job]
    assert seen[0][1] is not enqueuer


async def test_enqueue_does_not_wait_for_a_slow_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()
    started = trio.Event()

    async def handler(job: Job) -> None:
        started.set()
        await release.wait()

    async with MemoryJobs() as jobs:
        jobs.subscribe("q", handler)
        # A deadlock guard, not a timing claim: virtual time, so it fires only if an
        # enqueue waited for the (never released) handler.
        with trio.fail_after(60):
            await jobs.enqueue(_job(1))
            await jobs.enqueue(_job(2))
        await started.wait()
        stats = jobs.statistics()
        assert (stats.in_flight, stats.completed) == (2, 0)
        release.set()
    assert jobs.statistics().completed == 2


async def test_concurrency_bound_is_respected(autojump_clock: trio.testing.MockClock) -> None:
    running = 0
    peak = 0

    async def handler(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(1)
        running -= 1

    async with MemoryJobs(max_concurrency=3) as jobs:
        jobs.subscribe("q", handler)
        for i in range(20):
            await jobs.enqueue(_job(i))
        await trio.testing.wait_all_tasks_blocked()
        stats = jobs.statistics()
        assert (stats.in_flight, stats.pending) == (3, 17)
    assert peak == 3
    assert jobs.statistics().completed == 20


async def test_jobs_are_delivered_in_enqueue_order_across_queues() -> None:
    order: list[str] = []

    async def handler(job: Job) -> None:
        order.append(job.id)
        await trio.lowlevel.checkpoint()

    async with MemoryJobs(max_concurrency=1) as jobs:
        jobs.subscribe("a", handler)
        jobs.subscribe("b", handler)
        for i in range(6):
            await jobs.enqueue(_job(i, queue="ab"[i % 2]))
    assert order == [f"job-{i}" for i in range(6)]


async def test_handler_errors_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(job: Job) -> None:
        await trio.lowlevel.checkpoint()
        if job.id == "job-1":
            raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="trio_sched.jobs.memory"):
        async with MemoryJobs() as jobs:
            jobs.subscribe("q", handler)
            for i in range(3):
                await jobs.enqueue(_job(i))
    queue = jobs.statistics().queues["q"]
    assert (queue.delivered, queue.completed, queue.handler_errors) == (3, 2, 1)
    [record] = caplog.records
    assert "job-1" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


async def test_one_handler_per_queue() -> None:
    async def handler(job: Job) -> None:
        await trio.lowlevel.checkpoint()

    jobs = MemoryJobs()
    jobs.subscribe("q", handler)
    with pytest.raises(ConflictError, match="'q'"):
        jobs.subscribe("q", handler)


# -- buffering (rule J1) ------------------------------------------------------------------


async def test_jobs_enqueued_before_start_are_delivered_after() -> None:
    handled: list[str] = []

    async def handler(job: Job) -> None:
        await trio.lowlevel.checkpoint()
        handled.append(job.id)

    jobs = MemoryJobs()
    await jobs.enqueue(_job(1))
    jobs.subscribe("q", handler)
    await jobs.enqueue(_job(2))
    assert jobs.statistics().pending == 2
    assert [job.id for job in jobs.enqueued] == ["job-1", "job-2"]
    async with jobs:
        pass  # a normal exit drains the buffer
    assert handled == ["job-1", "job-2"]


async def test_jobs_wait_for_a_subscriber() -> None:
    handled: list[str] = []

    async def handler(job: Job) -> None:
        await trio.lowlevel.checkpoint()
        handled.append(job.id)

    async with MemoryJobs() as jobs:
        await jobs.enqueue(_job(1, queue="later"))
        await trio.testing.wait_all_tasks_blocked()
        assert jobs.statistics().queues["later"].pending == 1
        assert not jobs.statistics().queues["later"].subscribed
        jobs.subscribe("later", handler)
        await trio.testing.wait_all_tasks_blocked()
        assert handled == ["job-1"]


# -- queues nothing consumes (rule J10) -------------------------------------------------


def _unserved(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "nothing consumes" in r.getMessage()]


async def test_a_queue_nothing_consumes_is_warned_about_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(job: Job) -> None:
        await trio.lowlevel.checkpoint()

    # Before: jobs for a mistyped queue piled up silently forever.
    with caplog.at_level(logging.WARNING, logger="trio_sched.jobs.memory"):
        async with MemoryJobs() as jobs:
            jobs.subscribe("reports", handler)
            await jobs.enqueue(_job(1, queue="reprots"))
            await trio.sleep(4.9)
            assert _unserved(caplog) == []
            await jobs.enqueue(_job(2, queue="reprots"))
            await trio.sleep(0.2)
            assert _unserved(caplog) == [
                "2 job(s) for queue 'reprots' have waited 5s and nothing consumes that "
                "queue: no subscribe() handler and no worker claims from it (a mistyped "
                "Task.queue?); consumed queues: ['reports']. Warned once per queue."
            ]
            await jobs.enqueue(_job(3, queue="reprots"))
            await trio.sleep(60)
            assert len(_unserved(caplog)) == 1
            await jobs.aclose()


async def test_no_warning_for_a_queue_consumed_in_time_or_when_turned_off(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(job: Job) -> None:
        await trio.lowlevel.checkpoint()

    with caplog.at_level(logging.WARNING, logger="trio_sched.jobs.memory"):
        async with MemoryJobs() as jobs:
            await jobs.enqueue(_job(1, queue="pushed"))
            await jobs.enqueue(_job(2, queue="claimed"))
            await trio.sleep(4)
            jobs.subscribe("pushed", handler)
            assert await jobs.claim(["claimed"], max_jobs=1, wait=0)
            await trio.sleep(10)
            await jobs.aclose()
        async with MemoryJobs(unserved_warning=None) as jobs:
            await jobs.enqueue(_job(3, queue="nobody"))
            await trio.sleep(60)
            await jobs.aclose()
        never_entered = MemoryJobs()
        await never_entered.enqueue(_job(4, queue="nobody"))  # a buffer only (J1)
        await trio.sleep(60)
    assert _unserved(caplog) == []


async def test_jobs_buffered_before_the_start_are_checked_from_the_start(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = MemoryJobs(unserved_warning=1.0)
    await jobs.enqueue(_job(1, queue="early"))
    with caplog.at_level(logging.WARNING, logger="trio_sched.jobs.memory"):
        async with jobs:
            await trio.sleep(1.5)
            assert len(_unserved(caplog)) == 1
            await jobs.aclose()


# -- bounds (rules J3, J4) --------------------------------------------------------------


async def test_dedupe_is_global_and_windowed() -> None:
    jobs = MemoryJobs(dedupe_window=2)
    await jobs.enqueue(_job(1, key="a"))
    with pytest.raises(ConflictError, match="job-1"):
        await jobs.enqueue(_job(2, queue="other", key="a"))  # keys are not per queue
    await jobs.enqueue(_job(3, key="b"))
    await jobs.enqueue(_job(4, key="c"))  # "a" falls out of the window
    await jobs.enqueue(_job(5, key="a"))
    with pytest.raises(ConflictError):
        await jobs.enqueue(_job(6, key="c"))
    stats = jobs.statistics()
    assert (stats.enqueued, stats.duplicates) == (4, 2)
    assert stats.queues["other"].duplicates == 1


async def test_history_is_bounded() -> None:
    jobs = MemoryJobs(history=3)
    for i in range(5):
        await jobs.enqueue(_job(i))
    assert [job.id for job in jobs.enqueued] == ["job-2", "job-3", "job-4"]
    assert jobs.statistics().enqueued == 5


async def test_full_buffer_refuses_and_records_nothing() -> None:
    jobs = MemoryJobs(max_pending=2)
    await jobs.enqueue(_job(1, key="a"))
    await jobs.enqueue(_job(2, key="b"))
    with pytest.raises(RetryableError):
        await jobs.enqueue(_job(3, key="c"))
    assert len(jobs.enqueued) == 2

    async def handler(job: Job) -> None:
        await trio.lowlevel.checkpoint()

    jobs.subscribe("q", handler)
    async with jobs:
        await trio.testing.wait_all_tasks_blocked()
        await jobs.enqueue(_job(3, key="c"))  # the refused key was not remembered


async def test_enqueue_many_with_a_full_buffer_refuses_the_overflow() -> None:
    jobs = MemoryJobs(max_pending=2)
    batch = [_job(1, key="a"), _job(2, key="b"), _job(3, key="a"), _job(4, key="c"), _job(5)]
    results = await jobs.enqueue_many(batch)
    assert results[:2] == [None, None]
    assert isinstance(results[2], ConflictError)  # a known key, full buffer or not
    assert all(isinstance(r, RetryableError) for r in results[3:]), results
    assert [job.id for job in jobs.enqueued] == ["job-1", "job-2"]
    stats = jobs.statistics()
    assert (stats.enqueued, stats.duplicates, stats.pending) == (2, 1, 2)

    async def handler(job: Job) -> None:
        await trio.lowlevel.checkpoint()

    jobs.subscribe("q", handler)
    async with jobs:
        await trio.testing.wait_all_tasks_blocked()
        # The refused key was not remembered: the same jobs go in once there is room.
        assert await jobs.enqueue_many(batch[3:]) == [None, None]


async def test_cancelled_enqueue_many_accepts_nothing() -> None:
    jobs = MemoryJobs()
    with trio.CancelScope() as scope:
        scope.cancel()
        await jobs.enqueue_many([_job(1, key="a"), _job(2)])
    assert scope.cancelled_caught
    assert jobs.enqueued == ()
    assert await jobs.enqueue_many([_job(1, key="a"), _job(2)]) == [None, None]


async def test_cancelled_enqueue_accepts_nothing() -> None:
    jobs = MemoryJobs()
    with trio.CancelScope() as scope:
        scope.cancel()
        await jobs.enqueue(_job(1, key="a"))
    assert scope.cancelled_caught
    assert jobs.enqueued == ()
    await jobs.enqueue(_job(1, key="a"))


async def test_enqueue_and_health_check_are_checkpoints() -> None:
    jobs = MemoryJobs()
    with trio.testing.assert_checkpoints():
        await jobs.enqueue(_job(1))
    with trio.testing.assert_checkpoints():
        await jobs.health_check()
    with trio.testing.assert_checkpoints():
        await jobs.aclose()


# -- close (rule J6) ---------------------------------------------------------------------


async def test_normal_exit_drains_running_and_buffered_jobs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def handler(job: Job) -> None:
        await trio.sleep(5)

    async with MemoryJobs(max_concurrency=2, drain_timeout=60) as jobs:
        jobs.subscribe("q", handler)
        for i in range(4):
            await jobs.enqueue(_job(i))
    stats = jobs.statistics()
    assert (stats.completed, stats.dropped, stats.closed, stats.running) == (4, 0, True, False)
    assert trio.current_time() == 10  # two rounds of two handlers, 5 s each
    with pytest.raises(ClosedError):
        await jobs.enqueue(_job(9))


async def test_drain_timeout_cancels_stuck_handlers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled: list[str] = []

    async def handler(job: Job) -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(job.id)
            raise

    async with MemoryJobs(max_concurrency=1, drain_timeout=3) as jobs:
        jobs.subscribe("q", handler)
        await jobs.enqueue(_job(1))
        await jobs.enqueue(_job(2))
        start = trio.current_time()
    assert trio.current_time() - start == 3
    assert cancelled == ["job-1"]
    stats = jobs.statistics()
    assert (stats.in_flight, stats.dropped, stats.completed) == (0, 1, 0)


async def test_exception_in_block_cancels_at_once_and_propagates_unwrapped() -> None:
    cancelled = trio.Event()

    async def handler(job: Job) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    jobs = MemoryJobs()

    async def body() -> None:
        async with jobs:
            jobs.subscribe("q", handler)
            await jobs.enqueue(_job(1))
            await trio.testing.wait_all_tasks_blocked()
            raise KeyError("body")

    with pytest.raises(KeyError, match="body"):
        await body()
    assert cancelled.is_set()
    assert jobs.statistics().closed


async def test_outer_cancellation_is_not_wrapped(autojump_clock: trio.testing.MockClock) -> None:
    with trio.move_on_after(1) as scope:
        async with MemoryJobs() as jobs:
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert jobs.statistics().closed


async def test_aclose_inside_block_cancels_and_drops() -> None:
    cancelled: list[str] = []

    async def handler(job: Job) -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(job.id)
            raise

    async with MemoryJobs(max_concurrency=1) as jobs:
        jobs.subscribe("q", handler)
        await jobs.enqueue(_job(1))
        await jobs.enqueue(_job(2))
        await jobs.enqueue(_job(3, queue="nobody"))
        await trio.testing.wait_all_tasks_blocked()
        await jobs.aclose()
        await jobs.aclose()
        with pytest.raises(ClosedError):
            await jobs.enqueue(_job(4))
        with pytest.raises(ClosedError):
            await jobs.health_check()
        with pytest.raises(ClosedError):
            jobs.subscribe("other", handler)
    assert cancelled == ["job-1"]
    stats = jobs.statistics()
    assert (stats.dropped, stats.pending, stats.in_flight) == (2, 0, 0)
    assert all(q.pending == 0 for q in stats.queues.values())


async def test_cannot_enter_twice_or_after_close() -> None:
    jobs = MemoryJobs()
    async with jobs:
        with pytest.raises(ConflictError):
            await jobs.__aenter__()
    with pytest.raises(ClosedError):
        async with jobs:
            pass


async def test_close_without_ever_running() -> None:
    jobs = MemoryJobs()
    await jobs.enqueue(_job(1))
    await jobs.aclose()
    with pytest.raises(ClosedError):
        async with jobs:
            pass
    assert jobs.statistics().dropped == 1
