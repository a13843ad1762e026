"""`PostgresJobs`: a durable jobs runtime on PostgreSQL (``trio-sched[postgres]``).

Importing this module imports psycopg 3; ``import trio_sched.jobs`` never does::

    from trio_sched.jobs import open_worker
    from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig

    jobs = PostgresJobs(PostgresJobsConfig(url="postgresql://127.0.0.1/test"))
    async with jobs, open_worker(jobs, {"build_report": build_report}, queues=["default"]):
        ...

It implements `JobsRuntime` (enqueue), `BatchJobsRuntime` (enqueue_many) and
`ConsumableJobs` (rules W1-W9 of `trio_sched.jobs._worker`) with the driver of
`trio_sched._postgres_common` (rules P1-P8: sync psycopg in worker threads, operation
timeouts, error mapping, DSN redaction, quoted table names, configuration and table
shape checks).

Rules:
- PJ1 Schema, created on first use (or by `PostgresJobs.ensure_schema`) under the one
  advisory lock every trio-sched schema creation takes, with ``IF NOT EXISTS`` only
  (idempotent, safe when several processes start together): one table ``<table>``
  holding every job as enqueued (``id`` primary key, ``queue``, ``name``, ``payload
  bytea``, ``headers jsonb``, ``content_type``, ``tenant_id``, ``idempotency_key``
  UNIQUE and nullable, ``run_at``, ``created_at``, ``fencing_token``, ``attempt``) plus
  its delivery state: ``state`` (``ready``, ``leased``, ``dead`` or ``done``), ``tries``
  (deliveries so far), ``lease_token``, ``leased_until``, ``available_at``,
  ``last_error``, ``failed_at``, ``dead_attempt``, ``enqueued_at``, ``finished_at``.
  Dead letters are rows in state ``dead``. Indexes: ``<table>_due_idx`` on ``(queue,
  available_at)`` for ready and leased rows (the claim), ``<table>_dead_idx`` and
  ``<table>_done_idx``. If the table disappears, the next call creates it again. A
  table of that name that is not a jobs table (a lock provider's, say) raises
  `ConflictError` naming it before anything is created (P8).
- PJ2 ``available_at`` is the instant a row may next be claimed: ``run_at`` (or the
  enqueue instant) for a new job, ``clock_timestamp() + retry_in`` for a retry, and for
  a leased row its ``leased_until``. So one index and one condition, ``state IN
  ('ready', 'leased') AND available_at <= clock_timestamp()``, find both due jobs and
  expired leases (redelivery, W2). Every time is the server's clock, read in the
  statement that decides; the client's wall clock only converts ``run_at``.
- PJ3 ``enqueue`` is ONE statement, ``INSERT ... ON CONFLICT DO NOTHING RETURNING``: a
  job whose idempotency key or id is already stored is not inserted and raises
  `ConflictError` (the scheduler counts that as success). A lost reply is harmless:
  repeating the enqueue raises `ConflictError`. Completed jobs with an idempotency key
  stay as ``done`` rows (payload cleared) for ``dedupe_retention`` seconds, so a
  re-fire of the same occurrence is still refused; jobs without a key are deleted on
  completion. Old ``done`` rows are deleted in batches at most once per
  ``cleanup_interval`` (amortised before an enqueue, ``SKIP LOCKED``) and on demand.
  ``enqueue_many`` inserts a whole batch in ONE transaction: ``INSERT ... SELECT FROM
  unnest(<one array per column>) ON CONFLICT DO NOTHING RETURNING id``, one statement
  per ``_ENQUEUE_CHUNK`` rows, one NOTIFY per queue. Rows go in sorted by idempotency
  key (then id), so two batches racing for the same keys wait for each other instead of
  deadlocking; a job whose id or key repeats one earlier in the batch goes into a later
  statement, so the earlier job is tried first and the later one is the conflict
  (exactly as one ``enqueue`` per job, in order, would decide).
- PJ4 ``claim`` is ONE statement: ``SELECT ... FOR UPDATE SKIP LOCKED`` of up to
  ``max_jobs`` due rows, which it leases (``state = 'leased'``, ``tries + 1``, a fresh
  random ``lease_token`` per call, ``leased_until = clock_timestamp() +
  visibility_timeout``). The delivered ``attempt`` is the enqueued one plus ``tries -
  1`` (W3). An expired lease whose next attempt would exceed ``max_attempts`` is
  dead-lettered by that statement instead of delivered, so a job that kills its worker
  every time ends in the dead letters (W2). A claim cancelled, timed out or cut off
  after sending its statement gives its rows back by their token (the P3 undo: ready
  again, try un-counted); when even that fails they are redelivered after the lease.
- PJ5 Waiting (W1): when nothing is due, ``claim`` waits up to ``wait`` seconds, but
  never past the next ``available_at`` of its queues (a delayed job or retry becoming
  due, a lease expiring) nor longer than ``poll_interval`` (the fallback poll for a
  missed notification), then claims again. It waits on a dedicated LISTEN connection
  (``listen=True``): enqueue, retry, release and redrive send ``NOTIFY`` on the
  table's channel with the queue as payload, in the statement that makes the job
  available, so an idle worker wakes at once. The listening connection holds no worker
  thread: Trio waits for its socket to become readable. Any notification on the channel
  wakes every waiting claim (they re-run their claim statement). A broken listening
  connection is dropped and reopened by the next claim; meanwhile claims poll.
- PJ6 ``complete``/``fail``/``extend``/``release`` are one statement each, checked by
  job id and lease token while the row is leased: a row leased again by another claim
  (or finished) has another token, so the call is stale (W5) and changes nothing.
  ``fail`` retries (``state = 'ready'``, ``available_at = clock_timestamp() +
  retry_in``) or dead-letters; ``release`` makes the row ready now and un-counts its
  try; ``extend`` moves ``leased_until`` on while the token matches. ``redrive`` makes
  dead rows ready with ``tries = 0`` (W8: the enqueued attempt again).
- PJ7 Every method is a checkpoint and changes all or nothing (one statement each,
  autocommit; the statements of ``enqueue_many`` share one transaction). ``aclose``
  closes the pool and the listening connection at once, before its checkpoint, and is
  idempotent; leased rows stay leased and are redelivered after their lease.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import trio

from trio_sched._closeable import ClosesOnExit
from trio_sched._errors import (
    ConflictError,
    InvalidArgumentError,
    SchedulerError,
    ValidationError,
)
from trio_sched._postgres_common import (
    Connection,
    PostgresDriver,
    TableName,
    check_dsn,
    check_timeout,
    redact_dsn,
)
from trio_sched.jobs._job import Job, check_jobs
from trio_sched.jobs._postgres_listen import Listener
from trio_sched.jobs._postgres_rows import check_job, check_queue, job_from_row, utc
from trio_sched.jobs._postgres_stats import Counters
from trio_sched.jobs._postgres_stats import PostgresJobsStatistics as PostgresJobsStatistics
from trio_sched.jobs._postgres_stats import PostgresQueueStatistics as PostgresQueueStatistics
from trio_sched.jobs._postgres_table import JobsTable
from trio_sched.jobs._worker import DeadLetter, Delivery, FailOutcome

if TYPE_CHECKING:
    # Only for annotations: the first psycopg import goes through _postgres_common,
    # which says which extra to install when psycopg is missing.
    from psycopg import sql

__all__ = [
    "PostgresJobs",
    "PostgresJobsConfig",
    "PostgresJobsStatistics",
    "PostgresQueueStatistics",
]

_log = logging.getLogger("trio_sched.jobs.postgres")

T = TypeVar("T")

# each statement (and its parameters) small next to ``statement_timeout``.
_ENQUEUE_CHUNK: Final = 1000


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresJobsConfig:
    """Where and how a `PostgresJobs` talks to Postgres.

    - ``url``: a libpq URL or ``key=value`` DSN, shown redacted everywhere (P5).
    - ``table``: the jobs table, ``name`` or ``schema.name`` (P6, PJ1).
    - ``visibility_timeout``: seconds a claimed job stays leased without an ``extend``
      before it is redelivered (W2). ``max_attempts``: deliveries before dead-lettering.
    - ``operation_timeout`` and ``max_connections``: as for the lock provider (P1, P2).
      The listening connection is one more, outside ``max_connections``.
    - ``listen``: wake waiting claims with LISTEN/NOTIFY (PJ5); ``False`` polls only.
    - ``poll_interval``: longest single wait of a claim before it looks again even
      without a notification (the fallback poll, PJ5).
    - ``dedupe_retention``: seconds a completed job's idempotency key is remembered.
    - ``cleanup_interval``: seconds between amortised cleanups of old ``done`` rows,
      ``None`` for none (then only `PostgresJobs.cleanup_done`); ``cleanup_batch`` the
      most rows one cleanup deletes (PJ3).
    - ``synchronous_commit``: wait for each commit's disk flush (as for the locks).
    """

    url: str = "postgresql://127.0.0.1/test"
    table: str = "trio_sched_jobs"
    visibility_timeout: float = 30.0
    max_attempts: int = 5
    operation_timeout: float = 3.0
    max_connections: int = 8
    listen: bool = True
    poll_interval: float = 5.0
    dedupe_retention: float = 7 * 24 * 3600.0
    cleanup_interval: float | None = 60.0
    cleanup_batch: int = 1000
    synchronous_commit: bool = True

    def __post_init__(self) -> None:
        check_dsn(self.url)
        TableName.parse(self.table)
        for name in ("visibility_timeout", "operation_timeout", "poll_interval"):
            check_timeout(name, getattr(self, name))
        check_timeout("dedupe_retention", self.dedupe_retention)
        if self.cleanup_interval is not None:
            check_timeout("cleanup_interval", self.cleanup_interval)
        for name in ("max_attempts", "max_connections", "cleanup_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name}: expected an int >= 1, got {value!r}", field=name)
        for name in ("listen", "synchronous_commit"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(f"{name}: expected a bool", field=name)

    def __repr__(self) -> str:
        return (
            f"PostgresJobsConfig(url={redact_dsn(self.url)!r}, table={self.table!r}, "
            f"visibility_timeout={self.visibility_timeout!r}, "
            f"max_attempts={self.max_attempts!r}, "
            f"operation_timeout={self.operation_timeout!r}, listen={self.listen!r}, "
            f"poll_interval={self.poll_interval!r})"
        )

    __str__ = __repr__


@final
class PostgresJobs(ClosesOnExit):
    """A `JobsRuntime`, `BatchJobsRuntime` and `ConsumableJobs` on one Postgres table
    (rules PJ1-PJ7).

    Construction does no I/O; the first call connects and creates the schema. Also an
    async context manager that closes the runtime on exit. A runtime belongs to the
    Trio run that uses it (its limiter, lock and listener are Trio objects).
    """

    def __init__(self, config: PostgresJobsConfig | None = None) -> None:
        self._config = config if config is not None else PostgresJobsConfig()
        self._driver = PostgresDriver(
            self._config.url,
            operation_timeout=self._config.operation_timeout,
            max_connections=self._config.max_connections,
            what="postgres jobs runtime",
            synchronous_commit=self._config.synchronous_commit,
        )
        self._table = JobsTable(self._driver, TableName.parse(self._config.table))
        self._sql = self._table.sql
        self._channel = self._table.channel
        self._listener = Listener(self._driver, self._channel)
        interval = self._config.cleanup_interval
        self._next_cleanup = -math.inf if interval is not None else math.inf
        self._counters = Counters()

    def __repr__(self) -> str:
        state = "closed" if self._driver.closed else "open"
        return f"<PostgresJobs {self._driver.url} table={str(self._table.name)!r} {state}>"

    @property
    def config(self) -> PostgresJobsConfig:
        return self._config

    @property
    def channel(self) -> str:
        """The NOTIFY channel of this runtime's table (PJ5)."""
        return self._channel

    @property
    def visibility_timeout(self) -> float:
        return self._config.visibility_timeout

    @property
    def max_attempts(self) -> int:
        return self._config.max_attempts

    # -- JobsRuntime ----------------------------------------------------------------

    async def enqueue(self, job: Job) -> None:
        """Store and queue `job` (PJ3): one statement, which also sends the NOTIFY.

        Raises `ConflictError` when its idempotency key or its id is already stored
        (the scheduler counts that as success). A checkpoint; a cancelled enqueue either
        stored the job or not, and repeating it is safe either way.
        """
        if not isinstance(job, Job):
            raise InvalidArgumentError(f"enqueue expects a Job, got {type(job).__name__}")
        check_job(job)
        params = {
            "id": job.id,
            "queue": job.queue,
            "name": job.name,
            "payload": bytes(job.payload),
            "headers": json.dumps(dict(job.headers)),
            "content_type": job.content_type,
            "tenant_id": job.tenant_id,
            "key": job.idempotency_key,
            "run_at": job.run_at,
            "created_at": job.created_at,
            "fencing": job.fencing_token,
            "attempt": job.attempt,
            "channel": self._channel,
        }
        await self._maybe_cleanup()

        def run(conn: Connection) -> tuple[bool | None, str | None]:
            row = self._driver.execute(conn, self._sql.enqueue, params).fetchone()
            if row is not None:
                return bool(row[0]), None
            # Not inserted: name the holder for the message (a second, read-only query).
            held = self._driver.execute(
                conn, self._sql.holder, {"id": job.id, "key": job.idempotency_key}
            ).fetchone()
            return None, None if held is None else str(held[0])

        delayed, holder = await self._table.call(run)
        if delayed is None:
            raise self._refused(job, holder)
        self._counters.enqueued += 1
        if delayed:
            self._counters.delayed += 1

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        """Store and queue `jobs` in order (`BatchJobsRuntime`, PJ3): one transaction,
        one ``INSERT ... SELECT FROM unnest(...)`` per ``_ENQUEUE_CHUNK`` rows, one
        NOTIFY per queue, and one more read-only statement naming the holders when some
        jobs were refused.

        The entries are what `enqueue` would raise for each job alone, in call order:
        ``None`` (stored), `ConflictError` (its idempotency key or id is already stored,
        also by an earlier job of the same call; same messages as `enqueue`) or
        `InvalidArgumentError` (a job Postgres cannot store as it is: a naive datetime,
        a bad queue name, a NUL character, a number out of range; never sent). Raises
        `InvalidArgumentError` when an item is not a `Job`, and what `enqueue` raises
        for the whole call: `ClosedError`, `RetryableError` (connection, timeout: each
        statement is bounded by ``operation_timeout``, the whole call too).

        All or nothing: the rows commit together, so a raised or cancelled call stored
        all of its jobs or none. Raised, usually none (a reply lost after the commit
        leaves all); cancelled, none when the statements were not sent yet, else the
        abandoned worker thread runs the transaction to its end. Enqueuing them all
        again is safe either way (the stored ones come back as `ConflictError`). A
        checkpoint, also for an empty sequence.
        """
        check_jobs(jobs)
        results: list[Exception | None] = [None] * len(jobs)
        valid: list[tuple[int, Job]] = []
        for index, job in enumerate(jobs):
            try:
                check_job(job)
            except InvalidArgumentError as exc:
                results[index] = exc
                continue
            valid.append((index, job))
        if not valid:
            await self._table.checkpoint_open()
            return results
        await self._maybe_cleanup()

        def run(conn: Connection) -> tuple[dict[int, bool], dict[int, str | None]]:
            # Sorting and building the arrays happen here, in the worker thread (a few
            # ms per 1,000 jobs that would otherwise hold up the Trio loop).
            chunks = _enqueue_chunks(valid)
            statements = [self._enqueue_many_params(chunk) for chunk in chunks]
            replies: list[list[tuple[Any, ...]]] = []
            with conn.transaction() if len(statements) > 1 else contextlib.nullcontext():
                for params in statements:
                    cursor = self._driver.execute(conn, self._sql.enqueue_many, params)
                    replies.append(cursor.fetchall())
            stored: dict[int, bool] = {}  # index -> delayed
            for chunk, rows in zip(chunks, replies, strict=True):
                # Ids are distinct within a chunk (`_enqueue_chunks`).
                delayed_by_id = {str(row[0]): bool(row[1]) for row in rows}
                for index, job in chunk:
                    if job.id in delayed_by_id:
                        stored[index] = delayed_by_id[job.id]
            holders, lookup = _batch_holders(valid, stored)
            if lookup:
                # Refused for a row stored before the call: name it (read-only).
                params = {
                    "ids": [job_id for _, job_id, _ in lookup],
                    "keys": [key for _, _, key in lookup],
                }
                found = self._driver.execute(conn, self._sql.holders, params).fetchall()
                for ord_, holder in found:
                    holders[lookup[int(ord_) - 1][0]] = None if holder is None else str(holder)
            return stored, holders

        stored, holders = await self._table.call(run)
        for index, job in valid:
            if index in stored:
                self._counters.enqueued += 1
                if stored[index]:
                    self._counters.delayed += 1
                continue
            results[index] = self._refused(job, holders.get(index))
        return results

    def _refused(self, job: Job, holder: str | None) -> ConflictError:
        """Count a job the table refused and say why: `holder` is the id of the stored
        job that has its id or idempotency key."""
        self._counters.duplicates += 1
        if holder == job.id:
            return ConflictError(f"a job with id {job.id!r} is already stored")
        return ConflictError(
            f"duplicate idempotency key {job.idempotency_key!r}: job {holder!r} has it"
        )

    async def health_check(self) -> None:
        """``SELECT 1`` within ``operation_timeout``. A checkpoint; changes nothing and
        does not create the schema."""

        def run(conn: Connection) -> None:
            self._driver.execute(conn, "SELECT 1").fetchone()

        await self._driver.call(run)

    async def aclose(self) -> None:
        """Close the pool and the listening connection; idempotent, closes even when
        cancelled (PJ7). Leased jobs stay leased on the server and are redelivered
        after their lease; use a worker's graceful shutdown to release them first."""
        self._driver.close()
        self._listener.close()
        await trio.lowlevel.checkpoint()

    # -- ConsumableJobs -----------------------------------------------------------------

    async def claim(self, queues: Sequence[str], *, max_jobs: int, wait: float) -> list[Delivery]:
        """Take up to `max_jobs` due jobs from `queues` (W1, PJ4), waiting up to `wait`
        seconds for one (PJ5). A checkpoint; a cancelled claim gives back what its
        statement took (PJ4) and leaves nothing else behind."""
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise InvalidArgumentError(f"max_jobs must be an int >= 1, got {max_jobs!r}")
        if isinstance(queues, str):
            raise InvalidArgumentError("queues must be a sequence of queue names, not a str")
        names = [check_queue(q) for q in dict.fromkeys(queues)]
        if not names:
            raise InvalidArgumentError("claim needs at least one queue")
        wait = max(0.0, float(wait))
        deadline = trio.current_time() + wait
        while True:
            seen = self._listener.generation
            listening = wait > 0 and self._config.listen and await self._listener.ensure()
            deliveries, next_due = await self._claim_once(names, max_jobs, want_next=wait > 0)
            now = trio.current_time()
            if deliveries or now >= deadline:
                return deliveries
            until = min(deadline, now + self._config.poll_interval)
            if next_due is not None:
                # A due row we did not get is locked by another session's claim right
                # now (SKIP LOCKED): look again shortly rather than spin. A row due later
                # is claimable once the server's clock passed it: a small margin.
                until = min(until, now + (next_due if next_due > 0 else 0.05) + 0.002)
            if listening:
                await self._listener.wait(seen, until)
            else:
                await trio.sleep_until(until)

    async def complete(self, delivery: Delivery) -> bool:
        """Finish the job for good (W5, PJ6); False when the lease is stale. One
        statement: a cancelled call happened wholly or not at all."""
        params = {"id": delivery.job.id, "token": delivery.receipt}

        def run(conn: Connection) -> int:
            row = self._driver.execute(conn, self._sql.complete, params).fetchone()
            return 0 if row is None else int(row[0])

        if not await self._table.call(run):
            self._counters.stale += 1
            return False
        self._counters.completed += 1
        return True

    async def fail(self, delivery: Delivery, *, error: str, retry_in: float | None) -> FailOutcome:
        """Retry after `retry_in` seconds or dead-letter (W6, PJ6). One statement: a
        cancelled call happened wholly or not at all."""
        job = delivery.job
        retry = retry_in is not None and job.attempt < self._config.max_attempts
        params: dict[str, Any] = {
            "id": job.id,
            "token": delivery.receipt,
            "error": str(error),
            "channel": self._channel,
        }
        if retry:
            params["delay"] = max(0.0, float(retry_in or 0.0))
        else:
            params["attempt"] = job.attempt

        def run(conn: Connection) -> int:
            if retry:
                return len(self._driver.execute(conn, self._sql.retry, params).fetchall())
            return self._driver.execute(conn, self._sql.bury, params).rowcount

        if not await self._table.call(run):
            self._counters.stale += 1
            return "stale"
        if retry:
            self._counters.retried += 1
            return "retried"
        self._counters.dead_lettered += 1
        return "dead_lettered"

    async def extend(self, delivery: Delivery) -> bool:
        """Renew the lease for ``visibility_timeout`` (W7, PJ6); False when lost. One
        statement; a cancelled call left the old or the new expiry."""
        params = {
            "id": delivery.job.id,
            "token": delivery.receipt,
            "vt": float(self._config.visibility_timeout),
        }

        def run(conn: Connection) -> int:
            return self._driver.execute(conn, self._sql.extend, params).rowcount

        if not await self._table.call(run):
            self._counters.leases_lost += 1
            return False
        self._counters.extended += 1
        return True

    async def release(self, delivery: Delivery) -> None:
        """Give the job back for immediate redelivery, its try un-counted (W7, PJ6); a
        stale release changes nothing. One statement: wholly or not at all."""
        params = {"id": delivery.job.id, "token": delivery.receipt, "channel": self._channel}

        def run(conn: Connection) -> int:
            return len(self._driver.execute(conn, self._sql.release, params).fetchall())

        if await self._table.call(run):
            self._counters.released += 1
        else:
            self._counters.stale += 1

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """Dead letters of `queue`, oldest first (W8): one SELECT. A checkpoint."""
        check_queue(queue)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidArgumentError(f"limit must be an int >= 0, got {limit!r}")
        params = {"queue": queue, "limit": limit}

        def run(conn: Connection) -> list[tuple[Any, ...]]:
            return self._driver.execute(conn, self._sql.dead_letters, params).fetchall()

        letters: list[DeadLetter] = []
        for row in await self._table.call(run):
            job = job_from_row(row)
            attempt, error, failed_at = row[12], row[13], row[14]
            letters.append(
                DeadLetter(
                    id=job.id,
                    job=dataclasses.replace(job, attempt=int(attempt)),
                    error=str(error),
                    failed_at=utc(failed_at),
                )
            )
        return letters

    async def redrive(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Re-queue dead letters of `queue` (all when `ids` is None) with their enqueued
        attempt (W8, PJ6); returns how many. One statement: all of them or none."""
        check_queue(queue)
        if ids is not None and not ids:
            await self._table.checkpoint_open()
            return 0
        params = {
            "queue": queue,
            "all": ids is None,
            "ids": [] if ids is None else [str(i) for i in ids],
            "channel": self._channel,
        }

        def run(conn: Connection) -> int:
            return len(self._driver.execute(conn, self._sql.redrive, params).fetchall())

        moved = await self._table.call(run)
        self._counters.redriven += moved
        return moved

    # -- extras -----------------------------------------------------------------------

    async def ensure_schema(self) -> None:
        """Create the table and its indexes now if they do not exist (PJ1); idempotent.

        Every other call does this on first use; call it at deployment time to surface
        permission problems early. A checkpoint; a cancelled call created all or nothing
        (one transaction).
        """
        await self._table.ensure_schema()

    async def get(self, job_id: str) -> Job | None:
        """The stored job with `job_id` as enqueued while it is waiting or leased, or
        None once it completed or was dead-lettered. One SELECT; a checkpoint."""

        def run(conn: Connection) -> tuple[Any, ...] | None:
            return self._driver.execute(conn, self._sql.get, {"id": job_id}).fetchone()

        row = await self._table.call(run)
        return None if row is None else job_from_row(row)

    async def queue_statistics(self, queue: str) -> PostgresQueueStatistics:
        """What the table holds for `queue` (one SELECT). A checkpoint."""
        check_queue(queue)

        def run(conn: Connection) -> tuple[Any, ...] | None:
            return self._driver.execute(conn, self._sql.queue_stats, {"queue": queue}).fetchone()

        row = await self._table.call(run)
        assert row is not None  # an aggregate always returns one row
        ready, delayed, leased, dead, done = (int(v) for v in row)
        return PostgresQueueStatistics(
            ready=ready, delayed=delayed, leased=leased, dead=dead, done=done
        )

    async def cleanup_done(self) -> int:
        """Delete up to ``cleanup_batch`` ``done`` rows finished more than
        ``dedupe_retention`` seconds ago (PJ3); returns how many. One statement."""
        params = {
            "keep": float(self._config.dedupe_retention),
            "limit": self._config.cleanup_batch,
        }

        def run(conn: Connection) -> int:
            return self._driver.execute(conn, self._sql.cleanup, params).rowcount

        deleted = max(0, await self._table.call(run))
        self._counters.cleaned_rows += deleted
        return deleted

    def statistics(self) -> PostgresJobsStatistics:
        """A snapshot of this client's counters (no I/O)."""
        c = self._counters
        return PostgresJobsStatistics(
            enqueued=c.enqueued,
            delayed=c.delayed,
            duplicates=c.duplicates,
            claimed=c.claimed,
            completed=c.completed,
            retried=c.retried,
            dead_lettered=c.dead_lettered,
            expired_dead_lettered=c.expired_dead_lettered,
            released=c.released,
            stale=c.stale,
            extended=c.extended,
            leases_lost=c.leases_lost,
            redriven=c.redriven,
            cleaned_rows=c.cleaned_rows,
            notifications=self._listener.notifications,
            listen_errors=self._listener.errors,
            listening=self._listener.connected,
            schema_ready=self._table.schema_ready,
            closed=self._driver.closed,
            driver=self._driver.statistics(),
        )

    # -- internals ------------------------------------------------------------------------

    async def _claim_once(
        self, queues: list[str], max_jobs: int, *, want_next: bool
    ) -> tuple[list[Delivery], float | None]:
        token = secrets.token_hex(16)
        params = {
            "queues": queues,
            "limit": max_jobs,
            "max": self._config.max_attempts,
            "token": token,
            "vt": float(self._config.visibility_timeout),
        }

        def run(conn: Connection) -> tuple[list[tuple[Any, ...]], float | None]:
            rows = self._driver.execute(conn, self._sql.claim, params).fetchall()
            if any(row[1] is not None for row in rows) or not want_next:
                return rows, None
            due = self._driver.execute(conn, self._sql.next_due, {"queues": queues}).fetchone()
            return rows, None if due is None or due[0] is None else float(due[0])

        undo = _GiveBack(self._driver, self._sql.give_back, token, self._channel)
        rows, next_due = await self._table.call(run, undo=undo)
        deliveries: list[Delivery] = []
        for row in rows:
            if row[1] is None:  # the marker row: expired leases dead-lettered (PJ4)
                self._counters.expired_dead_lettered += int(row[0])
                continue
            job = job_from_row(row)
            delivered = dataclasses.replace(job, attempt=job.attempt + int(row[12]) - 1)
            deliveries.append(Delivery(job=delivered, receipt=token))
        self._counters.claimed += len(deliveries)
        return deliveries, next_due

    def _enqueue_many_params(self, chunk: list[tuple[int, Job]]) -> dict[str, Any]:
        """The arrays of one ``enqueue_many`` statement, a row per job in `chunk`."""
        batch = [job for _, job in chunk]
        return {
            "ids": [job.id for job in batch],
            "queues": [job.queue for job in batch],
            "names": [job.name for job in batch],
            "payloads": [bytes(job.payload) for job in batch],
            "headers": [json.dumps(dict(job.headers)) for job in batch],
            "content_types": [job.content_type for job in batch],
            "tenants": [job.tenant_id for job in batch],
            "keys": [job.idempotency_key for job in batch],
            "run_ats": [job.run_at for job in batch],
            "created_ats": [job.created_at for job in batch],
            "fencings": [job.fencing_token for job in batch],
            "attempts": [job.attempt for job in batch],
            "channel": self._channel,
        }

    async def _maybe_cleanup(self) -> None:
        """The amortised cleanup of PJ3, before an enqueue; never raises a driver error."""
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        interval = self._config.cleanup_interval
        assert interval is not None  # otherwise _next_cleanup is +inf
        self._next_cleanup = now + interval
        try:
            await self.cleanup_done()
        except SchedulerError as exc:
            self._driver.check_open()
            _log.warning("cleanup of %s failed (will retry): %s", self._table.name, exc)


@final
class _GiveBack:
    """The undo of an abandoned claim (P3, PJ4): make the rows this call's token leased
    ready again, their try un-counted. Runs in a worker thread; token-checked, so it
    never touches a row another claim holds."""

    __slots__ = ("_channel", "_driver", "_statement", "_token")

    def __init__(
        self, driver: PostgresDriver, statement: sql.Composed, token: str, channel: str
    ) -> None:
        self._driver = driver
        self._statement = statement
        self._token = token
        self._channel = channel

    def __call__(self, conn: Connection) -> None:
        # The token names this one claim call's rows; a row leased again since has
        # another token and is not touched.
        params = {"token": self._token, "channel": self._channel}
        back = len(self._driver.execute(conn, self._statement, params).fetchall())
        if back:
            _log.debug("gave back %d job(s) of an abandoned or failed claim", back)


# -- helpers ------------------------------------------------------------------------


def _enqueue_chunks(jobs: list[tuple[int, Job]]) -> list[list[tuple[int, Job]]]:
    """The statements of one ``enqueue_many`` (PJ3), as (call index, job) chunks.

    A job whose id or idempotency key repeats one of an earlier job of the batch goes
    one round later than it, so the earlier job is decided first, as with one enqueue
    per job in order. Jobs of one round have distinct ids and keys, so their order
    inside the round changes no outcome: each round is sorted by key, then id (the
    order every batch locks index entries in: no deadlock between racing batches), and
    cut into chunks of ``_ENQUEUE_CHUNK``.
    """
    round_of_id: dict[str, int] = {}
    round_of_key: dict[str, int] = {}
    rounds: list[list[tuple[int, Job]]] = []
    for item in jobs:
        job = item[1]
        key = job.idempotency_key
        after = round_of_id.get(job.id, -1)
        if key is not None:
            after = max(after, round_of_key.get(key, -1))
        number = after + 1
        round_of_id[job.id] = number
        if key is not None:
            round_of_key[key] = number
        if number == len(rounds):
            rounds.append([])
        rounds[number].append(item)
    chunks: list[list[tuple[int, Job]]] = []
    for batch in rounds:
        batch.sort(key=_insert_order)
        chunks += (batch[i : i + _ENQUEUE_CHUNK] for i in range(0, len(batch), _ENQUEUE_CHUNK))
    return chunks


def _batch_holders(
    jobs: list[tuple[int, Job]], stored: dict[int, bool]
) -> tuple[dict[int, str | None], list[tuple[int, str | None, str | None]]]:
    """Who holds the id or key of each refused job of a batch, when it was decided.

    A job refused for an earlier job of the batch gets that job's id. Otherwise the
    holder is a row stored before the call; a later job of the batch may since have
    stored a row with the same id or key (the refused job's twin), which the lookup
    must skip: no older row can hold what that twin could store. Returns the holders
    known here and, for the others, (index, id or None, key or None) to look up.
    """
    by_id: dict[str, int] = {}  # id -> index of the batch job that stored it
    by_key: dict[str, tuple[int, str]] = {}  # key -> (index, id) of that job
    for index, job in jobs:
        if index in stored:
            by_id[job.id] = index
            if job.idempotency_key is not None:
                by_key[job.idempotency_key] = (index, job.id)
    holders: dict[int, str | None] = {}
    lookup: list[tuple[int, str | None, str | None]] = []
    for index, job in jobs:
        if index in stored:
            continue
        key = job.idempotency_key
        twin_by_id = by_id.get(job.id)
        twin_by_key = None if key is None else by_key.get(key)
        if twin_by_id is not None and twin_by_id < index:
            holders[index] = job.id
        elif twin_by_key is not None and twin_by_key[0] < index:
            holders[index] = twin_by_key[1]
        else:
            # A twin stored later took an id or key no older row held: skip it.
            lookup.append(
                (
                    index,
                    job.id if twin_by_id is None else None,
                    key if twin_by_key is None else None,
                )
            )
    return holders, lookup


def _insert_order(item: tuple[int, Job]) -> tuple[bool, str, str]:
    job = item[1]
    key = job.idempotency_key
    return key is None, key or "", job.id
