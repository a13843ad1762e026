"""The runtime on real backends that fail (issue 4, "Fault tests"), on Redis and Postgres.

Real time and real clocks (the drivers bound their calls with Trio deadlines, so no
MockClock): TTLs, grace and backoffs are sub-second to keep the directory fast. Time
bounds are generous "within the documented bound" checks, never measurements.

- Backend unreachable at fire time, skip policy: the acquire fails transiently and is
  retried while the occurrence is within ``misfire_grace`` (error events, lateness <=
  grace), then the occurrence is reported missed and skipped; nothing fires while the
  backend is down, and firing resumes when it is back.
- Same, fire_once: the occurrences of the outage are not all fired: exactly one late
  fire, of the latest late occurrence, once the backend is back; the earlier ones of
  the outage never fire; no occurrence fires twice.
- Connection dropped mid-dispatch (the backend goes away while a slow enqueue runs):
  renewals fail, the dispatch is cancelled before its lease could have expired plus a
  margin, ``lease_lost`` is reported for that occurrence and it is not reported fired.
- Lock stolen after its TTL expired (expired on the server, then acquired by another
  provider, the "thief", with a larger fencing token): the next renewal is rejected,
  the dispatch is cancelled and ``lease_lost`` is reported.
- Health checkers report unhealthy within their timeout when the server is down or
  silent (connections open, no replies: the check times out at its own timeout), and
  healthy again when it is back.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from trio_sched import (
    Config,
    EventKind,
    LeaseLostError,
    MisfirePolicy,
    RetryableError,
    Scheduler,
    SchedulerEvent,
    Task,
    open_scheduler,
)
from trio_sched._plan import epoch_ms
from trio_sched.health import lock_provider_health_checker
from trio_sched.jobs import Job

from .conftest import Outage

pytestmark = pytest.mark.slow

GRACE = 0.6
BACKOFF_MAX = 0.2
SLACK = 2.0  # generous margin on "within its bound": catches hangs, not slowness


class Jobs:
    """Records every job (no dedupe). The first `slow` enqueues block for 30 s and note
    whether they were cancelled."""

    def __init__(self, *, slow: int = 0) -> None:
        self.jobs: list[Job] = []
        self.slow = slow
        self.slow_started = trio.Event()
        self.slow_job: Job | None = None
        self.cancelled: list[Job] = []
        self.completed_slow = 0

    async def enqueue(self, job: Job) -> None:
        if self.slow > 0:
            self.slow -= 1
            self.slow_job = job
            self.slow_started.set()
            try:
                await trio.sleep(30)
            except trio.Cancelled:
                self.cancelled.append(job)
                raise
            self.completed_slow += 1
        self.jobs.append(job)

    async def health_check(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class Events(list[SchedulerEvent]):
    """The scheduler's events (its ``on_event`` hook appends); `wait_for` waits on them."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = trio.Event()

    def append(self, event: SchedulerEvent) -> None:
        super().append(event)
        self.changed.set()
        self.changed = trio.Event()

    def of(self, kind: EventKind) -> list[SchedulerEvent]:
        return [e for e in self if e.kind is kind]

    def describe(self) -> str:
        return "\n".join(
            f"{e.kind.value} {e.nominal and epoch_ms(e.nominal)} lateness={e.lateness} "
            f"reason={e.reason} error={e.error!r}"
            for e in self
        )


async def wait_for(what: str, predicate: Callable[[], bool], events: Events, within: float) -> None:
    """Wait until `predicate` holds, re-checked on every event; fail after `within` s."""
    with trio.move_on_after(within):
        while not predicate():
            await events.changed.wait()
        return
    pytest.fail(f"timed out waiting for {what}; events:\n{events.describe()}")


async def sleep_to_fraction(fraction: float) -> None:
    """Sleep until the wall clock's fraction of a second is `fraction`."""
    await trio.sleep((fraction - time.time() % 1.0) % 1.0)


def wall_ms(seconds: float) -> int:
    return math.floor(seconds * 1000)


