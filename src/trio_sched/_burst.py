"""The burst: every occurrence due at one instant, decided, acquired, enqueued and
recorded together (rules D5, D6 of `_runtime`).

At the end of each timer pass `process_due` decides what became due (pure
`_plan.decide`, one wall-clock read); skips are settled at once, the rest is acquired
with ONE ``acquire_batch`` call and enqueued together: one ``enqueue_many`` call for a
`BatchJobsRuntime`, or one ``enqueue`` per job, ``ENQUEUE_CONCURRENCY`` at once, for a
plain runtime (`_enqueue.enqueue_each`), each under its own lease guard (`_lease`).
Then each outcome is recorded (counters, watermark, event) and its loop moved on to its
next occurrence (`Parking`), or handed to its loop's own task to retry (`LoopTasks`):
that bookkeeping is `_outcome.Outcomes`, made once per scheduler by the `Burst`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, final

import trio

from trio_sched import _plan
from trio_sched._config import Config
from trio_sched._enqueue import ENQUEUE_CONCURRENCY, enqueue_each, ran_out
from trio_sched._errors import ConflictError, InvalidArgumentError
from trio_sched._lease import BatchGuard, LeaseKeeper
from trio_sched._loop import H_FENCING, Park, Phase
from trio_sched._outcome import BatchOutcomes, Outcomes
from trio_sched._overlap import Overlap, screened
from trio_sched._parking import Parking
from trio_sched._reporting import Reporter
from trio_sched._task import OverlapPolicy, Task
from trio_sched._timer import TimerHeap
from trio_sched._watermarks import Pending, Watermarks
from trio_sched.jobs._job import Job, JobsRuntime
from trio_sched.locks._protocol import AcquireRequest, Held, LockLease, LockProvider, Paused

if TYPE_CHECKING:
    from trio_sched._takeover import Takeovers
    from trio_sched._tasks import LoopTasks

__all__ = ["ENQUEUE_CONCURRENCY", "Burst", "task_job"]

# D5: a burst larger than this is decided, acquired and enqueued in chunks of this many
# occurrences, shortest task periods first, one chunk after the other, and its outcomes
# are recorded after the last chunk's enqueue, a chunk per step: no step of a burst
# holds the Trio loop long, and recording never delays an enqueue.
BURST_CHUNK: Final = 1000
_MISSING: Final = _plan.Decision(_plan.Action.WAIT, datetime(1970, 1, 1, tzinfo=UTC), 0.0)


def _period_of(park: Park) -> float:
    return park.loop.period


def task_job(
    task: Task,
    job_id: str,
    idem: str,
    headers: Mapping[str, str],
    run_at: datetime,
    created: datetime,
    fencing_token: int,
) -> Job:
    """The `Job` of one occurrence (scheduled or manual) of `task`."""
    return Job(
        id=job_id,
        name=task.effective_job_name,
        queue=task.queue,
        payload=task.payload,
        headers=headers,
        content_type=task.content_type,
        tenant_id=task.tenant_id,
        idempotency_key=idem,
        run_at=run_at,
        created_at=created,
        fencing_token=fencing_token,
    )


@final
class Burst:
    """Decides, acquires and enqueues the bursts of one scheduler (D5, D6); its
    `outcomes` records them."""

    def __init__(
        self,
        *,
        timer: TimerHeap,
        locks: LockProvider,
        jobs: JobsRuntime,
        enqueue_many: Callable[[Sequence[Job]], Awaitable[list[Exception | None]]] | None,
        config: Config,
        leases: LeaseKeeper,
        watermarks: Watermarks,
        reporter: Reporter,
        parking: Parking,
        takeovers: Takeovers,
    ) -> None:
        self._timer = timer
        self._locks = locks
        self._jobs = jobs
        self._enqueue_many = enqueue_many
        self._config = config
        self._wall_clock = config.wall_clock
        self._leases = leases
        self._parking = parking
        self._takeovers = takeovers
        # Counters, watermark marks, events and moving loops on (D6), for every burst.
        self.outcomes = Outcomes(
            config=config, watermarks=watermarks, reporter=reporter, parking=parking
        )
        # O12: FORBID and REPLACE tasks' occurrences are screened before their enqueue.
        self._overlap = Overlap(
            locks=locks,
            jobs=jobs,
            config=config,
            reporter=reporter,
            watermarks=watermarks,
            outcomes=self.outcomes,
        )
        self.services: trio.Nursery | None = None  # set by the scheduler while it runs
        self.in_flight = 0  # dispatches in flight (bursts, loop retries, triggers)
        self.batches = Pending()  # acquire batches in flight (D5, D6)

    def bind(self, tasks: LoopTasks) -> None:
        self.outcomes.bind(tasks)

    def process_due(self) -> None:
        """Timer pass end: decide everything that became due together (D5): at once up
        to `BURST_CHUNK` occurrences, the rest chunk by chunk from the burst's task."""
        due = self._parking.take_due()
        if not due:
            return
        rest: list[Park] = []
        if len(due) > BURST_CHUNK:
            # Shortest periods first: their next occurrence is the nearest, so their
            # lateness matters most (a minute's burst must not delay the seconds').
            due.sort(key=_period_of)
            due, rest = due[:BURST_CHUNK], due[BURST_CHUNK:]
        firing = self._decide(due)
        if firing or rest:
            assert self.services is not None
            self.batches.enter()
            self.services.start_soon(self._burst, firing, rest)

    async def _burst(self, firing: list[Park], rest: list[Park]) -> None:
        """D5, D6: acquire and enqueue `firing`, then decide, acquire and enqueue each
        chunk of `rest` in turn; a chunked burst records its outcomes after its last
        enqueue, a chunk per step."""
        try:
            later: list[BatchOutcomes] | None = [] if rest else None
            start = 0
            while True:
                if firing:
                    await self._acquire_and_dispatch(firing, later)
                if start >= len(rest):
                    break
                await trio.lowlevel.checkpoint()
                firing = self._decide(rest[start : start + BURST_CHUNK])
                start += BURST_CHUNK
            for outcomes in later or ():
                await trio.lowlevel.checkpoint()
                self.outcomes.record_batch(outcomes)
        finally:
            self.batches.leave()

    def _decide(self, due: list[Park]) -> list[Park]:
        """Decide `due` (one chunk of a burst), settling skips; returns what fires (D5)."""
        now = self._wall_clock()
        now_ts = now.timestamp()
        grace = self._config.misfire_grace
        firing: list[Park] = []
        # Every park due at one nominal instant shares its on-time decision (the common
        # case); late or early ones are decided one by one.
        on_time: dict[datetime, _plan.Decision | None] = {}
        for park in due:
            if park.abandoned:
                continue
            loop = park.loop
            nominal = park.nominal
            decision: _plan.Decision | None
            if park.delay:
                # Jittered (P6 of `_plan`): judged from its own shifted instant.
                decision = self._decide_jittered(park, now, grace)
            else:
                decision = on_time.get(nominal, _MISSING)
                if decision is _MISSING:
                    decision = on_time[nominal] = _plan.decide_on_time(nominal, now, grace)
                if decision is None:
                    task = loop.task
                    decision = _plan.decide(
                        task.cron, nominal, now, grace, task.policy, loop.catchup, loop.cap
                    )
            if decision.action is _plan.Action.WAIT:
                # Woke early by the wall clock: wait for the rest, measured just now.
                deadline = trio.current_time() + (park.due_ts - now_ts)
                due_again = functools.partial(self._parking.on_due, park)
                park.handle = self._timer.call_at_wall(park.due_ts, due_again, deadline=deadline)
                continue
            park.decision = decision
            if decision.action is _plan.Action.SKIP:
                # Settled here, without waking the loop's task (D6).
                park.phase = Phase.DONE
                self.outcomes.settle_outside(park)
            else:
                if decision.late:  # a misfire: maybe another occurrence, no slack (D10)
                    self._parking.prepare(park, decision.nominal, late=True)
                park.phase = Phase.ACQUIRING
                firing.append(park)
        return firing

    @staticmethod
    def _decide_jittered(park: Park, now: datetime, grace: float) -> _plan.Decision:
        """The decision of a jittered park: on time and late are measured from its
        nominal instant plus its delay; a late decision that fires another occurrence
        takes that occurrence's delay (for its lateness)."""
        loop = park.loop
        task = loop.task
        shifted = now - timedelta(seconds=park.delay)
        decision = _plan.decide(
            task.cron, park.nominal, shifted, grace, task.policy, loop.catchup, loop.cap
        )
        if decision.nominal != park.nominal:
            park.delay = loop.delay_of(decision.nominal)
        return decision

    async def _acquire_and_dispatch(
        self, parks: list[Park], later: list[BatchOutcomes] | None = None
    ) -> None:
        """One ``acquire_batch`` for `parks` (D5), then their enqueue (D6); their
        outcomes are recorded at once, or appended to `later`."""
        # Built now rather than while the loops wait: one request kept per waiting loop
        # (a tracked object) would be promoted to the collector's old generation with
        # every burst and trigger full collections (~200 ms each at 10,000 loops).
        requests: list[AcquireRequest] = []
        for park in parks:
            loop = park.loop
            info = park.info
            assert info is not None
            requests.append(
                AcquireRequest(park.key, loop.ttl, loop.wm_name, info.ms, park.slack_ms, loop.keep)
            )
        started = trio.current_time()
        leases: list[LockLease | Held | Paused | None]
        try:
            leases = await self.acquire_batch(requests)
        except Exception as exc:
            for park in parks:
                park.error = exc
            leases = [None] * len(parks)
        orphans: list[LockLease] = []
        dispatching: list[Park] = []
        takeovers = self._takeovers
        for park, lease in zip(parks, leases, strict=True):
            if park.abandoned:
                if isinstance(lease, LockLease):
                    orphans.append(lease)
                continue
            if isinstance(lease, Held):
                # Another instance leases it: a lock miss, and watched in case its holder
                # fails before dispatching it (D12).
                decision = park.decision
                assert decision is not None
                takeovers.watch(park.loop, decision.nominal, lease, started + park.loop.keep)
                lease = None
            elif isinstance(lease, Paused):
                # O15: paused in the coordination backend; nothing was made for it.
                park.loop.pause = lease
                park.skip_reason = "paused"
                lease = None
            elif lease is not None:
                park.loop.pause = None  # granted: not paused (any more)
            park.leased(lease, started)
            if lease is not None and park.error is None:
                park.phase = Phase.DISPATCHING
                dispatching.append(park)
                continue
            # A lock miss or an acquire error: settled here, no loop task is needed.
            park.phase = Phase.DONE
            self.outcomes.settle_outside(park)
        if any(park.loop.overlap is not OverlapPolicy.ALLOW for park in dispatching):
            # V4 of `_overlap`: screened in a task of their own, the rest goes on now.
            screening = [park for park in dispatching if screened(park)]
            dispatching = [park for park in dispatching if not screened(park)]
            assert self.services is not None
            self.batches.enter()
            self.services.start_soon(self._screen_and_dispatch, screening, started)
        if dispatching:
            await self._dispatch_batch(dispatching, started, later)
        for lease in orphans:  # D9: nothing was attempted for these
            try:
                await self._locks.release(lease)
            except Exception:
                self._config.logger.warning("could not release unused lease %r", lease.key)

    async def acquire_batch(
        self, requests: list[AcquireRequest]
    ) -> list[LockLease | Held | Paused | None]:
        """One ``acquire_batch`` of the lock provider (a burst's, a takeover's re-ask, a
        backfill's chunk): its answers, one per request, or `InvalidArgumentError` for a
        provider that answered another number. A checkpoint."""
        answers = list(await self._locks.acquire_batch(requests))
        if len(answers) != len(requests):
            raise InvalidArgumentError(
                f"acquire_batch answered {len(answers)} results for {len(requests)} requests"
            )
        return answers

    async def dispatch_backfill(self, parks: list[Park], acquired_at: float) -> None:
        """Dispatch a backfill's acquired occurrences as a burst (O14, D6); each
        park's ``settled`` is set once its outcome is in ``result``."""
        await self._dispatch_batch(parks, acquired_at)

    async def _screen_and_dispatch(self, parks: list[Park], acquired_at: float) -> None:
        """O12: the overlap policy, then the enqueue of what it lets through."""
        try:
            parks = await self._overlap.screen(parks)
            if parks:
                await self._dispatch_batch(parks, acquired_at)
        finally:
            self.batches.leave()

    async def dispatch_taken_over(self, parks: list[Park], acquired_at: float) -> None:
        """Dispatch occurrences this instance took over (D12), as a burst (D6); their
        loops are not moved (each is on a later occurrence by now). FORBID and REPLACE
        tasks' are screened first (O12)."""
        if any(screened(park) for park in parks):
            screening = [park for park in parks if screened(park)]
            parks = [park for park in parks if not screened(park)]
            parks += await self._overlap.screen(screening)
        if parks:
            await self._dispatch_batch(parks, acquired_at)

    async def _dispatch_batch(
        self, parks: list[Park], acquired_at: float, later: list[BatchOutcomes] | None = None
    ) -> None:
        """D6: enqueue every acquired occurrence of a burst: with one ``enqueue_many``
        call, or, for a plain runtime, job by job from this task and a few helpers
        (`enqueue_each`).

        Each occurrence keeps its own lease guard (renewal, ``dispatch_timeout``). With
        ``enqueue_many`` they share the call's cancel scope: a lost lease or the timeout
        cancels the call; job by job, a guard cancels its own job's enqueue only. The guards
        are made only if the call still runs when the first of them would act (the
        shortest TTL/3, or the timeout); an enqueue rarely takes that long. Then, per
        occurrence: accepted or a duplicate (`ConflictError`) counts as fired; a
        transient error, a failure of the whole call or a call cancelled for another
        occurrence's lost lease hands the occurrence to its loop, which enqueues it
        again on its own (safe: the idempotency key dedupes, D8 retries); any other
        error is reported. The loops' tasks are woken only for those hand-overs.
        """
        enqueue_many = self._enqueue_many
        services = self.services
        assert services is not None
        # D12: an occurrence whose lease ran out by this instance's clock (a stall since
        # the acquire) is not enqueued: another instance may have taken it over.
        now = trio.current_time()
        if any(park.expires <= now for park in parks):
            for park in parks:
                if park.expires <= now:
                    self.outcomes.conclude_safely(park, None, ran_out(park.key))
            parks = [park for park in parks if park.expires > now]
            if not parks:
                return
        created = self._wall_clock()
        jobs = [self.occurrence_job(park, created) for park in parks]
        results: list[Exception | None] | None = None
        with trio.CancelScope() as scope:
            batch = BatchGuard(parks, scope, acquired_at, plain=enqueue_many is None)
            first_check = min(park.loop.ttl for park in parks) / 3
            first_check = acquired_at + min(first_check, self._config.dispatch_timeout)
            self._leases.arm_batch_at(batch, first_check, services)
            self.in_flight += len(jobs)
            try:
                if enqueue_many is not None:
                    results = await enqueue_many(jobs)
                else:
                    results = await enqueue_each(self._jobs.enqueue, jobs, batch)
                if len(results) != len(jobs):
                    raise InvalidArgumentError(
                        f"enqueue_many answered {len(results)} results for {len(jobs)} jobs"
                    )
            except Exception as exc:
                results = None
                self._config.logger.warning(
                    "enqueue_many of %d occurrences failed, each goes back to its loop: %r",
                    len(jobs),
                    exc,
                )
            finally:
                self.in_flight -= len(jobs)
                batch.finish()
        done_ts = self._wall_clock().timestamp()  # E2: lateness up to the enqueue
        outcomes = BatchOutcomes(parks, batch.guards, jobs, results, done_ts)
        if later is None:
            self.outcomes.record_batch(outcomes)
        else:
            later.append(outcomes)

    async def dispatch_manual(self, park: Park) -> None:
        """O8: acquire and enqueue a trigger's occurrence like a burst of one (D6): the
        same lease guard, lease check, enqueue and outcome; ``park.settled`` is set
        when ``park.result`` holds the job or the error (a transient enqueue error is
        retried on its own first, D8). A checkpoint; cancelled while acquiring or
        enqueuing, the outcome is the cancellation's (the lock stays until its TTL)."""
        started = trio.current_time()
        try:
            answers = await self._locks.acquire_batch([AcquireRequest(park.key, park.loop.ttl)])
            lease = answers[0] if len(answers) == 1 else None
            if not isinstance(lease, LockLease):
                raise ConflictError(f"manual occurrence key {park.key!r} is already held")
        except Exception as exc:
            self.outcomes.conclude_safely(park, None, exc)
            return
        park.leased(lease, started)
        park.phase = Phase.DISPATCHING
        await self._dispatch_batch([park], started)

    def occurrence_job(self, park: Park, created: datetime) -> Job:
        """The job of an acquired occurrence. Hot path (one call per fire): everything
        lease-independent was prepared while the loop waited (`_prepare`), per-task
        constants come from its loop."""
        info = park.info
        lease = park.lease
        assert info is not None
        assert lease is not None
        headers = park.headers
        headers[H_FENCING] = str(lease.fencing_token)  # Job copies the headers
        return task_job(
            park.loop.task, park.job_id, park.idem, headers, info.utc, created, lease.fencing_token
        )
