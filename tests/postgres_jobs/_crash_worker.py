"""A worker process for the crash test: ``python _crash_worker.py URL TABLE LOG``.

Runs `open_worker` on a `PostgresJobs` (concurrency 1, visibility 1 s, 3 attempts) until
SIGTERM (graceful stop) or SIGKILL. Every handler start and finish is appended to LOG as
one line ``{pid} {start|done} {job id} {attempt}`` (one ``write`` on an ``O_APPEND``
file, so lines of several processes never interleave). Handlers by job name:
``work`` finishes at once; ``victim`` hangs on attempt 1 (to be killed mid-job) and
finishes later; ``poison`` always raises.
"""

from __future__ import annotations

import os
import signal
import sys

import trio

from trio_sched.jobs import Job, open_worker
from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig


def _log(path: str, event: str, job: Job) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {event} {job.id} {job.attempt}\n".encode())
    finally:
        os.close(fd)


async def main(url: str, table: str, log: str) -> None:
    async def work(job: Job) -> None:
        _log(log, "start", job)
        await trio.sleep(0.01)
        _log(log, "done", job)

    async def victim(job: Job) -> None:
        _log(log, "start", job)
        if job.attempt == 1:
            await trio.sleep(3600)
        _log(log, "done", job)

    async def poison(job: Job) -> None:
        _log(log, "start", job)
        raise RuntimeError("poison always fails")

    config = PostgresJobsConfig(
        url=url, table=table, visibility_timeout=1.0, max_attempts=3, operation_timeout=2.0
    )
    handlers = {"work": work, "victim": victim, "poison": poison}
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with (
            PostgresJobs(config) as jobs,
            open_worker(
                jobs,
                handlers,
                queues=["q"],
                concurrency=1,
                poll_wait=0.2,
                retry_backoff=0.05,
                max_retry_backoff=0.2,
            ),
        ):
            print("ready", flush=True)
            async for _ in signals:
                break


if __name__ == "__main__":
    url, table, log = sys.argv[1:4]
    trio.run(main, url, table, log)
