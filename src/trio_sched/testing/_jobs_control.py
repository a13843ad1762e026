"""The `JobControl` checks of `check_jobs_runtime` (rule JS6 of
`trio_sched.testing._jobs`): job states through the life cycle and ``cancel`` of queued,
running and finished jobs, against rules JC1-JC5 of `trio_sched.jobs._control`.

They need a runtime workers can take from (`ConsumableJobs`): a job is RUNNING only once
claimed. Each check uses a queue of its own (``{queue}:control:{n}``), so the jobs of
the other checks are never claimed here. ``control-cancel-running`` waits one
``visibility_timeout`` (plus a margin): give real servers a short one (about a second).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import trio
import trio.testing

from trio_sched._errors import ClosedError, InvalidArgumentError
from trio_sched.jobs._consumable import ConsumableJobs, Delivery
from trio_sched.jobs._control import JobControl, JobState
from trio_sched.jobs._job import Job
from trio_sched.testing._check import expect, fail

__all__ = ["CONTROL_CHECKS", "ControlRuntime"]

_SUITE = "check_jobs_runtime"

# What finished jobs may answer (JC4: remembered, or forgotten already).
_AFTER_DONE = (JobState.DONE, JobState.UNKNOWN)
_AFTER_DEAD = (JobState.DEAD, JobState.UNKNOWN)
_AFTER_CANCEL = (JobState.CANCELLED, JobState.UNKNOWN)


class ControlRuntime(ConsumableJobs, JobControl, Protocol):
    """What the checks below run on."""


class _Ctx(Protocol):
    """The part of the suite's context the checks use (`trio_sched.testing._jobs`)."""

    @property
    def runtime(self) -> Any: ...

    def make(self) -> Any: ...

    @property
    def queue(self) -> str: ...

    def job(self, label: str, **fields: Any) -> Job: ...

    def ikey(self, label: str) -> str: ...


class _Control:
    """One check's view of the runtime: its queue, and helpers that name the check."""

    def __init__(self, ctx: _Ctx, check: str) -> None:
        self.ctx = ctx
        self.check = check
        self.runtime: ControlRuntime = ctx.runtime
        self.queue = f"{ctx.queue}:control:{ctx.ikey(check).rsplit(':', 1)[-1]}"

    def expect(self, condition: bool, message: str) -> None:
        expect(condition, _SUITE, self.check, message)

    async def enqueue(self, label: str, **fields: Any) -> Job:
        job = self.ctx.job(label, queue=self.queue, idempotency_key=self.ctx.ikey(label), **fields)
        await self.runtime.enqueue(job)
        return job

    async def state(self, job: Job, want: tuple[JobState, ...], when: str) -> JobState:
        assert job.idempotency_key is not None
        state = await self.runtime.job_state(job.idempotency_key)
        self.expect(
            state in want,
            f"job_state of a job {when} is {state!r}, want {' or '.join(map(str, want))}",
        )
        return state

    async def cancel(self, job: Job, want: bool, when: str) -> None:
        assert job.idempotency_key is not None
        got = await self.runtime.cancel(job.idempotency_key)
        self.expect(got is want, f"cancel of a job {when} returned {got!r}, want {want}")

    async def claim(self, jobs: list[Job]) -> list[Delivery]:
        """Claim until every job of `jobs` is delivered (a few seconds at most)."""
        want = {job.id for job in jobs}
        got: dict[str, Delivery] = {}
        with trio.move_on_after(max(5.0, self.runtime.visibility_timeout)):
            while want - set(got):
                for delivery in await self.runtime.claim([self.queue], max_jobs=10, wait=0.5):
                    got[delivery.job.id] = delivery
        missing = want - set(got)
        if missing:
            fail(_SUITE, self.check, f"claim never delivered the queued job(s) {sorted(missing)}")
        extra = set(got) - want
        self.expect(not extra, f"claim delivered job(s) that were not queued: {sorted(extra)}")
        return [got[job.id] for job in jobs]

    async def claims_nothing(self, when: str) -> None:
        taken = await self.runtime.claim([self.queue], max_jobs=10, wait=0)
        self.expect(not taken, f"claim delivered {[d.job.id for d in taken]} {when}")

    async def wait_lease(self) -> None:
        """Sleep past one visibility timeout (a claim taken now has expired then)."""
        await trio.sleep(self.runtime.visibility_timeout * 1.2 + 0.25)


async def _unknown(ctx: _Ctx) -> None:
    c = _Control(ctx, "control-unknown")
    never = ctx.ikey("never")
    got = await c.runtime.job_state(never)
    c.expect(got is JobState.UNKNOWN, f"job_state of a key never enqueued is {got!r}")
    cancelled = await c.runtime.cancel(never)
    c.expect(cancelled is False, f"cancel of a key never enqueued returned {cancelled!r}")
    keyless = ctx.job("keyless", queue=c.queue)
    await c.runtime.enqueue(keyless)  # jobs without a key are not found (JC1)
    got = await c.runtime.job_state(keyless.id)
    c.expect(got is JobState.UNKNOWN, f"job_state by the id of a keyless job is {got!r}")
    (delivery,) = await c.claim([keyless])
    await c.runtime.complete(delivery)


