"""`RedisLockProvider`: the `LockProvider` on Redis, through redis-py (``trio-sched[redis]``).

Importing this module imports redis-py; ``import trio_sched`` and ``trio_sched.locks``
never do. Users import it explicitly::

    from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

    async with RedisLockProvider(RedisLockProviderConfig(url="redis://127.0.0.1:6379/0")) as p:
        lease = await p.acquire("trio_sched:report:1767225600000", ttl=30.0)

Rules (on top of L1-L8 of `trio_sched.locks._protocol`, R1-R4 and R7 of
`trio_sched._redis_driver`, which describe threads, timeouts, errors and persistence,
R5-R6 of `trio_sched._redis_common` (URL checks, redaction) and R8 of
`trio_sched._redis_epoch` (the data-loss sentinel)):
- RD1 Keys, all under ``prefix``: ``{prefix}:lock:{key}`` holds an occurrence's record
  (L6, stored as RD8 says), ``{prefix}:fencing`` the fencing counter,
  ``{prefix}:watermarks`` a hash of watermarks (name -> epoch ms) and ``{prefix}:epoch``
  the epoch sentinel of R8 (RD9). Providers sharing a
  server and a prefix coordinate; different prefixes never see each other. The scripts
  touch several keys, so on Redis Cluster they would need one hash slot: not supported.
- RD2 Every state change is one Lua script, atomic on the server, so each decision of
  L6-L8 is taken and applied in one step no other client interleaves with: of racing
  takeovers of one record the first to run wins and the others find its lease (L7).
  Times are the server's: a script that needs the time reads ``TIME`` once, first, and
  compares lease ends with it; memories are ``PX`` expiries (milliseconds, rounded up).
  Per operation:
  acquire: ``SET NX PX`` of a fresh record; when the key exists, ``GET``: ``None`` when
  dispatched, `Held` while leased, else a takeover: ``SET`` of a record with the new
  token, ``PX`` the longer of the old memory (``PTTL``) and the request's. Grants and
  takeovers then get consecutive fencing tokens from one ``INCRBY``.
  renew: ``GET``, check token and lease end, ``SET`` the new lease end (same flag) with
  ``PX`` the longer of the memory left and the new lease.
  release: ``GET``, check token, lease end and flag, ``DEL``.
  mark_dispatched: ``GET``, check the token (the lease may have run out: a record
  nobody took over still holds its token), ``SETRANGE`` of the flag byte, which leaves
  the key's expiry alone. A record whose memory ended is gone and cannot be marked.
  A watermark advance is HGET-compare-HSET (``max``).
  Old servers: every command exists since Redis 2.6.12 (no ``PEXPIRE GT``, no
  ``KEEPTTL``), and the scripts that read ``TIME`` call ``redis.replicate_commands()``
  when it exists: Redis 3.2-4.x refuse a write after ``TIME`` without it (from 5 on it
  is the default), so 3.2 is the oldest server the provider runs on.
- RD3 ``acquire_batch`` is ONE script call for the whole batch (one round trip, L5),
  with the watermark check of rule L4 and the epoch check of RD9 inside it, so the
  batch is atomic as a whole. A key
  named twice is granted to its first request only. The requests travel as one JSON
  argument (decoded by the script with cjson). ``acquire`` is a batch of one with
  ``keep=ttl`` whose `Held` is answered ``None``. ``mark_dispatched``,
  ``advance_watermarks`` and ``get_watermarks`` are one round trip each; empty batches
  make none.
- RD4 ``LockLease.expire_at`` is the server's ``TIME`` (read inside the script) plus the
  TTL, and ``Held.expires_in`` the holder's lease end minus that time: estimates on the
  server's clock; expiry itself is decided by the server alone.
- RD5 Cancellation (see R3): every method is a checkpoint and a cancelled call returns
  at once. What it leaves behind, per method:
  ``acquire``/``acquire_batch``: nothing hidden. The lock token is generated here, before
  the call, so when a call is cancelled, times out or loses its connection, the records
  it may have taken (or taken over) are released by that token (compare-and-delete,
  safe whether or not they were taken). Best effort: when that release fails (server
  down, provider closed), overtakes a command still queued on the server, or comes
  after the lease ran out, the lease ends by its TTL and the next request takes the
  record over (L7).
  ``renew``: the expiry is either the old or the new one; the lease stays the caller's.
  ``release``: the record is either deleted or its lease ends by its TTL.
  ``mark_dispatched``: applied wholly or not at all (one script), and nothing is undone:
  marking is idempotent (a record its token already marked answers ``True`` again), so
  the caller may simply repeat it.
  ``advance_watermarks``: applied wholly or not at all (one script); it only moves
  forward, so the caller may simply repeat it.
  ``get_watermarks`` changes nothing, ``health_check`` nothing but the sentinel (RD9).
  ``aclose`` closes at once, before its checkpoint, so it closes even when cancelled.
- RD6 Watermark values and nominal instants must be ints within +/-2**53 (Lua numbers
  are doubles); others raise `InvalidArgumentError`.
- RD7 The fencing counter, when missing (first use, or a server restarted without its
  data), starts at the server's clock in microseconds, so fencing tokens keep
  increasing across such a restart as long as the server's clock moves forward and the
  provider averaged fewer than a million acquires per second. (A failover to a replica
  that lags behind the counter is not covered.)
- RD8 A record is one string value, ``{dispatched}:{lease end}:{token}``: ``0`` or
  ``1``, the instant its lease runs out (server epoch milliseconds), the holder's token
  (``0:1767225630000:9f2c...``). Its key's expiry is the record's memory: ``max(ttl,
  keep)`` from the acquire, never shorter than its lease. The fencing token is not
  stored (nothing reads it back). A value of another format or type under a lock key
  (a bare token left by a provider from before L6, or foreign data) is no record:
  requests for it are answered ``None``, ``renew`` raises `LeaseLostError`, ``release``
  and ``mark_dispatched`` answer ``False``; no script overwrites it, and none fails on
  it (``GET`` runs through ``pcall``), so foreign data never stops a batch half-way.
- RD9 Data loss (R8). ``acquire_batch`` and ``health_check`` check the epoch sentinel
  inside their script (a GET of it and of the fencing counter; no extra round trip).
  A loss is the sentinel replaced, or a *rollback*: the fencing counter behind the
  highest token this provider got (an older snapshot or AOF restored, a lagging
  replica promoted); the script then renews the sentinel (born now, flagged lost) and
  moves the counter up to that token, so fencing tokens keep increasing (L2). The call
  that finds a loss grants nothing (so nothing is left to release), flags the sentinel
  lost and raises `DataLossError` (a `RetryableError`: the scheduler reports an
  ``error`` event per occurrence and retries them, rule D8); the loss is logged once
  per provider.
  From then on, on every provider of the key space (also one that started after the
  loss, once any provider flagged it): a request with a watermark (a scheduled
  occurrence) whose ``nominal_ms`` is before the new epoch's ``born`` (the *loss
  instant*: the first time anyone touched the emptied key space, server clock) is
  answered ``None`` while the server's time is before ``born + max(ttl, keep)`` of the
  request: its occurrence may have been dispatched before the loss, and its record and
  watermark are gone; after that memory every record from before the loss would have
  ended anyway. Requests without a watermark (manual triggers) are not refused.
  ``health_check`` raises `DataLossError` when it finds the loss (then the next
  ``acquire_batch`` raises it too, without a round trip, so the scheduler reports it),
  and afterwards while ``born`` plus the longest ``max(ttl, keep)`` this provider was
  asked for has not passed. Not covered: an instance whose clock ran *ahead* of the
  server's may have dispatched, before the loss, occurrences nominally after ``born``;
  a rollback is seen only by a provider that got a token the rolled-back counter has
  not reached (another provider's grants may pass it first).
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
    DataLossError,
    InvalidArgumentError,
    LeaseLostError,
    SchedulerError,
    ValidationError,
)
from trio_sched._redis_common import (
    check_flag,
    check_prefix,
    check_redis_url,
    check_timeout,
    redact_url,
)
from trio_sched._redis_driver import DriverStatistics, RedisDriver, RedisScript
from trio_sched._redis_epoch import EPOCH_LUA, Detection, EpochWatch
from trio_sched.locks._protocol import (
    AcquireRequest,
    Held,
    LockLease,
    check_request,
    check_ttl,
)

__all__ = ["RedisLockProvider", "RedisLockProviderConfig", "RedisLockStatistics"]

_log = logging.getLogger("trio_sched.locks.redis")

_MAX_EXACT: Final = 2**53  # RD6: larger integers are not exact as Lua numbers

# RD8: the fields of a record, or nothing for a value that is not one. GET through
# pcall: a key of another type answers an error instead of stopping the script half-way.
_RECORD: Final = """
local function record(key)
  local value = redis.pcall('GET', key)
  if type(value) ~= 'string' then
    return nil
  end
  local flag, lease_end, token = string.match(value, '^([01]):(%d+):(.+)$')
  if not flag then
    return nil
  end
  return flag, tonumber(lease_end), token, value
