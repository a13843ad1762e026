"""Events, counters and logs of a scheduler's outcomes (`SchedulerEvent`).

- E1 Every outcome is counted on its task's `Loop`, logged on ``Config.logger`` when it
  is a failure or a misfire, and emitted as an event to the ``Config.on_event`` hook
  (synchronously; an exception it raises is logged and ignored) and to every channel
  made by `Scheduler.events` (``send_nowait``: a full channel drops the event and counts
  it in ``dropped``; a closed one is forgotten).
- E2 Nothing is built when nobody listens: `emit` returns at once without a hook or a
  channel (the per-fire path).
- E3 A misfire is counted once: a retry of the same late occurrence (O7) extends the
  misfire already counted instead of counting another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import final

import trio

from trio_sched import _plan
from trio_sched._config import Config
from trio_sched._errors import LeaseLostError
from trio_sched._events import EventKind, SchedulerEvent
from trio_sched._loop import Loop
from trio_sched.jobs._job import Job

__all__ = ["Reporter"]


@final
class Reporter:
    """Counts, logs and emits a scheduler's outcomes (E1-E3)."""

    __slots__ = ("_config", "channels", "dropped")

    def __init__(self, config: Config) -> None:
        self._config = config
        self.channels: list[trio.MemorySendChannel[SchedulerEvent]] = []
        self.dropped = 0  # events not delivered to a full channel

    def crash(self, loop: Loop, exc: Exception) -> None:
        self._config.logger.error("task %r: loop crashed", loop.task.name, exc_info=exc)
        self.error(loop, None, exc)

    def misfire(self, loop: Loop, decision: _plan.Decision) -> None:
        first = decision.first_late
        if first is None:
            return
        covered = loop.last_counted_late
        reach = decision.covers or decision.nominal
        if covered is not None and first <= covered:
            # A retry of a misfire already counted (O7: the loop retries the latest late
            # occurrence, which is late again), or the next step of a catch-up (P5): the
            # same misfire, now reaching further.
            loop.last_counted_late = max(covered, reach)
            return
        loop.last_counted_late = reach
        loop.misfired += 1
        lateness = decision.lateness + (decision.nominal - first).total_seconds()
        self._config.logger.warning(
            "task %r: occurrence %s reached %.3fs late (policy %s)",
            loop.task.name,
            first.isoformat(),
            lateness,
            loop.task.policy.value,
        )
        self.emit(EventKind.MISSED, loop.task.name, first, lateness)

    def skipped(self, loop: Loop, nominal: datetime, lateness: float | None, reason: str) -> None:
        """Count and report an occurrence skipped for `reason` (a misfire, a pause, an
        overlap, the catch-up cap)."""
        loop.skipped += 1
        self.emit(EventKind.SKIPPED, loop.task.name, nominal, lateness, reason=reason)

    def error(
        self,
        loop: Loop,
        nominal: datetime | None,
        error: BaseException,
        *,
        lateness: float | None = None,
        manual: bool = False,
    ) -> None:
        loop.errors += 1
        self._config.logger.error("task %r: %r", loop.task.name, error)
        self.emit(EventKind.ERROR, loop.task.name, nominal, lateness, error=error, manual=manual)

    def dispatch_failure(
        self,
        loop: Loop,
        nominal: datetime,
        error: Exception,
        *,
        lateness: float | None = None,
        manual: bool = False,
    ) -> None:
        if isinstance(error, LeaseLostError):
            loop.lease_losses += 1
            self._config.logger.error("task %r: lease lost mid-dispatch: %r", loop.task.name, error)
            self.emit(
                EventKind.LEASE_LOST, loop.task.name, nominal, lateness, error=error, manual=manual
            )
        else:
            self.error(loop, nominal, error, lateness=lateness, manual=manual)

    def emit(
        self,
        kind: EventKind,
        task: str,
        nominal: datetime | None,
        lateness: float | None,
        *,
        error: BaseException | None = None,
        reason: str | None = None,
        job: Job | None = None,
        manual: bool = False,
        token: str | None = None,
        taken_over: str | None = None,
    ) -> None:
        hook = self._config.on_event
        if hook is None and not self.channels:
            return  # nobody listens: build nothing (hot path)
        event = SchedulerEvent(
            kind=kind,
            task=task,
            nominal=nominal.astimezone(UTC) if nominal is not None else None,
            lateness=lateness,
            error=error,
            reason=reason,
            job=job,
            manual=manual,
            instance=self._config.instance,
            token=token,
            taken_over=taken_over,
        )
        if hook is not None:
            try:
                hook(event)
            except Exception:
                self._config.logger.exception("on_event hook raised; ignored")
        for channel in tuple(self.channels):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.channels.remove(channel)
