"""Shared Postgres plumbing: DSN redaction, identifiers, error mapping, the thread driver.

Imported only by the Postgres backends (``trio_sched.locks.postgres`` and later a
Postgres jobs runtime); importing it imports psycopg 3. ``import trio_sched`` never does.

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
- P5 A DSN's password never appears in a message, a log record or a ``repr``: the DSN is
  shown through `redact_dsn`, driver messages are scrubbed of every spelling of the
  password, and a driver exception whose text still holds it is not chained.
- P6 Table names are validated by a strict identifier pattern (optionally
  schema-qualified) and always reach SQL through `psycopg.sql.Identifier`, never as
  formatted text.
- P7 Configuration is checked when the config is built, by parsing alone (`check_dsn`),
  so a mistake raises `ValidationError` at once instead of a `RetryableError` retried
  forever: the DSN must parse (libpq refuses unknown options); ports must be numbers
  from 1 to 65535, one or one per host; ``hostaddr`` numeric addresses, one per host;
  ``sslmode``, ``gssencmode``, ``channel_binding``, ``sslcertmode``,
  ``sslnegotiation``, ``target_session_attrs`` and ``load_balance_hosts`` one of libpq's
  values; the keepalive and ``tcp_user_timeout`` options integers. What parsing cannot
  see (``PGPORT``/``PGSSLMODE`` in the environment, a service file, an unknown
  database) fails at first use and is classified by P4: libpq's "invalid ... value",
  "invalid port number" and the like are `InvalidArgumentError`; a refused
  connection, a timeout or an unresolvable host stay `RetryableError`.
- P8 Before creating its schema, under the same advisory lock, a backend checks each
  of its tables that already exists: a relation of that name that is not a table, or a
  table without the columns the backend uses (`TableShape`), raises `ConflictError`
  naming the table and what it looks like (another component's lock, watermark or jobs
  table) and creates nothing. So one table configured for both a lock provider and a
  jobs runtime fails at first use with a clear message, not with "column ... does not
  exist" later. Extra columns are allowed; column types are not checked.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import os
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, LiteralString, TypeAlias, TypeVar, final
from urllib.parse import quote, unquote

import trio

try:
    import psycopg
    import psycopg.errors
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "the Postgres backends need psycopg 3: pip install 'trio-sched[postgres]'"
    ) from exc
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from trio_sched._errors import (
    ClosedError,
    ConflictError,
    InvalidArgumentError,
    NotInitializedError,
    RetryableError,
    SchedulerError,
    ValidationError,
)

__all__ = [
    "JOBS_TABLE",
    "LOCK_TABLE",
    "WATERMARK_TABLE",
    "Connection",
    "PostgresDriver",
    "PostgresDriverStatistics",
    "TableName",
    "TableShape",
    "advisory_key",
    "check_timeout",
    "redact_dsn",
]

T = TypeVar("T")
Connection: TypeAlias = "psycopg.Connection[Any]"

_REDACTED: Final = "***"
# P6: one plain identifier part; the length cap leaves room for the derived names
# (``<table>_watermarks``, ``<table>_expires_at_idx``) within Postgres' 63-byte limit, so
# Postgres never truncates two derived names into one.
_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_URL_USERINFO: Final = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*):(?P<pw>[^@/?#]*)@"
)
_URL_QUERY_PW: Final = re.compile(r"(?P<head>[?&]password=)(?P<pw>[^&#]*)", re.IGNORECASE)
_KV_PW: Final = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:\\.|[^'\\])*'|[^\s']\S*)", re.IGNORECASE
)
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
# P7: the values libpq accepts for its enumerated options (its messages say the same).
_ENUM_OPTIONS: Final[dict[str, tuple[str, ...]]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "sslcertmode": ("disable", "allow", "require"),
    "sslnegotiation": ("postgres", "direct"),
    "target_session_attrs": (
        "any",
        "read-write",
        "read-only",
        "primary",
        "standby",
        "prefer-standby",
    ),
    "load_balance_hosts": ("disable", "random"),
}
_INT_OPTIONS: Final = (
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
)
_PORT: Final = re.compile(r"[0-9]{1,5}")
_INT: Final = re.compile(r"\s*[-+]?[0-9]+\s*")

_log = logging.getLogger("trio_sched.postgres")


# -- DSN redaction (P5) -------------------------------------------------------------------


def redact_dsn(dsn: str) -> str:
    """`dsn` (URL or ``key=value`` form) with every password replaced by ``***``.

    ``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``. When a
    spelling of the password survives the substitution (an odd DSN), the whole DSN is
    withheld, since it cannot be shown safely.
    """
    if _is_url(dsn):
        shown = _URL_USERINFO.sub(lambda m: f"{m['head']}:{_REDACTED}@", dsn, count=1)
        shown = _URL_QUERY_PW.sub(lambda m: f"{m['head']}{_REDACTED}", shown)
    else:
        shown = _KV_PW.sub(lambda m: f"{m['head']}{_REDACTED}", dsn)
    if any(secret in shown for secret in _secrets_of(dsn)):
        return "<postgres dsn withheld: it holds a password>"
    return shown


def _secrets_of(dsn: str) -> tuple[str, ...]:
    """Every spelling of the DSN's password(s): as written, decoded and re-quoted."""
    found: set[str] = set()
    patterns = (_URL_USERINFO, _URL_QUERY_PW) if _is_url(dsn) else (_KV_PW,)
    for pattern in patterns:
        for match in pattern.finditer(dsn):
            raw = match["pw"]
            if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
                raw = raw[1:-1]
                found.add(re.sub(r"\\(.)", r"\1", raw))
            found.update({raw, unquote(raw), quote(unquote(raw), safe="")})
    try:
        parsed = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        parsed = None
    if isinstance(parsed, str):
        found.add(parsed)
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def _is_url(dsn: str) -> bool:
    return dsn.startswith(("postgresql://", "postgres://"))


