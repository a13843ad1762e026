"""MemoryLockProvider beyond the conformance suite: clocks, threads, cancellation, close,
validation, statistics, the lazy sweep and pause records (rules M1-M7 of
trio_sched.locks.memory)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
import trio
import trio.testing

from trio_sched import ClosedError, InvalidArgumentError, LeaseLostError
from trio_sched.locks import (
    AcquireRequest,
    Held,
    LockLease,
    LockProvider,
    MemoryLockProvider,
    Paused,
    PauseStore,
)


async def _acquire(provider: MemoryLockProvider, key: str, ttl: float) -> LockLease:
    lease = await provider.acquire(key, ttl)
    assert lease is not None, f"{key!r} unexpectedly held"
    return lease


def test_is_a_lock_provider() -> None:
    assert isinstance(MemoryLockProvider(), LockProvider)
    assert isinstance(MemoryLockProvider(), PauseStore)


async def test_expiry_is_exact_on_the_trio_clock(autojump_clock: trio.testing.MockClock) -> None:
    provider = MemoryLockProvider()
    await _acquire(provider, "k", 10.0)
    await trio.sleep(9.999)
    assert await provider.acquire("k", 10.0) is None
    await trio.sleep(0.001)  # exactly at the TTL the key is free (expiry is "<= now")
    assert await provider.acquire("k", 10.0) is not None


async def test_renew_extends_from_now(autojump_clock: trio.testing.MockClock) -> None:
    provider = MemoryLockProvider()
    lease = await _acquire(provider, "k", 10.0)
    await trio.sleep(8)
    renewed = await provider.renew(lease, 10.0)
    assert (renewed.token, renewed.fencing_token) == (lease.token, lease.fencing_token)
    await trio.sleep(9.5)  # 17.5 s after acquire, 9.5 s after renew
    assert await provider.acquire("k", 1.0) is None
    await trio.sleep(0.5)
    with pytest.raises(LeaseLostError):
        await provider.renew(renewed, 10.0)
    assert provider.statistics().renewals_lost == 1


async def test_expired_but_untaken_lease_is_lost(autojump_clock: trio.testing.MockClock) -> None:
    provider = MemoryLockProvider()
    lease = await _acquire(provider, "k", 1.0)
    await trio.sleep(1.0)
    assert not await provider.release(lease)
    with pytest.raises(LeaseLostError):
        await provider.renew(lease, 1.0)


async def test_expire_at_comes_from_the_wall_clock() -> None:
    wall = datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)
    provider = MemoryLockProvider(wall_clock=lambda: wall)
    lease = await _acquire(provider, "k", 1.5)
    assert lease.expire_at == wall + timedelta(seconds=1.5)
    assert lease.expire_at.tzinfo is UTC


async def test_naive_wall_clock_is_rejected() -> None:
    provider = MemoryLockProvider(wall_clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(InvalidArgumentError, match="aware"):
        await provider.acquire("k", 1.0)


@pytest.mark.parametrize("ttl", [0, -1.0, math.nan, math.inf, True, "1", 1e12, 10**400])
async def test_invalid_ttl(ttl: object) -> None:
    provider = MemoryLockProvider()
    with pytest.raises(InvalidArgumentError, match="ttl"):
        await provider.acquire("k", ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="ttl"):
        await provider.acquire_batch([AcquireRequest("k", ttl)])  # type: ignore[arg-type]
    assert provider.statistics().acquires == 0


@pytest.mark.parametrize("keep", [-1.0, math.nan, math.inf, True, "1", 1e12])
async def test_invalid_keep(keep: object) -> None:
    provider = MemoryLockProvider()
    with pytest.raises(InvalidArgumentError, match="keep"):
        await provider.acquire_batch([AcquireRequest("k", 1.0, keep=keep)])  # type: ignore[arg-type]
    assert provider.statistics().acquires == 0


async def test_empty_key_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="key"):
        await MemoryLockProvider().acquire("", 1.0)


async def test_fencing_is_one_counter_for_all_keys() -> None:
    provider = MemoryLockProvider()
    tokens = [(await _acquire(provider, f"k{i}", 5.0)).fencing_token for i in range(3)]
    batch = await provider.acquire_batch([AcquireRequest(f"b{i}", 5.0) for i in range(3)])
    tokens += [lease.fencing_token for lease in batch if lease is not None]
    assert tokens == [1, 2, 3, 4, 5, 6]
    assert provider.statistics().last_fencing_token == 6


async def test_batch_refusals_and_statistics() -> None:
    provider = MemoryLockProvider()
    await provider.advance_watermarks({"t": 100})
    await _acquire(provider, "held", 5.0)
    results = await provider.acquire_batch(
        [
            AcquireRequest("a", 5.0, "t", 101),
            AcquireRequest("b", 5.0, "t", 100),
            AcquireRequest("held", 5.0),
            AcquireRequest("a", 5.0),
        ]
    )
    assert [isinstance(r, LockLease) for r in results] == [True, False, False, False]
    assert results[1] is None  # refused by its watermark
    assert isinstance(results[2], Held)  # leased by another token, not dispatched
    stats = provider.statistics()
    assert (stats.acquires, stats.misses, stats.refused_by_watermark) == (2, 2, 1)
    assert (stats.held_locks, stats.watermarks) == (2, 1)


async def test_statistics_count_renewals_and_releases() -> None:
    provider = MemoryLockProvider()
    lease = await _acquire(provider, "k", 5.0)
    await provider.renew(lease, 5.0)
    assert await provider.release(lease)
    assert not await provider.release(lease)
    stats = provider.statistics()
    assert (stats.renewals, stats.releases, stats.releases_missed) == (1, 1, 1)
    assert stats.held_locks == stats.stored_keys == 0


# -- cancellation (rule M2) -------------------------------------------------------------


async def test_cancelled_acquire_takes_nothing() -> None:
    provider = MemoryLockProvider()
    with trio.CancelScope() as scope:
        scope.cancel()
        await provider.acquire("k", 60.0)
    assert scope.cancelled_caught
    with trio.CancelScope() as scope:
        scope.cancel()
        await provider.acquire_batch([AcquireRequest("k", 60.0), AcquireRequest("j", 60.0)])
    assert scope.cancelled_caught
    stats = provider.statistics()
    assert (stats.stored_keys, stats.acquires, stats.last_fencing_token) == (0, 0, 0)
    assert await provider.acquire("k", 60.0) is not None


async def test_cancelled_renew_and_release_change_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    provider = MemoryLockProvider()
    lease = await _acquire(provider, "k", 10.0)
    await trio.sleep(5)
    with trio.CancelScope() as scope:
        scope.cancel()
        await provider.renew(lease, 100.0)
    with trio.CancelScope() as scope:
        scope.cancel()
        await provider.release(lease)
    assert await provider.acquire("k", 1.0) is None  # release did not happen
    await trio.sleep(5)
    assert await provider.acquire("k", 1.0) is not None  # renew did not happen


async def test_cancelled_advance_moves_nothing() -> None:
    provider = MemoryLockProvider()
    with trio.CancelScope() as scope:
        scope.cancel()
        await provider.advance_watermarks({"t": 5})
    assert await provider.get_watermarks(["t"]) == {}


async def test_every_method_is_a_checkpoint() -> None:
    provider = MemoryLockProvider()
    lease = await _acquire(provider, "k", 5.0)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: provider.acquire("x", 1.0),
        lambda: provider.acquire_batch([]),
        lambda: provider.renew(lease, 5.0),
        lambda: provider.release(lease),
        lambda: provider.get_watermarks([]),
        lambda: provider.advance_watermarks({}),
        lambda: provider.health_check(),
        lambda: provider.aclose(),
    ]
    for call in calls:
        with trio.testing.assert_checkpoints():
            await call()


# -- close ----------------------------------------------------------------------------


async def test_close_is_idempotent_and_final() -> None:
    provider = MemoryLockProvider()
    lease = await _acquire(provider, "k", 5.0)
    await provider.aclose()
    await provider.aclose()
    for call in (
        lambda: provider.acquire("k", 1.0),
        lambda: provider.acquire_batch([]),
        lambda: provider.renew(lease, 1.0),
        lambda: provider.release(lease),
        lambda: provider.get_watermarks(["t"]),
        lambda: provider.advance_watermarks({"t": 1}),
        lambda: provider.health_check(),
    ):
        with pytest.raises(ClosedError):
            await call()
    stats = provider.statistics()
    assert stats.closed
    assert stats.stored_keys == 0


async def test_cancelled_aclose_still_closes() -> None:
    provider = MemoryLockProvider()
    with trio.CancelScope() as scope:
        scope.cancel()
        await provider.aclose()
    assert scope.cancelled_caught
    with pytest.raises(ClosedError):
        await provider.health_check()


# -- clocks and sharing (rules M1, M3) ----------------------------------------------------


def test_default_clock_binds_to_one_trio_run() -> None:
    provider = MemoryLockProvider()

    async def use() -> None:
        await provider.acquire("k", 1.0)

    trio.run(use)
    with pytest.raises(InvalidArgumentError, match=r"clock=time\.monotonic"):
        trio.run(use)


def test_default_clock_needs_a_trio_run() -> None:
    with pytest.raises(RuntimeError):
        MemoryLockProvider().statistics()


def test_monotonic_clock_works_across_runs() -> None:
    provider = MemoryLockProvider(clock=time.monotonic)

    async def take() -> LockLease | None:
        return await provider.acquire("k", 60.0)

    assert trio.run(take) is not None
    assert trio.run(take) is None  # the second run sees the first run's lock
    assert provider.statistics().held_locks == 1


def test_threads_hammering_one_key_have_one_holder_at_a_time() -> None:
    provider = MemoryLockProvider(clock=time.monotonic)
    guard = threading.Lock()
    holders = 0
    max_holders = 0
    fencing_in_order: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    async def hammer() -> None:
        nonlocal holders, max_holders
        for _ in range(2000):
            lease = await provider.acquire("hot", 30.0)
            if lease is None:
                continue
            with guard:
                holders += 1
                max_holders = max(max_holders, holders)
                fencing_in_order.append(lease.fencing_token)
            await trio.lowlevel.checkpoint()  # hold it across a scheduling point
            with guard:
                holders -= 1
            assert await provider.release(lease)

    def thread_main() -> None:
        try:
            start.wait()
            trio.run(hammer)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=thread_main) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert max_holders == 1
    stats = provider.statistics()
    # Both outcomes happened, so "one holder at a time" was really contested.
    assert stats.acquires == len(fencing_in_order) > 0
    assert stats.misses > 0
    assert fencing_in_order == sorted(set(fencing_in_order))


# -- lazy sweep (rule M6) --------------------------------------------------------------


async def test_expired_keys_are_swept(autojump_clock: trio.testing.MockClock) -> None:
    provider = MemoryLockProvider()
    for i in range(3000):
        await _acquire(provider, f"old{i}", 1.0)
    await trio.sleep(2)
    for i in range(3000):
        await _acquire(provider, f"new{i}", 60.0)
    stats = provider.statistics()
    assert stats.held_locks == 3000
    # Without a sweep 6000 keys would be stored; one sweep at 4096 dropped the 3000 old.
    assert stats.stored_keys < 4500


async def test_async_with_closes_like_the_other_providers() -> None:
    async with MemoryLockProvider() as provider:
        assert await provider.acquire("k", 5.0) is not None
    with pytest.raises(ClosedError):
        await provider.acquire("k", 5.0)
    await provider.aclose()  # closing again is fine


async def test_pause_records_go_with_aclose_and_count() -> None:
    provider = MemoryLockProvider()
    since = datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)
    await provider.set_paused({"t": Paused(since, "me", "why")})
    (answer,) = await provider.acquire_batch([AcquireRequest("k", 1.0, "t", 0)])
    assert answer == Paused(since.replace(microsecond=999_000), "me", "why")
    stats = provider.statistics()
    assert (stats.paused, stats.refused_by_pause, stats.misses, stats.acquires) == (1, 1, 0, 0)
    await provider.aclose()
    with pytest.raises(ClosedError):
        await provider.set_paused({"t": None})
    with pytest.raises(ClosedError):
        await provider.get_paused(["t"])
    assert provider.statistics().paused == 0


@pytest.mark.parametrize(
    "since",
    [
        datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
    ],
)
async def test_pause_since_outside_utc_range_is_invalid(since: datetime) -> None:
    with pytest.raises(InvalidArgumentError, match="range"):
        await MemoryLockProvider().set_paused({"t": Paused(since, "me")})