async def _bad_keys(ctx: _Ctx) -> None:
    c = _Control(ctx, "control-bad-key")
    for bad in (None, 42, "", "a\x00b"):
        for method in ("job_state", "cancel"):
            try:
                await getattr(c.runtime, method)(bad)
            except InvalidArgumentError:
                continue
            fail(_SUITE, c.check, f"{method}({bad!r}) did not raise InvalidArgumentError")


async def _checkpoints(ctx: _Ctx) -> None:
    c = _Control(ctx, "control-checkpoints")
    job = await c.enqueue("checkpoint")
    assert job.idempotency_key is not None
    for method in ("job_state", "cancel"):
        try:
            with trio.testing.assert_checkpoints():
                await getattr(c.runtime, method)(job.idempotency_key)
        except AssertionError:
            fail(_SUITE, c.check, f"{method} is not a checkpoint")


async def _life_cycle(ctx: _Ctx) -> None:
    c = _Control(ctx, "control-life-cycle")
    done, dead, retried = [await c.enqueue(label) for label in ("done", "dead", "retried")]
    for job in (done, dead, retried):
        await c.state(job, (JobState.QUEUED,), "just enqueued")
    later = await c.enqueue("delayed", run_at=_in_an_hour())
    await c.state(later, (JobState.QUEUED,), "delayed until later")
    d_done, d_dead, d_retried = await c.claim([done, dead, retried])
    for job in (done, dead, retried):
        await c.state(job, (JobState.RUNNING,), "claimed")
    c.expect(await c.runtime.extend(d_done), "extend of a fresh claim returned False")
    await c.state(done, (JobState.RUNNING,), "claimed and extended")
    c.expect(await c.runtime.complete(d_done), "complete of a fresh claim returned False")
    await c.state(done, _AFTER_DONE, "completed")
    outcome = await c.runtime.fail(d_dead, error="check: dead", retry_in=None)
    c.expect(outcome == "dead_lettered", f"fail(retry_in=None) returned {outcome!r}")
    await c.state(dead, _AFTER_DEAD, "dead-lettered")
    if c.runtime.max_attempts > 1:
        outcome = await c.runtime.fail(d_retried, error="check: retry", retry_in=3600.0)
        c.expect(outcome == "retried", f"fail(retry_in=3600) returned {outcome!r}")
        await c.state(retried, (JobState.QUEUED,), "waiting for its retry")
    else:
        await c.runtime.release(d_retried)
        await c.state(retried, (JobState.QUEUED,), "released")
    await c.cancel(done, False, "completed")
    await c.cancel(dead, False, "dead-lettered")
    for job in (retried, later):  # leave nothing queued behind
        await c.cancel(job, True, "queued")


async def _cancel_queued(ctx: _Ctx) -> None:
    c = _Control(ctx, "control-cancel-queued")
    now, later = await c.enqueue("now"), await c.enqueue("later", run_at=_in_an_hour())
    kept = await c.enqueue("kept")
    for job in (now, later):
        await c.cancel(job, True, "queued")
        await c.state(job, _AFTER_CANCEL, "cancelled while queued")
        await c.cancel(job, False, "already cancelled")
    (delivery,) = await c.claim([kept])  # fails if a cancelled job is delivered
    await c.claims_nothing("after cancelling its queued jobs")
    await c.runtime.complete(delivery)


async def _cancel_running(ctx: _Ctx) -> None:
    c = _Control(ctx, "control-cancel-running")
    revoked, expiring = await c.enqueue("revoked"), await c.enqueue("expiring")
    d_revoked, _ = await c.claim([revoked, expiring])
    await c.cancel(revoked, True, "running")
    await c.state(revoked, _AFTER_CANCEL, "cancelled while running")
    await c.cancel(revoked, False, "already cancelled")
    c.expect(
        not await c.runtime.extend(d_revoked),
        "extend of a cancelled job's lease returned True (the lease was not revoked)",
    )
    c.expect(
        not await c.runtime.complete(d_revoked),
        "complete of a cancelled job's lease returned True (the lease was not revoked)",
    )
    outcome = await c.runtime.fail(d_revoked, error="check: revoked", retry_in=0.0)
    c.expect(outcome == "stale", f"fail of a cancelled job's lease returned {outcome!r}")
    await c.wait_lease()
    # JC2: the other lease expired unextended: queued again, and redelivered.
    await c.state(expiring, (JobState.QUEUED,), "whose lease expired")
    (again,) = await c.claim([expiring])  # fails if the cancelled job comes back
    await c.state(expiring, (JobState.RUNNING,), "claimed again after its lease expired")
    await c.runtime.complete(again)
    await c.state(revoked, _AFTER_CANCEL, "cancelled while running, a lease later")
    await c.claims_nothing("after its lease expired: the cancelled job was redelivered")


async def _closed(ctx: _Ctx) -> None:
    check = "control-closed"
    async with ctx.make() as other:
        await other.aclose()
        for method in ("job_state", "cancel"):
            try:
                await getattr(other, method)(ctx.ikey("closed"))
            except ClosedError:
                continue
            fail(_SUITE, check, f"{method} on a closed runtime did not raise ClosedError")


def _in_an_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


CONTROL_CHECKS: tuple[tuple[str, Callable[[Any], Awaitable[None]]], ...] = (
    ("control-unknown", _unknown),
    ("control-bad-key", _bad_keys),
    ("control-checkpoints", _checkpoints),
    ("control-life-cycle", _life_cycle),
    ("control-cancel-queued", _cancel_queued),
    ("control-cancel-running", _cancel_running),
    ("control-closed", _closed),
)
