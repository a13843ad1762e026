"""The record checks of `check_lock_provider`: a key leased and not dispatched answers
`Held` (rule L6), a lease that ran out undispatched is taken over once (L7), a dispatched
record is never taken over until its memory ends (L8). The suite's rules LS1-LS5 are in
`_locks`.
"""

from __future__ import annotations

import dataclasses

from trio_sched.locks._protocol import AcquireRequest, Held, LockLease, LockProvider, Paused
from trio_sched.testing._check import expect, fail
from trio_sched.testing._lock_context import (
    SUITE,
    Ctx,
    held_shape,
    lease_shape,
    race,
    renew_is_lost,
)

__all__ = ["dispatched", "held", "race_takeover", "takeover"]


async def _batch_one(
    provider: LockProvider, request: AcquireRequest
) -> LockLease | Held | Paused | None:
    results = await provider.acquire_batch([request])
    if len(results) != 1:
        fail(SUITE, "batch-of-one", f"one request got {len(results)} answers")
    return results[0]


async def held(ctx: Ctx) -> None:
    check = "held"
    key = ctx.key("held")
    first = await _batch_one(ctx.a, AcquireRequest(key, ctx.ttl * 4, keep=ctx.ttl * 8))
    if not isinstance(first, LockLease):
        fail(SUITE, check, f"acquire_batch of a free key answered {first!r}")
    ctx.saw(check, lease_shape(check, first, key))
    expect(first.taken_over is None, SUITE, check, "a fresh lease names a taken_over token")
    held_shape(check, await _batch_one(ctx.b, AcquireRequest(key, ctx.ttl)), first, ctx.ttl * 4)
    await ctx.advance(ctx.ttl * 2)
    again = held_shape(
        check, await _batch_one(ctx.a, AcquireRequest(key, ctx.ttl)), first, ctx.ttl * 4
    )
    expect(
        again.expires_in <= ctx.ttl * 2.5,
        SUITE,
        check,
        f"Held.expires_in did not count down: {again.expires_in:g} s left of a "
        f"{ctx.ttl * 4:g} s lease taken {ctx.ttl * 2:g} s ago",
    )


async def _lapsed(ctx: Ctx, check: str, key: str) -> LockLease:
    """A lease on `key` by provider a that ran out undispatched; its record is kept."""
    old = await _batch_one(ctx.a, AcquireRequest(key, ctx.ttl, keep=ctx.ttl * 8))
    if not isinstance(old, LockLease):
        fail(SUITE, check, f"acquire_batch of a free key answered {old!r}")
    ctx.saw(check, old)
    await ctx.advance(ctx.ttl * 1.5)
    return old


async def takeover(ctx: Ctx) -> None:
    check = "takeover"
    key = ctx.key("takeover")
    old = await _lapsed(ctx, check, key)
    new = await _batch_one(ctx.b, AcquireRequest(key, ctx.ttl * 4, keep=ctx.ttl * 8))
    if not isinstance(new, LockLease):
        fail(
            SUITE,
            check,
            f"a request for an occurrence whose lease ran out undispatched must take it "
            f"over (rule L7), got {new!r}",
        )
    ctx.saw(check, lease_shape(check, new, key))
    expect(
        new.taken_over == old.token and new.token != old.token,
        SUITE,
        check,
        f"the takeover must have a new token and name the old one: {old!r} -> {new!r}",
    )
    await renew_is_lost(ctx.a, old, ctx.ttl, check, "the taken-over lease could still be renewed")
    marked = await ctx.a.mark_dispatched([old])
    expect(marked == [False], SUITE, check, f"mark_dispatched of a taken-over lease: {marked}")
    expect(not await ctx.a.release(old), SUITE, check, "a taken-over lease could be released")
    held_shape(check, await _batch_one(ctx.a, AcquireRequest(key, ctx.ttl)), new, ctx.ttl * 4)
    renewed = await ctx.b.renew(new, ctx.ttl * 4)
    expect(
        (renewed.token, renewed.fencing_token, renewed.taken_over)
        == (new.token, new.fencing_token, new.taken_over),
        SUITE,
        check,
        f"renew of a takeover must keep its token, fencing token and taken_over: {new!r} "
        f"-> {renewed!r}",
    )
    marked = await ctx.b.mark_dispatched([renewed])
    expect(marked == [True], SUITE, check, f"mark_dispatched by the new holder: {marked}")


async def dispatched(ctx: Ctx) -> None:
    check = "dispatched"
    key, other = ctx.key("dispatched"), ctx.key("dispatched")
    results = await ctx.a.acquire_batch(
        [AcquireRequest(key, ctx.ttl, keep=ctx.ttl * 3), AcquireRequest(other, ctx.ttl * 4)]
    )
    lease, second = results
    if not isinstance(lease, LockLease) or not isinstance(second, LockLease):
        fail(SUITE, check, f"acquire_batch of two free keys answered {results!r}")
    ctx.saw(check, lease)
    ctx.fencing.append(max(lease.fencing_token, second.fencing_token))
    forged = dataclasses.replace(second, token=second.token + "-forged")
    marked = await ctx.b.mark_dispatched([lease, forged])
    expect(marked == [True, False], SUITE, check, f"mark_dispatched answered {marked}")
    expect(await ctx.b.mark_dispatched([]) == [], SUITE, check, "an empty mark must give []")
    for provider in (ctx.a, ctx.b):
        answer = await _batch_one(provider, AcquireRequest(key, ctx.ttl))
        expect(
            answer is None,
            SUITE,
            check,
            f"a request for a dispatched occurrence must be answered None, got {answer!r}",
        )
    expect(not await ctx.a.release(lease), SUITE, check, "a dispatched record was released")
    await ctx.advance(ctx.ttl * 1.5)  # the lease ran out; the record is still kept
    answer = await _batch_one(ctx.b, AcquireRequest(key, ctx.ttl))
    expect(
        answer is None,
        SUITE,
        check,
        f"a dispatched occurrence was taken over after its lease ran out: {answer!r}",
    )
    held_shape(check, await _batch_one(ctx.b, AcquireRequest(other, ctx.ttl)), second, ctx.ttl * 4)
    await ctx.advance(ctx.ttl * 2)  # 3.5 * ttl after the acquire: the memory ended
    fresh = await _batch_one(ctx.b, AcquireRequest(key, ctx.ttl))
    if not isinstance(fresh, LockLease):
        fail(SUITE, check, f"the key was not free once its record's memory ended: {fresh!r}")
    ctx.saw(check, fresh)
    expect(
        fresh.taken_over is None,
        SUITE,
        check,
        f"a key whose record ended is a fresh acquire, not a takeover: {fresh!r}",
    )


async def race_takeover(ctx: Ctx) -> None:
    check = "race-takeover"
    key = ctx.key("race-takeover")
    old = await _lapsed(ctx, check, key)
    winners = await race(ctx, lambda p: _batch_one(p, AcquireRequest(key, ctx.ttl * 4)))
    expect(
        len(winners) == 1,
        SUITE,
        check,
        f"{ctx.concurrency} concurrent takeovers of one expired lease: {len(winners)} "
        f"winners, want 1",
    )
    expect(winners[0].taken_over == old.token, SUITE, check, "the winner names no old token")
    ctx.saw(check, winners[0])
