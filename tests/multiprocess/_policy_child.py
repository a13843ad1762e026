"""One process of the multi-process policy test (issue 12): a scheduler or a worker.

Usage (the test builds the command line)::

    python tests/multiprocess/_policy_child.py --role scheduler|worker --backend B
        --url URL --space NAME --records NAME --seconds S --status PATH
        [--pause-at T] [--catchup]

Rules:
- PC1 Jobs go to the real runtime of the backend (`RedisJobs` with prefix
  ``{space}:jobs``, or `PostgresJobs` with table ``{space}_jobs``), a `JobControl`, with
  ``visibility_timeout`` `VISIBILITY` (a worker extends its leases every third of it).
  Locks are the real provider on ``--space``, tasks' lock TTL `LOCK_TTL`.
- PC2 A scheduler registers `TASKS` (and, with ``--catchup``, `CATCHUP` too), runs for
  ``--seconds`` and leaves. Every job its runtime accepted is recorded without dedupe
  in ``--records`` (Redis list or Postgres table) as ``{"kind": "enq", task,
  nominal_ms, wall, pid, fencing, idem}``, ``wall`` the time the enqueue call returned. With
  ``--pause-at T`` it pauses task ``paused`` T seconds after it started and writes the
  wall time `pause` returned at into its status (``paused_wall``).
- PC3 A worker runs `open_worker` over the runtime for ``--seconds`` and records every
  handler run as ``{"kind": "run", task, nominal_ms, start, end, cancelled, pid}``.
  Handlers by job name: ``quick`` returns at once, ``slow25`` sleeps 2.5 s, ``slow5``
  sleeps 5 s (cancelled: recorded with ``cancelled`` true).
- PC4 Status JSON (atomic writes): once running (``started_wall``), and at the end
  with ``exited_wall`` and, for a scheduler, per-task ``fired``, ``skipped``,
  ``skipped_by`` (reason -> count, from its events) and ``errors`` (error and
  lease_lost events, as text).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio

from trio_sched import Config, EventKind, SchedulerEvent, Task, open_scheduler
from trio_sched._plan import epoch_ms
from trio_sched.jobs import Job, JobState, open_worker

VISIBILITY = 1.5
LOCK_TTL = 3.0
JITTER = 0.8

TASKS = (
    Task(name="plain", schedule="* * * * * *", job_name="quick", lock_ttl=LOCK_TTL),
    Task(
        name="jit",
        schedule="* * * * * *",
        job_name="quick",
        jitter=timedelta(seconds=JITTER),
        lock_ttl=LOCK_TTL,
    ),
    Task(name="paused", schedule="* * * * * *", job_name="quick", lock_ttl=LOCK_TTL),
    Task(
        name="forbid",
        schedule="* * * * * *",
        job_name="slow25",
        overlap="forbid",
        lock_ttl=LOCK_TTL,
    ),
    Task(
        name="replace",
        schedule="*/2 * * * * *",
        job_name="slow5",
        overlap="replace",
        lock_ttl=LOCK_TTL,
    ),
)
CATCHUP = Task(
    name="catchup",
    schedule="* * * * * *",
    job_name="quick",
    misfire_policy="fire_all",
    catchup_window=timedelta(seconds=60),
    lock_ttl=LOCK_TTL,
)


class Records:
    """PC2, PC3: append JSON records without dedupe (a blocking client, in a thread)."""

    def __init__(self, backend: str, url: str, name: str) -> None:
        self._limiter = trio.CapacityLimiter(1)
        if backend == "redis":
            import redis

            client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)

            def add(lines: list[str]) -> None:
                client.rpush(name, *lines)

        else:
            import psycopg
            from psycopg import sql

            conn = psycopg.connect(url, autocommit=True, connect_timeout=3)
            insert = sql.SQL("INSERT INTO {} (record) VALUES (%s)").format(sql.Identifier(name))

            def add(lines: list[str]) -> None:
                with conn.cursor() as cursor:
                    cursor.executemany(insert, [(line,) for line in lines])

        self._add = add

    async def add(self, records: list[dict[str, Any]]) -> None:
        if records:
            lines = [json.dumps(r) for r in records]
            await trio.to_thread.run_sync(self._add, lines, limiter=self._limiter)


def record_base(job: Job) -> dict[str, Any]:
    assert job.run_at is not None
    return {
        "task": job.headers["x-trio-sched-task"],
        "nominal_ms": epoch_ms(job.run_at),
        "pid": os.getpid(),
        "fencing": job.fencing_token,
        "idem": job.idempotency_key,
    }


class RecordingJobs:
    """The real runtime, recording each accepted job (PC2); a `JobControl` too."""

    def __init__(self, inner: Any, records: Records) -> None:
        self._inner = inner
        self._records = records

    async def enqueue(self, job: Job) -> None:
        await self._inner.enqueue(job)
        await self._records.add([{"kind": "enq", **record_base(job), "wall": time.time()}])

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        results: list[Exception | None] = await self._inner.enqueue_many(jobs)
        now = time.time()
        accepted = [
            {"kind": "enq", **record_base(job), "wall": now}
            for job, result in zip(jobs, results, strict=True)
            if result is None
        ]
        await self._records.add(accepted)
        return results

    async def job_state(self, key: str) -> JobState:
        state: JobState = await self._inner.job_state(key)
        return state

    async def cancel(self, key: str) -> bool:
        cancelled: bool = await self._inner.cancel(key)
        return cancelled

    async def health_check(self) -> None:
        await self._inner.health_check()

    async def aclose(self) -> None:
        await self._inner.aclose()


def runtime(args: argparse.Namespace) -> Any:
    if args.backend == "redis":
        from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

        return RedisJobs(
            RedisJobsConfig(
                url=args.url, prefix=f"{args.space}:jobs", visibility_timeout=VISIBILITY
            )
        )
    from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig

    return PostgresJobs(
        PostgresJobsConfig(url=args.url, table=f"{args.space}_jobs", visibility_timeout=VISIBILITY)
    )


def lock_provider(args: argparse.Namespace) -> Any:
    if args.backend == "redis":
        from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

        return RedisLockProvider(RedisLockProviderConfig(url=args.url, prefix=args.space))
    from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

    return PostgresLockProvider(PostgresLockProviderConfig(url=args.url, table=args.space))


def write_status(path: Path, status: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    tmp.replace(path)


async def run_scheduler(args: argparse.Namespace, records: Records) -> None:
    status: dict[str, Any] = {"pid": os.getpid()}
    errors: list[str] = []
    skipped_by: dict[str, Counter[str]] = {}

    def on_event(event: SchedulerEvent) -> None:
        if event.kind in (EventKind.ERROR, EventKind.LEASE_LOST):
            errors.append(f"{event.kind.value} {event.task} {event.nominal}: {event.error!r}")
        elif event.kind is EventKind.SKIPPED:
            skipped_by.setdefault(event.task, Counter())[event.reason or "?"] += 1

    def wall_clock() -> datetime:
        return datetime.now(UTC)

    config = Config(wall_clock=wall_clock, lock_key_prefix="mp", on_event=on_event)
    jobs = RecordingJobs(runtime(args), records)
    tasks = (*TASKS, CATCHUP) if args.catchup else TASKS
    async with open_scheduler(
        jobs=jobs, locks=lock_provider(args), config=config, close_providers=True
    ) as scheduler:
        for task in tasks:
            scheduler.register(task)
        started = time.monotonic()
        status["started_wall"] = time.time()
        write_status(args.status, status)
        if args.pause_at is not None:
            await trio.sleep(args.pause_at)
            await scheduler.pause("paused", reason="multi-process test")
            status["paused_wall"] = time.time()
        await trio.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
        stats = scheduler.statistics()
    status["tasks"] = {
        name: {
            "fired": t.fired,
            "skipped": t.skipped,
            "skipped_by": dict(skipped_by.get(name, {})),
            "paused": t.paused,
        }
        for name, t in stats.tasks.items()
    }
    status["errors"] = errors
    status["exited_wall"] = time.time()
    write_status(args.status, status)


async def run_worker(args: argparse.Namespace, records: Records) -> None:
    sleeps = {"quick": 0.0, "slow25": 2.5, "slow5": 5.0}

    async def handler(job: Job) -> None:
        start = time.time()
        cancelled = False
        try:
            if sleeps[job.name]:
                await trio.sleep(sleeps[job.name])
        except trio.Cancelled:
            cancelled = True
            raise
        finally:
            run = {"kind": "run", **record_base(job), "start": start, "end": time.time()}
            run["cancelled"] = cancelled
            with trio.CancelScope(shield=True):
                await records.add([run])

    status: dict[str, Any] = {"pid": os.getpid()}
    jobs = runtime(args)
    handlers = dict.fromkeys(sleeps, handler)
    async with jobs, open_worker(jobs, handlers, concurrency=16, poll_wait=0.2):
        status["started_wall"] = time.time()
        write_status(args.status, status)
        await trio.sleep(args.seconds)
    status["exited_wall"] = time.time()
    write_status(args.status, status)


async def main(args: argparse.Namespace) -> None:
    records = Records(args.backend, args.url, args.records)
    if args.role == "scheduler":
        await run_scheduler(args, records)
    else:
        await run_worker(args, records)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=("scheduler", "worker"), required=True)
    parser.add_argument("--backend", choices=("redis", "postgres"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--space", required=True)
    parser.add_argument("--records", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--pause-at", type=float)
    parser.add_argument("--catchup", action="store_true")
    return parser.parse_args(argv)


HANG_AFTER = 20.0  # seconds past the run time before a stack dump and exit


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    faulthandler.dump_traceback_later(arguments.seconds + HANG_AFTER, exit=True)
    trio.run(main, arguments)
