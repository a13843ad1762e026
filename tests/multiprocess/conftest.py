"""Shared backends for the multi-process tests: where the children coordinate and record.

The servers come from the fixtures of ``tests/redis_backend`` and ``tests/postgres``
(environment URL, else the local server, else an embedded one; never a skip). Each test
gets a fresh Redis key prefix or Postgres lock table for the children's lock provider,
and a fresh record list or table, all removed afterwards.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from postgres.conftest import postgres_url
from redis_backend.conftest import redis_url

__all__ = ["Backend", "backend", "both_backends", "postgres_url", "redis_url"]


@dataclass
class Backend:
    """One shared backend: names for a test's coordination space and record store."""

    kind: str  # "redis" or "postgres"
    url: str
    space: str  # Redis key prefix, or Postgres lock table
    records: str  # Redis list key, or Postgres table
    _made: list[str] = field(default_factory=list)

    def read_records(self) -> list[dict[str, Any]]:
        if self.kind == "redis":
            client = redis.Redis.from_url(self.url, socket_timeout=5)
            try:
                raw = client.lrange(self.records, 0, -1)
            finally:
                client.close()
            return [json.loads(item) for item in raw]
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                sql.SQL("SELECT record FROM {} ORDER BY id").format(sql.Identifier(self.records))
            ).fetchall()
        return [json.loads(row[0]) for row in rows]


def _redis_backend(url: str) -> Iterator[Backend]:
    prefix = f"trio-sched-mp:{secrets.token_hex(6)}"
    yield Backend("redis", url, space=prefix, records=f"{prefix}:records")
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _postgres_backend(url: str) -> Iterator[Backend]:
    stem = f"trio_sched_mp_{secrets.token_hex(4)}"
    records = f"{stem}_records"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        # No unique constraint: a duplicate dispatch must show as a second row (M3).
        conn.execute(
            sql.SQL("CREATE TABLE {} (id bigserial PRIMARY KEY, record text NOT NULL)").format(
                sql.Identifier(records)
            )
        )
    yield Backend("postgres", url, space=stem, records=records)
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        for table in (records, f"{stem}_paused", f"{stem}_watermarks", stem):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


@pytest.fixture(params=["redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    # Resolve only the server this parameter needs.
    if request.param == "redis":
        yield from _redis_backend(request.getfixturevalue("redis_url"))
    else:
        yield from _postgres_backend(request.getfixturevalue("postgres_url"))


@pytest.fixture
def both_backends(redis_url: str, postgres_url: str) -> Iterator[list[Backend]]:
    """A Redis and a PostgreSQL backend at once, for a test that runs on both together."""
    spaces = [_redis_backend(redis_url), _postgres_backend(postgres_url)]
    backends = [next(space) for space in spaces]
    try:
        yield backends
    finally:
        for space in spaces:
            next(space, None)  # removes what the test made
