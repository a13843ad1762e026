"""Jobs runtimes: the `Job` value, the `JobsRuntime` interface, implementations and
the Trio worker.

Only the interface, the in-process runtime and the worker are imported here. The Redis
and Postgres runtimes live in ``trio_sched.jobs.redis`` and ``trio_sched.jobs.postgres``
and are imported only by users who ask for them (``import trio_sched.jobs`` never
imports redis-py or psycopg).
"""

from trio_sched.jobs._consumable import ConsumableJobs as ConsumableJobs
from trio_sched.jobs._consumable import DeadLetter as DeadLetter
from trio_sched.jobs._consumable import Delivery as Delivery
from trio_sched.jobs._consumable import FailOutcome as FailOutcome
from trio_sched.jobs._control import JobControl as JobControl
from trio_sched.jobs._control import JobState as JobState
from trio_sched.jobs._job import BatchJobsRuntime as BatchJobsRuntime
from trio_sched.jobs._job import Job as Job
from trio_sched.jobs._job import JobsRuntime as JobsRuntime
from trio_sched.jobs._worker import Worker as Worker
from trio_sched.jobs._worker import open_worker as open_worker
from trio_sched.jobs._worker_types import JobContext as JobContext
from trio_sched.jobs._worker_types import JobHandler as JobHandler
from trio_sched.jobs._worker_types import WorkerState as WorkerState
from trio_sched.jobs._worker_types import WorkerStatistics as WorkerStatistics
from trio_sched.jobs._worker_types import current_job as current_job
from trio_sched.jobs.memory import MemoryJobs as MemoryJobs
from trio_sched.jobs.memory import MemoryJobsStatistics as MemoryJobsStatistics
from trio_sched.jobs.memory import QueueStatistics as QueueStatistics

__all__ = [
    "BatchJobsRuntime",
    "ConsumableJobs",
    "DeadLetter",
    "Delivery",
    "FailOutcome",
    "Job",
    "JobContext",
    "JobControl",
    "JobHandler",
    "JobState",
    "JobsRuntime",
    "MemoryJobs",
    "MemoryJobsStatistics",
    "QueueStatistics",
    "Worker",
    "WorkerState",
    "WorkerStatistics",
    "current_job",
    "open_worker",
]
