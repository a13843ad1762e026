"""``trio-sched demo``: a scheduler on the embedded backends, printing every fire.

Three tasks on `MemoryLockProvider` + `MemoryJobs`, handled by a worker by job name
(`open_worker`, as on Redis or PostgreSQL): one every second, one every 5 seconds with
a payload, one daily at 03:00 UTC with the fire_once misfire policy (triggered once by
hand at start so it shows up). Each handler prints the job's nominal time and its
lateness (enqueue time ``created_at`` minus nominal ``run_at``). On Ctrl-C or after
``seconds`` a summary prints fires per task and the lateness p50/max.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from typing import TextIO

import trio

from trio_sched._config import Config
from trio_sched._runtime import open_scheduler
from trio_sched._task import MisfirePolicy, Task
from trio_sched.jobs import Job, MemoryJobs, open_worker
from trio_sched.locks import MemoryLockProvider

__all__ = ["main"]

_QUEUE = "demo"


class _Recorder:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lateness: dict[str, list[float]] = defaultdict(list)
        self.manual: dict[str, int] = defaultdict(int)

    async def handle(self, job: Job) -> None:
        task = job.headers.get("x-trio-sched-task", job.name)
        manual = job.headers.get("x-trio-sched-trigger") == "manual"
        assert job.run_at is not None
        assert job.created_at is not None
        late_ms = (job.created_at - job.run_at).total_seconds() * 1000
        if manual:
            self.manual[task] += 1
        else:
            self.lateness[task].append(late_ms)
        payload = f" payload={job.payload.decode(errors='replace')}" if job.payload != b"{}" else ""
        kind = "trigger" if manual else "fire   "
        print(
            f"{kind} {task:<10} nominal {job.run_at:%H:%M:%S.%f}"[:-3]
            + f" UTC  lateness {late_ms:7.3f} ms  fencing {job.fencing_token}{payload}",
            file=self.out,
            flush=True,
        )

    def summary(self) -> None:
        print("\nsummary", file=self.out)
        names = sorted(set(self.lateness) | set(self.manual))
        if not names:
            print("  nothing fired", file=self.out)
        for name in names:
            values = self.lateness.get(name, [])
            line = f"  {name:<10} fired {len(values):4d}"
            if self.manual.get(name):
                line += f"  triggered {self.manual[name]}"
            if values:
                line += (
                    f"  lateness p50 {statistics.median(values):.3f} ms  max {max(values):.3f} ms"
                )
            print(line, file=self.out)
        self.out.flush()


def _tasks() -> list[Task]:
    return [
        Task(name="heartbeat", schedule="* * * * * *", queue=_QUEUE, job_name="heartbeat"),
        Task(
            name="report",
            schedule="*/5 * * * * *",
            queue=_QUEUE,
            job_name="build_report",
            payload=b'{"report": "sales", "format": "pdf"}',
        ),
        Task(
            name="nightly",
            schedule="0 3 * * *",
            queue=_QUEUE,
            job_name="nightly_cleanup",
            misfire_policy=MisfirePolicy.FIRE_ONCE,
        ),
    ]


async def _run(recorder: _Recorder, seconds: float | None) -> None:
    tasks = _tasks()
    handlers = {task.effective_job_name: recorder.handle for task in tasks}
    async with MemoryJobs() as jobs, open_worker(jobs, handlers, queues=[_QUEUE]):
        locks = MemoryLockProvider()
        async with open_scheduler(jobs=jobs, locks=locks, config=Config()) as scheduler:
            for task in tasks:
                scheduler.register(task)
                upcoming = task.cron.next_after(scheduler.config.wall_clock())
                print(
                    f"registered {task.name:<10} {task.schedule!r:<16} "
                    f"next {upcoming:%Y-%m-%d %H:%M:%S %Z}",
                    file=recorder.out,
                )
            await scheduler.trigger("nightly")
            until = "Ctrl-C" if seconds is None else f"{seconds:g} s"
            print(f"running until {until}", file=recorder.out, flush=True)
            await trio.sleep(math.inf if seconds is None else seconds)


def main(seconds: float | None) -> int:
    """Run the demo for `seconds` (``None``: until Ctrl-C), print a summary; exit code."""
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        print(f"error: seconds must be a finite number >= 0, got {seconds!r}", file=sys.stderr)
        return 2
    recorder = _Recorder(sys.stdout)
    try:
        trio.run(_run, recorder, seconds)
    except* KeyboardInterrupt:
        print("\ninterrupted", file=recorder.out)
    recorder.summary()
    return 0
