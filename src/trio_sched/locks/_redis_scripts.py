"""The Lua scripts of `RedisLockProvider`, the encoding of their arguments and the
decoding of their replies.

Each script's comment names its keys, arguments and reply; the functions at the end
write those arguments and read those replies. Rule IDs are those of
`trio_sched.locks.redis`, whose header holds RD1, RD3-RD5 and RD9 (the rollback check
of RD9 and the epoch check of R8 run inside these scripts); RD10, with the pause check
the batch script runs, the ``set_paused`` script and the pause records' codec, is in
`trio_sched.locks._redis_pause`.

Rules:
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
  A watermark advance is HGET-compare-HSET (``max``). ``set_paused`` is HSET or HDEL
  per name (RD10, `trio_sched.locks._redis_pause`).
  Old servers: every command exists since Redis 2.6.12 (no ``PEXPIRE GT``, no
  ``KEEPTTL``), and the scripts that read ``TIME`` call ``redis.replicate_commands()``
  when it exists: Redis 3.2-4.x refuse a write after ``TIME`` without it (from 5 on it
  is the default), so 3.2 is the oldest server the provider runs on.
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
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Final

from trio_sched._errors import InvalidArgumentError, SchedulerError
from trio_sched._redis_driver import RedisScript
from trio_sched._redis_epoch import EPOCH_LUA
from trio_sched.locks._protocol import Held
from trio_sched.locks._redis_pause import PAUSED_LUA

__all__ = [
    "ACQUIRE_BATCH",
    "ADVANCE",
    "HEALTH",
    "MARK",
    "RELEASE",
    "RENEW",
    "exact_int",
    "expiry",
    "held",
    "reply_int",
    "reply_ints",
    "server_time",
    "takeover",
    "to_ms",
]

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

# KEYS: fencing counter, watermark hash, epoch sentinel, pause hash, lock 1..n.
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
# loss (RD9), {-3, pause record} when its task is paused (RD10, checked first; the pause
# hash is read only when it exists). Grants and takeovers get consecutive fencing tokens
# from one INCRBY, in request order.
ACQUIRE_BATCH: Final = RedisScript(
    _NOW
    + _RECORD
    + _NEXT_FENCING
    + EPOCH_LUA
    + _ROLLBACK
    + PAUSED_LUA
    + """
local epoch, replaced, born, lost = epoch_check(KEYS[3], ARGV[2], ARGV[3], now_ms,
                                                behind(KEYS[1], ARGV[4]))
if replaced then
  return {now[1], now[2], epoch, rolled_back(KEYS[1], ARGV[4])}
end
local guard = lost and born  -- RD9: occurrences before it are refused for a while
local pauses = redis.call('EXISTS', KEYS[4]) == 1  -- RD10: no hash, nothing paused
local requests = cjson.decode(ARGV[1])
local n = #KEYS - 4
local out = {}
local grants = {}
local granted = 0
local taken = {}
local heads = {}  -- '0:{lease end}:' per ttl: most batches share one
for i = 1, n do
  local r = requests[i]
  local key = KEYS[i + 4]
  local refused = false
  if r[4] == 1 then
    local pause = pauses and paused(KEYS[4], r[5])
    if pause then
      refused = {-3, pause}
    elseif guard and tonumber(r[6]) < guard and now_ms < guard + tonumber(r[3]) then
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
# microseconds), the epoch sentinel (false: foreign data) and 0, or as `ACQUIRE_BATCH`
# 1 or 2 when it found a loss.
HEALTH: Final = RedisScript(
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
RENEW: Final = RedisScript(
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
RELEASE: Final = RedisScript(
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
MARK: Final = RedisScript(
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
ADVANCE: Final = RedisScript(
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


def to_ms(seconds: float) -> str:
    """Checked seconds as whole milliseconds for PX, rounded up (never 0)."""
    return str(max(1, math.ceil(seconds * 1000)))


def exact_int(what: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be an int (epoch ms), got {value!r}")
    if not -_MAX_EXACT <= value <= _MAX_EXACT:
        raise InvalidArgumentError(f"{what} {value} is outside +/-2**53 (rule RD6)")
    return str(value)


def server_time(seconds: int, micros: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)


def expiry(seconds: int, micros: int, ttl: float) -> datetime:
    return server_time(seconds, micros) + timedelta(seconds=ttl)


def reply_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise SchedulerError(f"unexpected reply from Redis: {value!r}")


def reply_ints(reply: object, length: int) -> list[int]:
    if not isinstance(reply, list) or len(reply) != length:
        raise SchedulerError(f"unexpected reply from Redis (want {length} items): {reply!r}")
    return [reply_int(item) for item in reply]


def held(record: str, now_ms: int) -> Held:
    """`Held` from a record (RD8) the batch script found leased at its `now_ms`."""
    _, lease_end, token = record.split(":", 2)
    return Held(token, max(0, int(lease_end) - now_ms) / 1000)


def takeover(answer: list[object]) -> tuple[int, str]:
    """The batch script's answer for a takeover: {fencing token, old token}."""
    if len(answer) != 2 or not isinstance(answer[1], str):
        raise SchedulerError(f"unexpected takeover reply from Redis: {answer!r}")
    return reply_int(answer[0]), answer[1]
