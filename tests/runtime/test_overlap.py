"""The overlap policy (O12, rules V1-V5 of `_overlap`) with `MemoryJobs` and a worker,
on MockClock: a handler that runs longer than the period."""

from __future__ import annotations

import itertools
from datetime import datetime

import trio
import trio.testing

from trio_sched import EventKind, SchedulerEvent, Task, open_scheduler
from trio_sched.jobs import Job, JobState, MemoryJobs, open_worker
from trio_sched.locks import MemoryLockProvider

from ._helpers import FakeWall, at, config

Run = tuple[datetime, float, float, bool]


async def run(overlap: str) -> tuple[list[Run], list[SchedulerEvent], dict[str, JobState]]:
    """A */10 s task whose handler takes 25 s, 09:00:00 to 09:01:05: each run's
    (nominal, start, end, cancelled), the events, and the state of each fired job
    before the runtime closes."""
    wall = FakeWall(at(8, 59, 58))
    events: list[SchedulerEvent] = []
    jobs = MemoryJobs(visibility_timeout=3.0)
    runs: list[tuple[datetime, float, float, bool]] = []

    async def work(job: Job) -> None:
        assert job.run_at is not None
        started = trio.current_time()
        try:
            await trio.sleep(25)
        except trio.Cancelled:
            runs.append((job.run_at, started, trio.current_time(), True))
            raise
        runs.append((job.run_at, started, trio.current_time(), False))

    cfg = config(wall, on_event=events.append)
    task = Task(name="slow", job_name="work", schedule="*/10 * * * * *", overlap=overlap)
    async with (
        jobs,
        open_worker(jobs, {"work": work}, poll_wait=0.5),
        open_scheduler(jobs=jobs, locks=MemoryLockProvider(), config=cfg) as scheduler,
    ):
        scheduler.register(task)
        await trio.sleep(wall.trio_time_of(at(9, 1, 5)) - trio.current_time())
        states = {}
        for event in events:
            if event.kind is EventKind.FIRED and event.job is not None:
                key = event.job.idempotency_key
                assert key is not None
                states[key] = await jobs.job_state(key)
    return sorted(runs), events, states


async def test_forbid_skips_while_the_previous_job_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs, events, _ = await run("forbid")
    # 09:00:00 runs until :25, so :10 and :20 are skipped; :30 runs until :55 (:40, :50
    # skipped); 09:01:00 runs until the worker stops at 09:01:05.
    assert [(r[0], r[3]) for r in runs] == [
        (at(9, 0, 0), False),
        (at(9, 0, 30), False),
        (at(9, 1, 0), True),
    ]
    for (_, _, end, _), (_, start, _, _) in itertools.pairwise(runs):
        assert end <= start  # never two at once
    skipped = [e.nominal for e in events if e.kind is EventKind.SKIPPED]
    assert skipped == [at(9, 0, 10), at(9, 0, 20), at(9, 0, 40), at(9, 0, 50)]
    assert all(e.reason == "overlap" for e in events if e.kind is EventKind.SKIPPED)
    fired = [e.nominal for e in events if e.kind is EventKind.FIRED]
    assert fired == [at(9, 0, 0), at(9, 0, 30), at(9, 1, 0)]


async def test_replace_cancels_the_previous_job_and_dispatches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs, events, states = await run("replace")
    fired = [e.nominal for e in events if e.kind is EventKind.FIRED]
    assert fired == [at(9, 0, s) for s in (0, 10, 20, 30, 40, 50)] + [at(9, 1, 0)]
    assert not [e for e in events if e.kind is EventKind.SKIPPED]
    # Every run but the last was cancelled by its successor, within one lease extension
    # period (visibility_timeout / 3 = 1 s) of the successor's dispatch.
    ended = [r for r in runs if r[0] < at(9, 1, 0)]
    assert [r[0] for r in ended] == [at(9, 0, s) for s in (0, 10, 20, 30, 40, 50)]
    for nominal, start, end, cancelled in ended:
        assert cancelled, nominal
        assert end - start <= 10 + 1.0 + 0.01
    for s in (0, 10, 20, 30, 40, 50):
        assert states[f"slow:{1767603600000 + s * 1000}"] is JobState.CANCELLED
    assert states[f"slow:{1767603600000 + 60_000}"] is JobState.RUNNING
