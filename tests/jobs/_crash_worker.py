"""A worker process for the crash tests: ``python _crash_worker.py BACKEND URL NAME LOG``.

BACKEND is ``redis`` (NAME: the key prefix) or ``postgres`` (NAME: the jobs table).
Runs `open_worker` (concurrency 1, visibility 1 s, 3 attempts) until SIGTERM (graceful
stop) or SIGKILL. Every handler start and finish is appended to LOG as one line
``{pid} {start|done} {job id} {attempt}`` (one ``write`` on an ``O_APPEND`` file, so
lines of several processes never interleave). Handlers by job name: ``work`` finishes
at once; ``victim`` hangs on attempt 1 (to be killed mid-job) and finishes later;
``poison`` always raises.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from trio_sched.jobs import Job, open_worker


def _log(path: str, event: str, job: Job) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {event} {job.id} {job.attempt}\n".encode())
    finally:
        os.close(fd)


def _runtime(backend: str, url: str, name: str) -> AbstractAsyncContextManager[Any]:
    settings: dict[str, Any] = {
        "url": url,
        "visibility_timeout": 1.0,
        "max_attempts": 3,
        "operation_timeout": 2.0,
    }
    if backend == "redis":
        from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

        return RedisJobs(RedisJobsConfig(prefix=name, **settings))
    from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig

    return PostgresJobs(PostgresJobsConfig(table=name, **settings))


async def main(backend: str, url: str, name: str, log: str) -> None:
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

    handlers = {"work": work, "victim": victim, "poison": poison}
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with (
            _runtime(backend, url, name) as jobs,
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
    trio.run(main, *sys.argv[1:5])
