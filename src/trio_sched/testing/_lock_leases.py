"""The lease checks of `check_lock_provider`: acquire, expiry, renew, release and
fencing (rules L1-L3), health checks and close (the suite's rules LS1-LS5: `_locks`).
"""

from __future__ import annotations

import dataclasses

from trio_sched._errors import ClosedError
from trio_sched.testing._check import expect, fail
from trio_sched.testing._lock_context import SUITE, Ctx, lease_shape, renew_is_lost

__all__ = [
    "aclose",
    "exclusive",
    "fencing_increases",
    "health",
    "independent_keys",
    "release_reacquire",
    "renew_extends",
    "stale_token",
    "ttl_expiry",
    "wrong_token",
]


async def health(ctx: Ctx) -> None:
    await ctx.a.health_check()
    await ctx.b.health_check()


async def exclusive(ctx: Ctx) -> None:
    check = "exclusive"
    key = ctx.key("exclusive")
    lease = lease_shape(check, await ctx.a.acquire(key, ctx.ttl * 4), key)
    ctx.saw(check, lease)
    expect(
        await ctx.a.acquire(key, ctx.ttl * 4) is None,
        SUITE,
        check,
        "a second acquire of a held key on the same provider did not return None",
    )
    expect(
        await ctx.b.acquire(key, ctx.ttl * 4) is None,
        SUITE,
        check,
        "an acquire of a held key on a second provider of the same backend did not return None",
    )


async def independent_keys(ctx: Ctx) -> None:
    check = "independent-keys"
    first, second = ctx.key("indep"), ctx.key("indep")
    ctx.saw(check, lease_shape(check, await ctx.a.acquire(first, ctx.ttl * 4), first))
    lease = await ctx.b.acquire(second, ctx.ttl * 4)
    ctx.saw(check, lease_shape(check, lease, second))


async def ttl_expiry(ctx: Ctx) -> None:
    check = "ttl-expiry"
    key = ctx.key("expiry")
    first = lease_shape(check, await ctx.a.acquire(key, ctx.ttl), key)
    ctx.saw(check, first)
    await ctx.advance(ctx.ttl * 1.5)
    second = await ctx.b.acquire(key, ctx.ttl)
    if second is None:
        fail(SUITE, check, f"key still held 1.5 * ttl ({ctx.ttl * 1.5:g} s) after acquire")
    ctx.saw(check, second)
    expect(
        second.token != first.token,
        SUITE,
        check,
        "a re-acquire after expiry reused the expired lease's token",
    )


async def renew_extends(ctx: Ctx) -> None:
    check = "renew-extends"
    key = ctx.key("renew")
    lease = lease_shape(check, await ctx.a.acquire(key, ctx.ttl), key)
    ctx.saw(check, lease)
    await ctx.advance(ctx.ttl * 0.6)
    renewed = await ctx.a.renew(lease, ctx.ttl)
    expect(
        (renewed.key, renewed.token, renewed.fencing_token)
        == (lease.key, lease.token, lease.fencing_token),
        SUITE,
        check,
        f"renew must keep key, token and fencing token: {lease!r} -> {renewed!r}",
    )
    await ctx.advance(ctx.ttl * 0.6)  # past the original TTL, inside the renewed one
    expect(
        await ctx.b.acquire(key, ctx.ttl) is None,
        SUITE,
        check,
        "after renew, the key was free again once the original TTL had passed",
    )
    renewed = await ctx.a.renew(renewed, ctx.ttl)
    expect(
        await ctx.a.release(renewed),
        SUITE,
        check,
        "release of a renewed lease returned False",
    )


