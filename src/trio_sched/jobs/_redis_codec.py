"""What `RedisJobs` reads and writes on the wire: a job as stored (the values of RJ1's
``data`` hash: JSON with the payload in base64) and the shapes of Redis replies.

A stored job that does not decode, and a reply of an unexpected shape, raise
`SchedulerError`.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

from trio_sched._errors import SchedulerError
from trio_sched.jobs._job import Job, restored_job

# -- jobs -----------------------------------------------------------------------------


def encode_job(job: Job) -> str:
    return json.dumps(
        {
            "id": job.id,
            "name": job.name,
            "queue": job.queue,
            "payload": base64.b64encode(job.payload).decode("ascii"),
            "headers": dict(job.headers),
            "content_type": job.content_type,
            "tenant_id": job.tenant_id,
            "idempotency_key": job.idempotency_key,
            "run_at": None if job.run_at is None else job.run_at.isoformat(),
            "created_at": None if job.created_at is None else job.created_at.isoformat(),
            "fencing_token": job.fencing_token,
            "attempt": job.attempt,
        },
        separators=(",", ":"),
        ensure_ascii=True,
    )


def decode_job(body: str) -> Job:
    # restored_job: a job an earlier version stored with a NUL character is still read.
    try:
        raw = json.loads(body)
        return restored_job(
            id=raw["id"],
            name=raw["name"],
            queue=raw["queue"],
            payload=base64.b64decode(raw["payload"]),
            headers=raw["headers"],
            content_type=raw["content_type"],
            tenant_id=raw["tenant_id"],
            idempotency_key=raw["idempotency_key"],
            run_at=_datetime(raw["run_at"]),
            created_at=_datetime(raw["created_at"]),
            fencing_token=raw["fencing_token"],
            attempt=raw["attempt"],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SchedulerError(f"a stored job is not in the expected format: {exc}") from exc


def job_id_of(body: object) -> str:
    return decode_job(as_str(body)).id


def _datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# -- replies --------------------------------------------------------------------------


def as_fields(raw: object) -> dict[str, str]:
    if isinstance(raw, dict):
        return {as_str(k): as_str(v) for k, v in raw.items()}
    items = as_list(raw)
    return {as_str(items[i]): as_str(items[i + 1]) for i in range(0, len(items), 2)}


def as_list(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return list(value)
    raise SchedulerError(f"unexpected reply from Redis: {value!r}")


def as_pairs(value: object) -> list[tuple[object, object]]:
    pairs: list[tuple[object, object]] = []
    for item in as_list(value):
        first, second = as_list(item)
        pairs.append((first, second))
    return pairs


def as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    raise SchedulerError(f"unexpected reply from Redis: {value!r}")


def as_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise SchedulerError(f"unexpected reply from Redis: {value!r}")
