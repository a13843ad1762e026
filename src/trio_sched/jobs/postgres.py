"""`PostgresJobs`: a durable jobs runtime on PostgreSQL (``trio-sched[postgres]``).

Importing this module imports psycopg 3; ``import trio_sched.jobs`` never does::

    from trio_sched.jobs import open_worker
    from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig

    jobs = PostgresJobs(PostgresJobsConfig(url="postgresql://127.0.0.1/test"))
    async with jobs, open_worker(jobs, {"build_report": build_report}, queues=["default"]):
        ...

It implements `JobsRuntime` (enqueue), `BatchJobsRuntime` (enqueue_many),
`ConsumableJobs` (rules W1-W9 of `trio_sched.jobs._consumable`) and `JobControl` (JC1-JC5
of `trio_sched.jobs._control`, PJ8 in ``_postgres_control``) with the driver of
`trio_sched._postgres_driver` (rules P1-P4: sync psycopg in worker threads, operation
timeouts, error mapping) and the checks of `trio_sched._postgres_common` (rules P5-P8:
DSN redaction, quoted table names, configuration and table shape checks).

The rules below hold for the whole runtime; this module holds `PostgresJobs` itself
(claims, acknowledgements, dead letters), and the private modules beside it one part
each: ``_postgres_config`` (`PostgresJobsConfig`, re-exported here), ``_postgres_sql``
(the schema and every statement), ``_postgres_table`` (the driver, the channel, the
schema created on first use: PJ1), ``_postgres_enqueue`` (enqueue, enqueue_many,
cleanup: PJ3), ``_postgres_listen`` (the LISTEN connection: PJ5), ``_postgres_rows``
(what Postgres can store of a job, and a row read back), ``_postgres_stats`` (the
counters and statistics records) and ``_postgres_control`` (job state and
cancellation: PJ8).

Rules:
- PJ1 Schema, created on first use (or by `PostgresJobs.ensure_schema`) under the one
  advisory lock every trio-sched schema creation takes, with ``IF NOT EXISTS`` only
  (idempotent, safe when several processes start together): one table ``<table>``
  holding every job as enqueued (``id`` primary key, ``queue``, ``name``, ``payload
  bytea``, ``headers jsonb``, ``content_type``, ``tenant_id``, ``idempotency_key``
  UNIQUE and nullable, ``run_at``, ``created_at``, ``fencing_token``, ``attempt``) plus
  its delivery state: ``state`` (``ready``, ``leased``, ``dead``, ``done`` or
  ``cancelled``: PJ8), ``tries``
  (deliveries so far), ``lease_token``, ``leased_until``, ``available_at``,
  ``last_error``, ``failed_at``, ``dead_attempt``, ``enqueued_at``, ``finished_at``.
  Dead letters are rows in state ``dead``. Indexes: ``<table>_due_idx`` on ``(queue,
  available_at)`` for ready and leased rows (the claim), ``<table>_dead_idx``,
  ``<table>_done_idx``, ``<table>_cancelled_idx``. If the table disappears, the next
  call creates it again. A table of that name that is not a jobs table (a lock
  provider's, say) raises `ConflictError` naming it before anything is created (P8).
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
  per ``ENQUEUE_CHUNK`` rows, one NOTIFY per queue. Rows go in sorted by idempotency
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

import dataclasses
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, final

import trio

from trio_sched._closeable import ClosesOnExit
from trio_sched._errors import (
    InvalidArgumentError,
)
from trio_sched._postgres_common import (
    Connection,
    TableName,
)
from trio_sched._postgres_driver import (
    PostgresDriver,
)
from trio_sched.jobs._consumable import DeadLetter, Delivery, FailOutcome
from trio_sched.jobs._control import JobState, check_key
from trio_sched.jobs._job import Job
from trio_sched.jobs._postgres_config import PostgresJobsConfig
from trio_sched.jobs._postgres_control import Control
from trio_sched.jobs._postgres_enqueue import Enqueuer
from trio_sched.jobs._postgres_listen import Listener
from trio_sched.jobs._postgres_rows import check_queue, job_from_row, utc
from trio_sched.jobs._postgres_stats import Counters
from trio_sched.jobs._postgres_stats import PostgresJobsStatistics as PostgresJobsStatistics
from trio_sched.jobs._postgres_stats import PostgresQueueStatistics as PostgresQueueStatistics
from trio_sched.jobs._postgres_table import JobsTable

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


@final
class PostgresJobs(ClosesOnExit):
    """A `JobsRuntime`, `BatchJobsRuntime`, `ConsumableJobs` and `JobControl` on one
    Postgres table (rules PJ1-PJ8).

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
        self._control = Control(self._table)
        self._counters = Counters()
        self._enqueuer = Enqueuer(
            self._table,
            self._counters,
            dedupe_retention=self._config.dedupe_retention,
            cleanup_interval=self._config.cleanup_interval,
            cleanup_batch=self._config.cleanup_batch,
        )

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
        await self._enqueuer.enqueue(job)

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        """Store and queue `jobs` in order (`BatchJobsRuntime`, PJ3): one transaction,
        one ``INSERT ... SELECT FROM unnest(...)`` per ``ENQUEUE_CHUNK`` rows, one
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
        return await self._enqueuer.enqueue_many(jobs)

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

    async def job_state(self, idempotency_key: str) -> JobState:
        """`JobControl`: the state of the job holding `idempotency_key` (JC2, PJ8)."""
        return await self._control.job_state(check_key(idempotency_key))

    async def cancel(self, idempotency_key: str) -> bool:
        """`JobControl`: cancel the job holding `idempotency_key` (JC3, PJ8); wholly or
        not at all (one statement)."""
        return await self._control.cancel(check_key(idempotency_key))

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
        return await self._enqueuer.cleanup_done()

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
