"""`PostgresLockProvider`'s occurrence records (L6-L8) on a real server: what a row
holds, answers decided on rows committed while a statement runs, the upgrade of an
old lock table (PG9), cleanup by the memory's end (PG5)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import trio
from psycopg import sql

from trio_sched import LeaseLostError, SchedulerError
from trio_sched.locks import AcquireRequest, Held, LockLease
from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

from ._helpers import sync_connect
from .conftest import ProviderFactory, Tables

BOUND = 10.0


def _row(url: str, table: str, key: str) -> dict[str, Any]:
    with sync_connect(url) as conn:
        cur = conn.execute(
            sql.SQL(
                "SELECT token, fencing_token, expires_at, kept_until, dispatched, taken_over"
                " FROM {} WHERE key = %s"
            ).format(sql.Identifier(table)),
            (key,),
        )
        row = cur.fetchone()
        assert row is not None, f"no row for {key!r}"
        assert cur.description is not None
        return {column.name: value for column, value in zip(cur.description, row, strict=True)}


async def _one(provider: PostgresLockProvider, request: AcquireRequest) -> LockLease | Held | None:
    (answer,) = await provider.acquire_batch([request])
    return answer


def _lease(answer: object) -> LockLease:
    assert isinstance(answer, LockLease), answer
    return answer


# -- what a record holds -------------------------------------------------------------------


async def test_a_record_keeps_its_lease_its_memory_and_its_marks(
    make_provider: ProviderFactory, postgres_url: str, session_table: str
) -> None:
    key = f"record:{random.random()}"
    async with make_provider() as provider:
        lease = _lease(await _one(provider, AcquireRequest(key, 10.0, keep=100.0)))
        row = _row(postgres_url, session_table, key)
        # One clock reading for both ends (PG2).
        assert row["kept_until"] - row["expires_at"] == timedelta(seconds=90)
        assert (row["token"], row["fencing_token"]) == (lease.token, lease.fencing_token)
        assert (row["dispatched"], row["taken_over"]) == (False, None)
        assert lease.expire_at == row["expires_at"]

        renewed = await provider.renew(lease, 200.0)  # past the memory: it follows
        row = _row(postgres_url, session_table, key)
        assert row["expires_at"] == renewed.expire_at == row["kept_until"]

        assert await provider.mark_dispatched([renewed]) == [True]
        assert await provider.mark_dispatched([renewed]) == [True]  # marked already: still True
        assert _row(postgres_url, session_table, key)["dispatched"] is True
        assert not await provider.release(renewed)  # L8: a dispatched record stays
        renewed = await provider.renew(renewed, 1.0)  # renew still works (L3)
        row = _row(postgres_url, session_table, key)
        assert row["kept_until"] > row["expires_at"]  # renew never shortens the memory
    stats = provider.statistics()
    assert (stats.dispatched, stats.marks_missed, stats.releases_missed) == (2, 0, 1)


async def test_a_takeover_names_the_old_token_and_keeps_the_longer_memory(
    make_provider: ProviderFactory, postgres_url: str, session_table: str
) -> None:
    key = f"takeover:{random.random()}"
    async with make_provider() as a, make_provider() as b:
        old = _lease(await _one(a, AcquireRequest(key, 0.2, keep=60.0)))
        kept = _row(postgres_url, session_table, key)["kept_until"]
        await trio.sleep(0.4)
        new = _lease(await _one(b, AcquireRequest(key, 5.0, keep=1.0)))
        assert new.taken_over == old.token
        assert new.fencing_token > old.fencing_token
        row = _row(postgres_url, session_table, key)
        assert (row["token"], row["taken_over"], row["kept_until"]) == (new.token, old.token, kept)
        with pytest.raises(LeaseLostError):
            await a.renew(old, 1.0)
        assert await a.mark_dispatched([old]) == [False]
        renewed = await b.renew(new, 5.0)
        assert renewed.taken_over == old.token  # the same lease, renewed
    assert b.statistics().takeovers == 1
    assert a.statistics().marks_missed == 1


async def test_single_acquire_takes_over_and_leaves_dispatched_records(
    make_provider: ProviderFactory,
) -> None:
    lapsed, done = f"single:{random.random()}", f"single-done:{random.random()}"
    async with make_provider() as provider:
        old = _lease(await _one(provider, AcquireRequest(lapsed, 0.2, keep=60.0)))
        marked = _lease(await _one(provider, AcquireRequest(done, 0.2, keep=60.0)))
        assert await provider.mark_dispatched([marked]) == [True]
        assert await provider.acquire(lapsed, 5.0) is None  # still leased
        await trio.sleep(0.4)
        new = await provider.acquire(lapsed, 5.0)
        assert new is not None
        assert new.taken_over == old.token
        assert await provider.acquire(done, 5.0) is None  # dispatched: never taken over
        assert await _one(provider, AcquireRequest(done, 5.0)) is None
        assert isinstance(await _one(provider, AcquireRequest(lapsed, 5.0)), Held)


async def test_a_record_whose_memory_ended_is_a_fresh_key(make_provider: ProviderFactory) -> None:
    key = f"ended:{random.random()}"
    async with make_provider(cleanup_interval=None) as provider:
        first = _lease(await _one(provider, AcquireRequest(key, 0.2, keep=0.5)))
        assert await provider.mark_dispatched([first]) == [True]
        await trio.sleep(0.3)
        assert await _one(provider, AcquireRequest(key, 5.0)) is None  # kept, dispatched
        await trio.sleep(0.4)
        assert await provider.mark_dispatched([first]) == [False]  # the memory ended
        fresh = _lease(await _one(provider, AcquireRequest(key, 5.0)))
        assert fresh.taken_over is None
        assert fresh.fencing_token > first.fencing_token


async def test_takeover_race_between_single_and_batch_acquires(
    make_provider: ProviderFactory,
) -> None:
    # Two statements implement the take-over (PG4); they race on one row lock.
    key = f"mixed-race:{random.random()}"
    winners: list[LockLease] = []
    async with make_provider() as a, make_provider() as b:
        old = _lease(await _one(a, AcquireRequest(key, 0.2, keep=60.0)))
        await trio.sleep(0.4)

        async def contender(i: int) -> None:
            provider = a if i % 2 else b
            if i % 4 < 2:
                answer = await provider.acquire(key, 5.0)
            else:
                answer = await _one(provider, AcquireRequest(key, 5.0))
            if isinstance(answer, LockLease):
                winners.append(answer)

        async with trio.open_nursery() as nursery:
            for i in range(16):
                nursery.start_soon(contender, i)
    assert len(winners) == 1
    assert winners[0].taken_over == old.token


# -- rows committed while a batch statement runs (PG4) ------------------------------------


async def _wait_until_blocked(url: str, table: str) -> None:
    """Until a statement on `table` waits for a lock (the blocker's)."""
    with trio.fail_after(BOUND), sync_connect(url) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE %s",
                (f"%{table}%",),
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            await trio.sleep(0.02)


@contextmanager
def _open_transaction(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, connect_timeout=2) as conn:
        yield conn  # the caller commits; leaving without a commit rolls back


async def _answer_after(
    provider: PostgresLockProvider,
    url: str,
    table: str,
    blocker: psycopg.Connection[Any],
    request: AcquireRequest,
) -> LockLease | Held | None:
    """`request`'s answer from a batch that starts while `blocker` holds the row, and
    decides after `blocker` commits: its statement's snapshot predates the commit."""
    answers: list[LockLease | Held | None] = []
    errors: list[SchedulerError] = []

    async def ask() -> None:
        try:
            answers.append(await _one(provider, request))
        except SchedulerError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await _wait_until_blocked(url, table)
        blocker.commit()
    if errors:
        raise errors[0]
    return answers[0]


def _statement(table: str, text: str) -> sql.Composed:
    return sql.SQL(text).format(sql.Identifier(table))


async def test_batch_reports_a_winner_committed_after_it_began(
    make_provider: ProviderFactory, postgres_url: str, session_table: str
) -> None:
    key = f"race-winner:{random.random()}"
    async with make_provider() as provider:
        await provider.ensure_schema()
        with _open_transaction(postgres_url) as blocker:
            blocker.execute(
                _statement(
                    session_table,
                    "INSERT INTO {} (key, token, expires_at, kept_until) VALUES"
                    " (%s, 'winner', clock_timestamp() + interval '30 s',"
                    " clock_timestamp() + interval '30 s')",
                ),
                (key,),
            )
            answer = await _answer_after(
                provider, postgres_url, session_table, blocker, AcquireRequest(key, 5.0)
            )
    assert isinstance(answer, Held), answer
    assert answer.token == "winner"
    assert 25.0 < answer.expires_in <= 30.0


async def test_batch_reports_a_renewal_committed_after_it_began(
    make_provider: ProviderFactory, postgres_url: str, session_table: str
) -> None:
    # The row is visible to the statement's snapshot, but in its version before the
    # renewal: the answer must come from the version the statement locked.
    key = f"race-renew:{random.random()}"
    async with make_provider() as holder, make_provider() as provider:
        lease = _lease(await _one(holder, AcquireRequest(key, 5.0)))
        with _open_transaction(postgres_url) as blocker:
            blocker.execute(
                _statement(
                    session_table,
                    "UPDATE {} SET expires_at = clock_timestamp() + interval '100 s',"
                    " kept_until = clock_timestamp() + interval '100 s' WHERE key = %s",
                ),
                (key,),
            )
            answer = await _answer_after(
                provider, postgres_url, session_table, blocker, AcquireRequest(key, 5.0)
            )
    assert isinstance(answer, Held), answer
    assert answer.token == lease.token
    assert answer.expires_in > 90.0


async def test_batch_reports_a_mark_committed_after_it_began(
    make_provider: ProviderFactory, postgres_url: str, session_table: str
) -> None:
    key = f"race-mark:{random.random()}"
    async with make_provider() as holder, make_provider() as provider:
        _lease(await _one(holder, AcquireRequest(key, 0.2, keep=60.0)))
        await trio.sleep(0.4)  # ran out: without the mark, the batch would take it over
        with _open_transaction(postgres_url) as blocker:
            blocker.execute(
                _statement(session_table, "UPDATE {} SET dispatched = true WHERE key = %s"),
                (key,),
            )
            answer = await _answer_after(
                provider, postgres_url, session_table, blocker, AcquireRequest(key, 5.0)
            )
    assert answer is None


async def test_without_the_snapshot_check_a_race_winner_goes_unreported(
    make_provider: ProviderFactory, postgres_url: str, session_table: str
) -> None:
    # The mutant: the batch statement without its ctid lookup updates no held row, so
    # the winner's row, committed after the statement began, is in no part of its
    # answer. This shows that the tests above can fail.
    key = f"race-mutant:{random.random()}"
    clause = " OR NOT EXISTS (SELECT FROM {locks} AS v WHERE v.ctid = l.ctid)"
    async with make_provider() as provider:
        await provider.ensure_schema()
        with sync_connect(postgres_url) as conn:
            text = provider._sql.acquire_batch.as_string(conn)
            removed = clause.format(locks=sql.Identifier(session_table).as_string(conn))
        assert removed in text
        provider._sql.acquire_batch = sql.Composed([sql.SQL(text.replace(removed, ""))])
        with _open_transaction(postgres_url) as blocker:
            blocker.execute(
                _statement(
                    session_table,
                    "INSERT INTO {} (key, token, expires_at) VALUES"
                    " (%s, 'winner', clock_timestamp() + interval '30 s')",
                ),
                (key,),
            )
            with pytest.raises(SchedulerError, match="no answer for key"):
                await _answer_after(
                    provider, postgres_url, session_table, blocker, AcquireRequest(key, 5.0)
                )


# -- cleanup by the memory's end (PG5) -------------------------------------------------------


def _count(url: str, table: str) -> int:
    with sync_connect(url) as conn:
        row = conn.execute(_statement(table, "SELECT count(*) FROM {}")).fetchone()
    assert row is not None
    return int(row[0])


async def test_cleanup_waits_for_the_memory_not_the_lease(
    postgres_url: str, tables: Tables
) -> None:
    table = tables.new()
    config = PostgresLockProviderConfig(
        url=postgres_url, table=table, cleanup_interval=None, cleanup_grace=0
    )
    async with PostgresLockProvider(config) as provider:
        kept = _lease(await _one(provider, AcquireRequest("kept", 0.1, keep=1.0)))
        assert await provider.mark_dispatched([kept]) == [True]
        assert await provider.acquire("plain", 0.1) is not None
        await trio.sleep(0.3)
        assert await provider.cleanup_expired() == 1  # only the record without memory
        assert await _one(provider, AcquireRequest("kept", 5.0)) is None  # still remembered
        await trio.sleep(1.0)
        assert await provider.cleanup_expired() == 1
        assert _count(postgres_url, table) == 0


# -- the upgrade of an old lock table (PG9) -----------------------------------------------

# The schema and acquire statement of the previous trio-sched, verbatim.
_OLD_SCHEMA = (
    "CREATE TABLE {locks} (key text PRIMARY KEY, token text NOT NULL,"
    " fencing_token bigint GENERATED ALWAYS AS IDENTITY (CACHE 1),"
    " expires_at timestamptz NOT NULL)",
    "CREATE INDEX {old_idx} ON {locks} (expires_at)",
    "CREATE TABLE {marks} (name text PRIMARY KEY, value bigint NOT NULL)",
)
_OLD_ACQUIRE = (
    "INSERT INTO {locks} AS l (key, token, expires_at)"
    " VALUES (%(key)s, %(token)s, clock_timestamp() + %(ttl)s * interval '1 second')"
    " ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token,"
    " fencing_token = DEFAULT, expires_at = EXCLUDED.expires_at"
    " WHERE l.expires_at <= clock_timestamp()"
    " RETURNING l.fencing_token, l.expires_at"
)


def _ids(table: str) -> dict[str, sql.Identifier]:
    schema, _, name = table.rpartition(".")
    parts = (schema, name) if schema else (name,)
    return {
        "locks": sql.Identifier(*parts),
        "marks": sql.Identifier(*parts[:-1], name + "_watermarks"),
        "old_idx": sql.Identifier(name + "_expires_at_idx"),
    }


def _old_acquire(conn: psycopg.Connection[Any], table: str, key: str, ttl: float) -> int:
    row = conn.execute(
        sql.SQL(_OLD_ACQUIRE).format(**_ids(table)), {"key": key, "token": f"old-{key}", "ttl": ttl}
    ).fetchone()
    assert row is not None
    return int(row[0])


def _columns(conn: psycopg.Connection[Any], table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT attname::text, attidentity::text FROM pg_attribute"
        " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (_ids(table)["locks"].as_string(conn),),
    ).fetchall()
    return {name: identity for name, identity in rows}


def _indexes(conn: psycopg.Connection[Any], table: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = to_regclass(%s)",
        (_ids(table)["locks"].as_string(conn),),
    ).fetchall()
    return {name for (name,) in rows}


@pytest.fixture
def old_table(postgres_url: str, tables: Tables) -> str:
    """A lock table as the previous trio-sched left it, with a live and an expired row."""
    table = tables.new("Old_Locks")
    with sync_connect(postgres_url) as conn:
        for statement in _OLD_SCHEMA:
            conn.execute(sql.SQL(statement).format(**_ids(table)))
        _old_acquire(conn, table, "live", 30.0)
        _old_acquire(conn, table, "lapsed", 0.01)
    return table


async def test_an_old_table_is_upgraded(postgres_url: str, old_table: str) -> None:
    with sync_connect(postgres_url) as conn:
        assert "kept_until" not in _columns(conn, old_table)
        (old_max,) = conn.execute(
            sql.SQL("SELECT max(fencing_token) FROM {locks}").format(**_ids(old_table))
        ).fetchone() or (0,)
    await trio.sleep(0.05)  # "lapsed" ran out
    config = PostgresLockProviderConfig(url=postgres_url, table=old_table, cleanup_interval=None)
    async with PostgresLockProvider(config) as provider:
        await provider.ensure_schema()
        with sync_connect(postgres_url) as conn:
            columns = _columns(conn, old_table)
            assert {"kept_until", "dispatched", "taken_over"} <= set(columns)
            assert columns["fencing_token"] == "d"  # GENERATED BY DEFAULT now (PG3)
            assert _indexes(conn, old_table) == {
                f"{old_table}_pkey",
                f"{old_table}_kept_until_idx",
            }
            backfilled = conn.execute(
                sql.SQL(
                    "SELECT key, kept_until = expires_at, kept_until = 'epoch',"
                    " dispatched, taken_over FROM {locks} ORDER BY key"
                ).format(**_ids(old_table))
            ).fetchall()
        # The live lease's row remembers its lease; the expired one is forgotten as is.
        assert backfilled == [
            ("lapsed", False, True, False, None),
            ("live", True, False, False, None),
        ]
        # An old row's memory is its lease: held while it lasts, a fresh key after.
        live, lapsed = await provider.acquire_batch(
            [AcquireRequest("live", 5.0), AcquireRequest("lapsed", 5.0)]
        )
        assert isinstance(live, Held)
        assert live.token == "old-live"
        fresh = _lease(lapsed)
        assert fresh.taken_over is None
        assert fresh.fencing_token > old_max


@pytest.mark.parametrize("form", ["plain", "schema-qualified"])
async def test_an_old_table_is_upgraded_once_by_providers_starting_together(
    postgres_url: str, old_table: str, form: str
) -> None:
    table = old_table if form == "plain" else f"public.{old_table}"
    providers = [
        PostgresLockProvider(PostgresLockProviderConfig(url=postgres_url, table=table))
        for _ in range(4)
    ]
    try:
        async with trio.open_nursery() as nursery:
            for provider in providers:
                nursery.start_soon(provider.ensure_schema)
        assert await providers[0].acquire("new", 5.0) is not None
    finally:
        for provider in providers:
            await provider.aclose()
    with sync_connect(postgres_url) as conn:
        assert "kept_until" in _columns(conn, old_table)


async def test_an_earlier_version_keeps_working_on_the_upgraded_table(
    postgres_url: str, old_table: str
) -> None:
    # A rolling upgrade: the previous trio-sched's acquire still runs, and its rows are
    # records kept for their lease (kept_until defaults to the epoch, PG9).
    config = PostgresLockProviderConfig(
        url=postgres_url, table=old_table, cleanup_interval=None, cleanup_grace=0
    )
    async with PostgresLockProvider(config) as provider:
        await provider.ensure_schema()
        with sync_connect(postgres_url) as conn:
            _old_acquire(conn, old_table, "by-old", 0.3)
            kept = conn.execute(
                sql.SQL("SELECT kept_until FROM {locks} WHERE key = 'by-old'").format(
                    **_ids(old_table)
                )
            ).fetchone()
        assert kept is not None
        assert kept[0] == datetime(1970, 1, 1, tzinfo=UTC)
        held = await _one(provider, AcquireRequest("by-old", 5.0))
        assert isinstance(held, Held)
        assert held.token == "old-by-old"
        assert await provider.acquire("by-old", 5.0) is None
        await trio.sleep(0.5)
        assert await provider.cleanup_expired() >= 1  # its memory (its lease) ended
        assert _lease(await _one(provider, AcquireRequest("by-old", 5.0))).taken_over is None


async def test_a_start_on_an_upgraded_table_takes_no_exclusive_lock(
    postgres_url: str, tables: Tables
) -> None:
    # A long reader (pg_dump, a report) holds ACCESS SHARE on the table. ALTER TABLE
    # would queue behind it, and every acquire behind the ALTER (PG9).
    table = tables.new()
    config = PostgresLockProviderConfig(url=postgres_url, table=table, operation_timeout=1.0)
    async with PostgresLockProvider(config) as first:
        await first.ensure_schema()
    with _open_transaction(postgres_url) as reader:
        reader.execute(_statement(table, "LOCK TABLE {} IN ACCESS SHARE MODE"))
        async with PostgresLockProvider(config) as second:
            with trio.fail_after(BOUND):
                await second.ensure_schema()
                assert await second.acquire("k", 5.0) is not None
        # The mutant: an unconditional ALTER TABLE ... ADD COLUMN IF NOT EXISTS waits.
        with sync_connect(postgres_url) as conn:
            conn.execute("SET statement_timeout = '300ms'")
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute(
                    _statement(
                        table, "ALTER TABLE {} ADD COLUMN IF NOT EXISTS kept_until timestamptz"
                    )
                )
