"""CPU per fire of the runtime alone, on Trio's MockClock.

Run from the project root::

    python -m benchmarks.runtime_cpu --tasks 10000 --bursts 5 [--no-gc] [--per-job]

N every-second tasks on the memory backends, a fake wall clock driven by Trio's
``MockClock`` (autojump), so bursts follow each other as fast as the CPU allows and no
idle time, timer spin or machine noise between bursts enters the figure:
``time.process_time()`` over `--bursts` bursts (after two warm-up bursts) divided by
the fires. The jobs runtime records and drops each job (no handlers), like the suite's
"no handlers" rows. ``--no-gc`` disables the garbage collector for the whole run (a
diagnostic); ``--per-job`` hides ``enqueue_many``, so the burst enqueues job by job as
for a plain runtime (rule D6). Prints one line; asserts nothing. The real-time
suite (``python -m benchmarks suite``) is where the goals are judged.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import trio
import trio.testing

from trio_sched import Config, Scheduler, Task
from trio_sched.jobs import Job
from trio_sched.locks import MemoryLockProvider


class _SinkJobs:
    """Counts jobs and drops them after one checkpoint per call."""

    def __init__(self) -> None:
        self.fires = 0

    async def enqueue(self, job: Job) -> None:
        self.fires += 1
        await trio.lowlevel.checkpoint()

    async def health_check(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class _BatchSinkJobs(_SinkJobs):
    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        self.fires += len(jobs)
        await trio.lowlevel.checkpoint()
        return [None] * len(jobs)


async def measure(tasks: int, bursts: int, *, per_job: bool) -> tuple[int, float, int]:
    """(fires, CPU seconds, full collections) over `bursts` bursts of `tasks` fires."""
    base = datetime(2026, 1, 5, 8, 59, 50, 500000, tzinfo=UTC)
    t0 = trio.current_time()

    def wall() -> datetime:
        return base + timedelta(seconds=trio.current_time() - t0)

    jobs = _SinkJobs() if per_job else _BatchSinkJobs()
    scheduler = Scheduler(jobs=jobs, locks=MemoryLockProvider(), config=Config(wall_clock=wall))
    for i in range(tasks):
        scheduler.register(Task(name=f"t{i}", schedule="* * * * * *"))
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await trio.sleep(3.0)  # every loop parked, two bursts fired
        fires0 = jobs.fires
        full0 = gc.get_stats()[2]["collections"]
        cpu0 = time.process_time()
        await trio.sleep(bursts)
        cpu = time.process_time() - cpu0
        fires = jobs.fires - fires0
        full = gc.get_stats()[2]["collections"] - full0
        scheduler.stop_nowait()
    return fires, cpu, full


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--no-gc", action="store_true", help="disable the garbage collector")
    parser.add_argument(
        "--per-job", action="store_true", help="hide enqueue_many: a plain runtime (rule D6)"
    )
    args = parser.parse_args(argv)
    if args.no_gc:
        gc.disable()
    fires, cpu, full = trio.run(
        lambda: measure(args.tasks, args.bursts, per_job=args.per_job),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    mode = "per-job enqueue (D6)" if args.per_job else "enqueue_many (D6)"
    print(
        f"tasks={args.tasks} bursts={args.bursts} {mode} gc={'off' if args.no_gc else 'on'}: "
        f"{fires} fires, CPU per fire {cpu / fires * 1e6:.1f} us, "
        f"full collections {full}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
