"""The runtime on MockClock (autojump) with a fake wall clock: rules O1-O9 of docs/runtime.md."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from trio_sched import (
    ClosedError,
    Config,
    ConflictError,
    EventKind,
    InvalidArgumentError,
    LeaseLostError,
    MisfirePolicy,
    NotFoundError,
    NotInitializedError,
    RetryableError,
    Scheduler,
    SchedulerEvent,
    Task,
    ValidationError,
    _plan,
    open_scheduler,
)
from trio_sched.locks import MemoryLockProvider

from ._helpers import (
    QUIET,
    BatchRecordingJobs,
    FakeWall,
    RecordingJobs,
    WrappedLocks,
    at,
    config,
    loop_tasks,
)

pytestmark = pytest.mark.usefixtures("jobs_mode")

BASE = datetime(2026, 1, 5, 8, 59, 58, 500000, tzinfo=UTC)


def every_second(name: str = "tick", **kw: object) -> Task:
    return Task(name=name, schedule="* * * * * *", **kw)  # type: ignore[arg-type]


async def test_fires_each_occurrence_once_with_its_identity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(BASE)
    jobs, locks = RecordingJobs(), MemoryLockProvider()
    task = every_second(
        queue="q", job_name="build", payload=b'{"a": 1}', headers={"team": "x"}, tenant_id="t1"
    )
    async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
        scheduler.register(task)
        await trio.sleep(5)
        stats = scheduler.statistics().tasks["tick"]
    expected = [at(8, 59, 59)] + [at(9, 0, s) for s in range(4)]
    assert jobs.nominals() == expected
    job = jobs.jobs[1]
    ms = _plan.epoch_ms(at(9, 0, 0))
    assert job.name == "build"
    assert job.queue == "q"
    assert job.payload == b'{"a": 1}'
    assert job.tenant_id == "t1"
    assert job.idempotency_key == f"tick:{ms}"
    assert job.id == _plan.job_id(f"tick:{ms}")
    assert job.run_at == at(9, 0, 0)
    assert job.created_at is not None
    assert abs((job.created_at - at(9, 0, 0)).total_seconds()) < 0.001
    assert job.headers["team"] == "x"
    assert job.headers["x-trio-sched-task"] == "tick"
    assert job.headers["x-trio-sched-occurrence"] == f"trio_sched:tick:{ms}"
    assert job.headers["x-trio-sched-nominal"] == "2026-01-05T09:00:00+00:00"
    assert job.headers["x-trio-sched-fencing-token"] == str(job.fencing_token)
    tokens = [j.fencing_token for j in jobs.jobs]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == len(tokens)
    assert stats.fired == 5
    assert stats.last_fire == at(9, 0, 3)
    assert stats.next_fire == at(9, 0, 4)
    assert stats.lock_misses == stats.errors == stats.skipped == stats.misfired == 0
    marks = await locks.get_watermarks(["trio_sched:tick"])
    assert marks == {"trio_sched:tick": _plan.epoch_ms(at(9, 0, 3))}


async def test_dst_spring_gap_fixed_job_fires_once(autojump_clock: trio.testing.MockClock) -> None:
    # Europe/Berlin 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 does not exist that day.
    # 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens twice, a fixed job fires once.
    berlin = ZoneInfo("Europe/Berlin")
    wall = FakeWall(datetime(2026, 3, 28, 0, 0, tzinfo=UTC))
    jobs = RecordingJobs()
    cfg = config(wall, clock_check_interval=3600)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as scheduler:
        scheduler.register(Task(name="fixed", schedule="30 2 * * *", timezone="Europe/Berlin"))
        await trio.sleep(3 * 86400)
        # Jump to autumn well before the next 02:30 (the jump is noticed within the
        # clock_check_interval; the skipped months are one misfire).
        wall.jump((datetime(2026, 10, 23, 12, 0, tzinfo=UTC) - wall()).total_seconds())
        await trio.sleep(3 * 86400)
    local = [n.astimezone(berlin) for n in jobs.nominals()]
    spring = [t for t in local if t.month == 3]
    assert [t.strftime("%d %H:%M %Z") for t in spring] == [
        "28 02:30 CET",
        "29 03:00 CEST",  # the gap day: once, at the first instant after the gap
        "30 02:30 CEST",
    ]
    autumn = [t for t in local if t.month == 10]
    assert [t.strftime("%d %H:%M %Z") for t in autumn] == [
        "24 02:30 CEST",
        "25 02:30 CEST",  # the repeated hour: first pass only
        "26 02:30 CET",
    ]


@pytest.mark.parametrize("policy", [MisfirePolicy.SKIP, MisfirePolicy.FIRE_ONCE])
async def test_misfire_after_wall_clock_jump(
    autojump_clock: trio.testing.MockClock, policy: MisfirePolicy
) -> None:
    wall = FakeWall(at(9, 0, 30))
    jobs = RecordingJobs()
    events: list[SchedulerEvent] = []
    cfg = config(wall, on_event=events.append)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as scheduler:
        scheduler.register(Task(name="minutely", schedule="* * * * *", misfire_policy=policy))
        await trio.sleep(45)  # 09:01 fires; wall now 09:01:15
        wall.jump(600)  # the process "slept": wall 09:11:15, occurrences 09:02-09:11 missed
        await trio.sleep(120)  # wall 09:13:15
        stats = scheduler.statistics().tasks["minutely"]
    late = [at(9, 11)] if policy is MisfirePolicy.FIRE_ONCE else []
    assert jobs.nominals() == [at(9, 1), *late, at(9, 12), at(9, 13)]
    assert stats.misfired == 1
    missed = [e for e in events if e.kind is EventKind.MISSED]
    assert [e.nominal for e in missed] == [at(9, 2)]
    skipped = [e for e in events if e.kind is EventKind.SKIPPED]
    if policy is MisfirePolicy.SKIP:
        assert stats.skipped == 1
        assert [(e.nominal, e.reason) for e in skipped] == [(at(9, 11), "misfire")]
    else:
        assert stats.skipped == 0
        assert skipped == []
        fired_late = [e for e in events if e.kind is EventKind.FIRED and e.nominal == at(9, 11)]
        assert len(fired_late) == 1
        assert fired_late[0].lateness is not None
        assert fired_late[0].lateness > 1.0


@pytest.mark.parametrize("policy", [MisfirePolicy.SKIP, MisfirePolicy.FIRE_ONCE])
async def test_misfire_after_restart_uses_the_watermark(
    autojump_clock: trio.testing.MockClock, policy: MisfirePolicy
) -> None:
    wall = FakeWall(at(9, 0, 30))
    locks = MemoryLockProvider()
    task = Task(name="minutely", schedule="* * * * *", misfire_policy=policy)
    first = RecordingJobs()
    async with open_scheduler(jobs=first, locks=locks, config=config(wall)) as scheduler:
        scheduler.register(task)
        await trio.sleep(100)  # 09:01 and 09:02 fire; stop at 09:02:10
    assert first.nominals() == [at(9, 1), at(9, 2)]
    await trio.sleep(600)  # no scheduler runs: 09:03 .. 09:12 are missed
    second = RecordingJobs()
    events: list[SchedulerEvent] = []
    cfg = config(wall, on_event=events.append)
    async with open_scheduler(jobs=second, locks=locks, config=cfg) as scheduler:
        scheduler.register(task)  # wall 09:12:10
        await trio.sleep(60)
        stats = scheduler.statistics().tasks["minutely"]
    late = [at(9, 12)] if policy is MisfirePolicy.FIRE_ONCE else []
    assert second.nominals() == [*late, at(9, 13)]
    assert stats.misfired == 1
    assert [e.nominal for e in events if e.kind is EventKind.MISSED] == [at(9, 3)]


async def test_first_start_without_watermark_does_not_catch_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(9, 0, 30))
    jobs = RecordingJobs()
    task = Task(name="hourly", schedule="0 * * * *", misfire_policy="fire_once")
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        s.register(task)
        await trio.sleep(3600)
    assert jobs.nominals() == [at(10, 0)]


@pytest.mark.parametrize("mode", ["reject", "hang"])
async def test_lease_lost_mid_dispatch_cancels_it(
    autojump_clock: trio.testing.MockClock, mode: str
) -> None:
    wall = FakeWall(BASE)
    locks = WrappedLocks(MemoryLockProvider())
    locks.reject_renewals = mode == "reject"
    locks.hang_renewals = mode == "hang"
    jobs = RecordingJobs(delay=60)
    events: list[SchedulerEvent] = []
    cfg = config(wall, dispatch_timeout=100, on_event=events.append)
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as scheduler:
        scheduler.register(Task(name="slow", schedule="0 * * * *", lock_ttl=3.0))
        await trio.sleep(60 * 60)  # 09:00 fires; the enqueue takes 60 s, longer than the TTL
        stats = scheduler.statistics().tasks["slow"]
    assert jobs.jobs == []  # the dispatch was cancelled before the slow enqueue finished
    assert stats.lease_losses == 1
    assert stats.fired == 0
    lost = [e for e in events if e.kind is EventKind.LEASE_LOST]
    assert len(lost) == 1
    assert lost[0].nominal == at(9, 0)
    assert isinstance(lost[0].error, LeaseLostError)
    assert locks.renewals == 1
    assert locks.advance_calls == []  # no watermark for an undelivered occurrence


async def test_renewer_keeps_a_long_dispatch_alive(autojump_clock: trio.testing.MockClock) -> None:
    wall = FakeWall(BASE)
    locks = WrappedLocks(MemoryLockProvider())
    jobs = RecordingJobs(delay=10)
    cfg = config(wall, dispatch_timeout=100)
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as scheduler:
        scheduler.register(Task(name="slow", schedule="0 * * * *", lock_ttl=3.0))
        await trio.sleep(120)
        stats = scheduler.statistics().tasks["slow"]
    assert jobs.nominals() == [at(9, 0)]
    assert stats.fired == 1
    assert stats.lease_losses == 0
    assert 9 <= locks.renewals <= 10  # every TTL/3 = 1 s during the 10 s enqueue


@pytest.mark.parametrize("count", [2, 3])
async def test_instances_sharing_locks_fire_each_occurrence_once_despite_skew(
    autojump_clock: trio.testing.MockClock, count: int
) -> None:
    ttl = 10.0
    skews = [0.0, ttl / 2, -ttl / 2][:count]
    locks = MemoryLockProvider()
    jobs = RecordingJobs()  # shared, no dedupe: a double fire would show as a duplicate
    task = every_second("shared", lock_ttl=ttl)

    async def instance(skew: float) -> None:
        wall = FakeWall(BASE, skew=skew)
        async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
            scheduler.register(task)
            await trio.sleep(60)

    async with trio.open_nursery() as nursery:
        for skew in skews:
            nursery.start_soon(instance, skew)
    nominals = jobs.nominals()
    assert len(nominals) == len(set(nominals))
    # Every occurrence from the latest start to the earliest stop fired (exactly once).
    first = BASE + timedelta(seconds=max(skews) + 1)
    last = BASE + timedelta(seconds=60 + min(skews) - 1)
    covered = {n for n in nominals if first <= n <= last}
    expected = {first.replace(microsecond=0) + timedelta(seconds=i) for i in range(1, 55)}
    expected = {e for e in expected if first <= e <= last}
    assert expected <= covered
    assert len(expected) > 40


@pytest.mark.parametrize("policy", ["skip", "fire_once"])
@pytest.mark.parametrize("fast_restarts", [False, True])
async def test_a_fast_clock_joining_or_restarting_loses_no_occurrence(
    autojump_clock: trio.testing.MockClock, policy: str, fast_restarts: bool
) -> None:
    """D10: an instance 2 s ahead starts (or restarts) after the others; it begins (or
    misfires) past occurrences the on-time instances have not reached, and its
    watermark moves past them. They must still fire, once each."""
    ttl = 10.0
    locks = MemoryLockProvider()
    jobs = RecordingJobs()
    task = every_second("shared", lock_ttl=ttl, misfire_policy=policy)

    async def instance(skew: float, start: float, stop: float) -> None:
        await trio.sleep(start)
        wall = FakeWall(BASE, skew=skew)
        wall.t0 -= start  # one real timeline for every instance
        async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
            scheduler.register(task)
            await trio.sleep(stop - start)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(instance, 0.0, 0.0, 30.0)
        nursery.start_soon(instance, -1.0, 0.0, 30.0)
        if fast_restarts:
            nursery.start_soon(instance, 2.0, 0.0, 8.3)  # killed (hard stop) ...
        nursery.start_soon(instance, 2.0, 10.3, 30.0)  # ... and (re)started
    nominals = jobs.nominals()
    assert len(nominals) == len(set(nominals))
    # Every occurrence the on-time instances cover, start to stop, fired once.
    expected = {BASE.replace(microsecond=0) + timedelta(seconds=i) for i in range(2, 28)}
    assert expected <= set(nominals), sorted(expected - set(nominals))


async def test_dormant_loop_ends_its_task_and_wakes_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """D3: between occurrences more than 5 s apart the loop is dormant; it is parked
    again before each occurrence, which fires on time, once. D6: on either runtime kind
    it never needs a Trio task after its start: it parks detached."""
    wall = FakeWall(at(8, 59, 58))
    jobs = RecordingJobs()
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        s.register(Task(name="ten", schedule="*/10 * * * * *"))
        await trio.sleep(wall.trio_time_of(at(9, 0, 3)) - trio.current_time())
        assert loop_tasks("ten") == 0  # dormant: next fire 09:00:10 is 7 s away
        assert s.statistics().tasks["ten"].next_fire == at(9, 0, 10)
        await trio.sleep(wall.trio_time_of(at(9, 0, 9)) - trio.current_time())
        # Woken 2 s ahead, parked for 09:00:10, detached (D6): still no Trio task.
        assert loop_tasks("ten") == 0
        assert s.statistics().tasks["ten"].next_fire == at(9, 0, 10)
        await trio.sleep(wall.trio_time_of(at(9, 1, 5)) - trio.current_time())
    assert jobs.nominals() == [at(9, 0) + timedelta(seconds=10 * i) for i in range(7)]
    for job, enqueued_at in zip(jobs.jobs, jobs.enqueued_at, strict=True):
        assert job.run_at is not None
        assert enqueued_at == wall.trio_time_of(job.run_at)  # on time, exactly (MockClock)


async def test_unregister_and_stop_reach_a_dormant_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 58))
    jobs = RecordingJobs()
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        s.register(Task(name="gone", schedule="0 * * * * *"))
        s.register(Task(name="kept", schedule="30 * * * * *"))
        await trio.sleep(10)
        assert loop_tasks("gone") == loop_tasks("kept") == 0
        s.unregister("gone")
        await trio.sleep(60)
        stopped_at = trio.current_time()
    # Leaving the scheduler with a dormant loop returns at once (its entry is cancelled).
    assert trio.current_time() == stopped_at
    assert [job.headers["x-trio-sched-task"] for job in jobs.jobs] == ["gone", "kept"]


async def test_dormant_loops_share_one_timer_entry_per_wake_up_instant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """D3: dormant loops waking at the same instant share one timer entry (no handle or
    heap entry per loop); an unregistered dormant loop leaves its group at once, and
    the rest wake and fire on time."""
    wall = FakeWall(at(8, 59, 30))
    jobs = RecordingJobs()
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        timer_before = len(s._timer)
        for i in range(300):
            s.register(Task(name=f"m{i}", schedule="0 * * * * *"))
        await trio.sleep(1)
        assert s.statistics().tasks["m0"].next_fire == at(9, 0)
        # All 300 are dormant until 08:59:58: one new timer entry for the lot.
        assert len(s._timer) == timer_before + 1
        groups = s._parking._dormant_groups
        assert [len(group) for group in groups.values()] == [300]
        for i in range(1, 300):
            s.unregister(f"m{i}")
        assert [len(group) for group in groups.values()] == [1]
        await trio.sleep(wall.trio_time_of(at(9, 0, 1)) - trio.current_time())
    assert jobs.nominals() == [at(9, 0)]
    assert jobs.enqueued_at == [wall.trio_time_of(at(9, 0))]


async def test_trigger_outcomes(autojump_clock: trio.testing.MockClock) -> None:
    wall = FakeWall(BASE)
    jobs = RecordingJobs()
    locks = MemoryLockProvider()
    scheduler = Scheduler(jobs=jobs, locks=locks, config=config(wall))
    scheduler.register(Task(name="daily", schedule="0 3 * * *", idempotency_key="nightly"))
    with pytest.raises(NotInitializedError):
        await scheduler.trigger("daily")
    async with trio.open_nursery() as nursery:
        await scheduler.start(nursery)
        job = await scheduler.trigger("daily")
        assert jobs.jobs == [job]
        assert job.headers["x-trio-sched-trigger"] == "manual"
        assert job.headers["x-trio-sched-occurrence"].startswith("trio_sched:daily:manual:")
        assert job.idempotency_key is not None
        assert job.idempotency_key.startswith("nightly:manual:")
        second = await scheduler.trigger("daily")
        assert second.idempotency_key != job.idempotency_key
        assert second.fencing_token is not None
        assert job.fencing_token is not None
        assert second.fencing_token > job.fencing_token
        with pytest.raises(NotFoundError):
            await scheduler.trigger("nope")
        if isinstance(jobs, BatchRecordingJobs):
            # The job's own result (a failed enqueue_many call as a whole is enqueued
            # again job by job, as for every occurrence, D6).
            jobs.job_errors["daily"] = ValueError("runtime broke")
        else:
            jobs.fail, jobs.failures = ValueError("runtime broke"), 1
        with pytest.raises(ValueError, match="runtime broke"):
            await scheduler.trigger("daily")
        stats = scheduler.statistics().tasks["daily"]
        assert stats.triggered == 2
        assert stats.errors == 1
        assert stats.fired == 0
        # Triggers do not move the schedule's watermark.
        assert await locks.get_watermarks(["trio_sched:daily"]) == {}
        await scheduler.stop()
    with pytest.raises(ClosedError):
        await scheduler.trigger("daily")


async def test_trigger_with_a_slow_runtime_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(BASE)
    jobs = RecordingJobs(delay=50)
    cfg = config(wall, dispatch_timeout=5)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as scheduler:
        scheduler.register(Task(name="daily", schedule="0 3 * * *"))
        start = trio.current_time()
        with pytest.raises(RetryableError, match="dispatch_timeout"):
            await scheduler.trigger("daily")
        assert trio.current_time() - start == pytest.approx(5)
    assert jobs.jobs == []


async def test_graceful_stop_drains_an_in_flight_dispatch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = RecordingJobs(delay=4)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        s.register(Task(name="hourly", schedule="0 * * * *"))
        await trio.sleep(2)  # 09:00 is dispatching (enqueue takes 4 s)
        assert s.statistics().in_flight_dispatches == 1
        left_at = trio.current_time()
    assert trio.current_time() - left_at == pytest.approx(3)
    assert jobs.nominals() == [at(9, 0)]


async def test_stop_bounds_a_stuck_dispatch_by_the_dispatch_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = RecordingJobs(delay=1000)
    events: list[SchedulerEvent] = []
    cfg = config(wall, dispatch_timeout=7, on_event=events.append)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as s:
        s.register(Task(name="hourly", schedule="0 * * * *"))
        await trio.sleep(2)
        left_at = trio.current_time()
    assert trio.current_time() - left_at == pytest.approx(6)
    assert jobs.jobs == []
    errors = [e for e in events if e.kind is EventKind.ERROR]
    assert len(errors) == 1
    assert isinstance(errors[0].error, RetryableError)


async def test_register_and_unregister_while_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(BASE)  # 08:59:58.5
    jobs = RecordingJobs()
    scheduler_ref: list[Scheduler] = []
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        scheduler_ref.append(s)
        await trio.sleep(3)  # 09:00:01.5
        s.register(every_second("a"))
        with pytest.raises(ConflictError):
            s.register(every_second("a"))
        await trio.sleep(3)  # 09:00:04.5: a fired 02, 03, 04
        s.unregister("a")
        with pytest.raises(NotFoundError):
            s.unregister("a")
        assert "a" not in s.tasks
        await trio.sleep(3)  # nothing fires
        s.register(every_second("a"))  # the same name again, at 09:00:07.5
        await trio.sleep(2)  # 09:00:09.5
        stats = s.statistics().tasks["a"]
    # Re-registering resumes from the persisted watermark (09:00:04), like a restart:
    # 05 and 06 are more than misfire_grace late (skipped), 07 is 0.5 s late (fires).
    assert jobs.nominals("a") == [at(9, 0, s) for s in (2, 3, 4, 7, 8, 9)]
    assert stats.misfired == stats.skipped == 1
    with pytest.raises(ClosedError):
        scheduler_ref[0].register(every_second("b"))
    with pytest.raises(ClosedError):
        scheduler_ref[0].unregister("a")


async def test_register_rejects_bad_input(autojump_clock: trio.testing.MockClock) -> None:
    scheduler = Scheduler(jobs=RecordingJobs(), locks=MemoryLockProvider())
    with pytest.raises(InvalidArgumentError):
        scheduler.register("not a task")  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as info:
        scheduler.register(Task(name="x", schedule="* * * * * * * *"))
    assert info.value.field == "schedule"
    with pytest.raises(InvalidArgumentError):
        Scheduler(jobs=RecordingJobs(), locks=MemoryLockProvider(), config="fast")  # type: ignore[arg-type]


async def test_occurrences_due_together_are_batched(autojump_clock: trio.testing.MockClock) -> None:
    wall = FakeWall(BASE)
    locks = WrappedLocks(MemoryLockProvider())
    jobs = RecordingJobs()
    n = 50
    async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
        for i in range(n):
            scheduler.register(every_second(f"t{i}"))
        await trio.sleep(3)  # 08:59:59, 09:00:00, 09:00:01
    assert len(locks.get_watermark_calls) == 1
    assert len(locks.get_watermark_calls[0]) == n
    assert locks.batch_sizes == [n, n, n]
    assert [len(marks) for marks in locks.advance_calls] == [n, n, n]
    assert len(jobs.jobs) == 3 * n


async def test_transient_acquire_errors_are_retried_within_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    locks = WrappedLocks(MemoryLockProvider())
    locks.batch_error, locks.batch_failures = RetryableError("flaky"), 2
    jobs = RecordingJobs()
    cfg = config(wall, retry_backoff=0.1, misfire_grace=1.0)
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as scheduler:
        scheduler.register(Task(name="hourly", schedule="0 * * * *"))
        await trio.sleep(5)
        stats = scheduler.statistics().tasks["hourly"]
    assert jobs.nominals() == [at(9, 0)]
    assert stats.errors == 2
    assert stats.fired == 1
    assert stats.last_lateness == pytest.approx(0.3)  # retried after 0.1 s, then 0.2 s


@pytest.mark.parametrize("policy", [MisfirePolicy.SKIP, MisfirePolicy.FIRE_ONCE])
async def test_outage_past_the_grace_window_follows_the_policy(
    autojump_clock: trio.testing.MockClock, policy: MisfirePolicy
) -> None:
    wall = FakeWall(at(8, 59, 59))
    locks = WrappedLocks(MemoryLockProvider())
    locks.batch_error, locks.batch_failures = OSError("connection refused"), 8
    jobs = RecordingJobs()
    cfg = config(wall, retry_backoff=0.5, retry_backoff_max=2.0, misfire_grace=1.0)
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as scheduler:
        scheduler.register(Task(name="hourly", schedule="0 * * * *", misfire_policy=policy))
        await trio.sleep(60)
        stats = scheduler.statistics().tasks["hourly"]
    if policy is MisfirePolicy.SKIP:
        assert jobs.jobs == []
        assert stats.skipped == 1
    else:
        assert jobs.nominals() == [at(9, 0)]  # fired once, late, when the backend came back
        assert stats.last_lateness is not None
        assert stats.last_lateness > 1.0
    assert stats.misfired == 1


async def test_one_outage_spanning_many_occurrences_is_one_misfire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # fire_once retries the latest late occurrence through an outage of several
    # seconds; the latest late one moves on every second, yet it is one misfire.
    wall = FakeWall(at(8, 59, 59))
    locks = WrappedLocks(MemoryLockProvider())
    locks.batch_error, locks.batch_failures = OSError("connection refused"), 12
    jobs = RecordingJobs()
    events: list[SchedulerEvent] = []
    cfg = config(
        wall, retry_backoff=0.5, retry_backoff_max=0.5, misfire_grace=1.0, on_event=events.append
    )
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as scheduler:
        scheduler.register(every_second("tick", misfire_policy="fire_once"))
        await trio.sleep(20)
        stats = scheduler.statistics().tasks["tick"]
    missed = [e for e in events if e.kind is EventKind.MISSED]
    assert len(missed) == 1, missed
    assert stats.misfired == 1
    nominals = jobs.nominals()
    assert len(nominals) == len(set(nominals))
    assert len(nominals) > 10  # on schedule again after the outage


async def test_non_transient_errors_move_on(autojump_clock: trio.testing.MockClock) -> None:
    wall = FakeWall(at(8, 59, 59))
    locks = WrappedLocks(MemoryLockProvider())
    locks.batch_error, locks.batch_failures = ValueError("bug in provider"), 1
    jobs = RecordingJobs()
    async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
        scheduler.register(Task(name="minutely", schedule="* * * * *"))
        await trio.sleep(62)
        stats = scheduler.statistics().tasks["minutely"]
    assert jobs.nominals() == [at(9, 1)]
    assert stats.errors == 1
    assert locks.batch_sizes == [1, 1]


async def test_duplicate_enqueue_counts_as_success(autojump_clock: trio.testing.MockClock) -> None:
    wall = FakeWall(at(8, 59, 59))
    jobs = RecordingJobs()
    jobs.fail, jobs.failures = ConflictError("duplicate idempotency key"), 1
    locks = MemoryLockProvider()
    async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
        scheduler.register(Task(name="hourly", schedule="0 * * * *"))
        await trio.sleep(2)
        stats = scheduler.statistics().tasks["hourly"]
    assert stats.fired == 1
    assert stats.errors == 0
    assert await locks.get_watermarks(["trio_sched:hourly"]) == {
        "trio_sched:hourly": _plan.epoch_ms(at(9, 0))
    }


async def test_events_channel_and_broken_hook(autojump_clock: trio.testing.MockClock) -> None:
    wall = FakeWall(BASE)

    def broken(event: SchedulerEvent) -> None:
        raise RuntimeError("hook bug")

    jobs = RecordingJobs()
    cfg = config(wall, on_event=broken)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as scheduler:
        receive = scheduler.events(max_buffer_size=2)
        scheduler.register(every_second())
        await trio.sleep(4)
        stats = scheduler.statistics()
    assert len(jobs.jobs) == 4  # a raising hook does not stop the schedule
    received = [event async for event in receive]  # ends when the scheduler closes
    assert [e.kind for e in received] == [EventKind.FIRED, EventKind.FIRED]
    assert received[0].job is jobs.jobs[0]
    assert stats.events_dropped == 2


async def test_open_scheduler_lets_the_body_exception_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs, locks = RecordingJobs(), MemoryLockProvider()
    with pytest.raises(KeyError):
        async with open_scheduler(jobs=jobs, locks=locks, config=config(FakeWall(BASE))):
            raise KeyError("boom")
    assert not jobs.closed  # providers passed in are not closed by default
    await locks.health_check()
    async with open_scheduler(
        jobs=jobs, locks=locks, config=config(FakeWall(BASE)), close_providers=True
    ):
        pass
    assert jobs.closed
    with pytest.raises(ClosedError):
        await locks.health_check()


async def test_start_stop_lifecycle(autojump_clock: trio.testing.MockClock) -> None:
    wall = FakeWall(BASE)
    jobs = RecordingJobs()
    scheduler = Scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall))
    scheduler.register(every_second())
    assert scheduler.statistics().state == "new"
    async with trio.open_nursery() as nursery:
        await scheduler.start(nursery)
        assert scheduler.running
        with pytest.raises(ConflictError):
            await scheduler.start(nursery)
        await trio.sleep(3)
        stopped_at = trio.current_time()
        await scheduler.stop()
        assert trio.current_time() == stopped_at  # parked loops are woken, not waited for
        assert scheduler.statistics().state == "closed"
        await scheduler.stop()  # idempotent
    assert len(jobs.jobs) == 3
    with pytest.raises(ClosedError):
        await scheduler.run()
    never = Scheduler(jobs=jobs, locks=MemoryLockProvider())
    await never.stop()
    assert never.statistics().state == "closed"


async def test_a_wall_clock_returning_naive_datetimes_stops_the_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Before: accepted, and every task loop then crashed at its first reading.
    naive = Config(wall_clock=lambda: datetime(2026, 1, 5, 9), logger=QUIET)
    jobs = RecordingJobs()
    with pytest.raises(ValidationError) as info:
        async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=naive):
            pytest.fail("the scheduler started")  # pragma: no cover
    assert info.value.field == "wall_clock"
    scheduler = Scheduler(jobs=jobs, locks=MemoryLockProvider(), config=naive)
    async with trio.open_nursery() as nursery:
        with pytest.raises(ValidationError):
            await scheduler.start(nursery)
    assert scheduler.statistics().state == "new"


async def test_the_state_can_be_awaited_from_another_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(BASE)
    scheduler = Scheduler(jobs=RecordingJobs(), locks=MemoryLockProvider(), config=config(wall))
    seen: list[tuple[str, float]] = []

    async def watch() -> None:
        for wanted in ("running", "stopping", "closed"):
            seen.append((await scheduler.wait_state(wanted), trio.current_time()))

    assert scheduler.state == "new"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await trio.sleep(1)
        await scheduler.start(nursery)
        assert scheduler.state == "running"
        await trio.sleep(1)
        scheduler.stop_nowait()
        assert scheduler.state == "stopping"  # at once: no new registrations or triggers
        with pytest.raises(ClosedError):
            scheduler.register(every_second("late"))
        assert await scheduler.wait_state("closed") == "closed"
    assert [state for state, _ in seen] == ["running", "stopping", "closed"]
    assert seen[0][1] == pytest.approx(1)
    assert seen[1][1] == pytest.approx(2)
    with pytest.raises(InvalidArgumentError):
        await scheduler.wait_state("asleep")
    with pytest.raises(InvalidArgumentError):
        await scheduler.wait_state()


async def test_hard_cancel_releases_nothing(autojump_clock: trio.testing.MockClock) -> None:
    wall = FakeWall(at(8, 59, 59))
    locks = MemoryLockProvider()
    jobs = RecordingJobs(delay=100)
    with trio.move_on_after(3):
        async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
            scheduler.register(Task(name="hourly", schedule="0 * * * *"))
            await trio.sleep_forever()
    assert jobs.jobs == []
    # The occurrence lock is still held (until its TTL): no other instance refires it.
    key = _plan.occurrence_key("trio_sched", "hourly", at(9, 0))
    assert await locks.acquire(key, 1.0) is None


class SlowBatchLocks(WrappedLocks):
    async def acquire_batch(self, requests):  # type: ignore[no-untyped-def]
        leases = await self.inner.acquire_batch(requests)
        await trio.sleep(5)  # the answer arrives late (a slow round trip)
        return leases


async def test_unregister_during_acquire_releases_the_unused_lease(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    inner = MemoryLockProvider()
    locks = SlowBatchLocks(inner)
    jobs = RecordingJobs()
    async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
        scheduler.register(Task(name="hourly", schedule="0 * * * *"))
        await trio.sleep(2)  # 09:00:01: the acquire batch for 09:00 is in flight
        scheduler.unregister("hourly")
        await trio.sleep(10)
    assert jobs.jobs == []
    # Nothing was dispatched, so the lease was released (D9): the key is free again.
    key = _plan.occurrence_key("trio_sched", "hourly", at(9, 0))
    assert await inner.acquire(key, 1.0) is not None


async def test_two_instances_split_lock_misses(autojump_clock: trio.testing.MockClock) -> None:
    locks = MemoryLockProvider()
    jobs = RecordingJobs()
    stats = []

    async def instance() -> None:
        wall = FakeWall(BASE)
        async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as scheduler:
            scheduler.register(every_second())
            await trio.sleep(10)
            stats.append(scheduler.statistics().tasks["tick"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(instance)
        nursery.start_soon(instance)
    assert len(jobs.jobs) == 10
    assert sum(s.fired for s in stats) == 10
    assert sum(s.lock_misses for s in stats) == 10  # the other instance found each held


@pytest.mark.parametrize("failure", ["raises", "returns None", "returns naive"])
async def test_a_wall_clock_failing_later_is_bridged_not_fatal(
    failure: str, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # K2 of Config: after a good start, a clock that breaks for a while (here from
    # 09:00:30 to 09:03:30) is replaced by its last good reading advanced by Trio's
    # clock, logged once, and the schedule goes on.
    wall = FakeWall(at(8, 59, 59))
    broken = {"on": False}

    def clock() -> datetime:
        reading = wall()
        if not broken["on"]:
            return reading
        if failure == "raises":
            raise RuntimeError("NTP daemon gone")
        return None if failure == "returns None" else reading.replace(tzinfo=None)  # type: ignore[return-value]

    logger = logging.getLogger("trio_sched.tests.clock")
    jobs = RecordingJobs()
    cfg = Config(wall_clock=clock, logger=logger)
    with caplog.at_level(logging.WARNING, logger="trio_sched.tests.clock"):
        async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as s:
            s.register(Task(name="m", schedule="* * * * *"))
            await trio.sleep(31)
            broken["on"] = True
            await trio.sleep(180)
            broken["on"] = False
            await trio.sleep(60)
            stats = s.statistics().tasks["m"]
    assert jobs.nominals("m") == [at(9, m) for m in range(5)]
    assert (stats.fired, stats.errors) == (5, 0)
    failures = [r for r in caplog.records if "last good reading" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR
    assert any("reads well again" in r.getMessage() for r in caplog.records)


async def test_trigger_goes_the_burst_way_and_retries_a_transient_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # O8 on the one pipeline (D6): the trigger's job carries the instance header like
    # every job, and a transient enqueue error is retried until it goes through.
    wall = FakeWall(BASE)
    jobs = RecordingJobs()
    events: list[SchedulerEvent] = []
    cfg = config(wall, instance="here", on_event=events.append)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as s:
        s.register(Task(name="daily", schedule="0 3 * * *"))
        jobs.fail, jobs.failures = RetryableError("blip"), 2
        job = await s.trigger("daily")
        stats = s.statistics().tasks["daily"]
    assert jobs.jobs == [job]
    assert job.headers["x-trio-sched-instance"] == "here"
    assert job.headers["x-trio-sched-trigger"] == "manual"
    assert (stats.triggered, stats.fired, stats.errors) == (1, 0, 0)
    fired = [e for e in events if e.kind is EventKind.FIRED]
    assert [(e.manual, e.job) for e in fired] == [(True, job)]
