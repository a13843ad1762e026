"""Rule D2 of the runtime: loops are started by one starter task, ``_START_CHUNK`` at
a time (one ``get_watermarks`` call per chunk, then a yield), each parked on its first
occurrence without a Trio task of its own; a stop during the start ends it at once."""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing

from trio_sched import Task, _parking, open_scheduler
from trio_sched.locks import MemoryLockProvider

from ._helpers import FakeWall, RecordingJobs, WrappedLocks, at, config, loop_tasks


class StepWatch(trio.abc.Instrument):
    """Counts the Trio tasks named ``trio_sched:<task>`` that ever ran a step."""

    def __init__(self) -> None:
        self.loop_task_steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.startswith("trio_sched:t"):
            self.loop_task_steps += 1


async def test_loops_start_in_chunks_without_a_task_each(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 58))
    locks = WrappedLocks(MemoryLockProvider())
    jobs = RecordingJobs()
    chunk = _parking.START_CHUNK
    n = 2 * chunk + 200
    watch = StepWatch()
    trio.lowlevel.add_instrument(watch)
    try:
        async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as s:
            for i in range(n):
                s.register(Task(name=f"t{i}", schedule="0 9 * * *"))  # due in 2 s
            await trio.sleep(0.5)
            parked = sum(1 for t in s.statistics().tasks.values() if t.next_fire == at(9, 0))
            await trio.sleep(2)
            fired = sum(t.fired for t in s.statistics().tasks.values())
            tasks_now = sum(loop_tasks(f"t{i}") for i in range(n))
    finally:
        trio.lowlevel.remove_instrument(watch)
    assert [len(names) for names in locks.get_watermark_calls] == [chunk, chunk, 200]
    assert parked == n
    assert fired == n
    assert sorted(jobs.nominals()) == [at(9, 0)] * n
    assert watch.loop_task_steps == 0  # no loop ever needed a Trio task
    assert tasks_now == 0


class SlowWatermarks(WrappedLocks):
    async def get_watermarks(self, names: Sequence[str]) -> dict[str, int]:
        self.get_watermark_calls.append(list(names))
        await trio.sleep(100)
        return await self.inner.get_watermarks(names)


async def test_a_stop_during_the_start_ends_it_at_once_and_nothing_fires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 59))
    locks = SlowWatermarks(MemoryLockProvider())
    jobs = RecordingJobs()
    async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as s:
        for name in ("a", "b"):
            s.register(Task(name=name, schedule="* * * * * *"))
        await trio.sleep(1)
        left = trio.current_time()
    assert trio.current_time() == left  # the watermark read was abandoned, not awaited
    assert len(locks.get_watermark_calls) == 1
    assert jobs.jobs == []


async def test_a_task_registered_while_others_start_joins_the_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = FakeWall(at(8, 59, 58))
    locks = WrappedLocks(MemoryLockProvider())
    jobs = RecordingJobs()
    async with open_scheduler(jobs=jobs, locks=locks, config=config(wall)) as s:
        s.register(Task(name="early", schedule="0 9 * * *"))
        await trio.lowlevel.checkpoint()
        s.register(Task(name="late", schedule="0 9 * * *"))
        await trio.sleep(3)
    assert sorted(j.headers["x-trio-sched-task"] for j in jobs.jobs) == ["early", "late"]
    assert sorted(n for names in locks.get_watermark_calls for n in names) == [
        "trio_sched:early",
        "trio_sched:late",
    ]