end
"""

# RD2: the server's time, read once before any write; `now_ms` decides every lease.
_NOW: Final = """
if redis.replicate_commands then
  redis.replicate_commands()
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
"""

# RD7: a missing counter starts at the server's TIME in microseconds (built as a string:
# a Lua number that large would be formatted as 1.7e+15), so tokens keep increasing
# across a restart of a server that lost its data.
_NEXT_FENCING: Final = """
local function next_fencing(key, count)
  if redis.call('EXISTS', key) == 0 then
    redis.call('SET', key, now[1] .. string.format('%06d', tonumber(now[2])))
  end
  return redis.call('INCRBY', key, count)
end
"""

# RD9: the data was rolled back when the fencing counter is behind a token the client
# got. `rolled_back` then sets it to that token (so tokens keep increasing, L2) and
# answers 2, else 1 (the caller found the epoch replaced). A counter that is missing
# (RD7) or not a number is never behind (GET through pcall, tonumber).
_ROLLBACK: Final = """
local function behind(counter, highest)
  local value = tonumber(redis.pcall('GET', counter))
  return value ~= nil and value < tonumber(highest)
end
local function rolled_back(counter, highest)
  if behind(counter, highest) then
    redis.call('SET', counter, highest)
    return 2
  end
  return 1
end
"""

# KEYS: fencing counter, watermark hash, epoch sentinel, lock 1..n.
# ARGV[1]: a JSON array of n requests [token, ttl ms, keep ms, has watermark (0/1),
# watermark name, nominal ms, watermark slack ms], numbers as strings (one argument
# instead of 7n: redis-py packs each argument in Python, which cost more than the script
# itself). ARGV[2], ARGV[3], ARGV[4]: the epoch the client remembers, its creator id
# (R8) and the highest fencing token it got ('0' for none).
# Reply: n answers, then the server's TIME as two items (seconds, microseconds), the
# epoch sentinel (false: foreign data) and 0; or, when the epoch replaced the one the
# client knew or holds foreign data, only TIME, the epoch and 1, and when the fencing
# counter is behind ARGV[4] (a rollback, RD9), only TIME, the new epoch and 2: nothing
# was granted.
# An answer is a fencing token (> 0) for a fresh grant, {fencing token, old token} for a
# takeover, the record (a string) when held, 0 when dispatched, not a record or granted
# earlier in the batch, -1 when refused by its watermark, -2 when refused after a data
# loss (RD9). Grants and takeovers get consecutive fencing tokens from one INCRBY, in
# request order.
_ACQUIRE_BATCH: Final = RedisScript(
    _NOW
    + _RECORD
    + _NEXT_FENCING
    + EPOCH_LUA
    + _ROLLBACK
    + """
