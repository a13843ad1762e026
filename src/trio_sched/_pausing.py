"""Pause and resume (O15): the task's pause record, kept by the coordination backend.

Rules:
- U1 A pause is a record next to the task's watermark in the lock provider (rule L9 of
  `trio_sched.locks`): `Scheduler.pause` returns once it is stored. From then on every
  lock request for an occurrence of the task, by any instance sharing the backend, is
  answered *paused*: the occurrence is skipped (reason ``paused``, counted in
  ``skipped``) and nothing is made for it. The delay is the request itself: no instance
  polls or caches the state, so none can dispatch an occurrence whose lock it asks for
  after the pause, and occurrences whose lock was granted before it are dispatched.
- U2 `Scheduler.resume` deletes the record; the next occurrence fires as usual. The
  occurrences skipped while paused are not fired (like a suspended CronJob), except for
  a ``fire_all`` task: the resuming instance backfills (O14) those inside its
  ``catchup_window``, at most ``max_catchup`` (the newest), since the pause began.
- U3 `Task(paused=True)` stores a pause (reason ``registered paused``) when its loop
  starts, on every instance that registers it so, before its first lock request; a
  later `resume` holds until an instance registers it paused again.
- U4 `Scheduler.task_status` reads the shared record and watermark (one round trip
  each); ``statistics()`` shows what this instance last saw (its own calls and its lock
  requests' answers).
- U5 Pausing needs a provider that is a `PauseStore` (memory, Redis, PostgreSQL): a task
  registered paused on another provider is a `ValidationError` naming ``paused``;
  `pause`/`resume` there raise `InvalidArgumentError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, final

from trio_sched import _plan
from trio_sched._config import Config
from trio_sched._errors import InvalidArgumentError
from trio_sched._task import MisfirePolicy
from trio_sched.locks._protocol import LockProvider, Paused, PauseStore

if TYPE_CHECKING:
    from trio_sched._loop import Loop
    from trio_sched._requested import BackfillResult, Requested

__all__ = ["REGISTERED_PAUSED", "Pausing", "TaskStatus"]

REGISTERED_PAUSED: Final = "registered paused"


@final
@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A task's shared state, read from the coordination backend (U4): its pause record
    (``paused`` with when, by which instance and why) and its watermark
    (``last_dispatched``: the nominal instant of the last dispatched occurrence, or
    ``None`` if none was recorded)."""

    name: str
    paused: bool
    paused_since: datetime | None
    paused_by: str | None
    paused_reason: str | None
    last_dispatched: datetime | None


@final
class Pausing:
    """The scheduler's pause and resume calls (U1-U5)."""

    def __init__(self, locks: LockProvider, config: Config, requested: Requested) -> None:
        self._locks = locks
        self._config = config
        self._requested = requested

    @property
    def supported(self) -> bool:
        return isinstance(self._locks, PauseStore)

    def _store(self) -> PauseStore:
        locks = self._locks
        if not isinstance(locks, PauseStore):
            raise InvalidArgumentError(
                f"{type(locks).__name__} keeps no pause records (it is not a PauseStore)"
            )
        return locks

    def record(self, reason: str | None) -> Paused:
        # Floored to the millisecond, as the store keeps it (L9), so `Loop.pause` and the
        # stored record are equal.
        since = _plan.from_epoch_ms(_plan.epoch_ms(self._config.wall_clock()))
        return Paused(since=since, by=self._config.instance, reason=reason)

    async def pause(self, loop: Loop, reason: str | None) -> Paused:
        """U1. A checkpoint; cancelled, the record may or may not be stored."""
        if reason is not None and not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a str or None, got {reason!r}")
        record = self.record(reason)
        await self._store().set_paused({loop.wm_name: record})
        loop.pause = record
        return record

    async def pause_registered(self, loops: list[Loop]) -> None:
        """U3: store the pause of the loops registered with ``paused=True``."""
        if loops:
            record = self.record(REGISTERED_PAUSED)
            await self._store().set_paused({loop.wm_name: record for loop in loops})
            for loop in loops:
                loop.pause = record

    async def resume(self, loop: Loop, running: bool) -> BackfillResult | None:
        """U2. Returns what the catch-up of a ``fire_all`` task dispatched (when the
        scheduler runs), else None. A checkpoint; cancelled, the record may or may not
        be deleted, and a catch-up is left as `Requested.backfill` leaves it."""
        store = self._store()
        was = (await store.get_paused([loop.wm_name])).get(loop.wm_name)
        await store.set_paused({loop.wm_name: None})
        loop.pause = None
        task = loop.task
        if was is None or not running or task.policy is not MisfirePolicy.FIRE_ALL:
            return None
        now = self._config.wall_clock()
        start = max(was.since, now - timedelta(seconds=task.catchup_seconds))
        if start >= now:
            return None
        # The newest max_catchup occurrences since the pause began, oldest first.
        nominals: list[datetime] = []
        for t in task.cron.iter_before(now):
            if t < start or len(nominals) == task.max_catchup:
                break
            nominals.append(t)
        nominals.reverse()
        return await self._requested.backfill(loop, nominals)

    async def status(self, loop: Loop) -> TaskStatus:
        """U4. A checkpoint."""
        record = None
        if isinstance(self._locks, PauseStore):
            record = (await self._locks.get_paused([loop.wm_name])).get(loop.wm_name)
        marks = await self._locks.get_watermarks([loop.wm_name])
        mark = marks.get(loop.wm_name)
        return TaskStatus(
            name=loop.task.name,
            paused=record is not None,
            paused_since=record.since if record is not None else None,
            paused_by=record.by if record is not None else None,
            paused_reason=record.reason if record is not None else None,
            last_dispatched=_plan.from_epoch_ms(mark) if mark is not None else None,
        )
