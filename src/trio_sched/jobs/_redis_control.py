"""Job state and cancellation for `RedisJobs` (rule RJ8 of the Redis jobs runtime,
`trio_sched.jobs.redis`; `JobControl`, rules JC1-JC5 of `trio_sched.jobs._control`).

Rules:
- RJ8 ``job_state`` and ``cancel`` are one script each, found by the dedupe key of RJ1
  (``dedupe:{key}`` holds the job id): no dedupe key, UNKNOWN. While the job is stored
  in ``data`` it is QUEUED, or RUNNING when ``leases`` names its delivered entry and
  that entry is still pending in the group, idle for less than this client's
  ``visibility_timeout`` (an entry idle longer is reclaimed by the next claim: QUEUED,
  JC2). Once it left ``data``, ``ended:{key}`` tells how (``done``, ``dead``,
  ``cancelled``: written by the complete, fail and cancel scripts when the job has a
  key, with the dedupe key's remaining lifetime), else UNKNOWN (a job finished by an
  earlier trio-sched, which writes no ``ended``). ``cancel`` of a stored job removes it
  from ``data``, ``tries``, ``leases`` and ``delayed``, and acknowledges and deletes its
  pending entry: the holder's ``extend`` finds no pending entry and its ``complete`` /
  ``fail`` acknowledge nothing (stale, RJ4), and ``XAUTOCLAIM`` never sees it again.
  Those scripts also find a lease stale whose job is gone from ``data`` (RJ4), so a
  delivery ``leases`` does not name (made by an earlier trio-sched) is revoked too. A
  waiting entry (never delivered) stays in the stream until a claim reaches it and
  drops it (its job is gone, RJ3), so until then it counts in the stream's length. The
  scripts compute the stream and ``delayed`` keys of the job's queue from the stored
  job (Redis Cluster is not supported anyway, RJ1). Being atomic on the server, a
  cancel either runs before a claim script (the claim drops the entry) or after it (the
  lease is revoked). Jobs delivered by an earlier trio-sched (no ``leases`` entry) read
  as QUEUED until their next delivery, and an earlier trio-sched's own scripts do not
  check ``data``, so while versions are mixed its workers may finish a cancelled job.
  Neither script checks the epoch of RJ7: after a loss the dedupe keys are gone too,
  so the answer is UNKNOWN (False).
"""

from __future__ import annotations

from typing import Final, final

import redis

from trio_sched._errors import SchedulerError
from trio_sched._redis_driver import RedisDriver, RedisScript
from trio_sched.jobs import _redis_lua as lua
from trio_sched.jobs._control import JobState
from trio_sched.jobs._redis_codec import as_int, as_str
from trio_sched.jobs._redis_keys import JobKeys

__all__ = ["Control"]

# KEYS: dedupe key, ended key, data, leases. ARGV: key base ('{prefix}:jobs:'), group,
# visibility timeout ms. Reply: the state's value ('queued', 'running', ...).
_JOB_STATE: Final = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  return 'unknown'
end
local body = redis.call('HGET', KEYS[3], holder)
if not body then
  return redis.call('GET', KEYS[2]) or 'unknown'
end
local entry = redis.call('HGET', KEYS[4], holder)
if entry then
  local stream = ARGV[1] .. 'q:' .. cjson.decode(body)['queue']
  local p = redis.pcall('XPENDING', stream, ARGV[2], entry, entry, 1)
  if type(p) == 'table' and p[1] and tonumber(p[1][3]) < tonumber(ARGV[3]) then
    return 'running'
  end
end
return 'queued'
"""

# KEYS: dedupe key, ended key, data, tries, leases. ARGV: key base, group.
# Reply: 1 cancelled, 0 nothing to cancel.
_CANCEL: Final = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  return 0
end
local body = redis.call('HGET', KEYS[3], holder)
if not body then
  return 0
end
local queue = cjson.decode(body)['queue']
redis.call('ZREM', ARGV[1] .. 'delayed:' .. queue, holder)
local entry = redis.call('HGET', KEYS[5], holder)
if entry then
  local stream = ARGV[1] .. 'q:' .. queue
  local p = redis.pcall('XPENDING', stream, ARGV[2], entry, entry, 1)
  if type(p) == 'table' and p[1] then
    redis.call('XACK', stream, ARGV[2], entry)
    redis.call('XDEL', stream, entry)
  end
end
redis.call('HDEL', KEYS[3], holder)
redis.call('HDEL', KEYS[4], holder)
redis.call('HDEL', KEYS[5], holder)
mark_ended(KEYS[1], KEYS[2], holder, 'cancelled')
return 1
"""

JOB_STATE: Final = RedisScript(_JOB_STATE)
CANCEL: Final = RedisScript(lua.ENDED + _CANCEL)


@final
class Control:
    """`RedisJobs.job_state` and `RedisJobs.cancel` (RJ8), after their key check."""

    __slots__ = ("_driver", "_group", "_keys", "_visibility_ms")

    def __init__(
        self, driver: RedisDriver, keys: JobKeys, *, group: str, visibility_timeout: float
    ) -> None:
        self._driver = driver
        self._keys = keys
        self._group = group
        self._visibility_ms = str(max(1, round(visibility_timeout * 1000)))

    async def job_state(self, key: str) -> JobState:
        keys = [*self._keys.job_keys(key), self._keys.data, self._keys.leases]
        args = [self._keys.base, self._group, self._visibility_ms]

        def run(client: redis.Redis) -> object:
            return JOB_STATE.run(self._driver, client, keys, args)

        reply = as_str(await self._driver.call(run))
        try:
            return JobState(reply)
        except ValueError:
            raise SchedulerError(f"unexpected job state from Redis: {reply!r}") from None

    async def cancel(self, key: str) -> bool:
        keys = [*self._keys.job_keys(key), self._keys.data, self._keys.tries, self._keys.leases]
        args = [self._keys.base, self._group]

        def run(client: redis.Redis) -> object:
            return CANCEL.run(self._driver, client, keys, args)

        return as_int(await self._driver.call(run)) == 1
