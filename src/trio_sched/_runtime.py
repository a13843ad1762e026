"""`Scheduler` and `open_scheduler`: the Trio runtime (rules O1-O9 of docs/runtime.md).

Shape: `Scheduler.run` owns a *services* nursery (the shared timer, the bursts,
watermark flushes, the waker, renewers of bursts and manual triggers) and inside it a
*loops* nursery (the starter, and the short-lived Trio task a loop gets to retry an
occurrence handed back to it, with a small nursery for its lease renewer). A waiting
loop is data (`_loop`): no Trio task. Lease guards are in `_lease`, watermarks in
`_watermarks`, events and counters in `_reporting`; docs/runtime.md draws where one
occurrence goes.

Rules:
- S1 Occurrences come from the cron engine (``next_after`` on the wall clock) and all
  identity derives from the nominal instant (`_plan`, O1/O2). A loop parks on the shared
  timer (`_timer`) until the wall clock reaches its nominal instant; loops due at the
  same instant share one timer entry.
- S2 Batching: all occurrences that become due in one timer pass are decided in
  that pass (pure `_plan.decide`, one wall-clock read) and acquired with ONE
  ``acquire_batch`` call, the watermark check included. Lock misses, acquire errors and
  misfire skips are settled right there, without waking a loop; an acquired occurrence
  is dispatched with its whole burst (S9). A failure while settling
  outside a loop's task (an impossible next occurrence) ends that loop alone, reported
  like a crashed loop. Watermarks of dispatches finishing together are advanced with one
  ``advance_watermarks`` call. Watermarks of tasks starting together are read with one
  ``get_watermarks`` call per chunk of S10.
- S3 Dispatch (O5) by a loop, for an occurrence its burst handed over to retry (S9): a
  loop dispatches inside its own *dispatch cancel scope*: one scope
  per loop, only ever cancelled while a dispatch runs, and replaced by a fresh one after
  each cancellation (a new `trio.CancelScope` per dispatch measured ~8 us, 8 ms per
  1,000 occurrences on the 2-core dev box). A dispatch is bounded by
  ``dispatch_timeout``, counted from its lock request. Its lease renewer is a child task
  of the loop's nursery, spawned by the timer only when the dispatch is still running
  at TTL/3 (a child task per dispatch would cost ~100 us each); it renews every TTL/3
  and, when a renewal is rejected or the lease would expire unconfirmed, cancels the
  dispatch scope and records ``lease_lost``. `Scheduler.trigger` runs its dispatch in a
  scope of its own. After its enqueue returns, a dispatch yields once (shielded) before
  its bookkeeping, so the loops of a burst all enqueue first.
- S4 Locks are never released after a dispatch was attempted (O3): the key stays until
  its TTL. The only release is of a lease acquired for a loop that was cancelled before
  it could dispatch (stop/unregister while its batch was in flight): nothing was
  attempted, so releasing cannot cause a double fire.
- S5 Errors (O7): ``RetryableError`` and ``OSError`` (connection trouble, timeouts) are
  transient: an acquire is retried with exponential backoff (``retry_backoff`` doubling
  to ``retry_backoff_max``) and each retry is decided again by `_plan.decide`, so past
  ``misfire_grace`` the misfire policy decides (``skip`` drops it, ``fire_once`` keeps
  trying the latest late occurrence). An enqueue is retried inside the grace window
  (``skip``) or until ``dispatch_timeout`` (``fire_once`` and triggers). Any other
  exception from a provider or runtime is not retried: it is reported (``error`` event,
  log) and the loop moves on. ``ConflictError`` from ``enqueue`` (duplicate idempotency
  key) counts as a successful dispatch. A loop never dies of a backend error.
- S6 Stop (O9): `Scheduler.stop` stops new occurrences at once (parked loops are
  woken and end; a detached loop's park is dropped), lets in-flight dispatches, batches
  and triggers finish (each bounded by
  ``dispatch_timeout``), flushes pending watermarks, releases no occurrence lock, and
  closes the providers only when the scheduler was created with
  ``close_providers=True`` (providers passed in belong to the caller). Cancelling
  `Scheduler.run` from outside is a hard stop: in-flight dispatches are cancelled, locks
  stay until their TTL, pending watermarks get one shielded flush attempt bounded by
  ``dispatch_timeout``.
- S7 Watermarks and skewed clocks: an instance whose clock runs ahead can move a task's
  watermark past an occurrence that the on-time instances have not reached yet and
  nobody dispatched (it started, restarted or misfired past it). So an occurrence
  reached on time is refused by the watermark only when it lies at least
  ``lock_ttl - misfire_grace`` below it (``AcquireRequest.watermark_slack_ms``); closer
  ones are decided by their lock, which a dispatching instance took less than that
  long ago and still holds. Late occurrences (misfires, catch-up after a restart) are
  refused by the watermark outright. Exactly once therefore holds while the clocks of
  instances differ by less than ``lock_ttl - misfire_grace``.
- S8 Dormant loops: a loop whose next occurrence is more than 5 s away (wall clock) is
  not parked; it leaves one entry on the shared timer that hands it to the waker (S11)
  2 s before the occurrence; its cursor stays on the task's record, so it resumes
  exactly where it was. An idle schedule then costs a record and a timer entry. Stop
  and unregister cancel the entry; a wall-clock jump moves it like any wall-anchored
  entry.
- S9 The burst enqueues: the task that acquired a burst's locks also enqueues the
  burst, and records each outcome (counters, watermark, event) and parks each loop on
  its next occurrence itself, whatever the jobs runtime: the loops' Trio tasks are not
  woken (a loop parks *detached*: no Trio task between occurrences; dormancy (S8) and
  stop need none either). A `BatchJobsRuntime` (it has ``enqueue_many``) gets one
  ``enqueue_many`` call; every occurrence keeps its own lease guard, all on the
  call's cancel scope: a lost lease or the timeout cancels the call; the occurrence
  whose lease was lost (or every one, on timeout) is reported as in S3, and the others
  are handed to their loops, with their leases as last renewed, which enqueue them
  again on their own (S3, S5). A plain `JobsRuntime` gets one ``enqueue`` per job, at
  most ``_ENQUEUE_CONCURRENCY`` at once, from the burst's task and a few helpers
  (`_enqueue_each`); each job's enqueue runs in a scope only its own guard cancels, so a
  lost lease or the timeout ends that occurrence alone (reported as in S3) and nothing
  is enqueued twice, even on a runtime that does not dedupe. A transient per-job result
  or a failure of the whole call hands the occurrence over the same way; repeating is
  safe because the idempotency key dedupes (and a transient error says nothing was
  stored, as S5 assumes). After a hard stop nothing is handed over (the loops nursery
  is closed). Lock misses, acquire errors and misfire skips are settled the same way,
  by the batch or the timer pass, without waking a loop. A stop or unregister while
  the call runs lets it finish (S6).
- S10 Start: one starter task starts the loops (all of them at `run`, later ones as
  they are registered), ``_START_CHUNK`` at a time: one ``get_watermarks`` call for the
  chunk (transient errors retried with backoff and reported per task; another error
  starts those tasks fresh), then each loop gets its cursor and is parked on its first
  occurrence, or goes dormant, right there: no Trio task per loop, and a yield between
  chunks so starting 100,000 tasks never holds the Trio loop for long. A stop cancels
  the starter (loops not started yet never start); an impossible schedule ends its
  loop alone, reported like a crashed loop.
- S11 Dormant loops woken together (their wake-up instants coincide, 2 s before a
  shared occurrence) are parked again by one waker task, ``_START_CHUNK`` per step, so
  20,000 of them do not hold the Trio loop for one long step. A burst itself is still
  decided, acquired and enqueued whole (one step each for its bookkeeping).
"""

