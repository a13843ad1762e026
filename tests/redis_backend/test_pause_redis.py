"""RedisLockProvider's pause records beyond the conformance suite (rule RD10): where they
are stored, round trips, foreign data in the pause hash."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis

from trio_sched.locks import AcquireRequest, LockLease, Paused, PauseStore
from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

SINCE = datetime(2026, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC)
FLOORED = SINCE.replace(microsecond=123_000)


def _provider(url: str, prefix: str) -> RedisLockProvider:
    return RedisLockProvider(RedisLockProviderConfig(url=url, prefix=prefix))


async def test_pause_hash_layout_and_round_trips(redis_url: str, redis_prefix: str) -> None:
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    hash_key = f"{redis_prefix}:paused"
    async with _provider(redis_url, redis_prefix) as locks:
        assert isinstance(locks, PauseStore)
        await locks.set_paused({"warm": None})  # connects, loads the script
        trips = locks.statistics().driver.round_trips
        await locks.set_paused({})
        assert await locks.get_paused([]) == {}
        assert locks.statistics().driver.round_trips == trips  # empty: none
        await locks.set_paused({"a": Paused(SINCE, "me", "why"), "b": Paused(SINCE, "you")})
        assert locks.statistics().driver.round_trips == trips + 1
        assert admin.hgetall(hash_key) == {
            "a": json.dumps([1767225600123, "me", "why"], separators=(",", ":")),
            "b": '[1767225600123,"you",null]',
        }
        assert admin.ttl(hash_key) == -1  # no TTL
        got = await locks.get_paused(["a", "b", "c"])
        assert locks.statistics().driver.round_trips == trips + 2
        assert got == {"a": Paused(FLOORED, "me", "why"), "b": Paused(FLOORED, "you")}
        await locks.acquire_batch([AcquireRequest("first", 5.0)])  # starts the counter (RD7)
        fencing = int(admin.get(f"{redis_prefix}:fencing") or 0)
        answers = await locks.acquire_batch(
            [AcquireRequest("ka", 5.0, "a", 1), AcquireRequest("kc", 5.0, "c", 1)]
        )
        assert answers[0] == Paused(FLOORED, "me", "why")
        assert isinstance(answers[1], LockLease)
        assert not admin.exists(f"{redis_prefix}:lock:ka")  # untouched
        assert int(admin.get(f"{redis_prefix}:fencing") or 0) == fencing + 1  # kc's only
        assert locks.statistics().refused_by_pause == 1
        await locks.set_paused({"a": None, "b": None})
        assert not admin.exists(hash_key)  # gone with its last field
    admin.close()


async def test_foreign_pause_values_are_no_records(redis_url: str, redis_prefix: str) -> None:
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    hash_key = f"{redis_prefix}:paused"
    foreign = ["garbage", "[1,2,3]", '[1.5,"me",null]', '[1,"",null]', '{"a":1}', "[1e300,'x']"]
    admin.hset(hash_key, mapping={f"n{i}": value for i, value in enumerate(foreign)})
    names = [f"n{i}" for i in range(len(foreign))]
    async with _provider(redis_url, redis_prefix) as locks:
        assert await locks.get_paused(names) == {}
        answers = await locks.acquire_batch(
            [AcquireRequest(f"k{i}", 5.0, name, 1) for i, name in enumerate(names)]
        )
        assert all(isinstance(answer, LockLease) for answer in answers), answers
        # A key of another type at the hash's name: the batch is not stopped by it.
        admin.delete(hash_key)
        admin.set(hash_key, "not a hash")
        (answer,) = await locks.acquire_batch([AcquireRequest("kx", 5.0, "n0", 1)])
        assert isinstance(answer, LockLease)
    admin.close()
