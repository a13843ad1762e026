"""Takeover: an occurrence whose holder fails is dispatched by another instance (rule
D12 of `_runtime`).

- T1 A burst's ``acquire_batch`` answers `Held` for an occurrence another instance
  leased and has not dispatched yet (rule L6 of the lock protocol). The burst counts it
  as a lock miss, as before, and moves the loop on; the occurrence is also *watched*: a
  watch is due once the holder's lease runs out (``Held.expires_in`` after the answer,
  on this instance's clock, plus `_MARGIN`). Watches due together share one timer
  entry and are asked for again with one ``acquire_batch`` call.
- T2 Asked again, a watched occurrence is ``None`` (dispatched by its holder, or
  its watermark passed it: done), `Held` again (the holder renewed its lease: watched
  again) or a lease: the holder let it run out undispatched and this instance took the
  occurrence over (rule L7). A takeover is reported (``takeover`` event with the old
  and new token, `TaskStatistics.takeovers`) and dispatched with a burst of its own,
  by the burst's path (`Burst.dispatch_taken_over`), under its own lease guard.
- T3 The misfire policy applies from the occurrence's nominal instant (O6): reached
  within ``misfire_grace`` it fires; later, ``fire_once`` fires it (it is the one
  missed occurrence of its holder; reported ``missed`` first) and ``skip`` skips it
  (``missed`` and ``skipped``, and it is marked dispatched so nobody else takes it
  over again). So with the default ``skip`` policy a takeover fires only when
  ``misfire_grace`` exceeds the lease TTL.
- T4 A watch ends when its loop stops (unregister, stop), on an error that is not
  transient (reported), or once its record could be gone: watches are asked for only
  within the task's record memory (``lock_ttl + dispatch_timeout + dedupe_window``)
  after the first answer, so a record whose memory ended is never mistaken for a free
  occurrence. Transient errors are retried with ``retry_backoff`` inside that bound.
- T5 A stop drops every watch: the instances still running keep theirs.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Final, final

import trio

from trio_sched import _plan
from trio_sched._config import Config
from trio_sched._errors import is_transient
from trio_sched._events import EventKind
from trio_sched._loop import Loop, Park, Phase
from trio_sched._parking import Parking
from trio_sched._reporting import Reporter
from trio_sched._timer import TimerHandle, TimerHeap
from trio_sched.locks._protocol import AcquireRequest, Held, LockLease, LockProvider, Paused

if TYPE_CHECKING:
    from trio_sched._burst import Burst

__all__ = ["Takeovers"]

# T1: a watch is asked for again this long after the holder's lease should have run out
# (this instance's clock may run slightly ahead of the backend's).
_MARGIN: Final = 0.005


@final
class _Watch:
    __slots__ = ("give_up_at", "loop", "nominal")

    def __init__(self, loop: Loop, nominal: datetime, give_up_at: float) -> None:
        self.loop = loop
        self.nominal = nominal
        self.give_up_at = give_up_at  # Trio time: the record may be gone after it (T4)


@final
class Takeovers:
    """The watched occurrences of one scheduler, and their takeovers (T1-T5)."""

    def __init__(
        self,
        *,
        timer: TimerHeap,
        locks: LockProvider,
        config: Config,
        reporter: Reporter,
        parking: Parking,
    ) -> None:
        self._timer = timer
        self._locks = locks
        self._config = config
        self._reporter = reporter
        self._parking = parking
        self._burst: Burst | None = None  # set once both exist (`bind`)
        self._due: dict[float, list[_Watch]] = {}  # Trio time -> watches due then
        self._handles: dict[float, TimerHandle] = {}
        self.services: trio.Nursery | None = None  # set by the scheduler while it runs
        self.watching = 0  # watches waiting for their instant

    def bind(self, burst: Burst) -> None:
        self._burst = burst

    def watch(self, loop: Loop, nominal: datetime, held: Held, give_up_at: float) -> None:
        """Watch the occurrence of `loop` at `nominal`, which `held` answered (T1); not
        a checkpoint."""
        due = trio.current_time() + max(0.0, held.expires_in) + _MARGIN
        self._add(_Watch(loop, nominal, give_up_at), due)

    def _add(self, watch: _Watch, due: float) -> None:
        if watch.loop.stopping or due > watch.give_up_at or self.services is None:
            return  # T4, T5
        # Rounded to the millisecond: watches from one burst share one entry (T1).
        due = round(due, 3)
        group = self._due.get(due)
        if group is None:
            group = self._due[due] = []
            self._handles[due] = self._timer.call_at(due, functools.partial(self._fire, due))
        group.append(watch)
        self.watching += 1

    def stop(self) -> None:
        """Drop every watch (T5); not a checkpoint."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._due.clear()
        self.watching = 0

    def _fire(self, due: float) -> None:
        self._handles.pop(due, None)
        group = self._due.pop(due, [])
        self.watching -= len(group)
        group = [watch for watch in group if not watch.loop.stopping]
        burst = self._burst
        if not group or self.services is None or burst is None:
            return
        burst.batches.enter()
        self.services.start_soon(self._ask_again, group, burst)

    async def _ask_again(self, group: list[_Watch], burst: Burst) -> None:
        """T2: one ``acquire_batch`` for the watches due together, then dispatch what
        was taken over."""
        try:
            await self._ask(group, burst)
        finally:
            burst.batches.leave()

    async def _ask(self, group: list[_Watch], burst: Burst) -> None:
        parking = self._parking
        requests: list[AcquireRequest] = []
        for watch in group:
            loop = watch.loop
            info = parking.nominal(watch.nominal)
            key = parking.occurrence_key(loop, info)
            requests.append(
                AcquireRequest(key, loop.ttl, loop.wm_name, info.ms, loop.slack_ms, loop.keep)
            )
        started = trio.current_time()
        try:
            answers = await burst.acquire_batch(requests)
        except Exception as exc:
            for watch in group:
                self._reporter.error(watch.loop, watch.nominal, exc)
                if is_transient(exc):
                    self._add(watch, trio.current_time() + self._config.retry_backoff)
            return
        now = self._config.wall_clock()
        taken: list[Park] = []
        for watch, answer in zip(group, answers, strict=True):
            if isinstance(answer, Held):
                self.watch(watch.loop, watch.nominal, answer, watch.give_up_at)
            elif isinstance(answer, LockLease):
                park = self._taken_over(watch, answer, started, now)
                if park is not None:
                    taken.append(park)
            elif isinstance(answer, Paused):
                # Paused meanwhile (O15): a paused task's occurrences are not taken over.
                # Whether its holder dispatched it is not known, so nothing is reported.
                watch.loop.pause = answer
            # None: dispatched by its holder, or its watermark passed it (T2).
        if taken:
            await burst.dispatch_taken_over(taken, started)

    def _taken_over(
        self, watch: _Watch, lease: LockLease, started: float, now: datetime
    ) -> Park | None:
        """Report a takeover and decide it by the misfire policy (T3): the park to
        dispatch, or ``None`` when the policy skips it."""
        loop = watch.loop
        task = loop.task
        nominal = watch.nominal
        # Judged from its jittered instant (P6 of `_plan`), like any occurrence.
        delay = loop.delay_of(nominal)
        lateness = (now - nominal).total_seconds() - delay
        loop.takeovers += 1
        self._config.logger.warning(
            "task %r: took over occurrence %s (lease %s ran out undispatched), %.3fs late",
            task.name,
            nominal.isoformat(),
            lease.taken_over,
            lateness,
        )
        self._reporter.emit(
            EventKind.TAKEOVER,
            task.name,
            nominal,
            lateness,
            token=lease.token,
            taken_over=lease.taken_over,
        )
        late = lateness > self._config.misfire_grace
        park = Park(loop, nominal, nominal.timestamp(), delay)
        park.taken_over = True
        self._parking.prepare(park, nominal, late=late)
        park.leased(lease, started)
        park.phase = Phase.DISPATCHING
        if late:
            loop.misfired += 1
            self._reporter.emit(EventKind.MISSED, task.name, nominal, lateness)
            if not loop.fire_once or (loop.catchup and lateness > loop.catchup):
                self._reporter.skipped(loop, nominal, lateness, "misfire")
                park.phase = Phase.DONE
                assert self._burst is not None
                self._burst.outcomes.settled_taken_over(park)
                return None
        park.decision = _plan.Decision(
            _plan.Action.FIRE, nominal, lateness, nominal if late else None
        )
        return park