@asynccontextmanager
async def running(
    outage: Outage, jobs: Jobs, task: Task, events: Events, **config: object
) -> AsyncIterator[Scheduler]:
    settings: dict[str, object] = {
        "misfire_grace": GRACE,
        "retry_backoff": 0.05,
        "retry_backoff_max": BACKOFF_MAX,
        "dispatch_timeout": 5.0,
        "default_lock_ttl": 5.0,
        "on_event": events.append,
    }
    settings.update(config)
    locks = outage.provider()
    async with open_scheduler(
        jobs=jobs,
        locks=locks,
        config=Config(**settings),
        close_providers=True,  # type: ignore[arg-type]
    ) as scheduler:
        scheduler.register(task)
        yield scheduler


def fired_after(events: Events, wall: float) -> Callable[[], bool]:
    return lambda: any(
        e.nominal is not None and e.nominal.timestamp() > wall for e in events.of(EventKind.FIRED)
    )


async def test_unreachable_backend_retried_within_grace_then_skipped(outage: Outage) -> None:
    events, jobs = Events(), Jobs()
    task = Task(name="tick", schedule="* * * * * *")
    async with running(outage, jobs, task, events):
        await wait_for("a first fire", lambda: bool(events.of(EventKind.FIRED)), events, 5)
        await sleep_to_fraction(0.3)
        down = time.time()
        await outage.down()
        await trio.sleep(2.4)
        await outage.up()
        up = time.time()
        await wait_for("a fire after the outage", fired_after(events, up), events, 5)

    # Nothing was dispatched while the backend was down.
    assert not [j for j in jobs.jobs if j.run_at and down < j.run_at.timestamp() < up]
    # Occurrences that were certainly late before the backend could answer again.
    outage_ms = [
        ms for ms in range(math.ceil(down) * 1000, wall_ms(up - GRACE - BACKOFF_MAX - 0.1), 1000)
    ]
    assert len(outage_ms) >= 1, (down, up)
    skipped: set[int] = set()
    first_late: int | None = None
    for event in events:
        assert event.nominal is not None or event.kind is EventKind.ERROR
        if event.kind is EventKind.MISSED:
            first_late = epoch_ms(event.nominal)  # type: ignore[arg-type]
        elif event.kind is EventKind.SKIPPED and event.reason == "misfire":
            assert first_late is not None, events.describe()
            skipped.update(range(first_late, epoch_ms(event.nominal) + 1, 1000))  # type: ignore[arg-type]
            first_late = None
    for ms in outage_ms:
        retries = [
            e
            for e in events.of(EventKind.ERROR)
            if e.nominal is not None and epoch_ms(e.nominal) == ms
        ]
        # Retried (more than one attempt), each while the occurrence was still on time.
        assert len(retries) >= 2, (ms, events.describe())
        for e in retries:
            assert isinstance(e.error, RetryableError | OSError), e
            assert e.lateness is not None
            assert 0 <= e.lateness <= GRACE
        # ... then skipped by the policy, and reported.
        assert ms in skipped, (ms, events.describe())


async def test_unreachable_backend_fire_once_fires_the_latest_once(outage: Outage) -> None:
    events, jobs = Events(), Jobs()
    task = Task(name="tick", schedule="* * * * * *", misfire_policy=MisfirePolicy.FIRE_ONCE)
    async with running(outage, jobs, task, events):
        await wait_for("a first fire", lambda: bool(events.of(EventKind.FIRED)), events, 5)
        await sleep_to_fraction(0.3)
        down = time.time()
        await outage.down()
        await trio.sleep(2.6)
        await outage.up()
        up = time.time()
        await wait_for("a fire after the outage", fired_after(events, up), events, 5)

    nominals = [epoch_ms(j.run_at) for j in jobs.jobs if j.run_at is not None]
    assert len(nominals) == len(set(nominals)), "an occurrence was dispatched twice"
    late = [e for e in events.of(EventKind.FIRED) if e.lateness is not None and e.lateness > GRACE]
    assert len(late) == 1, events.describe()
    assert late[0].nominal is not None
    latest = epoch_ms(late[0].nominal)
    assert down * 1000 < latest < up * 1000
    # The latest late occurrence: none after it was already late when it was decided.
    assert late[0].lateness is not None
    assert late[0].lateness - 1.0 <= GRACE
    # Earlier occurrences of the outage never fired (fire ONCE), and there were some.
    dropped = range(math.ceil(down) * 1000, latest, 1000)
    assert len(dropped) >= 1
    assert not set(dropped) & set(nominals)
    assert latest in nominals
    assert latest + 1000 in nominals  # back on schedule after the late fire
    assert events.of(EventKind.MISSED)


