"""Takeover (rule D12 of the runtime, T1-T5 of `_takeover`): an occurrence whose holder
dies or stalls before enqueueing it is dispatched by another instance once the lease
runs out; a holder that stalled past its lease does not enqueue it.

Two schedulers share one `MemoryLockProvider`; B's wall clock runs 0.5 s behind A's,
so A always reaches the occurrence first and B finds it held.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from trio_sched import EventKind, SchedulerEvent, Task, open_scheduler
from trio_sched.locks import AcquireRequest, Held, LockLease, MemoryLockProvider

from ._helpers import FakeWall, RecordingJobs, WrappedLocks, at, config

pytestmark = pytest.mark.usefixtures("jobs_mode")

TTL = 3.0


def _task(policy: str = "fire_once") -> Task:
    return Task(name="t", schedule="0 9 * * *", misfire_policy=policy, lock_ttl=TTL)


class _SlowReplies(WrappedLocks):
    """The requests reach the backend at once; the replies of `acquire_batch` arrive
    `delay` seconds later (a partition in one direction, or a paused process)."""

    def __init__(self, inner: MemoryLockProvider, delay: float) -> None:
        super().__init__(inner)
        self.delay = delay

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        answers = await super().acquire_batch(requests)
        await trio.sleep(self.delay)
        return answers


async def _run_pair(
    jobs_a: RecordingJobs,
    locks_a: WrappedLocks,
    locks_b: WrappedLocks,
    *,
    policy: str = "fire_once",
    grace: float = 1.0,
    kill_a_after: float | None = None,
) -> tuple[RecordingJobs, list[SchedulerEvent], list[SchedulerEvent], dict[str, int]]:
    """Run A and B from 08:59:58 (A's clock) for 15 s; optionally hard-stop A
    `kill_a_after` seconds in. Returns B's jobs, A's and B's events and B's counters."""
    wall_a = FakeWall(at(8, 59, 58))
    wall_b = FakeWall(at(8, 59, 58), skew=-0.5)
    jobs_b = RecordingJobs()
    events_a: list[SchedulerEvent] = []
    events_b: list[SchedulerEvent] = []
    a_scope = trio.CancelScope()

    async def run_a() -> None:
        with a_scope:
            cfg = config(wall_a, instance="a", on_event=events_a.append, misfire_grace=grace)
            async with open_scheduler(jobs=jobs_a, locks=locks_a, config=cfg) as a:
                a.register(_task(policy))
                await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_a)
        cfg = config(wall_b, instance="b", on_event=events_b.append, misfire_grace=grace)
        async with open_scheduler(jobs=jobs_b, locks=locks_b, config=cfg) as b:
            b.register(_task(policy))
            if kill_a_after is not None:
                await trio.sleep(kill_a_after)
                a_scope.cancel()  # A dies: a hard stop, nothing released
            await trio.sleep(15)
            stats = b.statistics().tasks["t"]
        a_scope.cancel()
    counters = {
        "fired": stats.fired,
        "takeovers": stats.takeovers,
        "lock_misses": stats.lock_misses,
        "skipped": stats.skipped,
    }
    return jobs_b, events_a, events_b, counters


def _kinds(events: list[SchedulerEvent]) -> list[str]:
    return [e.kind.value for e in events if e.nominal == at(9, 0)]


async def test_holder_dies_before_enqueueing_and_another_instance_takes_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shared = MemoryLockProvider()
    jobs_a = RecordingJobs(delay=10_000.0)  # A's enqueue never returns: A dies in it
    jobs_b, _events_a, events_b, counters = await _run_pair(
        jobs_a, WrappedLocks(shared), WrappedLocks(shared), kill_a_after=2.7
    )
    assert jobs_a.jobs == []
    assert [job.run_at for job in jobs_b.jobs] == [at(9, 0)]
    assert counters == {"fired": 1, "takeovers": 1, "lock_misses": 1, "skipped": 0}
    assert _kinds(events_b) == ["skipped", "takeover", "missed", "fired"]
    takeover = next(e for e in events_b if e.kind is EventKind.TAKEOVER)
    fired = next(e for e in events_b if e.kind is EventKind.FIRED)
    assert takeover.taken_over is not None
    assert takeover.token not in (None, takeover.taken_over)
    assert takeover.instance == fired.instance == "b"
    job = jobs_b.jobs[0]
    assert job.headers["x-trio-sched-instance"] == "b"
    assert job.fencing_token is not None
    assert job.fencing_token > 1
    # A died at 09:00:00.7, before its first renewal (TTL/3 after the acquire): B took
    # over once the lease ran out, TTL after A's acquire at 09:00:00 plus one timer
    # pass; B measures on its own clock, 0.5 s behind A's.
    assert fired.lateness == pytest.approx(TTL - 0.5, abs=0.01)


async def test_a_holder_whose_replies_arrive_after_its_lease_does_not_enqueue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shared = MemoryLockProvider()
    jobs_a = RecordingJobs()
    jobs_b, events_a, events_b, counters = await _run_pair(
        jobs_a, _SlowReplies(shared, delay=TTL + 2), WrappedLocks(shared)
    )
    # A learns it holds the lease after it ran out: it reports lease_lost, enqueues nothing.
    assert jobs_a.jobs == []
    assert _kinds(events_a) == ["lease_lost"]
    assert [job.run_at for job in jobs_b.jobs] == [at(9, 0)]
    assert counters["takeovers"] == 1
    fired = next(e for e in events_b if e.kind is EventKind.FIRED)
    assert fired.lateness == pytest.approx(TTL - 0.5, abs=0.01)  # on B's clock


async def test_a_dispatched_occurrence_is_not_taken_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shared = MemoryLockProvider()
    jobs_a = RecordingJobs(delay=0.8)  # still enqueueing when B asks, 0.5 s later
    locks_a, locks_b = WrappedLocks(shared), WrappedLocks(shared)
    jobs_b, _events_a, events_b, counters = await _run_pair(jobs_a, locks_a, locks_b)
    assert [job.run_at for job in jobs_a.jobs] == [at(9, 0)]
    assert jobs_b.jobs == []
    assert [lease.key for lease in locks_a.marked] == ["trio_sched:t:1767603600000"]
    assert counters == {"fired": 0, "takeovers": 0, "lock_misses": 1, "skipped": 0}
    # B found it held, asked again once the lease ran out, and found it dispatched.
    assert len(locks_b.batch_sizes) == 2
    assert _kinds(events_b) == ["skipped"]


@pytest.mark.parametrize(
    ("policy", "grace", "fires"),
    [
        ("skip", 1.0, False),  # reached TTL late, past the grace: skipped (T3)
        ("skip", TTL + 2, True),  # within the grace: fires on time
        ("fire_once", 1.0, True),
    ],
)
async def test_a_takeover_is_decided_by_the_misfire_policy_from_its_nominal_instant(
    policy: str, grace: float, fires: bool, autojump_clock: trio.testing.MockClock
) -> None:
    shared = MemoryLockProvider()
    jobs_a = RecordingJobs(delay=10_000.0)
    jobs_b, _, events_b, counters = await _run_pair(
        jobs_a,
        WrappedLocks(shared),
        WrappedLocks(shared),
        policy=policy,
        grace=grace,
        kill_a_after=2.1,
    )
    assert counters["takeovers"] == 1
    assert len(jobs_b.jobs) == (1 if fires else 0)
    kinds = _kinds(events_b)
    if not fires:
        assert kinds == ["skipped", "takeover", "missed", "skipped"]
        assert events_b[-1].reason == "misfire"
        # The skipped takeover is marked dispatched: nobody takes it over again.
        answer = await shared.acquire_batch(
            [AcquireRequest("trio_sched:t:1767603600000", TTL, keep=100.0)]
        )
        assert answer == [None]
    elif grace > TTL:
        assert kinds == ["skipped", "takeover", "fired"]
    else:
        assert kinds == ["skipped", "takeover", "missed", "fired"]
