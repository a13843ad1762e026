"""Pieces the suite and the stall scenario share: the two kinds of recording jobs
runtime, a timing lock-provider wrapper, a loop-stall probe and "every loop parked".

Rules of this module:
- H1 Two jobs-runtime kinds (issue 10). ``enqueue``: `PlainRecordingJobs` has exactly
  the three methods of the `trio_sched.jobs.JobsRuntime` protocol (``enqueue``,
  ``health_check``, ``aclose``) and nothing else, so the scheduler sees a plain user
  runtime. ``enqueue_many``: `RecordingJobs` adds ``enqueue_many`` (a
  `BatchJobsRuntime`, as `MemoryJobs` is). Both wrap `MemoryJobs`, or drop each job after
  one checkpoint per call ("sink", the scheduler alone).
- H2 "Enqueued" is the wall clock first thing in ``enqueue``; for ``enqueue_many`` it is
  the wall clock when the call RETURNS (every job of it accepted): the stricter reading.
- H3 Every loop parked (`wait_parked`): the scheduler has read the watermark of every
  task (counted in the lock-provider wrapper, which costs nothing; or no read came for
  1 s, for a runtime that reads them otherwise), then the event loop
  has been quiet (3 consecutive 10 ms sleeps each overslept by less than 2 ms), then ONE
  ``statistics()`` snapshot shows a next fire for every task (repeated until it does).
  ``statistics()`` is never polled in a tight loop: one snapshot of 10,000 tasks holds
  the loop for ~0.1 s here, which would slow the start-up being measured.
- H4 Loop stall (`LoopProbe`): a Trio task sleeping 10 ms in a loop; a sample is its
  oversleep (``trio.current_time()`` after the sleep minus before minus 10 ms). A sample
  that spans a stall the harness itself caused (a ``statistics()`` call) is dropped.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import trio

from trio_sched import Scheduler
from trio_sched.jobs import Job, MemoryJobs
from trio_sched.locks import AcquireRequest, LockLease

KINDS = ("enqueue", "enqueue_many")


class PlainRecordingJobs:
    """A user's plain runtime (rule H1): ``enqueue``, ``health_check``, ``aclose`` only."""

    def __init__(self, inner: MemoryJobs) -> None:
        self.inner = inner
        self.enqueued: list[tuple[float, float]] = []
        self.started: list[tuple[float, float]] = []
        self.names: list[str] = []
        self.keep_names = False
        self.sink = False  # record and drop (the scheduler alone)
        # Fires per nominal instant, to know when a burst is complete.
        self.enqueued_by: dict[float, int] = {}
        self.started_by: dict[float, int] = {}

    def _note(self, now: float, job: Job) -> None:
        assert job.run_at is not None
        nominal = job.run_at.timestamp()
        self.enqueued.append((now, nominal))
        self.enqueued_by[nominal] = self.enqueued_by.get(nominal, 0) + 1
        if self.keep_names:
            self.names.append(job.name)

    async def enqueue(self, job: Job) -> None:
        self._note(time.time(), job)
        if self.sink:
            # One checkpoint, as MemoryJobs.enqueue makes, then drop the job: buffered
            # jobs that nobody consumes would pile up and slow the garbage collector.
            await trio.lowlevel.checkpoint()
            return
        await self.inner.enqueue(job)

    async def handler(self, job: Job) -> None:
        now = time.time()
        assert job.run_at is not None
        nominal = job.run_at.timestamp()
        self.started.append((now, nominal))
        self.started_by[nominal] = self.started_by.get(nominal, 0) + 1

    async def health_check(self) -> None:
        await self.inner.health_check()

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingJobs(PlainRecordingJobs):
    """The same recorder with ``enqueue_many`` (a `BatchJobsRuntime`, rule H1)."""

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        """One call per burst; every job is recorded when the call returns (rule H2)."""
        if self.sink:
            await trio.lowlevel.checkpoint()
            results: list[Exception | None] = [None] * len(jobs)
        else:
            results = await self.inner.enqueue_many(jobs)
        now = time.time()
        for job in jobs:
            self._note(now, job)
        return results


def recorder(kind: str, inner: MemoryJobs) -> PlainRecordingJobs:
    """The recording runtime of `kind` ("enqueue" or "enqueue_many")."""
    if kind == "enqueue":
        return PlainRecordingJobs(inner)
    if kind == "enqueue_many":
        return RecordingJobs(inner)
    raise ValueError(f"unknown jobs-runtime kind {kind!r}")


