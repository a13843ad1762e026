"""The crash scenario shared by the Redis and Postgres jobs tests.

Two worker processes (`_crash_worker.py`) on one queue, one SIGKILLed mid-job. Every
enqueued job is completed at least once and none is lost; the only job started twice is
the one the killed process was running (redelivered after the visibility timeout, as
attempt 2); a job whose handler always fails ends in the dead letters after
``max_attempts``. The caller checks its backend's queue is empty afterwards.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from trio_sched.jobs import ConsumableJobs, Job

WORKER = Path(__file__).with_name("_crash_worker.py")


def _events(log: Path) -> list[tuple[int, str, str, int]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        pid, event, job_id, attempt = line.split()
        rows.append((int(pid), event, job_id, int(attempt)))
    return rows


async def sigkilled_worker_loses_no_job(
    jobs: ConsumableJobs, backend: str, url: str, name: str, tmp_path: Path
) -> None:
    """Run the scenario against `jobs` (visibility 1 s, 3 attempts, like the workers)."""
    log = tmp_path / "events.log"
    # The victim first: with concurrency 1, whichever process claims first takes it and
    # holds nothing else when it is killed.
    await jobs.enqueue(Job(id="victim", name="victim", queue="q"))
    work_ids = [f"work-{i}" for i in range(40)]
    for job_id in work_ids:
        await jobs.enqueue(Job(id=job_id, name="work", queue="q"))
    await jobs.enqueue(Job(id="poison", name="poison", queue="q"))

    # Popen only forks and execs (no waiting); trio.lowlevel.open_process would do the
    # same with more ceremony.
    processes = [
        subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, str(WORKER), backend, url, name, str(log)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        for _ in range(2)
    ]
    try:
        with trio.fail_after(20):
            # Polling a file the other processes write: there is no event to wait on.
            while not any(row[1:3] == ("start", "victim") for row in _events(log)):  # noqa: ASYNC110
                await trio.sleep(0.02)
            killed = next(pid for pid, event, job_id, _ in _events(log) if job_id == "victim")
            os.kill(killed, signal.SIGKILL)
            survivor = next(p for p in processes if p.pid != killed)

            def finished() -> bool:
                done = {job_id for _, event, job_id, _ in _events(log) if event == "done"}
                return done >= {*work_ids, "victim"}

            while not finished() or len(await jobs.dead_letters("q")) < 1:  # noqa: ASYNC110
                await trio.sleep(0.05)
        survivor.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(lambda: survivor.wait(10)) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            assert process.stdout is not None
            process.stdout.close()

    events = _events(log)
    starts = collections.Counter(job_id for _, event, job_id, _ in events if event == "start")
    dones = collections.Counter(job_id for _, event, job_id, _ in events if event == "done")
    # None lost, and duplicates only for the killed job.
    assert all(starts[job_id] == 1 and dones[job_id] == 1 for job_id in work_ids), starts
    victim_runs = [(pid, attempt) for pid, event, job_id, attempt in events if job_id == "victim"]
    assert victim_runs[0] == (killed, 1)
    assert victim_runs[1:] == [(survivor.pid, 2), (survivor.pid, 2)]
    assert dones["victim"] == 1
    # The always-failing job: three attempts, then a dead letter.
    assert starts["poison"] == 3
    (letter,) = await jobs.dead_letters("q")
    assert (letter.job.id, letter.job.attempt) == ("poison", 3)
    assert "poison always fails" in letter.error
    assert not any(pid == killed for pid, _, job_id, _ in events if job_id != "victim")