from __future__ import annotations

import enum
import functools
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, final

import trio

from trio_sched import _plan
from trio_sched._config import Config, check_wall_clock
from trio_sched._errors import (
    ClosedError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    NotInitializedError,
    RetryableError,
)
from trio_sched._events import (
    EventKind,
    SchedulerEvent,
    SchedulerStatistics,
)
from trio_sched._lease import BatchGuard, LeaseGuard, LeaseKeeper
from trio_sched._loop import (
    H_FENCING,
    H_NOMINAL,
    H_OCCURRENCE,
    H_TASK,
    H_TRIGGER,
    Cursor,
    InFlight,
    Loop,
    Nominal,
    Park,
    Phase,
)
from trio_sched._reporting import Reporter
from trio_sched._task import Task
from trio_sched._timer import TimerHeap
from trio_sched._watermarks import Pending, Watermarks
from trio_sched.jobs._job import BatchJobsRuntime, Job, JobsRuntime
from trio_sched.locks._protocol import AcquireRequest, LockLease, LockProvider

__all__ = ["Scheduler", "open_scheduler"]

_TRANSIENT: Final = (RetryableError, OSError)
# S8: a loop whose next occurrence is more than _DORMANT_AFTER seconds away (wall clock)
# ends its Trio task and is started again _WAKE_AHEAD seconds before the occurrence.
_DORMANT_AFTER: Final = 5.0
_WAKE_AHEAD: Final = 2.0
# Derived forms (epoch ms, ISO text) of recent nominal instants: every task due at the
# same instant shares one entry.
_NOMINAL_CACHE: Final = 4096
_MISSING: Final = _plan.Decision(_plan.Action.WAIT, datetime(1970, 1, 1, tzinfo=UTC), 0.0)
# S10: loops are started this many at a time (one watermark read, then a yield).
_START_CHUNK: Final = 500
# S9: a plain `JobsRuntime`'s burst makes at most this many `enqueue` calls at once.
_ENQUEUE_CONCURRENCY: Final = 64


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT)


