"""A loop's own Trio task, and the dispatches that are not a burst's (rules D7, D8 of
`_runtime`): an occurrence a burst handed back (a transient enqueue error, a failed
``enqueue_many`` call, or a call cancelled for another occurrence's lease) is retried
by a task started for its loop, which then parks the loop again and ends; and the
retry of a detached occurrence (a takeover's, D12, or a trigger's, O8) under a guard
of its own.
"""

from __future__ import annotations

from typing import final

import trio

from trio_sched import _plan
from trio_sched._burst import Burst
from trio_sched._config import Config
from trio_sched._enqueue import ran_out
from trio_sched._errors import ClosedError, ConflictError, RetryableError, is_transient
from trio_sched._lease import LeaseGuard, LeaseKeeper
from trio_sched._loop import InFlight, Loop, Park, Phase
from trio_sched._parking import Parking
from trio_sched._reporting import Reporter
from trio_sched._timer import TimerHeap
from trio_sched.jobs._job import Job, JobsRuntime
from trio_sched.locks._protocol import LockLease

__all__ = ["LoopTasks"]


@final
class LoopTasks:
    """Starts a loop's Trio task to retry a handed-back occurrence (D7, D8), and runs
    the guarded retry of a detached occurrence."""

    def __init__(
        self,
        *,
        timer: TimerHeap,
        jobs: JobsRuntime,
        config: Config,
        leases: LeaseKeeper,
        reporter: Reporter,
        parking: Parking,
        burst: Burst,
    ) -> None:
        self._timer = timer
        self._jobs = jobs
        self._config = config
        self._wall_clock = config.wall_clock
        self._leases = leases
        self._reporter = reporter
        self._parking = parking
        self._burst = burst
        self._outcomes = burst.outcomes
        self.loops_nursery: trio.Nursery | None = None  # set by the scheduler while it runs

    def _wall_time(self) -> float:
        return self._wall_clock().timestamp()

    async def run_loop(self, loop: Loop, resume: Park) -> None:
        """The Trio task of a loop, started only to dispatch or retry `resume`, an
        occurrence its burst handed over (D6); it ends once the loop is parked again."""
        try:
            async with trio.open_nursery() as nursery:
                loop.nursery = nursery
                try:
                    await self._loop_body(loop, resume)
                finally:
                    loop.nursery = None  # a dormant loop keeps no Trio objects alive (D3)
                nursery.cancel_scope.cancel()  # renewers of finished dispatches, if any
        except Exception as exc:
            # A bug or an impossible schedule: report, keep the other tasks running.
            self._reporter.crash(loop, exc)

    async def _loop_body(self, loop: Loop, resume: Park | None) -> None:
        assert loop.cursor is not None  # set when the loop was started (D2)
        # A handed-over occurrence (`resume`, D6) is dispatched even when stopping (D11).
        while resume is not None or (
            not loop.stopping and loop.dormant is None and loop.park is None
        ):
            # One dispatch scope serves every dispatch of this loop until one of them is
            # cancelled (lease lost, timeout); then a fresh scope is made (D7). Nothing
            # but a dispatch in flight is ever cancelled through it.
            with trio.CancelScope() as scope:
                loop.dispatch_scope = scope
                first, resume = resume, None
                await self._occurrences(loop, first)
            loop.dispatch_scope = None
            in_flight, loop.in_flight = loop.in_flight, None
            if in_flight is not None:
                self._finish_dispatch(loop, in_flight, None)
                loop.cursor = loop.task.cron.next_after(in_flight.nominal)

    async def _occurrences(self, loop: Loop, first: Park | None) -> None:
        """Settle or dispatch the handed-over occurrence `first` (D6) if any, then park
        the loop on its next occurrence and end this task: the loop parks *detached*
        (no Trio task while it waits); the burst's batch moves it on and starts a task
        again only to hand it an occurrence to dispatch or retry on its own.
        """
        loop.park = None
        done: Park | None = None  # the last park this task finished with, reused
        while first is not None or not loop.stopping:
            park, first = first, None
            if park is None:
                self._parking.next_park(loop, done)
                return  # parked detached (D6) or dormant (D3): this task ends
            if park.abandoned:
                return  # stopped (D11)
            done = park  # nothing else refers to it any more
            if self._parking.settle(loop, park):
                decision, lease = park.decision, park.lease
                assert decision is not None
                assert lease is not None
                await self._dispatch_occurrence(loop, park, decision, lease)
                loop.cursor = loop.task.cron.next_after(decision.nominal)

    async def _dispatch_occurrence(
        self, loop: Loop, park: Park, decision: _plan.Decision, lease: LockLease
    ) -> None:
        job = self._burst.occurrence_job(park, self._wall_clock())
        scope = loop.dispatch_scope
        assert scope is not None
        assert loop.nursery is not None
        guard = self._leases.arm(
            lease, loop.ttl, park.acquired_at, scope, loop.nursery, park.expires
        )
        in_flight = loop.in_flight = InFlight(decision, guard, park.delay)
        self._burst.in_flight += 1
        error: Exception | None = None
        # D8: an on-time skip occurrence is retried inside the grace window only.
        retry_until: float | None = None
        if not (decision.late or loop.fire_once):
            retry_until = park.due_ts + self._config.misfire_grace
        try:
            await self.enqueue_with_retry(job, retry_until, guard)
        except Exception as exc:
            error = exc
        finally:
            guard.finish()
            self._burst.in_flight -= 1
        # Yield once before the bookkeeping (counters, watermark, event, next occurrence),
        # so loops retrying together all enqueue first (D7). Shielded: the outcome is
        # decided, a cancellation now must not turn it into a failure.
        await trio.lowlevel.cancel_shielded_checkpoint()
        # Not cancelled: the dispatch ended by itself (success or error).
        loop.in_flight = None
        self._finish_dispatch(loop, in_flight, job, error)
        if scope.cancel_called:
            # The lease was lost or time ran out just as the enqueue returned: the scope
            # is cancelled but nothing noticed. Unwind it now (the loop makes a new one).
            await trio.lowlevel.checkpoint()

    def _finish_dispatch(
        self,
        loop: Loop,
        in_flight: InFlight,
        job: Job | None,
        error: Exception | None = None,
    ) -> None:
        """Record the outcome of a dispatch; `job` None means its scope was cancelled."""
        guard = in_flight.guard
        if job is None:
            error = guard.lost if guard.lost is not None else self._outcomes.timed_out(loop)
        decision = in_flight.decision
        # E2: to the enqueue, from its jittered instant (P6 of `_plan`).
        lateness = self._wall_time() - decision.nominal.timestamp() - in_flight.delay
        self._outcomes.dispatched(loop, decision, job, error, guard.lease, lateness)

    async def enqueue_with_retry(
        self, job: Job, retry_until: float | None, guard: LeaseGuard | None = None
    ) -> None:
        """Enqueue, retrying transient errors (D8) until `retry_until` (wall time; None:
        without a bound of its own). `ConflictError` counts as enqueued. Under a
        `guard`, no attempt starts once the lease ran out by this instance's clock
        (D12: `LeaseLostError`)."""
        backoff = self._config.retry_backoff
        error: Exception | None = None
        while True:
            if error is not None:
                if retry_until is not None and self._wall_time() + backoff > retry_until:
                    raise error
                await self._timer.sleep_until(trio.current_time() + backoff)
                backoff = min(backoff * 2, self._config.retry_backoff_max)
            if guard is not None and guard.expires <= trio.current_time():
                raise ran_out(guard.lease.key)
            try:
                await self._jobs.enqueue(job)
                return
            except ConflictError:
                return  # already enqueued under this idempotency key: success
            except Exception as exc:
                if not is_transient(exc):
                    raise
                error = exc

    def _wake(self, park: Park) -> None:
        """Hand `park` to its loop: start a Trio task for the (detached) loop (D6), which
        then settles or dispatches it on its own."""
        park.phase = Phase.DONE
        loop = park.loop
        nursery = self.loops_nursery
        if nursery is None:  # hard stop: nothing runs any more; locks end by their TTL
            park.abandoned = True
            return
        loop.park = park
        nursery.start_soon(self.run_loop, loop, park, name=f"trio_sched:{loop.task.name}")

    def hand_over(self, park: Park, guard: LeaseGuard | None, job: Job) -> None:
        """Give a batch's occurrence to its loop (D6) with the lease as the batch's guard
        last renewed it, so the loop's own guard renews it on time. A taken-over
        occurrence (D12) is retried by a task of its own instead: its loop is on a later
        occurrence by now."""
        if guard is not None:
            park.lease = guard.lease
            park.expires = guard.expires
        if not park.detached:
            self._wake(park)
            return
        nursery = self.loops_nursery
        if nursery is None:  # hard stop: nothing runs any more
            park.abandoned = True
            self._outcomes.settle_detached(park, ClosedError("the scheduler stopped"))
            return
        nursery.start_soon(self._retry_detached, park, job, nursery)

    async def _retry_detached(self, park: Park, job: Job, nursery: trio.Nursery) -> None:
        """D8 for a taken-over or triggered occurrence: enqueue again under its guard
        until ``dispatch_timeout``, then record the outcome."""
        lease = park.lease
        assert lease is not None
        error = await self.guarded_enqueue(
            job, lease, park.loop.ttl, park.acquired_at, nursery, park.expires
        )
        info = park.info
        assert info is not None
        lateness = self._wall_time() - info.ms / 1000 - park.delay
        try:
            self._outcomes.conclude(park, job if error is None else None, error, lateness)
        except Exception as exc:
            self._reporter.crash(park.loop, exc)
            self._outcomes.settle_detached(park, exc)

    async def guarded_enqueue(
        self,
        job: Job,
        lease: LockLease,
        ttl: float,
        acquired_at: float,
        nursery: trio.Nursery,
        expires: float | None = None,
    ) -> Exception | None:
        """Enqueue `job` again (a detached occurrence's retry, D8) under `lease` in its
        own cancel scope (D7); `expires` as for `LeaseKeeper.arm`."""
        self._burst.in_flight += 1
        try:
            with trio.CancelScope() as scope:
                guard = self._leases.arm(lease, ttl, acquired_at, scope, nursery, expires)
                try:
                    await self.enqueue_with_retry(job, None, guard)
                    return None
                finally:
                    guard.finish()
            if guard.lost is not None:
                return guard.lost
            return RetryableError(
                f"dispatch of job {job.name!r} did not finish within "
                f"dispatch_timeout={self._config.dispatch_timeout}s"
            )
        except Exception as exc:
            return exc
        finally:
            self._burst.in_flight -= 1
