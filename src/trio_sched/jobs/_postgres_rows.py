"""A job as a row of the jobs table (rules PJ1, PJ3 of `trio_sched.jobs.postgres`).

`check_job` refuses, before any statement, a job Postgres cannot store as it is (a NUL
character, invalid Unicode, a naive datetime, a number outside Postgres' integer
ranges), so one bad job never fails a whole batch (PJ3); `check_queue` checks a queue
name. `job_from_row` reads a stored job back from the columns of `JOB_COLUMNS`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from trio_sched._errors import InvalidArgumentError, SchedulerError
from trio_sched.jobs._job import Job

__all__ = ["check_job", "check_queue", "job_from_row", "utc"]

_BIGINT_MIN: Final = -(2**63)
_BIGINT_MAX: Final = 2**63 - 1
_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1


def job_from_row(row: tuple[Any, ...]) -> Job:
    try:
        headers = row[4]
        if isinstance(headers, str):
            headers = json.loads(headers)
        return Job(
            id=str(row[0]),
            name=str(row[1]),
            queue=str(row[2]),
            payload=bytes(row[3]),
            headers={str(k): str(v) for k, v in headers.items()},
            content_type=str(row[5]),
            tenant_id=row[6],
            idempotency_key=row[7],
            run_at=None if row[8] is None else utc(row[8]),
            created_at=None if row[9] is None else utc(row[9]),
            fencing_token=None if row[10] is None else int(row[10]),
            attempt=int(row[11]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SchedulerError(f"a stored job is not in the expected format: {exc}") from exc


def utc(value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise SchedulerError(f"postgres jobs runtime: expected a timestamptz, got {value!r}")
    return value.astimezone(UTC)


def check_queue(queue: object) -> str:
    if not isinstance(queue, str) or not queue:
        raise InvalidArgumentError(f"queue must be a non-empty str, got {queue!r}")
    return queue


def check_job(job: Job) -> None:
    """Refuse, before any statement, a job Postgres cannot store as it is (PJ3): the
    driver would otherwise fail the whole statement, and with it a whole batch."""
    check_queue(job.queue)
    for name in ("id", "name", "content_type", "tenant_id", "idempotency_key"):
        value = getattr(job, name)
        if value is not None or name in ("id", "name", "content_type"):
            _check_text(name, value)
    for header, value in job.headers.items():
        _check_text("header name", header)
        _check_text(f"header {header!r}", value)
    if not isinstance(job.payload, bytes | bytearray | memoryview):
        raise InvalidArgumentError(f"payload must be bytes, got {type(job.payload).__name__}")
    for name in ("run_at", "created_at"):
        value = getattr(job, name)
        if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
            raise InvalidArgumentError(f"{name} must be an aware datetime, got {value!r}")
    if job.fencing_token is not None:
        _bigint("fencing_token", job.fencing_token)
    attempt = job.attempt
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise InvalidArgumentError(f"attempt must be an int, got {attempt!r}")
    if not _INT_MIN <= attempt <= _INT_MAX:
        raise InvalidArgumentError(f"attempt is outside Postgres' integer range: {attempt!r}")


def _check_text(what: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a str, got {value!r}")
    if "\x00" in value:
        raise InvalidArgumentError(f"{what} contains a NUL character, which Postgres refuses")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(f"{what} is not valid Unicode: {value!r}") from None


def _bigint(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be an int, got {value!r}")
    if not _BIGINT_MIN <= value <= _BIGINT_MAX:
        raise InvalidArgumentError(f"{what} is outside Postgres' bigint range: {value!r}")
    return value
