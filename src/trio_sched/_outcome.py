"""How a dispatch ends: the outcome of each occurrence recorded and its loop moved on
(rules D6, D12 of `_runtime`).

A burst's enqueue leaves one `BatchOutcomes` (`Burst`); `Outcomes.record_batch` settles
each of its occurrences: accepted or a duplicate counts as fired (counters, watermark
mark, ``fired`` event), a lost lease or the timeout is reported, a transient error or a
failed call hands the occurrence to its loop (`LoopTasks.hand_over`). Occurrences that
need no dispatch (skip, lock miss, acquire error) are settled here too, outside their
loop's task; a failure while settling one ends that loop alone, reported like a crashed
loop. A taken-over occurrence (D12) leaves its loop where it is; a trigger's (O8) hands
its job or error to the caller waiting for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, final

from trio_sched import _plan
from trio_sched._config import Config
from trio_sched._enqueue import CANCELLED
from trio_sched._errors import ConflictError, RetryableError, is_transient
from trio_sched._events import EventKind
from trio_sched._lease import LeaseGuard
from trio_sched._loop import Loop, Park, Phase
from trio_sched._parking import Parking
from trio_sched._reporting import Reporter
from trio_sched._watermarks import Watermarks
from trio_sched.jobs._job import Job
from trio_sched.locks._protocol import LockLease

if TYPE_CHECKING:
    from trio_sched._tasks import LoopTasks

__all__ = ["BatchOutcomes", "Outcomes"]


class BatchOutcomes(NamedTuple):
    """What an enqueued batch left to record (D6): its parks, their guards (empty when
    none was made), jobs, per-job results (None: the call failed) and when it ended."""

    parks: list[Park]
    guards: list[LeaseGuard]
    jobs: list[Job]
    results: list[Exception | None] | None
    done_ts: float


@final
class Outcomes:
    """Records the end of every dispatch of one scheduler and moves its loop on (D6)."""

    def __init__(
        self,
        *,
        config: Config,
        watermarks: Watermarks,
        reporter: Reporter,
        parking: Parking,
    ) -> None:
        self._config = config
        self._watermarks = watermarks
        self._reporter = reporter
        self._parking = parking
        self._tasks: LoopTasks | None = None  # set once both exist (`bind`)

    def bind(self, tasks: LoopTasks) -> None:
        self._tasks = tasks

    def record_batch(self, outcomes: BatchOutcomes) -> None:
        guards = outcomes.guards
        for index, park in enumerate(outcomes.parks):
            guard = guards[index] if guards else None
            try:
                self._batch_outcome(
                    park, guard, outcomes.jobs[index], outcomes.results, index, outcomes.done_ts
                )
            except Exception as exc:
                self.crashed_outside(park, exc)

    def _batch_outcome(
        self,
        park: Park,
        guard: LeaseGuard | None,
        job: Job,
        results: list[Exception | None] | None,
        index: int,
        done_ts: float,
    ) -> None:
        """Settle one occurrence of a batch's call, or hand it to its loop (D6).
        `results` is ``None`` when the call raised or was cancelled."""
        loop = park.loop
        error: Exception | None
        if results is None:
            if guard is None or (guard.lost is None and not guard.timed_out):
                if not park.abandoned:
                    self._loop_tasks().hand_over(park, guard, job)  # enqueued on its own
                return
            # Cancelled for this occurrence's own lease or the timeout (even if the
            # runtime then raised instead of letting the cancellation through).
            error = guard.lost if guard.lost is not None else self.timed_out(loop)
        elif results[index] is CANCELLED:
            # By its own guard (a plain runtime's burst): lost lease or timeout.
            assert guard is not None
            error = guard.lost if guard.lost is not None else self.timed_out(loop)
        else:
            error = results[index]
            if isinstance(error, ConflictError):
                error = None  # already enqueued under its idempotency key: fired
                park.duplicate = True
            if error is not None and is_transient(error) and not park.abandoned:
                self._loop_tasks().hand_over(park, guard, job)  # retried on its own (D8)
                return
        info = park.info
        assert info is not None
        lateness = done_ts - info.ms / 1000 - park.delay  # from its jittered instant (P6)
        self.conclude(park, None if error is not None else job, error, lateness)

    def conclude(
        self, park: Park, job: Job | None, error: Exception | None, lateness: float | None
    ) -> None:
        """Record the end of the dispatch of `park` (fired when `error` is None) and move
        its loop on; a taken-over occurrence (D12) leaves its loop where it is."""
        loop = park.loop
        decision = park.decision
        assert decision is not None
        park.phase = Phase.DONE
        lease = park.lease
        if park.manual:
            self._manual_outcome(park, job, error, lateness)
            return
        if park.backfill:
            self._backfill_outcome(park, job, error, lateness)
            return
        if park.taken_over:
            self.dispatched(loop, decision, job, error, lease, lateness)
            return
        self._parking.settle(loop, park)
        self.dispatched(loop, decision, job, error, lease, lateness)
        loop.cursor = loop.task.cron.next_after(decision.nominal)
        self._parking.move_on(park)

    def settled_taken_over(self, park: Park) -> None:
        """A taken-over occurrence the skip policy dropped (D12): mark its record, so no
        other instance takes it over again."""
        assert park.lease is not None
        self._watermarks.settle(park.lease)

    def _manual_outcome(
        self, park: Park, job: Job | None, error: Exception | None, lateness: float | None
    ) -> None:
        loop = park.loop
        decision = park.decision
        assert decision is not None
        if error is not None:
            self._reporter.dispatch_failure(loop, decision.nominal, error, manual=True)
            self.settle_detached(park, error)
            return
        assert job is not None
        loop.triggered += 1
        self._reporter.emit(
            EventKind.FIRED, loop.task.name, decision.nominal, lateness, job=job, manual=True
        )
        self.settle_detached(park, job)

    def _backfill_outcome(
        self, park: Park, job: Job | None, error: Exception | None, lateness: float | None
    ) -> None:
        """O14: a backfilled occurrence counts as fired and moves the watermark like a
        scheduled one (never back), unless its job was already there."""
        loop = park.loop
        decision = park.decision
        assert decision is not None
        if error is not None:
            self._reporter.dispatch_failure(loop, decision.nominal, error)
            self.settle_detached(park, error)
            return
        assert job is not None
        if not park.duplicate:
            loop.fired += 1
            info = park.info
            assert info is not None
            self._watermarks.mark(loop.wm_name, loop.task.name, info.ms, park.lease)
            self._reporter.emit(
                EventKind.FIRED,
                loop.task.name,
                decision.nominal,
                lateness,
                job=job,
                reason="backfill",
            )
        self.settle_detached(park, job)

    def report_backfill_failure(self, park: Park, error: Exception) -> None:
        """A backfilled occurrence whose lock request failed (O14)."""
        self._reporter.error(park.loop, park.nominal, error)

    @staticmethod
    def settle_detached(park: Park, result: Job | Exception) -> None:
        """Hand a detached park's outcome to whoever waits for it (a trigger, O8)."""
        park.result = result
        if park.settled is not None:
            park.settled.set()

    def conclude_safely(self, park: Park, job: Job | None, error: Exception | None) -> None:
        try:
            self.conclude(park, job, error, None)
        except Exception as exc:
            self.crashed_outside(park, exc)

    def settle_outside(self, park: Park) -> None:
        """Settle a decided `park` that needs no dispatch (skip, lock miss, acquire
        error) outside its loop's task, and move the loop on (D6)."""
        try:
            self._parking.settle(park.loop, park)
            self._parking.move_on(park)
        except Exception as exc:
            self.crashed_outside(park, exc)

    def crashed_outside(self, park: Park, exc: Exception) -> None:
        """A bug or an impossible schedule while settling `park` outside its loop's task
        (in a batch or the timer pass): report it as a crashed loop is reported, end
        that loop (it is not parked again) and keep every other task running."""
        loop = park.loop
        self._reporter.crash(loop, exc)
        if park.detached:
            self.settle_detached(park, exc)
            return  # not the loop's own park: the loop goes on
        # Stop it as `unregister` would: a park re-armed before the failure stops
        # waiting.
        loop.park = park
        loop.stop()
        if not park.abandoned:  # it was being settled, not waiting: end it the same way
            park.abandoned = True
            park.phase = Phase.DONE
        loop.park = None  # detached: nothing refers to it any more

    def dispatched(
        self,
        loop: Loop,
        decision: _plan.Decision,
        job: Job | None,
        error: Exception | None,
        lease: LockLease | None = None,
        lateness: float | None = None,
    ) -> None:
        """Count an ended dispatch: fired (`error` None) or failed. `lateness` is up to
        the enqueue's return (E2; the decision's when None), `lease` the occurrence's,
        whose record is marked dispatched (D12)."""
        if error is not None:
            self._reporter.dispatch_failure(
                loop, decision.nominal, error, lateness=decision.lateness
            )
            return
        assert job is not None
        self._record_fired(
            loop, decision, job, lease, decision.lateness if lateness is None else lateness
        )

    def timed_out(self, loop: Loop) -> RetryableError:
        return RetryableError(
            f"dispatch of task {loop.task.name!r} did not finish within "
            f"dispatch_timeout={self._config.dispatch_timeout}s"
        )

    def _record_fired(
        self,
        loop: Loop,
        decision: _plan.Decision,
        job: Job,
        lease: LockLease | None,
        lateness: float,
    ) -> None:
        loop.fired += 1
        loop.last_fire = decision.nominal
        loop.last_lateness = lateness
        self._watermarks.mark(
            loop.wm_name, loop.task.name, self._parking.nominal(decision.nominal).ms, lease
        )
        self._reporter.emit(EventKind.FIRED, loop.task.name, decision.nominal, lateness, job=job)

    def _loop_tasks(self) -> LoopTasks:
        assert self._tasks is not None, "Outcomes.bind was not called"
        return self._tasks
