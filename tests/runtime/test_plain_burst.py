"""Rule D6 for a plain `JobsRuntime` (``enqueue`` only, no ``enqueue_many``): the burst
makes the ``enqueue`` calls itself, at most ``ENQUEUE_CONCURRENCY`` at once, the loops'
Trio tasks stay asleep, and a lost lease or the timeout cancels only the enqueue of the
occurrence it concerns (a plain runtime may not dedupe, so nothing is enqueued twice)."""

from __future__ import annotations

import trio
import trio.testing

from trio_sched import (
    EventKind,
    LeaseLostError,
    RetryableError,
    SchedulerEvent,
    Task,
    _enqueue,
    open_scheduler,
)
from trio_sched.jobs import BatchJobsRuntime, Job
from trio_sched.locks import MemoryLockProvider

from ._helpers import FakeWall, RecordingJobs, WrappedLocks, at, config, loop_tasks


class PlainJobs(RecordingJobs):
    """Plain (never the batch variant), with per-task errors and a concurrency probe."""

    def __new__(cls, *, delay: float = 0.0) -> PlainJobs:
        return object.__new__(cls)

    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.task_errors: dict[str, Exception] = {}
        self.running = 0
        self.peak = 0

    async def enqueue(self, job: Job) -> None:
        task = job.headers["x-trio-sched-task"]
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            error = self.task_errors.get(task)
            if error is not None:
                self.enqueue_calls.append(task)
                await trio.lowlevel.checkpoint()
                raise error
            await super().enqueue(job)
        finally:
            self.running -= 1


def test_the_probe_is_a_plain_runtime() -> None:
    assert not isinstance(PlainJobs(), BatchJobsRuntime)


async def test_a_burst_enqueues_with_a_bound_and_the_loops_stay_asleep(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(
        at(
            8,
            59,
            59,
        )
    )
    jobs = PlainJobs(delay=0.25)
    n = 150
    bound = _enqueue.ENQUEUE_CONCURRENCY
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        for i in range(n):
            s.register(Task(name=f"t{i}", schedule="0 * * * *"))
        await trio.sleep(0.5)
        tasks_before = sum(loop_tasks(f"t{i}") for i in range(n))
        await trio.sleep(5)
        stats = s.statistics().tasks
        tasks_after = sum(loop_tasks(f"t{i}") for i in range(n))
    assert (tasks_before, tasks_after) == (0, 0)  # detached before and after the burst
    assert jobs.peak == bound < n
    assert sorted(jobs.enqueue_calls) == sorted(f"t{i}" for i in range(n))  # once each
    assert all(stats[f"t{i}"].fired == 1 for i in range(n))
    # 150 enqueues of 0.25 s, 64 at a time: three rounds.
    last = max(jobs.enqueued_at) - wall.trio_time_of(at(9, 0))
    assert 0.75 <= last < 0.8


async def test_one_lost_lease_cancels_only_its_own_enqueue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    locks = WrappedLocks(MemoryLockProvider())
    jobs = PlainJobs(delay=10)
    events: list[SchedulerEvent] = []
    cfg = config(wall, dispatch_timeout=100, on_event=events.append)
    locks.reject_keys.add(f"trio_sched:slow:{1767603600000}")  # slow's 09:00
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as s:
        s.register(Task(name="slow", schedule="0 * * * *", lock_ttl=3.0))
        s.register(Task(name="other", schedule="0 * * * *"))
        await trio.sleep(30)
        stats = s.statistics().tasks
    # A burst-wide cancel (as with enqueue_many) would cancel and repeat other's too.
    assert sorted(jobs.enqueue_calls) == ["other", "slow"]
    assert [(j.headers["x-trio-sched-task"], j.run_at) for j in jobs.jobs] == [("other", at(9, 0))]
    assert (stats["slow"].fired, stats["slow"].lease_losses) == (0, 1)
    assert (stats["other"].fired, stats["other"].lease_losses) == (1, 0)
    lost = [e for e in events if e.kind is EventKind.LEASE_LOST]
    assert [(e.task, e.nominal) for e in lost] == [("slow", at(9, 0))]
    assert isinstance(lost[0].error, LeaseLostError)


async def test_the_timeout_cancels_every_enqueue_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = PlainJobs(delay=1000)
    cfg = config(wall, dispatch_timeout=5)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as s:
        for name in ("a", "b"):
            s.register(Task(name=name, schedule="0 * * * *"))
        await trio.sleep(10)
        stats = s.statistics().tasks
        in_flight = s.statistics().in_flight_dispatches
    assert sorted(jobs.enqueue_calls) == ["a", "b"]  # not tried again
    assert jobs.jobs == []
    assert in_flight == 0
    assert [(stats[n].fired, stats[n].errors) for n in "ab"] == [(0, 1), (0, 1)]


async def test_a_transient_error_is_retried_by_its_loop_and_the_others_fire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = PlainJobs()
    jobs.task_errors["b"] = RetryableError("queue full for b")
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        for name in ("a", "b", "c"):
            s.register(Task(name=name, schedule="0 * * * *"))
        await trio.sleep(1.02)  # 09:00 and b's first retry (after retry_backoff 0.05 s)
        del jobs.task_errors["b"]
        await trio.sleep(2)
        stats = s.statistics().tasks
        tasks_now = loop_tasks("b")
    assert sorted(j.headers["x-trio-sched-task"] for j in jobs.jobs) == ["a", "b", "c"]
    assert jobs.enqueue_calls.count("a") == jobs.enqueue_calls.count("c") == 1
    assert jobs.enqueue_calls.count("b") >= 2  # the burst's, then its loop's retries
    assert [stats[n].fired for n in "abc"] == [1, 1, 1]
    assert tasks_now == 0  # b's loop parked detached again after its retry
