"""One timer task over a heap of deadlines.

Thousands of tasks each doing ``trio.sleep_until`` on the same instant wake slowly:
every wake is a cancellation. Here a single timer task sleeps until the earliest
deadline, pops every due entry at once and runs their callbacks synchronously, so one
cancellation wakes any number of waiters.

Rules:
- R1 Deadlines are on Trio's clock. An entry made with `TimerHeap.call_at_wall` is
  anchored to a *wall-clock* instant (epoch seconds): its Trio deadline is derived from
  the current offset between the wall clock and Trio's clock and is recomputed when
  that offset moves (a suspended laptop, an NTP step), which the timer checks every
  ``clock_check_interval`` seconds.
- R2 Callbacks run inside the timer task, in deadline order, and must not block or
  raise; after each pass that ran callbacks, ``on_pass_end`` runs once, so a caller can
  batch everything that became due together.
- R3 Cancelling an entry is O(1) (lazy deletion); the heap is rebuilt when more than
  half of it is cancelled entries.
- R4 `TimerHeap.sleep_until` parks the calling task on the heap. It is a checkpoint;
  when cancelled, the entry is removed and nothing else changes.
- R5 Precision: Trio's I/O wait (epoll) rounds a sleep's timeout up to whole
  milliseconds. On a real clock, when the earliest entry is wall-anchored (an
  occurrence), the timer sleeps until ``spin`` seconds before it and yields in a loop
  for the rest (at most ``spin`` of CPU per distinct occurrence instant), so due
  occurrences run within microseconds. Other entries are served at Trio's precision. Under
  `trio.testing.MockClock` it never spins (a spinning task would stop autojump).
"""

from __future__ import annotations

import heapq
import itertools
import math
import sys
from collections.abc import Callable
from typing import Final, final

import trio

__all__ = ["TimerHandle", "TimerHeap"]

# Wall/Trio offset changes below this are jitter between two clock reads, not a jump.
_OFFSET_TOLERANCE: Final = 0.001
# R5: the I/O wait behind Trio's sleeps (epoll) rounds its timeout UP to whole
# milliseconds, so a plain sleep wakes 0-1 ms late. The timer therefore sleeps until
# `spin` seconds before its deadline and covers the rest by yielding (checkpoints).
DEFAULT_SPIN: Final = 0.0015


@final
class TimerHandle:
    """One scheduled callback; `cancel` it to drop it (rule R3)."""

    __slots__ = ("_owner", "callback", "cancelled", "deadline", "wall_time")

    def __init__(
        self,
        deadline: float,
        callback: Callable[[], object],
        wall_time: float | None,
        owner: TimerHeap,
    ) -> None:
        self.deadline = deadline
        self.callback = callback
        self.wall_time = wall_time
        self.cancelled = False
        self._owner = owner

    def cancel(self) -> None:
        """Drop the callback if it has not run yet. Idempotent, never blocks."""
        if not self.cancelled:
            self.cancelled = True
            self._owner._cancelled += 1