class TimedLocks:
    """A `LockProvider` wrapper timing ``acquire_batch`` and counting watermark reads."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[tuple[float, int, int]] = []  # (seconds, requested, granted)
        self.watermark_names = 0  # names asked for in get_watermarks (rule H3)
        self.watermark_last = 0.0  # trio.current_time() of the last read

    async def acquire_batch(self, requests: Sequence[AcquireRequest]) -> list[LockLease | None]:
        began = time.perf_counter()
        result = await self.inner.acquire_batch(requests)
        granted = sum(1 for lease in result if lease is not None)
        self.batches.append((time.perf_counter() - began, len(requests), granted))
        return list(result)

    async def get_watermarks(self, names: Sequence[str]) -> Mapping[str, int]:
        result = await self.inner.get_watermarks(names)
        self.watermark_names += len(names)
        self.watermark_last = trio.current_time()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LoopProbe:
    """Rule H4: how long the event loop is held, seen by a task sleeping 10 ms."""

    PERIOD = 0.01

    def __init__(self) -> None:
        self.walls = array("d")  # wall clock at each wake-up
        self.overs = array("d")  # its oversleep, seconds
        self._epoch = 0

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """Drop the sample spanning this block (a stall the harness causes)."""
        self._epoch += 1
        try:
            yield
        finally:
            self._epoch += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            epoch, before = self._epoch, trio.current_time()
            await trio.sleep(self.PERIOD)
            over = trio.current_time() - before - self.PERIOD
            if epoch == self._epoch:
                self.walls.append(time.time())
                self.overs.append(over)

    def summary(self, since: float = -math.inf, until: float = math.inf) -> dict[str, Any]:
        """Oversleep statistics (ms) of the samples with a wall time in [since, until]."""
        pairs = zip(self.walls, self.overs, strict=True)
        picked = [(o, w) for w, o in pairs if since <= w <= until]
        overs = sorted(o * 1000.0 for o, _ in picked)
        worst = sorted(picked, reverse=True)[:5]
        return {
            "samples": len(overs),
            "p50_ms": _nearest(overs, 0.50),
            "p99_ms": _nearest(overs, 0.99),
            "max_ms": overs[-1] if overs else math.nan,
            # The longest stalls and when they ended (wall clock, and seconds past the
            # minute, where a per-minute burst shows).
            "worst": [
                {"ms": o * 1000.0, "wall": w, "second_of_minute": round(w % 60.0, 3)}
                for o, w in worst
            ],
        }


def _nearest(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def parked_count(scheduler: Scheduler) -> int:
    stats = scheduler.statistics()
    return sum(1 for t in stats.tasks.values() if t.next_fire is not None)


async def _quiet(period: float = 0.01, slack: float = 0.002, runs: int = 3) -> float:
    """Wait for `runs` consecutive sleeps of `period` overslept by under `slack`;
    return when the first of them began (``trio.current_time()``)."""
    calm, began = 0, trio.current_time()
    while calm < runs:
        before = trio.current_time()
        await trio.sleep(period)
        if trio.current_time() - before - period < slack:
            calm, began = calm + 1, began if calm else before
        else:
            calm = 0
    return began


async def wait_parked(
    scheduler: Scheduler,
    locks: TimedLocks,
    n: int,
    timeout: float,
    probe: LoopProbe | None = None,
    watermarks_before: int = 0,
) -> dict[str, Any]:
    """Rule H3. Returns when every loop is parked or `timeout` passed, with timings.

    ``parked_s`` is when the snapshot that saw every loop parked was taken (an upper
    bound: at most the quiet check, ~30 ms, and any earlier snapshots later than the
    real instant); ``quiet_s`` when the loop went quiet before it; ``watermarks_s``
    when the last watermark read returned (all relative to the call).
    `watermarks_before`: names read before this call (tasks not part of this wait).
    """
    began = trio.current_time()
    deadline = began + timeout
    target = watermarks_before + n
    # Watermark reads first (cheap to watch); stop watching when none came for 1 s (a
    # runtime that reads them otherwise, or not at all, then falls to the snapshots).
    while trio.current_time() < deadline and locks.watermark_names < target:
        if trio.current_time() - max(began, locks.watermark_last) > 1.0:
            break
        await trio.sleep(0.005)
    watermarks_s = max(0.0, locks.watermark_last - began)
    snapshots, snapshot_s, parked = 0, 0.0, 0
    while True:
        calm = await _quiet()
        at = trio.current_time()
        if probe is not None:
            with probe.excluded():
                parked = parked_count(scheduler)
        else:
            parked = parked_count(scheduler)
        snapshots += 1
        snapshot_s += trio.current_time() - at
        if parked >= n or trio.current_time() >= deadline:
            break
    return {
        "parked": parked,
        "complete": parked >= n,
        "parked_s": at - began,
        # When the loop went quiet before that snapshot: a closer, lower estimate.
        "quiet_s": calm - began,
        "watermarks_s": watermarks_s,
        "watermark_names_read": locks.watermark_names - watermarks_before,
        "statistics_snapshots": snapshots,
        "statistics_s": snapshot_s,
    }
