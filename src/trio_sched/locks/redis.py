"""`RedisLockProvider`: the `LockProvider` on Redis, through redis-py (``trio-sched[redis]``).

Importing this module imports redis-py; ``import trio_sched`` and ``trio_sched.locks``
never do. Users import it explicitly::

    from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

    async with RedisLockProvider(RedisLockProviderConfig(url="redis://127.0.0.1:6379/0")) as p:
        lease = await p.acquire("trio_sched:report:1767225600000", ttl=30.0)

Rules (on top of L1-L5 of `trio_sched.locks._protocol` and R1-R6 of
`trio_sched._redis_common`, which describe threads, timeouts, errors and redaction):
- RD1 Keys, all under ``prefix``: ``{prefix}:lock:{key}`` holds a lock's token (a string
  value with a PX expiry), ``{prefix}:fencing`` the fencing counter and
  ``{prefix}:watermarks`` a hash of watermarks (name -> epoch ms). Providers sharing a
  server and a prefix coordinate; different prefixes never see each other. The scripts
  touch several keys, so on Redis Cluster they would need one hash slot: not supported.
- RD2 Every state change is one Lua script, atomic on the server, and TTLs run on the
  server's clock (``PX``/``PEXPIRE``, milliseconds rounded up): acquire is ``SET NX PX``
  then ``INCRBY`` of the fencing counter; renew is GET-compare-PEXPIRE; release is
  GET-compare-DEL; a watermark advance is HGET-compare-HSET (``max``).
- RD3 ``acquire_batch`` is ONE script call for the whole batch (one round trip, L5),
  with the watermark check of rule L4 inside it, so the batch is atomic as a whole. A key
  named twice is granted to its first request only. The requests travel as one JSON
  argument (decoded by the script with cjson). ``advance_watermarks`` and
  ``get_watermarks`` are one round trip each; empty batches make none.
- RD4 ``LockLease.expire_at`` is the server's ``TIME`` (read inside the script) plus the
  TTL: an estimate on the server's clock; expiry itself is decided by the server alone.
- RD5 Cancellation (see R3): every method is a checkpoint and a cancelled call returns
  at once. What it leaves behind, per method:
  ``acquire``/``acquire_batch``: nothing hidden. The lock token is generated here, before
  the call, so when a call is cancelled, times out or loses its connection, the keys it
  may have taken are released by that token (compare-and-delete, safe whether or not
  they were taken). Best effort: when that release fails (server down, provider closed)
  or overtakes a command still queued on the server, the keys end by their TTL.
  ``renew``: the expiry is either the old or the new one; the lease stays the caller's.
  ``release``: the key is either deleted or ends by its TTL.
  ``advance_watermarks``: applied wholly or not at all (one script); it only moves
  forward, so the caller may simply repeat it.
  ``get_watermarks`` and ``health_check`` change nothing.
  ``aclose`` closes at once, before its checkpoint, so it closes even when cancelled.
- RD6 Watermark values and nominal instants must be ints within +/-2**53 (Lua numbers
  are doubles); others raise `InvalidArgumentError`.
- RD7 The fencing counter, when missing (first use, or a server restarted without its
  data), starts at the server's clock in microseconds, so fencing tokens keep
  increasing across such a restart as long as the server's clock moves forward and the
  provider averaged fewer than a million acquires per second. (A failover to a replica
  that lags behind the counter is not covered.)
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, final

import redis
import trio

from trio_sched._closeable import ClosesOnExit
from trio_sched._errors import (
    InvalidArgumentError,
    LeaseLostError,
    SchedulerError,
    ValidationError,
)
from trio_sched._redis_common import (
    DriverStatistics,
    RedisDriver,
    RedisScript,
    check_prefix,
    check_redis_url,
    check_timeout,
    redact_url,
)
from trio_sched.locks._protocol import AcquireRequest, LockLease, check_key, check_ttl

__all__ = ["RedisLockProvider", "RedisLockProviderConfig", "RedisLockStatistics"]

_log = logging.getLogger("trio_sched.locks.redis")

_MAX_EXACT: Final = 2**53  # RD6: larger integers are not exact as Lua numbers

# RD7: a missing counter starts at the server's TIME in microseconds (built as a string:
# a Lua number that large would be formatted as 1.7e+15), so tokens keep increasing
# across a restart of a server that lost its data.
_NEXT_FENCING: Final = """
local function next_fencing(key, count)
  if redis.call('EXISTS', key) == 0 then
    local now = redis.call('TIME')
    redis.call('SET', key, now[1] .. string.format('%06d', tonumber(now[2])))
  end
  return redis.call('INCRBY', key, count)
