"""Shared Redis plumbing: URL redaction, error mapping, and the thread-backed driver.

Imported only by the Redis backends (``trio_sched.locks.redis`` and later the Redis
jobs runtime); importing it imports redis-py. ``import trio_sched`` never does.

Rules:
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
- R5 A URL's password never appears in a message, a log record or a ``repr``: messages
  name the URL through `redact_url`, and driver messages are scrubbed of the password.
- R6 Configuration is checked when the config is built, by parsing alone (`check_redis_url`,
  `check_prefix`), so a mistake raises `ValidationError` at once instead of a
  `RetryableError` retried forever: the port must be 1-65535; the database index (the
  path, or ``?db=``) an int >= 0; every query option one redis-py knows for the scheme,
  with a valid value; ``protocol`` only 2; the options the driver sets itself
  (``socket_timeout``, ``socket_connect_timeout``, ``max_connections``,
  ``retry_on_timeout``, ``retry_on_error``, ``decode_responses``) are refused. What
  only the server can tell is classified at first use: an index beyond its
  ``databases`` is `InvalidArgumentError` (R4), a refused connection, a timeout or an
  unresolvable host stays `RetryableError`.
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
- R8 Data loss is detected by an *epoch* sentinel per key space: a string key, no
  expiry, ``{born}:{lost}:{id}`` (``born``: the server's epoch ms when it was created;
  ``lost``: ``1`` once a client found it replacing one it knew; ``id``: the creating
  client's random id). The backend's scripts read it (`EPOCH_LUA`, one GET) in the same
  atomic step as their work, creating it when missing, and compare it with the one the
  client remembers (`EpochWatch`): a different ``{born}:{id}`` means the server lost
  the key space since (restarted without persistence, flushed, keys deleted). That
  script then changes nothing but the sentinel's ``lost`` flag and answers the new
  epoch; the client logs the loss once (error), counts it and raises `DataLossError`
  with ``detected_at`` = ``born``. A client's first call adopts whatever it finds, so a
  loss before a client's first call, or in the middle of it, is not seen by that
  client. A partial loss (an RDB snapshot or a shorter AOF restored, a failover to a
  lagging replica) keeps the old sentinel: the lock provider sees it only when its
  fencing counter turns out behind a token the client already got (the ``behind``
  argument; it then renews the sentinel, born now), the jobs runtime not at all.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.exceptions as rex
import trio
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from trio_sched._errors import (
    ClosedError,
    ConflictError,
    DataLossError,
    InvalidArgumentError,
    RetryableError,
    SchedulerError,
    ValidationError,
)

__all__ = [
    "EPOCH_LUA",
    "Detection",
    "DriverStatistics",
    "Epoch",
    "EpochWatch",
    "RedisDriver",
    "RedisScript",
    "check_flag",
    "check_prefix",
    "check_redis_url",
    "redact_url",
]

T = TypeVar("T")

_SCHEMES: Final = ("redis", "rediss", "unix")
_REDACTED: Final = "***"
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

# R6: query options the driver sets itself. From a URL they would win over the driver's
# values (redis-py lets query options override keyword arguments) and break R1 or R2.
_DRIVER_OPTIONS: Final = {
    "socket_timeout": "operation_timeout bounds every socket (R2); set that instead",
    "socket_connect_timeout": "operation_timeout bounds every socket (R2); set that instead",
    "max_connections": "the config's max_connections sizes the pool (R1); set that instead",
    "retry_on_timeout": "the driver never retries a command itself (R1)",
    "retry_on_error": "the driver never retries a command itself (R1)",
    "decode_responses": "the driver decodes every reply itself",
}
# Special in SCAN MATCH / KEYS patterns (the backslash escapes): never in a prefix.
_GLOB_CHARS: Final = ("*", "?", "[", "]", "\\")
_DB_PATH: Final = re.compile(r"/([0-9]+)/?")
_UNEXPECTED_ARGUMENT: Final = re.compile(r"unexpected keyword argument '([^']*)'")
# A server with fewer databases than the URL's index: no retry helps.
_DB_OUT_OF_RANGE: Final = "DB index is out of range"

_log = logging.getLogger("trio_sched.redis")

# R7: the settings a persistence check reads, in this order.
_PERSISTENCE_SETTINGS: Final = ("appendonly", "appendfsync", "save")
_PERSISTENCE_ADVICE: Final = (
    "exactly-once and no lost jobs need appendonly yes with appendfsync everysec or always"
)


def redact_url(url: str) -> str:
    """`url` with its password (userinfo or ``?password=`` query) replaced by ``***``.

    ``redis://user:secret@host:6379/0`` -> ``redis://user:***@host:6379/0``. A text that
    does not parse as a URL is replaced whole, since it cannot be shown safely.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
        netloc = parts.netloc
    except ValueError:
        return "<unparsable redis url>"
    if password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{_REDACTED}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() == "password" for name, _ in pairs):
            query = urlencode(
                [(n, _REDACTED if n.lower() == "password" else v) for n, v in pairs],
                safe="*",
            )
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret; urlunsplit would also drop an empty "//" authority
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets_of(url: str) -> tuple[str, ...]:
    """Password spellings that must never leak: raw, percent-decoded and re-quoted."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        raw = parts.netloc.rpartition("@")[0].partition(":")[2] if "@" in parts.netloc else ""
        if raw:
            found.update({raw, unquote(raw), quote(unquote(raw), safe="")})
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name.lower() == "password" and value:
                found.update({value, quote(value, safe="")})
    except ValueError:
        pass
    return tuple(sorted(found, key=len, reverse=True))


def check_redis_url(url: object) -> str:
    """Validate a Redis URL as far as parsing can (rule R6); raise `ValidationError`.

    Checks the scheme, the port (1-65535), the database index (the path of a
    ``redis://`` or ``rediss://`` URL, or ``?db=``: an int >= 0) and the query options:
    each must be one redis-py accepts for the scheme, with a value of the right type,
    and none may override what the driver sets itself (`_DRIVER_OPTIONS`, ``protocol``
    other than 2). No I/O. Messages show the URL redacted (R5).
    """
    if not isinstance(url, str) or not url:
        raise ValidationError("url: expected a non-empty str", field="url")
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a port that is not 0-65535
    except ValueError:
        raise ValidationError(
            f"url: cannot parse {shown!r} (is the port a number from 1 to 65535?)", field="url"
        ) from None  # the original message may quote the URL, password included
    if parts.scheme not in _SCHEMES:
        raise ValidationError(
            f"url: scheme must be one of {', '.join(_SCHEMES)}, got {shown!r}", field="url"
        )
    if port == 0:
        # redis-py would silently use 6379 instead.
        raise ValidationError(f"url: port must be from 1 to 65535, got 0 in {shown!r}", field="url")
    try:
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ValidationError(
            f"url: {_scrub_url_text(url, str(exc))} ({shown})", field="url"
        ) from None
    path_db = _path_db(parts.scheme, unquote(parts.path), shown)
    if "db" in options:
        db = options["db"]
        if db < 0:
            raise ValidationError(
                f"url: db must be an int >= 0, got {db} in {shown!r}", field="url"
            )
        if path_db is not None and path_db != db:
            raise ValidationError(
                f"url: the path names db {path_db} and ?db= names db {db} in {shown!r}",
                field="url",
            )
    for name, why in _DRIVER_OPTIONS.items():
        if name in options:
            raise ValidationError(
                f"url: query option {name!r} is not allowed: {why} ({shown})", field="url"
            )
    if options.get("protocol", 2) != 2:
        raise ValidationError(
            f"url: protocol={options['protocol']} is not supported: trio-sched speaks RESP2 "
            f"(protocol=2) to every server; remove the option ({shown})",
            field="url",
        )
    connection_class = options.pop("connection_class", redis.Connection)
    try:
        # No I/O (a connection connects on first use): this is how an option redis-py
        # does not know for this scheme (a typo, ``ssl_*`` on redis://) or a value its
        # connection class refuses surfaces now instead of at the first call.
        connection_class(**options)
    except TypeError as exc:
        unknown = _UNEXPECTED_ARGUMENT.search(str(exc))
        name = unknown.group(1) if unknown else "?"
        raise ValidationError(
            f"url: query option {name!r} is not a redis-py option for {parts.scheme}:// ({shown})",
            field="url",
        ) from None
    except (ValueError, rex.RedisError) as exc:
        raise ValidationError(
            f"url: {_scrub_url_text(url, str(exc))} ({shown})", field="url"
        ) from None
    return url


def check_prefix(prefix: object) -> str:
    """Validate a key prefix (rule R6); raise `ValidationError`.

    Non-empty, printable, without whitespace and without the glob characters of Redis'
    ``SCAN MATCH``/``KEYS`` patterns (``* ? [ ] \\``), so ``{prefix}:*`` finds exactly
    the keys under it and an operator can type it in ``redis-cli``. Colons, dashes,
    dots, letters, digits and other punctuation are fine (``trio-sched:test:1f2e``).
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValidationError("prefix: expected a non-empty str", field="prefix")
    for char in prefix:
        if char.isspace() or not char.isprintable():
            raise ValidationError(
                f"prefix: {prefix!r} holds whitespace or a control character ({char!r}); "
                "use letters, digits and punctuation such as ':' '-' '_' '.'",
                field="prefix",
                token=prefix,
            )
        if char in _GLOB_CHARS:
            raise ValidationError(
                f"prefix: {prefix!r} holds {char!r}, a glob character of Redis key patterns "
                f"({' '.join(_GLOB_CHARS)}); use letters, digits and punctuation such as "
                "':' '-' '_' '.'",
                field="prefix",
                token=prefix,
            )
    return prefix


def _path_db(scheme: str, path: str, shown: str) -> int | None:
    """The database index named by a ``redis://``/``rediss://`` URL's path, or None.

    redis-py reads ``/abc`` or ``/-1`` as "no index" and silently uses db 0 (or sends
    ``SELECT -1``); R6 refuses them. A ``unix://`` URL's path is the socket's.
    """
    if scheme == "unix" or path in ("", "/"):
        return None
    match = _DB_PATH.fullmatch(path)
    if match is None:
        raise ValidationError(
            f"url: the path must be a database index (an int >= 0), got {path!r} in {shown!r}",
            field="url",
        )
    return int(match.group(1))


def _scrub_url_text(url: str, text: str) -> str:
    for secret in _secrets_of(url):
        text = text.replace(secret, _REDACTED)
    return text


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
        self._secrets = _secrets_of(url)
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
            text = text.replace(secret, _REDACTED)
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


# R8: the epoch sentinel, checked by a script in the same atomic step as its work.
# `epoch_check(key, remembered, creator, now_ms, behind)` answers the sentinel's value,
# whether it replaced the `remembered` '{born}:{id}' ('' when the client knows none; its
# lost flag is set then), its born ms and whether it is flagged lost. `behind` (optional)
# says the caller found the data older than the client knows it (a rollback): the
# sentinel is then replaced by a new one, born now and flagged lost, and reported
# replaced. For a key holding foreign data it answers false, true and nothing else (GET
# through pcall: another type answers an error instead of stopping the script), and the
# caller changes nothing.
EPOCH_LUA: Final = """
local function epoch_check(key, remembered, creator, now_ms, behind)
  local value = redis.pcall('GET', key)
  if value == false then
    value = string.format('%d:0:%s', now_ms, creator)
    redis.call('SET', key, value)
  elseif type(value) ~= 'string' then
    return false, true
  end
  local born, lost, id = string.match(value, '^(%d+):([01]):(.+)$')
  if not born then
    return false, true
  end
  if remembered ~= '' and remembered ~= born .. ':' .. id then
    if lost == '0' then
      value = born .. ':1:' .. id
      redis.call('SET', key, value)
    end
    return value, true, tonumber(born), true
  end
  if behind then
    value = string.format('%d:1:%s', now_ms, creator)
    redis.call('SET', key, value)
    return value, true, now_ms, true
  end
  return value, false, tonumber(born), lost == '1'
end
"""


@final
@dataclass(frozen=True, slots=True)
class Epoch:
    """A parsed epoch sentinel (R8): `born` in server epoch ms, whether a client found
    it replacing one it knew (`lost`), and its identity ``{born}:{id}``."""

    born: int
    lost: bool
    identity: str

    @property
    def born_at(self) -> datetime:
        return datetime.fromtimestamp(self.born / 1000, UTC)


@final
@dataclass(frozen=True, slots=True)
class Detection:
    """A data loss one call found (R8): the new `epoch`, the identity the call's client
    knew, and whether this call is the first of its client to report that epoch."""

    epoch: Epoch
    knew: str
    first: bool


@final
class EpochWatch:
    """What one client remembers of its key space's epoch sentinel (R8).

    `args` are the two script arguments (the remembered identity, '' for none, and this
    client's creator id), taken before the call; `adopt` and `detect` take the
    sentinel a script answered: the first epoch a client sees is adopted, and so is
    the new one of a detection.
    """

    __slots__ = ("_creator", "_key", "_remembered", "_what", "detections")

    def __init__(self, key: str, what: str) -> None:
        self._key = key
        self._what = what
        self._creator = secrets.token_hex(8)
        self._remembered = ""
        self.detections = 0

    @property
    def key(self) -> str:
        return self._key

    def args(self) -> tuple[str, str]:
        return self._remembered, self._creator

    def parse(self, value: object) -> Epoch:
        """The sentinel a script answered; `ConflictError` for foreign data (false)."""
        if not isinstance(value, str) or value.count(":") < 2:
            raise ConflictError(
                f"{self._what}: the epoch key {self._key!r} holds foreign data "
                "(a key under the prefix holds a value trio-sched did not write)"
            )
        born, lost, ident = value.split(":", 2)
        return Epoch(int(born), lost == "1", f"{born}:{ident}")

    def adopt(self, value: object) -> Epoch:
        """A script found `value` and it replaced nothing: remember it if it is the
        first epoch this client sees."""
        epoch = self.parse(value)
        if not self._remembered:
            self._remembered = epoch.identity
        return epoch

    def detect(self, value: object, knew: str) -> Detection:
        """A script found `value` replacing `knew`, the identity the call sent."""
        epoch = self.parse(value)
        first = epoch.identity != self._remembered  # else a concurrent call reported it
        if first:
            self._remembered = epoch.identity
            self.detections += 1
        return Detection(epoch, knew, first)

    def error(self, detection: Detection, consequence: str, **fields: Any) -> DataLossError:
        """The `DataLossError` of `detection`, logged (error) when it is the first."""
        epoch = detection.epoch
        message = (
            f"{self._what}: the server lost this key space's data: its epoch sentinel "
            f"{self._key!r} is {epoch.identity!r}, born {epoch.born_at.isoformat()} "
            f"(server clock), where this client knew {detection.knew!r}; {consequence}"
        )
        if detection.first:
            _log.error("%s", message)
        return DataLossError(message, detected_at=epoch.born_at, **fields)


def _ignore_outcome(outcome: object) -> None:
    """`start_thread_soon` callback: `_run_undo` never raises, nothing to report."""


def check_flag(name: str, value: object) -> bool:
    """A bool (not merely truthy), else `ValidationError`."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name}: expected True or False, got {value!r}", field=name)
    return value


def check_timeout(name: str, value: object) -> float:
    """A finite number of seconds > 0 (bools refused), else `ValidationError`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name}: expected seconds, got {value!r}", field=name)
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(f"{name}: must be finite seconds > 0, got {value!r}", field=name)
    return float(value)
