"""The per-operation measurement shared by `redis_ops` and `postgres_ops`: the same
calls, in the same order, timed the same way on any `LockProvider`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import trio

from trio_sched.locks import AcquireRequest, LockLease, LockProvider


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def timed(samples: list[float], op: Callable[[], Awaitable[object]]) -> object:
    started = time.perf_counter()
    result = await op()
    samples.append(time.perf_counter() - started)
    return result


async def measure_provider(locks: LockProvider, n: int, batches: int) -> dict[str, list[float]]:
    """Warm `locks` up, then time ping, acquire, renew, release (n each), acquire_batch
    and advance_watermarks of 1,000 (`batches` each) and groups of 1,000 concurrent
    single acquires. Rows of seconds per call (per group for the last)."""
    rows: dict[str, list[float]] = {}
    # Warm up: connections, scripts or prepared statements (psycopg prepares after 5 uses).
    for i in range(50):
        lease = await locks.acquire(f"warm:{i}", 30.0)
        assert lease is not None
        await locks.renew(lease, 30.0)
        await locks.release(lease)
    for i in range(6):
        await locks.acquire_batch([AcquireRequest(f"warm:b{i}", 30.0, "wm", 1)])
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
    return rows
