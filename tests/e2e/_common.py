"""What the end-to-end test and its child processes share: tasks, key names, records.

Rules:
- X1 Every key lives under the test's one random prefix: the lock provider's keys and
  the `RedisJobs` keys (``{prefix}:jobs:...``) as the library names them, and the two
  record lists below, which keep duplicates (``RPUSH``, never a set).
- X2 ``{prefix}:e2e:enqueues``: one record per ``enqueue`` CALL a scheduler made, written
  after the call returned, with its outcome (``ok`` accepted and queued, ``conflict``
  refused as a duplicate, or the error's type name). ``{prefix}:e2e:handled``: one
  record per handler run that finished, written by the handler before it returns.
- X3 A record carries `job_fields` of the job (every `Job` field except ``attempt``), so
  the parent can check that the worker got exactly what the scheduler enqueued.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from trio_sched import MisfirePolicy, Task
from trio_sched._plan import epoch_ms, from_epoch_ms
from trio_sched.jobs import Job

QUEUES = ("e2e-a", "e2e-b")
CONCURRENCY = 4  # handlers per worker process

# Several tasks due every second on two queues, one every two seconds, one under the
# fire_once misfire policy. Payload, headers and tenant make the field check (X3) bite.
TASKS = (
    Task(name="sec_a", schedule="* * * * * *", queue=QUEUES[0], payload=b'{"n": 1}'),
    Task(
        name="sec_b",
        schedule="* * * * * *",
        queue=QUEUES[1],
        job_name="handle_b",
        headers={"x-e2e": "b"},
    ),
    Task(name="sec_c", schedule="* * * * * *", queue=QUEUES[0], tenant_id="tenant-c"),
    Task(name="every_2s", schedule="@every 2s", queue=QUEUES[1], payload=b"\x00\xffraw"),
    Task(
        name="sec_once",
        schedule="* * * * * *",
        queue=QUEUES[0],
        misfire_policy=MisfirePolicy.FIRE_ONCE,
        content_type="text/plain",
    ),
)

JOB_NAMES = tuple(sorted({task.effective_job_name for task in TASKS}))


def enqueues_key(prefix: str) -> str:
    return f"{prefix}:e2e:enqueues"


def handled_key(prefix: str) -> str:
    return f"{prefix}:e2e:handled"


def job_fields(job: Job) -> dict[str, Any]:
    """Every field of `job` but ``attempt``, as JSON-able values (X3)."""
    return {
        "id": job.id,
        "name": job.name,
        "queue": job.queue,
        "payload": base64.b64encode(job.payload).decode(),
        "headers": dict(job.headers),
        "content_type": job.content_type,
        "tenant_id": job.tenant_id,
        "idempotency_key": job.idempotency_key,
        "run_at_ms": None if job.run_at is None else epoch_ms(job.run_at),
        "created_at_ms": None if job.created_at is None else epoch_ms(job.created_at),
        "fencing_token": job.fencing_token,
    }


def expected(lo_ms: int, hi_ms: int) -> set[tuple[str, int]]:
    """Every (task, nominal epoch ms) of every task with lo_ms <= nominal <= hi_ms."""
    out: set[tuple[str, int]] = set()
    for task in TASKS:
        t = task.cron.next_after(from_epoch_ms(lo_ms) - timedelta(milliseconds=1))
        while epoch_ms(t) <= hi_ms:
            out.add((task.name, epoch_ms(t)))
            t = task.cron.next_after(t)
    return out
