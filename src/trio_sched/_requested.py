"""Occurrences dispatched on request: manual triggers (O8) and backfills (O14).

Both go the burst's way (D6: a lease guard per occurrence, the lease checked by this
instance's clock before the enqueue, transient errors retried until
``dispatch_timeout``) as *detached* parks: their outcome never moves the task's loop.

Rules:
- Q1 A trigger has an identity of its own (P2): it never collides with a scheduled
  occurrence, so it fires even when the task is paused.
- Q2 A backfill of ``[start, end)`` dispatches each occurrence of the task's schedule in
  that range with its normal identity (P1: lock key, idempotency key, job id,
  ``run_at``), chunk by chunk (``BURST_CHUNK`` per ``acquire_batch``). Its requests name
  no watermark: an occurrence at or before the watermark is still dispatched unless its
  record or its job says it already was. An occurrence whose record is held or
  dispatched, or whose job the runtime still remembers by its idempotency key
  (`ConflictError`), counts as *already present* and is not enqueued again; so running
  the same backfill twice, or over occurrences that ran recently, enqueues nothing
  twice. An occurrence whose record and job are both forgotten (older than the lock
  record's memory and the runtime's dedupe memory) is dispatched again: a backfill is
  for occurrences that did not run.
- Q3 Bounds: ``end`` at most the wall clock's now, ``start < end``, aware datetimes,
  and at most ``limit`` occurrences (counted before anything is dispatched; more is a
  `ValidationError`). Dispatched backfill occurrences are counted in ``fired``, marked
  dispatched and move the watermark forward (never back); each emits ``fired`` with
  reason ``backfill``.
- Q4 Cancellation: chunks dispatched before it stay dispatched; the chunk in flight may
  be partly enqueued; leases it got and did not use run out by their TTL. Running the
  same backfill again then dispatches only what is missing (Q2).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, final

import trio

from trio_sched import _plan
from trio_sched._burst import BURST_CHUNK
from trio_sched._errors import ConflictError, ValidationError
from trio_sched._loop import H_NOMINAL, H_OCCURRENCE, H_TRIGGER, Loop, Nominal, Park, Phase
from trio_sched.locks._protocol import AcquireRequest, Held, LockLease, Paused

if TYPE_CHECKING:
    from trio_sched._burst import Burst
    from trio_sched._parking import Parking

__all__ = ["BackfillResult", "Requested"]

DEFAULT_BACKFILL_LIMIT = 10_000


@final
@dataclass(frozen=True, slots=True)
class BackfillResult:
    """What `Scheduler.backfill` did (rule Q2): of ``occurrences`` in the range,
    ``dispatched`` were enqueued by this call, ``already_present`` were dispatched
    before (their record or job says so), ``failed`` could not be dispatched (each
    reported as an ``error`` or ``lease_lost`` event)."""

    occurrences: int
    dispatched: int
    already_present: int
    failed: int


@final
class Requested:
    """Builds and dispatches requested occurrences for the `Scheduler`."""

    def __init__(self, burst: Burst, parking: Parking, prefix: str) -> None:
        self._burst = burst
        self._parking = parking
        self._prefix = prefix

    def trigger_park(self, loop: Loop, now: datetime) -> Park:
        """The detached park of a manual trigger at `now` (O8, Q1)."""
        task = loop.task
        nonce = secrets.token_hex(6)
        park = Park(loop, now, now.timestamp())
        park.manual = True
        park.settled = trio.Event()
        now_utc = now.astimezone(UTC)
        info = park.info = Nominal(now_utc, _plan.epoch_ms(now_utc), now_utc.isoformat())
        key = park.key = _plan.manual_occurrence_key(self._prefix, task.name, now, nonce)
        idem = park.idem = _plan.manual_idempotency_key(task.name, task.idempotency_key, now, nonce)
        park.job_id = _plan.job_id(idem)
        park.headers.update({H_OCCURRENCE: key, H_NOMINAL: info.iso, H_TRIGGER: "manual"})
        park.decision = _plan.Decision(_plan.Action.FIRE, now, 0.0)
        return park

    @staticmethod
    def backfill_range(
        loop: Loop, start: datetime, end: datetime, now: datetime, limit: int
    ) -> list[datetime]:
        """The occurrences to backfill (Q3), or a `ValidationError` naming the bad
        argument."""
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise ValidationError(
                    f"{name}: expected an aware datetime, got {value!r}", field=name
                )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"limit: expected an int >= 1, got {limit!r}", field="limit")
        if not start < end:
            raise ValidationError(f"end: must be after start ({start} >= {end})", field="end")
        if end > now:
            raise ValidationError(
                f"end: a backfill covers the past; {end} is after the wall clock's {now}",
                field="end",
            )
        found: list[datetime] = []
        schedule = loop.task.cron
        try:
            for t in schedule.iter_after(start - timedelta(microseconds=1)):
                if t >= end:
                    break
                if len(found) == limit:
                    raise ValidationError(
                        f"limit: more than {limit:,} occurrences in [{start}, {end}); "
                        "split the range or raise the limit",
                        field="limit",
                    )
                found.append(t)
        except ValidationError as exc:
            if exc.field == "limit":
                raise
            # The schedule has no more fires (C7): what was found is all.
        return found

    async def backfill(self, loop: Loop, nominals: list[datetime]) -> BackfillResult:
        """Dispatch `nominals` of `loop`'s task (Q2, Q4). A checkpoint."""
        dispatched = present = failed = 0
        for first in range(0, len(nominals), BURST_CHUNK):
            chunk = nominals[first : first + BURST_CHUNK]
            parks = [self._backfill_park(loop, nominal) for nominal in chunk]
            requests = [AcquireRequest(park.key, loop.ttl, None, 0, 0, loop.keep) for park in parks]
            started = trio.current_time()
            answers: list[LockLease | Held | Paused | Exception | None]
            try:
                answers = list(await self._burst.acquire_batch(requests))
            except Exception as exc:
                answers = [exc] * len(requests)
            leased: list[Park] = []
            for park, answer in zip(parks, answers, strict=True):
                if isinstance(answer, LockLease):
                    park.leased(answer, started)
                    park.phase = Phase.DISPATCHING
                    leased.append(park)
                elif answer is None or isinstance(answer, Held):
                    present += 1  # dispatched, or being dispatched by its holder
                else:  # the acquire failed (or a provider broke L9: no watermark named)
                    failed += 1
                    error = (
                        ConflictError("answered Paused for a request naming no watermark")
                        if isinstance(answer, Paused)
                        else answer
                    )
                    self._burst.outcomes.report_backfill_failure(park, error)
            if leased:
                await self._burst.dispatch_backfill(leased, started)
                for park in leased:
                    assert park.settled is not None
                    await park.settled.wait()
                    if isinstance(park.result, Exception):
                        failed += 1
                    elif park.duplicate:
                        present += 1
                    else:
                        dispatched += 1
        return BackfillResult(len(nominals), dispatched, present, failed)

    def _backfill_park(self, loop: Loop, nominal: datetime) -> Park:
        park = Park(loop, nominal, nominal.timestamp())
        park.backfill = True
        park.settled = trio.Event()
        self._parking.prepare(park, nominal, late=True)
        park.headers[H_TRIGGER] = "backfill"
        park.decision = _plan.Decision(_plan.Action.FIRE, nominal, 0.0)
        return park
