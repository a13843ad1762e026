"""PostgresLockProvider's pause records beyond the conformance suite (rule PG10): the
pause table, its creation on a schema of an earlier version, its P8 check, and what a
paused request leaves untouched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from psycopg import sql

from trio_sched import ConflictError
from trio_sched.locks import AcquireRequest, LockLease, Paused, PauseStore
from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

from ._helpers import sync_connect
from .conftest import Tables

SINCE = datetime(2026, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC)
FLOORED = SINCE.replace(microsecond=123_000)


def _provider(url: str, table: str) -> PostgresLockProvider:
    return PostgresLockProvider(PostgresLockProviderConfig(url=url, table=table))


def _rows(url: str, table: str) -> list[tuple[object, ...]]:
    with sync_connect(url) as conn:
        return conn.execute(
            sql.SQL("SELECT * FROM {} ORDER BY name").format(sql.Identifier(f"{table}_paused"))
        ).fetchall()


async def test_pause_table_rows_and_statements(postgres_url: str, tables: Tables) -> None:
    table = tables.new()
    async with _provider(postgres_url, table) as locks:
        assert isinstance(locks, PauseStore)
        await locks.ensure_schema()
        trips = locks.statistics().driver.round_trips
        await locks.set_paused({})
        assert await locks.get_paused([]) == {}
        assert locks.statistics().driver.round_trips == trips  # empty: none
        await locks.set_paused({"a": Paused(SINCE, "me", "why"), "b": None})
        assert locks.statistics().driver.round_trips == trips + 1
        # A resume of a name never paused writes no row.
        assert _rows(postgres_url, table) == [("a", FLOORED, "me", "why")]
        assert await locks.get_paused(["a", "b"]) == {"a": Paused(FLOORED, "me", "why")}
        # Paused before its task ever ran: no watermark appears.
        assert await locks.get_watermarks(["a"]) == {}
        answers = await locks.acquire_batch(
            [AcquireRequest("ka", 5.0, "a", 1), AcquireRequest("kb", 5.0, "b", 1)]
        )
        assert answers[0] == Paused(FLOORED, "me", "why")
        assert isinstance(answers[1], LockLease)
        with sync_connect(postgres_url) as conn:
            keys = conn.execute(sql.SQL("SELECT key FROM {}").format(sql.Identifier(table)))
            assert [key for (key,) in keys] == ["kb"]  # ka untouched
        assert locks.statistics().refused_by_pause == 1
        await locks.set_paused({"a": None})
        assert _rows(postgres_url, table) == [("a", None, None, None)]  # cleared, kept
        assert await locks.get_paused(["a"]) == {}
        (answer,) = await locks.acquire_batch([AcquireRequest("ka", 5.0, "a", 1)])
        assert isinstance(answer, LockLease)


async def test_a_schema_without_the_pause_table_gets_one(postgres_url: str, tables: Tables) -> None:
    # The schema of the trio-sched before pause records: the same, minus <table>_paused.
    table = tables.new()
    async with _provider(postgres_url, table) as earlier:
        await earlier.advance_watermarks({"t": 5})
        assert await earlier.acquire("held", 30.0) is not None
    with sync_connect(postgres_url) as conn:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(f"{table}_paused")))
    async with _provider(postgres_url, table) as locks:
        await locks.set_paused({"t": Paused(SINCE, "me"), "new": Paused(SINCE, "me")})
        assert await locks.get_paused(["t", "new"]) == {
            "t": Paused(FLOORED, "me"),
            "new": Paused(FLOORED, "me"),
        }
        assert await locks.get_watermarks(["t", "new"]) == {"t": 5}
        assert await locks.acquire("held", 5.0) is None  # the old rows are still there


async def test_a_foreign_table_named_like_the_pause_table_is_a_conflict(
    postgres_url: str, tables: Tables
) -> None:
    table = tables.new()
    with sync_connect(postgres_url) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (name text, other int)").format(
                sql.Identifier(f"{table}_paused")
            )
        )
    async with _provider(postgres_url, table) as locks:
        with pytest.raises(ConflictError) as info:
            await locks.acquire("k", 5.0)
    assert f"table '{table}_paused' exists but is not a trio-sched pause table" in str(info.value)
    with sync_connect(postgres_url) as conn:
        # Nothing was created: all or nothing (P8).
        row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
    assert row == (None,)
