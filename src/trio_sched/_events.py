"""Observability values: `SchedulerEvent`, `TaskStatistics`, `SchedulerStatistics`.

Rules:
- E1 Event kinds: ``fired`` (a job was dispatched; ``manual`` for `trigger`),
  ``skipped`` (an occurrence was not dispatched on purpose: ``reason`` is ``"misfire"``
  for the skip policy or ``"lock_held"`` when another instance holds it or its
  watermark already passed it), ``missed`` (an occurrence was reached late, O6; the
  skip or fire_once decision follows as its own event), ``lease_lost`` (O5),
  ``takeover`` (this instance took over an occurrence whose holder let its lease run
  out undispatched, D12: ``taken_over`` is the old lease's token, ``token`` the new
  one; its ``fired``, ``skipped`` or ``lease_lost`` event follows) and ``error`` (a
  backend or runtime failure; ``error`` holds the exception). ``instance`` is
  `Config.instance` of the scheduler that emitted it.
- E2 Times: ``nominal`` is the occurrence's nominal instant (aware, UTC);
  ``lateness`` is seconds between ``nominal`` and, for ``fired``, the moment its
  enqueue returned; for the others, the moment the scheduler read the wall clock to
  decide (None where it does not apply).
- E3 Every value here is frozen: a statistics record is a snapshot.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:  # only for annotations: importing the jobs package pulls in Trio
    from trio_sched.jobs._job import Job

__all__ = ["EventKind", "SchedulerEvent", "SchedulerStatistics", "TaskStatistics"]


@final
class EventKind(enum.Enum):
    """The kind of a `SchedulerEvent` (rule E1)."""

    FIRED = "fired"
    SKIPPED = "skipped"
    MISSED = "missed"
    LEASE_LOST = "lease_lost"
    TAKEOVER = "takeover"
    ERROR = "error"


@final
@dataclass(frozen=True, slots=True)
class SchedulerEvent:
    """Something that happened to one occurrence of one task (rules E1, E2)."""

    kind: EventKind
    task: str
    nominal: datetime | None = None
    lateness: float | None = None
    error: BaseException | None = None
    reason: str | None = None
    job: Job | None = None
    manual: bool = False
    instance: str | None = None
    token: str | None = None
    taken_over: str | None = None


@final
@dataclass(frozen=True, slots=True)
class TaskStatistics:
    """Counters of one registered task since it was registered (a snapshot).

    ``fired`` counts scheduled occurrences this instance dispatched, ``triggered``
    manual triggers; ``misfired`` counts misfire decisions (each covers every late
    occurrence up to the latest one), ``skipped`` the ones the skip policy dropped;
    ``lock_misses`` occurrences another instance (or the watermark) already had;
    ``takeovers`` occurrences this instance took over from a holder whose lease ran
    out undispatched (D12; each also counts as the lock miss it first was).
    ``last_lateness`` is the lateness of the last fired occurrence, seconds.
    ``skipped`` also counts occurrences skipped because the task was paused (O15) or
    its previous job still ran (O12), each reported with its reason. ``paused`` and
    the ``paused_*`` fields are the task's pause record as this instance last saw it
    (its own `Scheduler.pause`/`resume` calls and its lock requests' answers);
    `Scheduler.task_status` reads the shared record itself.
    """

    name: str
    next_fire: datetime | None
    last_fire: datetime | None
    fired: int
    triggered: int
    skipped: int
    misfired: int
    lock_misses: int
    lease_losses: int
    errors: int
    last_lateness: float | None
    takeovers: int = 0
    paused: bool = False
    paused_since: datetime | None = None
    paused_by: str | None = None
    paused_reason: str | None = None


@final
@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    """A snapshot of a `Scheduler`.

    ``state`` is one of ``"new"``, ``"running"``, ``"stopping"``, ``"closed"``.
    ``timer_lag`` is how late (seconds) the shared timer task woke on its last wake-up
    with due work and ``timer_lag_max`` the worst since start: the scheduler's loop lag.
    ``events_dropped`` counts events not delivered to a full `Scheduler.events` channel.
    """

    state: str
    tasks: Mapping[str, TaskStatistics]
    timer_lag: float
    timer_lag_max: float
    in_flight_dispatches: int
    events_dropped: int