def check_dsn(dsn: object) -> str:
    """Validate `dsn` as far as parsing can (rule P7); raise `ValidationError`.

    It must parse as a libpq URL or ``key=value`` string (unknown options are refused
    there), its ports must be numbers from 1 to 65535, one or one per host, its
    ``hostaddr`` numeric addresses, one per host, its enumerated options
    (`_ENUM_OPTIONS`: ``sslmode`` ...) one of their values and its integer options
    integers. No I/O; messages show the DSN redacted (P5).
    """
    if not isinstance(dsn, str) or not dsn:
        raise ValidationError("url: expected a non-empty str", field="url")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        parsed = False
    else:
        parsed = True
    if not parsed:
        # The driver's message quotes the DSN, password included (P5): neither chained nor
        # kept as context (this raise is outside the except block).
        raise ValidationError(
            f"url: cannot parse {redact_dsn(dsn)!r} as a Postgres URL or DSN", field="url"
        )
    problem = _dsn_problem({k: str(v) for k, v in params.items() if v is not None})
    if problem is not None:
        raise ValidationError(f"url: {problem} in {redact_dsn(dsn)!r}", field="url")
    return dsn


def _dsn_problem(params: dict[str, str]) -> str | None:
    """What is wrong with parsed DSN `params` that libpq would refuse at every connection
    attempt (P7), or None. Only options that are not secret are quoted."""
    hosts = _list(params.get("host"))
    addrs = _list(params.get("hostaddr"))
    ports = _list(params.get("port"))
    for port in ports:
        if port and not (_PORT.fullmatch(port) and 1 <= int(port) <= 65535):
            return f"port must be a number from 1 to 65535, got {port!r}"
    for addr in addrs:
        if addr:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                return f"hostaddr must be numeric IP addresses (use host for names), got {addr!r}"
    if hosts and addrs and len(hosts) != len(addrs):
        return f"{len(hosts)} host names but {len(addrs)} hostaddr values"
    n_hosts = max(len(hosts), len(addrs), 1)
    if len(ports) > 1 and len(ports) != n_hosts:
        return f"{len(ports)} ports for {n_hosts} host(s): give one port, or one per host"
    for name, allowed in _ENUM_OPTIONS.items():
        value = params.get(name)
        if value is not None and value not in allowed:
            return f"{name} must be one of {', '.join(allowed)}, got {value!r}"
    for name in _INT_OPTIONS:
        value = params.get(name)
        if value is not None and not _INT.fullmatch(value):
            return f"{name} must be an integer, got {value!r}"
    return None


