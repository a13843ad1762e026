"""Lease guards: what keeps the lease of one in-flight dispatch (rule D7 of `_runtime`).

- G1 Every dispatch runs under a `LeaseGuard`: the lease, its TTL, when it runs out
  unrenewed (Trio time, measured from before the request that took or renewed it) and
  the deadline of the dispatch (``dispatch_timeout`` from the lock request).
- G2 One timer entry per guard serves both its first renewal (TTL/3 after the
  acquire) and its timeout, and guards whose first check falls on one instant share
  one entry (`GuardGroup`); when all of them finished before it, the entry is dropped.
- G3 The renewer is a child task started only if the dispatch still runs at TTL/3; it
  renews every TTL/3 (transient errors retried with backoff while the lease lasts) and
  on a refused renewal or an unconfirmed expiry marks the guard lost and cancels what
  it guards: a dispatch's cancel scope, or one job of a plain runtime's burst (`Slot`).
- G4 A burst's guards are made on demand (`BatchGuard`, `LeaseKeeper.arm_batch_at`):
  only if its enqueue still runs when the first of them would act.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Protocol, final

import trio

from trio_sched._config import Config
from trio_sched._errors import LeaseLostError, is_transient
from trio_sched._timer import TimerHandle, TimerHeap
from trio_sched.locks._protocol import LockLease, LockProvider

__all__ = ["BatchGuard", "LeaseGuard", "LeaseKeeper", "Leased", "Slot"]


class Leased(Protocol):
    """An acquired occurrence of a burst, as its guard needs it."""

    @property
    def lease(self) -> LockLease | None: ...

    @property
    def expires(self) -> float: ...

    @property
    def ttl(self) -> float: ...


@final
class LeaseGuard:
    """The lease of one in-flight dispatch and what keeps it (D7).

    One timer entry serves both the first renewal (TTL/3 after the acquire) and the
    dispatch timeout; the renewer task is spawned only if the dispatch is still running
    when the first renewal is due.
    """

    __slots__ = (
        "done",
        "expires",
        "group",
        "handle",
        "lease",
        "lost",
        "nursery",
        "renew_at",
        "renew_scope",
        "scope",
        "timed_out",
        "timeout_at",
        "ttl",
    )

    def __init__(
        self,
        lease: LockLease,
        ttl: float,
        expires: float,
        scope: trio.CancelScope | Slot,
        nursery: trio.Nursery,
        timeout_at: float,
    ) -> None:
        self.lease = lease
        self.ttl = ttl
        # Conservative: measured from before the request that took or renewed it.
        self.expires = expires
        self.renew_at = expires - ttl + ttl / 3
        self.timeout_at = timeout_at
        self.scope = scope
        self.nursery = nursery
        self.renew_scope: trio.CancelScope | None = None
        self.handle: TimerHandle | None = None
        self.lost: LeaseLostError | None = None
        self.timed_out = False
        self.done = False
        self.group: GuardGroup | None = None

    def lose(self, error: LeaseLostError) -> None:
        if self.done:
            return
        self.lost = error
        self.scope.cancel()

    def time_out(self) -> None:
        if self.done:
            return
        self.timed_out = True
        self.scope.cancel()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self.group is not None:
            self.group.finished_one()
            self.group = None
        if self.handle is not None:
            self.handle.cancel()
        if self.renew_scope is not None:
            self.renew_scope.cancel()


@final
class GuardGroup:
    """The guards whose first check falls on one instant, behind one timer entry.

    When every one of them finished before that instant (the common case: an enqueue
    takes far less than TTL/3), the entry is cancelled and the group forgotten at once,
    so finished guards and their leases do not linger until TTL/3.
    """

    __slots__ = ("check_at", "guards", "handle", "live", "owner")

    def __init__(self, owner: dict[float, GuardGroup], check_at: float) -> None:
        self.owner = owner
        self.check_at = check_at
        self.guards: list[LeaseGuard] = []
        self.live = 0
        self.handle: TimerHandle | None = None

    def add(self, guard: LeaseGuard) -> None:
        self.guards.append(guard)
        self.live += 1
        guard.group = self

    def finished_one(self) -> None:
        self.live -= 1
        if self.live == 0:
            if self.handle is not None:
                self.handle.cancel()
            if self.owner.get(self.check_at) is self:
                del self.owner[self.check_at]
            self.guards.clear()


@final
class BatchGuard:
    """The lease guards of one burst's enqueue, made on demand (D6).

    With ``enqueue_many`` every guard cancels the call's `scope`. A plain runtime's
    burst (`plain`) enqueues job by job instead, and each guard cancels only its own
    job's enqueue through a `Slot`: `running` maps a job's index to the cancel scope
    it runs in, `cancelled` holds the jobs whose guard acted (not started yet, or
    stopped).
    """

    __slots__ = (
        "acquired_at",
        "cancelled",
        "done",
        "guards",
        "handle",
        "parks",
        "plain",
        "running",
        "scope",
    )

    def __init__(
        self,
        parks: Sequence[Leased],
        scope: trio.CancelScope,
        acquired_at: float,
        *,
        plain: bool,
    ) -> None:
        self.parks = parks
        self.scope = scope
        self.acquired_at = acquired_at
        self.plain = plain
        self.running: dict[int, trio.CancelScope] = {}
        self.cancelled: set[int] = set()
        self.guards: list[LeaseGuard] = []
        self.handle: TimerHandle | None = None
        self.done = False

    def expires(self, index: int) -> float:
        """When the lease of occurrence `index` runs out unrenewed (Trio time)."""
        return self.guards[index].expires if self.guards else self.parks[index].expires

    def finish(self) -> None:
        self.done = True
        if self.handle is not None:
            self.handle.cancel()
        for guard in self.guards:
            guard.finish()


@final
class Slot:
    """Job `index` of a plain runtime's burst, as its lease guard cancels it (D6)."""

    __slots__ = ("batch", "index")

    def __init__(self, batch: BatchGuard, index: int) -> None:
        self.batch = batch
        self.index = index

    def cancel(self) -> None:
        batch = self.batch
        batch.cancelled.add(self.index)
        scope = batch.running.get(self.index)
        if scope is not None:
            scope.cancel()


