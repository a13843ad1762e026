"""What one `PostgresJobs` counts and reports (`trio_sched.jobs.postgres`).

`Counters` are this client's running counts, shared by the parts of the runtime that
count; `PostgresJobsStatistics` is their snapshot with the listener's and the driver's
(P1-P3); `PostgresQueueStatistics` is what the table holds for one queue (PJ3, PJ4).
Both records are public through `trio_sched.jobs.postgres`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from trio_sched._postgres_driver import (
    PostgresDriverStatistics,
)

__all__ = ["Counters", "PostgresJobsStatistics", "PostgresQueueStatistics"]


@final
@dataclass(frozen=True, slots=True)
class PostgresJobsStatistics:
    """This client's counters (not the server's totals; see
    `PostgresJobs.queue_statistics`).

    `claimed` counts deliveries, `expired_dead_lettered` expired leases with no attempt
    left (PJ4), `stale` acknowledgements of leases that had moved on, `leases_lost`
    extends that found the lease gone. `notifications` counts NOTIFY messages the
    listening connection received, `listen_errors` its failures (then claims poll).
    `driver`: round trips, failures, undos and connections (P1-P3).
    """

    enqueued: int
    delayed: int
    duplicates: int
    claimed: int
    completed: int
    retried: int
    dead_lettered: int
    expired_dead_lettered: int
    released: int
    stale: int
    extended: int
    leases_lost: int
    redriven: int
    cleaned_rows: int
    notifications: int
    listen_errors: int
    listening: bool
    schema_ready: bool
    closed: bool
    driver: PostgresDriverStatistics


@final
@dataclass(frozen=True, slots=True)
class PostgresQueueStatistics:
    """What the table holds for one queue: `ready` rows due now, `delayed` ready rows
    due later, `leased` rows (delivered, not finished; expired leases included), `dead`
    letters and `done` rows kept for dedupe (PJ3)."""

    ready: int
    delayed: int
    leased: int
    dead: int
    done: int


@dataclass(slots=True)
@final
class Counters:
    enqueued: int = 0
    delayed: int = 0
    duplicates: int = 0
    claimed: int = 0
    completed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    expired_dead_lettered: int = 0
    released: int = 0
    stale: int = 0
    extended: int = 0
    leases_lost: int = 0
    redriven: int = 0
    cleaned_rows: int = 0
