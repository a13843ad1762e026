"""End to end on Redis (issue 6, "Proof"): three scheduler processes and two worker
processes on one backend for ~16 s; every occurrence handled, none enqueued twice.

Three scheduler processes (`_scheduler.py`, wall clocks skewed -1, 0 and +1 s) run the
same five tasks with a `RedisLockProvider` and a `RedisJobs`; two worker processes
(`_worker.py`, ``concurrency=4``) take from the same `RedisJobs` queues. Everything
shares one random prefix. Both sides record into Redis without dedupe (rules X1-X3 of
`_common`). After the schedulers stop by themselves, the workers drain the queues and
are stopped with SIGTERM (graceful). Then:

- None enqueued twice. Producer side: every occurrence's ``enqueue`` was CALLED once,
  by one process (the locks), and accepted (no duplicate refused, no error), and the
  runtimes' own counters agree. Server side: the runtime holds exactly one dedupe key
  per accepted idempotency key and no other, and every queue, lease set, delayed set,
  dead-letter stream and job hash is empty: nothing is left to deliver again.
- Each occurrence handled exactly once: one handler record per accepted key, at
  attempt 1 (no worker died, so at-least-once delivery has no reason to repeat), by one
  of the two workers, with every `Job` field as the scheduler enqueued it (and name,
  queue, payload, headers, tenant and content type as its `Task` says), and never
  before its nominal instant (W4: the +1 s scheduler enqueues ~1 s early, so its jobs
  go through the delayed set).
- Every occurrence handled: every nominal occurrence of every task inside the window
  all three schedulers covered (own wall clocks, 1 s margins) has a handler record.
- The run was real: the schedulers competed for locks, both workers handled jobs,
  neither ran more than ``concurrency`` handlers at once, their counters show no
  failure, retry, lost lease or release, and both stopped on the signal with exit
  status 0.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
import trio

from multiprocess.test_exactly_once import Child, kill_all, wait_done, wait_running, window
from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig

from ._common import CONCURRENCY, QUEUES, TASKS, enqueues_key, expected, handled_key

TESTS = Path(__file__).resolve().parents[1]
SCHEDULER_SECONDS = 16.0
SKEWS = (-1.0, 0.0, 1.0)
WORKERS = 2
WORKER_LIFETIME = 60.0  # bound on a worker nobody stops (EW1)
DRAIN_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0

pytestmark = pytest.mark.slow


def spawn(module: str, label: str, tmp: Path, seconds: float, *args: str) -> Child:
    status = tmp / f"{label}.json"
    stderr = tmp / f"{label}.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"e2e.{module}", *args, "--status", str(status)],
            cwd=TESTS,  # `-m` puts it on sys.path: the children import e2e, multiprocess
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
    return Child(label, 0.0, seconds, status, stderr, proc)


def read_list(url: str, key: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return [json.loads(item) for item in client.lrange(key, 0, -1)]
    finally:
        client.close()


def queue_statistics(url: str, prefix: str) -> dict[str, tuple[int, int, int, int]]:
    """(stream, leased, delayed, dead) of every queue, through the runtime's own API."""

    async def read() -> dict[str, tuple[int, int, int, int]]:
        async with RedisJobs(RedisJobsConfig(url=url, prefix=prefix)) as jobs:
            out = {}
            for queue in QUEUES:
                s = await jobs.queue_statistics(queue)
                out[queue] = (s.stream, s.leased, s.delayed, s.dead)
            return out

    return trio.run(read)


def server_leftovers(url: str, prefix: str) -> tuple[set[str], int, int]:
    """Idempotency keys with a dedupe key, and the sizes of the job and tries hashes
    (key names of rule RJ1 of `trio_sched.jobs._redis_keys`)."""
    base = f"{prefix}:jobs:"
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        dedupe = {
            key.decode()[len(base + "dedupe:") :]
            for key in client.scan_iter(match=f"{base}dedupe:*", count=1000)
        }
        return dedupe, int(client.hlen(base + "data")), int(client.hlen(base + "tries"))
    finally:
        client.close()


