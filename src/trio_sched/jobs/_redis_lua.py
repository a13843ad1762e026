"""The Lua text of the scripts of `RedisJobs`: the server side of rules RJ2 and RJ7
(stated in `trio_sched.jobs.redis`), RJ3 (`trio_sched.jobs._redis_claim`), RJ4 and RJ5
(`trio_sched.jobs._redis_acks`), on the keys of RJ1 (`trio_sched.jobs._redis_keys`).

Plain text, no driver: each constant is one script's body, the comment above it names
its KEYS, ARGV and reply. The module that runs a script wraps it in a `RedisScript`,
after the helpers its body calls: `NOW` (``now_ms``), `TAKE` (``take``), `ENDED`
(``mark_ended``) and the epoch check of `trio_sched._redis_common` (``epoch_check``, R8).
The scripts of `JobControl` (RJ8) are in `trio_sched.jobs._redis_control`.
"""

from __future__ import annotations

from typing import Final

# Lua helper shared by the scripts: the server's clock in epoch ms.
NOW: Final = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: data, stream, delayed, dedupe key (any key when there is no idempotency key),
# epoch sentinel. ARGV: job id, job JSON, has key (0/1), retention ms, due ms ('' when
# no run_at), the epoch the client remembers, its creator id (R8).
# Reply: {code, epoch, jobs pending in the queue after it (stream + delayed), holder}:
# code 1 queued, 2 delayed, 0 duplicate key (holder: the id holding it), -1 job id
# stored; or {-2, epoch} when the epoch replaced the one the client knew (or holds
# foreign data: false), and nothing was stored (RJ7).
ENQUEUE: Final = """
local now = now_ms()
local epoch, replaced = epoch_check(KEYS[5], ARGV[6], ARGV[7], now)
if replaced then
  return {-2, epoch}
end
local function reply(code, holder)
  return {code, epoch, redis.call('XLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]), holder}
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return reply(-1)
end
if ARGV[3] == '1' then
  if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[4]) then
    return reply(0, redis.call('GET', KEYS[4]) or '')
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local due = tonumber(ARGV[5])
if due and due > now then
  redis.call('ZADD', KEYS[3], due, ARGV[1])
  return reply(2)
end
redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
return reply(1)
"""

# Delivering one entry: shared by the claim and accept scripts. An entry whose job is
# gone (finished through another delivery, redriven under a new entry, cancelled) is
# dropped. The last key of both scripts is ``leases``: the delivered entry of each job
# (RJ8).
TAKE: Final = """
local function take(out, qi, stream, entry, job_id)
  local body = redis.call('HGET', KEYS[1], job_id)
  if not body then
    redis.call('XACK', stream, ARGV[1], entry)
    redis.call('XDEL', stream, entry)
    return false
  end
  local tries = redis.call('HINCRBY', KEYS[2], job_id, 1)
  redis.call('HSET', KEYS[#KEYS], job_id, entry)
  out[#out + 1] = {qi, entry, body, tries}
  return true
end
"""

# KEYS: data, tries, epoch sentinel, then stream and delayed of each queue, then leases.
# ARGV: group, consumer, max jobs, min idle ms (visibility timeout), promote limit, the
# epoch the client remembers, its creator id (R8).
# Reply: {0, epoch, ms until the next delayed job is due or -1, {jobs pending per queue
# after it (stream + delayed)}, {queue index, entry, body, tries}...}; or {1, epoch} when
# the epoch replaced the one the client knew (or holds foreign data: false), and
# nothing was claimed (RJ7).
CLAIM: Final = """
local now = now_ms()
local epoch, replaced = epoch_check(KEYS[3], ARGV[6], ARGV[7], now)
if replaced then
  return {1, epoch}
end
local out = {}
local pending = {}
local remaining = tonumber(ARGV[3])
local next_due = -1
for qi = 1, (#KEYS - 4) / 2 do
  local stream, delayed = KEYS[2 + 2 * qi], KEYS[3 + 2 * qi]
  redis.pcall('XGROUP', 'CREATE', stream, ARGV[1], '0', 'MKSTREAM')
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, ARGV[5])
  for _, job_id in ipairs(due) do
    redis.call('XADD', stream, '*', 'job', job_id)
    redis.call('ZREM', delayed, job_id)
  end
  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if first[2] then
    local wait = math.max(0, tonumber(first[2]) - now)
    if next_due < 0 or wait < next_due then
      next_due = wait
    end
  end
  if remaining > 0 then
    local claimed = redis.call('XAUTOCLAIM', stream, ARGV[1], ARGV[2], ARGV[4], '0-0',
                               'COUNT', remaining)
    for _, e in ipairs(claimed[2]) do
      if take(out, qi, stream, e[1], e[2][2]) then remaining = remaining - 1 end
    end
  end
  if remaining > 0 then
    local fresh = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', remaining,
                             'STREAMS', stream, '>')
    if fresh then
      for _, e in ipairs(fresh[1][2]) do
        if take(out, qi, stream, e[1], e[2][2]) then remaining = remaining - 1 end
      end
    end
  end
  pending[qi] = redis.call('XLEN', stream) + redis.call('ZCARD', delayed)
end
table.insert(out, 1, pending)
table.insert(out, 1, next_due)
table.insert(out, 1, epoch)
table.insert(out, 1, 0)
return out
"""

