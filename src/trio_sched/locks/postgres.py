"""`PostgresLockProvider`: the `LockProvider` on PostgreSQL, through psycopg 3.

Installed with ``pip install trio-sched[postgres]``. Importing this module imports
psycopg; ``import trio_sched`` and ``trio_sched.locks`` never do. Users import it
explicitly::

    from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

    config = PostgresLockProviderConfig(url="postgresql://127.0.0.1/test")
    async with PostgresLockProvider(config) as provider:
        lease = await provider.acquire("trio_sched:report:1767225600000", ttl=30.0)

Rules (on top of L1-L5 of `trio_sched.locks._protocol` and P1-P8 of
`trio_sched._postgres_common`, which describe threads, timeouts, errors and redaction):
- PG1 Schema, created on first use (or by `PostgresLockProvider.ensure_schema`): the
  lock table ``<table>`` (``key text PRIMARY KEY, token text, fencing_token bigint
  GENERATED ALWAYS AS IDENTITY, expires_at timestamptz``) with an index on
  ``expires_at``, and the watermark table ``<table>_watermarks`` (``name text PRIMARY
  KEY, value bigint``). Creation takes a transaction-scoped advisory lock first, so
  providers starting together create it once and never race on the catalog; it only
  ever uses ``IF NOT EXISTS``, and it is idempotent. A schema-qualified ``table`` needs
  its schema to exist. If the tables disappear, the next call creates them again.
  A table of that name that is not a lock (or watermark) table, such as a jobs table,
  raises `ConflictError` naming it before anything is created (P8).
- PG2 Time is the server's alone: expiry is ``clock_timestamp() + ttl`` and a lock is
  held while ``expires_at > clock_timestamp()``, both read inside the statement that
  decides. `LockLease.expire_at` is the stored ``expires_at``. No client clock takes
  part in expiry (the process's monotonic clock only paces the cleanup of PG5).
- PG3 Fencing tokens come from the identity sequence of ``fencing_token`` (``CACHE 1``,
  so values are strictly increasing across sessions), drawn in the statement that takes
  the key: an insert draws it from the column default, a take-over of an expired row by
  ``fencing_token = DEFAULT`` after the row is locked, so a take-over always gets a
  larger token than the row's last holder. (An insert after a release or cleanup draws
  its token just before inserting; it could only be smaller than the previous holder's
  if that one statement stalled between the two for the previous holder's whole lease.)
- PG4 Acquire is ONE statement, ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE the
  existing row expired RETURNING ...``. Renew and release are one statement each and
  check the token and expiry (``WHERE key = .. AND token = .. AND expires_at >
  clock_timestamp()``). ``acquire_batch`` is ONE statement for the whole batch (rule L5):
  the requests travel as arrays, the watermark table is joined for rule L4, the first
  eligible request per key is kept (a key named twice goes to its first request not
  refused by its watermark) and the rows are inserted in key order, so two concurrent
  batches never deadlock. ``advance_watermarks`` is one ``INSERT ... ON CONFLICT DO UPDATE
  SET value = GREATEST(...)`` (forward only), ``get_watermarks`` one ``SELECT``; empty
  batches make no round trip.
- PG5 Cleanup: expired rows are deleted ``cleanup_grace`` seconds after their expiry, at
  most ``cleanup_batch`` rows per statement (oldest first, through the ``expires_at``
  index, ``SKIP LOCKED`` so it never waits for another session). It runs before an
  acquire at most once per ``cleanup_interval`` seconds (amortised: one extra round
  trip per interval, never inside the acquire's statement), and on demand through
  `PostgresLockProvider.cleanup_expired`. A cleanup that fails is logged and counted,
  never raised into the acquire. Expired rows are harmless meanwhile: an acquire takes
  an expired row over.
- PG6 Cancellation (see P3): every method is a checkpoint and a cancelled call returns
  at once. What it leaves behind, per method:
  ``acquire``/``acquire_batch``: nothing hidden. The tokens are generated here, before the
  call, so when a call is cancelled, times out or loses its connection after sending its
  statement, the keys it may have taken are released by those tokens (token-checked,
  safe whether or not they were taken); if that release fails too, they end by their
  TTL. ``renew``: the expiry is either the old or the new one; the lease stays the
  caller's. ``release``: the row is either deleted or ends by its TTL.
  ``advance_watermarks``: applied wholly or not at all (one statement); it only moves
  forward, so the caller may simply repeat it. ``get_watermarks``, ``health_check``
  and ``cleanup_expired`` leave nothing the caller must know about. ``aclose`` closes at
  once, before its checkpoint, so it closes even when cancelled.
- PG7 Watermark values and nominal instants are ints within Postgres' ``bigint``
  range; others raise `InvalidArgumentError`.
- PG8 Durability: by default every statement waits for its commit to reach the disk
  (Postgres' ``synchronous_commit``), which is most of an acquire's latency on a disk
  with slow flushes. ``synchronous_commit=False`` stops waiting: a crash of the *server*
  may then lose the lock and watermark changes of its last fraction of a second (up to
  three ``wal_writer_delay``), which can let an occurrence fire twice after that crash.
  The tables stay logged either way (an UNLOGGED table would lose every row on a crash).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import trio

from trio_sched._closeable import ClosesOnExit
from trio_sched._errors import (
    InvalidArgumentError,
    LeaseLostError,
    NotInitializedError,
    SchedulerError,
    ValidationError,
)
from trio_sched._postgres_common import (
    LOCK_TABLE,
    WATERMARK_TABLE,
    Connection,
    PostgresDriver,
    PostgresDriverStatistics,
    TableName,
    advisory_key,
    check_dsn,
    check_timeout,
    query,
    redact_dsn,
)
from trio_sched.locks._protocol import AcquireRequest, LockLease, check_key, check_ttl

if TYPE_CHECKING:
    # Only for annotations: the first psycopg import goes through _postgres_common,
    # which says which extra to install when psycopg is missing.
    from psycopg import sql

__all__ = ["PostgresLockProvider", "PostgresLockProviderConfig", "PostgresLockStatistics"]

_log = logging.getLogger("trio_sched.locks.postgres")

T = TypeVar("T")

_BIGINT_MIN: Final = -(2**63)
_BIGINT_MAX: Final = 2**63 - 1


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresLockProviderConfig:
    """Where and how a `PostgresLockProvider` talks to Postgres.

    - ``url``: a libpq URL (``postgresql://user:password@host:5432/db``) or ``key=value``
      DSN. Shown redacted in every ``repr`` and message (P5).
    - ``table``: the lock table, ``name`` or ``schema.name`` (P6); the watermark table is
      ``<table>_watermarks`` next to it (PG1).
    - ``operation_timeout``: bound on every call in seconds (P2); also the server's
      ``statement_timeout`` for this provider's connections.
    - ``max_connections``: worker threads (and so connections) in use at once (P1).
    - ``cleanup_interval``: seconds between amortised cleanups of expired rows, ``None``
      for none (then only `PostgresLockProvider.cleanup_expired` cleans) (PG5).
    - ``cleanup_grace``: seconds a row stays after its expiry before cleanup deletes it.
    - ``cleanup_batch``: most rows one cleanup statement deletes.
    - ``synchronous_commit``: wait for each commit's disk flush (PG8); ``False`` trades
      durability across a server crash for latency.
    """

    url: str = "postgresql://127.0.0.1/test"
    table: str = "trio_sched_locks"
    operation_timeout: float = 3.0
    max_connections: int = 4
    cleanup_interval: float | None = 30.0
    cleanup_grace: float = 60.0
    cleanup_batch: int = 1000
    synchronous_commit: bool = True

    def __post_init__(self) -> None:
        check_dsn(self.url)
        TableName.parse(self.table)
        check_timeout("operation_timeout", self.operation_timeout)
        if self.cleanup_interval is not None:
            check_timeout("cleanup_interval", self.cleanup_interval)
        grace = self.cleanup_grace
        if isinstance(grace, bool) or not isinstance(grace, int | float):
            raise ValidationError(f"cleanup_grace: expected seconds, got {grace!r}")
        if not (math.isfinite(grace) and grace >= 0):
            raise ValidationError(
                f"cleanup_grace: must be finite seconds >= 0, got {grace!r}",
                field="cleanup_grace",
            )
        for name in ("max_connections", "cleanup_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name}: expected an int >= 1, got {value!r}", field=name)
        if not isinstance(self.synchronous_commit, bool):
            raise ValidationError(
                f"synchronous_commit: expected a bool, got {self.synchronous_commit!r}",
                field="synchronous_commit",
            )

    def __repr__(self) -> str:
        return (
            f"PostgresLockProviderConfig(url={redact_dsn(self.url)!r}, table={self.table!r}, "
            f"operation_timeout={self.operation_timeout!r}, "
            f"max_connections={self.max_connections!r}, "
            f"cleanup_interval={self.cleanup_interval!r}, "
            f"cleanup_grace={self.cleanup_grace!r}, cleanup_batch={self.cleanup_batch!r}, "
            f"synchronous_commit={self.synchronous_commit!r})"
        )

    __str__ = __repr__


@final
@dataclass(frozen=True, slots=True)
class PostgresLockStatistics:
    """A snapshot of a `PostgresLockProvider`'s counters (this client's view only).

    Like `MemoryLockStatistics` minus what only the server knows (held and stored rows,
    watermark count): counting those would need a query. `refused_by_watermark` counts
    batch requests refused by rule L4 and is not part of `misses` (a key found held).
    `last_fencing_token` is the highest this client got. `cleanups` counts cleanup
    statements that ran, `cleaned_rows` the rows they deleted and `cleanup_failures`
    those that failed (PG5). `driver` holds round trips, failures, timeouts, undos and
    connections (P1-P3).
    """

    acquires: int
    misses: int
    refused_by_watermark: int
    renewals: int
    renewals_lost: int
    releases: int
    releases_missed: int
    last_fencing_token: int
    cleanups: int
    cleaned_rows: int
    cleanup_failures: int
    schema_ready: bool
    closed: bool
    driver: PostgresDriverStatistics


@final
class _Sql:
    """The provider's statements, with its table names quoted as identifiers (P6)."""

    def __init__(self, table: TableName) -> None:
        ids = {
            "locks": table.identifier(),
            "marks": table.identifier("_watermarks"),
            "expires_idx": table.local_identifier("_expires_at_idx"),
        }
        # One key for every trio-sched schema creation in the database, whatever the
        # table: ``x`` and ``public.x`` may name one table, and creations are rare and short.
        self.advisory_key = advisory_key("trio_sched", "schema")
        self.create = [
            query(
                "CREATE TABLE IF NOT EXISTS {locks} ("
                " key text PRIMARY KEY,"
                " token text NOT NULL,"
                # PG3: CACHE 1 keeps values increasing across sessions.
                " fencing_token bigint GENERATED ALWAYS AS IDENTITY (CACHE 1),"
                " expires_at timestamptz NOT NULL)",
                **ids,
            ),
            query("CREATE INDEX IF NOT EXISTS {expires_idx} ON {locks} (expires_at)", **ids),
            query(
                "CREATE TABLE IF NOT EXISTS {marks} (name text PRIMARY KEY, value bigint NOT NULL)",
                **ids,
            ),
        ]
        self.acquire = query(
            "INSERT INTO {locks} AS l (key, token, expires_at)"
            " VALUES (%(key)s, %(token)s, clock_timestamp() + %(ttl)s * interval '1 second')"
            " ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token,"
            " fencing_token = DEFAULT, expires_at = EXCLUDED.expires_at"
            " WHERE l.expires_at <= clock_timestamp()"
            " RETURNING l.fencing_token, l.expires_at",
            **ids,
        )
        # One row per granted request (token, fencing, expiry) and one per request
        # refused by its watermark (token, NULL, NULL); requests not named were held.
        self.acquire_batch = query(
            "WITH req AS ("
            " SELECT r.key, r.token, r.ttl, r.ord,"
            " (r.mark IS NOT NULL AND w.value IS NOT NULL AND r.nominal <= w.value"
            " AND w.value - r.nominal >= r.slack) AS refused"
            " FROM unnest(%(keys)s::text[], %(tokens)s::text[], %(ttls)s::float8[],"
            " %(marks)s::text[], %(nominals)s::int8[], %(slacks)s::int8[])"
            " WITH ORDINALITY AS r(key, token, ttl, mark, nominal, slack, ord)"
            " LEFT JOIN {marks} AS w ON w.name = r.mark"
            "), eligible AS ("
            " SELECT DISTINCT ON (key) key, token, ttl FROM req WHERE NOT refused"
            " ORDER BY key, ord"
            "), taken AS ("
            " INSERT INTO {locks} AS l (key, token, expires_at)"
            " SELECT key, token, clock_timestamp() + ttl * interval '1 second'"
            " FROM eligible ORDER BY key"
            " ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token,"
            " fencing_token = DEFAULT, expires_at = EXCLUDED.expires_at"
            " WHERE l.expires_at <= clock_timestamp()"
            " RETURNING l.token, l.fencing_token, l.expires_at"
            ")"
            " SELECT token, fencing_token, expires_at FROM taken"
            " UNION ALL SELECT token, NULL, NULL FROM req WHERE refused",
            **ids,
        )
        self.renew = query(
            "UPDATE {locks} SET expires_at = clock_timestamp() + %(ttl)s * interval '1 second'"
            " WHERE key = %(key)s AND token = %(token)s AND expires_at > clock_timestamp()"
            " RETURNING fencing_token, expires_at",
            **ids,
        )
        self.release = query(
            "DELETE FROM {locks}"
            " WHERE key = %(key)s AND token = %(token)s AND expires_at > clock_timestamp()",
            **ids,
        )
        # The undo of an acquire (PG6): rows locked in key order, as a batch locks them.
        self.release_many = query(
            "DELETE FROM {locks} AS l USING ("
            " SELECT l2.key FROM {locks} AS l2"
            " JOIN unnest(%(keys)s::text[], %(tokens)s::text[]) AS r(key, token)"
            " ON l2.key = r.key AND l2.token = r.token"
            " ORDER BY l2.key FOR UPDATE OF l2"
            ") AS mine WHERE l.key = mine.key",
            **ids,
        )
        self.get_marks = query(
            "SELECT name, value FROM {marks} WHERE name = ANY(%(names)s::text[])", **ids
        )
        # Sorted by name so concurrent advances lock rows in one order (no deadlock); the
        # WHERE skips writing a row version when nothing moves.
        self.advance_marks = query(
            "INSERT INTO {marks} AS w (name, value)"
            " SELECT name, value FROM unnest(%(names)s::text[], %(values)s::int8[])"
            " AS m(name, value) ORDER BY name"
            " ON CONFLICT (name) DO UPDATE SET value = GREATEST(w.value, EXCLUDED.value)"
            " WHERE EXCLUDED.value > w.value",
            **ids,
        )
        # PG5: the inner SELECT walks the expires_at index and skips rows another session
        # has locked; the outer condition re-checks a row that was taken over meanwhile.
        self.cleanup = query(
            "DELETE FROM {locks} AS l USING ("
            " SELECT key FROM {locks}"
            " WHERE expires_at < clock_timestamp() - %(grace)s * interval '1 second'"
            " ORDER BY expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
            ") AS old"
            " WHERE l.key = old.key"
            " AND l.expires_at < clock_timestamp() - %(grace)s * interval '1 second'",
            **ids,
        )


