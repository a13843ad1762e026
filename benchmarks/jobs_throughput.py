"""Throughput of a jobs runtime with `open_worker`: enqueue/s and end-to-end jobs/s.

Run from the project root::

    python -m benchmarks.jobs_throughput --backend memory|redis|postgres [--n N] [--url URL]

Redis: ``--url``, else ``TRIO_SCHED_REDIS_URL``, else redis://127.0.0.1:6379/0 (loopback
only); keys live under a fresh random prefix, deleted at the end.
Postgres: ``--url``, else ``TRIO_SCHED_POSTGRES_URL``, else
postgresql://127.0.0.1:5432/test (loopback or a Unix socket only); the jobs live in a
fresh random table, dropped at the end. Default durability (``synchronous_commit`` on:
each enqueue and acknowledgement waits for its WAL flush); ``--no-synchronous-commit``
measures without that wait.

What is measured (wall time on `time.perf_counter`, inside one `trio.run`):
- enqueue serial:      N ``enqueue`` calls one after another (each with an idempotency
                       key, as the scheduler sends them).
- enqueue concurrent:  N ``enqueue`` calls from ``--enqueuers`` tasks at once.
- drain:               a worker (``--concurrency`` handlers, no-op handler) started on a
                       queue already holding N jobs, until all N completed: claim,
                       handler call and acknowledgement per job.
- end to end:          enqueuers and a worker running together: from the first enqueue
                       to the last job completed.
Each row prints jobs/s over the whole row and the count. One run per row: a rough
figure for this machine (2 cores, server on the same host), not a statistic.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import trio

from trio_sched.jobs import ConsumableJobs, Job, MemoryJobs, open_worker

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://127.0.0.1:5432/test"


@asynccontextmanager
async def _runtime(
    backend: str, url: str, prefix: str, synchronous_commit: bool = True
) -> AsyncIterator[ConsumableJobs]:
    if backend == "memory":
        yield MemoryJobs(max_pending=10_000_000, dedupe_window=10_000_000)
        return
    if backend == "postgres":
        async with _postgres_runtime(url, synchronous_commit) as jobs:
            yield jobs
        return
    import redis

    from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

    config = RedisJobsConfig(url=url, prefix=prefix, max_connections=16)
    try:
        async with RedisJobs(config) as jobs:
            yield jobs
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@asynccontextmanager
async def _postgres_runtime(url: str, synchronous_commit: bool) -> AsyncIterator[ConsumableJobs]:
    import psycopg
    from psycopg import sql

    from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig

    table = f"trio_sched_bench_jobs_{secrets.token_hex(4)}"
    config = PostgresJobsConfig(
        url=url, table=table, max_connections=16, synchronous_commit=synchronous_commit
    )
    try:
        async with PostgresJobs(config) as jobs:
            yield jobs
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def _jobs(n: int, queue: str, tag: str) -> list[Job]:
    return [
        Job(id=f"{tag}-{i}", name="noop", queue=queue, idempotency_key=f"{tag}:{i}")
        for i in range(n)
    ]


async def _enqueue_all(jobs: ConsumableJobs, batch: list[Job], enqueuers: int) -> None:
    it = iter(batch)

    async def feeder() -> None:
        for job in it:  # shared iterator: each job taken by exactly one feeder
            await jobs.enqueue(job)

    async with trio.open_nursery() as nursery:
        for _ in range(enqueuers):
            nursery.start_soon(feeder)


async def _drain(jobs: ConsumableJobs, queue: str, n: int, concurrency: int) -> None:
    done = 0
    all_done = trio.Event()

    async def noop(job: Job) -> None:
        nonlocal done
        done += 1
        if done == n:
            all_done.set()

    async with open_worker(
        jobs, {"noop": noop}, queues=[queue], concurrency=concurrency, poll_wait=0.2
    ) as worker:
        await all_done.wait()
    stats = worker.statistics()
    if stats.succeeded != n or stats.failed:
        raise RuntimeError(f"worker finished with {stats}")


async def _timed(body: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await body()
    return time.perf_counter() - start


async def run(args: argparse.Namespace) -> dict[str, object]:
    prefix = f"trio-sched-bench:{secrets.token_hex(6)}"
    rows: list[dict[str, object]] = []

    def row(name: str, n: int, seconds: float) -> None:
        rows.append({"row": name, "n": n, "seconds": seconds, "jobs_per_s": n / seconds})
        print(f"{name:<20} {n:>7} jobs {seconds:8.3f} s {n / seconds:>10,.0f} jobs/s")

    n = args.n
    async with _runtime(args.backend, args.url, prefix, args.synchronous_commit) as jobs:
        q1, q2, q3 = "bench-serial", "bench-concurrent", "bench-e2e"
        serial = _jobs(n, q1, "s")

        async def enqueue_serial() -> None:
            for job in serial:
                await jobs.enqueue(job)

        row("enqueue serial", n, await _timed(enqueue_serial))
        concurrent = _jobs(n, q2, "c")
        row(
            "enqueue concurrent",
            n,
            await _timed(lambda: _enqueue_all(jobs, concurrent, args.enqueuers)),
        )
        row("drain", n, await _timed(lambda: _drain(jobs, q1, n, args.concurrency)))
        await _drain(jobs, q2, n, args.concurrency)  # empty the second queue, untimed

        e2e = _jobs(n, q3, "e")

        async def end_to_end() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, jobs, q3, n, args.concurrency)
                await _enqueue_all(jobs, e2e, args.enqueuers)

        row("end to end", n, await _timed(end_to_end))
    return {
        "backend": args.backend,
        "settings": {
            "n": n,
            "concurrency": args.concurrency,
            "enqueuers": args.enqueuers,
            "synchronous_commit": args.synchronous_commit if args.backend == "postgres" else None,
            "url": _shown_url(args) if args.backend != "memory" else None,
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "results": rows,
    }


def _shown_url(args: argparse.Namespace) -> str:
    if args.backend == "postgres":
        from trio_sched._postgres_common import redact_dsn

        return redact_dsn(args.url)
    return str(args.url)


def _is_loopback_postgres(url: str) -> bool:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    hosts = [h for h in str(params.get("host", "")).split(",") if h]
    addrs = [h for h in str(params.get("hostaddr", "")).split(",") if h]
    loopback = {"127.0.0.1", "localhost", "::1"}
    return all(h in loopback or h.startswith("/") for h in hosts) and all(
        a in loopback for a in addrs
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("memory", "redis", "postgres"), default="memory")
    parser.add_argument("--n", type=int, default=None, help="jobs per row")
    parser.add_argument("--concurrency", type=int, default=32, help="worker handlers")
    parser.add_argument("--enqueuers", type=int, default=16, help="concurrent enqueuers")
    parser.add_argument("--url", default=None, help="server URL (redis or postgres)")
    parser.add_argument(
        "--no-synchronous-commit",
        dest="synchronous_commit",
        action="store_false",
        help="postgres: do not wait for each commit's WAL flush",
    )
    parser.add_argument("--output", type=Path, default=None, help="write results as JSON")
    args = parser.parse_args(argv)
    if args.url is None:
        if args.backend == "postgres":
            args.url = os.environ.get("TRIO_SCHED_POSTGRES_URL", DEFAULT_POSTGRES_URL)
        else:
            args.url = os.environ.get("TRIO_SCHED_REDIS_URL", DEFAULT_URL)
    if args.backend == "postgres" and not _is_loopback_postgres(args.url):
        parser.error("only loopback (or Unix socket) Postgres URLs are accepted")
    if args.n is None:
        args.n = 20_000 if args.backend == "memory" else 5_000
    if args.backend == "redis" and urlsplit(args.url).hostname not in ("127.0.0.1", "::1"):
        parser.error("only loopback Redis URLs are accepted")
    print(
        f"backend={args.backend} n={args.n} concurrency={args.concurrency} "
        f"enqueuers={args.enqueuers}"
    )
    record = trio.run(run, args)
    if args.output is not None:
        args.output.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