# KEYS: data, tries, then the stream of each queue, then leases. ARGV: group, then triples of
# (queue index, entry, job id) read by a blocking XREADGROUP. Reply as CLAIM's items.
ACCEPT: Final = """
local out = {}
for i = 2, #ARGV, 3 do
  local qi = tonumber(ARGV[i])
  take(out, qi, KEYS[2 + qi], ARGV[i + 1], ARGV[i + 2])
end
return out
"""

# Lua helper of RJ8: remember how the job `job_id` holding the dedupe key `dedupe`
# ended ('done', 'dead', 'cancelled') in `ended`, for as long as the dedupe key lives.
ENDED: Final = """
local function mark_ended(dedupe, ended, job_id, state)
  if redis.call('GET', dedupe) ~= job_id then
    return
  end
  local ttl = redis.call('PTTL', dedupe)
  if ttl > 0 then
    redis.call('SET', ended, state, 'PX', ttl)
  elseif ttl == -1 then
    redis.call('SET', ended, state)
  end
end
"""

# KEYS: stream, data, tries, leases, dedupe key and ended key (any keys when the job has
# no idempotency key). ARGV: group, entry, job id, has key (0/1). Reply: 1 done, 0 stale.
COMPLETE: Final = """
-- A job gone from data (cancelled, RJ8) has no live lease: drop its entry.
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 then
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[2])
  end
  return 0
end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[3], ARGV[3])
redis.call('HDEL', KEYS[4], ARGV[3])
if ARGV[4] == '1' then
  mark_ended(KEYS[5], KEYS[6], ARGV[3], 'done')
end
return 1
"""

# KEYS: stream, data, tries, delayed, dead, leases, dedupe key and ended key (as for
# COMPLETE). ARGV: group, entry, job id, 'retry'|'dead', retry delay ms, error, attempt,
# dead-letter maxlen, has key (0/1). Reply: 0 stale, 1 retried, 2 dead.
FAIL: Final = """
-- A job gone from data (cancelled, RJ8) has no live lease: drop its entry.
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 then
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[2])
  end
  return 0
end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
local now = now_ms()
if ARGV[4] == 'retry' then
  local delay = tonumber(ARGV[5])
  if delay <= 0 then
    redis.call('XADD', KEYS[1], '*', 'job', ARGV[3])
  else
    redis.call('ZADD', KEYS[4], now + delay, ARGV[3])
  end
  return 1
end
local body = redis.call('HGET', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[3], ARGV[3])
redis.call('HDEL', KEYS[6], ARGV[3])
if ARGV[9] == '1' then
  mark_ended(KEYS[7], KEYS[8], ARGV[3], 'dead')
end
if body then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*', 'id', ARGV[3], 'job', body,
             'attempt', ARGV[7], 'error', ARGV[6], 'at', now)
end
return 2
"""

# KEYS: stream, data, tries. ARGV: group, entry, job id, un-count the try (0/1).
# Reply: 1 released, 0 stale.
RELEASE: Final = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  if ARGV[4] == '1' then
    redis.call('HINCRBY', KEYS[3], ARGV[3], -1)
  end
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[3])
end
return 1
"""

# KEYS: stream, data. ARGV: group, consumer, entry, job id. Reply: 1 extended, 0 lost.
EXTEND: Final = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then
  return 0
end
if redis.call('HEXISTS', KEYS[2], ARGV[4]) == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""

# KEYS: dead, data, tries, stream. ARGV: '*' for all, else dead-letter ids.
# Reply: how many were re-queued.
REDRIVE: Final = """
local entries = {}
if ARGV[1] == '*' then
  entries = redis.call('XRANGE', KEYS[1], '-', '+')
else
  for i = 1, #ARGV do
    local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if found[1] then entries[#entries + 1] = found[1] end
  end
end
local moved = 0
for _, e in ipairs(entries) do
  local f = {}
  for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
  if redis.call('HSETNX', KEYS[2], f['id'], f['job']) == 1 then
    redis.call('HDEL', KEYS[3], f['id'])
    redis.call('XADD', KEYS[4], '*', 'job', f['id'])
    redis.call('XDEL', KEYS[1], e[1])
    moved = moved + 1
  end
end
return moved
"""