@final
class PostgresLockProvider(ClosesOnExit):
    """A `LockProvider` on one Postgres database (rules PG1-PG8 above, P1-P8).

    Construction does no I/O; the first call connects and creates the schema. Also an
    async context manager that closes the provider on exit. A provider belongs to the
    Trio run that uses it (its limiter and lock are Trio objects): create one per run.
    """

    def __init__(self, config: PostgresLockProviderConfig | None = None) -> None:
        self._config = config if config is not None else PostgresLockProviderConfig()
        self._table = TableName.parse(self._config.table)
        self._sql = _Sql(self._table)
        self._driver = PostgresDriver(
            self._config.url,
            operation_timeout=self._config.operation_timeout,
            max_connections=self._config.max_connections,
            what="postgres lock provider",
            synchronous_commit=self._config.synchronous_commit,
        )
        self._schema_ready = False
        self._schema_lock = trio.Lock()
        interval = self._config.cleanup_interval
        # The first acquire cleans: rows left by earlier runs go at once.
        self._next_cleanup = -math.inf if interval is not None else math.inf
        self._acquires = 0
        self._misses = 0
        self._refused = 0
        self._renewals = 0
        self._renewals_lost = 0
        self._releases = 0
        self._releases_missed = 0
        self._fencing = 0
        self._cleanups = 0
        self._cleaned = 0
        self._cleanup_failures = 0

    def __repr__(self) -> str:
        state = "closed" if self._driver.closed else "open"
        return f"<PostgresLockProvider {self._driver.url} table={str(self._table)!r} {state}>"

    @property
    def config(self) -> PostgresLockProviderConfig:
        return self._config

    # -- LockProvider ---------------------------------------------------------------

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        """Take `key` for `ttl` seconds if nobody holds it; ``None`` when held.

        One statement (PG4), expiry on the server's clock (PG2). A checkpoint; a
        cancelled, timed-out or disconnected call leaves no hidden lock: the key is
        released by this call's token (PG6).
        """
        check_key(key)
        check_ttl(ttl)
        token = secrets.token_hex(16)
        params = {"key": key, "token": token, "ttl": float(ttl)}
        await self._maybe_cleanup()

        def run(conn: Connection) -> tuple[Any, ...] | None:
            return self._driver.execute(conn, self._sql.acquire, params).fetchone()

        row = await self._call(run, undo=self._undo([key], [token]))
        if row is None:
            self._misses += 1
            return None
        fencing, expires_at = _int(row[0]), _utc(row[1])
        self._acquires += 1
        self._fencing = max(self._fencing, fencing)
        return LockLease(key=key, token=token, expire_at=expires_at, fencing_token=fencing)

    async def acquire_batch(self, requests: Sequence[AcquireRequest]) -> list[LockLease | None]:
        """Acquire many keys in ONE statement; result ``i`` answers request ``i``.

        ``None`` means held, or refused by its watermark (rule L4),
        decided in the same statement (PG4). A key named twice goes to its first request
        not refused by its watermark. A checkpoint; cancellation leaves no hidden lock
        (PG6). An empty batch makes no round trip.
        """
        keys: list[str] = []
        tokens: list[str] = []
        ttls: list[float] = []
        marks: list[str | None] = []
        nominals: list[int] = []
        slacks: list[int] = []
        for request in requests:
            check_key(request.key)
            check_ttl(request.ttl)
            if request.watermark is not None and not isinstance(request.watermark, str):
                raise InvalidArgumentError(
                    f"watermark must be a str or None, got {request.watermark!r}"
                )
            keys.append(request.key)
            tokens.append(secrets.token_hex(16))
            ttls.append(float(request.ttl))
            marks.append(request.watermark)
            nominals.append(_bigint("nominal_ms", request.nominal_ms))
            slacks.append(_bigint("watermark_slack_ms", request.watermark_slack_ms))
        if not requests:
            await self._checkpoint_open()
            return []
        params = {
            "keys": keys,
            "tokens": tokens,
            "ttls": ttls,
            "marks": marks,
            "nominals": nominals,
            "slacks": slacks,
        }
        await self._maybe_cleanup()

        def run(conn: Connection) -> list[tuple[Any, ...]]:
            return self._driver.execute(conn, self._sql.acquire_batch, params).fetchall()

        rows = await self._call(run, undo=self._undo(keys, tokens))
        answers = {row[0]: row for row in rows}
        results: list[LockLease | None] = []
        for request, token in zip(requests, tokens, strict=True):
            row = answers.get(token)
            if row is None:
                self._misses += 1
                results.append(None)
            elif row[1] is None:
                self._refused += 1
                results.append(None)
            else:
                fencing = _int(row[1])
                self._acquires += 1
                self._fencing = max(self._fencing, fencing)
                results.append(
                    LockLease(
                        key=request.key,
                        token=token,
                        expire_at=_utc(row[2]),
                        fencing_token=fencing,
                    )
                )
        return results

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        """Extend `lease` to `ttl` seconds from now on the server's clock.

        Raises `LeaseLostError` when the key expired (even if nobody took it since) or
        another token holds it. One statement. A checkpoint; a cancelled renew may or may
        not have extended the expiry, the lease stays the caller's either way (PG6).
        """
        check_ttl(ttl)
        params = {"key": lease.key, "token": lease.token, "ttl": float(ttl)}

        def run(conn: Connection) -> tuple[Any, ...] | None:
            return self._driver.execute(conn, self._sql.renew, params).fetchone()

        row = await self._call(run)
        if row is None:
            self._renewals_lost += 1
            raise LeaseLostError(f"lease on {lease.key!r} was lost (expired or taken)")
        self._renewals += 1
        return LockLease(
            key=lease.key,
            token=lease.token,
            expire_at=_utc(row[1]),
            fencing_token=_int(row[0]),
        )

    async def release(self, lease: LockLease) -> bool:
        """Delete the key if `lease` still owns it and has not expired; whether it did.

        One statement. A checkpoint; a cancelled release either deleted the row or left
        it to its TTL (PG6).
        """
        params = {"key": lease.key, "token": lease.token}

        def run(conn: Connection) -> int:
            return self._driver.execute(conn, self._sql.release, params).rowcount

        if await self._call(run):
            self._releases += 1
            return True
        self._releases_missed += 1
        return False

    async def get_watermarks(self, names: Sequence[str]) -> dict[str, int]:
        """Current watermarks (epoch ms) for `names`; names never set are absent.

        One statement (none for no names). A checkpoint that changes nothing.
        """
        wanted = list(names)
        if not all(isinstance(name, str) for name in wanted):
            raise InvalidArgumentError(f"watermark names must be str, got {wanted!r}")
        if not wanted:
            await self._checkpoint_open()
            return {}

        def run(conn: Connection) -> list[tuple[Any, ...]]:
            return self._driver.execute(conn, self._sql.get_marks, {"names": wanted}).fetchall()

        return {str(name): _int(value) for name, value in await self._call(run)}

    async def advance_watermarks(self, marks: Mapping[str, int]) -> None:
        """Move each watermark to ``max(current, value)`` in ONE statement (PG4).

        A checkpoint; a cancelled call applied all marks or none (PG6). An empty mapping
        makes no round trip.
        """
        names: list[str] = []
        values: list[int] = []
        for name, value in marks.items():
            if not isinstance(name, str):
                raise InvalidArgumentError(f"watermark names must be str, got {name!r}")
            names.append(name)
            values.append(_bigint(f"watermark {name!r}", value))
        if not names:
            await self._checkpoint_open()
            return
        params = {"names": names, "values": values}

        def run(conn: Connection) -> None:
            self._driver.execute(conn, self._sql.advance_marks, params)

        await self._call(run)

    async def health_check(self) -> None:
        """Return when the server answers ``SELECT 1``; raise a `SchedulerError` otherwise.

        Bounded by ``operation_timeout`` (unreachable -> `RetryableError`); `ClosedError`
        after `aclose`. A checkpoint that changes nothing; it does not create the schema.
        """

        def run(conn: Connection) -> None:
            self._driver.execute(conn, "SELECT 1").fetchone()

        await self._driver.call(run)

    async def aclose(self) -> None:
        """Close the connections. Idempotent.

        Closes *before* its checkpoint, so the provider is closed even when the call is
        cancelled. Afterwards every other method raises `ClosedError`; locks this provider
        holds stay until released by token elsewhere or until their TTL.
        """
        self._driver.close()
        await trio.lowlevel.checkpoint()

    # -- extras -----------------------------------------------------------------------

    async def ensure_schema(self) -> None:
        """Create the tables and index now if they do not exist (PG1); idempotent.

        Every other call does this on first use; call it at deployment time to surface
        permission problems early. A checkpoint; a cancelled call created all or nothing
        (one transaction).
        """
        async with self._schema_lock:
            if self._schema_ready:
                await self._checkpoint_open()
                return
            await self._driver.create_schema(
                self._sql.advisory_key,
                self._sql.create,
                self._mark_schema_ready,
                tables=(
                    (self._table, "", LOCK_TABLE),
                    (self._table, "_watermarks", WATERMARK_TABLE),
                ),
            )

    def _mark_schema_ready(self) -> None:
        self._schema_ready = True

    async def cleanup_expired(self) -> int:
        """Delete up to ``cleanup_batch`` rows expired more than ``cleanup_grace`` ago.

        Returns how many rows it deleted (PG5). One statement. A checkpoint; a cancelled
        cleanup deleted that batch or nothing, both harmless.
        """
        params = {"grace": float(self._config.cleanup_grace), "limit": self._config.cleanup_batch}

        def run(conn: Connection) -> int:
            return self._driver.execute(conn, self._sql.cleanup, params).rowcount

        deleted = max(0, await self._call(run))
        self._cleanups += 1
        self._cleaned += deleted
        if deleted:
            _log.debug("cleanup of %s deleted %d expired lock row(s)", self._table, deleted)
        return deleted

    def statistics(self) -> PostgresLockStatistics:
        """A snapshot of this client's counters (no I/O)."""
        return PostgresLockStatistics(
            acquires=self._acquires,
            misses=self._misses,
            refused_by_watermark=self._refused,
            renewals=self._renewals,
            renewals_lost=self._renewals_lost,
            releases=self._releases,
            releases_missed=self._releases_missed,
            last_fencing_token=self._fencing,
            cleanups=self._cleanups,
            cleaned_rows=self._cleaned,
            cleanup_failures=self._cleanup_failures,
            schema_ready=self._schema_ready,
            closed=self._driver.closed,
            driver=self._driver.statistics(),
        )

    # -- internals --------------------------------------------------------------------

    async def _call(
        self, fn: Callable[[Connection], T], *, undo: Callable[[Connection], None] | None = None
    ) -> T:
        """``self._driver.call`` after creating the schema if needed (PG1)."""
        if not self._schema_ready:
            await self.ensure_schema()
        try:
            return await self._driver.call(fn, undo=undo)
        except NotInitializedError:
            # The tables were dropped under us. The statement failed, so it did nothing:
            # create them again and retry once.
            self._schema_ready = False
            await self.ensure_schema()
            return await self._driver.call(fn, undo=undo)

    def _undo(self, keys: list[str], tokens: list[str]) -> _Release:
        return _Release(self._driver, self._sql.release_many, keys, tokens)

    async def _checkpoint_open(self) -> None:
        await trio.lowlevel.checkpoint()
        self._driver.check_open()

    async def _maybe_cleanup(self) -> None:
        """The amortised cleanup of PG5, before an acquire; never raises a driver error."""
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        interval = self._config.cleanup_interval
        assert interval is not None  # otherwise _next_cleanup is +inf
        self._next_cleanup = now + interval
        try:
            await self.cleanup_expired()
        except SchedulerError as exc:
            self._driver.check_open()
            self._cleanup_failures += 1
            _log.warning("cleanup of %s failed (will retry): %s", self._table, exc)


@final
class _Release:
    """The compensation of an acquire (P3): delete `keys` whose row `tokens` still own."""

    __slots__ = ("_driver", "_keys", "_statement", "_tokens")

    def __init__(
        self, driver: PostgresDriver, statement: sql.Composed, keys: list[str], tokens: list[str]
    ) -> None:
        self._driver = driver
        self._statement = statement
        self._keys = keys
        self._tokens = tokens

    def __call__(self, conn: Connection) -> None:
        params = {"keys": self._keys, "tokens": self._tokens}
        deleted = self._driver.execute(conn, self._statement, params).rowcount
        if deleted:
            _log.debug("released %d lock(s) of an abandoned or failed acquire", deleted)


def _bigint(what: str, value: object) -> int:
    """PG7: an int in Postgres' bigint range (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be an int, got {value!r}")
    if not _BIGINT_MIN <= value <= _BIGINT_MAX:
        raise InvalidArgumentError(f"{what} is outside Postgres' bigint range: {value!r}")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchedulerError(f"postgres lock provider: expected an integer, got {value!r}")
    return value


def _utc(value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise SchedulerError(f"postgres lock provider: expected a timestamptz, got {value!r}")
    return value.astimezone(UTC)
