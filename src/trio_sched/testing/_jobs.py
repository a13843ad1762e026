"""`check_jobs_runtime`: the conformance suite every `JobsRuntime` runs.

Rules of the suite:
- JS1 It enqueues only through `JobsRuntime.enqueue` (and `BatchJobsRuntime.enqueue_many`
  when the runtime has it, rule JS5) and reads jobs back only through the ``read_back``
  callable the caller supplies (the protocol has no read method: a Redis runtime reads
  its stream, a Postgres runtime its table, `MemoryJobs` its ``enqueued`` record).
  ``read_back(runtime, job_id)`` returns the stored job as a worker would receive it,
  or ``None`` when no job with that id was stored.
- JS2 Job ids, idempotency keys and the queue name carry a fresh random prefix, so
  reruns and parallel runs against one server never collide.
- JS3 ``make()`` is called twice (one runtime for the checks, one to close). It needs no
  handler or worker: the suite only checks what ``enqueue`` accepts and stores.
- JS4 Each failure raises `AssertionError` (a `CheckFailed`) naming the check.
- JS5 ``enqueue_many`` is an optional capability: the ``batch-*`` checks (and the
  ``enqueue_many`` part of ``aclose``) run only when the runtime is a `BatchJobsRuntime`
  (``isinstance``), and are skipped silently otherwise. A runtime with the method is
  held to the contract of `BatchJobsRuntime`: one entry per job, in order; ``None`` for
  a stored job, `ConflictError` for a known idempotency key, also one repeated inside
  the call; ``[]`` for no jobs (a checkpoint); `InvalidArgumentError` raised for an item
  that is not a `Job`; `ClosedError` after close.
- JS6 `JobControl` is an optional capability too: the ``control-*`` checks
  (`trio_sched.testing._jobs_control`: job states through the life cycle, ``cancel``
  of queued, running and finished jobs, bad keys, checkpoints, after close) run only
  when the runtime is a `JobControl` and a `ConsumableJobs` (a job is RUNNING only once
  claimed), each on a queue of its own (``{queue}:control:{n}``); skipped silently
  otherwise. One of them waits one ``visibility_timeout``: on real servers, make
  it short (about a second); in memory, run under `trio.testing.MockClock`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

import trio
import trio.testing

from trio_sched._errors import ClosedError, ConflictError, InvalidArgumentError
from trio_sched.jobs._consumable import ConsumableJobs
from trio_sched.jobs._control import JobControl
from trio_sched.jobs._job import BatchJobsRuntime, Job, JobsRuntime
from trio_sched.testing._check import expect, fail, run_check, unique_prefix
from trio_sched.testing._jobs_control import CONTROL_CHECKS

__all__ = ["check_jobs_runtime"]

_SUITE = "check_jobs_runtime"

R = TypeVar("R", bound=JobsRuntime)


@dataclass(slots=True)
class _Ctx(Generic[R]):
    runtime: R
    make: Callable[[], AbstractAsyncContextManager[R]]
    read_back: Callable[[R, str], Awaitable[Job | None]]
    prefix: str
    queue: str
    concurrency: int
    counter: int = 0

    def job(self, label: str, **fields: Any) -> Job:
        self.counter += 1
        base = Job(
            id=f"{self.prefix}:{label}:{self.counter}", name=f"check-{label}", queue=self.queue
        )
        return dataclasses.replace(base, **fields)

    def ikey(self, label: str) -> str:
        self.counter += 1
        return f"{self.prefix}:key:{label}:{self.counter}"


async def check_jobs_runtime(
    make: Callable[[], AbstractAsyncContextManager[R]],
    *,
    read_back: Callable[[R, str], Awaitable[Job | None]],
    queue: str | None = None,
    concurrency: int = 10,
) -> None:
    """Check that the runtimes `make` returns accept, dedupe and store jobs faithfully.

    `make` returns an async context manager yielding a runtime; `read_back` reads a
    stored job by id (rule JS1); `queue` overrides the random queue name; `concurrency`
    is the number of racing enqueues. Raises `AssertionError` naming the failed check.

    When the runtime is also a `BatchJobsRuntime`, ``enqueue_many`` is checked too
    (stores each job faithfully, aligned results, conflicts by key before and inside
    the call, empty batch, non-`Job` item, after close). A runtime without
    ``enqueue_many`` skips those checks silently: that is right only because the
    capability is optional (rule JS5), so passing says nothing about batches then.
    Likewise a `JobControl` that workers can take from (`ConsumableJobs`) has its job
    states and ``cancel`` checked (rule JS6: one check waits one visibility timeout).

    How to run it for a new backend (with pytest-trio)::

        async def read_back(runtime: MyJobs, job_id: str) -> Job | None:
            return await runtime.fetch(job_id)

        async def test_my_jobs_conform():
            await check_jobs_runtime(lambda: MyJobs.open(url), read_back=read_back)
    """
    prefix = unique_prefix("jobs")
    async with make() as runtime:
        ctx = _Ctx(
            runtime=runtime,
            make=make,
            read_back=read_back,
            prefix=prefix,
            queue=queue if queue is not None else f"{prefix}:queue",
            concurrency=concurrency,
        )
        checks = _CHECKS
        if isinstance(runtime, BatchJobsRuntime):
            checks += _BATCH_CHECKS
        capable: object = runtime  # R is a JobsRuntime; these capabilities are optional
        if isinstance(capable, JobControl) and isinstance(capable, ConsumableJobs):
            checks += CONTROL_CHECKS  # rule JS6
        for name, check in checks:
            await run_check(_SUITE, name, functools.partial(check, ctx))


async def _health(ctx: _Ctx[R]) -> None:
    await ctx.runtime.health_check()


async def _fields_survive(ctx: _Ctx[R]) -> None:
    check = "fields-survive"
    run_at = datetime(2026, 3, 29, 1, 0, 0, 250_000, tzinfo=UTC)
    job = ctx.job(
        "fields",
        payload=b'{"n": 1, "bin": "\\u00ff"}\x00\xff',
        headers={
            "x-trio-sched-task": "check-fields",
            "x-trio-sched-fencing-token": "42",
            "x-unicode": "grüße ☃",
        },
        content_type="application/octet-stream",
        tenant_id="tenant-ä",
        idempotency_key=ctx.ikey("fields"),
        run_at=run_at,
        created_at=datetime(2026, 3, 29, 2, 59, 1, 500_000, tzinfo=timezone(timedelta(hours=2))),
        fencing_token=42,
        attempt=3,
    )
    await ctx.runtime.enqueue(job)
    got = await ctx.read_back(ctx.runtime, job.id)
    if got is None:
        fail(_SUITE, check, f"read_back found no job with id {job.id!r} after enqueue")
    for field in dataclasses.fields(Job):
        want_value, got_value = getattr(job, field.name), getattr(got, field.name)
        if field.name == "headers":
            want_value, got_value = dict(want_value), dict(got_value)
        expect(
            want_value == got_value,
            _SUITE,
            check,
            f"field {field.name!r} changed: enqueued {want_value!r}, read back {got_value!r}",
        )
    for field_name in ("run_at", "created_at"):
        value = getattr(got, field_name)
        expect(
            isinstance(value, datetime) and value.utcoffset() is not None,
            _SUITE,
            check,
            f"{field_name} must come back as an aware datetime, got {value!r}",
        )
    # Defaults survive too (None stays None, not "" or "None").
    plain = ctx.job("defaults")
    await ctx.runtime.enqueue(plain)
    got = await ctx.read_back(ctx.runtime, plain.id)
    expect(got == plain, _SUITE, check, f"a job with default fields changed: {plain!r} -> {got!r}")


async def _dedupe(ctx: _Ctx[R]) -> None:
    check = "dedupe"
    key = ctx.ikey("dedupe")
    first, second = ctx.job("dedupe", idempotency_key=key), ctx.job("dedupe", idempotency_key=key)
    await ctx.runtime.enqueue(first)
    try:
        await ctx.runtime.enqueue(second)
    except ConflictError:
        pass
    else:
        fail(
            _SUITE, check, "a second job with the same idempotency key did not raise ConflictError"
        )
    expect(
        await ctx.read_back(ctx.runtime, second.id) is None,
        _SUITE,
        check,
        "the rejected duplicate was stored anyway",
    )
    expect(
        await ctx.read_back(ctx.runtime, first.id) == first,
        _SUITE,
        check,
        "the first job with the key is gone or changed after a duplicate",
    )


async def _no_key_no_dedupe(ctx: _Ctx[R]) -> None:
    check = "no-key"
    jobs = [ctx.job("nokey", name="same-name") for _ in range(2)]
    for job in jobs:
        await ctx.runtime.enqueue(job)  # jobs without a key are never duplicates
    for job in jobs:
        expect(
            await ctx.read_back(ctx.runtime, job.id) == job,
            _SUITE,
            check,
            f"job {job.id!r} without idempotency key was not stored",
        )


async def _race_duplicates(ctx: _Ctx[R]) -> None:
    check = "race-duplicates"
    key = ctx.ikey("race")
    jobs = [ctx.job("race", idempotency_key=key) for _ in range(ctx.concurrency)]
    accepted: list[Job] = []
    conflicts = 0

    async def enqueue(job: Job) -> None:
        nonlocal conflicts
        try:
            await ctx.runtime.enqueue(job)
        except ConflictError:
            conflicts += 1
        else:
            accepted.append(job)

    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(enqueue, job)
    expect(
        len(accepted) == 1 and conflicts == len(jobs) - 1,
        _SUITE,
        check,
        f"{len(jobs)} concurrent enqueues of one key: {len(accepted)} accepted, "
        f"{conflicts} ConflictError; want 1 and {len(jobs) - 1}",
    )
    stored = [job for job in jobs if await ctx.read_back(ctx.runtime, job.id) is not None]
    expect(
        stored == accepted,
        _SUITE,
        check,
        f"stored {[j.id for j in stored]}, accepted {[j.id for j in accepted]}",
    )


async def _aclose(ctx: _Ctx[R]) -> None:
    check = "aclose"
    async with ctx.make() as other:
        await other.health_check()
        await other.aclose()
        await other.aclose()  # idempotent: must not raise
        try:
            await other.enqueue(ctx.job("closed"))
        except ClosedError:
            pass
        else:
            fail(_SUITE, check, "enqueue on a closed runtime did not raise ClosedError")
        if isinstance(other, BatchJobsRuntime):  # rule JS5
            try:
                await other.enqueue_many([ctx.job("closed-batch")])
            except ClosedError:
                pass
            else:
                fail(_SUITE, check, "enqueue_many on a closed runtime did not raise ClosedError")
    await ctx.runtime.health_check()  # closing one runtime leaves the others working


# -- enqueue_many (rule JS5: only for a BatchJobsRuntime) -------------------------------


def _batch_runtime(ctx: _Ctx[R], check: str) -> BatchJobsRuntime:
    runtime = ctx.runtime
    if not isinstance(runtime, BatchJobsRuntime):  # the suite runs these checks only then
        fail(_SUITE, check, "the runtime has no enqueue_many")
    return runtime


async def _enqueue_many(
    ctx: _Ctx[R], check: str, jobs: list[Job], want: list[type[Exception] | None]
) -> None:
    """Enqueue `jobs` in one call and check the entries: None, or an instance of the
    class in `want`."""
    results = await _batch_runtime(ctx, check).enqueue_many(jobs)
    expect(
        isinstance(results, list) and len(results) == len(jobs),
        _SUITE,
        check,
        f"enqueue_many of {len(jobs)} jobs must return a list of {len(jobs)} entries, "
        f"got {results!r}",
    )
    for index, (result, wanted) in enumerate(zip(results, want, strict=True)):
        ok = result is None if wanted is None else isinstance(result, wanted)
        expect(
            ok,
            _SUITE,
            check,
            f"entry {index} (job {jobs[index].id!r}): want "
            f"{'None' if wanted is None else wanted.__name__}, got {result!r}",
        )


async def _expect_stored(ctx: _Ctx[R], check: str, job: Job) -> None:
    got = await ctx.read_back(ctx.runtime, job.id)
    if got is None:
        fail(_SUITE, check, f"job {job.id!r} accepted by enqueue_many was not stored")
    # A naive datetime never equals an aware one, so this also catches a lost offset.
    changed = [
        f.name for f in dataclasses.fields(Job) if getattr(job, f.name) != getattr(got, f.name)
    ]
    expect(
        not changed,
        _SUITE,
        check,
        f"job {job.id!r} stored by enqueue_many changed in {changed}: {job!r} -> {got!r}",
    )


async def _expect_not_stored(ctx: _Ctx[R], check: str, job: Job, why: str) -> None:
    expect(
        await ctx.read_back(ctx.runtime, job.id) is None,
        _SUITE,
        check,
        f"job {job.id!r} was stored although {why}",
    )


async def _batch_stores(ctx: _Ctx[R]) -> None:
    check = "batch-stores"
    jobs = [
        ctx.job(
            "batch",
            payload=b'{"batch": true}\x00\xff',
            headers={"x-trio-sched-task": "check-batch", "x-unicode": "grüße ☃"},
            content_type="application/octet-stream",
            tenant_id="tenant-ä",
            idempotency_key=ctx.ikey("batch"),
            run_at=datetime(2026, 3, 29, 1, 0, 0, 250_000, tzinfo=UTC),
            created_at=datetime(2026, 3, 29, 2, 59, 1, tzinfo=timezone(timedelta(hours=2))),
            fencing_token=7,
            attempt=2,
        ),
        ctx.job("batch"),  # defaults, no key
        *(ctx.job("batch", idempotency_key=ctx.ikey("batch")) for _ in range(3)),
    ]
    await _enqueue_many(ctx, check, jobs, [None] * len(jobs))
    for job in jobs:
        await _expect_stored(ctx, check, job)


async def _batch_dedupe(ctx: _Ctx[R]) -> None:
    check = "batch-dedupe"
    key = ctx.ikey("batch-dedupe")
    earlier = ctx.job("batch-dedupe", idempotency_key=key)
    await ctx.runtime.enqueue(earlier)
    again = ctx.job("batch-dedupe", idempotency_key=key)
    fresh = [
        ctx.job("batch-dedupe", idempotency_key=ctx.ikey("batch-dedupe")),
        ctx.job("batch-nokey"),
    ]
    await _enqueue_many(ctx, check, [again, *fresh], [ConflictError, None, None])
    await _expect_not_stored(ctx, check, again, "its idempotency key was enqueued before")
    await _expect_stored(ctx, check, earlier)
    for job in fresh:
        await _expect_stored(ctx, check, job)


async def _batch_duplicate_in_call(ctx: _Ctx[R]) -> None:
    check = "batch-duplicate-in-call"
    key = ctx.ikey("batch-twice")
    first, second = (ctx.job("batch-twice", idempotency_key=key) for _ in range(2))
    other = ctx.job("batch-twice", idempotency_key=ctx.ikey("batch-twice"))
    await _enqueue_many(ctx, check, [first, other, second], [None, None, ConflictError])
    await _expect_not_stored(ctx, check, second, "an earlier job of the call had its key")
    await _expect_stored(ctx, check, first)
    await _expect_stored(ctx, check, other)


async def _batch_empty(ctx: _Ctx[R]) -> None:
    check = "batch-empty"
    runtime = _batch_runtime(ctx, check)
    try:
        with trio.testing.assert_checkpoints():
            results = await runtime.enqueue_many([])
    except AssertionError:
        fail(_SUITE, check, "enqueue_many([]) is not a checkpoint")
    expect(results == [], _SUITE, check, f"enqueue_many([]) must return [], got {results!r}")


async def _batch_not_a_job(ctx: _Ctx[R]) -> None:
    check = "batch-not-a-job"
    items: list[Any] = [ctx.job("batch-bad"), {"id": "not a Job"}]
    try:
        await _batch_runtime(ctx, check).enqueue_many(items)
    except InvalidArgumentError:
        pass
    else:
        fail(
            _SUITE,
            check,
            "enqueue_many with an item that is not a Job did not raise InvalidArgumentError",
        )


_CHECKS: tuple[tuple[str, Callable[[_Ctx[R]], Awaitable[None]]], ...] = (
    ("health-check", _health),
    ("fields-survive", _fields_survive),
    ("dedupe", _dedupe),
    ("no-key", _no_key_no_dedupe),
    ("race-duplicates", _race_duplicates),
    ("aclose", _aclose),
)

_BATCH_CHECKS: tuple[tuple[str, Callable[[_Ctx[R]], Awaitable[None]]], ...] = (
    ("batch-stores", _batch_stores),
    ("batch-dedupe", _batch_dedupe),
    ("batch-duplicate-in-call", _batch_duplicate_in_call),
    ("batch-empty", _batch_empty),
    ("batch-not-a-job", _batch_not_a_job),
)
