"""`ConnectionPool`: the idle psycopg connections of one `PostgresDriver`.

Holds the pool half of rule P1 and the connection settings of P2 (the rules are in
`trio_sched._postgres_driver`): at most ``max_idle`` idle connections, each in
autocommit mode; a pooled connection is checked before reuse without a round trip
(`_still_alive`), so one the server closed while idle is replaced instead of failing a
caller, and when one breaks in use the idle ones are dropped too. A new connection gets
libpq's ``connect_timeout`` and the server's ``statement_timeout`` (P2).
"""

from __future__ import annotations

import logging
import math
import select
import threading
from typing import Any, final

# After _postgres_common, whose import guard says which extra to install without psycopg.
from trio_sched._postgres_common import Connection

# isort: split
import psycopg
from psycopg.conninfo import conninfo_to_dict

__all__ = ["ConnectionPool"]

_log = logging.getLogger("trio_sched.postgres")


@final
class ConnectionPool:
    """The connections of one driver: `checkout`, then `checkin` (rule P1).

    Blocking: `checkout`, `connect` and `checkin` run in worker threads. `lock` is the
    driver's: it guards this pool together with the driver's watches and counters, and
    `close` is called with it held. `what` and `url` (redacted) name the owner in logs.
    """

    __slots__ = (
        "_closed",
        "_connect_kwargs",
        "_dsn",
        "_idle",
        "_lock",
        "_max_idle",
        "_opened",
        "_statement_timeout_ms",
        "_synchronous_commit",
        "_url",
        "_what",
    )

    def __init__(
        self,
        dsn: str,
        *,
        operation_timeout: float,
        max_idle: int,
        application_name: str,
        synchronous_commit: bool,
        lock: threading.Lock,
        what: str,
        url: str,
    ) -> None:
        self._dsn = dsn
        self._what = what
        self._url = url
        params = conninfo_to_dict(dsn)
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            # P2: libpq counts whole seconds and enforces at least 2.
            "connect_timeout": max(2, math.ceil(operation_timeout)),
        }
        if "application_name" not in params:
            self._connect_kwargs["application_name"] = application_name
        self._statement_timeout_ms = max(1, math.ceil(operation_timeout * 1000))
        self._synchronous_commit = "on" if synchronous_commit else "off"
        self._max_idle = max_idle
        self._lock = lock
        self._idle: list[Connection] = []
        self._closed = False
        self._opened = 0

    @property
    def connections_opened(self) -> int:
        """Every connection ever made (read it with the lock held)."""
        return self._opened

    @property
    def idle_connections(self) -> int:
        """The connections pooled now (read it with the lock held)."""
        return len(self._idle)

    def checkout(self) -> Connection:
        while True:
            with self._lock:
                if not self._idle:
                    break
                pooled = self._idle.pop()
            if _still_alive(pooled):
                return pooled
            # The server closed it while idle (restart, idle timeout, a dropped network):
            # found without a round trip, so no caller fails for it.
            pooled.close()
        return self.connect()

    def connect(self) -> Connection:
        """A new connection with the driver's settings, outside the pool."""
        conn = psycopg.Connection.connect(self._dsn, **self._connect_kwargs)
        try:
            with self._lock:
                self._opened += 1
            # P2: the server cancels any statement of ours running longer than this.
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false),"
                " set_config('synchronous_commit', %s, false)",
                (f"{self._statement_timeout_ms}ms", self._synchronous_commit),
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def checkin(self, conn: Connection, error: BaseException | None) -> None:
        broken = conn.closed or conn.broken
        # A statement the server rejected (it has a SQLSTATE: a cancelled statement, a
        # constraint) leaves the connection usable; a client-side failure may not.
        clean = error is None or getattr(error, "sqlstate", None) is not None
        if (
            not broken
            and clean
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ):
            with self._lock:
                if not self._closed and len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    return
        elif broken:
            # The server went away or dropped us: the idle connections are most likely
            # dead too, and each would fail one caller before being replaced.
            with self._lock:
                stale, self._idle = self._idle, []
            for old in stale:
                old.close()
            _log.debug("%s (%s): dropped a broken connection", self._what, self._url)
        conn.close()

    def close(self) -> list[Connection]:
        """Pool nothing from now on; the idle connections, for the caller to close
        outside the lock. Called with the lock held."""
        self._closed = True
        idle, self._idle = self._idle, []
        return idle


def _still_alive(conn: Connection) -> bool:
    """Whether an idle pooled connection is still usable, without a round trip.

    An idle connection has nothing to read; if it has, the server closed it or sent an
    error (shutdown), which ``consume_input`` turns into a bad status.
    """
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
        if readable:
            conn.pgconn.consume_input()
    except (OSError, ValueError, psycopg.Error):
        return False
    return conn.pgconn.status == psycopg.pq.ConnStatus.OK
