"""The counts of a `MemoryJobs` (`trio_sched.jobs.memory`) and the snapshots its
``statistics()`` returns: `QueueStatistics` per queue, `MemoryJobsStatistics` in total.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import final

__all__ = ["MemoryJobsStatistics", "QueueCounters", "QueueStatistics", "Tally"]


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """Counters of one queue.

    `delivered` counts jobs handed to the handler; each then ends as `completed` or
    `handler_errors` (or is cancelled at close). `pending` are accepted jobs not yet
    handed over (buffered). On worker queues (J8) `delivered` counts claims, a failure
    reported by a worker counts in `handler_errors` and then in `retried` or
    `dead_lettered`. `cancelled` counts jobs cancelled through ``cancel`` (J11).
    """

    enqueued: int
    duplicates: int
    delivered: int
    completed: int
    handler_errors: int
    in_flight: int
    pending: int
    subscribed: bool
    retried: int = 0
    dead_lettered: int = 0
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class MemoryJobsStatistics:
    """A snapshot of a `MemoryJobs`: totals plus `queues` (read-only, by queue name)."""

    running: bool
    closed: bool
    max_concurrency: int
    enqueued: int
    duplicates: int
    delivered: int
    completed: int
    handler_errors: int
    in_flight: int
    pending: int
    dropped: int
    queues: Mapping[str, QueueStatistics]
    retried: int = 0
    dead_lettered: int = 0
    cancelled: int = 0


@final
@dataclass(slots=True)
class QueueCounters:
    """The running counts of one queue, from which `QueueStatistics` is made."""

    enqueued: int = 0
    duplicates: int = 0
    delivered: int = 0
    completed: int = 0
    handler_errors: int = 0
    in_flight: int = 0
    pending: int = 0
    retried: int = 0
    dead_lettered: int = 0
    cancelled: int = 0


@final
class Tally:
    """What one `MemoryJobs` counts: `QueueCounters` by queue, `pending` (accepted, not
    yet handed to a handler or leased: J4) and `dropped` (at close: J6, J9)."""

    __slots__ = ("counters", "dropped", "pending")

    def __init__(self) -> None:
        self.counters: dict[str, QueueCounters] = {}
        self.pending = 0
        self.dropped = 0

    def queue(self, queue: str) -> QueueCounters:
        counters = self.counters.get(queue)
        if counters is None:
            counters = self.counters[queue] = QueueCounters()
        return counters

    def in_flight(self) -> int:
        return sum(c.in_flight for c in self.counters.values())

    def statistics(
        self, *, running: bool, closed: bool, max_concurrency: int, subscribed: Container[str]
    ) -> MemoryJobsStatistics:
        """A snapshot; `subscribed` holds the queues with a ``subscribe`` handler."""
        queues = {
            name: QueueStatistics(
                enqueued=c.enqueued,
                duplicates=c.duplicates,
                delivered=c.delivered,
                completed=c.completed,
                handler_errors=c.handler_errors,
                in_flight=c.in_flight,
                pending=c.pending,
                subscribed=name in subscribed,
                retried=c.retried,
                dead_lettered=c.dead_lettered,
                cancelled=c.cancelled,
            )
            for name, c in self.counters.items()
        }
        values = list(queues.values())
        return MemoryJobsStatistics(
            running=running,
            closed=closed,
            max_concurrency=max_concurrency,
            enqueued=sum(q.enqueued for q in values),
            duplicates=sum(q.duplicates for q in values),
            delivered=sum(q.delivered for q in values),
            completed=sum(q.completed for q in values),
            handler_errors=sum(q.handler_errors for q in values),
            in_flight=sum(q.in_flight for q in values),
            pending=self.pending,
            dropped=self.dropped,
            queues=MappingProxyType(queues),
            retried=sum(q.retried for q in values),
            dead_lettered=sum(q.dead_lettered for q in values),
            cancelled=sum(q.cancelled for q in values),
        )
