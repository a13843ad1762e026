"""README.md, "The same program on Redis or PostgreSQL": the PostgreSQL variant."""

import os

import trio

from trio_sched import Task, open_scheduler
from trio_sched.jobs import Job, open_worker
from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig
from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgresql://127.0.0.1/test")


async def build_report(job: Job) -> None:
    print("building", job.run_at, job.payload)


async def main() -> None:
    handlers = {"build_report": build_report}
    async with (
        PostgresJobs(PostgresJobsConfig(url=POSTGRES_URL)) as jobs,  # a table, SKIP LOCKED
        PostgresLockProvider(PostgresLockProviderConfig(url=POSTGRES_URL)) as locks,
        open_worker(jobs, handlers),
        open_scheduler(jobs=jobs, locks=locks) as scheduler,
    ):
        scheduler.register(
            Task(
                name="report",
                schedule="*/2 * * * * *",
                timezone="Europe/Berlin",
                job_name="build_report",
            )
        )
        await scheduler.trigger("report")
        await trio.sleep(3)


trio.run(main)
