"""`PostgresLockProvider` on a real server: conformance, SQL shape, schema, cleanup."""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from trio_sched import LeaseLostError, SchedulerError, ValidationError
from trio_sched._postgres_driver import PostgresDriver
from trio_sched.locks import (
    AcquireRequest,
    Held,
    LockLease,
    LockProvider,
    MemoryLockProvider,
    Paused,
)
from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig
from trio_sched.testing import check_lock_provider

from ._helpers import sync_connect
from .conftest import ProviderFactory, Tables

PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
BARRIER_TIMEOUT = 10.0


async def test_conformance(make_provider: ProviderFactory) -> None:
    @asynccontextmanager
    async def make() -> AsyncIterator[LockProvider]:
        async with make_provider() as provider:
            yield provider

    await check_lock_provider(make, ttl=0.4)


def test_import_does_not_import_psycopg() -> None:
    code = (
        "import sys, trio_sched, trio_sched.locks, trio_sched.testing\n"
        "assert 'psycopg' not in sys.modules, sorted(m for m in sys.modules if 'psycopg' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- one statement per batch (L5), checked on the wire ---------------------------------------


class WireTrace:
    """libpq's protocol trace of every connection opened meanwhile, in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def position(self) -> int:
        return self.path.stat().st_size

    def round_trips_since(self, position: int) -> tuple[int, list[str]]:
        """Client messages ending a round trip (Sync, simple Query) after `position`."""
        text = self.path.read_text()[position:]
        sent = [line for line in text.splitlines() if line.startswith("F\t")]
        ends = [line for line in sent if line.split("\t")[2].split(" ")[0] in ("Sync", "Query")]
        return len(ends), sent


@pytest.fixture
def wire_trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[WireTrace]:
    original = psycopg.Connection.connect
    with tempfile.NamedTemporaryFile("w+", suffix=".pgtrace") as trace:

        def connect(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
            conn = original(*args, **kwargs)
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(
                psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
            )
            return conn

        monkeypatch.setattr(psycopg.Connection, "connect", connect)
        yield WireTrace(Path(trace.name))


async def test_batch_of_1000_is_one_round_trip(
    make_provider: ProviderFactory, wire_trace: WireTrace
) -> None:
    async with make_provider(max_connections=1, cleanup_interval=None) as provider:
        await provider.acquire(f"warm:{random.random()}", 1.0)  # connect, create schema
        prefix = f"wire:{random.random()}"
        mark = f"{prefix}:wm"
        requests = [AcquireRequest(f"{prefix}:{i}", 5.0, mark, 1000 + i) for i in range(1000)]
        before = wire_trace.position()
        trips_before = provider.statistics().driver.round_trips
        results = await provider.acquire_batch(requests)
        trips, sent = wire_trace.round_trips_since(before)
        assert trips == 1, sent
        assert provider.statistics().driver.round_trips == trips_before + 1
        leases = [lease for lease in results if isinstance(lease, LockLease)]
        assert [lease.key for lease in leases] == [r.key for r in requests]
        assert len({lease.fencing_token for lease in leases}) == 1000

        # 1000 answers Held, and 1000 marks (rule L5), are one round trip each as well.
        unmarked = [AcquireRequest(r.key, 5.0) for r in requests[500:]]
        before = wire_trace.position()
        held = await provider.acquire_batch(unmarked)
        assert wire_trace.round_trips_since(before)[0] == 1
        assert all(isinstance(answer, Held) for answer in held)
        before = wire_trace.position()
        assert await provider.mark_dispatched(leases) == [True] * 1000
        assert wire_trace.round_trips_since(before)[0] == 1

        before = wire_trace.position()
        await provider.advance_watermarks({f"{prefix}:m{i}": i for i in range(1000)})
        assert wire_trace.round_trips_since(before)[0] == 1
        before = wire_trace.position()
        got = await provider.get_watermarks([f"{prefix}:m{i}" for i in range(1000)])
        assert wire_trace.round_trips_since(before)[0] == 1
        assert got == {f"{prefix}:m{i}": i for i in range(1000)}

        before = wire_trace.position()
        assert await provider.acquire_batch([]) == []
        assert await provider.mark_dispatched([]) == []
        await provider.advance_watermarks({})
        assert wire_trace.round_trips_since(before)[0] == 0


# -- batch semantics against the memory provider (the reference) -----------------------------


def _kind(answer: LockLease | Held | None) -> str:
    if isinstance(answer, LockLease):
        return "lease" if answer.taken_over is None else "takeover"
    return "held" if isinstance(answer, Held) else "none"


async def _scenario(provider: LockProvider, seed: int, prefix: str) -> list[str]:
    """A random batch over a few keys, some held, some dispatched, some whose lease ran
    out undispatched (taken over), some refused by watermarks; the kind of each answer."""
    rng = random.Random(seed)
    keys = [f"{prefix}:k{i}" for i in range(12)]
    marks = [f"{prefix}:m{i}" for i in range(3)]
    await provider.advance_watermarks({mark: rng.randrange(0, 10) for mark in marks[:2]})
    shuffled = rng.sample(keys, 9)
    held, dispatched, lapsed = shuffled[:3], shuffled[3:6], shuffled[6:]
    for key in held:
        assert await provider.acquire(key, 30.0) is not None
    answers = await provider.acquire_batch([AcquireRequest(key, 30.0) for key in dispatched])
    leases = [lease for lease in answers if isinstance(lease, LockLease)]
    assert len(leases) == len(dispatched)
    assert await provider.mark_dispatched(leases) == [True] * len(leases)
    results = await provider.acquire_batch([AcquireRequest(key, 0.2, keep=30.0) for key in lapsed])
    assert all(isinstance(lease, LockLease) for lease in results)
    await trio.sleep(0.4)  # the lapsed leases ran out; their records are kept
    requests = [
        AcquireRequest(
            rng.choice(keys),
            30.0,
            rng.choice([None, *marks]),
            rng.randrange(0, 12),
        )
        for _ in range(40)
    ]
    return [_kind(answer) for answer in await provider.acquire_batch(requests)]


@pytest.mark.parametrize("seed", range(5))
async def test_batch_answers_match_memory_provider(
    make_provider: ProviderFactory, seed: int
) -> None:
    memory = MemoryLockProvider()
    want = await _scenario(memory, seed, "same")
    assert set(want) == {"lease", "takeover", "held", "none"}  # the scenario covers them all
    async with make_provider() as provider:
        got = await _scenario(provider, seed, f"diff:{random.random()}")
    assert got == want


async def test_duplicate_key_goes_to_first_request_not_refused(
    make_provider: ProviderFactory,
) -> None:
    prefix = f"dup:{random.random()}"
    async with make_provider() as provider:
        await provider.advance_watermarks({f"{prefix}:wm": 100})
        results = await provider.acquire_batch(
            [
                AcquireRequest(f"{prefix}:k", 5.0, f"{prefix}:wm", 50),  # refused
                AcquireRequest(f"{prefix}:k", 5.0, f"{prefix}:wm", 150),  # takes the key
                AcquireRequest(f"{prefix}:k", 5.0),  # taken above
            ]
        )
    assert [_kind(r) for r in results] == ["none", "lease", "none"]
    assert provider.statistics().refused_by_watermark == 1


async def test_concurrent_batches_in_shuffled_orders_grant_each_key_once(
    make_provider: ProviderFactory,
) -> None:
    # Rows are inserted in key order whatever the request order, so these never deadlock.
    keys = [f"shuffle:{random.random()}:{i}" for i in range(200)]
    granted: list[LockLease] = []
    async with make_provider() as a, make_provider() as b:

        async def contender(i: int) -> None:
            order = random.Random(i).sample(keys, len(keys))
            provider = a if i % 2 else b
            results = await provider.acquire_batch([AcquireRequest(k, 10.0) for k in order])
            granted.extend(lease for lease in results if isinstance(lease, LockLease))

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(contender, i)
    assert sorted(lease.key for lease in granted) == sorted(keys)


# -- schema ---------------------------------------------------------------------------------


def _start_schema_creation_together(
    monkeypatch: pytest.MonkeyPatch, parties: int, *, skip_lock: bool
) -> None:
    """Make the first DDL of `parties` providers start at the same instant.

    Every provider's schema transaction waits on one barrier right before its advisory
    lock. With ``skip_lock`` the lock itself is replaced by ``SELECT 1`` (a mutant).
    """
    barrier = threading.Barrier(parties)
    original = PostgresDriver.execute

    def execute(self: PostgresDriver, conn: Any, statement: Any, params: Any = None) -> Any:
        if isinstance(statement, str) and "pg_advisory_xact_lock" in statement:
            barrier.wait(timeout=BARRIER_TIMEOUT)
            if skip_lock:
                return original(self, conn, "SELECT 1")
        return original(self, conn, statement, params)

    monkeypatch.setattr(PostgresDriver, "execute", execute)


async def _first_use_together(url: str, table: str, parties: int) -> list[object]:
    """`parties` providers acquire one key of a table nobody created; their outcomes."""
    providers = [
        PostgresLockProvider(PostgresLockProviderConfig(url=url, table=table))
        for _ in range(parties)
    ]
    outcomes: list[object] = []

    async def first_use(provider: PostgresLockProvider) -> None:
        try:
            outcomes.append(await provider.acquire("only-one", 10.0))
        except SchedulerError as exc:
            outcomes.append(exc)

    try:
        async with trio.open_nursery() as nursery:
            for provider in providers:
                nursery.start_soon(first_use, provider)
    finally:
        for provider in providers:
            await provider.aclose()
    return outcomes


async def test_concurrent_schema_creation(
    postgres_url: str, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    _start_schema_creation_together(monkeypatch, 8, skip_lock=False)
    table = tables.new()
    outcomes = await _first_use_together(postgres_url, table, 8)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sum(isinstance(o, LockLease) for o in outcomes) == 1
    with sync_connect(postgres_url) as conn:
        found = conn.execute(
            "SELECT relname FROM pg_class WHERE relname IN (%s, %s, %s)",
            (table, table + "_watermarks", table + "_kept_until_idx"),
        ).fetchall()
    assert len(found) == 3


async def test_schema_creation_races_without_the_advisory_lock(
    postgres_url: str, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutant: the same start, without the lock. Postgres' CREATE ... IF NOT EXISTS
    # then fails on the catalog's unique indexes, which shows the test above can fail.
    _start_schema_creation_together(monkeypatch, 8, skip_lock=True)
    failures: list[object] = []
    for _ in range(3):
        outcomes = await _first_use_together(postgres_url, tables.new(), 8)
        failures += [o for o in outcomes if isinstance(o, SchedulerError)]
        if failures:
            break
    assert failures


async def test_tables_dropped_under_a_provider_are_created_again(
    postgres_url: str, tables: Tables
) -> None:
    table = tables.new()
    config = PostgresLockProviderConfig(url=postgres_url, table=table)
    async with PostgresLockProvider(config) as provider:
        assert await provider.acquire("k", 5.0) is not None
        with sync_connect(postgres_url) as conn:
            conn.execute(f'DROP TABLE "{table}", "{table}_watermarks", "{table}_paused"')
        assert await provider.acquire("k", 5.0) is not None
        await provider.advance_watermarks({"w": 1})
        assert await provider.get_watermarks(["w"]) == {"w": 1}
        with sync_connect(postgres_url) as conn:
            conn.execute(f'DROP TABLE "{table}_paused"')  # the pause table alone (PG10)
        await provider.set_paused({"w": Paused(datetime.now(UTC), "me")})
        assert list(await provider.get_paused(["w"])) == ["w"]


@pytest.mark.parametrize(
    "bad",
    [
        "locks; DROP TABLE users",
        'locks"; DROP TABLE users; --',
        "locks--",
        "a.b.c",
        "",
        ".locks",
        "locks.",
        "1locks",
        "lock s",
        "locks\x00",
        "x" * 49,
        "public.x" + "y" * 48,
        "lócks",
    ],
)
def test_table_name_validation_rejects(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        PostgresLockProviderConfig(table=bad)
    assert isinstance(info.value, ValueError)


async def test_schema_qualified_and_mixed_case_names(postgres_url: str, tables: Tables) -> None:
    mixed = tables.new("MixedCase")
    for table in (f"public.{tables.new()}", mixed):
        config = PostgresLockProviderConfig(url=postgres_url, table=table)
        async with PostgresLockProvider(config) as provider:
            assert await provider.acquire("k", 5.0) is not None
    with sync_connect(postgres_url) as conn:
        # Quoted as an identifier: the case survives.
        row = conn.execute("SELECT to_regclass(%s)", (f'"{mixed}"',)).fetchone()
    assert row is not None
    assert row[0] is not None


async def test_hostile_keys_and_names_are_data(make_provider: ProviderFactory) -> None:
    hostile = "'); DROP TABLE trio_sched_locks; --\"\\"
    async with make_provider() as provider:
        lease = await provider.acquire(hostile + str(random.random()), 5.0)
        assert lease is not None
        await provider.advance_watermarks({hostile: 7})
        assert await provider.get_watermarks([hostile]) == {hostile: 7}
        assert await provider.release(lease)


# -- server clock, expiry, theft, cleanup --------------------------------------------------


async def test_expiry_is_computed_on_the_server_clock(
    make_provider: ProviderFactory, postgres_url: str, session_table: str
) -> None:
    key = f"clock:{random.random()}"
    async with make_provider() as provider:
        with sync_connect(postgres_url) as conn:
            before = conn.execute("SELECT clock_timestamp()").fetchone()
            lease = await provider.acquire(key, 100.0)
            after = conn.execute("SELECT clock_timestamp()").fetchone()
            stored = conn.execute(
                f'SELECT expires_at FROM "{session_table}" WHERE key = %s', (key,)
            ).fetchone()
            assert lease is not None
            assert before is not None
            assert after is not None
            assert stored is not None
            # The lease reports exactly the stored expiry, and that is server time + TTL.
            assert lease.expire_at == stored[0]
            ttl = timedelta(seconds=100)
            assert before[0] + ttl <= lease.expire_at <= after[0] + ttl

            before = conn.execute("SELECT clock_timestamp()").fetchone()
            renewed = await provider.renew(lease, 200.0)
            after = conn.execute("SELECT clock_timestamp()").fetchone()
            assert before is not None
            assert after is not None
            ttl = timedelta(seconds=200)
            assert before[0] + ttl <= renewed.expire_at <= after[0] + ttl


async def test_lock_stolen_after_ttl_expiry(make_provider: ProviderFactory) -> None:
    key = f"steal:{random.random()}"
    async with make_provider() as a, make_provider() as b:
        old = await a.acquire(key, 0.3)
        assert old is not None
        await trio.sleep(0.5)
        new = await b.acquire(key, 10.0)
        assert new is not None
        assert new.fencing_token > old.fencing_token
        with pytest.raises(LeaseLostError):
            await a.renew(old, 10.0)
        assert not await a.release(old)
        assert await a.acquire(key, 10.0) is None  # b still holds it
        assert a.statistics().renewals_lost == 1


def _rows(url: str, table: str) -> int:
    with sync_connect(url) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    assert row is not None
    return int(row[0])


async def test_cleanup_removes_expired_rows_in_bounded_batches(
    postgres_url: str, tables: Tables
) -> None:
    table = tables.new()
    config = PostgresLockProviderConfig(
        url=postgres_url, table=table, cleanup_interval=None, cleanup_grace=0, cleanup_batch=3
    )
    async with PostgresLockProvider(config) as provider:
        for i in range(5):
            assert await provider.acquire(f"short:{i}", 0.2) is not None
        assert await provider.acquire("long", 60.0) is not None
        await trio.sleep(0.4)
        assert _rows(postgres_url, table) == 6
        assert await provider.cleanup_expired() == 3  # cleanup_batch bounds one statement
        assert await provider.cleanup_expired() == 2
        assert await provider.cleanup_expired() == 0
        assert _rows(postgres_url, table) == 1  # the live lock stays
        stats = provider.statistics()
        assert (stats.cleanups, stats.cleaned_rows) == (3, 5)


async def test_cleanup_grace_keeps_recently_expired_rows(postgres_url: str, tables: Tables) -> None:
    table = tables.new()
    config = PostgresLockProviderConfig(
        url=postgres_url, table=table, cleanup_interval=None, cleanup_grace=60.0
    )
    async with PostgresLockProvider(config) as provider:
        assert await provider.acquire("short", 0.1) is not None
        await trio.sleep(0.3)
        assert await provider.cleanup_expired() == 0
        assert _rows(postgres_url, table) == 1


async def test_amortised_cleanup_runs_before_acquires(postgres_url: str, tables: Tables) -> None:
    table = tables.new()
    config = PostgresLockProviderConfig(
        url=postgres_url, table=table, cleanup_interval=0.5, cleanup_grace=0
    )
    async with PostgresLockProvider(config) as provider:
        await provider.ensure_schema()
        for i in range(4):
            assert await provider.acquire(f"short:{i}", 0.1) is not None
        cleanups = provider.statistics().cleanups
        assert cleanups == 1  # the first acquire cleaned, the next ones were inside the interval
        await trio.sleep(0.6)
        assert await provider.acquire("trigger", 60.0) is not None
        stats = provider.statistics()
        assert stats.cleanups == 2
        assert stats.cleaned_rows == 4
        assert _rows(postgres_url, table) == 1


def test_explain_cleanup_can_use_the_kept_until_index(postgres_url: str, tables: Tables) -> None:
    table = tables.new()

    async def create() -> None:
        async with PostgresLockProvider(
            PostgresLockProviderConfig(url=postgres_url, table=table)
        ) as provider:
            await provider.ensure_schema()

    trio.run(create)
    with sync_connect(postgres_url) as conn, conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        # The shape of the cleanup's inner SELECT (PG5).
        plan = conn.execute(
            f'EXPLAIN SELECT key FROM "{table}" WHERE kept_until < now() AND expires_at < now() '
            "ORDER BY kept_until LIMIT 10"
        ).fetchall()
    assert any(f"{table}_kept_until_idx" in row[0] for row in plan), plan


def test_statistics_need_no_io() -> None:
    provider = PostgresLockProvider(PostgresLockProviderConfig(url="postgresql://127.0.0.1:1/x"))
    stats = provider.statistics()
    assert (stats.acquires, stats.driver.round_trips, stats.schema_ready) == (0, 0, False)


@pytest.mark.parametrize(("durable", "shown"), [(True, "on"), (False, "off")])
async def test_session_settings(make_provider: ProviderFactory, durable: bool, shown: str) -> None:
    async with make_provider(synchronous_commit=durable, operation_timeout=2.5) as provider:

        def settings(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
            return conn.execute(
                "SELECT current_setting('synchronous_commit'),"
                " current_setting('statement_timeout'), current_setting('application_name')"
            ).fetchone()

        got = await provider._driver.call(settings)
    assert got == (shown, "2500ms", "trio-sched")


async def test_benchmark_plumbing(
    postgres_url: str, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny counts: this checks that the benchmark runs, never its numbers.
    monkeypatch.syspath_prepend(PROJECT_ROOT)
    from benchmarks import postgres_ops

    rows = await postgres_ops.measure(postgres_url, tables.new(), 3, 1, True)
    assert {name: len(samples) for name, samples in rows.items()} == {
        "ping": 3,
        "acquire": 3,
        "renew": 3,
        "release": 3,
        "acquire_batch(1000)": 1,
        "advance_wm(1000)": 1,
        "1000 concurrent acquire": 3,
        "raw acquire (no trio, no thread)": 3,
    }
