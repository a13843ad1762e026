"""Watermarks of dispatched occurrences (rule O3), advanced in batches (rule D5).

- M1 A task's watermark is the epoch ms of its last dispatched occurrence. `mark`
  records one (never moving a pending mark back) and schedules one flush for everything
  marked until it runs: dispatches finishing together share one ``advance_watermarks``
  call.
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
from trio_sched.locks._protocol import LockProvider

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
        "_config",
        "_flush_scheduled",
        "_flushes",
        "_locks",
        "_nursery",
        "_on_failure",
        "_owner",
        "_pending",
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
        self._owner: dict[str, str] = {}  # watermark name -> task name
        self._flush_scheduled = False
        self._flushes = Pending()
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery | None) -> None:
        """Where flushes run (the scheduler's services nursery), or None once closed."""
        self._nursery = nursery

    def mark(self, name: str, task: str, ms: int) -> None:
        """Record that `task` dispatched its occurrence at `ms` (M1); not a checkpoint."""
        self._owner[name] = task
        current = self._pending.get(name)
        if current is None or ms > current:
            self._pending[name] = ms
        if not self._flush_scheduled and self._nursery is not None:
            self._flush_scheduled = True
            self._nursery.start_soon(self._flush)

    async def _flush(self) -> None:
        self._flush_scheduled = False
        marks, self._pending = self._pending, {}
        if not marks:
            return
        self._flushes.enter()
        try:
            await self._advance(marks)
        finally:
            self._flushes.leave()

    async def _advance(self, marks: dict[str, int]) -> None:
        config = self._config
        backoff = config.retry_backoff
        for attempt in range(_ATTEMPTS):
            try:
                await self._locks.advance_watermarks(marks)
                return
            except Exception as exc:
                transient = is_transient(exc)
                if transient and attempt + 1 < _ATTEMPTS:
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, config.retry_backoff_max)
                    continue
                config.logger.error(
                    "advancing %d watermarks failed (locks still protect for their TTL): %r",
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
        while self._pending or self._flushes.count:
            if self._pending:
                await self._flush()
            else:
                await self._flushes.wait_idle()

    async def flush_last(self) -> None:
        """One last attempt for what is still pending (hard stop, M3)."""
        if self._pending:
            marks, self._pending = self._pending, {}
            await self._advance(marks)
