"""Per-operation latency of `RedisLockProvider` against a local Redis, from Trio.

Run from the project root:  python -m benchmarks.redis_ops [--url URL] [--n N] [--batches B]

The server is ``--url``, else ``TRIO_SCHED_REDIS_URL``, else redis://127.0.0.1:6379/0.
Only loopback URLs are accepted. Keys live under a fresh random prefix, deleted at the end.

What is measured (wall time per call on `time.perf_counter`, from inside `trio.run`):
- ping:            ``health_check`` (a PING through the worker-thread driver): the floor
                   of one thread hand-off plus one round trip.
- acquire:         ``acquire`` of a fresh key (one Lua script), one call at a time.
- renew:           ``renew`` of each lease just taken.
- release:         ``release`` of each lease.
- acquire_batch:   ``acquire_batch`` of 1,000 fresh keys, each with a watermark check.
- advance_wm:      ``advance_watermarks`` of 1,000 names.
- 1000 concurrent: 1,000 single ``acquire`` calls started together (total time of the
                   whole group, repeated), to compare with one batch of 1,000.
- raw evalsha:     the same acquire script with the sync redis-py client in the main
                   thread, no Trio and no thread: what the driver adds on top.
p50/p99 are over all calls of a row; the table also gives the mean and the count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import redis
import trio

from trio_sched._redis_common import redact_url
from trio_sched.locks import AcquireRequest, LockLease
from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

RESULTS = Path(__file__).parent / "results"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def timed(samples: list[float], op: Callable[[], Awaitable[object]]) -> object:
    started = time.perf_counter()
    result = await op()
    samples.append(time.perf_counter() - started)
    return result


async def measure(url: str, prefix: str, n: int, batches: int) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {}
    config = RedisLockProviderConfig(url=url, prefix=prefix, max_connections=10)
    async with RedisLockProvider(config) as locks:
        # Warm up: connections, script cache.
        for i in range(50):
            lease = await locks.acquire(f"warm:{i}", 30.0)
            assert lease is not None
            await locks.renew(lease, 30.0)
            await locks.release(lease)
        await locks.acquire_batch([AcquireRequest("warm:b", 30.0, "wm", 1)])
        await locks.advance_watermarks({"wm": 0})

        rows["ping"] = samples = []
        for _ in range(n):
            await timed(samples, locks.health_check)

        leases: list[LockLease] = []
        rows["acquire"] = samples = []
        for i in range(n):
            lease = await timed(samples, lambda i=i: locks.acquire(f"single:{i}", 30.0))
            assert isinstance(lease, LockLease)
            leases.append(lease)
        rows["renew"] = samples = []
        for lease in leases:
            await timed(samples, lambda lease=lease: locks.renew(lease, 30.0))
        rows["release"] = samples = []
        for lease in leases:
            await timed(samples, lambda lease=lease: locks.release(lease))

        rows["acquire_batch(1000)"] = samples = []
        for b in range(batches):
            requests = [
                AcquireRequest(f"batch:{b}:{i}", 30.0, f"wm:{i}", 1000 + b) for i in range(1000)
            ]
            results = await timed(samples, lambda requests=requests: locks.acquire_batch(requests))
            assert isinstance(results, list)
            assert all(r is not None for r in results)

        rows["advance_wm(1000)"] = samples = []
        for b in range(batches):
            marks = {f"wm:{i}": 1000 + b for i in range(1000)}
            await timed(samples, lambda marks=marks: locks.advance_watermarks(marks))

        rows["1000 concurrent acquire"] = samples = []
        for b in range(max(3, batches // 5)):

            async def group(b: int = b) -> None:
                async with trio.open_nursery() as nursery:
                    for i in range(1000):
                        nursery.start_soon(locks.acquire, f"conc:{b}:{i}", 30.0)

            await timed(samples, group)

    client = redis.Redis.from_url(url)
    try:
        script = client.register_script(
            "if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end "
            "return redis.call('INCR', KEYS[2])"
        )
        rows["raw evalsha (no trio, no thread)"] = samples = []
        for i in range(n):
            started = time.perf_counter()
            script(keys=[f"{prefix}:raw:{i}", f"{prefix}:raw-fencing"], args=["t", 30000])
            samples.append(time.perf_counter() - started)
    finally:
        client.close()
    return rows


def cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=5000))
        for start in range(0, len(keys), 5000):
            client.delete(*keys[start : start + 5000])
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("TRIO_SCHED_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--n", type=int, default=2000, help="calls per single-key row")
    parser.add_argument("--batches", type=int, default=30, help="calls per 1,000-key row")
    args = parser.parse_args()
    host = urlsplit(args.url).hostname
    if urlsplit(args.url).scheme != "unix" and host not in {"127.0.0.1", "::1", "localhost"}:
        raise SystemExit(f"refusing a non-loopback server: {redact_url(args.url)}")
    prefix = f"trio-sched-bench:{secrets.token_hex(6)}"
    try:
        rows = trio.run(measure, args.url, prefix, args.n, args.batches)
    finally:
        cleanup(args.url, prefix)

    with redis.Redis.from_url(args.url) as client:
        server = client.info("server")["redis_version"]
    print(
        f"RedisLockProvider latency, {redact_url(args.url)} (redis {server}), "
        f"redis-py {redis.__version__}, trio {trio.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} cpus"
    )
    print(f"{'operation':36} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}")
    record = {}
    for name, samples in rows.items():
        p50, p99, mean = (
            percentile(samples, 0.5),
            percentile(samples, 0.99),
            statistics.fmean(samples),
        )
        record[name] = {
            "n": len(samples),
            "p50_ms": p50 * 1e3,
            "p99_ms": p99 * 1e3,
            "mean_ms": mean * 1e3,
        }
        print(f"{name:36} {len(samples):>6} {p50 * 1e3:>9.3f} {p99 * 1e3:>9.3f} {mean * 1e3:>9.3f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "redis_ops.json"
    out.write_text(json.dumps({"server": server, "rows": record}, indent=2))
    print(f"recorded in {out}")


if __name__ == "__main__":
    main()
