"""`RedisDriver`: a redis-py connection pool driven from Trio (rules R1-R4 and R7).

Imported only by the Redis backends; importing it imports redis-py. ``import trio_sched``
never does. URLs are checked and redacted by `trio_sched._redis_common` (R5, R6), the
epoch sentinel of a key space is `trio_sched._redis_epoch` (R8).

Rules (R5, R6 and R8 are in those modules):
- R1 Driver: the *sync* redis-py client runs in worker threads through
  `trio.to_thread.run_sync` with one `trio.CapacityLimiter` per driver
  (``max_connections``), so at most that many commands are in flight and the pool holds
  about that many connections. redis-py's own retries are off (``Retry(NoBackoff(), 0)``):
  a retry hidden in the driver could re-run a write whose first reply was lost, and would
  break the time bound of R2. Retrying is the caller's decision (the runtime's D8).
- R2 Every call is bounded by ``operation_timeout`` twice over: the sockets carry it as
  ``socket_timeout``/``socket_connect_timeout`` (so a worker thread never hangs), and the
  Trio side waits at most that long, waiting for a limiter slot included, then raises
  `RetryableError`. A call therefore returns within ``operation_timeout`` (plus
  scheduling noise) whatever the server does. The deadline is on Trio's clock, so under
  `trio.testing.MockClock` with autojump it passes at once (a thread is idle time to
  the autojump): run code using a driver on a real clock. One driver belongs to one
  Trio run (its `trio.CapacityLimiter` does).
- R3 Cancellation is prompt: threads run with ``abandon_on_cancel=True``. An abandoned
  thread (caller cancelled, or the Trio-side deadline of R2 passed) runs to its own
  socket timeout at most; it then runs the call's *undo* if it has one. An undo is a
  token-checked compensation (a lock release by the token the caller generated), so it
  is safe whether or not the abandoned command reached the server, and it never touches
  state someone else owns. The same undo runs in the background when the call fails with
  a connection or timeout error, since the command may have run and only its reply been
  lost. After `RedisDriver.close` no undo runs: whatever it would have released ends by
  its TTL.
- R4 Errors are mapped at the boundary and chained (``raise ... from exc``): connection
  trouble, timeouts and transient server states (LOADING, READONLY, OOM, BUSY, TRYAGAIN,
  MASTERDOWN, MISCONF) -> `RetryableError`; rejected credentials or permissions and
  malformed arguments, a db index the server does not have -> `InvalidArgumentError`;
  a key holding another type (WRONGTYPE) -> `ConflictError`; any other Redis error ->
  `SchedulerError`. A call racing ``close`` raises `ClosedError`.
- R7 Persistence is checked at first use: the first call of a driver first sends
  ``CONFIG GET appendonly``, ``appendfsync`` and ``save`` (one pipelined round trip, in
  that call's worker thread before its own command, so within the same
  ``operation_timeout``; concurrent first calls wait for one check). Exactly-once and
  no lost jobs need the append-only file with ``appendfsync always`` or ``everysec``;
  anything else is logged once as a warning naming what a restart loses: no
  persistence at all (everything), RDB snapshots only (the writes since the last
  snapshot, a loss R8 sees only in part), ``appendfsync no`` (what the kernel had not
  flushed, on an OS crash or power loss; seen only in part too). A server refusing
  ``CONFIG`` (an ACL, a renamed command: managed services) is logged as "could not be
  checked". With ``require_persistence`` each of those is an `InvalidArgumentError`
  instead, raised by every call before its command (each re-checks, so fixing the
  server with ``CONFIG SET`` is picked up) until a check passes. A connection failure
  during the check is the call's own `RetryableError`. After a data loss (R8) the next
  call checks again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar, final

import redis
import redis.exceptions as rex
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from trio_sched._errors import (
    ClosedError,
    ConflictError,
    InvalidArgumentError,
    RetryableError,
    SchedulerError,
    ValidationError,
)
from trio_sched._redis_common import REDACTED, check_redis_url, redact_url, secrets_of

__all__ = ["DriverStatistics", "RedisDriver", "RedisScript", "error_code"]

T = TypeVar("T")

# Error prefixes of server states that pass (failover, loading, a long script, memory
# pressure, a failed background save): retrying later is the right answer. Matched by
# prefix because older redis-py versions lack some classes (OutOfMemoryError).
_TRANSIENT_CODES: Final = frozenset(("BUSY", "TRYAGAIN", "MASTERDOWN", "MISCONF", "LOADING", "OOM"))
# Redis before 7 wraps an error raised inside a script: "Error running script (call to
# f_...): @user_script:12: WRONGTYPE Operation against ..." (7 and later put the code
# first, "WRONGTYPE Operation ... script: ..."). The code is what the error *is*.
_SCRIPT_ERROR: Final = re.compile(r"@user_script:\d+: -?([A-Z][A-Z_]*)\b")
_RETRYABLE: Final = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.ReadOnlyError,
    rex.TryAgainError,
    rex.ClusterDownError,
    TimeoutError,
    OSError,
)
_CREDENTIALS: Final = (
    rex.AuthenticationError,
    rex.AuthorizationError,
    rex.NoPermissionError,
    rex.AuthenticationWrongNumberOfArgsError,
)
# Failures after which a command may have run although its reply never arrived.
_AMBIGUOUS: Final = (rex.ConnectionError, rex.TimeoutError, TimeoutError, OSError)
# A server with fewer databases than the URL's index: no retry helps.
_DB_OUT_OF_RANGE: Final = "DB index is out of range"

_log = logging.getLogger("trio_sched.redis")

# R7: the settings a persistence check reads, in this order.
_PERSISTENCE_SETTINGS: Final = ("appendonly", "appendfsync", "save")
_PERSISTENCE_ADVICE: Final = (
    "exactly-once and no lost jobs need appendonly yes with appendfsync everysec or always"
)


@final
@dataclass(frozen=True, slots=True)
class DriverStatistics:
    """Counters of one `RedisDriver`.

    `round_trips` counts commands or scripts sent (one per call, plus a script's EVAL
    after a NOSCRIPT), `failures` calls that raised a mapped error, `timeouts` calls the
    Trio-side deadline ended, `abandoned` calls given up (cancelled or timed out) before
    their answer arrived, `undos` compensations that ran and `undo_failures` those that
    failed (their locks end by TTL). `in_flight` counts calls awaiting a worker thread.
    """

    round_trips: int
    failures: int
    timeouts: int
    abandoned: int
    undos: int
    undo_failures: int
    in_flight: int


def error_code(message: str) -> str:
    """The Redis error code of a reply's `message` (``WRONGTYPE``, ``BUSY``, ...), the
    same on every server version: the first word, or for an error raised inside a
    script on Redis 6 the code after its ``@user_script:N:`` location."""
    match = _SCRIPT_ERROR.search(message)
    if match is not None:
        return match.group(1)
    first = message.split(maxsplit=1)
    return first[0] if first else ""


@final
class RedisScript:
    """A Lua script run with EVALSHA, falling back to EVAL when the server lacks it.

    One round trip normally; two only for the first call after the server lost its
    script cache (restart, SCRIPT FLUSH). The EVAL also caches it again.
    """

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def run(
        self, driver: RedisDriver, client: redis.Redis, keys: list[str], args: list[str]
    ) -> object:
        """Run the script (in a worker thread, through `RedisDriver.call`)."""
        driver.count_round_trip()
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except rex.NoScriptError:
            driver.count_round_trip()
            return client.eval(self.source, len(keys), *keys, *args)


@final
class _Flight:
    """Hand-over state between the Trio side and one worker thread (rule R3)."""

    __slots__ = ("abandoned", "finished", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.finished = False


@final
class RedisDriver:
    """A redis-py connection pool driven from Trio through worker threads (R1-R5).

    `what` names the owner in error messages (``"redis lock provider"``). No I/O happens
    here: connections open on first use.
    """

    def __init__(
        self,
        url: str,
        *,
        operation_timeout: float,
        max_connections: int,
        what: str,
        require_persistence: bool = False,
    ) -> None:
        check_redis_url(url)
        self.url = redact_url(url)
        self.operation_timeout = operation_timeout
        self._what = what
        self._require_persistence = require_persistence
        self._persistence_checked = False
        self._persistence_lock = threading.Lock()
        self._secrets = secrets_of(url)
        try:
            self._pool = redis.ConnectionPool.from_url(
                url,
                socket_timeout=operation_timeout,
                socket_connect_timeout=operation_timeout,
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
                # RESP2: the default of redis-py < 8 and of every server version; one
                # reply shape for our scripts whatever the installed redis-py.
                protocol=2,
            )
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                f"url: {self._scrub(str(exc))} ({self.url})", field="url"
            ) from None  # the original may quote the password
        self.client = redis.Redis(connection_pool=self._pool)
        self._limiter = trio.CapacityLimiter(max_connections)
        self._closed = False
        self._stats_lock = threading.Lock()
        self._round_trips = 0
        self._failures = 0
        self._timeouts = 0
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

    def count_round_trip(self) -> None:
        with self._stats_lock:
            self._round_trips += 1

    async def call(
        self,
        fn: Callable[[redis.Redis], T],
        *,
        undo: Callable[[redis.Redis], None] | None = None,
    ) -> T:
        """Run ``fn(client)`` in a worker thread, bounded by ``operation_timeout`` (R2).

        A checkpoint. On cancellation the thread is abandoned and `undo` (if given) runs
        once it finishes (R3). Raises mapped errors (R4), `ClosedError` when closed, and
        any other exception of `fn` (a bug, not a driver error) unchanged. The first
        call checks the server's persistence first (R7).
        """
        self.check_open()
        flight = _Flight()

        def work() -> T:
            try:
                if self._closed:
                    raise ClosedError(f"{self._what} ({self.url}) is closed")
                if not self._persistence_checked:
                    self._check_persistence(self.client)
                return fn(self.client)
            finally:
                with flight.lock:
                    flight.finished = True
                    run_undo = flight.abandoned
                if run_undo and undo is not None:
                    self._run_undo(undo)

        self._in_flight += 1
        try:
            with trio.move_on_after(self.operation_timeout) as deadline:
                try:
                    return await trio.to_thread.run_sync(
                        work, abandon_on_cancel=True, limiter=self._limiter
                    )
                except trio.Cancelled:
                    self._abandon(flight, undo)
                    raise
                except ClosedError:
                    raise
                except Exception as exc:
                    if self._closed:
                        # `close` shut the socket under the thread: redis-py then fails
                        # in many ways, some not RedisError (ValueError on a closed file).
                        raise ClosedError(
                            f"{self._what} ({self.url}) was closed during the call"
                        ) from exc
                    if not isinstance(exc, rex.RedisError | OSError):
                        raise  # a bug, not a driver error
                    if undo is not None and isinstance(exc, _AMBIGUOUS):
                        self._undo_in_background(undo)
                    raise self.map_error(exc) from exc
        finally:
            self._in_flight -= 1
        # Only reached when the deadline cancelled the call (a return or raise above
        # leaves earlier).
        assert deadline.cancelled_caught
        with self._stats_lock:
            self._timeouts += 1
            self._failures += 1
        raise RetryableError(
            f"{self._what} ({self.url}): no answer within "
            f"operation_timeout={self.operation_timeout:g}s"
        )

    def recheck_persistence(self) -> None:
        """Check persistence again at the next call (R7: after a data loss, R8)."""
        self._persistence_checked = False

    def _check_persistence(self, client: redis.Redis) -> None:
        """R7, in the first call's worker thread, before its own command (so both are
        bounded by that call's deadline); concurrent first calls wait for one check."""
        with self._persistence_lock:
            if self._persistence_checked:
                return
            self.count_round_trip()
            pipe = client.pipeline(transaction=False)
            for name in _PERSISTENCE_SETTINGS:
                pipe.config_get(name)
            # A refused CONFIG comes back in place, as an exception.
            problem = self._persistence_problem(pipe.execute(raise_on_error=False))
            if problem is not None and self._require_persistence:
                raise InvalidArgumentError(
                    f"{problem} (require_persistence=True: fix the server, or set "
                    "require_persistence=False to run with a warning)"
                )
            self._persistence_checked = True
            if problem is not None:
                _log.warning("%s", problem)

    def _persistence_problem(self, replies: list[object]) -> str | None:
        """What the CONFIG GET replies say a restart would lose (R7), or None."""
        where = f"{self._what} ({self.url})"
        settings: dict[str, str] = {}
        for name, reply in zip(_PERSISTENCE_SETTINGS, replies, strict=True):
            if isinstance(reply, Exception):
                if isinstance(reply, _AMBIGUOUS):
                    raise reply  # mapped by `call` (R4) like the call's own failure
                text = self._scrub(f"{type(reply).__name__}: {reply}")
                return (
                    f"{where}: the server's persistence could not be checked: CONFIG GET "
                    f"{name} was refused ({text}); {_PERSISTENCE_ADVICE} (docs/backends.md)"
                )
            value = reply.get(name) if isinstance(reply, dict) else None
            settings[name] = value if isinstance(value, str) else ""
        aof = settings["appendonly"] == "yes"
        fsync = settings["appendfsync"]
        save = settings["save"].strip()
        advice = _PERSISTENCE_ADVICE
        if aof and fsync in ("everysec", "always"):
            _log.debug("%s: persistence: appendonly yes, appendfsync %s", where, fsync)
            return None
        if aof:
            return (
                f"{where}: the server runs appendonly yes with appendfsync {fsync}: an OS crash "
                "or power loss loses the writes the kernel had not flushed yet (up to about "
                f"30 s), a loss detected only in part; {advice} (docs/backends.md)"
            )
        if save:
            return (
                f"{where}: the server persists by RDB snapshots only (save {save!r}): a restart "
                "loses the writes since the last snapshot, a loss detected only in part; "
                f"{advice} (docs/backends.md)"
            )
        return (
            f"{where}: the server has no persistence (appendonly no, save ''): a restart "
            "loses every lock, watermark and queued job (the loss is detected and reported, "
            f"but not undone); {advice} (docs/backends.md)"
        )

    def close(self) -> None:
        """Close every pooled connection, in use or idle; later calls raise `ClosedError`.

        Idempotent and non-blocking (sockets are shut down, not drained). A worker thread
        still running gets a connection error, reported as `ClosedError`.
        """
        if self._closed:
            return
        self._closed = True
        self._pool.disconnect(inuse_connections=True)

    def statistics(self) -> DriverStatistics:
        with self._stats_lock:
            return DriverStatistics(
                round_trips=self._round_trips,
                failures=self._failures,
                timeouts=self._timeouts,
                abandoned=self._abandoned,
                undos=self._undos,
                undo_failures=self._undo_failures,
                in_flight=self._in_flight,
            )

    def map_error(self, exc: BaseException) -> SchedulerError:
        """The `SchedulerError` for a driver exception (R4); the caller chains it."""
        if isinstance(exc, SchedulerError):
            return exc
        with self._stats_lock:
            self._failures += 1
        text = f"{self._what} ({self.url}): {type(exc).__name__}: {self._scrub(str(exc))}"
        if self._closed:
            return ClosedError(f"{self._what} ({self.url}) was closed during the call")
        if isinstance(exc, _CREDENTIALS):
            return InvalidArgumentError(f"{text} (check the URL's credentials)")
        if isinstance(exc, _RETRYABLE):
            return RetryableError(text)
        if isinstance(exc, rex.ResponseError):
            code = error_code(str(exc))
            if code in _TRANSIENT_CODES:
                return RetryableError(text)
            if code == "WRONGTYPE":
                return ConflictError(f"{text} (a key under the prefix holds foreign data)")
            if _DB_OUT_OF_RANGE in str(exc):
                return InvalidArgumentError(
                    f"{text} (the URL's db index is beyond the server's 'databases' setting)"
                )
            return SchedulerError(text)
        if isinstance(exc, rex.DataError):
            return InvalidArgumentError(text)
        return SchedulerError(text)

    # -- internals ---------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _abandon(self, flight: _Flight, undo: Callable[[redis.Redis], None] | None) -> None:
        with flight.lock:
            flight.abandoned = True
            finished = flight.finished
        with self._stats_lock:
            self._abandoned += 1
        # The thread finished but its result never reached us: nobody will undo it but us.
        if finished and undo is not None:
            self._undo_in_background(undo)

    def _undo_in_background(self, undo: Callable[[redis.Redis], None]) -> None:
        trio.lowlevel.start_thread_soon(lambda: self._run_undo(undo), _ignore_outcome)

    def _run_undo(self, undo: Callable[[redis.Redis], None]) -> None:
        """Run a compensation in the current (worker) thread; never raises."""
        if self._closed:
            return  # R3: after close the keys end by their TTL
        try:
            undo(self.client)
        except Exception as exc:
            with self._stats_lock:
                self._undo_failures += 1
            _log.warning(
                "%s (%s): compensating release failed, the lock ends by its TTL: %s",
                self._what,
                self.url,
                self._scrub(f"{type(exc).__name__}: {exc}"),
            )
        else:
            with self._stats_lock:
                self._undos += 1


def _ignore_outcome(outcome: object) -> None:
    """`start_thread_soon` callback: `_run_undo` never raises, nothing to report."""
