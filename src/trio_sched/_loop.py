"""The per-task loop as data: a task's `Loop` (cursor, counters, where it waits) and
the `Park` of the occurrence it waits for (rules D1, D3, D6 of `_runtime`).

A loop has no Trio task while it waits: it is a `Loop` record holding its cursor (the
next nominal instant to consider, and its retry state) and, near an occurrence, a `Park`
on the shared timer; when the next occurrence is more than 5 s away it is *dormant* (a
slot in the group of loops waking at the same instant). The `Phase` of its park says
where the occurrence is: on the timer, in its burst's ``acquire_batch``, in its burst's
enqueue, or done. The scheduler's burst (D6) moves the loop from one occurrence to the
next; a Trio task runs for a loop only to retry an occurrence handed back to it.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Final, NamedTuple, final

import trio

from trio_sched import _plan
from trio_sched._events import TaskStatistics
from trio_sched._lease import LeaseGuard
from trio_sched._task import MisfirePolicy, Task
from trio_sched._timer import TimerHandle
from trio_sched.cron._fields import HOUR, MINUTE, SECOND
from trio_sched.locks._protocol import LockLease, Paused

if TYPE_CHECKING:
    from trio_sched._parking import Parking
    from trio_sched.jobs._job import Job

__all__ = [
    "H_FENCING",
    "H_INSTANCE",
    "H_NOMINAL",
    "H_OCCURRENCE",
    "H_TASK",
    "H_TRIGGER",
    "WAITING",
    "InFlight",
    "Loop",
    "Nominal",
    "Park",
    "Phase",
]

H_TASK: Final = "x-trio-sched-task"
H_OCCURRENCE: Final = "x-trio-sched-occurrence"
H_NOMINAL: Final = "x-trio-sched-nominal"
H_FENCING: Final = "x-trio-sched-fencing-token"
H_TRIGGER: Final = "x-trio-sched-trigger"
H_INSTANCE: Final = "x-trio-sched-instance"


class Phase(enum.Enum):
    TIMER = 1  # parked on the timer heap
    ACQUIRING = 2  # in an acquire_batch call
    DISPATCHING = 3  # in its burst's enqueue (D6)
    DONE = 4  # decided, and settled or handed to its loop


WAITING: Final = frozenset((Phase.TIMER, Phase.ACQUIRING))


@final
class Loop:
    """Mutable state of one registered task's loop (counters feed `TaskStatistics`)."""

    __slots__ = (
        "backoff",
        "base_headers",
        "cap",
        "catchup",
        "cursor",
        "dispatch_scope",
        "dormant",
        "errors",
        "fire_once",
        "fired",
        "idem_base",
        "in_flight",
        "jitter",
        "keep",
        "last_counted_late",
        "last_fire",
        "last_lateness",
        "lease_losses",
        "lock_misses",
        "misfired",
        "next_fire",
        "nursery",
        "overlap",
        "park",
        "parking",
        "pause",
        "period",
        "retry_at",
        "skipped",
        "slack_ms",
        "stopping",
        "takeovers",
        "task",
        "triggered",
        "ttl",
        "wm_name",
    )

    def __init__(
        self,
        parking: Parking,
        task: Task,
        ttl: float,
        prefix: str,
        grace: float,
        window: float,
        instance: str,
    ) -> None:
        self.parking = parking
        self.task = task
        # Per-task constants of the hot path, computed once.
        self.ttl = ttl
        # L6: how long an occurrence's record is kept: its lease, then `window` (the
        # dispatch timeout and the dedupe window: the record outlives every lease).
        self.keep = ttl + window
        # D10: an occurrence this close below the watermark is left to its record.
        self.slack_ms = max(0, int((self.keep - grace) * 1000))
        self.wm_name = _plan.watermark_name(prefix, task.name)
        self.idem_base = task.idempotency_key if task.idempotency_key is not None else task.name
        # Whether a late occurrence may still fire (fire_once, fire_all), and a fire_all
        # task's catch-up window (seconds) and cap (P5); jitter in seconds (P6).
        self.fire_once = task.policy is not MisfirePolicy.SKIP
        self.catchup = task.catchup_seconds
        self.cap = task.max_catchup
        self.jitter = task.jitter_seconds
        self.overlap = task.overlap_policy  # O12
        self.period = _period_hint(task)  # orders a large burst (D5)
        self.base_headers = {
            **task.headers,
            H_TASK: task.name,
            H_TRIGGER: "schedule",
            H_INSTANCE: instance,
        }
        self.stopping = False
        # D3: where the loop is (kept while it is dormant) and, while it is dormant,
        # the wall-clock instant of its wake-up (its group in `Parking`).
        # The cursor: the next nominal instant to consider (None until started, D2),
        # when to retry it after a transient error, and the backoff of the next retry.
        self.cursor: datetime | None = None
        self.retry_at: float | None = None
        self.backoff = 0.0
        self.dormant: float | None = None
        self.dispatch_scope: trio.CancelScope | None = None
        self.park: Park | None = None
        self.in_flight: InFlight | None = None
        self.nursery: trio.Nursery | None = None
        self.next_fire: datetime | None = None
        self.last_fire: datetime | None = None
        self.last_lateness: float | None = None
        self.last_counted_late: datetime | None = None
        self.fired = self.triggered = self.skipped = self.misfired = 0
        self.lock_misses = self.lease_losses = self.errors = self.takeovers = 0
        # O15: the task's pause record as this instance last saw it (its own pause and
        # resume calls, and the answers of its lock requests); None: not paused.
        self.pause: Paused | None = None

    def delay_of(self, nominal: datetime) -> float:
        """The jitter delay of the occurrence at `nominal` (P6 of `_plan`): 0 without
        jitter; cut to end before the next occurrence."""
        if not self.jitter:
            return 0.0
        gap = (self.task.cron.next_after(nominal) - nominal).total_seconds()
        return _plan.jitter_delay(self.task.name, _plan.epoch_ms(nominal), self.jitter, gap)

    def stop(self) -> None:
        """Stop waiting at once (D11); a dispatch in flight is left to finish."""
        self.stopping = True
        if self.dormant is not None:
            self.parking.cancel_dormant(self)
        park = self.park
        if park is not None and not park.abandoned and park.phase in WAITING:
            # Wake the parked loop directly instead of through a cancel scope: a scope
            # per occurrence costs more than the rest of the wake-up (D7). A park in its
            # burst's enqueue is left to finish: the batch settles it (D6).
            if park.phase is Phase.TIMER and park.handle is not None:
                park.handle.cancel()
            park.abandoned = True  # an in-flight batch releases a lease it gets (D9)
            park.phase = Phase.DONE

    def snapshot(self) -> TaskStatistics:
        return TaskStatistics(
            name=self.task.name,
            next_fire=self.next_fire,
            last_fire=self.last_fire,
            fired=self.fired,
            triggered=self.triggered,
            skipped=self.skipped,
            misfired=self.misfired,
            lock_misses=self.lock_misses,
            lease_losses=self.lease_losses,
            errors=self.errors,
            last_lateness=self.last_lateness,
            takeovers=self.takeovers,
            paused=self.pause is not None,
            paused_since=self.pause.since if self.pause is not None else None,
            paused_by=self.pause.by if self.pause is not None else None,
            paused_reason=self.pause.reason if self.pause is not None else None,
        )


