"""The APScheduler 4 side of the benchmark suite (``apscheduler==4.0.0a6``, bench extra).

Rules of this module (what each measurement means, so the comparison stays fair):
- A1 APScheduler runs in the same process and the same Trio run as the measurement, as
  ``AsyncScheduler`` under AnyIO's Trio backend, with its default `MemoryDataStore` and
  `LocalEventBroker`, role "both" (it schedules and runs jobs, as our scheduler plus
  `MemoryJobs` do), and only the ``AsyncJobExecutor`` (no thread or process pool).
- A2 Every benchmarked schedule is one APScheduler *schedule* with a
  ``CronTrigger(second=...)`` (whole-second fields, like our ``* * * * * *``) on ONE
  shared task whose ``max_running_jobs`` is ``None`` (the default of 1 would serialise
  the jobs of all schedules). ``max_concurrent_jobs`` is the same as our
  ``MemoryJobs(max_concurrency=...)``.
- A3 "enqueued" = the wall clock (``time.time()``) when the scheduler calls
  ``data_store.add_job(job)`` for the occurrence (recorded first thing in a
  `MemoryDataStore` subclass), minus ``job.scheduled_fire_time``: the point where the
  job is handed to the store, as our ``JobsRuntime.enqueue``. "started" = the wall clock
  at the first line of the job function, minus its ``scheduled_fire_time`` (read from
  ``apscheduler.current_job``), as our `MemoryJobs` handler.
- A4 Nothing here asserts on timing; callers record and print.

Imports APScheduler lazily, so the rest of the suite runs without it (`available`).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import trio


def version() -> str | None:
    """The installed APScheduler version, or None when it is not installed."""
    try:
        return metadata.version("apscheduler")
    except metadata.PackageNotFoundError:
        return None


def available() -> bool:
    return version() is not None


@dataclass
class Records:
    """(wall time, nominal timestamp) pairs of enqueues and job starts."""

    enqueued: list[tuple[float, float]] = field(default_factory=list)
    started: list[tuple[float, float]] = field(default_factory=list)
    # Fires per nominal instant, to know when a burst is complete.
    enqueued_by: dict[float, int] = field(default_factory=dict)
    started_by: dict[float, int] = field(default_factory=dict)


def _recording_store(records: Records) -> Any:
    import attrs
    from apscheduler.datastores.memory import MemoryDataStore

    @attrs.define(eq=False, repr=False)
    class RecordingDataStore(MemoryDataStore):  # type: ignore[misc]
        async def add_job(self, job: Any) -> None:
            now = time.time()
            fire = job.scheduled_fire_time
            if fire is not None:
                nominal = fire.timestamp()
                records.enqueued.append((now, nominal))
                records.enqueued_by[nominal] = records.enqueued_by.get(nominal, 0) + 1
            await super().add_job(job)

    return RecordingDataStore()


def _job_function(records: Records) -> Callable[[], Any]:
    from apscheduler import current_job

    async def bench_job() -> None:
        now = time.time()
        fire = current_job.get().scheduled_fire_time
        if fire is not None:
            nominal = fire.timestamp()
            records.started.append((now, nominal))
            records.started_by[nominal] = records.started_by.get(nominal, 0) + 1

    return bench_job


def _scheduler(records: Records, max_concurrency: int, handlers: bool = True) -> Any:
    from apscheduler import AsyncScheduler
    from apscheduler.executors.async_ import AsyncJobExecutor

    return AsyncScheduler(
        _recording_store(records),
        job_executors={"async": AsyncJobExecutor()},
        max_concurrent_jobs=max_concurrency,
        role="both" if handlers else "scheduler",
    )


async def _add_schedules(scheduler: Any, func: Any, n: int, second: str) -> float:
    """Register `n` schedules; return the seconds it took.

    Each trigger gets a whole-second ``start_time``: APScheduler 4 keeps the fraction of
    its start time (default: now) in every fire time, so without it each schedule would
    fire at its own sub-second offset instead of on the whole second.
    """
    from apscheduler.triggers.cron import CronTrigger

    await scheduler.configure_task("bench", func=func, max_running_jobs=None)
    began = time.perf_counter()
    for i in range(n):
        start = _whole_second_now()
        trigger = CronTrigger(second=second, start_time=start, timezone=UTC)
        await scheduler.add_schedule("bench", trigger, id=f"s{i}")
    return time.perf_counter() - began


def _whole_second_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _idle_trigger() -> Any:
    """A trigger that does not fire during a benchmark: January 1st, 00:00:00 UTC."""
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger(
        month=1, day=1, hour=0, minute=0, second=0, start_time=_whole_second_now(), timezone=UTC
    )


@dataclass
class BurstRun:
    records: Records
    register_s: float
    cpu_s: float
    window_s: float
    period_s: int


async def run_bursts(
    n: int,
    bursts: int,
    period_s: int,
    max_concurrency: int,
    settle: Callable[[], Any],
    handlers: bool = True,
) -> BurstRun:
    """`n` schedules firing every `period_s` seconds, run for `bursts` periods.

    `settle` is awaited after registration (the suite uses it to start on a fresh
    period). CPU is ``time.process_time()`` over the measured window. ``handlers=False``
    runs the scheduler in the "scheduler" role (jobs are added to the store, never run).
    """
    records = Records()
    scheduler = _scheduler(records, max_concurrency, handlers)
    second = "*" if period_s == 1 else f"*/{period_s}"
    async with scheduler:
        register_s = await _add_schedules(scheduler, _job_function(records), n, second)
        await scheduler.start_in_background()
        await settle()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        # CPU over exactly `bursts` periods (as on our side), then let the last burst
        # finish (APScheduler may take seconds for large bursts).
        await trio.sleep(bursts * period_s)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        await _drain(records, n, period_s, handlers)
        await scheduler.stop()
        await scheduler.wait_until_stopped()
    return BurstRun(records, register_s, cpu1 - cpu0, wall1 - wall0, period_s)


async def _drain(records: Records, n: int, period_s: int, handlers: bool) -> None:
    """Wait until the latest burst seen is complete (enqueued, and started if handled)."""
    deadline = trio.current_time() + max(2.0, 3.0 * period_s)
    while trio.current_time() < deadline:
        last = max(records.enqueued_by, default=None)
        if last is not None:
            done_enqueued = records.enqueued_by[last] >= n
            done_started = not handlers or records.started_by.get(last, 0) >= n
            if done_enqueued and done_started:
                return
        await trio.sleep(0.05)


async def idle_cpu(n: int, seconds: float) -> float:
    """process_time over `seconds` with `n` registered schedules that do not fire."""
    records = Records()
    scheduler = _scheduler(records, 100)
    async with scheduler:
        func = _job_function(records)
        await scheduler.configure_task("bench", func=func, max_running_jobs=None)
        for i in range(n):
            await scheduler.add_schedule("bench", _idle_trigger(), id=f"s{i}")
        await scheduler.start_in_background()
        await trio.sleep(0.5)
        cpu0 = time.process_time()
        await trio.sleep(seconds)
        cpu = time.process_time() - cpu0
        await scheduler.stop()
        await scheduler.wait_until_stopped()
    return cpu


async def memory_per_schedule(n: int) -> dict[str, float]:
    """Bytes per idle schedule (tracemalloc, scheduler running) and registration time.

    Registration is timed without tracemalloc (it slows allocation down), on a separate
    scheduler; memory is the traced size after registering `n` schedules and starting
    the scheduler, minus the traced size before, divided by `n`.
    """
    records = Records()
    scheduler = _scheduler(records, 100)
    async with scheduler:
        register_s = await _add_schedules(scheduler, _job_function(records), n, "0")
        await scheduler.stop()
    del scheduler
    gc.collect()
    records = Records()
    scheduler = _scheduler(records, 100)
    tracemalloc.start()
    try:
        async with scheduler:
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            func = _job_function(records)
            await scheduler.configure_task("bench", func=func, max_running_jobs=None)
            for i in range(n):
                await scheduler.add_schedule("bench", _idle_trigger(), id=f"s{i}")
            await scheduler.start_in_background()
            await trio.sleep(0.3)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
            await scheduler.stop()
            await scheduler.wait_until_stopped()
    finally:
        tracemalloc.stop()
    return {
        "bytes_per_schedule": (after - before) / n,
        "register_s": register_s,
        "register_us_per_schedule": register_s / n * 1e6,
    }