async def test_connection_dropped_mid_dispatch_loses_the_lease(outage: Outage) -> None:
    events, jobs = Events(), Jobs(slow=1)
    ttl = 0.9  # renewals every 0.3 s
    task = Task(name="slow", schedule="* * * * * *", lock_ttl=ttl)
    async with running(outage, jobs, task, events) as scheduler:
        with trio.fail_after(5):
            await jobs.slow_started.wait()
        await outage.down()
        dropped_at = trio.current_time()
        await wait_for(
            "lease_lost", lambda: bool(events.of(EventKind.LEASE_LOST)), events, ttl + SLACK
        )
        lost_after = trio.current_time() - dropped_at
        await outage.up()
        stats = scheduler.statistics().tasks["slow"]

    assert jobs.slow_job is not None
    assert jobs.cancelled == [jobs.slow_job]  # the dispatch was cancelled ...
    assert jobs.completed_slow == 0
    (lost,) = events.of(EventKind.LEASE_LOST)
    assert lost.nominal == jobs.slow_job.run_at
    assert isinstance(lost.error, LeaseLostError)
    # ... before its lease could have run out on the server (plus a margin).
    assert lost_after <= ttl + SLACK
    assert not [e for e in events.of(EventKind.FIRED) if e.nominal == lost.nominal]
    assert stats.lease_losses == 1


async def test_lock_stolen_after_ttl_expiry_loses_the_lease(outage: Outage) -> None:
    events, jobs = Events(), Jobs(slow=1)
    ttl = 1.5  # renewals every 0.5 s
    task = Task(name="slow", schedule="* * * * * *", lock_ttl=ttl)
    thief = outage.provider()
    try:
        async with running(outage, jobs, task, events, lock_key_prefix="faults"):
            with trio.fail_after(5):
                await jobs.slow_started.wait()
            job = jobs.slow_job
            assert job is not None
            assert job.run_at is not None
            assert job.fencing_token is not None
            key = f"faults:slow:{epoch_ms(job.run_at)}"
            await outage.expire(key)
            stolen = await thief.acquire(key, 30.0)
            assert stolen is not None, "the expired lock could not be taken over"
            assert stolen.fencing_token > job.fencing_token
            await wait_for(
                "lease_lost", lambda: bool(events.of(EventKind.LEASE_LOST)), events, ttl + SLACK
            )
    finally:
        await thief.aclose()

    assert jobs.cancelled == [job]
    (lost,) = events.of(EventKind.LEASE_LOST)
    assert lost.nominal == job.run_at
    assert isinstance(lost.error, LeaseLostError)
    assert not [e for e in events.of(EventKind.FIRED) if e.nominal == lost.nominal]


async def test_health_checker_unhealthy_within_its_timeout(outage: Outage) -> None:
    provider = outage.provider(operation_timeout=3.0)
    timeout = 1.0
    check = lock_provider_health_checker(outage.kind, provider, timeout=timeout)
    try:
        healthy = await check()
        assert healthy.healthy, healthy
        await outage.down()
        started = trio.current_time()
        result = await check()
        elapsed = trio.current_time() - started
        assert not result.healthy
        assert result.error
        assert elapsed <= timeout + SLACK
        await outage.up()
        with trio.fail_after(10):
            # The first call after the outage may still meet a dead pooled connection.
            while not (result := await check()).healthy:  # noqa: ASYNC110 - polls a server
                await trio.sleep(0.1)
    finally:
        await provider.aclose()


async def test_health_checker_times_out_on_a_silent_server(outage: Outage) -> None:
    provider = outage.provider(operation_timeout=3.0)
    timeout = 1.0
    check = lock_provider_health_checker(outage.kind, provider, timeout=timeout)
    try:
        healthy = await check()  # also leaves one idle pooled connection to silence
        assert healthy.healthy, healthy
        await outage.silence()
        try:
            started = trio.current_time()
            result = await check()
            elapsed = trio.current_time() - started
        finally:
            await outage.unsilence()
        assert not result.healthy
        assert result.error == f"timed out after {timeout}s"
        assert timeout <= elapsed <= timeout + SLACK
        with trio.fail_after(10):
            while not (result := await check()).healthy:  # noqa: ASYNC110 - polls a server
                await trio.sleep(0.1)
    finally:
        await provider.aclose()
