"""`RedisJobs`: a durable jobs runtime on Redis Streams (``trio-sched[redis]``).

Importing this module imports redis-py; ``import trio_sched.jobs`` never does::

    from trio_sched.jobs import open_worker
    from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

    jobs = RedisJobs(RedisJobsConfig(url="redis://127.0.0.1:6379/0", visibility_timeout=30.0))
    async with jobs, open_worker(jobs, {"build_report": build_report}, queues=["default"]):
        ...

It implements `JobsRuntime` (enqueue), `BatchJobsRuntime` (enqueue_many) and
`ConsumableJobs` (rules W1-W9 of `trio_sched.jobs._worker`) with the driver of
`trio_sched._redis_common` (rules R1-R6: sync redis-py in worker threads, operation
timeouts, error mapping, URL redaction, configuration checks).

Rules:
- RJ1 Keys, all under ``{prefix}:jobs:``: ``data`` (hash: job id -> the job as enqueued,
  JSON with the payload in base64), ``tries`` (hash: job id -> deliveries so far),
  ``dedupe:{idempotency key}`` (string: the job id, expiring after
  ``dedupe_retention``), and per queue ``q:{queue}`` (stream of job ids, one consumer
  group ``group``), ``delayed:{queue}`` (sorted set: job id by due time in epoch ms) and
  ``dead:{queue}`` (stream of dead letters, capped near ``dead_letter_maxlen``). Like the
  lock provider, scripts touch several keys: Redis Cluster is not supported.
- RJ2 Every state change is one Lua script, atomic on the server, with times on the
  server's clock (``TIME``). ``enqueue``: refuse a job id already stored, then ``SET NX
  PX`` of the dedupe key (a duplicate raises `ConflictError`, which the scheduler counts
  as success), then store the job and ``XADD`` it - or ``ZADD`` it to ``delayed`` when
  ``run_at`` lies in the future. A lost reply is harmless: repeating the enqueue raises
  `ConflictError` (by key, or by job id), so no undo is needed. ``enqueue_many`` runs
  the same script once per job, in order, in non-transactional pipelines of
  ``_ENQUEUE_CHUNK`` jobs (one round trip each; all in one worker-thread call): every
  job is decided exactly as ``enqueue`` decides it, and the batch is not atomic.
- RJ3 ``claim`` runs one script that, per queue: creates the group if missing, moves
  due delayed jobs to the stream, reclaims entries idle for ``visibility_timeout``
  (``XAUTOCLAIM``: the lease of a dead worker), then reads new entries
  (``XREADGROUP``). Only when that finds nothing does it block in ``XREADGROUP BLOCK``
  for at most ``min(wait, operation_timeout / 2, next delayed due time)``, then accepts
  what arrived with a second script. Each delivery increments ``tries``; the delivered
  ``attempt`` is the enqueued one plus ``tries - 1`` (W3). A cancelled or timed-out
  claim gives back what its abandoned call took (the R3 undo); when even that reply is
  lost, the entries are reclaimed after the visibility timeout.
- RJ4 ``complete``/``fail``/``release`` start with ``XACK``; when that acknowledges
  nothing, the lease is stale (W5) and nothing changes. ``complete`` then deletes the
  entry, the job and its tries (the dedupe key stays until it expires, so a re-fire of
  the same occurrence is still refused). ``fail`` retries by re-adding the job to the
  stream (due now) or to ``delayed``, or dead-letters it (the job leaves ``data``).
  ``release`` re-adds it at once and un-counts the try. ``extend`` resets the entry's
  idle time with ``XCLAIM ... JUSTID`` only while this consumer still owns it.
- RJ5 ``redrive`` moves dead letters back to the stream with their enqueued attempt and
  fresh tries; a dead letter whose job id is stored again meanwhile stays put.
- RJ6 Every method is a checkpoint; ``aclose`` closes at once, before its checkpoint,
  and is idempotent. Consumers are named ``{host}:{pid}:{random}``; the group keeps the
  names of consumers that went away (harmless; ``XGROUP DELCONSUMER`` is left to ops).
- RJ7 Lost queue data (R8). The sentinel is ``{prefix}:jobs:epoch``; the enqueue and
  claim scripts check it (one GET) and answer, besides their result, how many jobs the
  queues they touched hold (stream entries, waiting or leased, plus delayed jobs: one
  XLEN and one ZCARD per queue), which the client remembers per queue. A call that
  finds the epoch replaced stores and claims nothing and raises `DataLossError` (for
  ``enqueue_many``: as every job's entry) whose ``vanished`` maps each queue to the
  jobs this client knew to be pending there when it last looked: all of them are gone
  with the data, except those finished normally since that look (so it is an upper
  bound, and 0 for queues this client never touched). The first such call of a client
  logs the loss (error) and counts it (``data_losses``, ``jobs_vanished``). Detected
  by ``enqueue``, ``enqueue_many`` and ``claim``; ``complete``, ``fail``, ``extend``
  and ``release`` of a delivery from before the loss find it stale (W5), and
  ``health_check`` stays a PING.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, final

import redis
import redis.exceptions as rex
import trio

from trio_sched._closeable import ClosesOnExit
from trio_sched._errors import (
    ConflictError,
    DataLossError,
    InvalidArgumentError,
    RetryableError,
    SchedulerError,
    ValidationError,
)
from trio_sched._redis_common import (
    EPOCH_LUA,
    Detection,
    DriverStatistics,
    EpochWatch,
    RedisDriver,
    RedisScript,
    check_flag,
    check_prefix,
    check_redis_url,
    check_timeout,
    redact_url,
)
from trio_sched.jobs._job import Job, check_jobs, restored_job, with_attempt
from trio_sched.jobs._worker import DeadLetter, Delivery, FailOutcome

__all__ = ["RedisJobs", "RedisJobsConfig", "RedisJobsStatistics", "RedisQueueStatistics"]

# Lua helpers shared by the scripts: the server's clock in epoch ms.
_NOW: Final = """
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
_ENQUEUE: Final = RedisScript(
    _NOW
    + EPOCH_LUA
    + """
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
)

# enqueue_many: jobs per pipeline (one round trip). Large enough that the round trip is
# noise next to the scripts' own work, small enough that a 10,000-job burst does not
# build one multi-megabyte request and reply.
_ENQUEUE_CHUNK: Final = 500
# Each pipeline starts with SCRIPT LOAD, so its EVALSHAs find the script (a pipeline
# cannot fall back to EVAL per command as `RedisScript.run` does).

# Delivering one entry: shared by the claim and accept scripts. An entry whose job is
# gone (finished through another delivery, redriven under a new entry) is dropped.
_TAKE: Final = """
local function take(out, qi, stream, entry, job_id)
  local body = redis.call('HGET', KEYS[1], job_id)
  if not body then
    redis.call('XACK', stream, ARGV[1], entry)
    redis.call('XDEL', stream, entry)
    return false
  end
  local tries = redis.call('HINCRBY', KEYS[2], job_id, 1)
  out[#out + 1] = {qi, entry, body, tries}
  return true
end
"""

# KEYS: data, tries, epoch sentinel, then stream and delayed of each queue.
# ARGV: group, consumer, max jobs, min idle ms (visibility timeout), promote limit, the
# epoch the client remembers, its creator id (R8).
# Reply: {0, epoch, ms until the next delayed job is due or -1, {jobs pending per queue
# after it (stream + delayed)}, {queue index, entry, body, tries}...}; or {1, epoch} when
# the epoch replaced the one the client knew (or holds foreign data: false), and
# nothing was claimed (RJ7).
_CLAIM: Final = RedisScript(
    _NOW
    + EPOCH_LUA
    + _TAKE
    + """
local now = now_ms()
local epoch, replaced = epoch_check(KEYS[3], ARGV[6], ARGV[7], now)
if replaced then
  return {1, epoch}
end
local out = {}
local pending = {}
local remaining = tonumber(ARGV[3])
local next_due = -1
for qi = 1, (#KEYS - 3) / 2 do
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
)

# KEYS: data, tries, then the stream of each queue. ARGV: group, then triples of
# (queue index, entry, job id) read by a blocking XREADGROUP. Reply as _CLAIM's items.
_ACCEPT: Final = RedisScript(
    _TAKE
    + """
local out = {}
for i = 2, #ARGV, 3 do
  local qi = tonumber(ARGV[i])
  take(out, qi, KEYS[2 + qi], ARGV[i + 1], ARGV[i + 2])
end
return out
"""
)

# KEYS: stream, data, tries. ARGV: group, entry, job id. Reply: 1 done, 0 stale.
_COMPLETE: Final = RedisScript(
    """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[3], ARGV[3])
return 1
"""
)

# KEYS: stream, data, tries, delayed, dead. ARGV: group, entry, job id, 'retry'|'dead',
# retry delay ms, error, attempt, dead-letter maxlen. Reply: 0 stale, 1 retried, 2 dead.
_FAIL: Final = RedisScript(
    _NOW
    + """
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
if body then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*', 'id', ARGV[3], 'job', body,
             'attempt', ARGV[7], 'error', ARGV[6], 'at', now)
end
return 2
"""
)

# KEYS: stream, data, tries. ARGV: group, entry, job id, un-count the try (0/1).
# Reply: 1 released, 0 stale.
_RELEASE: Final = RedisScript(
    """
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
)

# KEYS: stream. ARGV: group, consumer, entry. Reply: 1 extended, 0 lost.
_EXTEND: Final = RedisScript(
    """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""
)

# KEYS: dead, data, tries, stream. ARGV: '*' for all, else dead-letter ids.
# Reply: how many were re-queued.
_REDRIVE: Final = RedisScript(
    """
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
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RedisJobsConfig:
    """Where and how a `RedisJobs` talks to Redis.

    - ``url``: ``redis://``, ``rediss://`` or ``unix://`` (shown redacted, R5).
    - ``prefix``: first part of every key (RJ1).
    - ``visibility_timeout``: seconds a claimed job stays leased without an ``extend``
      before it is redelivered (W2). ``max_attempts``: deliveries before dead-lettering.
    - ``operation_timeout`` and ``max_connections``: as for the lock provider (R1, R2);
      a blocking claim holds one connection for up to half the operation timeout.
    - ``dedupe_retention``: seconds an idempotency key is remembered (RJ2).
    - ``group``: the consumer group name; ``consumer``: this client's consumer name
      (default ``{host}:{pid}:{random}``, RJ6).
    - ``dead_letter_maxlen``: approximate cap of each dead-letter stream.
    - ``promote_batch``: delayed jobs moved to a stream per queue per claim.
    - ``require_persistence``: refuse to work (`InvalidArgumentError` from every call)
      unless the server runs the append-only file with ``appendfsync everysec`` or
      ``always`` and lets ``CONFIG GET`` show it; by default that check only warns (R7).
    """

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "trio_sched"
    visibility_timeout: float = 30.0
    max_attempts: int = 5
    operation_timeout: float = 3.0
    max_connections: int = 10
    dedupe_retention: float = 7 * 24 * 3600.0
    group: str = "workers"
    consumer: str | None = None
    dead_letter_maxlen: int = 100_000
    promote_batch: int = 1000
    require_persistence: bool = False

    def __post_init__(self) -> None:
        check_redis_url(self.url)
        check_prefix(self.prefix)
        check_flag("require_persistence", self.require_persistence)
        if not isinstance(self.group, str) or not self.group:
            raise ValidationError("group: expected a non-empty str", field="group")
        if self.consumer is not None and (not isinstance(self.consumer, str) or not self.consumer):
            raise ValidationError("consumer: expected a non-empty str or None", field="consumer")
        for name in ("visibility_timeout", "operation_timeout", "dedupe_retention"):
            check_timeout(name, getattr(self, name))
        for name in ("max_attempts", "max_connections", "dead_letter_maxlen", "promote_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name}: expected an int >= 1, got {value!r}", field=name)

    def __repr__(self) -> str:
        return (
            f"RedisJobsConfig(url={redact_url(self.url)!r}, prefix={self.prefix!r}, "
            f"visibility_timeout={self.visibility_timeout!r}, "
            f"max_attempts={self.max_attempts!r}, "
            f"operation_timeout={self.operation_timeout!r}, group={self.group!r}, "
            f"require_persistence={self.require_persistence!r})"
        )

    __str__ = __repr__


@final
@dataclass(frozen=True, slots=True)
class RedisJobsStatistics:
    """This client's counters (not the server's totals; see `RedisJobs.queue_statistics`).

    `claimed` counts deliveries, `stale` acknowledgements of leases that had moved on,
    `leases_lost` extends that found the lease gone. `data_losses` counts the losses of
    the queue data this client detected (RJ7) and `jobs_vanished` the jobs it knew to be
    pending when it last looked and that went with them. `driver`: round trips and
    failures.
    """

    enqueued: int
    delayed: int
    duplicates: int
    claimed: int
    completed: int
    retried: int
    dead_lettered: int
    released: int
    stale: int
    extended: int
    leases_lost: int
    redriven: int
    closed: bool
    driver: DriverStatistics
    data_losses: int = 0
    jobs_vanished: int = 0


@final
@dataclass(frozen=True, slots=True)
class RedisQueueStatistics:
    """What the server holds for one queue: `stream` entries (waiting or leased),
    `leased` (delivered, not acknowledged), `delayed` and `dead` letters."""

    stream: int
    leased: int
    delayed: int
    dead: int


@dataclass(slots=True)
class _Counters:
    enqueued: int = 0
    delayed: int = 0
    duplicates: int = 0
    claimed: int = 0
    completed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    released: int = 0
    stale: int = 0
    extended: int = 0
    leases_lost: int = 0
    redriven: int = 0
    jobs_vanished: int = 0


@dataclass(slots=True)
class _Taken:
    """What an abandoned claim took, for its undo (RJ3)."""

    entries: list[tuple[str, str, str, bool]] = field(default_factory=list)
    # (stream key, entry id, job id, whether the try was counted)


@final
class RedisJobs(ClosesOnExit):
    """A `JobsRuntime`, `BatchJobsRuntime` and `ConsumableJobs` on Redis Streams (rules
    RJ1-RJ6).

    Construction does no I/O; the first call connects. An async context manager that
    closes the client on exit.
    """

    def __init__(self, config: RedisJobsConfig | None = None) -> None:
        self._config = config if config is not None else RedisJobsConfig()
        self._driver = RedisDriver(
            self._config.url,
            operation_timeout=self._config.operation_timeout,
            max_connections=self._config.max_connections,
            what="redis jobs runtime",
            require_persistence=self._config.require_persistence,
        )
        base = f"{self._config.prefix}:jobs:"
        self._base = base
        self._data = base + "data"
        self._tries = base + "tries"
        self._epoch = EpochWatch(
            base + "epoch",
            f"redis jobs runtime ({self._driver.url}, prefix {self._config.prefix!r})",
        )
        # RJ7: jobs pending per queue (stream + delayed) when this client last looked,
        # and what the last loss took (shared by every error reporting it).
        self._pending: dict[str, int] = {}
        self._vanished: dict[str, int] = {}
        self._consumer = self._config.consumer or (
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        )
        self._counters = _Counters()

    def __repr__(self) -> str:
        state = "closed" if self._driver.closed else "open"
        return f"<RedisJobs {self._driver.url} prefix={self._config.prefix!r} {state}>"

    @property
    def config(self) -> RedisJobsConfig:
        return self._config

    @property
    def consumer(self) -> str:
        return self._consumer

    @property
    def visibility_timeout(self) -> float:
        return self._config.visibility_timeout

    @property
    def max_attempts(self) -> int:
        return self._config.max_attempts

    # -- JobsRuntime ----------------------------------------------------------------

    async def enqueue(self, job: Job) -> None:
        """Store and queue `job` (RJ2): one round trip, atomic on the server.

        Raises `ConflictError` when its idempotency key or its id is already stored
        (the scheduler counts that as success), `DataLossError` when the server lost
        the queue data since this client last looked (RJ7: the job is not stored; enqueue
        it again). A checkpoint; a cancelled enqueue either stored the job or not, and
        repeating it is safe either way.
        """
        if not isinstance(job, Job):
            raise InvalidArgumentError(f"enqueue expects a Job, got {type(job).__name__}")
        keys, due = self._enqueue_keys(job)
        epoch = self._epoch.args()
        args = self._enqueue_args(job, due, epoch)

        def run(client: redis.Redis) -> object:
            return _ENQUEUE.run(self._driver, client, keys, args)

        error = self._enqueue_outcome(job, await self._driver.call(run), epoch[0])
        if error is not None:
            raise error

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        """Store and queue `jobs` in order (`BatchJobsRuntime`, RJ2): one worker-thread
        call, one pipelined round trip per ``_ENQUEUE_CHUNK`` jobs.

        Each job is decided by the script of `enqueue`, so the entries are what
        `enqueue` would raise for that job alone: ``None`` (stored), `ConflictError`
        (its idempotency key or id is already stored, also by an earlier job of the
        same call), `InvalidArgumentError` (a naive ``run_at``, a bad queue name: not
        sent), `RetryableError` (a transient server state for that script, such as
        OOM, or the script cache flushed during the call: enqueue it again),
        `DataLossError` (RJ7: the server lost the queue data since this client last
        looked; not stored, enqueue it again) or another mapped server error. Raises
        `InvalidArgumentError` when an item is not a `Job` (nothing is sent), and what
        `enqueue` raises for the whole call: `ClosedError`,
        `RetryableError` for a lost connection or for no answer within
        ``operation_timeout`` (which bounds the whole call, every chunk included).

        Not atomic: a chunk's jobs are stored as its pipeline runs. Raised or
        cancelled, any prefix of the jobs may have been stored (no chunk is sent after
        the caller gave up; the chunk in flight runs to its end on the server), and
        enqueuing them all again is safe: the stored ones come back as `ConflictError`.
        A checkpoint, also for an empty sequence.
        """
        check_jobs(jobs)
        results: list[Exception | None] = [None] * len(jobs)
        calls: list[tuple[int, list[str], str]] = []  # (index, keys, due)
        for index, job in enumerate(jobs):
            try:
                keys, due = self._enqueue_keys(job)
            except InvalidArgumentError as exc:
                results[index] = exc
                continue
            calls.append((index, keys, due))
        if not calls:
            await trio.lowlevel.checkpoint()
            self._driver.check_open()
            return results
        # Set once the caller stopped waiting: the abandoned thread sends no more chunks.
        gone = threading.Event()
        epoch = self._epoch.args()

        def run(client: redis.Redis) -> list[object]:
            # The jobs are encoded here, in the worker thread: ~12 ms of JSON per
            # 1,000 jobs that would otherwise hold up the Trio loop.
            replies: list[object] = []
            for start in range(0, len(calls), _ENQUEUE_CHUNK):
                if gone.is_set():
                    break
                pipe = client.pipeline(transaction=False)
                pipe.script_load(_ENQUEUE.source)
                for index, keys, due in calls[start : start + _ENQUEUE_CHUNK]:
                    args = self._enqueue_args(jobs[index], due, epoch)
                    pipe.evalsha(_ENQUEUE.sha, len(keys), *keys, *args)
                self._driver.count_round_trip()
                # Per-command errors come back in place; a connection error raises.
                replies += pipe.execute(raise_on_error=False)[1:]
            return replies

        try:
            replies = await self._driver.call(run)
        finally:
            gone.set()
        for (index, _, _), reply in zip(calls, replies, strict=True):
            results[index] = self._enqueue_outcome(jobs[index], reply, epoch[0])
        return results

    async def health_check(self) -> None:
        """PING within ``operation_timeout``. A checkpoint; changes nothing."""

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            return client.ping()

        if await self._driver.call(run) is not True:
            raise SchedulerError(f"unexpected PING reply from {self._driver.url}")

    async def aclose(self) -> None:
        """Close the connection pool; idempotent, closes even when cancelled (RJ6).

        Leased jobs stay leased on the server and are redelivered after the visibility
        timeout; use a worker's graceful shutdown to release them first.
        """
        self._driver.close()
        await trio.lowlevel.checkpoint()

    # -- ConsumableJobs -----------------------------------------------------------------

    async def claim(self, queues: Sequence[str], *, max_jobs: int, wait: float) -> list[Delivery]:
        """Take up to `max_jobs` due jobs (W1, RJ3). A checkpoint; see RJ3 for
        cancellation. Waits at most ``min(wait, operation_timeout / 2)`` per call.
        `DataLossError` when the server lost the queue data since this client last
        looked (RJ7: nothing was claimed)."""
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise InvalidArgumentError(f"max_jobs must be an int >= 1, got {max_jobs!r}")
        names = list(dict.fromkeys(queues))
        if not names:
            raise InvalidArgumentError("claim needs at least one queue")
        streams = [self._stream(q) for q in names]
        keys = [self._data, self._tries, self._epoch.key]
        for name in names:
            keys += (self._stream(name), self._delayed(name))
        min_idle = str(max(1, round(self._config.visibility_timeout * 1000)))
        knew, creator = self._epoch.args()
        args = [
            self._config.group,
            self._consumer,
            str(max_jobs),
            min_idle,
            str(self._config.promote_batch),
            knew,
            creator,
        ]
        taken = _Taken()

        def run_claim(client: redis.Redis) -> list[object]:
            reply = _list(_CLAIM.run(self._driver, client, keys, args))
            for item in reply[4:]:
                qi, entry, body, _ = _list(item)
                taken.entries.append((streams[_int(qi) - 1], _str(entry), _job_id(body), True))
            return reply

        reply = await self._driver.call(run_claim, undo=self._give_back(taken))
        if _int(reply[0]) != 0:
            raise self._lost(self._epoch.detect(reply[1], knew))
        self._epoch.adopt(reply[1])
        next_due = _int(reply[2])
        for name, pending in zip(names, _list(reply[3]), strict=True):
            self._pending[name] = _int(pending)
        deliveries = self._deliveries(reply[4:])
        if deliveries or wait <= 0:
            return deliveries
        block = min(wait, self._config.operation_timeout / 2)
        if next_due >= 0:
            block = min(block, next_due / 1000)
        block_ms = max(1, round(block * 1000))
        group, consumer = self._config.group, self._consumer
        read = _Taken()

        def run_block(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            got = client.xreadgroup(
                group, consumer, dict.fromkeys(streams, ">"), count=max_jobs, block=block_ms
            )
            for stream, entries in _pairs(got or []):
                for entry, fields in _pairs(entries):
                    read.entries.append((_str(stream), _str(entry), _fields(fields)["job"], False))
            # XREADGROUP's COUNT is per stream: with several queues it can return more
            # than max_jobs entries. Keep max_jobs (W1) and give the rest back now.
            extra = read.entries[max_jobs:]
            read.entries = read.entries[:max_jobs]
            for stream, entry, job_id, _ in extra:
                _RELEASE.run(
                    self._driver,
                    client,
                    [stream, self._data, self._tries],
                    [group, entry, job_id, "0"],
                )
            triples: list[str] = []
            for stream, entry, job_id, _ in read.entries:
                triples += (str(streams.index(stream) + 1), entry, job_id)
            if not triples:
                return []
            accepted = _ACCEPT.run(
                self._driver, client, [self._data, self._tries, *streams], [group, *triples]
            )
            read.entries = [(s, e, j, True) for s, e, j, _ in read.entries]
            return accepted

        accepted = await self._driver.call(run_block, undo=self._give_back(read))
        return self._deliveries(_list(accepted))

    async def complete(self, delivery: Delivery) -> bool:
        """Finish the job for good (W5, RJ4); False when the lease is stale. A
        checkpoint; a cancelled call happened wholly or not at all."""
        job = delivery.job

        def run(client: redis.Redis) -> object:
            return _COMPLETE.run(
                self._driver,
                client,
                [self._stream(job.queue), self._data, self._tries],
                [self._config.group, delivery.receipt, job.id],
            )

        if _int(await self._driver.call(run)) == 0:
            self._counters.stale += 1
            return False
        self._counters.completed += 1
        return True

    async def fail(self, delivery: Delivery, *, error: str, retry_in: float | None) -> FailOutcome:
        """Retry after `retry_in` seconds or dead-letter (W6, RJ4). A checkpoint; a
        cancelled call happened wholly or not at all."""
        job = delivery.job
        retry = retry_in is not None and job.attempt < self._config.max_attempts
        delay_ms = str(max(0, round((retry_in or 0.0) * 1000)))
        keys = [
            self._stream(job.queue),
            self._data,
            self._tries,
            self._delayed(job.queue),
            self._dead(job.queue),
        ]
        args = [
            self._config.group,
            delivery.receipt,
            job.id,
            "retry" if retry else "dead",
            delay_ms,
            error,
            str(job.attempt),
            str(self._config.dead_letter_maxlen),
        ]

        def run(client: redis.Redis) -> object:
            return _FAIL.run(self._driver, client, keys, args)

        code = _int(await self._driver.call(run))
        if code == 0:
            self._counters.stale += 1
            return "stale"
        if code == 1:
            self._counters.retried += 1
            return "retried"
        self._counters.dead_lettered += 1
        return "dead_lettered"

    async def extend(self, delivery: Delivery) -> bool:
        """Renew the lease (W7, RJ4); False when lost. A checkpoint."""
        stream = self._stream(delivery.job.queue)
        args = [self._config.group, self._consumer, delivery.receipt]

        def run(client: redis.Redis) -> object:
            return _EXTEND.run(self._driver, client, [stream], args)

        if _int(await self._driver.call(run)) == 0:
            self._counters.leases_lost += 1
            return False
        self._counters.extended += 1
        return True

    async def release(self, delivery: Delivery) -> None:
        """Give the job back for immediate redelivery, its try un-counted (W7, RJ4).
        A checkpoint; a cancelled call happened wholly or not at all."""
        job = delivery.job

        def run(client: redis.Redis) -> object:
            return _RELEASE.run(
                self._driver,
                client,
                [self._stream(job.queue), self._data, self._tries],
                [self._config.group, delivery.receipt, job.id, "1"],
            )

        if _int(await self._driver.call(run)):
            self._counters.released += 1
        else:
            self._counters.stale += 1

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """Dead letters of `queue`, oldest first (W8): one XRANGE. A checkpoint."""
        dead = self._dead(queue)

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            return client.xrange(dead, "-", "+", count=limit)

        letters: list[DeadLetter] = []
        for entry, fields in _pairs(await self._driver.call(run)):
            values = _fields(fields)
            job = _decode(values["job"])
            letters.append(
                DeadLetter(
                    id=_str(entry),
                    job=with_attempt(job, int(values["attempt"])),
                    error=values["error"],
                    failed_at=datetime.fromtimestamp(int(values["at"]) / 1000, UTC),
                )
            )
        return letters

    async def redrive(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Re-queue dead letters of `queue` (all when `ids` is None) (W8, RJ5); returns
        how many. One script: a cancelled call moved all of them or none."""
        if ids is not None and not ids:
            await trio.lowlevel.checkpoint()
            return 0
        keys = [self._dead(queue), self._data, self._tries, self._stream(queue)]
        args = ["*"] if ids is None else [str(i) for i in ids]

        def run(client: redis.Redis) -> object:
            return _REDRIVE.run(self._driver, client, keys, args)

        moved = _int(await self._driver.call(run))
        self._counters.redriven += moved
        return moved

    # -- introspection --------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        """The stored job with `job_id` as enqueued (waiting, delayed or leased), or None
        once it completed or was dead-lettered. One HGET; a checkpoint."""

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            return client.hget(self._data, job_id)

        body = await self._driver.call(run)
        return None if body is None else _decode(_str(body))

    async def queue_statistics(self, queue: str) -> RedisQueueStatistics:
        """What the server holds for `queue` (one pipelined round trip). A checkpoint."""
        stream, group = self._stream(queue), self._config.group

        delayed_key, dead_key = self._delayed(queue), self._dead(queue)

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            pipe = client.pipeline(transaction=False)
            pipe.xlen(stream)
            pipe.xpending(stream, group)
            pipe.zcard(delayed_key)
            pipe.xlen(dead_key)
            # A queue never claimed from has no group yet: XPENDING then fails alone.
            return pipe.execute(raise_on_error=False)

        length, pending, delayed, dead = _list(await self._driver.call(run))
        leased = _int(pending.get("pending", 0)) if isinstance(pending, dict) else 0
        for value in (length, delayed, dead):
            if isinstance(value, Exception):
                raise self._driver.map_error(value) from value
        return RedisQueueStatistics(
            stream=_int(length), leased=leased, delayed=_int(delayed), dead=_int(dead)
        )

    def statistics(self) -> RedisJobsStatistics:
        """A snapshot of this client's counters (no I/O)."""
        c = self._counters
        return RedisJobsStatistics(
            enqueued=c.enqueued,
            delayed=c.delayed,
            duplicates=c.duplicates,
            claimed=c.claimed,
            completed=c.completed,
            retried=c.retried,
            dead_lettered=c.dead_lettered,
            released=c.released,
            stale=c.stale,
            extended=c.extended,
            leases_lost=c.leases_lost,
            redriven=c.redriven,
            closed=self._driver.closed,
            driver=self._driver.statistics(),
            data_losses=self._epoch.detections,
            jobs_vanished=c.jobs_vanished,
        )

    # -- internals ------------------------------------------------------------------------

    def _stream(self, queue: str) -> str:
        return f"{self._base}q:{_check_queue(queue)}"

    def _delayed(self, queue: str) -> str:
        return f"{self._base}delayed:{_check_queue(queue)}"

    def _dead(self, queue: str) -> str:
        return f"{self._base}dead:{_check_queue(queue)}"

    def _enqueue_keys(self, job: Job) -> tuple[list[str], str]:
        """The keys of `_ENQUEUE` for `job` and its due time (ARGV 5);
        `InvalidArgumentError` for a job that cannot be stored (a bad queue name, a
        naive ``run_at``)."""
        key = job.idempotency_key
        dedupe = self._base + f"dedupe:{key}" if key is not None else self._data
        due = "" if job.run_at is None else str(_epoch_ms(job.run_at))
        stream, delayed = self._stream(job.queue), self._delayed(job.queue)
        return [self._data, stream, delayed, dedupe, self._epoch.key], due

    def _enqueue_args(self, job: Job, due: str, epoch: tuple[str, str]) -> list[str]:
        """The arguments of `_ENQUEUE` for `job`, its JSON included; `epoch` is what
        `EpochWatch.args` gave before the call."""
        retention = str(max(1, round(self._config.dedupe_retention * 1000)))
        has_key = "0" if job.idempotency_key is None else "1"
        return [job.id, _encode(job), has_key, retention, due, *epoch]

    def _enqueue_outcome(self, job: Job, reply: object, knew: str) -> Exception | None:
        """Count `_ENQUEUE`'s reply for `job` (sent knowing the epoch `knew`); the error
        `enqueue` raises, or None."""
        if isinstance(reply, rex.NoScriptError):
            # enqueue_many only: the cache was flushed between its SCRIPT LOAD and this
            # job's EVALSHA. Nothing ran for the job.
            error = RetryableError(
                f"redis jobs runtime ({self._driver.url}): the script cache was flushed "
                f"during enqueue_many; job {job.id!r} was not enqueued"
            )
            error.__cause__ = reply
            return error
        if isinstance(reply, Exception):
            mapped = self._driver.map_error(reply)
            mapped.__cause__ = reply
            return mapped
        reply = _list(reply)
        code = _int(reply[0])
        if code == -2:
            return self._lost(self._epoch.detect(reply[1], knew))
        self._epoch.adopt(reply[1])
        self._pending[job.queue] = _int(reply[2])
        if code == 0:
            self._counters.duplicates += 1
            key, holder = job.idempotency_key, _str(reply[3])
            return ConflictError(f"duplicate idempotency key {key!r}: job {holder!r} has it")
        if code < 0:
            self._counters.duplicates += 1
            return ConflictError(f"a job with id {job.id!r} is already stored")
        self._counters.enqueued += 1
        if code == 2:
            self._counters.delayed += 1
        return None

    def _lost(self, detection: Detection) -> DataLossError:
        """RJ7: the error of a call whose script found the epoch replaced. The first
        call to find it counts the jobs this client knew to be pending as vanished."""
        if detection.first:
            self._vanished = {queue: n for queue, n in sorted(self._pending.items()) if n}
            self._pending.clear()
            self._counters.jobs_vanished += sum(self._vanished.values())
            self._driver.recheck_persistence()  # R7: the server may have restarted
        vanished = sum(self._vanished.values())
        per_queue = ", ".join(f"{queue!r}: {n}" for queue, n in self._vanished.items())
        return self._epoch.error(
            detection,
            f"{vanished} job(s) this client knew to be pending (waiting, leased or "
            f"delayed) when it last looked are gone{f' ({per_queue})' if per_queue else ''}; "
            "this call stored and claimed nothing (RJ7)",
            vanished=self._vanished,
        )

    def _deliveries(self, items: list[object]) -> list[Delivery]:
        out: list[Delivery] = []
        for item in items:
            _, entry, body, tries = _list(item)
            job = _decode(_str(body))
            attempt = job.attempt + _int(tries) - 1
            delivered = with_attempt(job, attempt)
            out.append(Delivery(job=delivered, receipt=_str(entry)))
        self._counters.claimed += len(out)
        return out

    def _give_back(self, taken: _Taken) -> _GiveBack:
        return _GiveBack(self._driver, self._config.group, self._data, self._tries, taken)


@final
class _GiveBack:
    """The undo of an abandoned claim (R3, RJ3): release what it took, un-counting the
    tries it counted. Runs in a worker thread; a stale entry is skipped by the script."""

    __slots__ = ("_data", "_driver", "_group", "_taken", "_tries")

    def __init__(
        self, driver: RedisDriver, group: str, data: str, tries: str, taken: _Taken
    ) -> None:
        self._driver = driver
        self._group = group
        self._data = data
        self._tries = tries
        self._taken = taken

    def __call__(self, client: redis.Redis) -> None:
        for stream, entry, job_id, counted in self._taken.entries:
            _RELEASE.run(
                self._driver,
                client,
                [stream, self._data, self._tries],
                [self._group, entry, job_id, "1" if counted else "0"],
            )


# -- encoding -------------------------------------------------------------------------


def _encode(job: Job) -> str:
    return json.dumps(
        {
            "id": job.id,
            "name": job.name,
            "queue": job.queue,
            "payload": base64.b64encode(job.payload).decode("ascii"),
            "headers": dict(job.headers),
            "content_type": job.content_type,
            "tenant_id": job.tenant_id,
            "idempotency_key": job.idempotency_key,
            "run_at": None if job.run_at is None else job.run_at.isoformat(),
            "created_at": None if job.created_at is None else job.created_at.isoformat(),
            "fencing_token": job.fencing_token,
            "attempt": job.attempt,
        },
        separators=(",", ":"),
        ensure_ascii=True,
    )


def _decode(body: str) -> Job:
    # restored_job: a job an earlier version stored with a NUL character is still read.
    try:
        raw = json.loads(body)
        return restored_job(
            id=raw["id"],
            name=raw["name"],
            queue=raw["queue"],
            payload=base64.b64decode(raw["payload"]),
            headers=raw["headers"],
            content_type=raw["content_type"],
            tenant_id=raw["tenant_id"],
            idempotency_key=raw["idempotency_key"],
            run_at=_datetime(raw["run_at"]),
            created_at=_datetime(raw["created_at"]),
            fencing_token=raw["fencing_token"],
            attempt=raw["attempt"],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SchedulerError(f"a stored job is not in the expected format: {exc}") from exc


def _job_id(body: object) -> str:
    return _decode(_str(body)).id


def _datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _epoch_ms(when: datetime) -> int:
    if when.utcoffset() is None:
        raise InvalidArgumentError(f"run_at must be an aware datetime, got {when!r}")
    return round(when.timestamp() * 1000)


def _check_queue(queue: object) -> str:
    if not isinstance(queue, str) or not queue:
        raise InvalidArgumentError(f"queue must be a non-empty str, got {queue!r}")
    return queue


def _fields(raw: object) -> dict[str, str]:
    if isinstance(raw, dict):
        return {_str(k): _str(v) for k, v in raw.items()}
    items = _list(raw)
    return {_str(items[i]): _str(items[i + 1]) for i in range(0, len(items), 2)}


def _list(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return list(value)
    raise SchedulerError(f"unexpected reply from Redis: {value!r}")


def _pairs(value: object) -> list[tuple[object, object]]:
    pairs: list[tuple[object, object]] = []
    for item in _list(value):
        first, second = _list(item)
        pairs.append((first, second))
    return pairs


def _str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    raise SchedulerError(f"unexpected reply from Redis: {value!r}")


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise SchedulerError(f"unexpected reply from Redis: {value!r}")
