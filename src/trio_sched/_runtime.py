"""`Scheduler` and `open_scheduler`: the Trio runtime (rules O1-O15 of docs/runtime.md).

Shape: `Scheduler.run` owns a *services* nursery (the shared timer, the bursts,
watermark flushes, the waker, renewers of bursts and manual triggers) and inside it a
*loops* nursery (the starter, and the short-lived Trio task a loop gets to retry an
occurrence handed back to it, with a small nursery for its lease renewer). A waiting
loop is data (`_loop`): no Trio task. The parts are wired in `_pipeline`;
docs/runtime.md draws where one occurrence goes.

Rules:
- D1 Occurrences come from the cron engine (``next_after`` on the wall clock) and all
  identity derives from the nominal instant (`_plan`, O1/O2). A loop parks on the shared
  timer (`_timer`) until the wall clock reaches its nominal instant; loops due at the
  same instant share one timer entry.
- D2 Start: one starter task starts the loops (all of them at `run`, later ones as
  they are registered), ``_START_CHUNK`` at a time: one ``get_watermarks`` call for the
  chunk (transient errors retried with backoff and reported per task; another error
  starts those tasks fresh), then each loop gets its cursor and is parked on its first
  occurrence, or goes dormant, right there: no Trio task per loop, and a yield between
  chunks so starting 100,000 tasks never holds the Trio loop for long. A stop cancels
  the starter (loops not started yet never start); an impossible schedule ends its
  loop alone, reported like a crashed loop.
- D3 Dormant loops: a loop whose next occurrence is more than 5 s away (wall clock) is
  not parked; it joins the dormant group of its wake-up instant, 2 s before the
  occurrence: one shared timer entry per instant hands the group to the waker (D4).
  Its cursor stays on the task's record, so it resumes exactly where it was. An idle
  schedule costs its record and a slot in its group (no timer objects of its own for
  the garbage collector to walk). Stop and unregister take the loop out of its group
  at once; a wall-clock jump moves the group's entry like any wall-anchored entry.
- D4 Dormant loops woken together (their wake-up instants coincide, 2 s before a
  shared occurrence) are parked again by one waker task, ``_START_CHUNK`` per step, so
  20,000 of them do not hold the Trio loop for one long step.
- D5 Batching: all occurrences that become due in one timer pass are decided in
  that pass (pure `_plan.decide`, one wall-clock read) and acquired with ONE
  ``acquire_batch`` call, the watermark check included. A burst of more than
  ``BURST_CHUNK`` (1,000) occurrences is sorted by the period of its tasks (shortest
  first: their next occurrence is nearest), and only its first chunk is decided in the
  pass; the burst's task acquires and enqueues that chunk, then decides, acquires and
  enqueues each next chunk after a yield, and records the outcomes after the last
  enqueue, a chunk per step: no step holds the Trio loop for the whole burst, and no
  bookkeeping delays an enqueue. Lock misses, acquire errors and
  misfire skips are settled right there, without waking a loop; an acquired occurrence
  is dispatched with its whole burst (D6). A failure while settling
  outside a loop's task (an impossible next occurrence) ends that loop alone, reported
  like a crashed loop. Watermarks of dispatches finishing together are advanced with one
  ``advance_watermarks`` call. Watermarks of tasks starting together are read with one
  ``get_watermarks`` call per chunk of D2.
- D6 The burst enqueues: the task that acquired a burst's locks also enqueues the
  burst, and records each outcome (counters, watermark, event) and parks each loop on
  its next occurrence itself, whatever the jobs runtime: the loops' Trio tasks are not
  woken (a loop parks *detached*: no Trio task between occurrences; dormancy (D3) and
  stop need none either). A `BatchJobsRuntime` (it has ``enqueue_many``) gets one
  ``enqueue_many`` call; every occurrence keeps its own lease guard, all on the
  call's cancel scope: a lost lease or the timeout cancels the call; the occurrence
  whose lease was lost (or every one, on timeout) is reported as in D7, and the others
  are handed to their loops, with their leases as last renewed, which enqueue them
  again on their own (D7, D8). A plain `JobsRuntime` gets one ``enqueue`` per job, at
  most ``ENQUEUE_CONCURRENCY`` at once, from the burst's task and a few helpers
  (`_enqueue`); each job's enqueue runs in a scope only its own guard cancels, so a
  lost lease or the timeout ends that occurrence alone (reported as in D7) and nothing
  is enqueued twice, even on a runtime that does not dedupe. A transient per-job result
  or a failure of the whole call hands the occurrence over the same way; repeating is
  safe because the idempotency key dedupes (and a transient error says nothing was
  stored, as D8 assumes). After a hard stop nothing is handed over (the loops nursery
  is closed). Lock misses, acquire errors and misfire skips are settled the same way,
  by the batch or the timer pass, without waking a loop. A stop or unregister while
  the call runs lets it finish (D11).
- D7 Dispatch (O5) by a loop, for an occurrence its burst handed over to retry (D6): a
  loop dispatches inside its own *dispatch cancel scope*: one scope
  per loop, only ever cancelled while a dispatch runs, and replaced by a fresh one after
  each cancellation (a new `trio.CancelScope` per dispatch measured ~8 us, 8 ms per
  1,000 occurrences on the 2-core dev box). A dispatch is bounded by
  ``dispatch_timeout``, counted from its lock request. Its lease renewer is a child task
  of the loop's nursery, spawned by the timer only when the dispatch is still running
  at TTL/3 (a child task per dispatch would cost ~100 us each); it renews every TTL/3
  and, when a renewal is rejected or the lease would expire unconfirmed, cancels the
  dispatch scope and records ``lease_lost``. `Scheduler.trigger` dispatches its
  occurrence the burst's way (a burst of one, `Burst.dispatch_manual`), a takeover
  with a burst of its own (D12); a transient error of either is retried by a task of
  its own under its guard. After its enqueue returns, a dispatch yields once (shielded) before
  its bookkeeping, so the loops of a burst all enqueue first.
- D8 Errors (O7): ``RetryableError`` and ``OSError`` (connection trouble, timeouts) are
  transient: an acquire is retried with exponential backoff (``retry_backoff`` doubling
  to ``retry_backoff_max``) and each retry is decided again by `_plan.decide`, so past
  ``misfire_grace`` the misfire policy decides (``skip`` drops it, ``fire_once`` keeps
  trying the latest late occurrence). An enqueue is retried inside the grace window
  (``skip``) or until ``dispatch_timeout`` (``fire_once`` and triggers). Any other
  exception from a provider or runtime is not retried: it is reported (``error`` event,
  log) and the loop moves on. ``ConflictError`` from ``enqueue`` (duplicate idempotency
  key) counts as a successful dispatch. A loop never dies of a backend error.
- D9 Locks are never released after a dispatch was attempted (O3): the record stays
  for its memory. The only release is of a lease acquired for a loop that was cancelled
  before it could dispatch (stop/unregister while its batch was in flight): nothing was
  attempted, so releasing cannot cause a double fire.
- D10 Watermarks and skewed clocks: an instance whose clock runs ahead can move a task's
  watermark past an occurrence that the on-time instances have not reached yet and
  nobody dispatched (it started, restarted or misfired past it). So an occurrence
  reached on time is refused by the watermark only when it lies at least
  ``keep - misfire_grace`` below it (``AcquireRequest.watermark_slack_ms``; ``keep``
  = ``lock_ttl + dispatch_timeout + dedupe_window``, the record's memory); closer
  ones are decided by their record, which a dispatching instance made less than that
  long ago and which is still kept. Late occurrences (misfires, catch-up after a
  restart) are refused by the watermark outright. Exactly once therefore holds while
  the clocks of instances differ by less than ``keep - misfire_grace``.
- D11 Stop (O9): `Scheduler.stop` stops new occurrences at once (parked loops are
  woken and end; a detached loop's park is dropped), lets in-flight dispatches, batches
  and triggers finish (each bounded by
  ``dispatch_timeout``), flushes pending watermarks, releases no occurrence lock, and
  closes the providers only when the scheduler was created with
  ``close_providers=True`` (providers passed in belong to the caller). Cancelling
  `Scheduler.run` from outside is a hard stop: in-flight dispatches are cancelled, locks
  stay until their TTL, pending watermarks get one shielded flush attempt bounded by
  ``dispatch_timeout``. Either stop drops this instance's watches (D12).
- D12 Takeover (O10, `_takeover` T1-T5): an occurrence another instance leases and
  has not dispatched (``Held``) is a lock miss and is watched: asked for again when the
  lease runs out, in one ``acquire_batch`` per instant, and dispatched by this
  instance if it took it over (its misfire policy judged from the nominal instant),
  without moving its loop. Before every enqueue (a burst's call, each job of a plain
  runtime, each retry) the lease must still be valid by this instance's monotonic
  clock, measured from before the request that took or renewed it; an occurrence
  whose lease ran out is not enqueued and is reported ``lease_lost``. After the
  enqueue the record is marked dispatched with the watermark flush (`_watermarks`), so
  watchers find it dispatched.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from types import MappingProxyType
from typing import final

import trio
from trio_util import AsyncValue

from trio_sched._config import Config, GuardedClock, check_wall_clock
from trio_sched._errors import (
    ClosedError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    NotInitializedError,
)
from trio_sched._events import (
    SchedulerEvent,
    SchedulerStatistics,
)
from trio_sched._loop import (
    Loop,
)
from trio_sched._pausing import TaskStatus
from trio_sched._pipeline import Pipeline
from trio_sched._requested import DEFAULT_BACKFILL_LIMIT, BackfillResult, Requested
from trio_sched._task import Task
from trio_sched.jobs._job import Job, JobsRuntime
from trio_sched.locks._protocol import LockProvider

__all__ = ["Scheduler", "open_scheduler"]


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


@final
class Scheduler:
    """A cron scheduler on a `LockProvider` and a `JobsRuntime` (rules D1-D11).

    Use it through `open_scheduler`, or run it yourself::

        scheduler = Scheduler(jobs=jobs, locks=locks, config=Config())
        scheduler.register(task)          # before or after start
        await scheduler.start(nursery)    # = await nursery.start(scheduler.run)
        ...
        await scheduler.stop()            # graceful (D11); returns once fully stopped

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
        self._locks = locks
        self._user_config = config
        # Every part reads the wall clock through one guard (K2: a clock that fails
        # later is logged and bridged, never a crashed scheduler).
        guarded = GuardedClock(config.wall_clock, config.logger)
        config = self._config = dataclasses.replace(config, wall_clock=guarded)
        self._close_providers = close_providers
        self._loops: dict[str, Loop] = {}
        # new -> running -> stopping -> closed; `stop` and callers await it (`wait_state`).
        self._state: AsyncValue[_State] = AsyncValue(_State.NEW)
        self._wall_clock = config.wall_clock
        self._services: trio.Nursery | None = None
        self._loop_nursery: trio.Nursery | None = None
        pipeline = self._pipeline = Pipeline(jobs, locks, config, self._loops, self._wall_time)
        self._timer = pipeline.timer
        self._reporter = pipeline.reporter
        self._watermarks = pipeline.watermarks
        self._parking = pipeline.parking
        self._takeovers = pipeline.takeovers
        self._burst = pipeline.burst
        self._tasks = pipeline.tasks
        self._requested = pipeline.requested
        self._pausing = pipeline.pausing
        self._triggers = pipeline.triggers
        self._prefix = config.lock_key_prefix

    # -- registry (synchronous, any time before close) -------------------------------

    def register(self, task: Task) -> None:
        """Add `task`; it starts at once when the scheduler runs (O9).

        Raises `ConflictError` for a name already registered, `ValidationError` for an
        invalid task, `ClosedError` once stopping or closed. Not a checkpoint.
        """
        if self._state.value in (_State.STOPPING, _State.CLOSED):
            raise ClosedError("scheduler is stopped; register on a new Scheduler")
        if not isinstance(task, Task):
            raise InvalidArgumentError(f"register expects a Task, got {type(task).__name__}")
        task.validate()
        if task.name in self._loops:
            raise ConflictError(f"task {task.name!r} is already registered")
        self._pipeline.check_policies(task)
        config = self._config
        loop = Loop(
            self._parking,
            task,
            self._ttl(task),
            self._prefix,
            config.misfire_grace,
            config.dispatch_timeout + config.dedupe_window,
            config.instance,
        )
        self._loops[task.name] = loop
        if self._state.value is _State.RUNNING and self._loop_nursery is not None:
            self._parking.start(loop)  # before that, `run` starts every registered loop

    def unregister(self, name: str) -> None:
        """Remove task `name` at once: its loop stops waiting; a dispatch already in
        flight finishes (bounded by ``dispatch_timeout``). Not a checkpoint.

        Raises `NotFoundError` for an unknown name and `ClosedError` once closed.
        """
        if self._state.value is _State.CLOSED:
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
        return self._user_config

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
        """Run until `stop` (then drain, D11) or until cancelled (hard stop, D11).

        Use ``await nursery.start(scheduler.run)`` (what `start` does); it reports
        started once the starter of the registered loops is spawned (D2). Cancelled: every
        loop and in-flight dispatch is cancelled, no lock is released (they end by
        their TTL), pending watermarks get one shielded flush attempt and owned providers
        are closed (shielded, bounded by ``dispatch_timeout``).
        """
        if self._state.value is _State.CLOSED:
            raise ClosedError("scheduler is closed; make a new Scheduler")
        if self._state.value is not _State.NEW:
            raise ConflictError("scheduler is already running")
        # A clock that cannot be read would crash every loop: refuse to start (K2).
        check_wall_clock(self._user_config.wall_clock)
        self._state.value = _State.RUNNING
        try:
            async with trio.open_nursery() as services:
                self._attach(services, None)
                await services.start(self._timer.run)
                try:
                    async with trio.open_nursery() as loops:
                        self._attach(services, loops)
                        for loop in self._loops.values():
                            self._parking.start(loop)
                        task_status.started()
                        await self._state.wait_value(_State.STOPPING)  # `stop_nowait`
                        for loop in self._loops.values():
                            loop.stop()
                        self._parking.stop_starting()  # loops not started yet never will
                        self._takeovers.stop()  # other instances keep watching (D12)
                        # Batches in flight finish their dispatches (D11) and may hand some
                        # to their loops (D6), which start in this nursery: keep it open.
                        await self._burst.batches.wait_idle()
                finally:
                    # Closed (also on a hard stop, while a batch may still be finishing):
                    # from now on nothing is handed to a loop (`LoopTasks.wake`).
                    self._attach(services, None)
                # Every loop ended: no dispatch of ours is in flight any more.
                await self._triggers.wait_idle()
                await self._watermarks.drain()
                services.cancel_scope.cancel()
        finally:
            self._state.value = _State.STOPPING  # also after a hard stop: cleaning up
            self._attach(None, None)
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + self._config.dispatch_timeout
                await self._watermarks.flush_last()  # hard stop: one last attempt (D11)
                if self._close_providers:
                    await self._close_owned()
            for channel in self._reporter.channels:
                channel.close()
            self._reporter.channels.clear()
            self._state.value = _State.CLOSED

    def stop_nowait(self) -> None:
        """Ask a running scheduler to stop (D11) without waiting. Idempotent.

        A scheduler that never started is closed at once; a running one is
        ``stopping`` from now on (no new registrations or triggers).
        """
        if self._state.value is _State.NEW:
            self._state.value = _State.CLOSED
        elif self._state.value is _State.RUNNING:
            self._state.value = _State.STOPPING

    async def stop(self) -> None:
        """Stop gracefully (D11) and wait until the scheduler is closed. Idempotent.

        A checkpoint. Cancelling the wait does not cancel the stop, which continues in
        the task running `run`.
        """
        never_started = self._state.value is _State.NEW
        self.stop_nowait()
        if never_started and self._close_providers:
            await self._close_owned()
        await self._state.wait_value(_State.CLOSED)

    # -- manual trigger (O8) ------------------------------------------------------------

    async def trigger(self, name: str) -> Job:
        """Dispatch task `name` now, with a manual occurrence identity (O8, P2).

        Returns the dispatched `Job`. Never does nothing silently: raises
        `NotFoundError` (unknown name), `NotInitializedError` (not started),
        `ClosedError` (stopping or closed), `LeaseLostError` (lease lost mid-dispatch),
        `RetryableError` (dispatch timed out) or the backend's error. Does not move the
        task's watermark or its schedule.

        The occurrence goes the burst's way (D6): one lease guard, the lease checked by
        this instance's clock before the enqueue, transient enqueue errors retried until
        ``dispatch_timeout``. A checkpoint. Cancelled while acquiring: the provider's
        rules apply (no hidden lock). Cancelled while enqueuing: the job may or may not
        be enqueued; the manual lock stays until its TTL. Cancelled while a retry runs:
        the retry goes on and is reported by events.
        """
        loop = self._running_loop(name)
        park = self._requested.trigger_park(loop, self._wall_clock())
        self._triggers.enter()
        try:
            # The burst's path (D6), for one occurrence: one lease guard, the lease check
            # before the enqueue, retries of transient errors until dispatch_timeout.
            await self._burst.dispatch_manual(park)
            assert park.settled is not None
            await park.settled.wait()
        finally:
            self._triggers.leave()
        result = park.result
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, Job)
        return result

    async def backfill(
        self,
        name: str,
        start: datetime,
        end: datetime,
        *,
        limit: int = DEFAULT_BACKFILL_LIMIT,
    ) -> BackfillResult:
        """Dispatch every occurrence of task `name`'s schedule in ``[start, end)`` once,
        with its normal identity (O14, rules Q2-Q4 of `_requested`): occurrences already
        dispatched (their lock record or their job still remembered) are counted, not
        enqueued again. ``end`` may not lie in the future; more than `limit`
        occurrences is a `ValidationError` before anything is dispatched.

        Raises like `trigger` when the scheduler is not running or the name is unknown.
        A checkpoint. Cancelled, what was dispatched stays dispatched, the chunk in
        flight may be partly enqueued and its unused leases run out by their TTL;
        running the same backfill again dispatches only what is missing.
        """
        loop = self._running_loop(name)
        nominals = Requested.backfill_range(loop, start, end, self._wall_clock(), limit)
        self._triggers.enter()
        try:
            return await self._requested.backfill(loop, nominals)
        finally:
            self._triggers.leave()

    async def pause(self, name: str, reason: str | None = None) -> None:
        """Pause task `name` on every instance sharing the coordination backend (O15,
        rule U1 of `_pausing`): once this returns, no instance dispatches an occurrence
        whose lock it asks for; each is skipped with reason ``paused``. `reason` (at
        most 1,000 characters) and this instance's name are stored with the pause.

        Raises `NotFoundError` for an unknown name, `InvalidArgumentError` when the lock
        provider keeps no pause records, or the backend's error. A checkpoint;
        cancelled, the pause may or may not be stored.
        """
        await self._pausing.pause(self._known_loop(name), reason)

    async def resume(self, name: str) -> BackfillResult | None:
        """Resume task `name` (rule U2): its next occurrence fires as usual; those
        skipped while paused do not, except that a ``fire_all`` task's are backfilled
        (O14) within its catch-up window. Returns that backfill's counts, else None.
        Raises like `pause`. A checkpoint; cancelled, the task may still be paused.
        """
        loop = self._known_loop(name)
        return await self._pausing.resume(loop, self._state.value is _State.RUNNING)

    async def task_status(self, name: str) -> TaskStatus:
        """The shared state of task `name` read from the coordination backend (rule U4):
        its pause record and its last dispatched occurrence. A checkpoint."""
        return await self._pausing.status(self._known_loop(name))

    def _known_loop(self, name: str) -> Loop:
        if self._state.value is _State.CLOSED:
            raise ClosedError("scheduler is closed")
        loop = self._loops.get(name)
        if loop is None:
            raise NotFoundError(f"no task named {name!r}")
        return loop

    def _running_loop(self, name: str) -> Loop:
        if self._state.value is _State.NEW:
            raise NotInitializedError("scheduler is not running; start it first")
        if self._state.value is not _State.RUNNING:
            raise ClosedError("scheduler is stopping or closed")
        loop = self._loops.get(name)
        if loop is None:
            raise NotFoundError(f"no task named {name!r}")
        return loop

    # -- observability --------------------------------------------------------------------

    def statistics(self) -> SchedulerStatistics:
        """A snapshot of every registered task's counters and the timer's loop lag."""
        return SchedulerStatistics(
            state=self._state.value.value,
            tasks=MappingProxyType({n: loop.snapshot() for n, loop in self._loops.items()}),
            timer_lag=self._timer.last_lag,
            timer_lag_max=self._timer.max_lag,
            in_flight_dispatches=self._burst.in_flight,
            events_dropped=self._reporter.dropped,
        )

    def events(self, max_buffer_size: int = 1000) -> trio.MemoryReceiveChannel[SchedulerEvent]:
        """A channel receiving every later event (rule E1 of `_events`).

        Events that do not fit in the buffer are dropped (counted in
        ``statistics().events_dropped``), so a slow reader never slows the schedule.
        The channel ends (``EndOfChannel``) when the scheduler closes. Not a checkpoint.
        """
        if self._state.value is _State.CLOSED:
            raise ClosedError("scheduler is closed")
        send, receive = trio.open_memory_channel[SchedulerEvent](max_buffer_size)
        self._reporter.channels.append(send)
        return receive

    async def measure_loop_lag(self) -> float:
        """How late (seconds) the shared timer serves an entry that is due now.

        A checkpoint; cancelling it leaves nothing behind. Raises
        `NotInitializedError` unless running.
        """
        if self._state.value is not _State.RUNNING:
            raise NotInitializedError("scheduler is not running")
        deadline = trio.current_time()
        await self._timer.sleep_until(deadline)
        return trio.current_time() - deadline

    @property
    def state(self) -> str:
        """``"new"``, ``"running"``, ``"stopping"`` or ``"closed"``; not a checkpoint."""
        state: _State = self._state.value
        return state.value

    async def wait_state(self, *states: str) -> str:
        """Wait until the scheduler is in one of `states` (``"running"``,
        ``"stopping"``, ``"closed"``, ...) and return it. A checkpoint; cancelling it
        changes nothing. ``InvalidArgumentError`` for an unknown or missing state."""
        wanted = set()
        for name in states:
            try:
                wanted.add(_State(name))
            except ValueError:
                raise InvalidArgumentError(f"unknown scheduler state {name!r}") from None
        if not wanted:
            raise InvalidArgumentError("wait_state needs at least one state")
        reached: _State = await self._state.wait_value(lambda state: state in wanted)
        return reached.value

    @property
    def running(self) -> bool:
        return self._state.value is _State.RUNNING

    # -- the per-task loop (D1) -------------------------------------------------------------

    # -- dispatch (D7) -------------------------------------------------------------------------

    # -- watermarks (O3, D5) --------------------------------------------------------------------

    def _attach(self, services: trio.Nursery | None, loops: trio.Nursery | None) -> None:
        """Where tasks run (None: nowhere, not running), for the scheduler and every
        component; the one place that sets them."""
        self._services = services
        self._loop_nursery = loops
        self._watermarks.attach(services)
        self._parking.services = services
        self._burst.services = services
        self._takeovers.services = services
        self._parking.loops_nursery = loops
        self._tasks.loops_nursery = loops

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
    """Run a `Scheduler` for the duration of the block (D11 on exit).

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
