"""Rule D6 of the runtime: a burst's occurrences are enqueued with one ``enqueue_many``
call when the jobs runtime has it, the loops' Trio tasks stay asleep, and every way the
call can go wrong ends with each occurrence fired once or reported."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from trio_sched import (
    EventKind,
    LeaseLostError,
    RetryableError,
    Scheduler,
    SchedulerEvent,
    Task,
    open_scheduler,
)
from trio_sched._burst import BURST_CHUNK
from trio_sched.jobs import Job
from trio_sched.locks import MemoryLockProvider

from ._helpers import (
    BatchRecordingJobs,
    FakeWall,
    RecordingJobs,
    WrappedLocks,
    at,
    config,
    loop_tasks,
)


class LoopSteps(trio.abc.Instrument):
    """Counts the steps of the loops' Trio tasks (named ``trio_sched:<task>``)."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.startswith("trio_sched:"):
            self.steps += 1


async def test_a_burst_is_one_call_and_the_loops_stay_asleep(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 58))
    locks = WrappedLocks(MemoryLockProvider())
    jobs = BatchRecordingJobs()
    n = 50
    steps = LoopSteps()
    async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
        for i in range(n):
            scheduler.register(Task(name=f"t{i}", schedule="* * * * * *"))
        await trio.sleep(1.5)  # every loop parked, 08:59:59 fired
        trio.lowlevel.add_instrument(steps)
        await trio.sleep(3)  # 09:00:00, :01, :02
        trio.lowlevel.remove_instrument(steps)
        stats = scheduler.statistics().tasks
        tasks_now = sum(loop_tasks(f"t{i}") for i in range(n))
    assert tasks_now == 0  # every loop is parked detached, between and during bursts
    assert steps.steps == 0
    assert jobs.calls[:4] == [n, n, n, n]
    assert locks.batch_sizes[:4] == [n, n, n, n]
    assert all(stats[f"t{i}"].fired >= 4 for i in range(n))
    for i in range(n):
        nominals = [j.run_at for j in jobs.jobs if j.headers["x-trio-sched-task"] == f"t{i}"]
        assert len(nominals) == len(set(nominals))  # nothing twice
        assert at(9, 0, 2) in nominals


async def test_a_transient_job_result_is_retried_by_its_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = BatchRecordingJobs()
    jobs.job_errors["b"] = RetryableError("queue full for b")
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        for name in ("a", "b", "c"):
            s.register(Task(name=name, schedule="0 * * * *"))
        await trio.sleep(2)
        stats = s.statistics().tasks
        jobs.job_errors.clear()
        # b's loop got a Trio task for its retry and parked detached again after it:
        await trio.sleep(60 * 60)  # 10:00 is one call for all three again
        tasks_now = loop_tasks("b")
        later = s.statistics().tasks
    assert jobs.calls == [3, 3]
    assert jobs.enqueue_calls == ["b"]  # only b was retried, by its loop
    assert sorted(j.headers["x-trio-sched-task"] for j in jobs.jobs) == [
        "a",
        "a",
        "b",
        "b",
        "c",
        "c",
    ]
    assert [stats[n].fired for n in "abc"] == [1, 1, 1]
    assert stats["b"].errors == 0
    assert [later[n].fired for n in "abc"] == [2, 2, 2]
    assert tasks_now == 0


async def test_a_failed_job_result_is_reported_and_the_others_fire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    locks = WrappedLocks(MemoryLockProvider())
    jobs = BatchRecordingJobs()
    jobs.job_errors["b"] = ValueError("b's payload is refused")
    events: list[SchedulerEvent] = []
    cfg = config(wall, on_event=events.append)
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as s:
        for name in ("a", "b"):
            s.register(Task(name=name, schedule="0 * * * *"))
        await trio.sleep(2)
        jobs.job_errors.clear()
        await trio.sleep(60 * 60)  # 10:00 fires both
        stats = s.statistics().tasks
    assert sorted((j.headers["x-trio-sched-task"], j.run_at) for j in jobs.jobs) == [
        ("a", at(9, 0)),
        ("a", at(10, 0)),
        ("b", at(10, 0)),
    ]
    assert (stats["a"].fired, stats["b"].fired, stats["b"].errors) == (2, 1, 1)
    errors = [e for e in events if e.kind is EventKind.ERROR]
    assert [(e.task, e.nominal) for e in errors] == [("b", at(9, 0))]
    assert isinstance(errors[0].error, ValueError)
    # b's 09:00 was never delivered: its watermark did not move for it.
    assert {"trio_sched:a": 1767603600000} in locks.advance_calls


