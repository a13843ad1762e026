"""The overlap policy (O12): what an acquired occurrence does while the task's previous
job is still queued or running.

Rules:
- V1 The previous job is the one of the task's last dispatched occurrence: the later of
  the shared watermark (read in one ``get_watermarks`` call for the occurrences screened
  together) and this instance's own last fire; its idempotency key is
  ``{idempotency prefix}:{epoch ms}`` (P1). Its state is asked of the jobs runtime
  (`JobControl.job_state`, one round trip per occurrence). Without a previous job, or
  when it is done, dead, cancelled or forgotten, the occurrence is dispatched.
- V2 ``FORBID``: a previous job that is queued or running skips the occurrence (reason
  ``overlap``, counted in ``skipped``); its lock record is marked dispatched, so no
  other instance takes it over (D12), and the watermark stays on the previous job, so
  the next occurrence asks about the same job.
- V3 ``REPLACE``: such a previous job is cancelled (`JobControl.cancel`: a queued job
  is removed, a running one's lease revoked, so its worker cancels the handler within
  ``visibility_timeout / 3``, rule WK3), then the occurrence is dispatched. From the
  cancel on, the runtime reports at most one job of the task as running; the cancelled
  handler may run on until its worker's next lease extension.
- V4 Only scheduled and taken-over occurrences are screened; a manual trigger or a
  backfill is dispatched as asked (O8, O14). Screening runs in a task of its own, so
  the rest of its burst is not held up by those round trips.
- V5 A check that fails (the backend or the runtime raised) releases the occurrence's
  lease and is reported as that occurrence's error: a transient one is retried by its
  loop like a failed acquire (O7), anything else moves the loop on; a taken-over
  occurrence is left to its record (another instance may take it over again).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, final

from trio_sched import _plan
from trio_sched._loop import Park, Phase
from trio_sched._task import OverlapPolicy
from trio_sched.jobs._control import JobControl, JobState
from trio_sched.locks._protocol import LockProvider

if TYPE_CHECKING:
    from trio_sched._config import Config
    from trio_sched._outcome import Outcomes
    from trio_sched._reporting import Reporter
    from trio_sched._watermarks import Watermarks

__all__ = ["Overlap", "screened"]

_BUSY = (JobState.QUEUED, JobState.RUNNING)


def screened(park: Park) -> bool:
    """Whether `park` goes through the overlap policy (V4)."""
    return park.loop.overlap is not OverlapPolicy.ALLOW and not (park.manual or park.backfill)


@final
class Overlap:
    """Screens acquired occurrences of FORBID and REPLACE tasks (V1-V5)."""

    def __init__(
        self,
        *,
        locks: LockProvider,
        jobs: object,
        config: Config,
        reporter: Reporter,
        watermarks: Watermarks,
        outcomes: Outcomes,
    ) -> None:
        self._locks = locks
        self._jobs = jobs if isinstance(jobs, JobControl) else None
        self._config = config
        self._reporter = reporter
        self._watermarks = watermarks
        self._outcomes = outcomes

    async def screen(self, parks: list[Park]) -> list[Park]:
        """The parks of `parks` to dispatch; the others are settled here (skipped or
        failed). A checkpoint."""
        jobs = self._jobs
        assert jobs is not None  # refused at register without a JobControl (O12)
        try:
            marks = await self._locks.get_watermarks([park.loop.wm_name for park in parks])
        except Exception as exc:
            for park in parks:
                await self._failed(park, exc)
            return []
        keep: list[Park] = []
        for park in parks:
            try:
                if await self._allows(park, jobs, marks):
                    keep.append(park)
                else:
                    self._skip(park)
            except Exception as exc:
                await self._failed(park, exc)
        return keep

    async def _allows(self, park: Park, jobs: JobControl, marks: dict[str, int]) -> bool:
        loop = park.loop
        info = park.info
        assert info is not None
        previous = marks.get(loop.wm_name)
        if loop.last_fire is not None:
            own = _plan.epoch_ms(loop.last_fire)
            previous = own if previous is None else max(previous, own)
        if previous is None or previous >= info.ms:
            return True
        key = f"{loop.idem_base}:{previous}"
        state = await jobs.job_state(key)
        if state not in _BUSY:
            return True
        if loop.overlap is OverlapPolicy.FORBID:
            return False
        cancelled = await jobs.cancel(key)
        self._config.logger.log(
            logging.INFO,
            "task %r: replaced its %s job %r (cancelled: %s)",
            loop.task.name,
            state.value,
            key,
            cancelled,
        )
        return True

    def _skip(self, park: Park) -> None:
        """V2: skipped, its record marked so nobody takes it over."""
        lease = park.lease
        assert lease is not None
        self._watermarks.settle(lease)
        park.skip_reason = "overlap"
        park.phase = Phase.DONE
        if park.taken_over:
            loop = park.loop
            decision = park.decision
            assert decision is not None
            self._reporter.skipped(loop, decision.nominal, decision.lateness, "overlap")
            return
        self._outcomes.settle_outside(park)

    async def _failed(self, park: Park, exc: Exception) -> None:
        """V5: release the lease, report, and let the loop retry or move on."""
        lease = park.lease
        if lease is not None:
            try:
                await self._locks.release(lease)
            except Exception:
                self._config.logger.warning("could not release lease %r", lease.key)
        park.phase = Phase.DONE
        if park.taken_over:
            self._reporter.error(park.loop, park.nominal, exc)
            return
        # A transient error is retried by its loop like a failed acquire (O7).
        park.lease = None
        park.error = exc
        self._outcomes.settle_outside(park)
