"""Lateness of the last of N occurrences due the same second, per lock backend (issue 4).

Run from the project root::

    python -m benchmarks.backend_lateness --backend redis|postgres|memory --tasks 1000 --bursts 5

What is measured (real time, real clocks, a real server for redis/postgres):
- ``--tasks`` tasks, all ``* * * * * *``, on one scheduler whose lock provider is the
  chosen backend; the jobs runtime is an in-memory recorder, so the number is the cost
  of the timer, the batched acquire (one round trip per burst) and the
  dispatch path, not of a jobs backend.
- Lateness of one fire = the wall clock (``time.time()``) when the scheduler calls
  ``enqueue`` minus the occurrence's nominal instant. Per burst (one nominal second
  where every task fired) the lateness of the LAST enqueue; reported as p50 and max over
  ``--bursts`` bursts, and p50/p99 over every fire. A burst is counted only when all
  ``--tasks`` fired in it (the first and last seconds of the run are partial).
- Servers: ``--url``, else ``TRIO_SCHED_REDIS_URL`` / ``TRIO_SCHED_POSTGRES_URL``, else the
  local ``redis://127.0.0.1:6379/0`` / ``postgresql://127.0.0.1:5432/test``. A random key
  prefix / lock table is used and removed afterwards.

Goal of issue 4: Redis last-of-1,000 p50 <= 150 ms. The script prints what it measured
and whether the goal was met; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import trio

from trio_sched import Config, Task, open_scheduler
from trio_sched.jobs import Job
from trio_sched.locks import LockProvider, MemoryLockProvider

DEFAULT_URLS = {
    "redis": ("TRIO_SCHED_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "postgres": ("TRIO_SCHED_POSTGRES_URL", "postgresql://127.0.0.1:5432/test"),
}
GOAL_MS = {"redis": 150.0}


class RecordingJobs:
    """Notes (enqueue wall time, nominal) of every enqueue; keeps nothing else."""

    def __init__(self) -> None:
        self.records: list[tuple[float, float]] = []

    async def enqueue(self, job: Job) -> None:
        now = time.time()
        assert job.run_at is not None
        self.records.append((now, job.run_at.timestamp()))

    async def health_check(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def make_locks(backend: str, url: str, space: str) -> LockProvider:
    if backend == "redis":
        from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

        return RedisLockProvider(RedisLockProviderConfig(url=url, prefix=space))
    if backend == "postgres":
        from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

        return PostgresLockProvider(PostgresLockProviderConfig(url=url, table=space))
    return MemoryLockProvider()


def cleanup(backend: str, url: str, space: str) -> None:
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=f"{space}:*", count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i : i + 1000])
        finally:
            client.close()
    elif backend == "postgres":
        import psycopg
        from psycopg import sql

        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            for table in (f"{space}_paused", f"{space}_watermarks", space):
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def run(backend: str, url: str, space: str, n_tasks: int, bursts: int) -> dict[str, Any]:
    jobs = RecordingJobs()
    locks = make_locks(backend, url, space)
    # Warm up: connect and (Postgres) create the schema before the first burst.
    await locks.health_check()
    await locks.get_watermarks(["warm-up"])
    # Start just after a whole second so the first full burst is the next one.
    now = time.time()
    await trio.sleep(math.floor(now) + 1.05 - now)
    config = Config(lock_key_prefix="bench")
    async with open_scheduler(jobs=jobs, locks=locks, config=config, close_providers=True) as s:
        for i in range(n_tasks):
            s.register(Task(name=f"t{i}", schedule="* * * * * *"))
        await trio.sleep(bursts + 1.5)
    per_burst: dict[float, list[float]] = {}
    for enqueued, nominal in jobs.records:
        per_burst.setdefault(nominal, []).append((enqueued - nominal) * 1000)
    full = dict([(n, v) for n, v in sorted(per_burst.items()) if len(v) == n_tasks][:bursts])
    last = [max(v) for v in full.values()]
    every = [x for v in full.values() for x in v]
    return {
        "backend": backend,
        "tasks": n_tasks,
        "bursts": len(full),
        "fires": len(jobs.records),
        "last_p50_ms": statistics.median(last) if last else math.nan,
        "last_max_ms": max(last) if last else math.nan,
        "last_per_burst_ms": [round(x, 3) for x in last],
        "all_p50_ms": _pct(every, 0.5),
        "all_p99_ms": _pct(every, 0.99),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("redis", "postgres", "memory"), default="redis")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--url", help="server URL (default: env var, else the local server)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)
    url = args.url or ""
    if args.backend in DEFAULT_URLS and not url:
        env, local = DEFAULT_URLS[args.backend]
        url = os.environ.get(env) or local
    space = f"bench_lateness_{secrets.token_hex(4)}"
    print(
        f"python {platform.python_version()} trio {trio.__version__} on {platform.machine()}, "
        f"backend={args.backend} tasks={args.tasks} bursts={args.bursts}"
    )
    try:
        result = trio.run(run, args.backend, url, space, args.tasks, args.bursts)
    finally:
        cleanup(args.backend, url, space)
    print(
        f"{result['backend']}: {result['bursts']} full bursts of {result['tasks']}, "
        f"last enqueued p50 {result['last_p50_ms']:.1f} ms, max {result['last_max_ms']:.1f} ms "
        f"(per burst {result['last_per_burst_ms']}); every fire p50 "
        f"{result['all_p50_ms']:.1f} ms, p99 {result['all_p99_ms']:.1f} ms"
    )
    goal = GOAL_MS.get(args.backend)
    if goal is not None:
        met = result["last_p50_ms"] <= goal
        print(f"goal last-of-{args.tasks} p50 <= {goal:.0f} ms: {'met' if met else 'MISSED'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"argv": sys.argv[1:], "result": result}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
