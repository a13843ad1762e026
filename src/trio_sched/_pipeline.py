"""The occurrence pipeline of one scheduler, wired once: the parts `Scheduler` drives.

Where one occurrence goes (docs/runtime.md draws it): `Parking` keeps each loop on the
shared timer (`_timer`) or dormant; at its instant the `Burst` decides, acquires and
enqueues it with the others due then, `Outcomes` records what happened, `LoopTasks`
retries what was handed back, `Takeovers` watches occurrences other instances hold,
`Requested` dispatches triggers and backfills, `Pausing` keeps pause records, and the
lease guards (`_lease`), watermarks (`_watermarks`) and events (`_reporting`) serve them
all. `Scheduler` holds the public API and the lifecycle; this module only builds and
connects the parts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import final

from trio_sched._burst import Burst
from trio_sched._config import Config
from trio_sched._errors import ValidationError
from trio_sched._events import EventKind
from trio_sched._lease import LeaseKeeper
from trio_sched._loop import Loop
from trio_sched._parking import Parking
from trio_sched._pausing import Pausing
from trio_sched._reporting import Reporter
from trio_sched._requested import Requested
from trio_sched._takeover import Takeovers
from trio_sched._task import OverlapPolicy, Task
from trio_sched._tasks import LoopTasks
from trio_sched._timer import TimerHeap
from trio_sched._watermarks import Pending, Watermarks
from trio_sched.jobs._control import JobControl
from trio_sched.jobs._job import BatchJobsRuntime, JobsRuntime
from trio_sched.locks._protocol import LockProvider

__all__ = ["Pipeline"]


@final
class Pipeline:
    """The parts of one scheduler (rules D1-D12, O11-O15), connected."""

    def __init__(
        self,
        jobs: JobsRuntime,
        locks: LockProvider,
        config: Config,
        loops: Mapping[str, Loop],
        wall_time: Callable[[], float],
    ) -> None:
        self._jobs = jobs
        self._locks = locks
        self._loops = loops  # the scheduler's registry, read when a watermark fails
        self.timer = TimerHeap(
            wall_time=wall_time,
            clock_check_interval=config.clock_check_interval,
            on_pass_end=self._pass_end,
            spin=config.timer_spin,
        )
        self.reporter = reporter = Reporter(config)  # events, counters, logs (E1-E3)
        self.watermarks = Watermarks(locks, config, self._watermark_failed)  # O3, M1-M3
        self.leases = LeaseKeeper(self.timer, locks, config)  # guards of dispatches (D7)
        self.parking = Parking(self.timer, locks, config, reporter)  # D1, D3, D2
        self.takeovers = Takeovers(  # D12
            timer=self.timer, locks=locks, config=config, reporter=reporter, parking=self.parking
        )
        self.burst = Burst(  # D5, D6
            timer=self.timer,
            locks=locks,
            jobs=jobs,
            enqueue_many=jobs.enqueue_many if isinstance(jobs, BatchJobsRuntime) else None,
            config=config,
            leases=self.leases,
            watermarks=self.watermarks,
            reporter=reporter,
            parking=self.parking,
            takeovers=self.takeovers,
        )
        self.takeovers.bind(self.burst)
        self.requested = Requested(self.burst, self.parking, config.lock_key_prefix)  # O8, O14
        self.pausing = Pausing(locks, config, self.requested)  # O15
        self.parking.pause_registered = self.pausing.pause_registered
        self.tasks = LoopTasks(  # D7, D8
            timer=self.timer,
            jobs=jobs,
            config=config,
            leases=self.leases,
            reporter=reporter,
            parking=self.parking,
            burst=self.burst,
        )
        self.burst.bind(self.tasks)
        self.triggers = Pending()  # triggers and backfills in flight (D11 waits for them)

    def check_policies(self, task: Task) -> None:
        """U5, O12: the policies these backends cannot carry out are refused."""
        if task.paused and not self.pausing.supported:
            raise ValidationError(
                f"paused: {type(self._locks).__name__} keeps no pause records "
                "(it is not a PauseStore)",
                field="paused",
            )
        if task.overlap_policy is not OverlapPolicy.ALLOW and not isinstance(
            self._jobs, JobControl
        ):
            raise ValidationError(
                f"overlap: {task.overlap_policy.value!r} needs a jobs runtime that is a "
                f"JobControl; {type(self._jobs).__name__} is not",
                field="overlap",
            )

    def _pass_end(self) -> None:
        """Timer pass end (`_timer` R2): the burst decides what became due (D5)."""
        self.burst.process_due()

    def _watermark_failed(self, task: str, error: Exception) -> None:
        """A watermark of `task` could not be advanced (the locks still protect)."""
        loop = self._loops.get(task)
        if loop is not None:
            loop.errors += 1
            self.reporter.emit(EventKind.ERROR, task, None, None, error=error)
