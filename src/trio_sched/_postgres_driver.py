"""`PostgresDriver`: psycopg's sync connections driven from Trio through worker threads.

Imported only by the Postgres backends, after `trio_sched._postgres_common` (which guards
the psycopg import); ``import trio_sched`` never imports it. The connection pool itself
is `trio_sched._postgres_pool`. Redaction (P5) and the configuration checks (P7) are
those of `trio_sched._postgres_common`.

Rules:
- P1 Driver: psycopg's *sync* connections run in worker threads through
  `trio.to_thread.run_sync` with one `trio.CapacityLimiter` per driver
  (``max_connections``). A small pool of our own keeps at most that many idle
  connections; each thread holds one connection for one call, in autocommit mode, so
  every statement is its own transaction and no connection is ever left inside one.
  Before reuse a pooled connection is checked without a round trip (a zero-timeout poll
  of its socket: an idle connection has nothing to read), so a connection the server
  closed while idle is replaced instead of failing a caller; when one breaks in use, the
  idle ones are dropped too.
- P2 Every call is bounded by ``operation_timeout`` three times over: the Trio side
  waits at most that long (a limiter slot and connecting included) and then raises
  `RetryableError`; the server cancels any statement running longer
  (``statement_timeout``); and a watchdog thread shuts down the socket of a call still
  running ``operation_timeout`` plus a margin after it started, for a server that no
  longer answers at all (psycopg has no client-side read timeout). Connecting is bounded
  by ``connect_timeout`` (libpq's minimum is 2 s). A worker thread therefore never
  hangs, and a thread the Trio side gave up on ends soon after.
- P3 Cancellation is prompt: threads run with ``abandon_on_cancel=True``. An abandoned
  thread that had not yet sent its statement sends nothing; one that had runs to its end
  (P2) and then runs the call's *undo* if it has one. An undo is a token-checked
  compensation (a lock release by the token the caller generated), so it is safe whether
  or not the abandoned statement committed, and it never touches rows someone else owns.
  The same undo runs in the background when the call fails with a connection-level or
  timeout error after the statement was sent, since the statement may have committed
  and only its reply been lost. After `PostgresDriver.close` no undo runs: what it would
  have released ends by its TTL.
- P4 Errors are mapped at the boundary and chained (``raise ... from exc``): connection
  trouble, timeouts, cancelled statements, deadlocks, serialization failures and server
  shutdowns (psycopg's ``OperationalError`` family) -> `RetryableError`; rejected
  credentials, an unknown role or database, bad data -> `InvalidArgumentError`; a missing
  table -> `NotInitializedError`; an integrity violation -> `ConflictError`; anything
  else -> `SchedulerError`. A call racing ``close`` raises `ClosedError`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, LiteralString, TypeVar, final

import trio

from trio_sched._errors import (
    ClosedError,
    ConflictError,
    InvalidArgumentError,
    NotInitializedError,
    RetryableError,
    SchedulerError,
)

# After _postgres_common, whose import guard says which extra to install without psycopg.
from trio_sched._postgres_common import (
    REDACTED,
    RELATION_QUERY,
    Connection,
    TableName,
    TableShape,
    check_dsn,
    redact_dsn,
    secrets_of,
    shape_problem,
)
from trio_sched._postgres_pool import ConnectionPool

# isort: split
import psycopg
import psycopg.errors
from psycopg import sql

__all__ = ["PostgresDriver", "PostgresDriverStatistics"]

T = TypeVar("T")

# Connection failures that retrying cannot fix: the DSN (or the PG* environment, or a
# service file) is wrong. libpq reports these before or while connecting, without a
# SQLSTATE; a refused connection, a timeout or an unresolvable host are not among them.
_CONFIG_FAILURES: Final = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "does not exist",
    "invalid dsn",
    "invalid connection option",
    "invalid port number",  # libpq: port out of 1-65535
    "invalid integer value",  # libpq: port=abc, keepalives=x
    "could not match",  # libpq: N ports (or hostaddrs) for M hosts
    "could not parse network address",  # libpq: hostaddr not numeric
    "invalid when ssl support is not compiled in",
    "invalid value for parameter",  # the server: options=-c name=bad
    "unrecognized configuration parameter",  # the server: options=-c nonsense=1
)
# libpq: ``invalid sslmode value: "bogus"`` and the same for every enumerated option.
_CONFIG_FAILURE_PATTERN: Final = re.compile(r'invalid [a-z_]+ (value|method): "')

_log = logging.getLogger("trio_sched.postgres")


@final
@dataclass(frozen=True, slots=True)
class PostgresDriverStatistics:
    """Counters of one `PostgresDriver`.

    `round_trips` counts statements sent (a statement is one round trip), `failures`
    calls that raised a mapped error, `timeouts` calls the Trio-side deadline ended,
    `interrupted` calls whose socket the watchdog shut down, `abandoned` calls given up
    (cancelled or timed out) while a worker thread ran, `undos` compensations that ran
    and `undo_failures` those that failed (their locks end by TTL). `in_flight` counts
    calls awaiting a worker thread; `connections_opened` every connection ever made and
    `idle_connections` those pooled now.
    """

    round_trips: int
    failures: int
    timeouts: int
    interrupted: int
    abandoned: int
    undos: int
    undo_failures: int
    in_flight: int
    connections_opened: int
    idle_connections: int


class _Flight:
    """Hand-over state between the Trio side and one worker thread (rule P3)."""

    __slots__ = ("abandoned", "finished", "lock", "sent")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.finished = False
        self.sent = False


class _Watch:
    """A connection whose statement is running, with the instant the watchdog cuts it."""

    __slots__ = ("conn", "deadline", "interrupted")

    def __init__(self, conn: Connection, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.interrupted = False


class _Abandoned(Exception):
    """Raised in a worker thread whose caller gave up before its statement was sent."""


class _Interrupted(Exception):
    """The watchdog shut down the socket of a call that ran too long (P2)."""


@final
class PostgresDriver:
    """A pool of psycopg sync connections driven from Trio through worker threads.

    `what` names the owner in error messages (``"postgres lock provider"``). No I/O
    happens here: connections open on first use. Rules P1-P4 above, and P5 of
    `trio_sched._postgres_common`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        operation_timeout: float,
        max_connections: int,
        what: str,
        application_name: str = "trio-sched",
        synchronous_commit: bool = True,
    ) -> None:
        check_dsn(dsn)
        self.url = redact_dsn(dsn)
        self.operation_timeout = operation_timeout
        self._what = what
        self._secrets = secrets_of(dsn)
        # P2: the server's statement_timeout should answer first; the watchdog is for a
        # server (or network) that answers nothing at all.
        self._watchdog_after = operation_timeout + max(0.25, operation_timeout / 4)
        self._limiter = trio.CapacityLimiter(max_connections)
        self._lock = threading.Lock()  # guards the pool, the watches and the counters
        self._pool = ConnectionPool(
            dsn,
            operation_timeout=operation_timeout,
            max_idle=max_connections,
            application_name=application_name,
            synchronous_commit=synchronous_commit,
            lock=self._lock,
            what=what,
            url=self.url,
        )
        self._watches: set[_Watch] = set()
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._round_trips = 0
        self._failures = 0
        self._timeouts = 0
        self._interrupted = 0
        self._abandoned = 0
        self._undos = 0
        self._undo_failures = 0
        self._in_flight = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self._what} ({self.url}) is closed")

    def execute(
        self,
        conn: Connection,
        statement: sql.Composed | LiteralString,
        params: dict[str, Any] | tuple[Any, ...] | None = None,
    ) -> psycopg.Cursor[Any]:
        """Run one statement on `conn` (in a worker thread) and count its round trip."""
        with self._lock:
            self._round_trips += 1
        return conn.execute(statement, params)

    async def create_schema(
        self,
        key: int,
        statements: Sequence[sql.Composed | LiteralString],
        on_done: Callable[[], None],
        *,
        tables: Sequence[tuple[TableName, str, TableShape]] = (),
    ) -> None:
        """Run `statements` in one transaction under ``pg_advisory_xact_lock(key)``, so
        instances starting together create a schema once; `on_done` runs in the thread
        after the commit (even when the caller was cancelled meanwhile). A checkpoint;
        a cancelled call created all or nothing.

        First, under the same lock, each of `tables` (a table, the suffix of the sibling
        meant, the shape it must have) that already exists is checked (rule P8): a
        relation of that name that is not a table with the shape's columns raises
        `ConflictError` naming it and what it looks like, and nothing is created."""

        def run(conn: Connection) -> str | None:
            with conn.transaction():
                self.execute(conn, "SELECT pg_advisory_xact_lock(%s)", (key,))
                for table, suffix, shape in tables:
                    problem = self._shape_problem(conn, table, suffix, shape)
                    if problem is not None:
                        return problem  # commits nothing but the (released) lock
                for statement in statements:
                    self.execute(conn, statement)
            on_done()
            return None

        problem = await self.call(run)
        if problem is not None:
            raise ConflictError(f"{self._what} ({self.url}): {problem}")

    def _shape_problem(
        self, conn: Connection, table: TableName, suffix: str, shape: TableShape
    ) -> str | None:
        """Why the existing relation `table` + `suffix` cannot serve as `shape`, or None
        when it does not exist or has the columns (P8). In a worker thread."""
        name = table.identifier(suffix).as_string(conn)
        row = self.execute(conn, RELATION_QUERY, (name,)).fetchone()
        return shape_problem(table, suffix, shape, row)

    async def call(
        self,
        fn: Callable[[Connection], T],
        *,
        undo: Callable[[Connection], None] | None = None,
    ) -> T:
        """Run ``fn(conn)`` in a worker thread on a pooled connection (P1, P2).

        A checkpoint. On cancellation the thread is abandoned and `undo` (if given) runs
        once it finishes, if its statement was sent (P3). Raises mapped errors (P4) and
        `ClosedError` when closed.
        """
        self.check_open()
        flight = _Flight()
        failure: SchedulerError | None = None
        cause: BaseException | None = None
        self._in_flight += 1
        try:
            with trio.move_on_after(self.operation_timeout) as deadline:
                try:
                    return await trio.to_thread.run_sync(
                        self._run_in_thread,
                        fn,
                        undo,
                        flight,
                        abandon_on_cancel=True,
                        limiter=self._limiter,
                    )
                except trio.Cancelled:
                    self._abandon(flight, undo)
                    raise
                except ClosedError:
                    raise
                except Exception as exc:
                    if undo is not None and flight.sent and _ambiguous(exc):
                        self._undo_in_background(undo)
                    failure = self.map_error(exc)
                    # P5: a driver text holding the password is neither chained nor kept
                    # as context (the raise below is outside the except block).
                    cause = None if self._leaks(exc) else exc
        finally:
            self._in_flight -= 1
        if failure is not None:
            raise failure from cause
        # Only reached when the deadline cancelled the call.
        assert deadline.cancelled_caught
        with self._lock:
            self._timeouts += 1
            self._failures += 1
        raise RetryableError(
            f"{self._what} ({self.url}): no answer within "
            f"operation_timeout={self.operation_timeout:g}s"
        )

    def close(self) -> None:
        """Close the idle connections and cut the sockets of busy ones; idempotent.

        Non-blocking. A worker thread still running gets a connection error, reported
        as `ClosedError`, and closes its connection itself (a psycopg connection must
        not be closed under a thread using it). Later calls raise `ClosedError`.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle = self._pool.close()
            for watch in self._watches:
                _shutdown_socket(watch.conn)
        self._stop.set()
        for conn in idle:
            conn.close()

    def statistics(self) -> PostgresDriverStatistics:
        with self._lock:
            return PostgresDriverStatistics(
                round_trips=self._round_trips,
                failures=self._failures,
                timeouts=self._timeouts,
                interrupted=self._interrupted,
                abandoned=self._abandoned,
                undos=self._undos,
                undo_failures=self._undo_failures,
                in_flight=self._in_flight,
                connections_opened=self._pool.connections_opened,
                idle_connections=self._pool.idle_connections,
            )

    def scrub(self, text: str) -> str:
        """`text` with every spelling of the DSN's password replaced (P5)."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def map_error(self, exc: BaseException) -> SchedulerError:
        """The `SchedulerError` for a driver exception (P4); the caller chains it."""
        if isinstance(exc, SchedulerError):
            return exc
        with self._lock:
            self._failures += 1
        if self._closed:
            return ClosedError(f"{self._what} ({self.url}) was closed during the call")
        if isinstance(exc, _Interrupted):
            return RetryableError(
                f"{self._what} ({self.url}): the server did not answer within "
                f"{self._watchdog_after:g}s; the connection was dropped"
            )
        detail = self.scrub(f"{type(exc).__name__}: {exc}".strip())
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate:
            detail += f" (SQLSTATE {sqlstate})"
        text = f"{self._what} ({self.url}): {detail}"
        lowered = str(exc).lower()
        if isinstance(exc, psycopg.errors.UndefinedTable):
            return NotInitializedError(text)
        if isinstance(
            exc, psycopg.errors.InvalidAuthorizationSpecification | psycopg.errors.InvalidPassword
        ):
            return InvalidArgumentError(f"{text} (check the DSN's credentials)")
        if isinstance(exc, psycopg.OperationalError):
            if sqlstate is None and (
                any(words in lowered for words in _CONFIG_FAILURES)
                or _CONFIG_FAILURE_PATTERN.search(lowered)
            ):
                return InvalidArgumentError(f"{text} (check the DSN)")
            return RetryableError(text)
        if isinstance(exc, psycopg.IntegrityError):
            return ConflictError(text)
        if isinstance(exc, psycopg.DataError):
            return InvalidArgumentError(text)
        if isinstance(exc, psycopg.ProgrammingError) and sqlstate is None:
            return InvalidArgumentError(text)  # e.g. a DSN psycopg cannot use
        return SchedulerError(text)

    # -- worker-thread side -------------------------------------------------------------

    def _run_in_thread(
        self,
        fn: Callable[[Connection], T],
        undo: Callable[[Connection], None] | None,
        flight: _Flight,
    ) -> T:
        try:
            if self._closed:
                raise ClosedError(f"{self._what} ({self.url}) is closed")
            conn = self._pool.checkout()
            with flight.lock:
                if flight.abandoned:
                    # P3: nobody waits for the answer and nothing was sent yet: send nothing.
                    self._pool.checkin(conn, None)
                    raise _Abandoned()  # delivered to nobody: the caller has gone
                flight.sent = True
            return self._run_on(conn, fn)
        finally:
            with flight.lock:
                flight.finished = True
                run_undo = flight.abandoned and flight.sent
            if run_undo and undo is not None:
                self._run_undo(undo)

    def _run_on(self, conn: Connection, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` under the watchdog; the connection goes back to the pool after."""
        watch = _Watch(conn, time.monotonic() + self._watchdog_after)
        with self._lock:
            if self._closed:
                conn.close()
                raise ClosedError(f"{self._what} ({self.url}) is closed")
            self._watches.add(watch)
            self._start_reaper()
        try:
            result = fn(conn)
        except BaseException as exc:
            with self._lock:
                self._watches.discard(watch)
            self._pool.checkin(conn, exc)
            if watch.interrupted and isinstance(exc, psycopg.Error):
                raise _Interrupted() from exc
            raise
        with self._lock:
            self._watches.discard(watch)
        self._pool.checkin(conn, None)
        return result

    def open_dedicated(self) -> Connection:
        """A new connection outside the pool, with this driver's settings (P1, P2), for a
        caller that keeps it for itself (a LISTEN connection). Blocking: call it in a
        worker thread. The caller owns it and closes it; `close` does not."""
        self.check_open()
        return self._pool.connect()

    def _start_reaper(self) -> None:
        """Start the watchdog thread once (called with ``self._lock`` held)."""
        if self._reaper is None:
            self._reaper = threading.Thread(
                target=self._reap, name=f"trio-sched {self._what} watchdog", daemon=True
            )
            self._reaper.start()

    def _reap(self) -> None:
        tick = min(0.1, self._watchdog_after / 4)
        while not self._stop.wait(tick):
            now = time.monotonic()
            with self._lock:
                for watch in self._watches:
                    if not watch.interrupted and now >= watch.deadline:
                        watch.interrupted = True
                        self._interrupted += 1
                        _shutdown_socket(watch.conn)

    # -- undo (P3) -----------------------------------------------------------------------

    def _abandon(self, flight: _Flight, undo: Callable[[Connection], None] | None) -> None:
        with flight.lock:
            flight.abandoned = True
            finished = flight.finished
            sent = flight.sent
        with self._lock:
            self._abandoned += 1
        # The thread finished but its result never reached us: nobody will undo it but us.
        if finished and sent and undo is not None:
            self._undo_in_background(undo)

    def _undo_in_background(self, undo: Callable[[Connection], None]) -> None:
        trio.lowlevel.start_thread_soon(lambda: self._run_undo(undo), _ignore_outcome)

    def _run_undo(self, undo: Callable[[Connection], None]) -> None:
        """Run a compensation in the current (worker) thread; never raises."""
        if self._closed:
            return  # P3: after close the locks end by their TTL
        try:
            conn = self._pool.checkout()
            self._run_on(conn, undo)
        except BaseException as exc:
            with self._lock:
                self._undo_failures += 1
            _log.warning(
                "%s (%s): compensating release failed, the lock ends by its TTL: %s",
                self._what,
                self.url,
                self.scrub(f"{type(exc).__name__}: {exc}"),
            )
        else:
            with self._lock:
                self._undos += 1

    def _leaks(self, exc: BaseException) -> bool:
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            text = str(current)
            if any(secret in text for secret in self._secrets):
                return True
            current = current.__cause__ or current.__context__
        return False


def _ambiguous(exc: BaseException) -> bool:
    """Whether a statement that failed this way may still have committed (P3)."""
    return isinstance(exc, _Interrupted | psycopg.OperationalError | psycopg.InterfaceError)


def _shutdown_socket(conn: Connection) -> None:
    """Shut the connection's socket down without closing its descriptor.

    Safe from another thread: the thread blocked on the socket wakes with an error,
    and the descriptor stays valid until its owner closes the connection.
    """
    try:
        fd = conn.pgconn.socket
        sock = socket.socket(fileno=os.dup(fd))
    except (OSError, psycopg.Error):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def _ignore_outcome(outcome: object) -> None:
    """`start_thread_soon` callback: `_run_undo` never raises, nothing to report."""