end
"""

# KEYS: lock, fencing counter. ARGV: token, ttl ms.
# Reply: nil when held, else {fencing token, server seconds, server microseconds}.
_ACQUIRE: Final = RedisScript(
    _NEXT_FENCING
    + """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
local fencing = next_fencing(KEYS[2], 1)
local now = redis.call('TIME')
return {fencing, now[1], now[2]}
"""
)

# KEYS: fencing counter, watermark hash, lock 1..n.
# ARGV[1]: a JSON array of n requests [token, ttl ms, has watermark (0/1), watermark
# name, nominal ms, watermark slack ms], numbers as strings (one argument instead of 6n:
# redis-py packs each argument in Python, which cost more than the script itself).
# Reply: n answers (fencing token > 0, 0 = held, -1 = refused by watermark), then the
# server's TIME as two more items (seconds, microseconds). Grants get consecutive
# fencing tokens from one INCRBY, in request order.
_ACQUIRE_BATCH: Final = RedisScript(
    _NEXT_FENCING
    + """
local requests = cjson.decode(ARGV[1])
local n = #KEYS - 2
local out = {}
local granted = 0
for i = 1, n do
  local r = requests[i]
  local refused = false
  if r[3] == 1 then
    local mark = redis.call('HGET', KEYS[2], r[4])
    if mark and tonumber(r[5]) <= tonumber(mark)
        and tonumber(mark) - tonumber(r[5]) >= tonumber(r[6]) then
      refused = true
    end
  end
  if refused then
    out[i] = -1
  elseif redis.call('SET', KEYS[i + 2], r[1], 'NX', 'PX', r[2]) then
    granted = granted + 1
    out[i] = granted
  else
    out[i] = 0
  end
end
if granted > 0 then
  local before = next_fencing(KEYS[1], granted) - granted
  for i = 1, n do
    if out[i] > 0 then
      out[i] = before + out[i]
    end
  end
end
local now = redis.call('TIME')
out[n + 1] = now[1]
out[n + 2] = now[2]
return out
"""
)

# KEYS: lock. ARGV: token, ttl ms. Reply: nil when not owned, else {seconds, microseconds}.
_RENEW: Final = RedisScript(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return false
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local now = redis.call('TIME')
return {now[1], now[2]}
"""
)

# KEYS: locks. ARGV: their tokens. Reply: how many were deleted.
_RELEASE: Final = RedisScript(
    """
local deleted = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    deleted = deleted + redis.call('DEL', KEYS[i])
  end
end
return deleted
"""
)