def _task_job(
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


class _Cancelled(Exception):
    """The result of an `enqueue` of a burst that its own lease guard cancelled."""


_CANCELLED: Final = _Cancelled()


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


@final
class Scheduler:
    """A cron scheduler on a `LockProvider` and a `JobsRuntime` (rules S1-S10).

    Use it through `open_scheduler`, or run it yourself::

        scheduler = Scheduler(jobs=jobs, locks=locks, config=Config())
        scheduler.register(task)          # before or after start
        await scheduler.start(nursery)    # = await nursery.start(scheduler.run)
        ...
        await scheduler.stop()            # graceful (S6); returns once fully stopped

    A scheduler runs once: after it stopped, make a new one (over the same providers,
    it resumes from the persisted watermarks).
    """

    def __init__(
        self,
        *,
        jobs: JobsRuntime,
        locks: LockProvider,
        config: Config | None = None,
        close_providers: bool = False,
    ) -> None:
        if config is None:
            config = Config()
        if not isinstance(config, Config):
            raise InvalidArgumentError(f"config must be a Config, got {type(config).__name__}")
        self._jobs = jobs
        # S9: a runtime that takes many jobs in one call gets each burst in one call.
        self._enqueue_many = jobs.enqueue_many if isinstance(jobs, BatchJobsRuntime) else None
        self._locks = locks
        self._config = config
        self._close_providers = close_providers
        self._loops: dict[str, Loop] = {}
        self._state = _State.NEW
        self._stop_requested = trio.Event()
        self._closed = trio.Event()
        self._wall_clock = config.wall_clock
        self._timer = TimerHeap(
            wall_time=self._wall_time,
            clock_check_interval=config.clock_check_interval,
            on_pass_end=self._process_due,
            spin=config.timer_spin,
        )
        self._leases = LeaseKeeper(self._timer, locks, config)  # guards of dispatches (S3)
        self._services: trio.Nursery | None = None
        self._loop_nursery: trio.Nursery | None = None
        self._due: list[Park] = []
        self._nominals: dict[datetime, Nominal] = {}
        self._park_groups: dict[float, list[Park]] = {}
        # Loops registered and not started yet, and the task starting them (S10).
        self._to_start: list[Loop] = []
        # Dormant loops whose wake-up came, and whether the task parking them runs (S11).
        self._waking: list[Loop] = []
        self._waker_running = False
        self._starter: trio.CancelScope | None = None
        self._watermarks = Watermarks(locks, config, self._watermark_failed)  # O3, S2
        self._in_flight = 0
        self._batches = Pending()  # acquire batches in flight (S2, S9)
        self._triggers = Pending()
        self._reporter = Reporter(config)  # events, counters, logs (E1-E3)
        self._prefix = config.lock_key_prefix

    # -- registry (synchronous, any time before close) -------------------------------

    def register(self, task: Task) -> None:
        """Add `task`; it starts at once when the scheduler runs (O9).

        Raises `ConflictError` for a name already registered, `ValidationError` for an
        invalid task, `ClosedError` once stopping or closed. Not a checkpoint.
        """
        if self._state in (_State.STOPPING, _State.CLOSED):
            raise ClosedError("scheduler is stopped; register on a new Scheduler")
        if not isinstance(task, Task):
            raise InvalidArgumentError(f"register expects a Task, got {type(task).__name__}")
        task.validate()
        if task.name in self._loops:
            raise ConflictError(f"task {task.name!r} is already registered")
        loop = Loop(self, task, self._ttl(task), self._prefix, self._config.misfire_grace)
        self._loops[task.name] = loop
        if self._state is _State.RUNNING and self._loop_nursery is not None:
            self._start(loop)  # before that, `run` starts every registered loop

    def unregister(self, name: str) -> None:
        """Remove task `name` at once: its loop stops waiting; a dispatch already in
        flight finishes (bounded by ``dispatch_timeout``). Not a checkpoint.

        Raises `NotFoundError` for an unknown name and `ClosedError` once closed.
        """
        if self._state is _State.CLOSED:
            raise ClosedError("scheduler is closed")
        loop = self._loops.pop(name, None)
        if loop is None:
            raise NotFoundError(f"no task named {name!r}")
        loop.stop()

    @property
    def tasks(self) -> Mapping[str, Task]:
        """The registered tasks by name (a read-only snapshot)."""
        return MappingProxyType({name: loop.task for name, loop in self._loops.items()})

    @property
    def config(self) -> Config:
        return self._config

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        """Run the scheduler in `nursery`; return once it runs (``nursery.start``).

        A checkpoint. Raises `ConflictError` if already started, `ClosedError` if
        closed, `ValidationError` if ``Config.wall_clock`` cannot be read or returns
        anything but an aware datetime (rule K2; the scheduler then stays new). If
        cancelled before it is running, nothing keeps running.
        """
        await nursery.start(self.run)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until `stop` (then drain, S6) or until cancelled (hard stop, S6).

        Use ``await nursery.start(scheduler.run)`` (what `start` does); it reports
        started once the starter of the registered loops is spawned (S10). Cancelled: every
        loop and in-flight dispatch is cancelled, no lock is released (they end by
        their TTL), pending watermarks get one shielded flush attempt and owned providers
        are closed (shielded, bounded by ``dispatch_timeout``).
        """
        if self._state is _State.CLOSED:
            raise ClosedError("scheduler is closed; make a new Scheduler")
        if self._state is not _State.NEW:
            raise ConflictError("scheduler is already running")
        # A clock that cannot be read would crash every loop: refuse to start (K2).
        check_wall_clock(self._wall_clock)
        self._state = _State.RUNNING
        try:
            async with trio.open_nursery() as services:
                self._services = services
                self._watermarks.attach(services)
                await services.start(self._timer.run)
                try:
                    async with trio.open_nursery() as loops:
                        self._loop_nursery = loops
                        for loop in self._loops.values():
                            self._start(loop)
                        task_status.started()
                        await self._stop_requested.wait()
                        self._state = _State.STOPPING
                        for loop in self._loops.values():
                            loop.stop()
                        if self._starter is not None:  # loops not started yet never will
                            self._starter.cancel()
                        # Batches in flight finish their dispatches (S6) and may hand some
                        # to their loops (S9), which start in this nursery: keep it open.
                        await self._batches.wait_idle()
                finally:
                    # Closed (also on a hard stop, while a batch may still be finishing):
                    # from now on nothing is handed to a loop (`_wake`).
                    self._loop_nursery = None
                # Every loop ended: no dispatch of ours is in flight any more.
                await self._triggers.wait_idle()
                await self._watermarks.drain()
                services.cancel_scope.cancel()
        finally:
            self._state = _State.CLOSED
            self._services = self._loop_nursery = None
            self._watermarks.attach(None)
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + self._config.dispatch_timeout
                await self._watermarks.flush_last()  # hard stop: one last attempt (S6)
                if self._close_providers:
                    await self._close_owned()
            for channel in self._reporter.channels:
                channel.close()
            self._reporter.channels.clear()
            self._closed.set()

    def stop_nowait(self) -> None:
        """Ask a running scheduler to stop (S6) without waiting. Idempotent.

        A scheduler that never started is closed at once.
        """
        if self._state is _State.NEW:
            self._state = _State.CLOSED
            self._closed.set()
        self._stop_requested.set()

    async def stop(self) -> None:
        """Stop gracefully (S6) and wait until the scheduler is closed. Idempotent.

        A checkpoint. Cancelling the wait does not cancel the stop, which continues in
        the task running `run`.
        """
        never_started = self._state is _State.NEW
        self.stop_nowait()
        if never_started and self._close_providers:
            await self._close_owned()
        await self._closed.wait()

    # -- manual trigger (O8) ------------------------------------------------------------

    async def trigger(self, name: str) -> Job:
        """Dispatch task `name` now, with a manual occurrence identity (O8, P2).

        Returns the dispatched `Job`. Never does nothing silently: raises
        `NotFoundError` (unknown name), `NotInitializedError` (not started),
        `ClosedError` (stopping or closed), `LeaseLostError` (lease lost mid-dispatch),
        `RetryableError` (dispatch timed out) or the backend's error. Does not move the
        task's watermark or its schedule.

        A checkpoint. Cancelled while acquiring: the provider's rules apply (no hidden
        lock). Cancelled while enqueuing: the job may or may not be enqueued; the manual
        lock stays until its TTL.
        """
        if self._state is _State.NEW:
            raise NotInitializedError("scheduler is not running; start it first")
        if self._state is not _State.RUNNING:
            raise ClosedError("scheduler is stopping or closed")
        loop = self._loops.get(name)
        if loop is None:
            raise NotFoundError(f"no task named {name!r}")
        task = loop.task
        now = self._wall_clock()
        nonce = secrets.token_hex(6)
        key = _plan.manual_occurrence_key(self._prefix, task.name, now, nonce)
        idem = _plan.manual_idempotency_key(task.name, task.idempotency_key, now, nonce)
        ttl = self._ttl(task)
        self._triggers.enter()
        try:
            acquired_at = trio.current_time()
            try:
                lease = await self._locks.acquire(key, ttl)
            except Exception as exc:
                self._reporter.error(loop, now, exc, manual=True)
                raise
            if lease is None:
                held = ConflictError(f"manual occurrence key {key!r} is already held")
                self._reporter.error(loop, now, held, manual=True)
                raise held
            now_utc = now.astimezone(UTC)
            info = Nominal(now_utc, _plan.epoch_ms(now_utc), now_utc.isoformat())
            headers = {
                **task.headers,
                H_TASK: task.name,
                H_OCCURRENCE: key,
                H_NOMINAL: info.iso,
                H_FENCING: str(lease.fencing_token),
                H_TRIGGER: "manual",
            }
            created = self._wall_clock()
            job = _task_job(
                task, _plan.job_id(idem), idem, headers, info.utc, created, lease.fencing_token
            )
            assert self._services is not None
            error = await self._guarded_enqueue(job, lease, ttl, acquired_at, self._services)
            if error is not None:
                self._reporter.dispatch_failure(loop, now, error, manual=True)
                raise error
            loop.triggered += 1
            self._reporter.emit(EventKind.FIRED, task.name, now, 0.0, job=job, manual=True)
            return job
        finally:
            self._triggers.leave()

    # -- observability --------------------------------------------------------------------

    def statistics(self) -> SchedulerStatistics:
        """A snapshot of every registered task's counters and the timer's loop lag."""
        return SchedulerStatistics(
            state=self._state.value,
            tasks=MappingProxyType({n: loop.snapshot() for n, loop in self._loops.items()}),
            timer_lag=self._timer.last_lag,
            timer_lag_max=self._timer.max_lag,
            in_flight_dispatches=self._in_flight,
            events_dropped=self._reporter.dropped,
        )

    def events(self, max_buffer_size: int = 1000) -> trio.MemoryReceiveChannel[SchedulerEvent]:
        """A channel receiving every later event (rule E1 of `_events`).

        Events that do not fit in the buffer are dropped (counted in
        ``statistics().events_dropped``), so a slow reader never slows the schedule.
        The channel ends (``EndOfChannel``) when the scheduler closes. Not a checkpoint.
        """
        if self._state is _State.CLOSED:
            raise ClosedError("scheduler is closed")
        send, receive = trio.open_memory_channel[SchedulerEvent](max_buffer_size)
        self._reporter.channels.append(send)
        return receive

    async def measure_loop_lag(self) -> float:
        """How late (seconds) the shared timer serves an entry that is due now.

        A checkpoint; cancelling it leaves nothing behind. Raises
        `NotInitializedError` unless running.
        """
        if self._state is not _State.RUNNING:
            raise NotInitializedError("scheduler is not running")
        deadline = trio.current_time()
        await self._timer.sleep_until(deadline)
        return trio.current_time() - deadline

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING

    # -- the per-task loop (S1) -------------------------------------------------------------

    async def _run_loop(self, loop: Loop, resume: Park) -> None:
        """The Trio task of a loop, started only to dispatch or retry `resume`, an
        occurrence its burst handed over (S9); it ends once the loop is parked again."""
        try:
            async with trio.open_nursery() as nursery:
                loop.nursery = nursery
                try:
                    await self._loop_body(loop, resume)
                finally:
                    loop.nursery = None  # a dormant loop keeps no Trio objects alive (S8)
                nursery.cancel_scope.cancel()  # renewers of finished dispatches, if any
        except Exception as exc:
            # A bug or an impossible schedule: report, keep the other tasks running.
            self._reporter.crash(loop, exc)

    async def _loop_body(self, loop: Loop, resume: Park | None) -> None:
        cursor = loop.cursor
        assert cursor is not None  # set when the loop was started (S10)
        # A handed-over occurrence (`resume`, S9) is dispatched even when stopping (S6).
        while resume is not None or (
            not loop.stopping and loop.dormant is None and loop.park is None
        ):
            # One dispatch scope serves every dispatch of this loop until one of them is
            # cancelled (lease lost, timeout); then a fresh scope is made (S3). Nothing
            # but a dispatch in flight is ever cancelled through it.
            with trio.CancelScope() as scope:
                loop.dispatch_scope = scope
                first, resume = resume, None
                await self._occurrences(loop, cursor, first)
            loop.dispatch_scope = None
            in_flight, loop.in_flight = loop.in_flight, None
            if in_flight is not None:
                self._finish_dispatch(loop, in_flight, None)
                cursor.nominal = loop.task.cron.next_after(in_flight.nominal)

    async def _occurrences(self, loop: Loop, cursor: Cursor, first: Park | None) -> None:
        """Settle or dispatch the handed-over occurrence `first` (S9) if any, then park
        the loop on its next occurrence and end this task: the loop parks *detached*
        (no Trio task while it waits); the burst's batch moves it on and starts a task
        again only to hand it an occurrence to dispatch or retry on its own.
        """
        loop.park = None
        done: Park | None = None  # the last park this task finished with, reused
        while first is not None or not loop.stopping:
            park, first = first, None
            if park is None:
                if self._next_park(loop, cursor, done) is None:
                    self._go_dormant(loop, cursor)
                return  # parked detached (S9) or dormant (S8): this task ends
            if park.abandoned:
                return  # stopped (S6)
            done = park  # nothing else refers to it any more
            if self._settle(loop, cursor, park):
                decision, lease = park.decision, park.lease
                assert decision is not None
                assert lease is not None
                await self._dispatch_occurrence(loop, park, decision, lease)
                cursor.nominal = loop.task.cron.next_after(decision.nominal)

    def _next_park(
        self,
        loop: Loop,
        cursor: Cursor,
        reuse: Park | None = None,
    ) -> Park | None:
        """Park the loop on the occurrence at its cursor; not a checkpoint.

        Returns ``None`` (and changes nothing) when that occurrence is far enough off
        for the loop to go dormant (S8). The loop waits detached (S9): called by the
        loop's task before it ends, by a burst's batch for a loop whose outcome it
        settled and by the dormancy wake-up, so no Trio task runs for a waiting loop.
        """
        loop.next_fire = cursor.nominal
        nominal_ts = cursor.nominal.timestamp()
        retry_at = cursor.retry_at
        if retry_at is None and (
            nominal_ts - (trio.current_time() + self._timer.wall_offset()) > _DORMANT_AFTER
        ):
            # A heuristic distance through the timer's cached wall offset (no wall-clock
            # read per occurrence).
            return None
        cursor.retry_at = None
        if reuse is None:
            park = Park(loop, cursor.nominal, nominal_ts)
        else:
            park = reuse
            park.arm(cursor.nominal, nominal_ts)
        self._prepare(park, cursor.nominal)
        loop.park = park
        if retry_at is None:
            # Loops due at the same instant share one timer entry (one heap operation
            # per instant, not per loop); an abandoned park is skipped when it fires.
            group = self._park_groups.get(nominal_ts)
            if group is None:
                group = self._park_groups[nominal_ts] = []
                due_group = functools.partial(self._park_group_due, nominal_ts)
                self._timer.call_at_wall(nominal_ts, due_group)
            group.append(park)
        else:
            park.handle = self._timer.call_at(retry_at, functools.partial(self._on_due, park))
        return park

    def _settle(self, loop: Loop, cursor: Cursor, park: Park) -> bool:
        """Record the decided outcome of `park` and move the cursor on; not a checkpoint.

        Returns True when the occurrence is to be dispatched under ``park.lease`` (the
        caller then moves the cursor once the dispatch ended). Skips, lock misses and
        acquire errors are settled here, whoever runs it (the loop or the batch).
        """
        decision = park.decision
        assert decision is not None
        task = loop.task
        if decision.first_late is not None:
            self._reporter.misfire(loop, decision)
        if decision.action is _plan.Action.SKIP:
            loop.skipped += 1
            self._reporter.emit(
                EventKind.SKIPPED, task.name, decision.nominal, decision.lateness, reason="misfire"
            )
            cursor.nominal = task.cron.next_after(decision.nominal)
            return False
        if park.error is not None:
            self._reporter.error(loop, decision.nominal, park.error, lateness=decision.lateness)
            if _is_transient(park.error):
                # O7: same occurrence again after a pause; decide() re-judges it.
                cursor.retry_at = trio.current_time() + cursor.backoff
                cursor.backoff = min(cursor.backoff * 2, self._config.retry_backoff_max)
                cursor.nominal = decision.nominal
            else:
                cursor.nominal = task.cron.next_after(decision.nominal)
            return False
        cursor.backoff = self._config.retry_backoff
        if park.lease is None:
            loop.lock_misses += 1
            self._reporter.emit(
                EventKind.SKIPPED,
                task.name,
                decision.nominal,
                decision.lateness,
                reason="lock_held",
            )
            cursor.nominal = task.cron.next_after(decision.nominal)
            return False
        return True

    def _move_on(self, park: Park) -> None:
        """After `park` was settled outside its loop's task (S9): park the loop on its
        next occurrence, or let it go dormant or stop; no Trio task is needed."""
        loop = park.loop
        cursor = loop.cursor
        assert cursor is not None
        if park.abandoned:
            return  # stopped: nothing more for this loop
        if not loop.stopping and self._next_park(loop, cursor, park) is not None:
            return
        loop.park = None
        if not loop.stopping:
            self._go_dormant(loop, cursor)

    def _prepare(self, park: Park, nominal: datetime, *, late: bool = False) -> None:
        """Lock request and lease-independent job parts of the occurrence at `nominal`.

        The request carries the watermark slack of rule S7 unless the occurrence is late.
        """
        loop = park.loop
        info = park.info = self._nominal(nominal)
        key = park.key = f"{self._prefix}:{loop.task.name}:{info.ms}"
        park.slack_ms = 0 if late else loop.slack_ms
        idem = park.idem = f"{loop.idem_base}:{info.ms}"
        park.job_id = _plan.job_id(idem)
        headers = park.headers
        headers[H_OCCURRENCE] = key
        headers[H_NOMINAL] = info.iso

    def _go_dormant(self, loop: Loop, cursor: Cursor) -> None:
        """S8: the occurrence at the cursor is far off (`_next_park` said so): end the
        loop's Trio task and leave a timer entry that starts it again shortly before."""
        # A bound method of the loop: the smallest callable that knows its loop.
        wake_at = cursor.nominal.timestamp() - _WAKE_AHEAD
        loop.dormant = self._timer.call_at_wall(wake_at, loop.wake)

    def _wake_dormant(self, loop: Loop) -> None:
        """Timer callback of a dormant loop (S8): queue it for the waker task, which
        parks it again without a Trio task of its own (S9), a chunk per step (S11)."""
        loop.dormant = None
        if loop.stopping or self._state is not _State.RUNNING or self._services is None:
            return
        self._waking.append(loop)
        if not self._waker_running:
            self._waker_running = True
            self._services.start_soon(self._wake_loops, name="trio_sched:wake")

    async def _wake_loops(self) -> None:
        try:
            while self._waking:
                chunk = self._waking[:_START_CHUNK]
                del self._waking[:_START_CHUNK]
                for loop in chunk:
                    cursor = loop.cursor
                    assert cursor is not None  # a loop goes dormant from its cursor (S8)
                    if loop.stopping or loop.park is not None or loop.dormant is not None:
                        continue
                    if self._next_park(loop, cursor) is None:
                        self._go_dormant(loop, cursor)  # the wall clock moved back meanwhile
                await trio.lowlevel.checkpoint()
        finally:
            self._waker_running = False
            self._waking.clear()

    def _park_group_due(self, nominal_ts: float) -> None:
        group = self._park_groups.pop(nominal_ts, ())
        self._due.extend(park for park in group if not park.abandoned)

    def _on_due(self, park: Park) -> None:
        # Look up self._due at call time: _process_due swaps in a fresh list.
        self._due.append(park)

    def _process_due(self) -> None:
        """Timer pass end: decide everything that became due together (S2)."""
        due = self._due
        if not due:
            return
        self._due = []
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
            task = park.loop.task
            nominal = park.nominal
            decision = on_time.get(nominal, _MISSING)
            if decision is _MISSING:
                decision = on_time[nominal] = _plan.decide_on_time(nominal, now, grace)
            if decision is None:
                decision = _plan.decide(task.cron, nominal, now, grace, task.policy)
            if decision.action is _plan.Action.WAIT:
                # Woke early by the wall clock: wait for the rest, measured just now.
                deadline = trio.current_time() + (park.nominal_ts - now_ts)
                due_again = functools.partial(self._on_due, park)
                park.handle = self._timer.call_at_wall(
                    park.nominal_ts, due_again, deadline=deadline
                )
                continue
            park.decision = decision
            if decision.action is _plan.Action.SKIP:
                # Settled here, without waking the loop's task (S9).
                park.phase = Phase.DONE
                self._settle_outside(park)
            else:
                if decision.late:  # a misfire: maybe another occurrence, no slack (S7)
                    self._prepare(park, decision.nominal, late=True)
                park.phase = Phase.ACQUIRING
                firing.append(park)
        if firing:
            assert self._services is not None
            self._batches.enter()
            self._services.start_soon(self._acquire_batch, firing)

    async def _acquire_batch(self, parks: list[Park]) -> None:
        """One ``acquire_batch`` for every occurrence due together (S2), then S9."""
        try:
            await self._acquire_and_dispatch(parks)
        finally:
            self._batches.leave()

    async def _acquire_and_dispatch(self, parks: list[Park]) -> None:
        # Built now rather than while the loops wait: one request kept per waiting loop
        # (a tracked object) would be promoted to the collector's old generation with
        # every burst and trigger full collections (~200 ms each at 10,000 loops).
        requests: list[AcquireRequest] = []
        for park in parks:
            loop = park.loop
            info = park.info
            assert info is not None
            requests.append(
                AcquireRequest(park.key, loop.ttl, loop.wm_name, info.ms, park.slack_ms)
            )
        started = trio.current_time()
        leases: list[LockLease | None]
        try:
            leases = list(await self._locks.acquire_batch(requests))
            if len(leases) != len(requests):
                raise InvalidArgumentError(
                    f"acquire_batch answered {len(leases)} results for {len(requests)} requests"
                )
        except Exception as exc:
            for park in parks:
                park.error = exc
            leases = [None] * len(parks)
        orphans: list[LockLease] = []
        dispatching: list[Park] = []
        for park, lease in zip(parks, leases, strict=True):
            if park.abandoned:
                if lease is not None:
                    orphans.append(lease)
                continue
            park.lease = lease
            park.acquired_at = started
            park.expires = started + park.loop.ttl
            if lease is not None and park.error is None:
                park.phase = Phase.DISPATCHING
                dispatching.append(park)
                continue
            # A lock miss or an acquire error: settled here, no loop task is needed.
            park.phase = Phase.DONE
            self._settle_outside(park)
        if dispatching:
            await self._dispatch_batch(dispatching, started)
        for lease in orphans:  # S4: nothing was attempted for these
            try:
                await self._locks.release(lease)
            except Exception:
                self._config.logger.warning("could not release unused lease %r", lease.key)

    def _wake(self, park: Park) -> None:
        """Hand `park` to its loop: start a Trio task for the (detached) loop (S9), which
        then settles or dispatches it on its own."""
        park.phase = Phase.DONE
        loop = park.loop
        nursery = self._loop_nursery
        if nursery is None:  # hard stop: nothing runs any more; locks end by their TTL
            park.abandoned = True
            return
        loop.park = park
        nursery.start_soon(self._run_loop, loop, park, name=f"trio_sched:{loop.task.name}")

    def _hand_over(self, park: Park, guard: LeaseGuard | None) -> None:
        """Give a batch's occurrence to its loop (S9) with the lease as the batch's guard
        last renewed it, so the loop's own guard renews it on time."""
        if guard is not None:
            park.lease = guard.lease
            park.expires = guard.expires
        self._wake(park)

    async def _dispatch_batch(self, parks: list[Park], acquired_at: float) -> None:
        """S9: enqueue every acquired occurrence of a burst: with one ``enqueue_many``
        call, or, for a plain runtime, job by job from this task and a few helpers
        (`_enqueue_each`).

        Each occurrence keeps its own lease guard (renewal, ``dispatch_timeout``). With
        ``enqueue_many`` they share the call's cancel scope: a lost lease or the timeout
        cancels the call; job by job, a guard cancels its own job's enqueue only. The guards
        are made only if the call still runs when the first of them would act (the
        shortest TTL/3, or the timeout); an enqueue rarely takes that long. Then, per
        occurrence: accepted or a duplicate (`ConflictError`) counts as fired; a
        transient error, a failure of the whole call or a call cancelled for another
        occurrence's lost lease hands the occurrence to its loop, which enqueues it
        again on its own (safe: the idempotency key dedupes, S5 retries); any other
        error is reported. The loops' tasks are woken only for those hand-overs.
        """
        enqueue_many = self._enqueue_many
        services = self._services
        assert services is not None
        created = self._wall_clock()
        jobs = [self._occurrence_job(park, created) for park in parks]
        results: list[Exception | None] | None = None
        with trio.CancelScope() as scope:
            batch = BatchGuard(parks, scope, acquired_at, plain=enqueue_many is None)
            first_check = min(park.loop.ttl for park in parks) / 3
            first_check = acquired_at + min(first_check, self._config.dispatch_timeout)
            self._leases.arm_batch_at(batch, first_check, services)
            self._in_flight += len(jobs)
            try:
                if enqueue_many is not None:
                    results = await enqueue_many(jobs)
                else:
                    results = await self._enqueue_each(jobs, batch)
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
                self._in_flight -= len(jobs)
                batch.finish()
        guards = batch.guards
        for index, park in enumerate(parks):
            guard = guards[index] if guards else None
            try:
                self._batch_outcome(park, guard, jobs[index], results, index)
            except Exception as exc:
                self._crashed_outside(park, exc)

    async def _enqueue_each(self, jobs: list[Job], batch: BatchGuard) -> list[Exception | None]:
        """A plain runtime's burst (S9): `enqueue` every job, at most
        ``_ENQUEUE_CONCURRENCY`` at once, from this task and up to that many helpers
        (never a task per occurrence). Returns what ``enqueue_many`` would: ``None`` or
        the job's error, in order; `_CANCELLED` for a job its own guard cancelled."""
        results: list[Exception | None] = [None] * len(jobs)
        order = iter(range(len(jobs)))  # shared: each job is taken by one of them
        helpers = min(len(jobs), _ENQUEUE_CONCURRENCY) - 1
        if helpers <= 0:
            await self._enqueue_some(jobs, batch, results, order)
            return results
        async with trio.open_nursery() as nursery:
            for _ in range(helpers):
                nursery.start_soon(self._enqueue_some, jobs, batch, results, order)
            await self._enqueue_some(jobs, batch, results, order)
        return results

    async def _enqueue_some(
        self,
        jobs: list[Job],
        batch: BatchGuard,
        results: list[Exception | None],
        order: Iterator[int],
    ) -> None:
        """Take jobs from `order` and enqueue them one after another. Each runs in this
        task's current cancel scope, which only its job's guard cancels (`_Slot`); after
        a cancellation the next job gets a fresh scope, so no job is cancelled for
        another one's lease."""
        enqueue = self._jobs.enqueue
        running = batch.running
        cancelled = batch.cancelled
        while True:
            index = -1
            with trio.CancelScope() as scope:
                for index in order:
                    if index in cancelled:  # its guard acted before it started
                        results[index] = _CANCELLED
                        continue
                    running[index] = scope
                    try:
                        await enqueue(jobs[index])
                    except Exception as exc:
                        results[index] = exc
                    del running[index]
                    if scope.cancel_called:
                        break  # cancelled as that job returned: a fresh scope for the next
                else:
                    return
            if scope.cancelled_caught:
                running.pop(index, None)
                results[index] = _CANCELLED

    def _batch_outcome(
        self,
        park: Park,
        guard: LeaseGuard | None,
        job: Job,
        results: list[Exception | None] | None,
        index: int,
    ) -> None:
        """Settle one occurrence of a batch's call, or hand it to its loop (S9).
        `results` is ``None`` when the call raised or was cancelled."""
        loop = park.loop
        cursor = loop.cursor
        decision = park.decision
        assert cursor is not None
        assert decision is not None
        error: Exception | None
        if results is None:
            if guard is None or (guard.lost is None and not guard.timed_out):
                if not park.abandoned:
                    self._hand_over(park, guard)  # the loop enqueues it on its own
                return
            # Cancelled for this occurrence's own lease or the timeout (even if the
            # runtime then raised instead of letting the cancellation through).
            error = guard.lost if guard.lost is not None else self._timed_out(loop)
        elif results[index] is _CANCELLED:
            # By its own guard (a plain runtime's burst): lost lease or timeout.
            assert guard is not None
            error = guard.lost if guard.lost is not None else self._timed_out(loop)
        else:
            error = results[index]
            if isinstance(error, ConflictError):
                error = None  # already enqueued under its idempotency key: fired
            if error is not None and _is_transient(error) and not park.abandoned:
                self._hand_over(park, guard)  # the loop retries it (S5)
                return
        park.phase = Phase.DONE
        self._settle(loop, cursor, park)
        self._dispatched(loop, decision, job, error)
        cursor.nominal = loop.task.cron.next_after(decision.nominal)
        self._move_on(park)

    def _settle_outside(self, park: Park) -> None:
        """Settle a decided `park` that needs no dispatch (skip, lock miss, acquire
        error) outside its loop's task, and move the loop on (S9)."""
        try:
            cursor = park.loop.cursor
            assert cursor is not None
            self._settle(park.loop, cursor, park)
            self._move_on(park)
        except Exception as exc:
            self._crashed_outside(park, exc)

    def _crashed_outside(self, park: Park, exc: Exception) -> None:
        """A bug or an impossible schedule while settling `park` outside its loop's task
        (in a batch or the timer pass): report it as a crashed loop is reported, end
        that loop (it is not parked again) and keep every other task running."""
        loop = park.loop
        self._reporter.crash(loop, exc)
        # Stop it as `unregister` would: a park re-armed before the failure stops
        # waiting.
        loop.park = park
        loop.stop()
        if not park.abandoned:  # it was being settled, not waiting: end it the same way
            park.abandoned = True
            park.phase = Phase.DONE
        loop.park = None  # detached: nothing refers to it any more

    # -- dispatch (S3) -------------------------------------------------------------------------

    async def _dispatch_occurrence(
        self, loop: Loop, park: Park, decision: _plan.Decision, lease: LockLease
    ) -> None:
        job = self._occurrence_job(park, self._wall_clock())
        scope = loop.dispatch_scope
        assert scope is not None
        assert loop.nursery is not None
        guard = self._leases.arm(
            lease, loop.ttl, park.acquired_at, scope, loop.nursery, park.expires
        )
        in_flight = loop.in_flight = InFlight(decision, guard)
        self._in_flight += 1
        error: Exception | None = None
        try:
            try:
                await self._jobs.enqueue(job)
            except ConflictError:
                pass  # already enqueued under this idempotency key: success
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                retry_until: float | None = None
                if not (decision.late or loop.fire_once):
                    retry_until = park.nominal_ts + self._config.misfire_grace
                await self._enqueue_with_retry(job, retry_until, first_error=exc)
        except Exception as exc:
            error = exc
        finally:
            guard.finish()
            self._in_flight -= 1
        # Yield once before the bookkeeping (counters, watermark, event, next occurrence):
        # in a burst every loop then enqueues before any loop does its bookkeeping, which
        # halves the time to the burst's last enqueue at no extra CPU (S3). Shielded: the
        # outcome is decided, a cancellation now must not turn it into a failure.
        await trio.lowlevel.cancel_shielded_checkpoint()
        # Not cancelled: the dispatch ended by itself (success or error).
        loop.in_flight = None
        self._finish_dispatch(loop, in_flight, job, error)
        if scope.cancel_called:
            # The lease was lost or time ran out just as the enqueue returned: the scope
            # is cancelled but nothing noticed. Unwind it now (the loop makes a new one).
            await trio.lowlevel.checkpoint()

    def _occurrence_job(self, park: Park, created: datetime) -> Job:
        """The job of an acquired occurrence. Hot path (one call per fire): everything
        lease-independent was prepared while the loop waited (`_prepare`), per-task
        constants come from its loop."""
        info = park.info
        lease = park.lease
        assert info is not None
        assert lease is not None
        headers = park.headers
        headers[H_FENCING] = str(lease.fencing_token)  # Job copies the headers
        return _task_job(
            park.loop.task, park.job_id, park.idem, headers, info.utc, created, lease.fencing_token
        )

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
            error = guard.lost if guard.lost is not None else self._timed_out(loop)
        self._dispatched(loop, in_flight.decision, job, error)

    def _dispatched(
        self, loop: Loop, decision: _plan.Decision, job: Job | None, error: Exception | None
    ) -> None:
        """Count an ended dispatch: fired (`error` None) or failed."""
        if error is not None:
            self._reporter.dispatch_failure(
                loop, decision.nominal, error, lateness=decision.lateness
            )
            return
        assert job is not None
        self._record_fired(loop, decision, job)

    def _timed_out(self, loop: Loop) -> RetryableError:
        return RetryableError(
            f"dispatch of task {loop.task.name!r} did not finish within "
            f"dispatch_timeout={self._config.dispatch_timeout}s"
        )

    def _record_fired(self, loop: Loop, decision: _plan.Decision, job: Job) -> None:
        loop.fired += 1
        loop.last_fire = decision.nominal
        loop.last_lateness = decision.lateness
        self._watermarks.mark(loop.wm_name, loop.task.name, self._nominal(decision.nominal).ms)
        self._reporter.emit(
            EventKind.FIRED, loop.task.name, decision.nominal, decision.lateness, job=job
        )

    async def _guarded_enqueue(
        self,
        job: Job,
        lease: LockLease,
        ttl: float,
        acquired_at: float,
        nursery: trio.Nursery,
    ) -> Exception | None:
        """Enqueue a triggered `job` under `lease` in its own cancel scope (S3)."""
        self._in_flight += 1
        try:
            with trio.CancelScope() as scope:
                guard = self._leases.arm(lease, ttl, acquired_at, scope, nursery)
                try:
                    await self._enqueue_with_retry(job, None)
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
            self._in_flight -= 1

    async def _enqueue_with_retry(
        self, job: Job, retry_until: float | None, *, first_error: Exception | None = None
    ) -> None:
        """Enqueue, retrying transient errors (S5) until `retry_until` (wall time)."""
        backoff = self._config.retry_backoff
        error = first_error
        while True:
            if error is not None:
                if retry_until is not None and self._wall_time() + backoff > retry_until:
                    raise error
                await self._timer.sleep_until(trio.current_time() + backoff)
                backoff = min(backoff * 2, self._config.retry_backoff_max)
            try:
                await self._jobs.enqueue(job)
                return
            except ConflictError:
                return  # already enqueued under this idempotency key: success
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                error = exc

    def _nominal(self, nominal: datetime) -> Nominal:
        """Derived forms of a nominal instant, shared by every task due at it."""
        info = self._nominals.get(nominal)
        if info is None:
            if len(self._nominals) >= _NOMINAL_CACHE:
                self._nominals.clear()
            utc = nominal.astimezone(UTC)
            info = Nominal(utc, _plan.epoch_ms(utc), utc.isoformat())
            self._nominals[nominal] = info
        return info

    # -- watermarks (O3, S2) --------------------------------------------------------------------

    def _start(self, loop: Loop) -> None:
        """Queue `loop` to be started by the starter task (S10); not a checkpoint."""
        self._to_start.append(loop)
        if self._starter is None and self._loop_nursery is not None:
            self._starter = trio.CancelScope()
            self._loop_nursery.start_soon(self._start_loops, name="trio_sched:start")

    async def _start_loops(self) -> None:
        """S10: start the queued loops, ``_START_CHUNK`` at a time: one
        ``get_watermarks`` call per chunk, then each loop is parked on its first
        occurrence (or goes dormant) right here, without a Trio task of its own, and
        the task yields before the next chunk, so no step holds the Trio loop long."""
        scope = self._starter
        assert scope is not None
        try:
            with scope:
                while self._to_start:
                    chunk = [loop for loop in self._to_start[:_START_CHUNK] if not loop.stopping]
                    del self._to_start[:_START_CHUNK]
                    if chunk:
                        marks = await self._start_watermarks(chunk)
                        self._park_first(chunk, marks)
                    await trio.lowlevel.checkpoint()
        finally:
            self._starter = None
            self._to_start.clear()  # cancelled by a stop: those loops never start

    async def _start_watermarks(self, chunk: list[Loop]) -> dict[str, int]:
        """The watermarks of `chunk`, in one call, retried while transient (O7). A
        failure that is not transient starts those loops fresh: no catch-up, and
        nothing fires twice (the O3 locks)."""
        names = [loop.wm_name for loop in chunk]
        backoff = self._config.retry_backoff
        while True:
            try:
                return dict(await self._locks.get_watermarks(names))
            except Exception as exc:
                for loop in chunk:
                    if not loop.stopping:
                        self._reporter.error(loop, None, exc)
                if not _is_transient(exc):
                    return {}
            await self._timer.sleep_until(trio.current_time() + backoff)
            backoff = min(backoff * 2, self._config.retry_backoff_max)

    def _park_first(self, chunk: list[Loop], marks: Mapping[str, int]) -> None:
        """Give each loop of `chunk` its cursor and park it on its first occurrence."""
        now = self._wall_clock()
        backoff = self._config.retry_backoff
        for loop in chunk:
            if loop.stopping or loop.cursor is not None:
                continue  # unregistered or stopped while its watermark was read
            try:
                cursor = loop.cursor = Cursor(
                    _plan.first_candidate(loop.task.cron, now, marks.get(loop.wm_name)),
                    backoff,
                )
                if self._next_park(loop, cursor) is None:
                    self._go_dormant(loop, cursor)
            except Exception as exc:
                # An impossible schedule: that loop ends alone, like a crashed loop.
                self._reporter.crash(loop, exc)
                loop.stop()

    def _watermark_failed(self, task: str, error: Exception) -> None:
        """A watermark of `task` could not be advanced (the locks still protect)."""
        loop = self._loops.get(task)
        if loop is not None:
            loop.errors += 1
            self._reporter.emit(EventKind.ERROR, task, None, None, error=error)

    # -- reporting -------------------------------------------------------------------------------

    # -- small helpers ---------------------------------------------------------------------------

    def _ttl(self, task: Task) -> float:
        return task.lock_ttl if task.lock_ttl is not None else self._config.default_lock_ttl

    def _wall_time(self) -> float:
        return self._wall_clock().timestamp()

    async def _close_owned(self) -> None:
        for closer in (self._jobs.aclose, self._locks.aclose):
            try:
                await closer()
            except Exception:
                self._config.logger.exception("closing a provider failed")


@asynccontextmanager
async def open_scheduler(
    *,
    jobs: JobsRuntime,
    locks: LockProvider,
    config: Config | None = None,
    close_providers: bool = False,
) -> AsyncIterator[Scheduler]:
    """Run a `Scheduler` for the duration of the block (S6 on exit).

    Entering is a checkpoint and returns once the scheduler runs. Leaving the block
    (normally or by an exception) stops it gracefully and waits for the drain; an
    exception from the block propagates unchanged (not wrapped in an ExceptionGroup).
    Providers are closed on exit only with ``close_providers=True``.
    """
    scheduler = Scheduler(jobs=jobs, locks=locks, config=config, close_providers=close_providers)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(scheduler.run)
            try:
                yield scheduler
            finally:
                scheduler.stop_nowait()
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        single = group.exceptions[0]
        context = single.__context__
        try:
            raise single
        finally:
            single.__context__ = context