async def test_a_failed_call_falls_back_to_one_enqueue_per_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = BatchRecordingJobs()
    jobs.fail, jobs.failures = ConnectionResetError("connection reset"), 1
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        for name in ("a", "b", "c"):
            s.register(Task(name=name, schedule="0 * * * *"))
        await trio.sleep(2)
        stats = s.statistics().tasks
    assert jobs.calls == [3]  # the failed call; then each loop enqueued its own
    assert sorted(jobs.enqueue_calls) == ["a", "b", "c"]
    assert sorted(j.headers["x-trio-sched-task"] for j in jobs.jobs) == ["a", "b", "c"]
    assert [stats[n].fired for n in "abc"] == [1, 1, 1]


async def test_one_lost_lease_cancels_the_call_and_the_others_fire_on_their_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    locks = WrappedLocks(MemoryLockProvider())
    jobs = BatchRecordingJobs(delay=10)
    events: list[SchedulerEvent] = []
    cfg = config(wall, dispatch_timeout=100, on_event=events.append)
    key = f"trio_sched:slow:{1767603600000}"  # slow's 09:00 occurrence
    locks.reject_keys.add(key)
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as s:
        s.register(Task(name="slow", schedule="0 * * * *", lock_ttl=3.0))
        s.register(Task(name="other", schedule="0 * * * *"))
        await trio.sleep(30)
        stats = s.statistics().tasks
    assert jobs.calls == [2]
    assert jobs.enqueue_calls == ["other"]  # slow's lost occurrence is not tried again
    assert [(j.headers["x-trio-sched-task"], j.run_at) for j in jobs.jobs] == [("other", at(9, 0))]
    assert (stats["slow"].fired, stats["slow"].lease_losses) == (0, 1)
    assert (stats["other"].fired, stats["other"].lease_losses) == (1, 0)
    lost = [e for e in events if e.kind is EventKind.LEASE_LOST]
    assert [(e.task, e.nominal) for e in lost] == [("slow", at(9, 0))]
    assert isinstance(lost[0].error, LeaseLostError)


