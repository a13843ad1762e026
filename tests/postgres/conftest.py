"""Postgres test servers and helpers for ``tests/postgres``.

Where the server comes from, in order (issue 4, "Test servers, on any machine"):
1. ``TRIO_SCHED_POSTGRES_URL``, which must answer and point at this machine (loopback
   or a Unix socket);
2. the local server at ``postgresql://127.0.0.1:5432/test`` (trust auth) if it answers;
3. a throwaway embedded server from ``pgserver`` (a test-only dependency), started in a
   temporary directory on a Unix socket and removed at the end of the session.
``TRIO_SCHED_TEST_SERVERS=embedded`` skips 1 and 2 (CI runs the suite once that way).
When none can be had the fixture FAILS the tests; it never skips them.

Every session uses its own random table names (``trio_sched_locks_<hex>``) and drops
them at the end. Tests that must stall or cut connections do it through `PgProxy`, a
loopback TCP proxy of their own in front of the server, never by touching the server.
"""

from __future__ import annotations

import importlib
import os
import secrets
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

ENV = "TRIO_SCHED_POSTGRES_URL"
LOCAL_URL = "postgresql://127.0.0.1:5432/test"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _is_local(url: str) -> bool:
    params = conninfo_to_dict(url)
    hosts = [h for h in str(params.get("host", "")).split(",") if h]
    addrs = [h for h in str(params.get("hostaddr", "")).split(",") if h]
    if not hosts and not addrs:
        return True  # libpq's default: the local Unix socket
    return all(h in _LOOPBACK or h.startswith("/") for h in hosts) and all(
        a in _LOOPBACK for a in addrs
    )


def _answers(url: str) -> str | None:
    """None when ``SELECT 1`` works on `url`, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL of a Postgres server on this machine, resolved as the module docstring says."""
    # TRIO_SCHED_TEST_SERVERS=embedded: always the embedded server (see tests/redis_backend).
    embedded = os.environ.get("TRIO_SCHED_TEST_SERVERS") == "embedded"
    explicit = None if embedded else os.environ.get(ENV)
    if explicit:
        if not _is_local(explicit):
            pytest.fail(f"{ENV} must point at loopback or a Unix socket; tests talk to no one else")
        why = _answers(explicit)
        if why is not None:
            pytest.fail(f"{ENV} is set but the server does not answer: {why}")
        yield explicit
        return
    if not embedded and _answers(LOCAL_URL) is None:
        yield LOCAL_URL
        return
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
            warnings.simplefilter("ignore")
            pgserver: Any = importlib.import_module("pgserver")
    except ImportError:
        pytest.fail(
            f"no Postgres server: {ENV} unset, nothing answers at {LOCAL_URL}, and pgserver "
            "(the test extra's embedded server) is not installed"
        )
    with tempfile.TemporaryDirectory(prefix="trio-sched-pg-") as data_dir:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(data_dir, cleanup_mode="stop")
        try:
            url = server.get_uri()
            why = _answers(url)
            if why is not None:
                pytest.fail(f"the embedded pgserver does not answer: {why}")
            yield url
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server.cleanup()


class Tables:
    """Fresh random table names on the server, all dropped at the end of the session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.names: list[str] = []

    def new(self, stem: str = "trio_sched_locks") -> str:
        name = f"{stem}_{secrets.token_hex(4)}"
        self.names.append(name)
        return name

    def drop_all(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in self.names:
                for table in (name + "_paused", name + "_watermarks", name):
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


@pytest.fixture(scope="session")
def tables(postgres_url: str) -> Iterator[Tables]:
    made = Tables(postgres_url)
    yield made
    made.drop_all()


@pytest.fixture(scope="session")
def session_table(tables: Tables) -> str:
    """One lock table for the tests that can share one (random key prefixes)."""
    return tables.new()


ProviderFactory = Callable[..., AbstractAsyncContextManager[PostgresLockProvider]]


@pytest.fixture
def make_provider(postgres_url: str, session_table: str) -> ProviderFactory:
    """``make_provider(**config)``: an async context manager yielding an open provider."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[PostgresLockProvider]:
        settings: dict[str, Any] = {
            "url": postgres_url,
            "table": session_table,
            "operation_timeout": 3.0,
        }
        settings.update(overrides)
        provider = PostgresLockProvider(PostgresLockProviderConfig(**settings))
        try:
            yield provider
        finally:
            await provider.aclose()

    return make
