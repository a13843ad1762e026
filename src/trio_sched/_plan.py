"""Occurrence identity and fire/skip decisions: pure, sans-IO (O1-O3, O6, O8 of docs/runtime.md).

Never imports trio and never reads a clock: every function takes the times it needs,
so the runtime only carries the answers out and most tests need no event loop.

Rules:
- P1 An occurrence is (task name, nominal instant). Every key derives from the
  nominal instant in whole epoch milliseconds (UTC), never from a wake-up time:
  lock key ``{prefix}:{task}:{ms}``, watermark name ``{prefix}:{task}``, idempotency
  key ``{task}:{ms}`` (or ``{task.idempotency_key}:{ms}``) and a job id derived from
  the idempotency key (a hash), so every instance builds the same job.
- P2 A manual trigger has its own identity that can never collide with a scheduled
  occurrence or another trigger: ``{prefix}:{task}:manual:{ms}:{nonce}``.
- P3 `decide` (O6): an occurrence is *late* when ``now - nominal > grace``. On time:
  fire it. Late: find the latest late occurrence M (the last fire strictly before
  ``now - grace``); ``skip`` drops everything up to M, ``fire_once`` fires M alone.
  Either way the caller continues after M, so on-time occurrences after M still fire.
- P4 A watermark (epoch ms of the last dispatched occurrence) is where a restarted
  loop resumes: the first occurrence to consider is the first fire after it.
- P5 ``fire_all`` (O11): a late occurrence fires when it is inside the task's catch-up
  window (``now - nominal <= window``) and among the newest ``cap`` late ones; the late
  ones before the window, or beyond the cap, are skipped in one decision (reason
  ``misfire`` or ``catchup_cap``) and the loop continues with the first one that fires,
  so missed occurrences fire oldest first, one decision each.
- P6 Jitter (O13): the delay of an occurrence is ``jitter * h / 2**64`` where ``h`` is a
  keyed BLAKE2b hash of (task name, nominal epoch ms): the same on every instance,
  uniform in ``[0, jitter)``, and cut to end 1 ms before the next occurrence. The
  occurrence's identity (lock key, idempotency key, ``run_at``, headers) stays its
  nominal instant; only when it fires, and the lateness it is judged by, move.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, final

from trio_sched._errors import ValidationError
from trio_sched._task import MisfirePolicy
from trio_sched.cron import Schedule

__all__ = [
    "Action",
    "Decision",
    "decide",
    "decide_on_time",
    "epoch_ms",
    "first_candidate",
    "from_epoch_ms",
    "idempotency_key",
    "jitter_delay",
    "job_id",
    "manual_idempotency_key",
    "manual_occurrence_key",
    "occurrence_key",
    "watermark_name",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
# Personalisation of the job-id hash, so ids are stable across versions and hosts.
_JOB_ID_PERSON: Final = b"trio-sched-job"
_JITTER_PERSON: Final = b"trio-sched-jit"
_TWO_64: Final = float(2**64)


def epoch_ms(t: datetime) -> int:
    """Whole epoch milliseconds of an aware datetime (floor, exact integer arithmetic)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValidationError(f"naive datetime {t!r}: occurrences need aware datetimes")
    return (t - EPOCH) // _ONE_MS


def from_epoch_ms(ms: int) -> datetime:
    """The aware UTC datetime of `ms` epoch milliseconds."""
    return EPOCH + ms * _ONE_MS


def watermark_name(prefix: str, task: str) -> str:
    """The name of a task's last-dispatched watermark (P1)."""
    return f"{prefix}:{task}"


def occurrence_key(prefix: str, task: str, nominal: datetime) -> str:
    """The lock key of the occurrence of `task` at `nominal` (O2, P1)."""
    return f"{prefix}:{task}:{epoch_ms(nominal)}"


def idempotency_key(task: str, custom: str | None, nominal: datetime) -> str:
    """The job idempotency key of an occurrence (section 5, P1)."""
    return f"{custom if custom is not None else task}:{epoch_ms(nominal)}"


def manual_occurrence_key(prefix: str, task: str, now: datetime, nonce: str) -> str:
    """The lock key of a manual trigger (O8, P2)."""
    return f"{prefix}:{task}:manual:{epoch_ms(now)}:{nonce}"


def manual_idempotency_key(task: str, custom: str | None, now: datetime, nonce: str) -> str:
    """The idempotency key of a manual trigger (P2)."""
    return f"{custom if custom is not None else task}:manual:{epoch_ms(now)}:{nonce}"


def job_id(idempotency: str) -> str:
    """A job id derived from the idempotency key, identical on every instance (P1).

    32 hex digits of a keyed BLAKE2b (cheaper than a UUID 5, same stability).
    """
    digest = hashlib.blake2b(idempotency.encode(), digest_size=16, person=_JOB_ID_PERSON)
    return digest.hexdigest()


def jitter_delay(task: str, nominal_ms: int, jitter: float, gap: float | None = None) -> float:
    """The delay, seconds in ``[0, jitter)``, of the occurrence of `task` at `nominal_ms`
    (P6); with `gap` (seconds to the next occurrence) at most ``gap - 0.001``."""
    digest = hashlib.blake2b(
        f"{task}:{nominal_ms}".encode(), digest_size=8, person=_JITTER_PERSON
    ).digest()
    delay = int.from_bytes(digest, "big") / _TWO_64 * jitter
    if gap is not None and delay > gap - 0.001:
        delay = max(0.0, gap - 0.001)
    return delay


