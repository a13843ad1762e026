"""What the checks of `check_lock_provider` share (the suite's rules LS1-LS5: `_locks`).

`Ctx` carries both providers, the base TTL, the clock and the key prefix to every
check, and the fencing tokens seen so far, each of which must beat the last (rule L2).
The shape checks hold every answer to `LockLease` and to `Held` (rule L6); a renew that
must fail must raise `LeaseLostError` (rule L3); a race runs contenders on both
providers at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import final

import trio

from trio_sched._errors import LeaseLostError
from trio_sched.locks._protocol import Held, LockLease, LockProvider, Paused
from trio_sched.testing._check import expect, fail

__all__ = ["SUITE", "Ctx", "held_shape", "lease_shape", "race", "renew_is_lost"]

SUITE = "check_lock_provider"


@final
@dataclass(slots=True)
class Ctx:
    """What every check gets: providers `a` and `b` of one backend (rule LS4), the base
    TTL, the clock, the key prefix and the fencing tokens seen so far."""

    a: LockProvider
    b: LockProvider
    make: Callable[[], AbstractAsyncContextManager[LockProvider]]
    ttl: float
    advance: Callable[[float], Awaitable[None]]
    prefix: str
    concurrency: int
    fencing: list[int] = dataclasses.field(default_factory=list)
    counter: int = 0

    def key(self, label: str) -> str:
        self.counter += 1
        return f"{self.prefix}:{label}:{self.counter}"

    def saw(self, check: str, lease: LockLease) -> None:
        """Record a fresh acquire's fencing token; it must beat every earlier one (L2)."""
        if self.fencing:
            expect(
                lease.fencing_token > self.fencing[-1],
                SUITE,
                check,
                f"fencing token {lease.fencing_token} of {lease.key!r} is not greater than "
                f"the previous one {self.fencing[-1]} (rule L2: strictly increasing)",
            )
        self.fencing.append(lease.fencing_token)


def lease_shape(check: str, lease: LockLease | Held | Paused | None, key: str) -> LockLease:
    if not isinstance(lease, LockLease):
        fail(SUITE, check, f"acquire of free key {key!r} answered {lease!r}")
    expect(lease.key == key, SUITE, check, f"lease.key {lease.key!r} != requested {key!r}")
    expect(
        isinstance(lease.token, str) and bool(lease.token),
        SUITE,
        check,
        f"lease.token must be a non-empty str, got {lease.token!r}",
    )
    expect(
        lease.expire_at.tzinfo is not None and lease.expire_at.utcoffset() is not None,
        SUITE,
        check,
        f"lease.expire_at must be an aware datetime, got {lease.expire_at!r}",
    )
    expect(
        isinstance(lease.fencing_token, int) and not isinstance(lease.fencing_token, bool),
        SUITE,
        check,
        f"lease.fencing_token must be an int, got {lease.fencing_token!r}",
    )
    return lease


def held_shape(check: str, result: object, holder: LockLease, ttl: float) -> Held:
    if not isinstance(result, Held):
        fail(
            SUITE,
            check,
            f"a request for a key leased by another token and not dispatched must be "
            f"answered Held (rule L6), got {result!r}",
        )
    expect(
        result.token == holder.token,
        SUITE,
        check,
        f"Held.token {result.token!r} is not the holder's {holder.token!r}",
    )
    expect(
        isinstance(result.expires_in, float | int) and 0 <= result.expires_in <= ttl * 1.1,
        SUITE,
        check,
        f"Held.expires_in must be the seconds left of a {ttl:g} s lease, got {result.expires_in!r}",
    )
    return result


async def renew_is_lost(
    provider: LockProvider, lease: LockLease, ttl: float, check: str, message: str
) -> None:
    """`renew` of `lease` must raise `LeaseLostError` (rule L3); else fail with
    `message`."""
    try:
        await provider.renew(lease, ttl)
    except LeaseLostError:
        return
    fail(SUITE, check, message)


async def race(
    ctx: Ctx, attempt: Callable[[LockProvider], Awaitable[LockLease | Held | Paused | None]]
) -> list[LockLease]:
    """``ctx.concurrency`` concurrent `attempt` calls, alternating the two providers;
    the leases they got."""
    winners: list[LockLease] = []

    async def contender(provider: LockProvider) -> None:
        answer = await attempt(provider)
        if isinstance(answer, LockLease):
            winners.append(answer)

    async with trio.open_nursery() as nursery:
        for i in range(ctx.concurrency):
            nursery.start_soon(contender, ctx.a if i % 2 == 0 else ctx.b)
    return winners
