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
  ``{prefix}:watermarks`` a hash of watermarks (name -> epoch ms), ``{prefix}:paused``
  a hash of pause records (RD10) and ``{prefix}:epoch`` the epoch sentinel of R8 (RD9).
  Providers sharing a
  server and a prefix coordinate; different prefixes never see each other. The scripts
  touch several keys, so on Redis Cluster they would need one hash slot: not supported.
- RD2 (every state change one Lua script, on the server's clock), RD6 (integers within
  +/-2**53), RD7 (where the fencing counter starts) and RD8 (a record's format) are in
  the header of `trio_sched.locks._redis_scripts`, with the scripts they govern.
- RD3 ``acquire_batch`` is ONE script call for the whole batch (one round trip, L5),
  with the pause check of RD10, the watermark check of rule L4 and the epoch check of
  RD9 inside it, so the batch is atomic as a whole. A key
  named twice is granted to its first request only. The requests travel as one JSON
  argument (decoded by the script with cjson). ``acquire`` is a batch of one with
  ``keep=ttl`` whose `Held` is answered ``None``. ``mark_dispatched``,
  ``advance_watermarks``, ``get_watermarks``, ``set_paused`` and ``get_paused`` are one
  round trip each; empty batches make none.
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
  ``set_paused``: applied wholly or not at all (one script); it sets each name's state,
  so the caller may simply repeat it.
  ``get_watermarks`` and ``get_paused`` change nothing, ``health_check`` nothing but
  the sentinel (RD9).
  ``aclose`` closes at once, before its checkpoint, so it closes even when cancelled.
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
- RD10 (pause records: their format, the script and the batch's pause check) is in the
  header of `trio_sched.locks._redis_pause`, with the code it governs.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import final

import redis
import trio

from trio_sched._closeable import ClosesOnExit
from trio_sched._errors import (
    DataLossError,
    InvalidArgumentError,
    LeaseLostError,
    SchedulerError,
)
from trio_sched._redis_driver import DriverStatistics, RedisDriver
from trio_sched._redis_epoch import Detection, EpochWatch
from trio_sched.locks._protocol import (
    AcquireRequest,
    Held,
    LockLease,
    Paused,
    check_request,
    check_ttl,
)
from trio_sched.locks._redis_config import RedisLockProviderConfig
from trio_sched.locks._redis_pause import RedisPauses, decode_paused
from trio_sched.locks._redis_scripts import (
    ACQUIRE_BATCH,
    ADVANCE,
    HEALTH,
    MARK,
    RELEASE,
    RENEW,
    exact_int,
    expiry,
    held,
    reply_int,
    reply_ints,
    server_time,
    takeover,
    to_ms,
)

__all__ = ["RedisLockProvider", "RedisLockProviderConfig", "RedisLockStatistics"]

_log = logging.getLogger("trio_sched.locks.redis")


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
    `refused_after_loss` the requests refused by RD9 and `refused_by_pause` those
    answered `Paused` (RD10; neither part of `misses`).
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
    refused_by_pause: int = 0


@final
class RedisLockProvider(ClosesOnExit):
    """A `LockProvider` and `PauseStore` on one Redis server (rules RD1-RD10 above, in
    `_redis_scripts` and in `_redis_pause`, R1-R8 of the Redis plumbing).

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
        self._paused_key = f"{prefix}:paused"
        self._pauses = RedisPauses(self._driver, self._paused_key)
        self._epoch = EpochWatch(
            f"{prefix}:epoch", f"redis lock provider ({self._driver.url}, prefix {prefix!r})"
        )
        # RD9: a loss `health_check` found, for the next `acquire_batch` to raise too.
        self._unreported: DataLossError | None = None
        self._longest_keep_ms = 0  # the longest record memory asked for (health_check)
        self._refused_after_loss = 0
        self._refused_paused = 0
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
    ) -> list[LockLease | Held | Paused | None]:
        """Acquire (or take over, L7) many keys in ONE round trip; result ``i`` answers
        request ``i``.

        `Paused` means its watermark names a paused task (L9, RD10; its key untouched);
        `Held` leased by another token undispatched (L6); ``None`` dispatched, refused
        by its watermark (rule L4), or granted earlier in the batch; all decided inside
        the same script (RD2, RD3). A checkpoint; cancellation leaves no hidden
        lock (RD5). An empty batch makes no round trip.
        """
        tokens = _new_tokens(len(requests))
        keys = [self._fencing_key, self._watermark_key, self._epoch.key, self._paused_key]
        rows: list[tuple[str, str, str, int, str, str, str]] = []
        millis: dict[float, str] = {}  # most batches share one ttl and keep
        for request, token in zip(requests, tokens, strict=True):
            keep = check_request(request)
            ttl = millis.get(request.ttl)
            if ttl is None:
                ttl = millis[request.ttl] = to_ms(request.ttl)
            kept = millis.get(keep)
            if kept is None:
                kept = millis[keep] = to_ms(keep)
            keys.append(self._lock_prefix + request.key)
            if request.watermark is None:
                rows.append((token, ttl, kept, 0, "", "0", "0"))
            else:
                if not isinstance(request.watermark, str):
                    raise InvalidArgumentError(
                        f"watermark must be a str or None, got {request.watermark!r}"
                    )
                nominal = exact_int("nominal_ms", request.nominal_ms)
                slack = exact_int("watermark_slack_ms", request.watermark_slack_ms)
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
            return ACQUIRE_BATCH.run(self._driver, client, keys, args)

        reply = await self._driver.call(run, undo=self._undo(keys[4:], tokens))
        if isinstance(reply, list) and len(reply) == 4 and reply[-1] in (1, 2):
            raise self._lost(self._epoch.detect(reply[2], knew), rolled_back=reply[-1] == 2)
        if not isinstance(reply, list) or len(reply) != len(requests) + 4:
            raise SchedulerError(
                f"unexpected reply from Redis (want {len(requests) + 4} items): {reply!r}"
            )
        self._epoch.adopt(reply[-2])
        seconds, micros = reply_int(reply[-4]), reply_int(reply[-3])
        now = server_time(seconds, micros)
        now_ms = seconds * 1000 + micros // 1000  # the script's now_ms
        expiries: dict[float, datetime] = {}  # most batches share one TTL
        results: list[LockLease | Held | Paused | None] = []
        for request, token, answer in zip(requests, tokens, reply, strict=False):
            if isinstance(answer, str):
                results.append(held(answer, now_ms))
                self._misses += 1
                continue
            previous: str | None = None
            if isinstance(answer, list) and answer and answer[0] == -3:
                # RD10. The script checked the record's shape; one it took that Python
                # cannot read (a `since` beyond datetime's range) is skipped all the same.
                self._refused_paused += 1
                results.append(decode_paused(answer[-1]))
                continue
            if isinstance(answer, list):
                fencing, previous = takeover(answer)
                self._takeovers += 1
            else:
                fencing = reply_int(answer)
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
        ttl_ms = to_ms(check_ttl(ttl))
        redis_key = self._lock_prefix + lease.key

        def run(client: redis.Redis) -> object:
            return RENEW.run(self._driver, client, [redis_key], [lease.token, ttl_ms])

        reply = await self._driver.call(run)
        if reply is None or reply is False:  # Lua false: nil (RESP2) or false (RESP3)
            self._renewals_lost += 1
            raise LeaseLostError(f"lease on {lease.key!r} was lost (expired or taken)")
        seconds, micros = reply_ints(reply, 2)
        self._renewals += 1
        return LockLease(
            key=lease.key,
            token=lease.token,
            expire_at=expiry(seconds, micros, ttl),
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
            return RELEASE.run(self._driver, client, [redis_key], [lease.token])

        deleted = reply_int(await self._driver.call(run))
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
            return MARK.run(self._driver, client, keys, tokens)

        answers = reply_ints(await self._driver.call(run), len(keys))
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
            args += (name, exact_int("watermark", value))
        if not args:
            await self._checkpoint_open()
            return

        def run(client: redis.Redis) -> object:
            return ADVANCE.run(self._driver, client, [self._watermark_key], args)

        await self._driver.call(run)

    # -- PauseStore -------------------------------------------------------------------

    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        """Store each name's pause record, or delete it (``None``: resumed), in ONE
        script (RD10); ``since`` is stored floored to the millisecond.

        Every name and record is checked first (`InvalidArgumentError`, nothing sent).
        A checkpoint; a cancelled call applied all of them or none (RD5). An empty
        mapping makes no round trip.
        """
        await self._pauses.set_paused(states)

    async def get_paused(self, names: Sequence[str]) -> dict[str, Paused]:
        """The pause records of those `names` that have one (one HMGET, RD10).

        A checkpoint; changes nothing. An empty sequence makes no round trip.
        """
        return await self._pauses.get_paused(names)

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
            return HEALTH.run(self._driver, client, keys, args)

        reply = await self._driver.call(run)
        if not isinstance(reply, list) or len(reply) != 4:
            raise SchedulerError(f"unexpected reply from Redis (want 4 items): {reply!r}")
        if reply[3] in (1, 2):
            error = self._lost(self._epoch.detect(reply[2], knew), rolled_back=reply[3] == 2)
            self._unreported = error  # the scheduler's next batch reports it too
            raise error
        epoch = self._epoch.adopt(reply[2])
        now_ms = reply_int(reply[0]) * 1000 + reply_int(reply[1]) // 1000
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
            refused_by_pause=self._refused_paused,
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
        deleted = RELEASE.run(self._driver, client, self._keys, self._tokens)
        if deleted:
            _log.debug("released %s lock(s) of an abandoned or failed acquire", deleted)


def _new_tokens(count: int) -> list[str]:
    """`count` random 128-bit lock tokens (hex) from one read of the OS's random source:
    one ``os.urandom`` per batch instead of one per request."""
    pool = secrets.token_hex(16 * count)
    return [pool[start : start + 32] for start in range(0, 32 * count, 32)]
