"""What one `RedisJobs` counts and reports (`trio_sched.jobs.redis`).

`Counters` are the client's running counts: counted by it and by its collaborators
(`trio_sched.jobs._redis_acks`), read by `RedisJobs.statistics`. Plain ints on the Trio
thread: every count is taken after a call returned, never in a worker thread.
`RedisJobsStatistics` is their snapshot with the driver's (R1-R3) and the data losses'
(RJ7); `RedisQueueStatistics` is what the server holds for one queue. Both records are
public through `trio_sched.jobs.redis`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from trio_sched._redis_driver import DriverStatistics

__all__ = ["Counters", "RedisJobsStatistics", "RedisQueueStatistics"]


@final
@dataclass(frozen=True, slots=True)
class RedisJobsStatistics:
    """This client's counters (not the server's totals; see `RedisJobs.queue_statistics`).

    `claimed` counts deliveries, `stale` acknowledgements of leases that had moved on,
    `leases_lost` extends that found the lease gone. `data_losses` counts the losses of
    the queue data this client detected (RJ7) and `jobs_vanished` the jobs it knew to be
    pending when it last looked and that went with them. `driver`: round trips and
    failures.
    """

    enqueued: int
    delayed: int
    duplicates: int
    claimed: int
    completed: int
    retried: int
    dead_lettered: int
    released: int
    stale: int
    extended: int
    leases_lost: int
    redriven: int
    closed: bool
    driver: DriverStatistics
    data_losses: int = 0
    jobs_vanished: int = 0


@final
@dataclass(frozen=True, slots=True)
class RedisQueueStatistics:
    """What the server holds for one queue: `stream` entries (waiting or leased),
    `leased` (delivered, not acknowledged), `delayed` and `dead` letters."""

    stream: int
    leased: int
    delayed: int
    dead: int


@final
@dataclass(slots=True)
class Counters:
    enqueued: int = 0
    delayed: int = 0
    duplicates: int = 0
    claimed: int = 0
    completed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    released: int = 0
    stale: int = 0
    extended: int = 0
    leases_lost: int = 0
    redriven: int = 0
    jobs_vanished: int = 0
