"""Where loops wait: parks on the shared timer, dormancy, the start (rules D1, D3, D2, D4
of `_runtime`).

`Parking` puts each loop on its next occurrence (`next_park`: a `Park` on the timer,
loops due at one instant sharing one entry) or lets it go dormant (one timer entry that
hands it to the waker 2 s ahead), records the outcome of a decided occurrence
(`settle`) and moves the loop on (`move_on`). It also starts the loops (the starter
task: watermarks 500 tasks per call, then the first park) and collects what the timer
found due (`take_due`) for the burst. No Trio task per loop: a waiting loop is data.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Final, TypeVar, final

import trio

from trio_sched import _plan
from trio_sched._config import Config
from trio_sched._errors import is_transient
from trio_sched._events import EventKind
from trio_sched._loop import H_NOMINAL, H_OCCURRENCE, Loop, Nominal, Park
from trio_sched._reporting import Reporter
from trio_sched._timer import TimerHeap
from trio_sched.locks._protocol import LockProvider

__all__ = ["Parking"]

_T = TypeVar("_T")

# D3: a loop whose next occurrence is more than _DORMANT_AFTER seconds away (wall clock)
# goes dormant and is parked again _WAKE_AHEAD seconds before the occurrence.
_DORMANT_AFTER: Final = 5.0
_WAKE_AHEAD: Final = 2.0
# Derived forms (epoch ms, ISO text) of recent nominal instants: every task due at the
# same instant shares one entry.
_NOMINAL_CACHE: Final = 4096
# D2, D4: loops are started and woken this many at a time (then a yield).
START_CHUNK: Final = 500


@final
class Parking:
    """The waiting side of a scheduler's loops (D1, D3, D2, D4)."""

    def __init__(
        self, timer: TimerHeap, locks: LockProvider, config: Config, reporter: Reporter
    ) -> None:
        self._timer = timer
        self._locks = locks
        self._config = config
        self._reporter = reporter
        self._wall_clock = config.wall_clock
        self._prefix = config.lock_key_prefix
        # Set by the scheduler while it runs (None otherwise).
        self.services: trio.Nursery | None = None
        self.loops_nursery: trio.Nursery | None = None
        self._due: list[Park] = []  # what the timer found due, for the burst
        self._nominals: dict[datetime, Nominal] = {}
        self._park_groups: dict[float, list[Park]] = {}
        # D3: dormant loops by wake-up instant (wall clock), one timer entry each.
        self._dormant_groups: dict[float, dict[Loop, None]] = {}
        # Loops registered and not started yet, and the task starting them (D2).
        self._to_start: list[Loop] = []
        self._starter: trio.CancelScope | None = None
        # U3 of `_pausing`: stores the pause of loops registered paused (set by the
        # scheduler), called by the starter before they are parked.
        self.pause_registered: Callable[[list[Loop]], Awaitable[None]] | None = None
        # Dormant loops whose wake-up came, and whether the task parking them runs (D4).
        self._waking: list[Loop] = []
        self._waker_running = False

    def take_due(self) -> list[Park]:
        """The parks the timer found due since the last call (D5); not a checkpoint."""
        due, self._due = self._due, []
        return due

    def stop_starting(self) -> None:
        """A stop: loops not started yet never start (D11, D2)."""
        if self._starter is not None:
            self._starter.cancel()

    def next_park(
        self,
        loop: Loop,
        reuse: Park | None = None,
    ) -> Park | None:
        """Park the loop on the occurrence at its cursor, or, when that occurrence is far
        enough off, let the loop go dormant (D3: the park is dropped and ``None``
        returned); not a checkpoint. The loop waits detached (D6): called by the
        loop's task before it ends, by a burst's batch for a loop whose outcome it
        settled and by the dormancy wake-up, so no Trio task runs for a waiting loop.
        """
        cursor = loop.cursor
        assert cursor is not None  # set when the loop was started (D2)
        loop.next_fire = cursor
        nominal_ts = cursor.timestamp()
        delay = loop.delay_of(cursor) if loop.jitter else 0.0
        due_ts = nominal_ts + delay
        retry_at = loop.retry_at
        if retry_at is None and (
            due_ts - (trio.current_time() + self._timer.wall_offset()) > _DORMANT_AFTER
        ):
            # A heuristic distance through the timer's cached wall offset (no wall-clock
            # read per occurrence).
            loop.park = None
            self._go_dormant(loop, due_ts)
            return None
        loop.retry_at = None
        if reuse is None:
            park = Park(loop, cursor, nominal_ts, delay)
        else:
            park = reuse
            park.arm(cursor, nominal_ts, delay)
        self.prepare(park, cursor)
        loop.park = park
        if retry_at is None:
            # Loops due at the same instant share one timer entry (one heap operation
            # per instant, not per loop); an abandoned park is skipped when it fires.
            group = self._park_groups.get(due_ts)
            if group is None:
                group = self._park_groups[due_ts] = []
                due_group = functools.partial(self._park_group_due, due_ts)
                self._timer.call_at_wall(due_ts, due_group)
            group.append(park)
        else:
            park.handle = self._timer.call_at(retry_at, functools.partial(self.on_due, park))
        return park

    def settle(self, loop: Loop, park: Park) -> bool:
        """Record the decided outcome of `park` and move the cursor on; not a checkpoint.

        Returns True when the occurrence is to be dispatched under ``park.lease`` (the
        caller then moves the cursor once the dispatch ended). Skips, lock misses and
        acquire errors are settled here, whoever runs it (the loop or the batch).
        """
        decision = park.decision
        assert decision is not None
        task = loop.task
        if decision.first_late is not None:
            self._reporter.misfire(loop, decision)
        if decision.action is _plan.Action.SKIP:
            self._reporter.skipped(loop, decision.nominal, decision.lateness, decision.reason)
            loop.cursor = task.cron.next_after(decision.nominal)
            return False
        if park.error is not None:
            self._reporter.error(loop, decision.nominal, park.error, lateness=decision.lateness)
            if is_transient(park.error):
                # O7: same occurrence again after a pause; decide() re-judges it.
                loop.retry_at = trio.current_time() + loop.backoff
                loop.backoff = min(loop.backoff * 2, self._config.retry_backoff_max)
                loop.cursor = decision.nominal
            else:
                loop.cursor = task.cron.next_after(decision.nominal)
            return False
        loop.backoff = self._config.retry_backoff
        if park.skip_reason is not None:
            # Paused (O15) or an overlap (O12): decided, nothing dispatched.
            self._reporter.skipped(loop, decision.nominal, decision.lateness, park.skip_reason)
            loop.cursor = task.cron.next_after(decision.nominal)
            return False
        if park.lease is None:
            loop.lock_misses += 1
            self._reporter.emit(
                EventKind.SKIPPED,
                task.name,
                decision.nominal,
                decision.lateness,
                reason="lock_held",
            )
            loop.cursor = task.cron.next_after(decision.nominal)
            return False
        return True

    def move_on(self, park: Park) -> None:
        """After `park` was settled outside its loop's task (D6): park the loop on its
        next occurrence, or let it go dormant or stop; no Trio task is needed."""
        loop = park.loop
        if park.abandoned:
            return  # stopped: nothing more for this loop
        if loop.stopping:
            loop.park = None
            return
        self.next_park(loop, park)

    def prepare(self, park: Park, nominal: datetime, *, late: bool = False) -> None:
        """Lock request and lease-independent job parts of the occurrence at `nominal`.

        The request carries the watermark slack of rule D10 unless the occurrence is late.
        """
        loop = park.loop
        info = park.info = self.nominal(nominal)
        key = park.key = self.occurrence_key(loop, info)
        park.slack_ms = 0 if late else loop.slack_ms
        idem = park.idem = f"{loop.idem_base}:{info.ms}"
        park.job_id = _plan.job_id(idem)
        headers = park.headers
        headers[H_OCCURRENCE] = key
        headers[H_NOMINAL] = info.iso

    def occurrence_key(self, loop: Loop, info: Nominal) -> str:
        """The lock key of the occurrence of `loop` at `info` (O2; `_plan.occurrence_key`
        from the cached epoch ms)."""
        return f"{self._prefix}:{loop.task.name}:{info.ms}"

    def _go_dormant(self, loop: Loop, due_ts: float) -> None:
        """D3: the occurrence at the cursor is far off (`next_park` found): the loop
        joins the dormant group of its wake-up instant, `_WAKE_AHEAD` seconds before the
        occurrence. Loops waking at the same instant share one timer entry, so a dormant
        loop costs no timer handle, heap entry or callback object of its own (fewer
        objects for the garbage collector to walk: rule D4)."""
        wake_at = due_ts - _WAKE_AHEAD
        group = self._dormant_groups.get(wake_at)
        if group is None:
            group = self._dormant_groups[wake_at] = {}
            self._timer.call_at_wall(wake_at, functools.partial(self._dormant_group_due, wake_at))
        group[loop] = None
        loop.dormant = wake_at

    def cancel_dormant(self, loop: Loop) -> None:
        """A dormant loop stops (D11): it leaves its group at once (O(1)), so an
        unregistered task is not kept until its wake-up instant."""
        wake_at = loop.dormant
        if wake_at is not None:
            loop.dormant = None
            group = self._dormant_groups.get(wake_at)
            if group is not None:
                group.pop(loop, None)

    def _dormant_group_due(self, wake_at: float) -> None:
        """Timer callback of one wake-up instant (D3): queue its loops for the waker
        task, which parks them again without a Trio task each (D6), a chunk per step
        (D4)."""
        group = self._dormant_groups.pop(wake_at, None)
        if not group:
            return
        running = self.services is not None  # not running: nothing to wake for (D11)
        for loop in group:
            loop.dormant = None
            if running and not loop.stopping:
                self._waking.append(loop)
        if self._waking and not self._waker_running:
            assert self.services is not None
            self._waker_running = True
            self.services.start_soon(self._wake_loops, name="trio_sched:wake")

    async def _wake_loops(self) -> None:
        try:
            while self._waking:
                chunk = self._waking[:START_CHUNK]
                del self._waking[:START_CHUNK]
                for loop in chunk:
                    if loop.stopping or loop.park is not None or loop.dormant is not None:
                        continue
                    self.next_park(loop)  # dormant again if the wall clock moved back
                await trio.lowlevel.checkpoint()
        finally:
            self._waker_running = False
            self._waking.clear()

    def _park_group_due(self, due_ts: float) -> None:
        group = self._park_groups.pop(due_ts, ())
        self._due.extend(park for park in group if not park.abandoned)

    def on_due(self, park: Park) -> None:
        # Look up self._due at call time: `take_due` swaps in a fresh list.
        self._due.append(park)

    def nominal(self, nominal: datetime) -> Nominal:
        """Derived forms of a nominal instant, shared by every task due at it."""
        info = self._nominals.get(nominal)
        if info is None:
            if len(self._nominals) >= _NOMINAL_CACHE:
                self._nominals.clear()
            utc = nominal.astimezone(UTC)
            info = Nominal(utc, _plan.epoch_ms(utc), utc.isoformat())
            self._nominals[nominal] = info
        return info

    def start(self, loop: Loop) -> None:
        """Queue `loop` to be started by the starter task (D2); not a checkpoint."""
        self._to_start.append(loop)
        if self._starter is None and self.loops_nursery is not None:
            self._starter = trio.CancelScope()
            self.loops_nursery.start_soon(self._start_loops, name="trio_sched:start")

    async def _start_loops(self) -> None:
        """D2: start the queued loops, ``START_CHUNK`` at a time: one
        ``get_watermarks`` call per chunk, then each loop is parked on its first
        occurrence (or goes dormant) right here, without a Trio task of its own, and
        the task yields before the next chunk, so no step holds the Trio loop long."""
        scope = self._starter
        assert scope is not None
        try:
            with scope:
                while self._to_start:
                    chunk = [loop for loop in self._to_start[:START_CHUNK] if not loop.stopping]
                    del self._to_start[:START_CHUNK]
                    if chunk:
                        await self._pause_registered(chunk)
                        marks = await self._start_watermarks(chunk)
                        self._park_first(chunk, marks)
                    await trio.lowlevel.checkpoint()
        finally:
            self._starter = None
            self._to_start.clear()  # cancelled by a stop: those loops never start

    async def _pause_registered(self, chunk: list[Loop]) -> None:
        """U3: store the pause of the loops of `chunk` registered paused, retried while
        transient; a failure that is not transient is reported and they start as their
        records say."""
        paused = [loop for loop in chunk if loop.task.paused]
        store = self.pause_registered
        if paused and store is not None:
            await self._retried(paused, lambda: store(paused))

    async def _start_watermarks(self, chunk: list[Loop]) -> dict[str, int]:
        """The watermarks of `chunk`, in one call, retried while transient (O7). A
        failure that is not transient starts those loops fresh: no catch-up, and
        nothing fires twice (the O3 locks)."""
        names = [loop.wm_name for loop in chunk]
        marks = await self._retried(chunk, lambda: self._locks.get_watermarks(names))
        return dict(marks) if marks is not None else {}

    async def _retried(self, loops: list[Loop], call: Callable[[], Awaitable[_T]]) -> _T | None:
        """`call`, retried with backoff while it fails transiently (O7), each failure
        reported for every loop of `loops` not stopped meanwhile; None after a failure
        that is not transient."""
        backoff = self._config.retry_backoff
        while True:
            try:
                return await call()
            except Exception as exc:
                for loop in loops:
                    if not loop.stopping:
                        self._reporter.error(loop, None, exc)
                if not is_transient(exc):
                    return None
            await self._timer.sleep_until(trio.current_time() + backoff)
            backoff = min(backoff * 2, self._config.retry_backoff_max)

    def _park_first(self, chunk: list[Loop], marks: Mapping[str, int]) -> None:
        """Give each loop of `chunk` its cursor and park it on its first occurrence."""
        now = self._wall_clock()
        backoff = self._config.retry_backoff
        for loop in chunk:
            if loop.stopping or loop.cursor is not None:
                continue  # unregistered or stopped while its watermark was read
            try:
                loop.backoff = backoff
                loop.cursor = _plan.first_candidate(loop.task.cron, now, marks.get(loop.wm_name))
                self.next_park(loop)
            except Exception as exc:
                # An impossible schedule: that loop ends alone, like a crashed loop.
                self._reporter.crash(loop, exc)
                loop.stop()
