"""What a delivery's lease ends with, and the dead letters it can leave, for `RedisJobs`
(rules RJ4 and RJ5 of the Redis jobs runtime, `trio_sched.jobs.redis`): `complete`,
`fail`, `extend`, `release`, `dead_letters` and `redrive`, each the body of the
`RedisJobs` method of that name, which states the contract.

Rules:
- RJ4 ``complete``/``fail``/``release`` start with ``XACK``; when that acknowledges
  nothing, the lease is stale (W5) and nothing changes. ``complete`` then deletes the
  entry, the job and its tries (the dedupe key stays until it expires, so a re-fire of
  the same occurrence is still refused). ``fail`` retries by re-adding the job to the
  stream (due now) or to ``delayed``, or dead-letters it (the job leaves ``data``).
  ``release`` re-adds it at once and un-counts the try. ``extend`` resets the entry's
  idle time with ``XCLAIM ... JUSTID`` only while this consumer still owns it. All
  four find a lease stale whose job left ``data`` (cancelled, RJ8) and drop its entry. A job
  that completes or is dead-lettered leaves ``leases`` and, when it has an idempotency
  key, its end is remembered in ``ended:{key}`` (RJ8).
- RJ5 ``redrive`` moves dead letters back to the stream with their enqueued attempt and
  fresh tries; a dead letter whose job id is stored again meanwhile stays put.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, final

import redis
import trio

from trio_sched._redis_driver import RedisDriver, RedisScript
from trio_sched.jobs import _redis_lua as lua
from trio_sched.jobs._consumable import DeadLetter, Delivery, FailOutcome
from trio_sched.jobs._job import Job, with_attempt
from trio_sched.jobs._redis_codec import as_fields, as_int, as_pairs, as_str, decode_job
from trio_sched.jobs._redis_keys import JobKeys
from trio_sched.jobs._redis_stats import Counters

# KEYS, ARGV and replies in `_redis_lua`. RELEASE is also the undo of an abandoned
# claim (`_redis_claim`).
COMPLETE: Final = RedisScript(lua.ENDED + lua.COMPLETE)
FAIL: Final = RedisScript(lua.NOW + lua.ENDED + lua.FAIL)
RELEASE: Final = RedisScript(lua.RELEASE)
EXTEND: Final = RedisScript(lua.EXTEND)
REDRIVE: Final = RedisScript(lua.REDRIVE)


@final
class Acks:
    """The ends of leases and the dead letters of one `RedisJobs` (RJ4, RJ5), counted in
    its `Counters`."""

    __slots__ = (
        "_consumer",
        "_counters",
        "_dead_letter_maxlen",
        "_driver",
        "_group",
        "_keys",
        "_max_attempts",
    )

    def __init__(
        self,
        driver: RedisDriver,
        keys: JobKeys,
        counters: Counters,
        *,
        group: str,
        consumer: str,
        max_attempts: int,
        dead_letter_maxlen: int,
    ) -> None:
        self._driver = driver
        self._keys = keys
        self._counters = counters
        self._group = group
        self._consumer = consumer
        self._max_attempts = max_attempts
        self._dead_letter_maxlen = dead_letter_maxlen

    async def complete(self, delivery: Delivery) -> bool:
        job = delivery.job

        keys = [
            self._keys.stream(job.queue),
            self._keys.data,
            self._keys.tries,
            self._keys.leases,
            *self._keys.job_keys(job.idempotency_key),
        ]
        args = [self._group, delivery.receipt, job.id, _has_key(job)]

        def run(client: redis.Redis) -> object:
            return COMPLETE.run(self._driver, client, keys, args)

        if as_int(await self._driver.call(run)) == 0:
            self._counters.stale += 1
            return False
        self._counters.completed += 1
        return True

    async def fail(self, delivery: Delivery, *, error: str, retry_in: float | None) -> FailOutcome:
        job = delivery.job
        retry = retry_in is not None and job.attempt < self._max_attempts
        delay_ms = str(max(0, round((retry_in or 0.0) * 1000)))
        keys = [
            self._keys.stream(job.queue),
            self._keys.data,
            self._keys.tries,
            self._keys.delayed(job.queue),
            self._keys.dead(job.queue),
            self._keys.leases,
            *self._keys.job_keys(job.idempotency_key),
        ]
        args = [
            self._group,
            delivery.receipt,
            job.id,
            "retry" if retry else "dead",
            delay_ms,
            error,
            str(job.attempt),
            str(self._dead_letter_maxlen),
            _has_key(job),
        ]

        def run(client: redis.Redis) -> object:
            return FAIL.run(self._driver, client, keys, args)

        code = as_int(await self._driver.call(run))
        if code == 0:
            self._counters.stale += 1
            return "stale"
        if code == 1:
            self._counters.retried += 1
            return "retried"
        self._counters.dead_lettered += 1
        return "dead_lettered"

    async def extend(self, delivery: Delivery) -> bool:
        keys = [self._keys.stream(delivery.job.queue), self._keys.data]
        args = [self._group, self._consumer, delivery.receipt, delivery.job.id]

        def run(client: redis.Redis) -> object:
            return EXTEND.run(self._driver, client, keys, args)

        if as_int(await self._driver.call(run)) == 0:
            self._counters.leases_lost += 1
            return False
        self._counters.extended += 1
        return True

    async def release(self, delivery: Delivery) -> None:
        job = delivery.job

        def run(client: redis.Redis) -> object:
            return RELEASE.run(
                self._driver,
                client,
                [self._keys.stream(job.queue), self._keys.data, self._keys.tries],
                [self._group, delivery.receipt, job.id, "1"],
            )

        if as_int(await self._driver.call(run)):
            self._counters.released += 1
        else:
            self._counters.stale += 1

    async def dead_letters(self, queue: str, *, limit: int) -> list[DeadLetter]:
        dead = self._keys.dead(queue)

        def run(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            return client.xrange(dead, "-", "+", count=limit)

        letters: list[DeadLetter] = []
        for entry, fields in as_pairs(await self._driver.call(run)):
            values = as_fields(fields)
            job = decode_job(values["job"])
            letters.append(
                DeadLetter(
                    id=as_str(entry),
                    job=with_attempt(job, int(values["attempt"])),
                    error=values["error"],
                    failed_at=datetime.fromtimestamp(int(values["at"]) / 1000, UTC),
                )
            )
        return letters

    async def redrive(self, queue: str, ids: Sequence[str] | None) -> int:
        if ids is not None and not ids:
            await trio.lowlevel.checkpoint()
            return 0
        keys = [self._keys.dead(queue), self._keys.data, self._keys.tries, self._keys.stream(queue)]
        args = ["*"] if ids is None else [str(i) for i in ids]

        def run(client: redis.Redis) -> object:
            return REDRIVE.run(self._driver, client, keys, args)

        moved = as_int(await self._driver.call(run))
        self._counters.redriven += moved
        return moved


def _has_key(job: Job) -> str:
    """ARGV "has key" of COMPLETE and FAIL: whether to remember the end (RJ8)."""
    return "0" if job.idempotency_key is None else "1"