def first_candidate(schedule: Schedule, now: datetime, watermark_ms: int | None) -> datetime:
    """The first occurrence a (re)started loop considers (P4).

    Without a watermark the loop starts fresh: the first fire strictly after `now`.
    With one, the first fire after the watermark, which may lie in the past (downtime):
    `decide` then classifies it as on time or late.
    """
    if watermark_ms is None:
        return schedule.next_after(now)
    return schedule.next_after(from_epoch_ms(watermark_ms))


@final
class Action(enum.Enum):
    """What to do with the occurrence a loop has reached."""

    WAIT = "wait"  # not due yet on the wall clock (woke early or the clock went back)
    FIRE = "fire"  # dispatch `Decision.nominal`
    SKIP = "skip"  # late under the skip policy: dispatch nothing up to `nominal`


@final
@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of `decide`.

    `nominal` is the occurrence to fire (FIRE), the latest dropped one (SKIP) or the
    awaited one (WAIT); the loop continues with the first fire after it. `first_late` is
    the first late occurrence when the decision handles a misfire, else ``None``.
    `lateness` is ``now - nominal`` in seconds (negative for WAIT). `reason` says why a
    SKIP skips: ``misfire`` (late, or late before the catch-up window) or
    ``catchup_cap`` (beyond ``max_catchup``, P5). `covers` is the latest late occurrence
    a ``fire_all`` decision's misfire covers (one misfire for a whole catch-up); None
    means `nominal`.
    """

    action: Action
    nominal: datetime
    lateness: float
    first_late: datetime | None = None
    reason: str = "misfire"
    covers: datetime | None = None

    @property
    def late(self) -> bool:
        """Whether this decision handles a misfire (O6)."""
        return self.first_late is not None


def decide_on_time(nominal: datetime, now: datetime, grace: float) -> Decision | None:
    """The FIRE decision for `nominal` if it is on time, else ``None`` (call `decide`).

    An on-time decision depends on nothing but `nominal`, `now` and `grace` (not on the
    schedule or the policy), so callers may share it between every task due at the
    same instant; `decide` returns an equal value in that case.
    """
    lateness = (now - nominal).total_seconds()
    if 0 <= lateness <= grace:
        return Decision(Action.FIRE, nominal, lateness)
    return None


def decide(
    schedule: Schedule,
    nominal: datetime,
    now: datetime,
    grace: float,
    policy: MisfirePolicy,
    window: float = 0.0,
    cap: int = 1,
) -> Decision:
    """Decide what to do with the occurrence at `nominal` when the wall clock says `now`.

    Rules P3, P5. ``now`` and ``nominal`` are aware datetimes; ``grace`` is seconds >= 0;
    `window` and `cap` are the catch-up window (seconds) and ``max_catchup`` of a
    ``fire_all`` task.
    """
    lateness = (now - nominal).total_seconds()
    if lateness < 0:
        return Decision(Action.WAIT, nominal, lateness)
    if lateness <= grace:
        return Decision(Action.FIRE, nominal, lateness)
    # Late: the latest late occurrence is the last fire strictly before now - grace,
    # which exists and is >= nominal because nominal itself is before now - grace.
    latest = schedule.prev_before(now - timedelta(seconds=grace))
    if latest < nominal:  # defensive: a schedule that disagrees with itself
        latest = nominal
    if policy is MisfirePolicy.FIRE_ALL:
        return _catch_up(schedule, nominal, latest, now, window, cap)
    latest_lateness = (now - latest).total_seconds()
    action = Action.FIRE if policy is MisfirePolicy.FIRE_ONCE else Action.SKIP
    return Decision(action, latest, latest_lateness, first_late=nominal)


def _catch_up(
    schedule: Schedule, nominal: datetime, latest: datetime, now: datetime, window: float, cap: int
) -> Decision:
    """P5: fire `nominal` if it is in the window and among the newest `cap` late
    occurrences (up to `latest`); else skip up to the one before the first that is."""
    oldest = now - timedelta(seconds=window)
    if nominal >= oldest:
        # In the window: fire it unless more than `cap` late ones follow it.
        count = 0
        for t in schedule.iter_after(nominal - timedelta(microseconds=1)):
            if t > latest:
                break
            count += 1
            if count > cap:
                break
        if count <= cap:
            lateness = (now - nominal).total_seconds()
            return Decision(Action.FIRE, nominal, lateness, nominal, covers=latest)
    # The first to fire: the oldest of the newest `cap` late ones inside the window.
    first = None
    for taken, t in enumerate(schedule.iter_before(latest + timedelta(microseconds=1))):
        if t < oldest or t < nominal or taken == cap:
            break
        first = t
    if first is None:  # nothing late is inside the window: skip all of it
        lateness = (now - latest).total_seconds()
        return Decision(Action.SKIP, latest, lateness, first_late=nominal, covers=latest)
    dropped = schedule.prev_before(first)
    # Skipped ones inside the window were dropped by the cap, the others by the window.
    reason = "catchup_cap" if dropped >= oldest else "misfire"
    return Decision(
        Action.SKIP,
        dropped,
        (now - dropped).total_seconds(),
        first_late=nominal,
        reason=reason,
        covers=latest,
    )
