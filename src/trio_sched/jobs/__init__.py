"""Jobs runtimes: the `Job` value, the `JobsRuntime` interface and implementations.

Only the interface and the in-process runtime are imported here. The Redis and
Postgres runtimes live in ``trio_sched.jobs.redis`` and ``trio_sched.jobs.postgres``
and are imported only by users who ask for them.
"""

from trio_sched.jobs._job import Job as Job
from trio_sched.jobs._job import JobsRuntime as JobsRuntime
from trio_sched.jobs.memory import JobHandler as JobHandler
from trio_sched.jobs.memory import MemoryJobs as MemoryJobs
from trio_sched.jobs.memory import MemoryJobsStatistics as MemoryJobsStatistics
from trio_sched.jobs.memory import QueueStatistics as QueueStatistics

__all__ = [
    "Job",
    "JobHandler",
    "JobsRuntime",
    "MemoryJobs",
    "MemoryJobsStatistics",
    "QueueStatistics",
]