# KEYS: watermark hash. ARGV: name, value pairs. Moves each to max(current, value).
_ADVANCE: Final = RedisScript(
    """
for i = 1, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if not current or tonumber(ARGV[i + 1]) > tonumber(current) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0
"""
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RedisLockProviderConfig:
    """Where and how a `RedisLockProvider` talks to Redis.

    - ``url``: ``redis://``, ``rediss://`` (TLS) or ``unix://``, as redis-py reads it
      (``redis://user:password@host:port/db``). Shown redacted in every ``repr`` and
      message (R5).
    - ``prefix``: first part of every Redis key this provider touches (RD1).
    - ``operation_timeout``: bound on every call in seconds (R2).
    - ``max_connections``: worker threads (and so pooled connections) in use at once (R1).
    """

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "trio_sched"
    operation_timeout: float = 3.0
    max_connections: int = 10

    def __post_init__(self) -> None:
        check_redis_url(self.url)
        check_prefix(self.prefix)
        check_timeout("operation_timeout", self.operation_timeout)
        if (
            isinstance(self.max_connections, bool)
            or not isinstance(self.max_connections, int)
            or self.max_connections < 1
        ):
            raise ValidationError(
                f"max_connections: expected an int >= 1, got {self.max_connections!r}",
                field="max_connections",
            )

    def __repr__(self) -> str:
        return (
            f"RedisLockProviderConfig(url={redact_url(self.url)!r}, prefix={self.prefix!r}, "
            f"operation_timeout={self.operation_timeout!r}, "
            f"max_connections={self.max_connections!r})"
        )

    __str__ = __repr__


@final
@dataclass(frozen=True, slots=True)
class RedisLockStatistics:
    """A snapshot of a `RedisLockProvider`'s counters (this client's view only).

    Like `MemoryLockStatistics` minus what only the server knows (held and stored keys,
    watermark count): counting those would need a SCAN of the key space.
    `refused_by_watermark` counts batch requests refused by rule L4 and is not part of
    `misses` (a key found held). `last_fencing_token` is the highest this client got.
    `driver` holds round trips, failures, timeouts and compensations (R1-R3).
    """

    acquires: int
    misses: int
    refused_by_watermark: int
    renewals: int
    renewals_lost: int
    releases: int
    releases_missed: int
    last_fencing_token: int
    closed: bool
    driver: DriverStatistics


@final
class RedisLockProvider(ClosesOnExit):
    """A `LockProvider` on one Redis server (rules RD1-RD7 above, R1-R6 of the driver).

    Construction does no I/O; the first call connects. Also an async context manager
    that closes the provider on exit.
    """

    def __init__(self, config: RedisLockProviderConfig | None = None) -> None:
        self._config = config if config is not None else RedisLockProviderConfig()
        self._driver = RedisDriver(
            self._config.url,
            operation_timeout=self._config.operation_timeout,
            max_connections=self._config.max_connections,
            what="redis lock provider",
        )
        prefix = self._config.prefix
        self._lock_prefix = f"{prefix}:lock:"
        self._fencing_key = f"{prefix}:fencing"
        self._watermark_key = f"{prefix}:watermarks"
        self._acquires = 0
        self._misses = 0
        self._refused = 0
        self._renewals = 0
        self._renewals_lost = 0
        self._releases = 0
        self._releases_missed = 0
        self._fencing = 0

    def __repr__(self) -> str:
        state = "closed" if self._driver.closed else "open"
        return f"<RedisLockProvider {self._driver.url} prefix={self._config.prefix!r} {state}>"

    @property
    def config(self) -> RedisLockProviderConfig:
        return self._config

    # -- LockProvider ---------------------------------------------------------------

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        """Take `key` for `ttl` seconds if nobody holds it; ``None`` when held.

        One round trip (RD2). A checkpoint; a cancelled, timed-out or disconnected call
        leaves no hidden lock: the key is released by this call's token (RD5).
        """
        check_key(key)
        ttl_ms = _ttl_ms(ttl)
        token = secrets.token_hex(16)
        redis_key = self._lock_prefix + key

        def run(client: redis.Redis) -> object:
            return _ACQUIRE.run(
                self._driver, client, [redis_key, self._fencing_key], [token, ttl_ms]
            )

        reply = await self._driver.call(run, undo=self._undo([redis_key], [token]))
        if reply is None or reply is False:  # Lua false: nil (RESP2) or false (RESP3)
            self._misses += 1
            return None
        fencing, seconds, micros = _triple(reply)
        self._acquires += 1
        self._fencing = max(self._fencing, fencing)
        return LockLease(
            key=key, token=token, expire_at=_expiry(seconds, micros, ttl), fencing_token=fencing
        )

    async def acquire_batch(self, requests: Sequence[AcquireRequest]) -> list[LockLease | None]:
        """Acquire many keys in ONE round trip; result ``i`` answers request ``i``.

        ``None`` means held, or refused by its watermark (rule L4),
        decided inside the same script (RD3). A checkpoint; cancellation leaves no hidden
        lock (RD5). An empty batch makes no round trip.
        """
        tokens: list[str] = []
        keys = [self._fencing_key, self._watermark_key]
        rows: list[tuple[str, str, int, str, str, str]] = []
        for request in requests:
            check_key(request.key)
            token = secrets.token_hex(16)
            tokens.append(token)
            keys.append(self._lock_prefix + request.key)
            if request.watermark is None:
                rows.append((token, _ttl_ms(request.ttl), 0, "", "0", "0"))
            else:
                if not isinstance(request.watermark, str):
                    raise InvalidArgumentError(
                        f"watermark must be a str or None, got {request.watermark!r}"
                    )
                nominal = _exact_int("nominal_ms", request.nominal_ms)
                slack = _exact_int("watermark_slack_ms", request.watermark_slack_ms)
                rows.append((token, _ttl_ms(request.ttl), 1, request.watermark, nominal, slack))
        args = [json.dumps(rows, separators=(",", ":"))]
        if not requests:
            await self._checkpoint_open()
            return []

        def run(client: redis.Redis) -> object:
            return _ACQUIRE_BATCH.run(self._driver, client, keys, args)

        reply = await self._driver.call(run, undo=self._undo(keys[2:], tokens))
        answers = _int_list(reply, len(requests) + 2)
        now = _server_time(answers[-2], answers[-1])
        expiries: dict[float, datetime] = {}  # most batches share one TTL
        results: list[LockLease | None] = []
        for request, token, answer in zip(requests, tokens, answers, strict=False):
            if answer > 0:
                self._acquires += 1
                self._fencing = max(self._fencing, answer)
                expire_at = expiries.get(request.ttl)
                if expire_at is None:
                    expire_at = expiries[request.ttl] = now + timedelta(seconds=request.ttl)
                results.append(
                    LockLease(
                        key=request.key, token=token, expire_at=expire_at, fencing_token=answer
                    )
                )
            else:
                if answer < 0:
                    self._refused += 1
                else:
                    self._misses += 1
                results.append(None)
        return results

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        """Extend `lease` to `ttl` seconds from now on the server's clock.

        Raises `LeaseLostError` when the key expired (even if nobody took it since) or
        another token holds it. A checkpoint; a cancelled renew may or may not have
        extended the expiry, the lease stays the caller's either way (RD5).
        """
        ttl_ms = _ttl_ms(ttl)
        redis_key = self._lock_prefix + lease.key

        def run(client: redis.Redis) -> object:
            return _RENEW.run(self._driver, client, [redis_key], [lease.token, ttl_ms])

        reply = await self._driver.call(run)
        if reply is None or reply is False:  # Lua false: nil (RESP2) or false (RESP3)
            self._renewals_lost += 1
            raise LeaseLostError(f"lease on {lease.key!r} was lost (expired or taken)")
        seconds, micros = _int_list(reply, 2)
        self._renewals += 1
        return LockLease(
            key=lease.key,
            token=lease.token,
            expire_at=_expiry(seconds, micros, ttl),
            fencing_token=lease.fencing_token,
        )

    async def release(self, lease: LockLease) -> bool:
        """Delete the key if `lease` still owns it; returns whether it did.

        A checkpoint; a cancelled release either deleted the key or left it to its TTL.
        """
        redis_key = self._lock_prefix + lease.key

        def run(client: redis.Redis) -> object:
            return _RELEASE.run(self._driver, client, [redis_key], [lease.token])

        deleted = _int(await self._driver.call(run))
        if deleted:
            self._releases += 1
            return True
        self._releases_missed += 1
        return False

    async def get_watermarks(self, names: Sequence[str]) -> dict[str, int]:
        """Current watermarks for `names` (one HMGET); names never advanced are absent.

        A checkpoint; changes nothing.
        """
        wanted = list(names)
        if not wanted:
            await self._checkpoint_open()
            return {}

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            return client.hmget(self._watermark_key, wanted)

        values = await self._driver.call(run)
        if not isinstance(values, list) or len(values) != len(wanted):
            raise SchedulerError(f"unexpected HMGET reply from {self._driver.url}: {values!r}")
        return {name: int(value) for name, value in zip(wanted, values, strict=True) if value}

    async def advance_watermarks(self, marks: Mapping[str, int]) -> None:
        """Move each watermark to ``max(current, value)``, all in one script (RD2, RD3).

        A checkpoint; a cancelled call moved all of them or none. An empty mapping makes
        no round trip.
        """
        args: list[str] = []
        for name, value in marks.items():
            if not isinstance(name, str):
                raise InvalidArgumentError(f"watermark name must be a str, got {name!r}")
            args += (name, _exact_int("watermark", value))
        if not args:
            await self._checkpoint_open()
            return

        def run(client: redis.Redis) -> object:
            return _ADVANCE.run(self._driver, client, [self._watermark_key], args)

        await self._driver.call(run)

    async def health_check(self) -> None:
        """PING the server within ``operation_timeout``; raise a `SchedulerError` if not.

        `RetryableError` when unreachable or slow, `ClosedError` after `aclose`. A
        checkpoint; changes nothing.
        """

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            return client.ping()

        if await self._driver.call(run) is not True:
            raise SchedulerError(f"unexpected PING reply from {self._driver.url}")

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent.

        Closes *before* its checkpoint, so the provider is closed even when the call is
        cancelled; afterwards every other method raises `ClosedError`. Locks stay on the
        server until their TTL (closing one client must not free what others rely on).
        """
        self._driver.close()
        await trio.lowlevel.checkpoint()

    # -- introspection --------------------------------------------------------------

    def statistics(self) -> RedisLockStatistics:
        """A snapshot of this client's counters (no I/O)."""
        return RedisLockStatistics(
            acquires=self._acquires,
            misses=self._misses,
            refused_by_watermark=self._refused,
            renewals=self._renewals,
            renewals_lost=self._renewals_lost,
            releases=self._releases,
            releases_missed=self._releases_missed,
            last_fencing_token=self._fencing,
            closed=self._driver.closed,
            driver=self._driver.statistics(),
        )

    # -- internals --------------------------------------------------------------------

    def _undo(self, redis_keys: list[str], tokens: list[str]) -> _Release:
        return _Release(self._driver, redis_keys, tokens)

    async def _checkpoint_open(self) -> None:
        await trio.lowlevel.checkpoint()
        self._driver.check_open()


@final
class _Release:
    """The compensation of an acquire (R3): release `keys` if `tokens` still own them."""

    __slots__ = ("_driver", "_keys", "_tokens")

    def __init__(self, driver: RedisDriver, keys: list[str], tokens: list[str]) -> None:
        self._driver = driver
        self._keys = keys
        self._tokens = tokens

    def __call__(self, client: redis.Redis) -> None:
        deleted = _RELEASE.run(self._driver, client, self._keys, self._tokens)
        if deleted:
            _log.debug("released %s lock(s) of an abandoned or failed acquire", deleted)


def _ttl_ms(ttl: object) -> str:
    """TTL seconds as whole milliseconds for PX, rounded up (never 0)."""
    return str(max(1, math.ceil(check_ttl(ttl) * 1000)))


def _exact_int(what: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be an int (epoch ms), got {value!r}")
    if not -_MAX_EXACT <= value <= _MAX_EXACT:
        raise InvalidArgumentError(f"{what} {value} is outside +/-2**53 (rule RD6)")
    return str(value)


def _server_time(seconds: int, micros: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)


def _expiry(seconds: int, micros: int, ttl: float) -> datetime:
    return _server_time(seconds, micros) + timedelta(seconds=ttl)


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise SchedulerError(f"unexpected reply from Redis: {value!r}")


def _int_list(reply: object, length: int) -> list[int]:
    if not isinstance(reply, list) or len(reply) != length:
        raise SchedulerError(f"unexpected reply from Redis (want {length} items): {reply!r}")
    return [_int(item) for item in reply]


def _triple(reply: object) -> tuple[int, int, int]:
    first, second, third = _int_list(reply, 3)
    return first, second, third
