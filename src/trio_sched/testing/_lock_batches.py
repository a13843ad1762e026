"""The batch and race checks of `check_lock_provider`: ``acquire_batch`` against
watermarks (rules L4, L5), watermarks on their own, and concurrent acquires of one key and
batches over the same keys (L1, L2). The suite's rules LS1-LS5 are in `_locks`.
"""

from __future__ import annotations

import trio

from trio_sched.locks._protocol import AcquireRequest, Held, LockLease, Paused
from trio_sched.testing._check import expect, fail
from trio_sched.testing._lock_context import SUITE, Ctx, held_shape, lease_shape, race

__all__ = ["batch", "race_batches", "race_one_key", "watermarks"]


async def batch(ctx: Ctx) -> None:
    check = "acquire-batch"
    mark = f"{ctx.prefix}:wm:batch"
    unknown_mark = f"{ctx.prefix}:wm:never-set"
    await ctx.a.advance_watermarks({mark: 1000})
    held = ctx.key("batch-held")
    held_lease = lease_shape(check, await ctx.b.acquire(held, ctx.ttl * 4), held)
    ctx.saw(check, held_lease)
    free, at_mark, below, plain, unknown, recent, old = (ctx.key("batch") for _ in range(7))
    requests = [
        AcquireRequest(free, ctx.ttl * 4, mark, 2000),  # granted
        AcquireRequest(held, ctx.ttl * 4),  # held by b
        AcquireRequest(at_mark, ctx.ttl * 4, mark, 1000),  # == watermark: refused
        AcquireRequest(below, ctx.ttl * 4, mark, 999),  # < watermark: refused
        AcquireRequest(plain, ctx.ttl * 4),  # no watermark: granted
        AcquireRequest(unknown, ctx.ttl * 4, unknown_mark, 0),  # never-set mark: granted
        AcquireRequest(free, ctx.ttl * 4, mark, 3000),  # same key again: taken above
        # Rule L4's slack: 1000 - 996 = 4 < 5, recent enough for the lock alone: granted.
        AcquireRequest(recent, ctx.ttl * 4, mark, 996, watermark_slack_ms=5),
        # 1000 - 995 = 5 >= 5: refused, as without a slack.
        AcquireRequest(old, ctx.ttl * 4, mark, 995, watermark_slack_ms=5),
    ]
    granted = [True, False, False, False, True, True, False, True, False]
    held_at = 1  # answered Held (rule L6); the other refusals None
    results = await ctx.a.acquire_batch(requests)
    expect(
        len(results) == len(requests),
        SUITE,
        check,
        f"{len(requests)} requests got {len(results)} answers",
    )
    before = ctx.fencing[-1]
    tokens: list[int] = []
    result: LockLease | Held | Paused | None
    for i, (request, result, want) in enumerate(zip(requests, results, granted, strict=True)):
        if want:
            lease = lease_shape(check, result, request.key)
            expect(
                lease.fencing_token > before,
                SUITE,
                check,
                f"answer {i}: fencing token {lease.fencing_token} not above {before}",
            )
            tokens.append(lease.fencing_token)
        elif i == held_at:
            held_shape(check, result, held_lease, ctx.ttl * 4)
        else:
            expect(
                result is None,
                SUITE,
                check,
                f"answer {i} ({request!r}) should be None (refused by watermark or "
                f"taken earlier in the batch), got {result!r}",
            )
    expect(
        len(set(tokens)) == len(tokens),
        SUITE,
        check,
        f"fencing tokens repeat inside one batch: {tokens}",
    )
    ctx.fencing.append(max(tokens))
    # Refusals take nothing, and a batch does not move watermarks.
    for key in (at_mark, below, old):
        after = await ctx.b.acquire(key, ctx.ttl * 4)
        if after is None:
            fail(SUITE, check, f"watermark-refused key {key!r} was left locked")
        ctx.saw(check, after)
    marks = await ctx.b.get_watermarks([mark])
    expect(marks == {mark: 1000}, SUITE, check, f"acquire_batch moved a watermark: {marks}")
    expect(await ctx.a.acquire_batch([]) == [], SUITE, check, "an empty batch must give []")


async def watermarks(ctx: Ctx) -> None:
    check = "watermarks"
    one, two, never = (f"{ctx.prefix}:wm:{label}" for label in ("one", "two", "never"))
    got = await ctx.a.get_watermarks([one, never])
    expect(got == {}, SUITE, check, f"unknown names must be absent, got {got}")
    await ctx.a.advance_watermarks({one: 100})
    got = await ctx.b.get_watermarks([one])
    expect(got == {one: 100}, SUITE, check, f"after advancing to 100: {got}")
    await ctx.b.advance_watermarks({one: 50})
    got = await ctx.a.get_watermarks([one])
    expect(got == {one: 100}, SUITE, check, f"advancing to a lower value moved it back: {got}")
    await ctx.a.advance_watermarks({one: 200, two: 5})
    got = await ctx.b.get_watermarks([one, never, two])
    expect(got == {one: 200, two: 5}, SUITE, check, f"after advancing two names: {got}")
    await ctx.a.advance_watermarks({})
    got = await ctx.a.get_watermarks([])
    expect(got == {}, SUITE, check, f"get_watermarks([]) must give {{}}, got {got}")


async def race_one_key(ctx: Ctx) -> None:
    check = "race-one-key"
    key = ctx.key("race")
    winners = await race(ctx, lambda provider: provider.acquire(key, ctx.ttl * 4))
    expect(
        len(winners) == 1,
        SUITE,
        check,
        f"{ctx.concurrency} concurrent acquires of one key: {len(winners)} winners, want 1",
    )
    ctx.saw(check, winners[0])


async def race_batches(ctx: Ctx) -> None:
    check = "race-batches"
    keys = [ctx.key("race-batch") for _ in range(5)]
    granted: dict[str, list[LockLease]] = {key: [] for key in keys}

    async def contender(i: int) -> None:
        provider = ctx.a if i % 2 == 0 else ctx.b
        order = keys[i % len(keys) :] + keys[: i % len(keys)]
        results = await provider.acquire_batch([AcquireRequest(k, ctx.ttl * 4) for k in order])
        for lease in results:
            if isinstance(lease, LockLease):
                granted[lease.key].append(lease)

    async with trio.open_nursery() as nursery:
        for i in range(ctx.concurrency):
            nursery.start_soon(contender, i)
    counts = {key: len(leases) for key, leases in granted.items()}
    expect(
        all(count == 1 for count in counts.values()),
        SUITE,
        check,
        f"concurrent batches over the same keys: grants per key {counts}, want 1 each",
    )
    tokens = [leases[0].fencing_token for leases in granted.values()]
    expect(len(set(tokens)) == len(tokens), SUITE, check, f"fencing tokens repeat: {tokens}")
    for token in sorted(tokens):
        expect(
            token > ctx.fencing[-1],
            SUITE,
            check,
            f"fencing token {token} not above earlier {ctx.fencing[-1]}",
        )
        ctx.fencing.append(token)
