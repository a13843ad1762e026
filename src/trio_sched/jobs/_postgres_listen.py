"""The LISTEN connection of one `PostgresJobs` (rule PJ5 of `trio_sched.jobs.postgres`).

`Listener` opens a dedicated connection outside the pool and LISTENs on the table's
channel; waiting claims wait for its socket to become readable, holding no worker
thread. A broken connection is dropped (claims poll meanwhile) and reopened by the next
claim that asks for it. `_ConnectBox` hands a connection opened in a worker thread
over to a caller that may have been cancelled meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from typing import TYPE_CHECKING, final

import trio

from trio_sched._postgres_common import (
    Connection,
    query,
)
from trio_sched._postgres_driver import (
    PostgresDriver,
)

if TYPE_CHECKING:
    # Only for annotations: the first psycopg import goes through _postgres_common,
    # which says which extra to install when psycopg is missing.
    from psycopg import sql

__all__ = ["Listener"]

# The runtime's logger: one name for all of its modules.
_log = logging.getLogger("trio_sched.jobs.postgres")


@final
class Listener:
    """The dedicated LISTEN connection of one runtime (PJ5).

    Trio waits for its socket to become readable (no worker thread is held); one waiting
    claim at a time reads, the others wait on an event. `generation` counts reads that
    brought notifications, so a claim that saw generation ``g`` before its claim
    statement knows a notification arrived since once it is larger.
    """

    def __init__(self, driver: PostgresDriver, channel: str) -> None:
        self._driver = driver
        self._channel = channel
        self._conn: Connection | None = None
        self._connecting = trio.Lock()
        self._changed = trio.Event()
        self._reading = False
        self._closed = False
        self._retry_at = -math.inf
        self.generation = 0
        self.notifications = 0
        self.errors = 0

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def closed(self) -> bool:
        return self._closed

    async def ensure(self) -> bool:
        """Open the connection and LISTEN if not yet done; True when listening. Never
        raises a driver error: after a failure, claims poll for a while and retry."""
        if self._conn is not None:
            return True
        if self._closed or trio.current_time() < self._retry_at:
            return False
        async with self._connecting:
            if self.connected:  # another claim connected while we waited for the lock
                return True
            box = _ConnectBox()
            try:
                conn = await trio.to_thread.run_sync(self._open, box, abandon_on_cancel=True)
            except trio.Cancelled:
                box.abandon()
                raise
            except Exception as exc:
                self.errors += 1
                self._retry_at = trio.current_time() + min(5.0, self._driver.operation_timeout)
                _log.warning(
                    "LISTEN connection failed, polling meanwhile: %s",
                    self._driver.map_error(exc),
                )
                return False
            if self.closed:  # aclose ran while we connected
                conn.close()
                return False
            self._conn = conn
            return True

    def _open(self, box: _ConnectBox) -> Connection:
        conn = self._driver.open_dedicated()
        try:
            conn.execute(query("LISTEN {channel}", channel=_identifier(self._channel)))
        except BaseException:
            conn.close()
            raise
        box.deliver(conn)
        return conn

    async def wait(self, seen: int, until: float) -> None:
        """Wait until a notification arrived after generation `seen`, the connection
        broke, or Trio's clock reaches `until`. A checkpoint; cancelling it leaves
        nothing behind (unread notifications stay in the socket for the next reader)."""
        await trio.lowlevel.checkpoint()
        with trio.move_on_at(until):
            while self.generation == seen and self._conn is not None:
                if self._reading:
                    await self._changed.wait()
                    continue
                conn = self._conn
                self._reading = True
                try:
                    await trio.lowlevel.wait_readable(conn.pgconn.socket)
                    self._drain(conn)
                except trio.ClosedResourceError:
                    return  # closed under us (aclose)
                finally:
                    self._reading = False
                    # Wake the other waiters: one of them reads next, or all re-claim.
                    self._changed.set()
                    self._changed = trio.Event()

    def _drain(self, conn: Connection) -> None:
        """Read what arrived, without blocking (libpq's socket is non-blocking)."""
        try:
            conn.pgconn.consume_input()
            count = 0
            while conn.pgconn.notifies() is not None:
                count += 1
        except Exception as exc:
            self.errors += 1
            _log.warning("LISTEN connection broke, reconnecting: %s", self._driver.map_error(exc))
            self._drop()
            self.generation += 1  # let waiting claims look again at once
            return
        if count:
            self.notifications += count
            self.generation += 1

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Wakes a reader in wait_readable with ClosedResourceError before the close.
            with contextlib.suppress(Exception):
                trio.lowlevel.notify_closing(conn.pgconn.socket)
            conn.close()

    def close(self) -> None:
        """Close the connection now (not a checkpoint); idempotent."""
        self._closed = True
        self._drop()
        self._changed.set()


@final
class _ConnectBox:
    """Hand-over of a LISTEN connection opened in a worker thread whose caller may be
    cancelled: whoever comes second (thread or abandoning caller) closes it."""

    __slots__ = ("_abandoned", "_conn", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._conn: Connection | None = None

    def deliver(self, conn: Connection) -> None:
        with self._lock:
            if not self._abandoned:
                self._conn = conn
                return
        conn.close()

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _identifier(name: str) -> sql.Identifier:
    from psycopg import sql as _sql

    return _sql.Identifier(name)
