"""One scheduler instance of the multi-process tests, run as its own OS process.

Usage (the tests build the command line)::

    python tests/multiprocess/_child.py --backend redis|postgres --url URL --space NAME
        --records NAME --seconds S --skew K --status PATH

Rules:
- M1 The process runs `open_scheduler` with the SAME tasks as its siblings (`TASKS`:
  three every-second tasks under the skip policy, one every-two-seconds task, one
  every-second task under fire_once) for ``--seconds`` of real time, then leaves the
  block (a graceful stop) and exits by itself. A `faulthandler` deadline dumps every
  thread's stack to stderr and exits if it has not finished ``HANG_AFTER`` seconds after
  its run time: a hang on leaving `open_scheduler` becomes a visible failure with a dump.
- M2 Coordination is the real lock provider on the shared backend: Redis key prefix, or
  Postgres lock table, ``--space`` (one per test, so tests never see each other).
- M3 Every dispatched job is recorded in the same backend WITHOUT dedupe (Redis:
  ``RPUSH`` to the list ``--records``; Postgres: ``INSERT`` into the table
  ``--records``, which has no unique constraint), so a double fire stays visible. A
  record is a JSON object: task, nominal epoch ms, pid, fencing token, idempotency key.
  The Redis recorder takes a burst in one ``enqueue_many`` call (runtime rule D6, one
  ``RPUSH`` of all its records); the Postgres recorder only has ``enqueue`` (each loop
  dispatches its own occurrence, D7): the multi-process tests cover both paths.
- M4 The wall clock is ``datetime.now(UTC) + --skew`` seconds (`Config.wall_clock`).
- M5 Status for the parent goes to ``--status`` as JSON, written atomically: once the
  scheduler runs (``started_wall``, on this process's skewed wall clock), and once it
  has left `open_scheduler` (``stopped_wall``: the wall clock just before leaving, plus
  the scheduler's per-task statistics, every error event's text and every misfire
  decision, M6).
- M7 Faults (``--fault``, once, at the first burst ``--fault-after`` seconds after the
  start): ``die-in-enqueue`` SIGKILLs the process inside its jobs runtime's enqueue,
  before anything is recorded: it holds the leases of that burst and dispatched none
  of them; ``pause-after-acquire`` blocks the whole process (a ``time.sleep`` in the
  Trio thread, as a SIGSTOP would) for ``--lock-ttl`` + 1.5 s right after an
  ``acquire_batch`` that granted fresh leases (a burst's, not a takeover's), so it
  resumes holding leases that ran out.
  ``--lock-ttl`` and ``--grace`` set the tasks' lock TTL and ``misfire_grace``.
- M6 A misfire decision is reported as ``[task, first late ms, decided ms, action]``:
  ``skip`` dropped every occurrence from the first late one through the decided one;
  ``fire`` (fire_once) dispatched the decided one, the latest late occurrence, alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio

from trio_sched import Config, EventKind, MisfirePolicy, SchedulerEvent, Task, open_scheduler
from trio_sched._plan import epoch_ms
from trio_sched.jobs import Job, JobsRuntime
from trio_sched.locks import LockLease, LockProvider

HANG_AFTER = 20.0  # M1: seconds past the run time before the stack dump and exit

TASKS = (
    Task(name="sec_cron", schedule="* * * * * *"),
    Task(name="sec_every", schedule="@every 1s"),
    Task(name="sec_cron_b", schedule="*/1 * * * * *"),
    Task(name="two_sec", schedule="*/2 * * * * *"),
    Task(name="sec_fire_once", schedule="* * * * * *", misfire_policy=MisfirePolicy.FIRE_ONCE),
)


def record_of(job: Job) -> str:
    assert job.run_at is not None
    return json.dumps(
        {
            "task": job.headers["x-trio-sched-task"],
            "nominal_ms": epoch_ms(job.run_at),
            "pid": os.getpid(),
            "fencing": job.fencing_token,
            "idem": job.idempotency_key,
        }
    )


class Fault:
    """M7: which fault to inject, once, and when it may strike."""

    def __init__(self, kind: str | None, after: float) -> None:
        self.kind = kind
        self.at = time.monotonic() + after
        self.done = False

    def due(self, kind: str) -> bool:
        if self.kind != kind or self.done or time.monotonic() < self.at:
            return False
        self.done = True
        return True


FAULT = Fault(None, 0.0)


def maybe_die() -> None:
    if FAULT.due("die-in-enqueue"):
        os.kill(os.getpid(), signal.SIGKILL)


class PausingLocks:
    """M7: forwards to the real provider; pauses the process after one ``acquire_batch``
    that granted fresh leases."""

    def __init__(self, inner: Any, pause: float) -> None:
        self._inner = inner
        self._pause = pause

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def acquire_batch(self, requests: Sequence[Any]) -> list[Any]:
        answers = await self._inner.acquire_batch(requests)
        fresh = any(isinstance(a, LockLease) and a.taken_over is None for a in answers)
        if fresh and FAULT.due("pause-after-acquire"):
            time.sleep(self._pause)  # noqa: ASYNC251 - the whole process stops, as under SIGSTOP
        return list(answers)


class RedisRecordingJobs:
    """M3 on Redis: RPUSH each job's record to one list (a list keeps duplicates)."""

    def __init__(self, url: str, key: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        self._key = key
        self._limiter = trio.CapacityLimiter(4)

    async def enqueue(self, job: Job) -> None:
        maybe_die()
        line = record_of(job)
        await trio.to_thread.run_sync(self._client.rpush, self._key, line, limiter=self._limiter)

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        maybe_die()
        lines = [record_of(job) for job in jobs]
        if lines:
            await trio.to_thread.run_sync(
                self._client.rpush, self._key, *lines, limiter=self._limiter
            )
        else:
            await trio.lowlevel.checkpoint()
        return [None] * len(jobs)

    async def health_check(self) -> None:
        await trio.to_thread.run_sync(self._client.ping, limiter=self._limiter)

    async def aclose(self) -> None:
        self._client.close()


class PostgresRecordingJobs:
    """M3 on Postgres: INSERT each job's record (the table has no unique constraint)."""

    def __init__(self, url: str, table: str) -> None:
        import psycopg
        from psycopg import sql

        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=3)
        self._insert = sql.SQL("INSERT INTO {} (record) VALUES (%s)").format(sql.Identifier(table))
        # One connection: calls on it are serialised.
        self._limiter = trio.CapacityLimiter(1)

    async def enqueue(self, job: Job) -> None:
        maybe_die()
        line = record_of(job)
        await trio.to_thread.run_sync(
            self._conn.execute, self._insert, (line,), limiter=self._limiter
        )

    async def health_check(self) -> None:
        await trio.to_thread.run_sync(self._conn.execute, "SELECT 1", limiter=self._limiter)

    async def aclose(self) -> None:
        self._conn.close()