@final
class TimerHeap:
    """The shared timer; run `run` in a nursery, then schedule entries on it."""

    def __init__(
        self,
        *,
        wall_time: Callable[[], float],
        clock_check_interval: float = 1.0,
        on_pass_end: Callable[[], object] | None = None,
        spin: float = DEFAULT_SPIN,
    ) -> None:
        self._wall_time = wall_time
        self._spin = spin
        self._active_spin = 0.0
        self._clock_check_interval = clock_check_interval
        self._on_pass_end = on_pass_end
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cancelled = 0  # cancelled entries still in the heap (R3)
        self._sleep_scope: trio.CancelScope | None = None
        self._offset: float | None = None
        self.last_lag = 0.0
        self.max_lag = 0.0
        self.passes = 0

    # -- scheduling -----------------------------------------------------------------

    def call_at(self, deadline: float, callback: Callable[[], object]) -> TimerHandle:
        """Run `callback` in the timer task once Trio's clock reaches `deadline`."""
        return self._push(TimerHandle(deadline, callback, None, self))

    def call_at_wall(
        self, wall_time: float, callback: Callable[[], object], *, deadline: float | None = None
    ) -> TimerHandle:
        """Run `callback` once the wall clock reaches `wall_time` epoch seconds (R1).

        `deadline` overrides the first Trio deadline (a caller that just read the wall
        clock knows it better than the cached offset); later wall-clock jumps still move
        the entry.
        """
        if deadline is None:
            deadline = wall_time - self.wall_offset()
        return self._push(TimerHandle(deadline, callback, wall_time, self))

    def wall_offset(self) -> float:
        """The offset wall - Trio clock used for wall-anchored entries."""
        if self._offset is None:
            self._offset = self._measure_offset()
        return self._offset

    async def sleep_until(self, deadline: float) -> None:
        """Park the current task until `deadline` on Trio's clock (rule R4)."""
        task = trio.lowlevel.current_task()
        handle = self.call_at(deadline, lambda: trio.lowlevel.reschedule(task))

        def abort(_: object) -> trio.lowlevel.Abort:
            handle.cancel()
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def __len__(self) -> int:
        return len(self._heap)

    # -- the timer task ---------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The timer task: runs until cancelled. Start it with ``nursery.start``.

        Cancelling it stops all callbacks; parked `sleep_until` callers stay parked
        until their own cancellation (the owner cancels both together).
        """
        # R5: spin only on a real clock; a MockClock never advances while a task spins.
        spin = 0.0 if _is_mock_clock(trio.lowlevel.current_clock()) else self._spin
        self._active_spin = spin
        self.call_at(trio.current_time() + self._clock_check_interval, self._check_clock)
        task_status.started()
        while True:
            self._run_due()
            heap = self._heap
            while heap and heap[0][2].cancelled:  # do not wake up for nothing
                heapq.heappop(heap)
                self._cancelled -= 1
            deadline = heap[0][0] if heap else math.inf
            # Only wall-anchored entries (occurrences) are worth spinning for; renewals,
            # retries and timeouts tolerate Trio's millisecond rounding.
            early = spin if heap and heap[0][2].wall_time is not None else 0.0
            if early and deadline - trio.current_time() <= early:
                await trio.lowlevel.checkpoint()
                continue
            with trio.CancelScope(deadline=deadline - early) as scope:
                self._sleep_scope = scope
                await trio.sleep_forever()
            self._sleep_scope = None

    def _run_due(self) -> None:
        now = trio.current_time()
        ran = False
        # Re-read self._heap each time: a callback may compact or rebuild it.
        while self._heap and self._heap[0][0] <= now:
            deadline, _, handle = heapq.heappop(self._heap)
            if handle.cancelled:
                self._cancelled -= 1
                continue
            if not ran:
                # Lateness of the earliest due entry: the timer's loop lag.
                self.last_lag = now - deadline
                self.max_lag = max(self.max_lag, self.last_lag)
                ran = True
            handle.cancelled = True  # ran (and left the heap): a later cancel() is a no-op
            handle.callback()
        if ran:
            self.passes += 1
            if self._on_pass_end is not None:
                self._on_pass_end()

    def _push(self, handle: TimerHandle) -> TimerHandle:
        heap = self._heap
        if handle.deadline != handle.deadline:  # NaN would corrupt the heap order
            raise ValueError("timer deadline is NaN")
        if self._cancelled > 1024 and self._cancelled * 2 > len(heap):
            self._compact()
            heap = self._heap
        heapq.heappush(heap, (handle.deadline, next(self._seq), handle))
        scope = self._sleep_scope
        early = self._active_spin if handle.wall_time is not None else 0.0
        if scope is not None and handle.deadline - early < scope.deadline:
            # Wake the timer earlier; changing an active scope's deadline is allowed.
            scope.deadline = handle.deadline - early
        return handle

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(self._heap)
        self._cancelled = 0

    def _measure_offset(self) -> float:
        return self._wall_time() - trio.current_time()

    def _check_clock(self) -> None:
        # Rule R1: notice wall-clock jumps and move wall-anchored deadlines with them.
        offset = self._measure_offset()
        if self._offset is not None and abs(offset - self._offset) > _OFFSET_TOLERANCE:
            self._offset = offset
            rebuilt: list[tuple[float, int, TimerHandle]] = []
            for deadline, seq, handle in self._heap:
                if handle.cancelled:
                    self._cancelled -= 1
                    continue
                if handle.wall_time is not None:
                    handle.deadline = deadline = handle.wall_time - offset
                rebuilt.append((deadline, seq, handle))
            heapq.heapify(rebuilt)
            self._heap = rebuilt
        self.call_at(trio.current_time() + self._clock_check_interval, self._check_clock)


def _is_mock_clock(clock: object) -> bool:
    # Without importing trio.testing: if nobody imported it, no MockClock exists.
    testing = sys.modules.get("trio.testing")
    return testing is not None and isinstance(clock, testing.MockClock)