async def test_the_timeout_cancels_the_call_and_reports_every_occurrence(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = BatchRecordingJobs(delay=1000)
    cfg = config(wall, dispatch_timeout=5)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as s:
        for name in ("a", "b"):
            s.register(Task(name=name, schedule="0 * * * *"))
        await trio.sleep(10)
        stats = s.statistics().tasks
        in_flight = s.statistics().in_flight_dispatches
    assert jobs.calls == [2]
    assert jobs.enqueue_calls == []  # timed out: not tried again
    assert jobs.jobs == []
    assert in_flight == 0
    assert [(stats[n].fired, stats[n].errors) for n in "ab"] == [(0, 1), (0, 1)]


async def test_unregister_during_the_call_lets_it_finish_and_stops_the_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = BatchRecordingJobs(delay=4)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        s.register(Task(name="a", schedule="* * * * * *"))
        s.register(Task(name="b", schedule="* * * * * *"))
        await trio.sleep(2)  # 09:00:00 is in its enqueue_many call (4 s)
        s.unregister("a")
        await trio.sleep(10)
        stats = s.statistics().tasks
    a_fires = [j.run_at for j in jobs.jobs if j.headers["x-trio-sched-task"] == "a"]
    assert a_fires == [at(9, 0)]  # the call in flight finished; nothing after it
    assert "a" not in stats
    b_fires = [j.run_at for j in jobs.jobs if j.headers["x-trio-sched-task"] == "b"]
    assert b_fires[0] == at(9, 0)
    assert len(b_fires) == len(set(b_fires)) >= 2  # b goes on, nothing twice


async def test_stop_waits_for_a_call_whose_occurrences_go_back_to_their_loops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """D11 with D6: the call in flight at stop fails as a whole; its occurrences are
    handed to their loops (started for that, though the scheduler is stopping), which
    enqueue them before the scheduler closes."""
    wall = FakeWall(at(8, 59, 59))
    jobs = BatchRecordingJobs(delay=4)
    jobs.fail, jobs.failures = ConnectionResetError("connection reset"), 1
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        for name in ("a", "b"):
            s.register(Task(name=name, schedule="0 * * * *"))
        await trio.sleep(2)  # 09:00 is in its enqueue_many call (4 s)
        left_at = trio.current_time()
    # 3 s left of the failing call, then each loop's own enqueue takes 4 s.
    assert trio.current_time() - left_at == 3 + 4
    assert jobs.calls == [2]
    assert sorted(jobs.enqueue_calls) == ["a", "b"]
    assert sorted((j.headers["x-trio-sched-task"], j.run_at) for j in jobs.jobs) == [
        ("a", at(9, 0)),
        ("b", at(9, 0)),
    ]


async def test_a_handed_over_occurrence_keeps_the_lease_the_batch_renewed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The call outlasts the TTL (its guards renew every lease); b's transient result
    hands b to its loop, whose own guard must start from the renewed expiry, not the
    first one (long past): b fires, nothing is reported lost."""
    wall = FakeWall(at(8, 59, 59))
    locks = WrappedLocks(MemoryLockProvider())
    jobs = BatchRecordingJobs(delay=5)  # enqueue_many and enqueue take 5 s; TTL 3 s
    jobs.job_errors["b"] = RetryableError("queue full for b")
    cfg = config(wall, dispatch_timeout=30)
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as s:
        for name in ("a", "b"):
            s.register(Task(name=name, schedule="0 * * * *", lock_ttl=3.0))
        await trio.sleep(30)
        stats = s.statistics().tasks
    assert jobs.enqueue_calls == ["b"]
    assert (stats["a"].fired, stats["a"].lease_losses) == (1, 0)
    assert (stats["b"].fired, stats["b"].lease_losses) == (1, 0)
    assert locks.renewals >= 2 * 4 + 4  # both during the call, then b's alone


class _FinishesAnyway(BatchRecordingJobs):
    """A call that is not abandoned on cancellation (like a worker thread with
    ``abandon_on_cancel=False``) and then answers a transient error for every job."""

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        self.calls.append(len(jobs))
        with trio.CancelScope(shield=True):
            await trio.sleep(4)
        return [RetryableError("busy") for _ in jobs]


async def test_hard_stop_while_a_call_finishes_anyway_hands_nothing_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = _FinishesAnyway()
    events: list[SchedulerEvent] = []
    cfg = config(wall, on_event=events.append)
    scheduler = Scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg)
    scheduler.register(Task(name="a", schedule="0 * * * *"))
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await trio.sleep(2)  # 09:00 is in its enqueue_many call
        nursery.cancel_scope.cancel()  # hard stop (D11): no error may come out of run
    assert jobs.calls == [1]
    assert jobs.enqueue_calls == []  # nothing was handed to a loop after the stop
    assert events == []  # and nothing failed trying
    assert not scheduler.running


@pytest.mark.parametrize("batch", [True, False])
async def test_a_loop_that_cannot_go_on_crashes_alone(
    autojump_clock: trio.testing.MockClock, batch: bool
) -> None:
    """The end of the calendar: the next occurrence cannot be computed when the batch
    settles the last one (or, without a batch runtime, the loop itself). That loop is
    reported and ends; the scheduler keeps running and stops cleanly."""
    wall = FakeWall(datetime(9999, 12, 31, 23, 59, 57, tzinfo=UTC))
    jobs = BatchRecordingJobs() if batch else RecordingJobs()
    events: list[SchedulerEvent] = []
    cfg = config(wall, on_event=events.append)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as s:
        s.register(Task(name="end", schedule="* * * * * *"))
        await trio.sleep(2.5)  # 23:59:58 and :59 fire; after :59 there is no next
        stats = s.statistics().tasks["end"]
        assert s.running
        # Other tasks go on: one registered now still fires (a manual trigger).
        s.register(Task(name="late", schedule="* * * * * *"))
        await s.trigger("late")
        tasks_now = loop_tasks("end")
    assert (stats.fired, stats.errors) == (2, 1)
    assert [e.kind for e in events if e.task == "end"][-1] is EventKind.ERROR
    assert tasks_now == 0


async def test_a_large_burst_goes_in_chunks_shortest_periods_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # D5: more than BURST_CHUNK co-due occurrences are decided, acquired and enqueued in
    # chunks (one acquire_batch each), the tasks with the shortest period first.
    wall = FakeWall(at(8, 59, 58))
    locks = WrappedLocks(MemoryLockProvider())
    jobs = RecordingJobs()
    minutes, seconds = BURST_CHUNK + 500, BURST_CHUNK // 2
    async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as s:
        for i in range(minutes):
            s.register(Task(name=f"m{i}", schedule="* * * * *"))
        for i in range(seconds):
            s.register(Task(name=f"s{i}", schedule="* * * * * *"))
        await trio.sleep(62.5)  # 09:00:00 and 09:01:00; the seconds from 08:59:59
        stats = s.statistics().tasks
    assert sum(t.fired for t in stats.values()) == minutes * 2 + seconds * 62
    assert len(jobs.jobs) == minutes * 2 + seconds * 62
    # 09:00:00 and 09:01:00: the every-second tasks go first, then the minute tasks,
    # never more than BURST_CHUNK per acquire_batch.
    big = [keys for keys in locks.batch_keys if any(":m" in k for k in keys)]
    assert len(big) == 4  # two chunks each
    assert all(len(keys) <= BURST_CHUNK for keys in big)
    for first in (big[0], big[2]):
        assert all(":s" in key for key in first[:seconds]), first[:3]
        assert all(":m" in key for key in first[seconds:])
    assert sum(len(keys) for keys in big[2:]) == minutes + seconds
