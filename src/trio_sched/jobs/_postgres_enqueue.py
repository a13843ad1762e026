"""The enqueue side of one `PostgresJobs` (rule PJ3 of `trio_sched.jobs.postgres`).

`Enqueuer` stores jobs: `Enqueuer.enqueue` with ONE statement, `Enqueuer.enqueue_many`
with one transaction of one ``INSERT ... SELECT FROM unnest(...)`` per `ENQUEUE_CHUNK`
rows, ordered by `_enqueue_chunks` (no deadlock between racing batches; a repeated id or
key decided in call order), each refused job named by who holds its id or key
(`_batch_holders`). It also deletes old ``done`` rows: amortised before an enqueue, at
most once per ``cleanup_interval``, and on demand (`Enqueuer.cleanup_done`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Final, final

from trio_sched._errors import ConflictError, InvalidArgumentError, SchedulerError
from trio_sched._postgres_common import (
    Connection,
)
from trio_sched.jobs._job import Job, check_jobs
from trio_sched.jobs._postgres_rows import check_job
from trio_sched.jobs._postgres_stats import Counters
from trio_sched.jobs._postgres_table import JobsTable

__all__ = ["ENQUEUE_CHUNK", "Enqueuer"]

# The runtime's logger: one name for all of its modules.
_log = logging.getLogger("trio_sched.jobs.postgres")

# enqueue_many: rows per INSERT statement. One transaction holds them all; chunks keep
# each statement (and its parameters) small next to ``statement_timeout``.
ENQUEUE_CHUNK: Final = 1000


@final
class Enqueuer:
    """`PostgresJobs.enqueue`, `PostgresJobs.enqueue_many` and
    `PostgresJobs.cleanup_done` (PJ3), counting in the runtime's `Counters`."""

    def __init__(
        self,
        table: JobsTable,
        counters: Counters,
        *,
        dedupe_retention: float,
        cleanup_interval: float | None,
        cleanup_batch: int,
    ) -> None:
        self._table = table
        self._driver = table.driver
        self._sql = table.sql
        self._channel = table.channel
        self._counters = counters
        self._dedupe_retention = dedupe_retention
        self._cleanup_interval = cleanup_interval
        self._cleanup_batch = cleanup_batch
        self._next_cleanup = -math.inf if cleanup_interval is not None else math.inf

    async def enqueue(self, job: Job) -> None:
        """`PostgresJobs.enqueue`: one statement (PJ3)."""
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
        """`PostgresJobs.enqueue_many`: one transaction (PJ3)."""
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

    async def cleanup_done(self) -> int:
        """`PostgresJobs.cleanup_done`: one statement (PJ3)."""
        params = {
            "keep": float(self._dedupe_retention),
            "limit": self._cleanup_batch,
        }

        def run(conn: Connection) -> int:
            return self._driver.execute(conn, self._sql.cleanup, params).rowcount

        deleted = max(0, await self._table.call(run))
        self._counters.cleaned_rows += deleted
        return deleted

    async def _maybe_cleanup(self) -> None:
        """The amortised cleanup of PJ3, before an enqueue; never raises a driver error."""
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        interval = self._cleanup_interval
        assert interval is not None  # otherwise _next_cleanup is +inf
        self._next_cleanup = now + interval
        try:
            await self.cleanup_done()
        except SchedulerError as exc:
            self._driver.check_open()
            _log.warning("cleanup of %s failed (will retry): %s", self._table.name, exc)

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


def _enqueue_chunks(jobs: list[tuple[int, Job]]) -> list[list[tuple[int, Job]]]:
    """The statements of one ``enqueue_many`` (PJ3), as (call index, job) chunks.

    A job whose id or idempotency key repeats one of an earlier job of the batch goes
    one round later than it, so the earlier job is decided first, as with one enqueue
    per job in order. Jobs of one round have distinct ids and keys, so their order
    inside the round changes no outcome: each round is sorted by key, then id (the
    order every batch locks index entries in: no deadlock between racing batches), and
    cut into chunks of ``ENQUEUE_CHUNK``.
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
        chunks += (batch[i : i + ENQUEUE_CHUNK] for i in range(0, len(batch), ENQUEUE_CHUNK))
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
