"""`RedisJobs`: a durable jobs runtime on Redis Streams (``trio-sched[redis]``).

Importing this module imports redis-py; ``import trio_sched.jobs`` never does::

    from trio_sched.jobs import open_worker
    from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

    jobs = RedisJobs(RedisJobsConfig(url="redis://127.0.0.1:6379/0", visibility_timeout=30.0))
    async with jobs, open_worker(jobs, {"build_report": build_report}, queues=["default"]):
        ...

It implements `JobsRuntime` (enqueue), `BatchJobsRuntime` (enqueue_many),
`ConsumableJobs` (rules W1-W9 of `trio_sched.jobs._consumable`) and `JobControl` (rules
JC1-JC5 of `trio_sched.jobs._control`) with the driver of
`trio_sched._redis_driver` (rules R1-R4, R7: sync redis-py in worker threads, operation
timeouts, error mapping) and the checks of `trio_sched._redis_common` (rules R5-R6: URL
redaction, configuration checks).

Rules (RJ1, the keys, is in the header of `trio_sched.jobs._redis_keys`, RJ3, the claim,
in that of `trio_sched.jobs._redis_claim`, RJ4 and RJ5, the ends of leases and the dead
letters, in that of `trio_sched.jobs._redis_acks`, RJ8, job state and cancellation, in
that of `trio_sched.jobs._redis_control`; the scripts' text is in
`trio_sched.jobs._redis_lua`):
- RJ2 Every state change is one Lua script, atomic on the server, with times on the
  server's clock (``TIME``). ``enqueue``: refuse a job id already stored, then ``SET NX
  PX`` of the dedupe key (a duplicate raises `ConflictError`, which the scheduler counts
  as success), then store the job and ``XADD`` it - or ``ZADD`` it to ``delayed`` when
  ``run_at`` lies in the future. A lost reply is harmless: repeating the enqueue raises
  `ConflictError` (by key, or by job id), so no undo is needed. ``enqueue_many`` runs
  the same script once per job, in order, in non-transactional pipelines of
  ``_ENQUEUE_CHUNK`` jobs (one round trip each; all in one worker-thread call): every
  job is decided exactly as ``enqueue`` decides it, and the batch is not atomic.
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

import os
import secrets
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
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
    check_flag,
    check_prefix,
    check_redis_url,
    check_timeout,
    redact_url,
)
from trio_sched._redis_driver import RedisDriver, RedisScript
from trio_sched._redis_epoch import EPOCH_LUA, Detection, EpochWatch
from trio_sched.jobs import _redis_lua as lua
from trio_sched.jobs._consumable import DeadLetter, Delivery, FailOutcome
from trio_sched.jobs._control import JobState, check_key
from trio_sched.jobs._job import Job, check_jobs
from trio_sched.jobs._redis_acks import Acks
from trio_sched.jobs._redis_claim import Claims, deliveries_of
from trio_sched.jobs._redis_codec import as_int, as_list, as_str, decode_job, encode_job
from trio_sched.jobs._redis_control import Control
from trio_sched.jobs._redis_keys import JobKeys
from trio_sched.jobs._redis_stats import Counters
from trio_sched.jobs._redis_stats import RedisJobsStatistics as RedisJobsStatistics
from trio_sched.jobs._redis_stats import RedisQueueStatistics as RedisQueueStatistics

__all__ = ["RedisJobs", "RedisJobsConfig", "RedisJobsStatistics", "RedisQueueStatistics"]

# The script RedisJobs runs itself (KEYS, ARGV and reply in `_redis_lua`; the others are
# run by `_redis_claim` and `_redis_acks`).
_ENQUEUE: Final = RedisScript(lua.NOW + EPOCH_LUA + lua.ENQUEUE)

# enqueue_many: jobs per pipeline (one round trip). Large enough that the round trip is
# noise next to the scripts' own work, small enough that a 10,000-job burst does not
# build one multi-megabyte request and reply.
_ENQUEUE_CHUNK: Final = 500
# Each pipeline starts with SCRIPT LOAD, so its EVALSHAs find the script (a pipeline
# cannot fall back to EVAL per command as `RedisScript.run` does).


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
class RedisJobs(ClosesOnExit):
    """A `JobsRuntime`, `BatchJobsRuntime`, `ConsumableJobs` and `JobControl` on Redis
    Streams (rules RJ1-RJ8).

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
        self._keys = JobKeys(self._config.prefix)
        self._epoch = EpochWatch(
            self._keys.epoch,
            f"redis jobs runtime ({self._driver.url}, prefix {self._config.prefix!r})",
        )
        # RJ7: jobs pending per queue (stream + delayed) when this client last looked,
        # and what the last loss took (shared by every error reporting it).
        self._pending: dict[str, int] = {}
        self._vanished: dict[str, int] = {}
        self._consumer = self._config.consumer or (
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        )
        self._counters = Counters()
        self._claims = Claims(
            self._driver,
            self._keys,
            group=self._config.group,
            consumer=self._consumer,
            visibility_timeout=self._config.visibility_timeout,
            promote_batch=self._config.promote_batch,
            operation_timeout=self._config.operation_timeout,
        )
        self._acks = Acks(
            self._driver,
            self._keys,
            self._counters,
            group=self._config.group,
            consumer=self._consumer,
            max_attempts=self._config.max_attempts,
            dead_letter_maxlen=self._config.dead_letter_maxlen,
        )
        self._control = Control(
            self._driver,
            self._keys,
            group=self._config.group,
            visibility_timeout=self._config.visibility_timeout,
        )

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
        epoch = self._epoch.args()
        reply = await self._claims.take(names, max_jobs, epoch)
        if as_int(reply[0]) != 0:
            raise self._lost(self._epoch.detect(reply[1], epoch[0]))
        self._epoch.adopt(reply[1])
        next_due = as_int(reply[2])
        for name, pending in zip(names, as_list(reply[3]), strict=True):
            self._pending[name] = as_int(pending)
        deliveries = self._deliveries(reply[4:])
        if deliveries or wait <= 0:
            return deliveries
        return self._deliveries(await self._claims.block(names, max_jobs, wait, next_due))

    async def complete(self, delivery: Delivery) -> bool:
        """Finish the job for good (W5, RJ4); False when the lease is stale. A
        checkpoint; a cancelled call happened wholly or not at all."""
        return await self._acks.complete(delivery)

    async def fail(self, delivery: Delivery, *, error: str, retry_in: float | None) -> FailOutcome:
        """Retry after `retry_in` seconds or dead-letter (W6, RJ4). A checkpoint; a
        cancelled call happened wholly or not at all."""
        return await self._acks.fail(delivery, error=error, retry_in=retry_in)

    async def extend(self, delivery: Delivery) -> bool:
        """Renew the lease (W7, RJ4); False when lost. A checkpoint."""
        return await self._acks.extend(delivery)

    async def release(self, delivery: Delivery) -> None:
        """Give the job back for immediate redelivery, its try un-counted (W7, RJ4).
        A checkpoint; a cancelled call happened wholly or not at all."""
        await self._acks.release(delivery)

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """Dead letters of `queue`, oldest first (W8): one XRANGE. A checkpoint."""
        return await self._acks.dead_letters(queue, limit=limit)

    async def redrive(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Re-queue dead letters of `queue` (all when `ids` is None) (W8, RJ5); returns
        how many. One script: a cancelled call moved all of them or none."""
        return await self._acks.redrive(queue, ids)

    # -- JobControl -------------------------------------------------------------------

    async def job_state(self, idempotency_key: str) -> JobState:
        """The state of the job holding `idempotency_key` (JC2, RJ8): one script."""
        return await self._control.job_state(check_key(idempotency_key))

    async def cancel(self, idempotency_key: str) -> bool:
        """Cancel the queued or running job holding `idempotency_key` (JC3, RJ8); True
        when there was one. One script: a cancelled call happened wholly or not at all."""
        return await self._control.cancel(check_key(idempotency_key))

    # -- introspection --------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        """The stored job with `job_id` as enqueued (waiting, delayed or leased), or None
        once it completed or was dead-lettered. One HGET; a checkpoint."""

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            return client.hget(self._keys.data, job_id)

        body = await self._driver.call(run)
        return None if body is None else decode_job(as_str(body))

    async def queue_statistics(self, queue: str) -> RedisQueueStatistics:
        """What the server holds for `queue` (one pipelined round trip). A checkpoint."""
        stream, group = self._keys.stream(queue), self._config.group

        delayed_key, dead_key = self._keys.delayed(queue), self._keys.dead(queue)

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            pipe = client.pipeline(transaction=False)
            pipe.xlen(stream)
            pipe.xpending(stream, group)
            pipe.zcard(delayed_key)
            pipe.xlen(dead_key)
            # A queue never claimed from has no group yet: XPENDING then fails alone.
            return pipe.execute(raise_on_error=False)

        length, pending, delayed, dead = as_list(await self._driver.call(run))
        leased = as_int(pending.get("pending", 0)) if isinstance(pending, dict) else 0
        for value in (length, delayed, dead):
            if isinstance(value, Exception):
                raise self._driver.map_error(value) from value
        return RedisQueueStatistics(
            stream=as_int(length), leased=leased, delayed=as_int(delayed), dead=as_int(dead)
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

    def _enqueue_keys(self, job: Job) -> tuple[list[str], str]:
        """The keys of `_ENQUEUE` for `job` and its due time (ARGV 5);
        `InvalidArgumentError` for a job that cannot be stored (a bad queue name, a
        naive ``run_at``)."""
        key = job.idempotency_key
        dedupe = self._keys.dedupe(key) if key is not None else self._keys.data
        due = "" if job.run_at is None else str(_epoch_ms(job.run_at))
        stream, delayed = self._keys.stream(job.queue), self._keys.delayed(job.queue)
        return [self._keys.data, stream, delayed, dedupe, self._epoch.key], due

    def _enqueue_args(self, job: Job, due: str, epoch: tuple[str, str]) -> list[str]:
        """The arguments of `_ENQUEUE` for `job`, its JSON included; `epoch` is what
        `EpochWatch.args` gave before the call."""
        retention = str(max(1, round(self._config.dedupe_retention * 1000)))
        has_key = "0" if job.idempotency_key is None else "1"
        return [job.id, encode_job(job), has_key, retention, due, *epoch]

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
        reply = as_list(reply)
        code = as_int(reply[0])
        if code == -2:
            return self._lost(self._epoch.detect(reply[1], knew))
        self._epoch.adopt(reply[1])
        self._pending[job.queue] = as_int(reply[2])
        if code == 0:
            self._counters.duplicates += 1
            key, holder = job.idempotency_key, as_str(reply[3])
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
        out = deliveries_of(items)
        self._counters.claimed += len(out)
        return out


def _epoch_ms(when: datetime) -> int:
    if when.utcoffset() is None:
        raise InvalidArgumentError(f"run_at must be an aware datetime, got {when!r}")
    return round(when.timestamp() * 1000)