local epoch, replaced, born, lost = epoch_check(KEYS[3], ARGV[2], ARGV[3], now_ms,
                                                behind(KEYS[1], ARGV[4]))
if replaced then
  return {now[1], now[2], epoch, rolled_back(KEYS[1], ARGV[4])}
end
local guard = lost and born  -- RD9: occurrences before it are refused for a while
local requests = cjson.decode(ARGV[1])
local n = #KEYS - 3
local out = {}
local grants = {}
local granted = 0
local taken = {}
local heads = {}  -- '0:{lease end}:' per ttl: most batches share one
for i = 1, n do
  local r = requests[i]
  local key = KEYS[i + 3]
  local refused = false
  if r[4] == 1 then
    if guard and tonumber(r[6]) < guard and now_ms < guard + tonumber(r[3]) then
      refused = -2
    else
      local mark = redis.call('HGET', KEYS[2], r[5])
      if mark and tonumber(r[6]) <= tonumber(mark)
          and tonumber(mark) - tonumber(r[6]) >= tonumber(r[7]) then
        refused = -1
      end
    end
  end
  if refused then
    out[i] = refused
  elseif taken[key] then
    out[i] = 0
  else
    local head = heads[r[2]]
    if not head then
      head = string.format('0:%d:', now_ms + tonumber(r[2]))
      heads[r[2]] = head
    end
    local fresh = redis.call('SET', key, head .. r[1], 'NX', 'PX', r[3])
    local flag, lease_end, token, value
    if not fresh then
      flag, lease_end, token, value = record(key)
    end
    if fresh or flag == '0' and lease_end <= now_ms then
      if not fresh then  -- L7: the lease ran out undispatched
        local kept = math.max(redis.call('PTTL', key), tonumber(r[3]))
        redis.call('SET', key, head .. r[1], 'PX', string.format('%d', kept))
        out[i] = {0, token}
      else
        out[i] = false
      end
      granted = granted + 1
      grants[granted] = i
      taken[key] = true
    elseif flag == '0' then
      out[i] = value
    else
      out[i] = 0
    end
  end
