"""Run the conformance suites on the memory backends, and prove the lock suite can fail.

The lock suite needs every provider `make()` returns to share one backend (rule LS4 of
`trio_sched.testing._locks`). For the memory provider that is one `MemoryLockProvider`
seen through `_View` objects: a view forwards everything, and its ``aclose`` closes the
view only, as closing one Redis client leaves the server up.

The mutants at the end are providers with one deliberate bug each; the suite must
reject every one of them, which shows its checks can fail.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_sched import ClosedError, ConflictError, InvalidArgumentError, LeaseLostError
from trio_sched.jobs import BatchJobsRuntime, Job, MemoryJobs
from trio_sched.locks import AcquireRequest, Held, LockLease, LockProvider, MemoryLockProvider
from trio_sched.testing import CheckFailed, check_jobs_runtime, check_lock_provider


class _View:
    """One client of a shared `MemoryLockProvider`; closing it leaves the others open."""

    def __init__(self, shared: MemoryLockProvider) -> None:
        self.shared = shared
        self.closed = False

    def _open(self) -> MemoryLockProvider:
        if self.closed:
            raise ClosedError("view closed")
        return self.shared

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        return await self._open().acquire(key, ttl)

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        return await self._open().acquire_batch(requests)

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        return await self._open().renew(lease, ttl)

    async def release(self, lease: LockLease) -> bool:
        return await self._open().release(lease)

    async def mark_dispatched(self, leases: Sequence[LockLease]) -> list[bool]:
        return await self._open().mark_dispatched(leases)

    async def get_watermarks(self, names: Sequence[str]) -> dict[str, int]:
        return await self._open().get_watermarks(names)

    async def advance_watermarks(self, marks: Mapping[str, int]) -> None:
        await self._open().advance_watermarks(marks)

    async def health_check(self) -> None:
        await self._open().health_check()

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


def views_of(
    shared: MemoryLockProvider, view: Callable[[MemoryLockProvider], _View] = _View
) -> Callable[[], AbstractAsyncContextManager[LockProvider]]:
    @asynccontextmanager
    async def make() -> AsyncIterator[LockProvider]:
        client = view(shared)
        try:
            yield client
        finally:
            await client.aclose()

    return make


# -- the suites pass on the memory backends --------------------------------------------


async def test_lock_suite_real_time() -> None:
    shared = MemoryLockProvider()
    await check_lock_provider(views_of(shared), ttl=0.2)
    assert shared.statistics().acquires > 0


async def test_lock_suite_monotonic_clock() -> None:
    shared = MemoryLockProvider(clock=time.monotonic)
    await check_lock_provider(views_of(shared), ttl=0.2)


async def test_lock_suite_autojump(autojump_clock: trio.testing.MockClock) -> None:
    shared = MemoryLockProvider()
    start = trio.current_time()
    await check_lock_provider(views_of(shared), ttl=30.0)
    # The suite waited through trio.sleep, so virtual time moved by whole TTL multiples.
    assert trio.current_time() - start >= 30.0 * 3


async def test_lock_suite_with_explicit_advance(autojump_clock: trio.testing.MockClock) -> None:
    advanced: list[float] = []

    async def advance(seconds: float) -> None:
        advanced.append(seconds)
        autojump_clock.jump(seconds)
        await trio.lowlevel.checkpoint()

    await check_lock_provider(views_of(MemoryLockProvider()), ttl=1.0, advance=advance)
    assert advanced  # the suite used the hook for every wait


async def test_lock_suite_closes_what_it_opens(autojump_clock: trio.testing.MockClock) -> None:
    opened: list[_View] = []

    def view(shared: MemoryLockProvider) -> _View:
        opened.append(_View(shared))
        return opened[-1]

    await check_lock_provider(views_of(MemoryLockProvider(), view), ttl=0.2)
    assert len(opened) == 3
    assert all(v.closed for v in opened)


async def _read_back(jobs: MemoryJobs, job_id: str) -> Job | None:
    await trio.lowlevel.checkpoint()
    return next((job for job in jobs.enqueued if job.id == job_id), None)


async def test_jobs_suite_memory_running(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    # MemoryJobs has enqueue_many, so the suite must run its batch checks (rule JS5).
    assert isinstance(MemoryJobs(), BatchJobsRuntime)
    batches: list[int] = []
    real = MemoryJobs.enqueue_many

    async def counted(self: MemoryJobs, jobs: Sequence[Job]) -> list[Exception | None]:
        batches.append(len(jobs))
        return await real(self, jobs)

    monkeypatch.setattr(MemoryJobs, "enqueue_many", counted)
    await check_jobs_runtime(MemoryJobs, read_back=_read_back)
    assert 0 in batches  # the empty batch, among others
    assert len(batches) >= 5


async def test_jobs_suite_memory_with_subscriber(autojump_clock: trio.testing.MockClock) -> None:
    handled: list[Job] = []

    @asynccontextmanager
    async def make() -> AsyncIterator[MemoryJobs]:
        async with MemoryJobs() as jobs:

            async def handler(job: Job) -> None:
                handled.append(job)
                await trio.sleep(1)

            jobs.subscribe("fixed-queue", handler)
            yield jobs

    await check_jobs_runtime(make, read_back=_read_back, queue="fixed-queue")
    assert handled  # the jobs the suite enqueued really reached a handler


async def test_jobs_suite_memory_not_entered(autojump_clock: trio.testing.MockClock) -> None:
    # Rule J1: a MemoryJobs that was never entered buffers and records.
    @asynccontextmanager
    async def make() -> AsyncIterator[MemoryJobs]:
        jobs = MemoryJobs()
        try:
            yield jobs
        finally:
            await jobs.aclose()

    await check_jobs_runtime(make, read_back=_read_back)


# -- mutants: each breaks one rule; the suite must notice --------------------------------


class _Tracking(_View):
    """Remembers the latest lease granted per key (shared by all views of one mutant)."""

    holders: dict[str, LockLease]

    def __init__(self, shared: MemoryLockProvider, holders: dict[str, LockLease]) -> None:
        super().__init__(shared)
        self.holders = holders

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        lease = await super().acquire(key, ttl)
        if lease is not None:
            self.holders[key] = lease
        return lease

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        results = await super().acquire_batch(requests)
        self.holders.update({r.key: r for r in results if isinstance(r, LockLease)})
        return results


class _RenewIgnoresToken(_Tracking):
    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        real = self.holders.get(lease.key, lease)  # bug: whoever holds the key
        renewed = await super().renew(real, ttl)
        return dataclasses.replace(renewed, token=lease.token)


class _ReleaseIgnoresToken(_Tracking):
    async def release(self, lease: LockLease) -> bool:
        return await super().release(self.holders.get(lease.key, lease))  # bug, as above


class _RepeatingFencing(_View):
    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        lease = await super().acquire(key, ttl)
        return None if lease is None else dataclasses.replace(lease, fencing_token=7)


class _PerKeyFencing(_View):
    """Fencing tokens that only increase per key (1 for every fresh key)."""

    counts: dict[str, int]

    def __init__(self, shared: MemoryLockProvider, counts: dict[str, int]) -> None:
        super().__init__(shared)
        self.counts = counts

    def _fence(self, lease: LockLease) -> LockLease:
        self.counts[lease.key] = self.counts.get(lease.key, 0) + 1
        return dataclasses.replace(lease, fencing_token=self.counts[lease.key])

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        lease = await super().acquire(key, ttl)
        return None if lease is None else self._fence(lease)

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        return [
            self._fence(lease) if isinstance(lease, LockLease) else lease
            for lease in await super().acquire_batch(requests)
        ]


class _RenewResurrects(_View):
    """renew of an expired lease takes the key again instead of raising."""

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        try:
            return await super().renew(lease, ttl)
        except LeaseLostError:
            fresh = await super().acquire(lease.key, ttl)
            if fresh is None:
                raise
            return dataclasses.replace(fresh, token=lease.token)


class _NoExpiry(_View):
    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        return await super().acquire(key, ttl * 1000)


class _RenewDoesNotExtend(_View):
    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        await trio.lowlevel.checkpoint()
        return lease


class _BatchIgnoresWatermarks(_View):
    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        return await super().acquire_batch(
            [dataclasses.replace(r, watermark=None) for r in requests]
        )


class _WatermarkMovesBack(_View):
    overlay: dict[str, int]

    def __init__(self, shared: MemoryLockProvider, overlay: dict[str, int]) -> None:
        super().__init__(shared)
        self.overlay = overlay

    async def advance_watermarks(self, marks: Mapping[str, int]) -> None:
        await super().advance_watermarks(marks)
        self.overlay.update(marks)  # bug: takes the new value even when lower

    async def get_watermarks(self, names: Sequence[str]) -> dict[str, int]:
        got = await super().get_watermarks(names)
        got.update({name: self.overlay[name] for name in names if name in self.overlay})
        return got


class _NotExclusive(_View):
    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        lease = await super().acquire(key, ttl)
        if lease is None:  # bug: answers as if a held key were free
            lease = await super().acquire(f"{key}:shadow:{time.monotonic_ns()}", ttl)
            assert lease is not None
            lease = dataclasses.replace(lease, key=key)
        return lease


class _HeldAsNone(_View):
    """Answers None for a held key (no way to watch for a takeover)."""

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        results = await super().acquire_batch(requests)
        return [None if isinstance(r, Held) else r for r in results]


class _NoTakeoverName(_View):
    """Takes an expired lease over without naming the old token."""

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        results = await super().acquire_batch(requests)
        return [
            dataclasses.replace(r, taken_over=None) if isinstance(r, LockLease) else r
            for r in results
        ]


class _MarkDoesNothing(_View):
    """mark_dispatched answers True without marking: dispatched occurrences are taken
    over once their lease runs out."""

    async def mark_dispatched(self, leases: Sequence[LockLease]) -> list[bool]:
        await trio.lowlevel.checkpoint()
        return [True] * len(leases)


class _MarkIgnoresToken(_Tracking):
    async def mark_dispatched(self, leases: Sequence[LockLease]) -> list[bool]:
        return await super().mark_dispatched([self.holders.get(x.key, x) for x in leases])


class _ForgetsAtLeaseEnd(_View):
    """Keeps a record only as long as its lease (no memory): a dispatched occurrence is
    free again once its lease runs out."""

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | None]:
        return await super().acquire_batch([dataclasses.replace(r, keep=0.0) for r in requests])


class _CloseDoesNothing(_View):
    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


# mutant -> (view factory, the check that must catch it)
def _mutants() -> dict[str, tuple[Callable[[MemoryLockProvider], _View], str]]:
    holders: dict[str, LockLease] = {}
    counts: dict[str, int] = {}
    overlay: dict[str, int] = {}
    return {
        "renew-ignores-token": (lambda s: _RenewIgnoresToken(s, holders), "wrong-token"),
        "release-ignores-token": (lambda s: _ReleaseIgnoresToken(s, holders), "wrong-token"),
        "renew-resurrects-expired": (_RenewResurrects, "stale-token"),
        "fencing-repeats": (_RepeatingFencing, "independent-keys"),
        "fencing-per-key": (lambda s: _PerKeyFencing(s, counts), "independent-keys"),
        "ttl-never-expires": (_NoExpiry, "ttl-expiry"),
        "renew-does-not-extend": (_RenewDoesNotExtend, "renew-extends"),
        "batch-ignores-watermarks": (_BatchIgnoresWatermarks, "acquire-batch"),
        "watermark-moves-back": (lambda s: _WatermarkMovesBack(s, overlay), "watermarks"),
        "not-exclusive": (_NotExclusive, "exclusive"),
        "held-answered-none": (_HeldAsNone, "acquire-batch"),
        "takeover-names-nobody": (_NoTakeoverName, "takeover"),
        "mark-does-nothing": (_MarkDoesNothing, "takeover"),
        "mark-ignores-token": (lambda s: _MarkIgnoresToken(s, holders), "takeover"),
        "forgets-at-lease-end": (_ForgetsAtLeaseEnd, "takeover"),
        "aclose-does-nothing": (_CloseDoesNothing, "aclose"),
    }


@pytest.mark.parametrize("mutant", sorted(_mutants()))
async def test_lock_suite_rejects_mutant(
    mutant: str, autojump_clock: trio.testing.MockClock
) -> None:
    view, check = _mutants()[mutant]
    with pytest.raises(AssertionError) as info:
        await check_lock_provider(views_of(MemoryLockProvider(), view), ttl=1.0)
    assert isinstance(info.value, CheckFailed)
    assert str(info.value).startswith(f"check_lock_provider [{check}]: "), str(info.value)


class _JobsMutant:
    """A JobsRuntime with one switchable bug, recording jobs like MemoryJobs."""

    def __init__(self, bug: str) -> None:
        self.bug = bug
        self.jobs: dict[str, Job] = {}
        self.keys: set[str] = set()
        self.closed = False

    async def __aenter__(self) -> _JobsMutant:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def enqueue(self, job: Job) -> None:
        if self.bug != "close-ignored" and self.closed:
            raise ClosedError("closed")
        key = job.idempotency_key
        if self.bug == "racy-dedupe":
            seen = key in self.keys
            await trio.lowlevel.checkpoint()  # bug: check and record are two steps
        else:
            await trio.lowlevel.checkpoint()
            seen = key in self.keys
        if key is not None and seen and self.bug != "no-dedupe":
            raise ConflictError(key)
        same_name = any(j.name == job.name for j in self.jobs.values())
        if self.bug == "dedupe-without-key" and key is None and same_name:
            raise ConflictError(job.name)  # bug: keyless jobs deduped by name
        if key is not None:
            self.keys.add(key)
        if self.bug == "drops-headers":
            job = dataclasses.replace(job, headers={})
        if self.bug == "naive-run-at" and job.run_at is not None:
            job = dataclasses.replace(job, run_at=job.run_at.replace(tzinfo=None))
        if self.bug == "fencing-as-str" and job.fencing_token is not None:
            job = dataclasses.replace(job, fencing_token=str(job.fencing_token))  # type: ignore[arg-type]
        self.jobs[job.id] = job

    async def health_check(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


async def _mutant_read_back(runtime: _JobsMutant, job_id: str) -> Job | None:
    await trio.lowlevel.checkpoint()
    return runtime.jobs.get(job_id)


class _BatchMutant(_JobsMutant):
    """A `_JobsMutant` with ``enqueue_many`` (a `BatchJobsRuntime`), with one
    switchable batch bug."""

    calls = 0

    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        _BatchMutant.calls += 1
        if self.bug != "batch-accepts-non-jobs" and not all(isinstance(j, Job) for j in jobs):
            raise InvalidArgumentError("not a Job")
        if self.bug == "batch-empty-no-checkpoint" and not jobs:
            return []
        await trio.lowlevel.checkpoint()
        if self.bug != "batch-close-ignored" and self.closed:
            raise ClosedError("closed")
        known = set(self.keys)  # the keys before the call
        results: list[Exception | None] = []
        for job in jobs:
            key = job.idempotency_key
            seen = key in (known if self.bug == "batch-in-call-duplicates" else self.keys)
            if key is not None and seen and self.bug != "batch-no-dedupe":
                if self.bug == "batch-raises-on-conflict":
                    raise ConflictError(key)
                results.append(None if self.bug == "batch-hides-conflicts" else ConflictError(key))
                continue
            if key is not None:
                self.keys.add(key)
            if self.bug != "batch-drops-last" or job is not jobs[-1]:
                self.jobs[job.id] = job
            results.append(None)
        if self.bug == "batch-results-reversed":
            results.reverse()
        return results


async def test_jobs_suite_accepts_the_unbroken_mutant_base() -> None:
    # The reference doubles without a bug pass: the failures below come from the bugs.
    await check_jobs_runtime(lambda: _JobsMutant("none"), read_back=_mutant_read_back)
    before = _BatchMutant.calls
    await check_jobs_runtime(lambda: _BatchMutant("none"), read_back=_mutant_read_back)
    assert _BatchMutant.calls > before  # the batch checks ran (rule JS5)


@pytest.mark.parametrize(
    ("bug", "check"),
    [
        ("no-dedupe", "dedupe"),
        ("racy-dedupe", "race-duplicates"),
        ("dedupe-without-key", "no-key"),
        ("drops-headers", "fields-survive"),
        ("naive-run-at", "fields-survive"),
        ("fencing-as-str", "fields-survive"),
        ("close-ignored", "aclose"),
    ],
)
async def test_jobs_suite_rejects_mutant(bug: str, check: str) -> None:
    with pytest.raises(AssertionError) as info:
        await check_jobs_runtime(lambda: _JobsMutant(bug), read_back=_mutant_read_back)
    assert str(info.value).startswith(f"check_jobs_runtime [{check}]: "), str(info.value)


@pytest.mark.parametrize(
    ("bug", "check"),
    [
        ("batch-drops-last", "batch-stores"),
        ("batch-no-dedupe", "batch-dedupe"),
        ("batch-results-reversed", "batch-dedupe"),
        ("batch-raises-on-conflict", "batch-dedupe"),
        ("batch-hides-conflicts", "batch-dedupe"),
        ("batch-in-call-duplicates", "batch-duplicate-in-call"),
        ("batch-empty-no-checkpoint", "batch-empty"),
        ("batch-accepts-non-jobs", "batch-not-a-job"),
        ("batch-close-ignored", "aclose"),
    ],
)
async def test_jobs_suite_rejects_batch_mutant(bug: str, check: str) -> None:
    with pytest.raises(AssertionError) as info:
        await check_jobs_runtime(lambda: _BatchMutant(bug), read_back=_mutant_read_back)
    assert str(info.value).startswith(f"check_jobs_runtime [{check}]: "), str(info.value)
