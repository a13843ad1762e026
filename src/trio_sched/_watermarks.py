"""What was dispatched: watermarks (rule O3) and occurrence records marked dispatched
(rule L8), written in batches (rule D5).

- M1 A task's watermark is the epoch ms of its last dispatched occurrence. `mark`
  records one (never moving a pending mark back), with the lease of the occurrence
  (its record is marked dispatched, so nobody takes it over: D12), and schedules one
  flush for everything marked until it runs: dispatches finishing together share one
  ``mark_dispatched`` call (first: other instances watch those records) and one
  ``advance_watermarks`` call. `settle` marks a record without a watermark (a
  taken-over occurrence the skip policy dropped). A provider without
  ``mark_dispatched`` (written before rules L6-L8) is not asked: its records are not
  marked, and a takeover's enqueue is deduplicated by its idempotency key.
- M2 A flush retries transient errors (``retry_backoff`` doubling to
  ``retry_backoff_max``) up to ``_ATTEMPTS`` times; then, or on another error, it logs,
  reports each task concerned through ``on_failure`` and gives up: the occurrence locks
  still protect for their TTL, and an endless retry would hold up a stop.
- M3 `drain` (graceful stop) waits until nothing is pending or being flushed;
  `flush_last` (hard stop, shielded by the caller) makes one last attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, final

import trio

from trio_sched._config import Config
from trio_sched._errors import is_transient
from trio_sched.locks._protocol import LockLease, LockProvider

__all__ = ["Pending", "Watermarks"]

_ATTEMPTS: Final = 5


@final
class Pending:
    """How many of something are in flight, and a way to wait until none are."""

    __slots__ = ("_idle", "count")

    def __init__(self) -> None:
        self.count = 0
        self._idle = trio.Event()
        self._idle.set()

    def enter(self) -> None:
        if self.count == 0:
            self._idle = trio.Event()
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once none are in flight (at once if none are). A checkpoint."""
        await self._idle.wait()


@final
class Watermarks:
    """The pending watermark advances of one scheduler (M1-M3)."""

    __slots__ = (
        "_can_mark",
        "_config",
        "_flush_scheduled",
        "_flushes",
        "_locks",
        "_nursery",
        "_on_failure",
        "_owner",
        "_pending",
        "_records",
    )

    def __init__(
        self,
        locks: LockProvider,
        config: Config,
        on_failure: Callable[[str, Exception], None],
    ) -> None:
        self._locks = locks
        self._config = config
        self._on_failure = on_failure  # (task name, error) for each task not advanced
        self._pending: dict[str, int] = {}
        self._records: list[LockLease] = []
        self._can_mark = callable(getattr(locks, "mark_dispatched", None))
        self._owner: dict[str, str] = {}  # watermark name -> task name
        self._flush_scheduled = False
        self._flushes = Pending()
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery | None) -> None:
        """Where flushes run (the scheduler's services nursery), or None once closed."""
        self._nursery = nursery

    def mark(self, name: str, task: str, ms: int, lease: LockLease | None = None) -> None:
        """Record that `task` dispatched its occurrence at `ms` under `lease` (M1); not a
        checkpoint."""
        self._owner[name] = task
        current = self._pending.get(name)
        if current is None or ms > current:
            self._pending[name] = ms
        if lease is not None and self._can_mark:
            self._records.append(lease)
        self._schedule()

    def settle(self, lease: LockLease) -> None:
        """Mark the record of `lease` dispatched, without a watermark (M1)."""
        if self._can_mark:
            self._records.append(lease)
            self._schedule()

    def _schedule(self) -> None:
        if not self._flush_scheduled and self._nursery is not None:
            self._flush_scheduled = True
            self._nursery.start_soon(self._flush)

    def _take(self) -> tuple[dict[str, int], list[LockLease]]:
        marks, self._pending = self._pending, {}
        records, self._records = self._records, []
        return marks, records

    async def _flush(self) -> None:
        self._flush_scheduled = False
        marks, records = self._take()
        if not marks and not records:
            return
        self._flushes.enter()
        try:
            await self._advance(marks, records)
        finally:
            self._flushes.leave()

    async def _advance(self, marks: dict[str, int], records: list[LockLease]) -> None:
        config = self._config
        backoff = config.retry_backoff
        for attempt in range(_ATTEMPTS):
            try:
                if records:
                    await self._locks.mark_dispatched(records)
                    records = []  # done: a retry only repeats the watermarks
                if marks:
                    await self._locks.advance_watermarks(marks)
                return
            except Exception as exc:
                transient = is_transient(exc)
                if transient and attempt + 1 < _ATTEMPTS:
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, config.retry_backoff_max)
                    continue
                config.logger.error(
                    "recording %d dispatched occurrences and %d watermarks failed (another "
                    "instance may take an unmarked one over, and its enqueue is then "
                    "deduplicated by its idempotency key): %r",
                    len(records),
                    len(marks),
                    exc,
                )
                for name in marks:
                    task = self._owner.get(name)
                    if task is not None:
                        self._on_failure(task, exc)
                return

    async def drain(self) -> None:
        """Flush everything pending and wait for flushes in flight (M3). A checkpoint
        when anything is pending."""
        while self._pending or self._records or self._flushes.count:
            if self._pending or self._records:
                await self._flush()
            else:
                await self._flushes.wait_idle()

    async def flush_last(self) -> None:
        """One last attempt for what is still pending (hard stop, M3)."""
        if self._pending or self._records:
            await self._advance(*self._take())
