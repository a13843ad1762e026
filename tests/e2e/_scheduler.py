"""One scheduler process of the end-to-end test (run from ``tests/``)::

    python -m e2e._scheduler --url URL --prefix PREFIX --seconds S --skew K --status PATH

Rules:
- ES1 The process runs `open_scheduler` with a `RedisLockProvider` and a `RedisJobs`
  on the shared prefix (X1), the same `TASKS` as its siblings, for ``--seconds`` of real
  time, then leaves the block (a graceful stop, D11) and exits by itself. A
  `faulthandler` deadline dumps every thread's stack and exits ``HANG_AFTER`` seconds
  after its run time, so a hang becomes a visible failure with a dump.
- ES2 Its wall clock is ``datetime.now(UTC) + --skew`` seconds (`Config.wall_clock`).
- ES3 The jobs runtime is `RecordingJobs`: the real `RedisJobs`, plus one record per
  ``enqueue`` call with its outcome (X2). The outcome is recorded and the call's result
  (or error) passed on unchanged, so the scheduler behaves as it would without it.
- ES4 Status for the parent goes to ``--status`` as JSON, written atomically (the helper
  of ``tests/multiprocess``): ``started_wall`` once the scheduler runs; then
  ``stopped_wall`` (the wall clock just before leaving the block), the per-task
  statistics, every error / lease-lost event's text, misfire events, the runtime's
  counters and ``exited_wall``.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import trio

from multiprocess._child import run_scheduler, write_status
from trio_sched import Config, ConflictError, EventKind, SchedulerEvent
from trio_sched._plan import epoch_ms
from trio_sched.jobs import Job
from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig
from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

from ._common import TASKS, enqueues_key, job_fields

HANG_AFTER = 20.0  # ES1: seconds past the run time before the stack dump and exit


class RecordingJobs:
    """ES3: `RedisJobs` plus a record of every enqueue call and its outcome."""

    def __init__(self, inner: RedisJobs, url: str, key: str) -> None:
        self._inner = inner
        self._client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        self._key = key
        self._limiter = trio.CapacityLimiter(4)

    async def enqueue(self, job: Job) -> None:
        try:
            await self._inner.enqueue(job)
        except ConflictError:
            await self._record(job, "conflict")
            raise
        except Exception as exc:
            await self._record(job, type(exc).__name__)
            raise
        await self._record(job, "ok")

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        """A burst in one call (runtime rule D6): `RedisJobs.enqueue_many`, then one
        record per job with its own outcome."""
        try:
            results = await self._inner.enqueue_many(jobs)
        except Exception as exc:
            await self._record_many([(job, type(exc).__name__) for job in jobs])
            raise
        outcomes = [
            (
                job,
                "ok"
                if r is None
                else "conflict"
                if isinstance(r, ConflictError)
                else type(r).__name__,
            )
            for job, r in zip(jobs, results, strict=True)
        ]
        await self._record_many(outcomes)
        return results

    async def _record(self, job: Job, outcome: str) -> None:
        await self._record_many([(job, outcome)])

    async def _record_many(self, outcomes: Sequence[tuple[Job, str]]) -> None:
        lines = [
            json.dumps({"pid": os.getpid(), "outcome": outcome, "job": job_fields(job)})
            for job, outcome in outcomes
        ]
        if lines:
            await trio.to_thread.run_sync(
                self._client.rpush, self._key, *lines, limiter=self._limiter
            )

    async def health_check(self) -> None:
        await self._inner.health_check()

    async def aclose(self) -> None:
        self._client.close()
        await self._inner.aclose()


async def main(args: argparse.Namespace) -> None:
    skew = timedelta(seconds=args.skew)

    def wall_clock() -> datetime:
        return datetime.now(UTC) + skew

    locks = RedisLockProvider(RedisLockProviderConfig(url=args.url, prefix=args.prefix))
    inner = RedisJobs(RedisJobsConfig(url=args.url, prefix=args.prefix))
    jobs = RecordingJobs(inner, args.url, enqueues_key(args.prefix))

    errors: list[str] = []
    misfires: list[str] = []

    def on_event(event: SchedulerEvent) -> None:
        if event.kind in (EventKind.ERROR, EventKind.LEASE_LOST):
            errors.append(f"{event.kind.value} {event.task} {event.nominal}: {event.error!r}")
        elif event.kind is EventKind.MISSED and event.nominal is not None:
            misfires.append(f"{event.task} {epoch_ms(event.nominal)}")

    config = Config(wall_clock=wall_clock, lock_key_prefix="e2e", on_event=on_event)
    status: dict[str, Any] = {"pid": os.getpid(), "skew": args.skew}
    await run_scheduler(jobs, locks, config, TASKS, args.seconds, args.status, status)
    counters = inner.statistics()
    status["runtime"] = {"enqueued": counters.enqueued, "duplicates": counters.duplicates}
    status["errors"] = errors
    status["misfires"] = misfires
    status["exited_wall"] = wall_clock().timestamp()
    write_status(args.status, status)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--skew", type=float, default=0.0)
    parser.add_argument("--status", type=Path, required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    faulthandler.dump_traceback_later(arguments.seconds + HANG_AFTER, exit=True)
    trio.run(main, arguments)
