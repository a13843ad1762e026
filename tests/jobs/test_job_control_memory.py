"""`MemoryJobs` as a `JobControl` (rules JC1-JC5, J11): a `Worker` cancels the handler of a
job cancelled while it runs within its keeper period (WK3), push handlers, and what the
dedupe window forgets."""

from __future__ import annotations

import trio
import trio.testing

from trio_sched.jobs import Job, JobControl, JobState, MemoryJobs, open_worker


def _job(key: str, queue: str = "default") -> Job:
    return Job(id=f"id-{key}", name="work", queue=queue, idempotency_key=key)


async def test_worker_cancels_the_handler_of_a_cancelled_job_within_its_keeper_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs(visibility_timeout=3.0)
    assert isinstance(jobs, JobControl)
    started: list[float] = []
    cancelled: list[float] = []
    running, stopped = trio.Event(), trio.Event()

    async def work(job: Job) -> None:
        started.append(trio.current_time())
        running.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(trio.current_time())
            stopped.set()

    async with jobs, open_worker(jobs, {"work": work}, poll_wait=0.5) as worker:
        await jobs.enqueue(_job("k"))
        await running.wait()
        await trio.sleep(0.7)  # somewhere between two keeper ticks
        assert await jobs.job_state("k") is JobState.RUNNING
        asked = trio.current_time()
        assert await jobs.cancel("k") is True
        assert await jobs.job_state("k") is JobState.CANCELLED
        with trio.fail_after(3.0 / 3 + 0.01):
            await stopped.wait()
        assert cancelled[0] - asked <= 3.0 / 3
        await trio.sleep(10.0)  # several visibility timeouts: nothing comes back
        stats = worker.statistics()
        assert len(started) == 1
        assert (stats.lease_lost, stats.succeeded, stats.failed) == (1, 0, 0)
        assert jobs.statistics().cancelled == 1
        assert jobs.statistics().in_flight == 0
        assert await jobs.job_state("k") is JobState.CANCELLED


async def test_push_handlers_buffered_and_running_jobs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs()
    ran: list[str] = []
    stopped: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.id)
        try:
            await trio.sleep(5)
        except trio.Cancelled:
            stopped.append(job.id)
            raise

    jobs.subscribe("push", handler)
    for key in ("buffered", "running", "done"):
        await jobs.enqueue(_job(key, "push"))  # not entered yet: buffered (J1)
    assert await jobs.cancel("buffered") is True
    async with jobs:
        await trio.sleep(1)
        assert ran == ["id-running", "id-done"]
        assert await jobs.job_state("running") is JobState.RUNNING
        assert await jobs.cancel("running") is True
        await trio.testing.wait_all_tasks_blocked()
        assert stopped == ["id-running"]
        await trio.sleep(5)
        assert await jobs.job_state("done") is JobState.DONE
        assert await jobs.job_state("running") is JobState.CANCELLED
        assert await jobs.job_state("buffered") is JobState.CANCELLED
        stats = jobs.statistics()
        assert (stats.completed, stats.cancelled, stats.pending) == (1, 2, 0)


async def test_states_follow_retries_dead_letters_redrive_and_the_dedupe_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    jobs = MemoryJobs(dedupe_window=2, max_attempts=2)
    await jobs.enqueue(_job("a"))
    (delivery,) = await jobs.claim(["default"], max_jobs=1, wait=0)
    assert await jobs.fail(delivery, error="x", retry_in=1.0) == "retried"
    assert await jobs.job_state("a") is JobState.QUEUED
    await trio.sleep(1)
    (delivery,) = await jobs.claim(["default"], max_jobs=1, wait=0)
    assert await jobs.fail(delivery, error="x", retry_in=1.0) == "dead_lettered"
    assert await jobs.job_state("a") is JobState.DEAD
    assert await jobs.redrive("default") == 1
    assert await jobs.job_state("a") is JobState.QUEUED
    for key in ("b", "c"):  # the window keeps the last two keys: "a" is forgotten
        await jobs.enqueue(_job(key))
    assert await jobs.job_state("a") is JobState.UNKNOWN
    assert await jobs.cancel("a") is False
    assert await jobs.job_state("c") is JobState.QUEUED
