"""Task policies in the running scheduler (issue 12): jitter (O13) and catch-up (O11),
on MockClock with a fake wall clock, both runtime kinds (conftest)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import trio
import trio.testing

from trio_sched import (
    EventKind,
    InvalidArgumentError,
    MisfirePolicy,
    NotFoundError,
    Scheduler,
    SchedulerEvent,
    Task,
    ValidationError,
    _plan,
    open_scheduler,
)
from trio_sched._requested import BackfillResult
from trio_sched.locks import MemoryLockProvider

from ._helpers import FakeWall, RecordingJobs, WrappedLocks, at, config

pytestmark = pytest.mark.usefixtures("jobs_mode")


async def test_jitter_fires_once_at_the_same_shifted_instant_whoever_wins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two instances share the locks: each occurrence is enqueued once, at nominal +
    its delay (the same delay on both), with the nominal instant as its identity."""
    wall = FakeWall(at(8, 59, 30))
    locks = MemoryLockProvider()
    jobs = [RecordingJobs(), RecordingJobs()]
    task = Task(name="jit", schedule="* * * * *", jitter=timedelta(seconds=40))

    async def instance(i: int) -> None:
        async with open_scheduler(jobs=jobs[i], locks=locks, config=config(wall)) as s:
            s.register(task)
            await trio.sleep(wall.trio_time_of(at(9, 5)) - trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(instance, 0)
        nursery.start_soon(instance, 1)
    fired = sorted(
        ((j, t) for r in jobs for j, t in zip(r.jobs, r.enqueued_at, strict=True)),
        key=lambda pair: pair[1],
    )
    assert [job.run_at for job, _ in fired] == [at(9, m) for m in range(5)]  # each once
    delays = []
    for job, enqueued_at in fired:
        assert job.run_at is not None
        ms = _plan.epoch_ms(job.run_at)
        delay = _plan.jitter_delay("jit", ms, 40.0, 60.0)
        delays.append(delay)
        # On time at its shifted instant (MockClock: exactly, to float precision).
        shifted = wall.trio_time_of(job.run_at) + delay
        assert enqueued_at == pytest.approx(shifted, abs=1e-6)
        assert job.idempotency_key == f"jit:{ms}"
        assert job.headers["x-trio-sched-nominal"] == job.run_at.isoformat()
    assert len(set(delays)) == 5
    assert all(0 <= d < 40 for d in delays)


async def test_jitter_lateness_is_measured_from_the_shifted_instant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A skip task whose delay is longer than the misfire grace still fires: it is
    judged from its shifted instant, not from the nominal one."""
    wall = FakeWall(at(8, 59, 50))
    events: list[SchedulerEvent] = []
    jobs = RecordingJobs()
    cfg = config(wall, misfire_grace=1.0, on_event=events.append)
    task = Task(name="late", schedule="* * * * *", jitter=50)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as s:
        s.register(task)
        await trio.sleep(wall.trio_time_of(at(9, 3)) - trio.current_time())
    assert jobs.nominals() == [at(9, 0), at(9, 1), at(9, 2)]
    fired = [e for e in events if e.kind is EventKind.FIRED]
    assert [e.lateness for e in fired] == pytest.approx([0.0, 0.0, 0.0], abs=1e-5)
    assert not [e for e in events if e.kind in (EventKind.SKIPPED, EventKind.MISSED)]


async def fire_all_run(cap: int) -> tuple[RecordingJobs, list[SchedulerEvent], dict[str, int]]:
    """A fire_all task whose watermark says it last ran at 08:59 starts at 09:10:30."""
    wall = FakeWall(at(9, 10, 30))
    events: list[SchedulerEvent] = []
    jobs = RecordingJobs()
    locks = MemoryLockProvider()
    cfg = config(wall, on_event=events.append)
    await locks.advance_watermarks(
        {_plan.watermark_name(cfg.lock_key_prefix, "catch"): _plan.epoch_ms(at(8, 59))}
    )
    task = Task(
        name="catch",
        schedule="* * * * *",
        misfire_policy=MisfirePolicy.FIRE_ALL,
        catchup_window=timedelta(hours=1),
        max_catchup=cap,
    )
    async with open_scheduler(jobs=jobs, locks=locks, config=cfg) as s:
        s.register(task)
        await trio.sleep(wall.trio_time_of(at(9, 12, 30)) - trio.current_time())
        stats = s.statistics().tasks["catch"]
    counters = {"fired": stats.fired, "misfired": stats.misfired, "skipped": stats.skipped}
    return jobs, events, counters


async def test_fire_all_dispatches_each_missed_occurrence_once_oldest_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs, events, counters = await fire_all_run(cap=100)
    assert jobs.nominals() == [at(9, m) for m in range(13)]  # 09:00-09:10 late, then on time
    assert counters == {"fired": 13, "misfired": 1, "skipped": 0}
    missed = [e for e in events if e.kind is EventKind.MISSED]
    assert [e.nominal for e in missed] == [at(9, 0)]  # one misfire for the whole catch-up


async def test_fire_all_cap_fires_the_newest_and_reports_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs, events, counters = await fire_all_run(cap=3)
    assert jobs.nominals() == [at(9, 8), at(9, 9), at(9, 10), at(9, 11), at(9, 12)]
    skipped = [e for e in events if e.kind is EventKind.SKIPPED]
    assert [(e.nominal, e.reason) for e in skipped] == [(at(9, 7), "catchup_cap")]
    assert counters == {"fired": 5, "misfired": 1, "skipped": 1}


async def test_backfill_dispatches_each_occurrence_once_and_counts_what_is_there(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(9, 0, 30))
    events: list[SchedulerEvent] = []
    jobs = RecordingJobs()
    cfg = config(wall, on_event=events.append)
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as s:
        s.register(Task(name="bf", schedule="* * * * *"))
        await trio.sleep(wall.trio_time_of(at(9, 1, 5)) - trio.current_time())
        assert jobs.nominals() == [at(9, 1)]  # the scheduled one
        first = await s.backfill("bf", at(8, 50), at(9, 1, 1))
        assert first == BackfillResult(occurrences=12, dispatched=11, already_present=1, failed=0)
        again = await s.backfill("bf", at(8, 50), at(9, 1, 1))
        assert again == BackfillResult(occurrences=12, dispatched=0, already_present=12, failed=0)
        stats = s.statistics().tasks["bf"]
    nominals = jobs.nominals()
    assert sorted(nominals) == [at(8, m) for m in range(50, 60)] + [at(9, 0), at(9, 1)]
    assert len(nominals) == len(set(nominals))
    for job in jobs.jobs:
        assert job.run_at is not None
        assert job.idempotency_key == f"bf:{_plan.epoch_ms(job.run_at)}"
    backfilled = [e for e in events if e.kind is EventKind.FIRED and e.reason == "backfill"]
    assert len(backfilled) == 11
    assert stats.fired == 12


async def test_backfill_refuses_bad_ranges_before_dispatching(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(9, 0, 30))
    jobs = RecordingJobs()
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        s.register(Task(name="bf", schedule="* * * * * *"))
        bad: list[tuple[object, object, int, str]] = [
            (at(9, 0), at(9, 5), 10_000, "end"),  # the future
            (at(9, 0), at(9, 0), 10_000, "end"),  # empty
            (at(9, 0).replace(tzinfo=None), at(9, 0, 10), 10_000, "start"),  # naive
            (at(8, 0), at(9, 0), 100, "limit"),  # 3,600 occurrences
            (at(8, 0), at(9, 0), 0, "limit"),
        ]
        for start, end, limit, field in bad:
            with pytest.raises(ValidationError) as info:
                await s.backfill("bf", start, end, limit=limit)  # type: ignore[arg-type]
            assert info.value.field == field
        with pytest.raises(NotFoundError):
            await s.backfill("nope", at(8, 0), at(9, 0))
        await trio.sleep(0.5)
    assert all(j.run_at is not None and j.run_at >= at(9, 0, 30) for j in jobs.jobs)


async def test_pause_on_one_instance_stops_every_instance_until_resumed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """U1, U2: after `pause` returns no instance dispatches; each occurrence is skipped
    (reason paused) by whoever asks for its lock; after `resume` the schedule goes on
    and the paused-over occurrences are not fired."""
    wall = FakeWall(at(8, 59, 58))
    locks = MemoryLockProvider()
    jobs = [RecordingJobs(), RecordingJobs()]
    events: list[SchedulerEvent] = []
    schedulers: dict[int, Scheduler] = {}
    paused_at: list[float] = []

    async def instance(i: int) -> None:
        cfg = config(wall, on_event=events.append, instance=f"i{i}")
        async with open_scheduler(jobs=jobs[i], locks=locks, config=cfg) as s:
            s.register(Task(name="sec", schedule="* * * * * *"))
            schedulers[i] = s
            await trio.sleep(wall.trio_time_of(at(9, 0, 20)) - trio.current_time())

    async def operator() -> None:
        await trio.sleep(
            wall.trio_time_of(
                at(
                    9,
                    0,
                    5,
                )
            )
            + 0.5
            - trio.current_time()
        )
        await schedulers[0].pause("sec", reason="maintenance")
        paused_at.append(trio.current_time())
        status = await schedulers[1].task_status("sec")
        assert status.paused
        assert status.paused_by == "i0"
        assert status.paused_reason == "maintenance"
        assert status.paused_since == wall() - timedelta(microseconds=wall().microsecond % 1000)
        await trio.sleep(5)
        stats = schedulers[1].statistics().tasks["sec"]
        assert stats.paused
        assert stats.paused_reason == "maintenance"
        assert await schedulers[1].resume("sec") is None
        assert not (await schedulers[0].task_status("sec")).paused

    async with trio.open_nursery() as nursery:
        nursery.start_soon(instance, 0)
        nursery.start_soon(instance, 1)
        nursery.start_soon(operator)
    nominals = sorted(n for r in jobs for n in r.nominals())
    # 08:59:59-09:00:05 before the pause, 09:00:11-09:00:19 after the resume at 09:00:10.5.
    expected = [at(8, 59, 59)] + [at(9, 0, s) for s in range(0, 6)]
    expected += [at(9, 0, s) for s in range(11, 20)]
    assert nominals == expected
    skipped = sorted(
        {e.nominal for e in events if e.kind is EventKind.SKIPPED and e.reason == "paused"}
    )
    assert skipped == [at(9, 0, s) for s in range(6, 11)]


async def test_task_registered_paused_waits_for_resume(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 58))
    jobs = RecordingJobs()
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        s.register(Task(name="p", schedule="* * * * * *", paused=True))
        await trio.sleep(wall.trio_time_of(at(9, 0, 5)) + 0.5 - trio.current_time())
        status = await s.task_status("p")
        assert status.paused
        assert status.paused_reason == "registered paused"
        assert s.statistics().tasks["p"].skipped == 7  # 08:59:59-09:00:05
        await s.resume("p")
        await trio.sleep(wall.trio_time_of(at(9, 0, 8)) + 0.5 - trio.current_time())
        assert (await s.task_status("p")).last_dispatched == at(9, 0, 8)
    assert jobs.nominals() == [at(9, 0, 6), at(9, 0, 7), at(9, 0, 8)]


async def test_resume_of_a_fire_all_task_backfills_the_paused_over_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 58))
    jobs = RecordingJobs()
    task = Task(
        name="all",
        schedule="* * * * * *",
        misfire_policy="fire_all",
        catchup_window=timedelta(seconds=3),
    )
    async with open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=config(wall)) as s:
        s.register(task)
        await trio.sleep(wall.trio_time_of(at(9, 0, 1)) + 0.5 - trio.current_time())
        await s.pause("all")
        await trio.sleep(wall.trio_time_of(at(9, 0, 9)) + 0.5 - trio.current_time())
        result = await s.resume("all")
        assert result == BackfillResult(occurrences=3, dispatched=3, already_present=0, failed=0)
        await trio.sleep(wall.trio_time_of(at(9, 0, 11)) + 0.5 - trio.current_time())
    # 09:00:07-09:00:09 (the 3 s window before 09:00:09.5) are backfilled at the resume.
    assert sorted(jobs.nominals()) == [at(8, 59, 59)] + [
        at(9, 0, s) for s in (0, 1, 7, 8, 9, 10, 11)
    ]


async def test_policies_the_backends_cannot_carry_out_are_refused_at_register(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(9, 0))
    scheduler = Scheduler(
        jobs=RecordingJobs(), locks=WrappedLocks(MemoryLockProvider()), config=config(wall)
    )
    with pytest.raises(ValidationError) as info:
        scheduler.register(Task(name="p", schedule="* * * * *", paused=True))
    assert info.value.field == "paused"
    for overlap in ("forbid", "replace"):
        with pytest.raises(ValidationError) as info:
            scheduler.register(Task(name="o", schedule="* * * * *", overlap=overlap))
        assert info.value.field == "overlap"
    scheduler.register(Task(name="ok", schedule="* * * * *", overlap="allow"))
    with pytest.raises(InvalidArgumentError):
        await scheduler.pause("ok")