@final
class Park:
    """One occurrence a loop waits for: timer, then decision, then batched acquire.

    One park serves a loop for many occurrences when the burst's batch moves the loop
    on (D6, `arm`): a long-lived object reused instead of a new one per fire keeps the
    garbage collector's old generation from growing with every burst.
    """

    __slots__ = (
        "abandoned",
        "acquired_at",
        "backfill",
        "decision",
        "delay",
        "due_ts",
        "duplicate",
        "error",
        "expires",
        "handle",
        "headers",
        "idem",
        "info",
        "job_id",
        "key",
        "lease",
        "loop",
        "manual",
        "nominal",
        "nominal_ts",
        "phase",
        "result",
        "settled",
        "skip_reason",
        "slack_ms",
        "taken_over",
    )

    def __init__(
        self, loop: Loop, nominal: datetime, nominal_ts: float, delay: float = 0.0
    ) -> None:
        self.loop = loop
        # The job headers that do not depend on the lease (`Scheduler._prepare`); the
        # Job copies them, so the same dict serves every occurrence of this park.
        self.headers = loop.base_headers.copy()
        self.abandoned = False
        self.arm(nominal, nominal_ts, delay)
        self.acquired_at = 0.0
        self.expires = 0.0  # Trio time its lease runs out unrenewed
        # Made while the loop waits, off the critical path of a burst (`_prepare`);
        # valid when the decision fires `nominal` itself (on time), rebuilt otherwise.
        self.key = ""
        self.slack_ms = 0  # of the lock request (D10): none for a late occurrence
        self.info: Nominal | None = None
        self.idem = ""
        self.job_id = ""
        # D12: a park of its own for an occurrence this instance took over (not the
        # loop's park: the loop went on to its next occurrence meanwhile).
        self.taken_over = False
        # O8: a manual trigger's occurrence, also not the loop's park; `settled` is set
        # once its outcome is in `result` (the job, or the error).
        self.manual = False
        self.settled: trio.Event | None = None
        self.result: Job | Exception | None = None
        # O14: a backfill's occurrence (detached too); `duplicate` once its enqueue met
        # its job already there (`ConflictError`).
        self.backfill = False
        self.duplicate = False

    @property
    def detached(self) -> bool:
        """Not its loop's own park (a takeover, a trigger or a backfill): its outcome
        does not move the loop."""
        return self.taken_over or self.manual or self.backfill

    @property
    def ttl(self) -> float:
        """The lock TTL of its task (what its lease guard renews it for)."""
        return self.loop.ttl

    def arm(self, nominal: datetime, nominal_ts: float, delay: float = 0.0) -> None:
        """Make this park wait for the occurrence at `nominal`: a new park, or a settled
        one reused for the loop's next occurrence (D6). It is due `delay` seconds after
        the nominal instant (its jitter, P6 of `_plan`), at ``due_ts``."""
        self.nominal = nominal
        self.nominal_ts = nominal_ts
        self.delay = delay
        self.due_ts = nominal_ts + delay
        self.handle: TimerHandle | None = None
        self.phase = Phase.TIMER
        self.decision: _plan.Decision | None = None
        self.lease: LockLease | None = None
        self.error: Exception | None = None
        # Why an acquired (or refused) occurrence is skipped without a dispatch:
        # ``paused`` (O15) or ``overlap`` (O12); None otherwise.
        self.skip_reason: str | None = None

    def leased(self, lease: LockLease | None, acquired_at: float) -> None:
        """The answer of its lock request, sent at `acquired_at` (Trio time): its lease
        (None: not granted) runs out unrenewed a TTL after the request was sent."""
        self.lease = lease
        self.acquired_at = acquired_at
        self.expires = acquired_at + self.loop.ttl


@final
class InFlight:
    """The dispatch a loop is running, for reporting if its scope gets cancelled."""

    __slots__ = ("decision", "delay", "guard", "nominal")

    def __init__(self, decision: _plan.Decision, guard: LeaseGuard, delay: float = 0.0) -> None:
        self.decision = decision
        self.guard = guard
        self.nominal = decision.nominal
        self.delay = delay  # its jitter (P6 of `_plan`)


def _period_hint(task: Task) -> float:
    """About how often `task` fires, in seconds, from the shape of its schedule (no
    search): its ``@every`` interval, else the unit of its finest field with more than
    one value (1 s, 1 min, 1 h), else a day. Orders a large burst, shortest first (D5)."""
    schedule = task.cron
    if schedule.interval is not None:
        return schedule.interval.total_seconds()
    for index, unit in ((SECOND, 1.0), (MINUTE, 60.0), (HOUR, 3600.0)):
        if len(schedule.fields[index].values) > 1:
            return unit
    return 86_400.0


class Nominal(NamedTuple):
    utc: datetime
    ms: int
    iso: str
