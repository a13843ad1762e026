"""The counters of one `RedisJobs` client: counted by it and by its collaborators
(`trio_sched.jobs._redis_acks`), read by `RedisJobs.statistics`. Plain ints on the Trio
thread: every count is taken after a call returned, never in a worker thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import final


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