end
if granted > 0 then
  local before = next_fencing(KEYS[1], granted) - granted
  for k = 1, granted do
    local i = grants[k]
    if out[i] then
      out[i][1] = before + k
    else
      out[i] = before + k
    end
  end
end
out[n + 1] = now[1]
out[n + 2] = now[2]
out[n + 3] = epoch
out[n + 4] = 0
return out
"""
)

# KEYS: epoch sentinel, fencing counter. ARGV: the epoch the client remembers, its
# creator id (R8), the highest fencing token it got. Reply: the server's TIME (seconds,
# microseconds), the epoch sentinel (false: foreign data) and 0, or as `_ACQUIRE_BATCH`
# 1 or 2 when it found a loss.
_HEALTH: Final = RedisScript(
    _NOW
    + EPOCH_LUA
    + _ROLLBACK
    + """
local epoch, replaced = epoch_check(KEYS[1], ARGV[1], ARGV[2], now_ms,
                                    behind(KEYS[2], ARGV[3]))
return {now[1], now[2], epoch, replaced and rolled_back(KEYS[2], ARGV[3]) or 0}
"""
)

# KEYS: lock. ARGV: token, ttl ms. Reply: nil when not owned or run out, else
# {seconds, microseconds}.
_RENEW: Final = RedisScript(
    _NOW
    + _RECORD
    + """
local flag, lease_end, token = record(KEYS[1])
if token ~= ARGV[1] or lease_end <= now_ms then
  return false
end
local ttl = tonumber(ARGV[2])
local kept = math.max(redis.call('PTTL', KEYS[1]), ttl)
redis.call('SET', KEYS[1], string.format('%s:%d:%s', flag, now_ms + ttl, token),
  'PX', string.format('%d', kept))
return {now[1], now[2]}
"""
)

# KEYS: locks. ARGV: their tokens. Reply: how many were deleted (leased, undispatched).
_RELEASE: Final = RedisScript(
    _NOW
    + _RECORD
    + """
local deleted = 0
for i = 1, #KEYS do
  local flag, lease_end, token = record(KEYS[i])
  if token == ARGV[i] and flag == '0' and lease_end > now_ms then
    deleted = deleted + redis.call('DEL', KEYS[i])
  end
end
return deleted
"""
)

# KEYS: locks. ARGV: their tokens. Reply per lock: 0 not owned, 1 marked now, 2 marked
# before. No TIME: the lease may have run out, and a key whose memory ended is gone.
_MARK: Final = RedisScript(
    _RECORD
    + """
local out = {}
for i = 1, #KEYS do
  local flag, lease_end, token = record(KEYS[i])
  if token ~= ARGV[i] then
    out[i] = 0
  elseif flag == '0' then
    redis.call('SETRANGE', KEYS[i], 0, '1')
    out[i] = 1
  else
    out[i] = 2
  end
