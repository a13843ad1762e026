"""MemoryLockProvider against a small reference model of its records (rules L6-L8) and
pause records (L9), on random operation sequences.

The provider runs on an injected clock (a plain float the machine advances), so each
operation can run in its own short `trio.run` and the model needs no Trio at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from trio_sched import LeaseLostError
from trio_sched.locks import AcquireRequest, Held, LockLease, MemoryLockProvider, Paused

T = TypeVar("T")

KEYS = st.sampled_from(["a", "b", "c"])
TTLS = st.sampled_from([1.0, 2.0, 5.0])
KEEPS = st.sampled_from([0.0, 4.0, 10.0])
MARKS = st.sampled_from(["m1", "m2"])
NOMINALS = st.integers(min_value=0, max_value=10)


@dataclass
class _Record:
    token: str
    expires: float  # lease end
    fencing: int
    kept: float  # memory end
    dispatched: bool = False


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return trio.run(main)


class LockModel(RuleBasedStateMachine):
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.provider = MemoryLockProvider(
            clock=lambda: self.now, wall_clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)
        )
        self.held: dict[str, _Record] = {}
        self.marks: dict[str, int] = {}
        self.paused: dict[str, Paused] = {}
        self.fencing = 0

    def _record(self, key: str) -> _Record | None:
        record = self.held.get(key)
        return record if record is not None and record.kept > self.now else None

    def _owner(self, key: str) -> _Record | None:
        """The record of `key` if its lease runs (dispatched or not)."""
        record = self._record(key)
        return record if record is not None and record.expires > self.now else None

    def _take(
        self, key: str, ttl: float, keep: float, lease: LockLease | Held | None
    ) -> LockLease | None:
        record = self._record(key)
        previous = None
        if record is not None:
            if record.dispatched:
                assert lease is None, f"{key!r} is dispatched, yet answered {lease!r}"
                return None
            if record.expires > self.now:
                assert isinstance(lease, Held), f"{key!r} is leased, yet answered {lease!r}"
                assert lease.token == record.token
                assert lease.expires_in == record.expires - self.now
                return None
            previous = record.token
        assert isinstance(lease, LockLease), f"{key!r} is free, yet answered {lease!r}"
        assert lease.taken_over == previous, (lease, previous)
        self.fencing += 1
        assert lease.fencing_token == self.fencing
        kept = max(self.now + max(ttl, keep), record.kept if record is not None else 0.0)
        self.held[key] = _Record(lease.token, self.now + ttl, lease.fencing_token, kept)
        return lease

    @rule(target=leases, key=KEYS, ttl=TTLS)
    def acquire(self, key: str, ttl: float) -> LockLease | None:
        answer = _run(lambda: self.provider.acquire(key, ttl))
        record = self._record(key)
        if record is not None and not record.dispatched and record.expires > self.now:
            assert answer is None, f"{key!r} is leased, yet acquired"
            return None
        return self._take(key, ttl, ttl, answer)

    @rule(
        target=leases,
        requests=st.lists(
            st.builds(
                AcquireRequest,
                key=KEYS,
                ttl=TTLS,
                watermark=st.none() | MARKS,
                nominal_ms=NOMINALS,
                keep=KEEPS,
            ),
            max_size=4,
        ),
    )
    def acquire_batch(self, requests: list[AcquireRequest]) -> LockLease | None:
        results = _run(lambda: self.provider.acquire_batch(requests))
        assert len(results) == len(requests)
        last = None
        granted: set[str] = set()
        for request, lease in zip(requests, results, strict=True):
            if request.watermark in self.paused:  # L9: before any other check
                assert lease == self.paused[request.watermark], f"{request} is paused"
                continue
            mark = self.marks.get(request.watermark) if request.watermark else None
            if mark is not None and request.nominal_ms <= mark:
                assert lease is None, f"{request} is at or before watermark {mark}"
                continue
            if request.key in granted:
                assert lease is None, f"{request} was granted twice in one batch"
                continue
            taken = self._take(request.key, request.ttl, request.keep, lease)
            if taken is not None:
                granted.add(request.key)
                last = taken
        return last

    @rule(lease=leases, ttl=TTLS)
    def renew(self, lease: LockLease | None, ttl: float) -> None:
        if lease is None:
            return
        owner = self._owner(lease.key)
        if owner is None or owner.token != lease.token:
            try:
                _run(lambda: self.provider.renew(lease, ttl))
            except LeaseLostError:
                return
            raise AssertionError(f"renew of a lost lease {lease} succeeded")
        renewed = _run(lambda: self.provider.renew(lease, ttl))
        assert renewed.fencing_token == owner.fencing
        owner.expires = self.now + ttl
        owner.kept = max(owner.kept, owner.expires)

    @rule(lease=leases)
    def release(self, lease: LockLease | None) -> None:
        if lease is None:
            return
        owner = self._owner(lease.key)
        owns = owner is not None and owner.token == lease.token and not owner.dispatched
        assert _run(lambda: self.provider.release(lease)) == owns
        if owns:
            del self.held[lease.key]

    @rule(lease=leases)
    def mark_dispatched(self, lease: LockLease | None) -> None:
        if lease is None:
            return
        record = self._record(lease.key)
        owns = record is not None and record.token == lease.token
        assert _run(lambda: self.provider.mark_dispatched([lease])) == [owns]
        if owns:
            assert record is not None
            record.dispatched = True

    @rule(mark=MARKS, value=NOMINALS)
    def advance_watermark(self, mark: str, value: int) -> None:
        _run(lambda: self.provider.advance_watermarks({mark: value}))
        self.marks[mark] = max(value, self.marks.get(mark, value))

    @rule(mark=MARKS, paused=st.booleans())
    def set_paused(self, mark: str, paused: bool) -> None:
        record = Paused(datetime(2026, 1, 1, tzinfo=UTC), "model", mark) if paused else None
        _run(lambda: self.provider.set_paused({mark: record}))
        if record is None:
            self.paused.pop(mark, None)
        else:
            self.paused[mark] = record

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0]))
    def pass_time(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def same_state(self) -> None:
        stats = self.provider.statistics()
        assert stats.held_locks == sum(1 for key in self.held if self._owner(key))
        assert stats.last_fencing_token == self.fencing

        async def both() -> tuple[dict[str, int], dict[str, Paused]]:
            names = ["m1", "m2"]
            return await self.provider.get_watermarks(names), await self.provider.get_paused(names)

        assert _run(both) == (self.marks, self.paused)  # one trio.run: each costs ~1 ms


TestLockModel = LockModel.TestCase
# Each step is a trio.run; 30 steps keep the dev profile near 3 s. Each example is a
# whole 30-step program, so the ci profile runs 150 of them (not its 400): ~5 s
# instead of ~14 s, which the 5-minute suite cannot spare.
TestLockModel.settings = settings(
    stateful_step_count=30, max_examples=min(settings.default.max_examples, 150)
)