def write_status(path: Path, status: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    tmp.replace(path)  # M5: the parent never reads a half-written file


async def run_scheduler(
    jobs: JobsRuntime,
    locks: LockProvider,
    config: Config,
    tasks: Sequence[Task],
    seconds: float,
    status_path: Path,
    status: dict[str, Any],
) -> None:
    """Run a scheduler with `tasks` for `seconds` (closing the providers), writing
    `status` with its start time once running, then adding the stop time and per-task
    counters (the caller writes the final status)."""
    wall_clock = config.wall_clock
    async with open_scheduler(jobs=jobs, locks=locks, config=config, close_providers=True) as s:
        for task in tasks:
            s.register(task)
        status["started_wall"] = wall_clock().timestamp()
        write_status(status_path, status)
        await trio.sleep(seconds)
        status["stopped_wall"] = wall_clock().timestamp()
        stats = s.statistics()
    status["tasks"] = {
        name: {
            "fired": t.fired,
            "lock_misses": t.lock_misses,
            "skipped": t.skipped,
            "misfired": t.misfired,
            "errors": t.errors,
            "lease_losses": t.lease_losses,
            "takeovers": t.takeovers,
        }
        for name, t in stats.tasks.items()
    }


async def main(args: argparse.Namespace) -> None:
    global FAULT
    FAULT = Fault(args.fault, args.fault_after)
    skew = timedelta(seconds=args.skew)

    def wall_clock() -> datetime:
        return datetime.now(UTC) + skew

    jobs: RedisRecordingJobs | PostgresRecordingJobs
    if args.backend == "redis":
        from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

        locks: Any = RedisLockProvider(RedisLockProviderConfig(url=args.url, prefix=args.space))
        jobs = RedisRecordingJobs(args.url, args.records)
    else:
        from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

        locks = PostgresLockProvider(PostgresLockProviderConfig(url=args.url, table=args.space))
        jobs = PostgresRecordingJobs(args.url, args.records)
    if args.fault == "pause-after-acquire":
        locks = PausingLocks(locks, (args.lock_ttl or 10.0) + 1.5)

    errors: list[str] = []
    first_late: dict[str, int] = {}
    misfires: list[tuple[str, int, int, str]] = []

    def on_event(event: SchedulerEvent) -> None:
        if event.kind in (EventKind.ERROR, EventKind.LEASE_LOST):
            errors.append(f"{event.kind.value} {event.task} {event.nominal}: {event.error!r}")
        elif event.kind is EventKind.MISSED and event.nominal is not None:
            first_late[event.task] = epoch_ms(event.nominal)
        elif event.task in first_late and event.nominal is not None:
            # The decision that follows a MISSED event (M6): skip up to and including its
            # nominal, or fire_once firing its nominal (the latest late occurrence).
            if event.kind is EventKind.SKIPPED and event.reason == "misfire":
                action = "skip"
            elif event.kind is EventKind.FIRED:
                action = "fire"
            else:
                return
            start = first_late.pop(event.task)
            misfires.append((event.task, start, epoch_ms(event.nominal), action))

    extra: dict[str, Any] = {}
    if args.grace is not None:
        extra["misfire_grace"] = args.grace
    config = Config(wall_clock=wall_clock, lock_key_prefix="mp", on_event=on_event, **extra)
    tasks = TASKS
    if args.lock_ttl is not None:
        tasks = tuple(dataclasses.replace(task, lock_ttl=args.lock_ttl) for task in TASKS)
    status: dict[str, Any] = {"pid": os.getpid(), "skew": args.skew}
    await run_scheduler(jobs, locks, config, tasks, args.seconds, args.status, status)
    status["errors"] = errors
    status["misfires"] = misfires
    status["exited_wall"] = wall_clock().timestamp()
    write_status(args.status, status)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=("redis", "postgres"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--space", required=True)
    parser.add_argument("--records", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--skew", type=float, default=0.0)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--fault", choices=("die-in-enqueue", "pause-after-acquire"))
    parser.add_argument("--fault-after", type=float, default=0.0)
    parser.add_argument("--lock-ttl", type=float)
    parser.add_argument("--grace", type=float)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    faulthandler.dump_traceback_later(arguments.seconds + HANG_AFTER, exit=True)
    trio.run(main, arguments)