end
return out
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
    - ``require_persistence``: refuse to work (`InvalidArgumentError` from every call)
      unless the server runs the append-only file with ``appendfsync everysec`` or
      ``always`` and lets ``CONFIG GET`` show it; by default that check only warns (R7).
    """

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "trio_sched"
    operation_timeout: float = 3.0
    max_connections: int = 10
    require_persistence: bool = False

    def __post_init__(self) -> None:
        check_redis_url(self.url)
        check_prefix(self.prefix)
        check_timeout("operation_timeout", self.operation_timeout)
        check_flag("require_persistence", self.require_persistence)
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
            f"max_connections={self.max_connections!r}, "
            f"require_persistence={self.require_persistence!r})"
        )

    __str__ = __repr__


@final
@dataclass(frozen=True, slots=True)
class RedisLockStatistics:
    """A snapshot of a `RedisLockProvider`'s counters (this client's view only).

    Like `MemoryLockStatistics` minus what only the server knows (held and stored keys,
    watermark count): counting those would need a SCAN of the key space.
    `refused_by_watermark` counts batch requests refused by rule L4 and is not part of
    `misses` (a key found held or dispatched). `acquires` counts grants, takeovers
    included; `takeovers` those of rule L7, `dispatched` the records this client marked
    (L8; a repeated mark is not counted again). `last_fencing_token` is the highest this
    client got. `data_losses` counts the losses this client detected (R8, RD9) and
    `refused_after_loss` the requests refused by RD9 (not part of `misses` either).
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
    takeovers: int = 0
    dispatched: int = 0
    data_losses: int = 0
    refused_after_loss: int = 0


