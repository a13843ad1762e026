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
from pathlib import Path
from urllib.parse import urlsplit

import redis
import trio

from benchmarks._lock_ops import measure_provider, percentile
from trio_sched._redis_common import redact_url
from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

RESULTS = Path(__file__).parent / "results"


async def measure(url: str, prefix: str, n: int, batches: int) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {}
    config = RedisLockProviderConfig(url=url, prefix=prefix, max_connections=10)
    async with RedisLockProvider(config) as locks:
        rows.update(await measure_provider(locks, n, batches))

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
