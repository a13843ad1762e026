"""Servers for the docs examples: the suite's own (``redis_url``, ``postgres_url``:
env URL, else the local server, else a throwaway embedded one; never skipped),
imported, not copied. Each example gets a Redis database and a Postgres database of
its own, emptied or dropped afterwards, so the examples may use the default prefixes
and table names a newcomer would."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from postgres.conftest import postgres_url
from redis_backend.conftest import redis_url

__all__ = ["example_postgres_url", "example_redis_url", "postgres_url", "redis_url"]

EXAMPLES_REDIS_DB = 13  # no other test uses it; flushed before and after each example


@pytest.fixture
def example_redis_url(redis_url: str) -> Iterator[str]:
    parts = urlsplit(redis_url)
    url = urlunsplit(parts._replace(path=f"/{EXAMPLES_REDIS_DB}"))
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.flushdb()
        yield url
        client.flushdb()
    finally:
        client.close()


@pytest.fixture
def example_postgres_url(postgres_url: str) -> Iterator[str]:
    name = f"trio_sched_docs_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(postgres_url)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