@final
class RedisLockProvider(ClosesOnExit):
    """A `LockProvider` on one Redis server (rules RD1-RD8 above, R1-R6 of the driver).

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
            require_persistence=self._config.require_persistence,
        )
        prefix = self._config.prefix
        self._lock_prefix = f"{prefix}:lock:"
        self._fencing_key = f"{prefix}:fencing"
        self._watermark_key = f"{prefix}:watermarks"
        self._epoch = EpochWatch(
            f"{prefix}:epoch", f"redis lock provider ({self._driver.url}, prefix {prefix!r})"
        )
        # RD9: a loss `health_check` found, for the next `acquire_batch` to raise too.
        self._unreported: DataLossError | None = None
        self._longest_keep_ms = 0  # the longest record memory asked for (health_check)
        self._refused_after_loss = 0
        self._acquires = 0
        self._misses = 0
        self._refused = 0
        self._renewals = 0
        self._renewals_lost = 0
        self._releases = 0
        self._releases_missed = 0
        self._takeovers = 0
        self._marked = 0
        self._fencing = 0

    def __repr__(self) -> str:
        state = "closed" if self._driver.closed else "open"
        return f"<RedisLockProvider {self._driver.url} prefix={self._config.prefix!r} {state}>"

    @property
    def config(self) -> RedisLockProviderConfig:
        return self._config

    # -- LockProvider ---------------------------------------------------------------

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        """Take `key` for `ttl` seconds if nobody holds it, or take it over (L7);
        ``None`` when held or dispatched.

        A batch of one with ``keep=ttl`` (RD3): one round trip. A checkpoint; a
        cancelled, timed-out or disconnected call leaves no hidden lock: the key is
        released by this call's token (RD5).
        """
        (result,) = await self.acquire_batch([AcquireRequest(key, ttl)])
        return result if isinstance(result, LockLease) else None

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        """Acquire (or take over, L7) many keys in ONE round trip; result ``i`` answers
        request ``i``.

        `Held` means leased by another token undispatched (L6); ``None`` dispatched,
        refused by its watermark (rule L4), or granted earlier in the batch; all decided
        inside the same script (RD2, RD3). A checkpoint; cancellation leaves no hidden
        lock (RD5). An empty batch makes no round trip.
        """
        tokens = _new_tokens(len(requests))
        keys = [self._fencing_key, self._watermark_key, self._epoch.key]
        rows: list[tuple[str, str, str, int, str, str, str]] = []
        millis: dict[float, str] = {}  # most batches share one ttl and keep
        for request, token in zip(requests, tokens, strict=True):
            keep = check_request(request)
            ttl = millis.get(request.ttl)
            if ttl is None:
                ttl = millis[request.ttl] = _ms(request.ttl)
            kept = millis.get(keep)
            if kept is None:
                kept = millis[keep] = _ms(keep)
            keys.append(self._lock_prefix + request.key)
            if request.watermark is None:
                rows.append((token, ttl, kept, 0, "", "0", "0"))
            else:
                if not isinstance(request.watermark, str):
                    raise InvalidArgumentError(
                        f"watermark must be a str or None, got {request.watermark!r}"
                    )
                nominal = _exact_int("nominal_ms", request.nominal_ms)
                slack = _exact_int("watermark_slack_ms", request.watermark_slack_ms)
                rows.append((token, ttl, kept, 1, request.watermark, nominal, slack))
        if not requests:
            await self._checkpoint_open()
            return []
        if self._unreported is not None:
            await self._checkpoint_open()
            error, self._unreported = self._unreported, None
            raise error  # RD9: found by health_check; nothing was sent
        self._longest_keep_ms = max(self._longest_keep_ms, *map(int, millis.values()))
        knew, creator = self._epoch.args()
        args = [json.dumps(rows, separators=(",", ":")), knew, creator, str(self._fencing)]

        def run(client: redis.Redis) -> object:
            return _ACQUIRE_BATCH.run(self._driver, client, keys, args)

        reply = await self._driver.call(run, undo=self._undo(keys[3:], tokens))
        if isinstance(reply, list) and len(reply) == 4 and reply[-1] in (1, 2):
            raise self._lost(self._epoch.detect(reply[2], knew), rolled_back=reply[-1] == 2)
        if not isinstance(reply, list) or len(reply) != len(requests) + 4:
            raise SchedulerError(
                f"unexpected reply from Redis (want {len(requests) + 4} items): {reply!r}"
            )
        self._epoch.adopt(reply[-2])
        seconds, micros = _int(reply[-4]), _int(reply[-3])
        now = _server_time(seconds, micros)
        now_ms = seconds * 1000 + micros // 1000  # the script's now_ms
        expiries: dict[float, datetime] = {}  # most batches share one TTL
        results: list[LockLease | Held | None] = []
        for request, token, answer in zip(requests, tokens, reply, strict=False):
            if isinstance(answer, str):
                results.append(_held(answer, now_ms))
                self._misses += 1
                continue
            previous: str | None = None
            if isinstance(answer, list):
                fencing, previous = _takeover(answer)
                self._takeovers += 1
            else:
                fencing = _int(answer)
                if fencing <= 0:
                    if fencing == -1:
                        self._refused += 1
                    elif fencing < 0:
                        self._refused_after_loss += 1
                    else:
                        self._misses += 1
                    results.append(None)
                    continue
            self._acquires += 1
            self._fencing = max(self._fencing, fencing)
            expire_at = expiries.get(request.ttl)
            if expire_at is None:
                expire_at = expiries[request.ttl] = now + timedelta(seconds=request.ttl)
            results.append(
                LockLease(
                    key=request.key,
                    token=token,
                    expire_at=expire_at,
                    fencing_token=fencing,
                    taken_over=previous,
                )
            )
        return results

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        """Extend `lease` to `ttl` seconds from now on the server's clock, and its
        record's memory to at least that (RD2).

        Raises `LeaseLostError` when the lease ran out (even if nobody took it over
        since) or another token holds the key. A checkpoint; a cancelled renew may or may
        not have extended the expiry, the lease stays the caller's either way (RD5).
        """
        ttl_ms = _ms(check_ttl(ttl))
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
            taken_over=lease.taken_over,  # still the lease that took the record over
        )

    async def release(self, lease: LockLease) -> bool:
        """Delete the record if `lease` still owns it, its lease has not run out and it
        is not dispatched (L3, L8); returns whether it did.

        A checkpoint; a cancelled release either deleted the record or left its lease to
        its TTL (RD5).
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

    async def mark_dispatched(self, leases: Sequence[LockLease]) -> list[bool]:
        """Mark each lease's record dispatched (L8) in ONE round trip; result ``i`` says
        whether lease ``i``'s token still owned its record (its lease may have run out,
        as long as nobody took it over and its memory has not ended).

        A checkpoint, with the same errors and ``operation_timeout`` as every call (R2,
        R4). A cancelled or failed call marked all of its records or none, and undoes
        nothing: repeat it, a mark is idempotent (RD5). An empty list makes no round trip.
        """
        keys = [self._lock_prefix + lease.key for lease in leases]
        tokens = [lease.token for lease in leases]
        if not keys:
            await self._checkpoint_open()
            return []

        def run(client: redis.Redis) -> object:
            return _MARK.run(self._driver, client, keys, tokens)

        answers = _int_list(await self._driver.call(run), len(keys))
        self._marked += answers.count(1)
        return [answer > 0 for answer in answers]

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
        """Check the server within ``operation_timeout`` (one script: its time and the
        epoch sentinel, R8); raise a `SchedulerError` if it cannot be used.

        `RetryableError` when unreachable or slow, `ClosedError` after `aclose`,
        `DataLossError` when it finds a data loss and, after one, while RD9 protects the
        occurrences from before it (until the loss instant plus the longest record
        memory this provider was asked for). A checkpoint; changes nothing but the
        sentinel (created when missing, flagged when found replaced, R8).
        """
        knew, creator = self._epoch.args()
        keys = [self._epoch.key, self._fencing_key]
        args = [knew, creator, str(self._fencing)]

        def run(client: redis.Redis) -> object:
            return _HEALTH.run(self._driver, client, keys, args)

        reply = await self._driver.call(run)
        if not isinstance(reply, list) or len(reply) != 4:
            raise SchedulerError(f"unexpected reply from Redis (want 4 items): {reply!r}")
        if reply[3] in (1, 2):
            error = self._lost(self._epoch.detect(reply[2], knew), rolled_back=reply[3] == 2)
            self._unreported = error  # the scheduler's next batch reports it too
            raise error
        epoch = self._epoch.adopt(reply[2])
        now_ms = _int(reply[0]) * 1000 + _int(reply[1]) // 1000
        until = epoch.born + self._longest_keep_ms
        if epoch.lost and now_ms < until:
            raise DataLossError(
                f"redis lock provider ({self._driver.url}): the server lost this key "
                f"space's data at {epoch.born_at.isoformat()} (server clock); occurrences "
                f"from before it are refused for {(until - now_ms) / 1000:g} s more (RD9)",
                detected_at=epoch.born_at,
            )

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
            takeovers=self._takeovers,
            dispatched=self._marked,
            data_losses=self._epoch.detections,
            refused_after_loss=self._refused_after_loss,
        )

    # -- internals --------------------------------------------------------------------

    def _lost(self, detection: Detection, *, rolled_back: bool) -> DataLossError:
        """The error of a call whose script found a loss (RD9)."""
        self._driver.recheck_persistence()  # R7: the server may have restarted
        why = (
            f"the fencing counter was behind token {self._fencing} this client got (the "
            "data was rolled back: an older snapshot or AOF restored, or a lagging replica "
            "promoted), so the sentinel was renewed; "
            if rolled_back
            else ""
        )
        return self._epoch.error(
            detection,
            f"{why}this call acquired nothing; occurrences from before that instant are "
            "now refused for their records' memory, max(ttl, keep), after it (RD9)",
        )

    def _undo(self, redis_keys: list[str], tokens: list[str]) -> _Release:
        return _Release(self._driver, redis_keys, tokens)

    async def _checkpoint_open(self) -> None:
        await trio.lowlevel.checkpoint()
        self._driver.check_open()


