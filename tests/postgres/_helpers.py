"""Helpers for the Postgres tests: a plain connection, and a loopback proxy to stall or cut."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def sync_connect(url: str) -> psycopg.Connection[Any]:
    """A plain autocommit connection for a test to look at the tables itself."""
    return psycopg.connect(url, autocommit=True, connect_timeout=2)


# -- a loopback proxy to stall or cut connections ------------------------------------------


class _Pair:
    def __init__(self, client: trio.abc.Stream, upstream: trio.abc.Stream) -> None:
        self.client = client
        self.upstream = upstream
        self.mute_replies = False


class PgProxy:
    """A TCP proxy on 127.0.0.1 in front of the test server.

    `mute_replies` makes the current connections keep forwarding what the client sends
    while dropping every reply (a server or network that stops answering; statements
    still run). `cut` closes the current connections. New connections pass normally.
    """

    def __init__(self, upstream_url: str) -> None:
        params = conninfo_to_dict(upstream_url)
        self._url = upstream_url
        self._host = str(params.get("host") or "/var/run/postgresql")
        self._port = int(params.get("port") or 5432)
        self._pairs: list[_Pair] = []
        self.port = 0

    def url(self) -> str:
        """The upstream URL with host and port pointing at this proxy."""
        return make_conninfo(self._url, host="127.0.0.1", port=str(self.port))

    async def _connect_upstream(self) -> trio.abc.Stream:
        if self._host.startswith("/"):
            return await trio.open_unix_socket(f"{self._host}/.s.PGSQL.{self._port}")
        return await trio.open_tcp_stream(self._host, self._port)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started()
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, client: trio.SocketStream) -> None:
        upstream = await self._connect_upstream()
        pair = _Pair(client, upstream)
        self._pairs.append(pair)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, pair, client, upstream, False, nursery.cancel_scope)
                nursery.start_soon(self._pump, pair, upstream, client, True, nursery.cancel_scope)
        finally:
            self._pairs.remove(pair)
            with trio.CancelScope(shield=True):
                await client.aclose()
                await upstream.aclose()

    async def _pump(
        self,
        pair: _Pair,
        source: trio.abc.Stream,
        sink: trio.abc.Stream,
        reply: bool,
        scope: trio.CancelScope,
    ) -> None:
        try:
            while data := await source.receive_some(65536):
                if reply and pair.mute_replies:
                    continue
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    def mute_replies(self) -> int:
        for pair in self._pairs:
            pair.mute_replies = True
        return len(self._pairs)

    async def cut(self) -> int:
        pairs = list(self._pairs)
        for pair in pairs:
            await pair.client.aclose()
            await pair.upstream.aclose()
        return len(pairs)


@asynccontextmanager
async def running_proxy(upstream_url: str) -> AsyncIterator[PgProxy]:
    proxy = PgProxy(upstream_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()