def _list(value: str | None) -> list[str]:
    """A libpq multi-host list (``a,b,c``), stripped; [] when absent or empty."""
    if not value:
        return []
    return [part.strip() for part in value.split(",")]


def check_timeout(name: str, value: object) -> float:
    """A finite number of seconds > 0 (bools refused), else `ValidationError`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name}: expected seconds, got {value!r}", field=name)
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(f"{name}: must be finite seconds > 0, got {value!r}", field=name)
    return float(value)


# -- identifiers (P6) -----------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class TableName:
    """A validated, optionally schema-qualified table name (rule P6).

    `parse` accepts ``name`` or ``schema.name``, each part matching
    ``[A-Za-z_][A-Za-z0-9_]{0,47}`` (ASCII only; the cap leaves room for the derived
    names within Postgres' 63 bytes); anything else (quotes, spaces, semicolons, NUL,
    dots beyond one) and the system schemas (``pg_*``, ``information_schema``) raise
    `ValidationError`. Names are quoted, so they are case-sensitive.
    """

    schema: str | None
    name: str

    @classmethod
    def parse(cls, text: object, *, field: str = "table") -> TableName:
        if not isinstance(text, str):
            raise ValidationError(f"{field}: expected a str, got {text!r}", field=field)
        parts = text.split(".")
        if len(parts) > 2 or not all(_IDENT.fullmatch(part) for part in parts):
            raise ValidationError(
                f"{field}: {text!r} is not a table name: expected 'name' or 'schema.name', "
                "each part a letter or '_' then up to 47 letters, digits or '_'",
                field=field,
                token=text,
            )
        if len(parts) == 2:
            if parts[0].startswith("pg_") or parts[0] == "information_schema":
                # pg_temp would give every connection a table of its own (no two
                # connections would ever see each other's locks); the others are system
                # schemas, where a CREATE fails or should not happen.
                raise ValidationError(
                    f"{field}: {text!r} names a system schema ({parts[0]!r}: pg_* and "
                    "information_schema are reserved); use a schema of your own or none",
                    field=field,
                    token=text,
                )
            return cls(schema=parts[0], name=parts[1])
        return cls(schema=None, name=parts[0])

    def identifier(self, suffix: str = "") -> sql.Identifier:
        """This table, or a sibling named ``<name><suffix>`` in the same schema."""
        if self.schema is None:
            return sql.Identifier(self.name + suffix)
        return sql.Identifier(self.schema, self.name + suffix)

    def local_identifier(self, suffix: str) -> sql.Identifier:
        """``<name><suffix>`` unqualified (an index name, created in the table's schema)."""
        return sql.Identifier(self.name + suffix)

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


@final
@dataclass(frozen=True, slots=True)
class TableShape:
    """The columns a table of one kind must have (rule P8): what the backend's statements
    use. `kind` names it in messages (``"trio-sched lock table"``), `setting` the
    configuration field that names it."""

    kind: str
    setting: str
    columns: frozenset[str]


LOCK_TABLE: Final = TableShape(
    "trio-sched lock table",
    "PostgresLockProviderConfig.table",
    frozenset(("key", "token", "fencing_token", "expires_at")),
)
WATERMARK_TABLE: Final = TableShape(
    "trio-sched watermark table",
    "PostgresLockProviderConfig.table (its <table>_watermarks)",
    frozenset(("name", "value")),
)
JOBS_TABLE: Final = TableShape(
    "trio-sched jobs table",
    "PostgresJobsConfig.table",
    frozenset(
        (
            "id",
            "queue",
            "name",
            "payload",
            "headers",
            "content_type",
            "tenant_id",
            "idempotency_key",
            "run_at",
            "created_at",
            "fencing_token",
            "attempt",
            "tries",
            "state",
            "lease_token",
            "leased_until",
            "available_at",
            "enqueued_at",
            "last_error",
            "failed_at",
            "dead_attempt",
            "finished_at",
        )
    ),
)
_RELKINDS: Final = {
    "v": "a view",
    "m": "a materialized view",
    "i": "an index",
    "I": "a partitioned index",
    "S": "a sequence",
    "f": "a foreign table",
    "c": "a composite type",
    "t": "a TOAST table",
}


def _looks_like(columns: frozenset[str]) -> str:
    """What a table with `columns` looks like, for a P8 message."""
    for shape in (JOBS_TABLE, LOCK_TABLE, WATERMARK_TABLE):
        if shape.columns <= columns:
            return f"it looks like a {shape.kind} (of {shape.setting})"
    shown = ", ".join(sorted(columns)[:8]) + (", ..." if len(columns) > 8 else "")
    return f"it is not a trio-sched table (its columns: {shown or 'none'})"


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` derived from `parts`."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def query(text: LiteralString, **identifiers: sql.Composable) -> sql.Composed:
    """``sql.SQL(text).format(**identifiers)``: SQL text with identifiers quoted (P6)."""
    return sql.SQL(text).format(**identifiers)


# -- the driver (P1-P5) ------------------------------------------------------------------


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
    happens here: connections open on first use. Rules P1-P5 above.
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
        self._dsn = dsn
        self._what = what
        self._secrets = _secrets_of(dsn)
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
        # P2: the server's statement_timeout should answer first; the watchdog is for a
        # server (or network) that answers nothing at all.
        self._watchdog_after = operation_timeout + max(0.25, operation_timeout / 4)
        self._limiter = trio.CapacityLimiter(max_connections)
        self._max_idle = max_connections
        self._lock = threading.Lock()  # guards the pool, the watches and the counters
        self._idle: list[Connection] = []
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
        self._connections_opened = 0

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
        row = self.execute(
            conn,
            "SELECT c.relkind::text, array_remove(array_agg(a.attname::text ORDER BY"
            " a.attnum), NULL) FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid ="
            " c.oid AND a.attnum > 0 AND NOT a.attisdropped WHERE c.oid = to_regclass(%s)"
            " GROUP BY c.relkind",
            (name,),
        ).fetchone()
        if row is None:
            return None  # not there yet: the statements create it
        relkind, found = str(row[0]), frozenset(row[1] or ())
        shown = f"{table}{suffix}"
        if relkind not in ("r", "p"):
            what = _RELKINDS.get(relkind, f"a relation of kind {relkind!r}")
            return (
                f"{shown!r} is {what}, not a table; the {shape.kind} needs a name of its "
                f"own ({shape.setting})"
            )
        missing = shape.columns - found
        if not missing:
            return None
        named = sorted(missing)
        lacks = ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
        return (
            f"table {shown!r} exists but is not a {shape.kind}: it lacks the column(s) "
            f"{lacks}; {_looks_like(found)}. Each trio-sched lock "
            f"provider and jobs runtime needs a table of its own: give {shape.setting} a "
            "name no other component uses"
        )

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
            idle, self._idle = self._idle, []
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
                connections_opened=self._connections_opened,
                idle_connections=len(self._idle),
            )

    def scrub(self, text: str) -> str:
        """`text` with every spelling of the DSN's password replaced (P5)."""
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
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
            conn = self._checkout()
            with flight.lock:
                if flight.abandoned:
                    # P3: nobody waits for the answer and nothing was sent yet: send nothing.
                    self._checkin(conn, None)
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
            self._checkin(conn, exc)
            if watch.interrupted and isinstance(exc, psycopg.Error):
                raise _Interrupted() from exc
            raise
        with self._lock:
            self._watches.discard(watch)
        self._checkin(conn, None)
        return result

    def _checkout(self) -> Connection:
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
        return self._connect()

    def open_dedicated(self) -> Connection:
        """A new connection outside the pool, with this driver's settings (P1, P2), for a
        caller that keeps it for itself (a LISTEN connection). Blocking: call it in a
        worker thread. The caller owns it and closes it; `close` does not."""
        self.check_open()
        return self._connect()

    def _connect(self) -> Connection:
        conn = psycopg.Connection.connect(self._dsn, **self._connect_kwargs)
        try:
            with self._lock:
                self._connections_opened += 1
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

    def _checkin(self, conn: Connection, error: BaseException | None) -> None:
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
            _log.debug("%s (%s): dropped a broken connection", self._what, self.url)
        conn.close()

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
            conn = self._checkout()
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