@final
class _Release:
    """The compensation of an acquire (R3, RD5): release the records of `keys` that
    `tokens` still lease (not run out, not dispatched), as `release` would."""

    __slots__ = ("_driver", "_keys", "_tokens")

    def __init__(self, driver: RedisDriver, keys: list[str], tokens: list[str]) -> None:
        self._driver = driver
        self._keys = keys
        self._tokens = tokens

    def __call__(self, client: redis.Redis) -> None:
        deleted = _RELEASE.run(self._driver, client, self._keys, self._tokens)
        if deleted:
            _log.debug("released %s lock(s) of an abandoned or failed acquire", deleted)


def _new_tokens(count: int) -> list[str]:
    """`count` random 128-bit lock tokens (hex) from one read of the OS's random source:
    one ``os.urandom`` per batch instead of one per request."""
    pool = secrets.token_hex(16 * count)
    return [pool[start : start + 32] for start in range(0, 32 * count, 32)]


def _ms(seconds: float) -> str:
    """Checked seconds as whole milliseconds for PX, rounded up (never 0)."""
    return str(max(1, math.ceil(seconds * 1000)))


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


def _held(record: str, now_ms: int) -> Held:
    """`Held` from a record (RD8) the batch script found leased at its `now_ms`."""
    _, lease_end, token = record.split(":", 2)
    return Held(token, max(0, int(lease_end) - now_ms) / 1000)


def _takeover(answer: list[object]) -> tuple[int, str]:
    """The batch script's answer for a takeover: {fencing token, old token}."""
    if len(answer) != 2 or not isinstance(answer[1], str):
        raise SchedulerError(f"unexpected takeover reply from Redis: {answer!r}")
    return _int(answer[0]), answer[1]