async def wrong_token(ctx: Ctx) -> None:
    check = "wrong-token"
    key = ctx.key("wrong")
    lease = lease_shape(check, await ctx.a.acquire(key, ctx.ttl * 4), key)
    ctx.saw(check, lease)
    forged = dataclasses.replace(lease, token=lease.token + "-forged")
    await renew_is_lost(
        ctx.b, forged, ctx.ttl * 4, check, "renew with a wrong token did not raise LeaseLostError"
    )
    expect(
        not await ctx.b.release(forged),
        SUITE,
        check,
        "release with a wrong token returned True",
    )
    expect(
        await ctx.b.acquire(key, ctx.ttl) is None,
        SUITE,
        check,
        "after a wrong-token release the key was free: the real holder lost it",
    )
    await ctx.a.renew(lease, ctx.ttl * 4)  # the holder is unaffected: must not raise
    expect(await ctx.a.release(lease), SUITE, check, "the real holder could not release")


async def stale_token(ctx: Ctx) -> None:
    check = "stale-token"
    key = ctx.key("stale")
    old = lease_shape(check, await ctx.a.acquire(key, ctx.ttl), key)
    ctx.saw(check, old)
    await ctx.advance(ctx.ttl * 1.5)
    await renew_is_lost(
        ctx.a, old, ctx.ttl, check, "renew of an expired lease (nobody took the key) did not raise"
    )
    new = await ctx.b.acquire(key, ctx.ttl * 4)
    if new is None:
        fail(SUITE, check, "key still held 1.5 * ttl after acquire")
    ctx.saw(check, new)
    await renew_is_lost(
        ctx.a,
        old,
        ctx.ttl * 4,
        check,
        "renew of a stale lease (key now held by another) did not raise",
    )
    expect(not await ctx.a.release(old), SUITE, check, "release of a stale lease returned True")
    expect(
        await ctx.a.acquire(key, ctx.ttl) is None,
        SUITE,
        check,
        "the new holder lost the key after stale renew/release attempts",
    )
    await ctx.b.renew(new, ctx.ttl * 4)
    expect(await ctx.b.release(new), SUITE, check, "the new holder could not release")


async def release_reacquire(ctx: Ctx) -> None:
    check = "release-reacquire"
    key = ctx.key("release")
    first = lease_shape(check, await ctx.a.acquire(key, ctx.ttl * 4), key)
    ctx.saw(check, first)
    expect(await ctx.a.release(first), SUITE, check, "release of a held lease returned False")
    expect(not await ctx.a.release(first), SUITE, check, "a second release returned True")
    second = await ctx.b.acquire(key, ctx.ttl * 4)
    if second is None:
        fail(SUITE, check, "key not acquirable after release")
    ctx.saw(check, second)
    expect(second.token != first.token, SUITE, check, "re-acquire reused the old token")
    await renew_is_lost(
        ctx.a, first, ctx.ttl, check, "renew of a released lease did not raise LeaseLostError"
    )


async def fencing_increases(ctx: Ctx) -> None:
    check = "fencing"
    keys = [ctx.key("fence") for _ in range(3)]
    for round_ in range(2):
        for i, key in enumerate(keys):
            provider = ctx.a if (i + round_) % 2 == 0 else ctx.b
            lease = await provider.acquire(key, ctx.ttl * 4)
            if lease is None:
                fail(SUITE, check, f"free key {key!r} not acquirable (round {round_})")
            ctx.saw(check, lease)
            expect(await provider.release(lease), SUITE, check, "release returned False")


async def aclose(ctx: Ctx) -> None:
    check = "aclose"
    async with ctx.make() as third:
        await third.health_check()
        await third.aclose()
        await third.aclose()  # idempotent: must not raise
        try:
            await third.acquire(ctx.key("closed"), ctx.ttl)
        except ClosedError:
            pass
        else:
            fail(SUITE, check, "acquire on a closed provider did not raise ClosedError")
    # Closing one client must not close the backend for the others.
    await ctx.a.health_check()
    key = ctx.key("after-close")
    lease = await ctx.a.acquire(key, ctx.ttl)
    ctx.saw(check, lease_shape(check, lease, key))
