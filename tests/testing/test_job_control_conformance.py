"""The `JobControl` checks of `check_jobs_runtime` (rule JS6): they run on `MemoryJobs`,
and each can fail: `_Mutant` wraps a `MemoryJobs` with one deliberate bug, and the suite
must reject it at the check named."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing

from trio_sched import ClosedError, InvalidArgumentError
from trio_sched.jobs import DeadLetter, Delivery, FailOutcome, Job, JobState, MemoryJobs
from trio_sched.jobs._control import check_key
from trio_sched.testing import check_jobs_runtime


async def _read_back(runtime: Any, job_id: str) -> Job | None:
    await trio.lowlevel.checkpoint()
    jobs: MemoryJobs = runtime.inner if isinstance(runtime, _Mutant) else runtime
    return next((job for job in jobs.enqueued if job.id == job_id), None)


class _Mutant:
    """A `MemoryJobs` (ConsumableJobs and JobControl) with one switchable bug."""

    def __init__(self, bug: str) -> None:
        self.bug = bug
        self.inner = MemoryJobs()
        self.leased: dict[str, Delivery] = {}  # key -> its live delivery
        self.revoked: set[str] = set()  # receipts of cancelled deliveries
        self.cancelled: set[str] = set()  # keys

    async def __aenter__(self) -> _Mutant:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- JobsRuntime and ConsumableJobs: forwarded, recording the leases

    @property
    def visibility_timeout(self) -> float:
        return self.inner.visibility_timeout

    @property
    def max_attempts(self) -> int:
        return self.inner.max_attempts

    async def enqueue(self, job: Job) -> None:
        await self.inner.enqueue(job)

    async def health_check(self) -> None:
        await self.inner.health_check()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def claim(self, queues: Sequence[str], *, max_jobs: int, wait: float) -> list[Delivery]:
        deliveries = await self.inner.claim(queues, max_jobs=max_jobs, wait=wait)
        for delivery in deliveries:
            if delivery.job.idempotency_key is not None:
                self.leased[delivery.job.idempotency_key] = delivery
        return deliveries

    def _ended(self, delivery: Delivery) -> None:
        key = delivery.job.idempotency_key
        if key is not None and self.leased.get(key) == delivery:
            del self.leased[key]

    async def complete(self, delivery: Delivery) -> bool:
        done = await self.inner.complete(delivery)
        self._ended(delivery)
        return done or (self.bug == "complete-survives-cancel" and delivery.receipt in self.revoked)

    async def fail(self, delivery: Delivery, *, error: str, retry_in: float | None) -> FailOutcome:
        outcome = await self.inner.fail(delivery, error=error, retry_in=retry_in)
        self._ended(delivery)
        return outcome

    async def extend(self, delivery: Delivery) -> bool:
        kept = await self.inner.extend(delivery)
        return kept or (self.bug == "extend-survives-cancel" and delivery.receipt in self.revoked)

    async def release(self, delivery: Delivery) -> None:
        await self.inner.release(delivery)
        self._ended(delivery)

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        return await self.inner.dead_letters(queue, limit=limit)

    async def redrive(self, queue: str, ids: Sequence[str] | None = None) -> int:
        return await self.inner.redrive(queue, ids)

    # -- JobControl, with the bugs

    async def job_state(self, idempotency_key: str) -> JobState:
        bug = self.bug
        if bug == "state-no-checkpoint":
            track = self.inner._tracks.get(check_key(idempotency_key))
            return JobState.UNKNOWN if track is None else track.now(trio.current_time())
        try:
            state = await self.inner.job_state(idempotency_key)
        except InvalidArgumentError:
            if bug == "no-key-check":
                return JobState.UNKNOWN
            raise
        except ClosedError:
            if bug == "closed-ignored":
                return JobState.UNKNOWN
            raise
        if bug == "keyless-by-id" and any(j.id == idempotency_key for j in self.inner.enqueued):
            return JobState.QUEUED
        if idempotency_key in self.cancelled:
            return JobState.CANCELLED
        if bug == "running-says-queued" and state is JobState.RUNNING:
            return JobState.QUEUED
        if bug == "expired-says-running" and idempotency_key in self.leased:
            return JobState.RUNNING
        if bug == "done-says-queued" and state is JobState.DONE:
            return JobState.QUEUED
        if bug == "dead-says-running" and state is JobState.DEAD:
            return JobState.RUNNING
        return state

    async def cancel(self, idempotency_key: str) -> bool:
        bug = self.bug
        if bug == "no-key-check":
            try:
                return await self.inner.cancel(idempotency_key)
            except InvalidArgumentError:
                return False
        state = await self.inner.job_state(idempotency_key)
        delivery = self.leased.get(idempotency_key)
        finished = state not in (JobState.QUEUED, JobState.RUNNING)
        if bug == "cancel-true-when-finished" and finished:
            return True
        if bug == "cancel-leaves-queued" and state is JobState.QUEUED:
            return True
        if bug == "cancel-hides-queued" and state is JobState.QUEUED:
            self.cancelled.add(idempotency_key)  # reported cancelled, still claimable
            return True
        if bug == "cancel-ignores-running" and state is JobState.RUNNING:
            return True
        if bug == "cancel-releases-running" and delivery is not None:
            await self.inner.release(delivery)  # stale from now on, but redelivered
            self.cancelled.add(idempotency_key)
            return True
        cancelled = await self.inner.cancel(idempotency_key)
        if cancelled and delivery is not None:
            self.revoked.add(delivery.receipt)
        return cancelled


async def test_the_control_checks_run_on_memory_jobs(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[str] = []
    real = MemoryJobs.cancel

    async def counted(self: MemoryJobs, idempotency_key: str) -> bool:
        calls.append(idempotency_key)
        return await real(self, idempotency_key)

    monkeypatch.setattr(MemoryJobs, "cancel", counted)
    await check_jobs_runtime(MemoryJobs, read_back=_read_back)
    assert len(calls) >= 10  # rule JS6: a MemoryJobs is a JobControl and ConsumableJobs


async def test_the_unbroken_mutant_base_passes(autojump_clock: trio.testing.MockClock) -> None:
    await check_jobs_runtime(lambda: _Mutant("none"), read_back=_read_back)


@pytest.mark.parametrize(
    ("bug", "check"),
    [
        ("keyless-by-id", "control-unknown"),
        ("cancel-true-when-finished", "control-unknown"),
        ("no-key-check", "control-bad-key"),
        ("state-no-checkpoint", "control-checkpoints"),
        ("running-says-queued", "control-life-cycle"),
        ("done-says-queued", "control-life-cycle"),
        ("dead-says-running", "control-life-cycle"),
        ("cancel-leaves-queued", "control-cancel-queued"),
        ("cancel-hides-queued", "control-cancel-queued"),
        ("cancel-ignores-running", "control-cancel-running"),
        ("cancel-releases-running", "control-cancel-running"),
        ("extend-survives-cancel", "control-cancel-running"),
        ("complete-survives-cancel", "control-cancel-running"),
        ("expired-says-running", "control-cancel-running"),
        ("closed-ignored", "control-closed"),
    ],
)
async def test_the_control_checks_reject_mutant(
    bug: str, check: str, autojump_clock: trio.testing.MockClock
) -> None:
    with pytest.raises(AssertionError) as info:
        await check_jobs_runtime(lambda: _Mutant(bug), read_back=_read_back)
    assert str(info.value).startswith(f"check_jobs_runtime [{check}]: "), str(info.value)
