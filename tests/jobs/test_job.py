"""The `Job` value: text no backend can store is refused at construction, and jobs read
back from storage are rebuilt without that check (trio_sched.jobs._job)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from trio_sched import InvalidArgumentError
from trio_sched.jobs import Job, _redis_codec
from trio_sched.jobs._job import restored_job, with_attempt


def _job(**fields: Any) -> Job:
    values: dict[str, Any] = {"id": "job-1", "name": "work", "queue": "q"}
    values.update(fields)
    return Job(**values)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"id": "job\x00"}, "Job.id must not contain a NUL character"),
        ({"name": "wo\x00rk"}, "Job.name must not contain a NUL character"),
        ({"queue": "\x00"}, "Job.queue must not contain a NUL character"),
        ({"content_type": "text/plain\x00"}, "Job.content_type must not contain a NUL"),
        ({"tenant_id": "acme\x00"}, "Job.tenant_id must not contain a NUL character"),
        ({"idempotency_key": "k\x00"}, "Job.idempotency_key must not contain a NUL"),
        ({"headers": {"a\x00": "b"}}, "a Job header name must not contain a NUL"),
        ({"headers": {"team": "b\x00"}}, "the Job header 'team' must not contain a NUL"),
        ({"tenant_id": "lone \ud800"}, "Job.tenant_id must be valid Unicode"),
        ({"headers": {"team": "\udfff"}}, "the Job header 'team' must be valid Unicode"),
        ({"headers": {"\ud800": "x"}}, "a Job header name must be valid Unicode"),
    ],
)
def test_text_no_backend_stores_is_refused_at_construction(
    fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        _job(**fields)
    assert str(info.value).startswith(words)
    with pytest.raises(InvalidArgumentError):  # replace() constructs, so checks, too
        dataclasses.replace(_job(), **fields)


def test_other_text_and_binary_payloads_are_kept() -> None:
    job = _job(
        name="Bericht-München",
        tenant_id="ünïcödé",
        headers={"équipe": "naïve ✓", "tab": "a\tb"},
        payload=b"\x00\xff binary",
        content_type="text/plain; charset=utf-8",
    )
    assert job.headers == {"équipe": "naïve ✓", "tab": "a\tb"}
    assert job.payload == b"\x00\xff binary"


def test_field_types_are_still_left_to_the_runtimes() -> None:
    # The text check skips what is not a str (a runtime's enqueue names it), instead of
    # failing with a TypeError of its own.
    job = _job(tenant_id=7, headers={"n": 1})
    assert job.tenant_id == 7


def test_a_job_stored_with_a_nul_by_an_earlier_version_is_still_read_back() -> None:
    # Redis stored NUL characters before Job refused them; reading such a job (claim,
    # get, dead letters) must not fail, or every claim of its queue would.
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    values = {f.name: getattr(_job(), f.name) for f in dataclasses.fields(Job)}
    values.update(headers={"team": "a\x00b"}, tenant_id="t\x00", run_at=now, created_at=now)
    stored = restored_job(**values)
    body = _redis_codec.encode_job(stored)
    job = _redis_codec.decode_job(body)
    assert job == stored
    assert job.headers == {"team": "a\x00b"}
    again = with_attempt(job, 3)
    assert again.attempt == 3
    assert again.headers == job.headers
    with pytest.raises(TypeError):
        job.headers["x"] = "y"  # type: ignore[index]


def test_restored_job_takes_exactly_every_field() -> None:
    with pytest.raises(TypeError, match="exactly the fields"):
        restored_job(id="a", name="b", queue="q")
