"""One worker process of the end-to-end test (run from ``tests/``)::

    python -m e2e._worker --url URL --prefix PREFIX --lifetime S --status PATH

Rules:
- EW1 The process runs ``open_worker(RedisJobs(...), handlers, queues=QUEUES,
  concurrency=4)`` on the shared prefix (X1) until SIGTERM, then leaves the block: a
  graceful stop (WK5). It stops the same way by itself after ``--lifetime`` seconds
  (reported as ``stopped_by: lifetime``), and a `faulthandler` deadline
  ``HANG_AFTER`` seconds later dumps every thread's stack and exits.
- EW2 One handler per job name of `TASKS`; each sleeps a little (so handlers overlap,
  and the concurrency bound matters), then records the job (X2, X3) with this process's
  pid, the delivery's attempt and the wall-clock ms at which the handler started.
- EW3 Status for the parent goes to ``--status`` as JSON, written atomically (the helper
  of ``tests/multiprocess``): ``ready`` once the worker runs; at exit the worker's and
  the runtime's counters, the most handlers seen running at once and ``stopped_by``.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import redis
import trio

from multiprocess._child import write_status
from trio_sched.jobs import Job, open_worker
from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

from ._common import CONCURRENCY, JOB_NAMES, QUEUES, handled_key, job_fields

HANG_AFTER = 20.0  # EW1: seconds past the lifetime before the stack dump and exit


async def main(args: argparse.Namespace) -> None:
    client = redis.Redis.from_url(args.url, socket_timeout=3, socket_connect_timeout=3)
    key = handled_key(args.prefix)
    running = 0
    most_running = 0

    async def handle(job: Job) -> None:
        nonlocal running, most_running
        started_ms = time.time_ns() // 1_000_000
        running += 1
        most_running = max(most_running, running)
        try:
            await trio.sleep(random.uniform(0.02, 0.15))
            line = json.dumps(
                {
                    "pid": os.getpid(),
                    "attempt": job.attempt,
                    "started_ms": started_ms,
                    "job": job_fields(job),
                }
            )
            await trio.to_thread.run_sync(client.rpush, key, line)
        finally:
            running -= 1

    # Short enough that a lost lease would show within the run; renewed every third.
    config = RedisJobsConfig(url=args.url, prefix=args.prefix, visibility_timeout=5.0)
    status: dict[str, Any] = {"pid": os.getpid()}
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with (
            RedisJobs(config) as jobs,
            open_worker(
                jobs,
                dict.fromkeys(JOB_NAMES, handle),
                queues=list(QUEUES),
                concurrency=CONCURRENCY,
                handler_timeout=10.0,
            ) as worker,
        ):
            status["ready"] = True
            write_status(args.status, status)
            status["stopped_by"] = "lifetime"
            with trio.move_on_after(args.lifetime):
                async for _ in signals:
                    status["stopped_by"] = "signal"
                    break
        status["worker"] = dataclasses.asdict(worker.statistics())
        counters = jobs.statistics()
        status["runtime"] = {
            "claimed": counters.claimed,
            "completed": counters.completed,
            "stale": counters.stale,
            "leases_lost": counters.leases_lost,
            "released": counters.released,
        }
    client.close()
    status["most_running"] = most_running
    write_status(args.status, status)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--lifetime", type=float, required=True)
    parser.add_argument("--status", type=Path, required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    faulthandler.dump_traceback_later(arguments.lifetime + HANG_AFTER, exit=True)
    trio.run(main, arguments)