def wait_drained(url: str, prefix: str, accepted: int, workers: list[Child]) -> None:
    idle = {queue: (0, 0, 0, 0) for queue in QUEUES}
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        handled = len(read_list(url, handled_key(prefix)))
        stats = queue_statistics(url, prefix)
        if handled >= accepted and stats == idle:
            return
        for child in workers:
            if child.proc.poll() is not None:
                pytest.fail(f"{child.label} exited while draining:\n{child.stderr()}")
        if time.monotonic() > deadline:
            pytest.fail(f"not drained: {handled} of {accepted} handled, queues {stats}")
        time.sleep(0.1)


def stop_workers(workers: list[Child]) -> None:
    for child in workers:
        child.proc.send_signal(signal.SIGTERM)
    for child in workers:
        try:
            code = child.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{child.label} did not stop on SIGTERM:\n{child.stderr()}")
        assert code == 0, f"{child.label} exited with {code}:\n{child.stderr()}"


def status_of(child: Child) -> dict[str, Any]:
    status = child.status()
    assert status is not None, child.stderr()
    return status


def test_schedulers_and_workers_handle_each_occurrence_once(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    common = ("--url", redis_url, "--prefix", redis_prefix)
    children: list[Child] = []
    try:
        lifetime = ("--lifetime", str(WORKER_LIFETIME))
        workers = [
            spawn("_worker", f"w{i}", tmp_path, WORKER_LIFETIME, *common, *lifetime)
            for i in range(WORKERS)
        ]
        children += workers
        run = ("--seconds", str(SCHEDULER_SECONDS))
        schedulers = [
            spawn("_scheduler", f"s{i}", tmp_path, SCHEDULER_SECONDS, *common, *run, *skew)
            for i, skew in enumerate(("--skew", str(k)) for k in SKEWS)
        ]
        children += schedulers
        wait_running(children)
        wait_done(schedulers)
        enqueues = read_list(redis_url, enqueues_key(redis_prefix))
        accepted = [r for r in enqueues if r["outcome"] == "ok"]
        wait_drained(redis_url, redis_prefix, len(accepted), workers)
        stop_workers(workers)
    finally:
        kill_all(children)
    elapsed = time.monotonic() - began

    sched_status = [status_of(child) for child in schedulers]
    worker_status = [status_of(child) for child in workers]
    sched_pids = {child.proc.pid for child in schedulers}
    worker_pids = {child.proc.pid for child in workers}
    handled = read_list(redis_url, handled_key(redis_prefix))

    # The schedulers ran cleanly.
    for child, status in zip(schedulers, sched_status, strict=True):
        assert status["errors"] == [], (child.label, status["errors"])

    # None enqueued twice, producer side: one call per occurrence, accepted.
    calls = Counter(r["job"]["idempotency_key"] for r in enqueues)
    assert all(n == 1 for n in calls.values()), {k: n for k, n in calls.items() if n > 1}
    assert Counter(r["outcome"] for r in enqueues) == {"ok": len(enqueues)}
    assert {r["pid"] for r in enqueues} <= sched_pids
    assert sum(s["runtime"]["enqueued"] for s in sched_status) == len(accepted)
    assert sum(s["runtime"]["duplicates"] for s in sched_status) == 0
    fired = sum(t["fired"] for s in sched_status for t in s["tasks"].values())
    assert fired == len(enqueues)
    by_key = {r["job"]["idempotency_key"]: r["job"] for r in accepted}
    for key, job in by_key.items():
        assert key == f"{job['headers']['x-trio-sched-task']}:{job['run_at_ms']}", job
    fencing = Counter(job["fencing_token"] for job in by_key.values())
    assert all(n == 1 for n in fencing.values()), "a fencing token was granted twice"

    # None enqueued twice, server side: one dedupe key per accepted key, nothing left.
    dedupe, data, tries = server_leftovers(redis_url, redis_prefix)
    assert dedupe == set(by_key)
    assert (data, tries) == (0, 0)
    assert queue_statistics(redis_url, redis_prefix) == {q: (0, 0, 0, 0) for q in QUEUES}

    # Each occurrence handled exactly once, as enqueued, by a worker, when due.
    handled_keys = Counter(r["job"]["idempotency_key"] for r in handled)
    assert all(n == 1 for n in handled_keys.values()), {
        k: n for k, n in handled_keys.items() if n > 1
    }
    assert set(handled_keys) == set(by_key)
    tasks = {task.name: task for task in TASKS}
    for r in handled:
        assert r["job"] == by_key[r["job"]["idempotency_key"]], r
        task, job = tasks[r["job"]["headers"]["x-trio-sched-task"]], r["job"]
        assert (job["name"], job["queue"], job["content_type"], job["tenant_id"]) == (
            task.effective_job_name,
            task.queue,
            task.content_type,
            task.tenant_id,
        ), r
        assert base64.b64decode(job["payload"]) == task.payload, r
        assert task.headers.items() <= job["headers"].items(), r
        assert r["attempt"] == 1, r
        assert r["pid"] in worker_pids, r
        assert r["started_ms"] >= r["job"]["run_at_ms"], r

    # Every occurrence inside the window all three schedulers covered was handled.
    lo, hi = window(schedulers, schedulers)
    want = expected(lo, hi)
    assert len(want) >= (4 * 10 + 5), (lo, hi)  # the window spans 10 s at least
    got = {(r["job"]["headers"]["x-trio-sched-task"], r["job"]["run_at_ms"]) for r in handled}
    assert not sorted(want - got), f"never handled: {sorted(want - got)}"

    # The schedulers really competed for the occurrences.
    lock_misses = sum(t["lock_misses"] for s in sched_status for t in s["tasks"].values())
    assert lock_misses > 0

    # Both workers took part and none failed, retried, lost a lease or released a job.
    for child, status in zip(workers, worker_status, strict=True):
        w = status["worker"]
        assert status["stopped_by"] == "signal", (child.label, status)
        assert 0 < status["most_running"] <= CONCURRENCY, (child.label, status)
        assert w["succeeded"] > 0, (child.label, w)
        bad = (
            *("failed", "retried", "dead_lettered", "released", "lease_lost", "timed_out"),
            *("unknown_name", "claim_errors", "ack_errors", "in_flight"),
        )
        assert {k: w[k] for k in bad} == dict.fromkeys(bad, 0), (child.label, w)
        assert status["runtime"]["stale"] == 0, (child.label, status["runtime"])
    assert sum(s["worker"]["succeeded"] for s in worker_status) == len(handled)

    # What was measured, for the report (no timing claim is asserted). Pickup: from the
    # moment a job could be taken (enqueued, on the real clock, and due) to its handler.
    skew_of = {s["pid"]: s["skew"] for s in sched_status}
    enqueued_real = {
        r["job"]["idempotency_key"]: r["job"]["created_at_ms"] - skew_of[r["pid"]] * 1000
        for r in accepted
    }
    pickup = sorted(
        r["started_ms"] - max(r["job"]["run_at_ms"], enqueued_real[r["job"]["idempotency_key"]])
        for r in handled
    )
    wins = Counter(skew_of[r["pid"]] for r in accepted)
    wins_in_window = Counter(
        skew_of[r["pid"]] for r in accepted if lo <= r["job"]["run_at_ms"] <= hi
    )
    print(
        f"\ne2e: {elapsed:.1f} s; window {(hi - lo) / 1000:.1f} s, {len(want)} occurrences in"
        f" it, {len(accepted)} enqueued, {len(handled)} handled; lock misses {lock_misses};"
        f" enqueues by skew {sorted(wins.items())}, in the window {sorted(wins_in_window.items())};"
        f" handled by worker {[s['worker']['succeeded'] for s in worker_status]},"
        f" most running at once {[s['most_running'] for s in worker_status]};"
        f" pickup ms p50 {statistics.median(pickup):.0f} max {pickup[-1]:.0f};"
        f" misfires {[s['misfires'] for s in sched_status]}"
    )
