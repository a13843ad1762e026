"""The claim of `RedisJobs` (rule RJ3 of the Redis jobs runtime, `trio_sched.jobs.redis`):
its two steps and the undo of an abandoned one. `RedisJobs.claim` checks the arguments
and the epoch (RJ7) and turns what was taken into deliveries.

Rules:
- RJ3 ``claim`` runs one script that, per queue: creates the group if missing, moves
  due delayed jobs to the stream, reclaims entries idle for ``visibility_timeout``
  (``XAUTOCLAIM``: the lease of a dead worker), then reads new entries
  (``XREADGROUP``). Only when that finds nothing does it block in ``XREADGROUP BLOCK``
  for at most ``min(wait, operation_timeout / 2, next delayed due time)``, then accepts
  what arrived with a second script. Each delivery increments ``tries``; the delivered
  ``attempt`` is the enqueued one plus ``tries - 1`` (W3). A cancelled or timed-out
  claim gives back what its abandoned call took (the R3 undo); when even that reply is
  lost, the entries are reclaimed after the visibility timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, final

import redis

from trio_sched._redis_driver import RedisDriver, RedisScript
from trio_sched._redis_epoch import EPOCH_LUA
from trio_sched.jobs import _redis_lua as lua
from trio_sched.jobs._consumable import Delivery
from trio_sched.jobs._job import with_attempt
from trio_sched.jobs._redis_acks import RELEASE
from trio_sched.jobs._redis_codec import (
    as_fields,
    as_int,
    as_list,
    as_pairs,
    as_str,
    decode_job,
    job_id_of,
)
from trio_sched.jobs._redis_keys import JobKeys

# The scripts of a claim (KEYS, ARGV and replies in `_redis_lua`); what a claim gives
# back, it releases with the script of `RedisJobs.release`.
CLAIM: Final = RedisScript(lua.NOW + EPOCH_LUA + lua.TAKE + lua.CLAIM)
ACCEPT: Final = RedisScript(lua.TAKE + lua.ACCEPT)


@final
class Claims:
    """The two steps of a claim (RJ3) for one `RedisJobs`: `take` runs the claim script
    and answers its reply; `block`, for a claim that took nothing, waits for new entries
    and answers what the accept script took. Each gives back what its call took when the
    call is abandoned (`GiveBack`)."""

    __slots__ = (
        "_consumer",
        "_driver",
        "_group",
        "_keys",
        "_operation_timeout",
        "_promote_batch",
        "_visibility_timeout",
    )

    def __init__(
        self,
        driver: RedisDriver,
        keys: JobKeys,
        *,
        group: str,
        consumer: str,
        visibility_timeout: float,
        promote_batch: int,
        operation_timeout: float,
    ) -> None:
        self._driver = driver
        self._keys = keys
        self._group = group
        self._consumer = consumer
        self._visibility_timeout = visibility_timeout
        self._promote_batch = promote_batch
        self._operation_timeout = operation_timeout

    async def take(self, names: list[str], max_jobs: int, epoch: tuple[str, str]) -> list[object]:
        """The claim script's reply for the queues `names`; `epoch` is what
        `EpochWatch.args` gave before the call."""
        streams = [self._keys.stream(q) for q in names]
        keys = [self._keys.data, self._keys.tries, self._keys.epoch]
        for name in names:
            keys += (self._keys.stream(name), self._keys.delayed(name))
        keys.append(self._keys.leases)
        min_idle = str(max(1, round(self._visibility_timeout * 1000)))
        knew, creator = epoch
        args = [
            self._group,
            self._consumer,
            str(max_jobs),
            min_idle,
            str(self._promote_batch),
            knew,
            creator,
        ]
        taken = Taken()

        def run_claim(client: redis.Redis) -> list[object]:
            reply = as_list(CLAIM.run(self._driver, client, keys, args))
            for item in reply[4:]:
                qi, entry, body, _ = as_list(item)
                taken.entries.append(
                    (streams[as_int(qi) - 1], as_str(entry), job_id_of(body), True)
                )
            return reply

        return await self._driver.call(run_claim, undo=self._give_back(taken))

    async def block(
        self, names: list[str], max_jobs: int, wait: float, next_due: int
    ) -> list[object]:
        """The accept script's items for what arrived on the queues `names` within
        ``min(wait, operation_timeout / 2, next_due ms)``."""
        streams = [self._keys.stream(q) for q in names]
        block = min(wait, self._operation_timeout / 2)
        if next_due >= 0:
            block = min(block, next_due / 1000)
        block_ms = max(1, round(block * 1000))
        group, consumer = self._group, self._consumer
        data, tries, leases = self._keys.data, self._keys.tries, self._keys.leases
        read = Taken()

        def run_block(client: redis.Redis) -> object:
            self._driver.count_round_trip()
            got = client.xreadgroup(
                group, consumer, dict.fromkeys(streams, ">"), count=max_jobs, block=block_ms
            )
            for stream, entries in as_pairs(got or []):
                for entry, fields in as_pairs(entries):
                    read.entries.append(
                        (as_str(stream), as_str(entry), as_fields(fields)["job"], False)
                    )
            # XREADGROUP's COUNT is per stream: with several queues it can return more
            # than max_jobs entries. Keep max_jobs (W1) and give the rest back now.
            extra = read.entries[max_jobs:]
            read.entries = read.entries[:max_jobs]
            for stream, entry, job_id, _ in extra:
                RELEASE.run(
                    self._driver,
                    client,
                    [stream, data, tries],
                    [group, entry, job_id, "0"],
                )
            triples: list[str] = []
            for stream, entry, job_id, _ in read.entries:
                triples += (str(streams.index(stream) + 1), entry, job_id)
            if not triples:
                return []
            accepted = ACCEPT.run(
                self._driver, client, [data, tries, *streams, leases], [group, *triples]
            )
            read.entries = [(s, e, j, True) for s, e, j, _ in read.entries]
            return accepted

        return as_list(await self._driver.call(run_block, undo=self._give_back(read)))

    def _give_back(self, taken: Taken) -> GiveBack:
        return GiveBack(self._driver, self._group, self._keys.data, self._keys.tries, taken)


def deliveries_of(items: list[object]) -> list[Delivery]:
    """The deliveries of the claim or accept script's items (W3: the attempt counts the
    tries)."""
    out: list[Delivery] = []
    for item in items:
        _, entry, body, tries = as_list(item)
        job = decode_job(as_str(body))
        attempt = job.attempt + as_int(tries) - 1
        delivered = with_attempt(job, attempt)
        out.append(Delivery(job=delivered, receipt=as_str(entry)))
    return out


@final
@dataclass(slots=True)
class Taken:
    """What an abandoned claim took, for its undo (RJ3)."""

    entries: list[tuple[str, str, str, bool]] = field(default_factory=list)
    # (stream key, entry id, job id, whether the try was counted)


@final
class GiveBack:
    """The undo of an abandoned claim (R3, RJ3): release what it took, un-counting the
    tries it counted. Runs in a worker thread; a stale entry is skipped by the script."""

    __slots__ = ("_data", "_driver", "_group", "_taken", "_tries")

    def __init__(
        self, driver: RedisDriver, group: str, data: str, tries: str, taken: Taken
    ) -> None:
        self._driver = driver
        self._group = group
        self._data = data
        self._tries = tries
        self._taken = taken

    def __call__(self, client: redis.Redis) -> None:
        for stream, entry, job_id, counted in self._taken.entries:
            RELEASE.run(
                self._driver,
                client,
                [stream, self._data, self._tries],
                [self._group, entry, job_id, "1" if counted else "0"],
            )