@final
class LeaseKeeper:
    """Makes and serves the lease guards of one scheduler (G1-G4)."""

    __slots__ = ("_backoff", "_backoff_max", "_dispatch_timeout", "_groups", "_locks", "_timer")

    def __init__(self, timer: TimerHeap, locks: LockProvider, config: Config) -> None:
        self._timer = timer
        self._locks = locks
        self._dispatch_timeout = config.dispatch_timeout
        self._backoff = config.retry_backoff
        self._backoff_max = config.retry_backoff_max
        self._groups: dict[float, GuardGroup] = {}

    def arm_batch_at(self, batch: BatchGuard, check_at: float, nursery: trio.Nursery) -> None:
        """Give every occurrence of `batch` its guard at `check_at` (Trio time) if the
        batch's call is still running then (D6); renewers are started in `nursery`."""
        batch.handle = self._timer.call_at(
            check_at, functools.partial(self._arm_batch, batch, nursery)
        )

    def _arm_batch(self, batch: BatchGuard, nursery: trio.Nursery) -> None:
        if batch.done:
            return
        guards = batch.guards = []
        for index, park in enumerate(batch.parks):
            assert park.lease is not None
            guards.append(
                self.arm(
                    park.lease,
                    park.ttl,
                    batch.acquired_at,
                    Slot(batch, index) if batch.plain else batch.scope,
                    nursery,
                    park.expires,
                )
            )

    def arm(
        self,
        lease: LockLease,
        ttl: float,
        acquired_at: float,
        scope: trio.CancelScope | Slot,
        nursery: trio.Nursery,
        expires: float | None = None,
    ) -> LeaseGuard:
        """Guard `lease` (D7). `expires` (Trio time) is when it runs out unrenewed:
        ``acquired_at + ttl`` for a lease just taken, later for one a batch's guard
        renewed before handing the occurrence over (D6)."""
        # The timeout counts from the acquire request, like the lease: every dispatch of
        # one batch then has the same check instant and they share one timer entry.
        timeout_at = acquired_at + self._dispatch_timeout
        if expires is None:
            expires = acquired_at + ttl
        guard = LeaseGuard(lease, ttl, expires, scope, nursery, timeout_at)
        check_at = min(guard.renew_at, timeout_at)
        groups = self._groups
        group = groups.get(check_at)
        if group is None:
            group = groups[check_at] = GuardGroup(groups, check_at)
            group.handle = self._timer.call_at(
                check_at, functools.partial(self._group_due, check_at)
            )
        group.add(guard)
        return guard

    def _group_due(self, check_at: float) -> None:
        group = self._groups.pop(check_at, None)
        if group is None:
            return
        group.handle = None
        for guard in tuple(group.guards):
            if not guard.done:
                self._guard_due(guard)

    def _guard_due(self, guard: LeaseGuard) -> None:
        """Timer callback of a dispatch's guard: time out, or start its renewer."""
        if guard.done:
            return
        now = trio.current_time()
        if now >= guard.timeout_at:
            guard.time_out()
            return
        if now >= guard.renew_at and guard.renew_scope is None:
            guard.renew_scope = trio.CancelScope()
            guard.nursery.start_soon(self._renew, guard)
        guard.handle = self._timer.call_at(
            guard.timeout_at, functools.partial(self._guard_due, guard)
        )

    async def _renew(self, guard: LeaseGuard) -> None:
        """The lease renewer of one dispatch (O5): renew every TTL/3 until done."""
        assert guard.renew_scope is not None
        with guard.renew_scope:
            if guard.done:
                return
            backoff = self._backoff
            while True:
                sent = trio.current_time()
                try:
                    with trio.fail_at(guard.expires):
                        lease = await self._locks.renew(guard.lease, guard.ttl)
                except trio.TooSlowError:
                    guard.lose(LeaseLostError(f"lease on {guard.lease.key!r} expired unconfirmed"))
                    return
                except LeaseLostError as exc:
                    guard.lose(exc)
                    return
                except Exception as exc:
                    if is_transient(exc) and trio.current_time() + backoff < guard.expires:
                        await self._timer.sleep_until(trio.current_time() + backoff)
                        backoff = min(backoff * 2, self._backoff_max)
                        continue
                    lost = LeaseLostError(f"renewing {guard.lease.key!r} failed: {exc!r}")
                    lost.__cause__ = exc
                    guard.lose(lost)
                    return
                backoff = self._backoff
                guard.lease = lease
                guard.expires = sent + guard.ttl
                await self._timer.sleep_until(sent + guard.ttl / 3)
