"""`check_lock_provider`: the conformance suite every `LockProvider` runs.

Rules of the suite:
- LS1 It talks to the backend only through the `LockProvider` methods, and to time only
  through ``advance`` (default `trio.sleep`): it works on real servers with real time
  and on in-memory providers under `trio.testing.MockClock` with autojump.
- LS2 Every key and watermark name starts with a fresh random prefix, so reruns and
  parallel runs against one server never collide; nothing is cleaned up (keys expire by
  their TTL, watermarks are namespaced and tiny).
- LS3 TTLs are multiples of ``ttl`` (default 0.5 s), with margins of at least 0.4 * ttl
  around every expiry, so a run on a real server takes a few seconds.
- LS4 ``make()`` is called up to three times, with up to three providers open at once.
  All providers one ``make`` returns must coordinate through the same backend, as two
  scheduler processes would (for an in-memory provider: views of one provider object).
- LS5 Each failure raises `AssertionError` (a `CheckFailed`) whose message names the
  check; an unexpected exception inside a check is turned into one, chained.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import trio

from trio_sched._errors import ClosedError, LeaseLostError
from trio_sched.locks._protocol import AcquireRequest, Held, LockLease, LockProvider
from trio_sched.testing._check import expect, fail, run_check, unique_prefix

__all__ = ["check_lock_provider"]

_SUITE = "check_lock_provider"


@dataclass(slots=True)
class _Ctx:
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
                _SUITE,
                check,
                f"fencing token {lease.fencing_token} of {lease.key!r} is not greater than "
                f"the previous one {self.fencing[-1]} (rule L2: strictly increasing)",
            )
        self.fencing.append(lease.fencing_token)


async def check_lock_provider(
    make: Callable[[], AbstractAsyncContextManager[LockProvider]],
    *,
    ttl: float = 0.5,
    advance: Callable[[float], Awaitable[None]] = trio.sleep,
    prefix: str | None = None,
    concurrency: int = 20,
) -> None:
    """Check that the providers `make` returns behave as rules L1-L8 require.

    `make` returns an async context manager yielding a provider; every provider it
    returns must share one backend (rule LS4). `ttl` is the base TTL in seconds,
    `advance(seconds)` lets that much backend time pass (default `trio.sleep`), `prefix`
    overrides the random key prefix and `concurrency` is the number of racing tasks.
    Raises `AssertionError` naming the failed check.

    How to run it for a new backend (with pytest-trio)::

        @asynccontextmanager
        async def make():
            provider = await MyProvider.connect("redis://127.0.0.1:6379/15")
            try:
                yield provider
            finally:
                await provider.aclose()

        async def test_my_provider_conforms():
            await check_lock_provider(make)

    A provider that is its own async context manager can be passed as
    ``lambda: MyProvider(config)``; every call then opens another client of the same
    server. Against a real Redis server the suite takes about 2 s with ``ttl=0.5``.
    """
    prefix = prefix if prefix is not None else unique_prefix("locks")
    async with make() as a, make() as b:
        ctx = _Ctx(
            a=a,
            b=b,
            make=make,
            ttl=ttl,
            advance=advance,
            prefix=prefix,
            concurrency=concurrency,
        )
        for name, check in _CHECKS:
            await run_check(_SUITE, name, functools.partial(check, ctx))


# -- the checks ----------------------------------------------------------------------


def _lease_shape(check: str, lease: LockLease | Held | None, key: str) -> LockLease:
    if not isinstance(lease, LockLease):
        fail(_SUITE, check, f"acquire of free key {key!r} answered {lease!r}")
    expect(lease.key == key, _SUITE, check, f"lease.key {lease.key!r} != requested {key!r}")
    expect(
        isinstance(lease.token, str) and bool(lease.token),
        _SUITE,
        check,
        f"lease.token must be a non-empty str, got {lease.token!r}",
    )
    expect(
        lease.expire_at.tzinfo is not None and lease.expire_at.utcoffset() is not None,
        _SUITE,
        check,
        f"lease.expire_at must be an aware datetime, got {lease.expire_at!r}",
    )
    expect(
        isinstance(lease.fencing_token, int) and not isinstance(lease.fencing_token, bool),
        _SUITE,
        check,
        f"lease.fencing_token must be an int, got {lease.fencing_token!r}",
    )
    return lease


async def _exclusive(ctx: _Ctx) -> None:
    check = "exclusive"
    key = ctx.key("exclusive")
    lease = _lease_shape(check, await ctx.a.acquire(key, ctx.ttl * 4), key)
    ctx.saw(check, lease)
    expect(
        await ctx.a.acquire(key, ctx.ttl * 4) is None,
        _SUITE,
        check,
        "a second acquire of a held key on the same provider did not return None",
    )
    expect(
        await ctx.b.acquire(key, ctx.ttl * 4) is None,
        _SUITE,
        check,
        "an acquire of a held key on a second provider of the same backend did not return None",
    )


async def _independent_keys(ctx: _Ctx) -> None:
    check = "independent-keys"
    first, second = ctx.key("indep"), ctx.key("indep")
    ctx.saw(check, _lease_shape(check, await ctx.a.acquire(first, ctx.ttl * 4), first))
    lease = await ctx.b.acquire(second, ctx.ttl * 4)
    ctx.saw(check, _lease_shape(check, lease, second))


async def _ttl_expiry(ctx: _Ctx) -> None:
    check = "ttl-expiry"
    key = ctx.key("expiry")
    first = _lease_shape(check, await ctx.a.acquire(key, ctx.ttl), key)
    ctx.saw(check, first)
    await ctx.advance(ctx.ttl * 1.5)
    second = await ctx.b.acquire(key, ctx.ttl)
    if second is None:
        fail(_SUITE, check, f"key still held 1.5 * ttl ({ctx.ttl * 1.5:g} s) after acquire")
    ctx.saw(check, second)
    expect(
        second.token != first.token,
        _SUITE,
        check,
        "a re-acquire after expiry reused the expired lease's token",
    )


async def _renew_extends(ctx: _Ctx) -> None:
    check = "renew-extends"
    key = ctx.key("renew")
    lease = _lease_shape(check, await ctx.a.acquire(key, ctx.ttl), key)
    ctx.saw(check, lease)
    await ctx.advance(ctx.ttl * 0.6)
    renewed = await ctx.a.renew(lease, ctx.ttl)
    expect(
        (renewed.key, renewed.token, renewed.fencing_token)
        == (lease.key, lease.token, lease.fencing_token),
        _SUITE,
        check,
        f"renew must keep key, token and fencing token: {lease!r} -> {renewed!r}",
    )
    await ctx.advance(ctx.ttl * 0.6)  # past the original TTL, inside the renewed one
    expect(
        await ctx.b.acquire(key, ctx.ttl) is None,
        _SUITE,
        check,
        "after renew, the key was free again once the original TTL had passed",
    )
    renewed = await ctx.a.renew(renewed, ctx.ttl)
    expect(
        await ctx.a.release(renewed),
        _SUITE,
        check,
        "release of a renewed lease returned False",
    )


async def _wrong_token(ctx: _Ctx) -> None:
    check = "wrong-token"
    key = ctx.key("wrong")
    lease = _lease_shape(check, await ctx.a.acquire(key, ctx.ttl * 4), key)
    ctx.saw(check, lease)
    forged = dataclasses.replace(lease, token=lease.token + "-forged")
    await _renew_is_lost(
        ctx.b, forged, ctx.ttl * 4, check, "renew with a wrong token did not raise LeaseLostError"
    )
    expect(
        not await ctx.b.release(forged),
        _SUITE,
        check,
        "release with a wrong token returned True",
    )
    expect(
        await ctx.b.acquire(key, ctx.ttl) is None,
        _SUITE,
        check,
        "after a wrong-token release the key was free: the real holder lost it",
    )
    await ctx.a.renew(lease, ctx.ttl * 4)  # the holder is unaffected: must not raise
    expect(await ctx.a.release(lease), _SUITE, check, "the real holder could not release")


async def _stale_token(ctx: _Ctx) -> None:
    check = "stale-token"
    key = ctx.key("stale")
    old = _lease_shape(check, await ctx.a.acquire(key, ctx.ttl), key)
    ctx.saw(check, old)
    await ctx.advance(ctx.ttl * 1.5)
    await _renew_is_lost(
        ctx.a, old, ctx.ttl, check, "renew of an expired lease (nobody took the key) did not raise"
    )
    new = await ctx.b.acquire(key, ctx.ttl * 4)
    if new is None:
        fail(_SUITE, check, "key still held 1.5 * ttl after acquire")
    ctx.saw(check, new)
    await _renew_is_lost(
        ctx.a,
        old,
        ctx.ttl * 4,
        check,
        "renew of a stale lease (key now held by another) did not raise",
    )
    expect(not await ctx.a.release(old), _SUITE, check, "release of a stale lease returned True")
    expect(
        await ctx.a.acquire(key, ctx.ttl) is None,
        _SUITE,
        check,
        "the new holder lost the key after stale renew/release attempts",
    )
    await ctx.b.renew(new, ctx.ttl * 4)
    expect(await ctx.b.release(new), _SUITE, check, "the new holder could not release")


async def _release_reacquire(ctx: _Ctx) -> None:
    check = "release-reacquire"
    key = ctx.key("release")
    first = _lease_shape(check, await ctx.a.acquire(key, ctx.ttl * 4), key)
    ctx.saw(check, first)
    expect(await ctx.a.release(first), _SUITE, check, "release of a held lease returned False")
    expect(not await ctx.a.release(first), _SUITE, check, "a second release returned True")
    second = await ctx.b.acquire(key, ctx.ttl * 4)
    if second is None:
        fail(_SUITE, check, "key not acquirable after release")
    ctx.saw(check, second)
    expect(second.token != first.token, _SUITE, check, "re-acquire reused the old token")
    await _renew_is_lost(
        ctx.a, first, ctx.ttl, check, "renew of a released lease did not raise LeaseLostError"
    )


async def _fencing_increases(ctx: _Ctx) -> None:
    check = "fencing"
    keys = [ctx.key("fence") for _ in range(3)]
    for round_ in range(2):
        for i, key in enumerate(keys):
            provider = ctx.a if (i + round_) % 2 == 0 else ctx.b
            lease = await provider.acquire(key, ctx.ttl * 4)
            if lease is None:
                fail(_SUITE, check, f"free key {key!r} not acquirable (round {round_})")
            ctx.saw(check, lease)
            expect(await provider.release(lease), _SUITE, check, "release returned False")


async def _batch(ctx: _Ctx) -> None:
    check = "acquire-batch"
    mark = f"{ctx.prefix}:wm:batch"
    unknown_mark = f"{ctx.prefix}:wm:never-set"
    await ctx.a.advance_watermarks({mark: 1000})
    held = ctx.key("batch-held")
    held_lease = _lease_shape(check, await ctx.b.acquire(held, ctx.ttl * 4), held)
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
        _SUITE,
        check,
        f"{len(requests)} requests got {len(results)} answers",
    )
    before = ctx.fencing[-1]
    tokens: list[int] = []
    result: LockLease | Held | None
    for i, (request, result, want) in enumerate(zip(requests, results, granted, strict=True)):
        if want:
            lease = _lease_shape(check, result, request.key)
            expect(
                lease.fencing_token > before,
                _SUITE,
                check,
                f"answer {i}: fencing token {lease.fencing_token} not above {before}",
            )
            tokens.append(lease.fencing_token)
        elif i == held_at:
            _held_shape(check, result, held_lease, ctx.ttl * 4)
        else:
            expect(
                result is None,
                _SUITE,
                check,
                f"answer {i} ({request!r}) should be None (refused by watermark or "
                f"taken earlier in the batch), got {result!r}",
            )
    expect(
        len(set(tokens)) == len(tokens),
        _SUITE,
        check,
        f"fencing tokens repeat inside one batch: {tokens}",
    )
    ctx.fencing.append(max(tokens))
    # Refusals take nothing, and a batch does not move watermarks.
    for key in (at_mark, below, old):
        after = await ctx.b.acquire(key, ctx.ttl * 4)
        if after is None:
            fail(_SUITE, check, f"watermark-refused key {key!r} was left locked")
        ctx.saw(check, after)
    marks = await ctx.b.get_watermarks([mark])
    expect(marks == {mark: 1000}, _SUITE, check, f"acquire_batch moved a watermark: {marks}")
    expect(await ctx.a.acquire_batch([]) == [], _SUITE, check, "an empty batch must give []")


async def _watermarks(ctx: _Ctx) -> None:
    check = "watermarks"
    one, two, never = (f"{ctx.prefix}:wm:{label}" for label in ("one", "two", "never"))
    got = await ctx.a.get_watermarks([one, never])
    expect(got == {}, _SUITE, check, f"unknown names must be absent, got {got}")
    await ctx.a.advance_watermarks({one: 100})
    got = await ctx.b.get_watermarks([one])
    expect(got == {one: 100}, _SUITE, check, f"after advancing to 100: {got}")
    await ctx.b.advance_watermarks({one: 50})
    got = await ctx.a.get_watermarks([one])
    expect(got == {one: 100}, _SUITE, check, f"advancing to a lower value moved it back: {got}")
    await ctx.a.advance_watermarks({one: 200, two: 5})
    got = await ctx.b.get_watermarks([one, never, two])
    expect(got == {one: 200, two: 5}, _SUITE, check, f"after advancing two names: {got}")
    await ctx.a.advance_watermarks({})
    got = await ctx.a.get_watermarks([])
    expect(got == {}, _SUITE, check, f"get_watermarks([]) must give {{}}, got {got}")


async def _race(
    ctx: _Ctx, attempt: Callable[[LockProvider], Awaitable[LockLease | Held | None]]
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


async def _race_one_key(ctx: _Ctx) -> None:
    check = "race-one-key"
    key = ctx.key("race")
    winners = await _race(ctx, lambda provider: provider.acquire(key, ctx.ttl * 4))
    expect(
        len(winners) == 1,
        _SUITE,
        check,
        f"{ctx.concurrency} concurrent acquires of one key: {len(winners)} winners, want 1",
    )
    ctx.saw(check, winners[0])


async def _race_batches(ctx: _Ctx) -> None:
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
        _SUITE,
        check,
        f"concurrent batches over the same keys: grants per key {counts}, want 1 each",
    )
    tokens = [leases[0].fencing_token for leases in granted.values()]
    expect(len(set(tokens)) == len(tokens), _SUITE, check, f"fencing tokens repeat: {tokens}")
    for token in sorted(tokens):
        expect(
            token > ctx.fencing[-1],
            _SUITE,
            check,
            f"fencing token {token} not above earlier {ctx.fencing[-1]}",
        )
        ctx.fencing.append(token)


async def _renew_is_lost(
    provider: LockProvider, lease: LockLease, ttl: float, check: str, message: str
) -> None:
    """`renew` of `lease` must raise `LeaseLostError` (rule L3); else fail with
    `message`."""
    try:
        await provider.renew(lease, ttl)
    except LeaseLostError:
        return
    fail(_SUITE, check, message)


def _held_shape(check: str, result: object, holder: LockLease, ttl: float) -> Held:
    if not isinstance(result, Held):
        fail(
            _SUITE,
            check,
            f"a request for a key leased by another token and not dispatched must be "
            f"answered Held (rule L6), got {result!r}",
        )
    expect(
        result.token == holder.token,
        _SUITE,
        check,
        f"Held.token {result.token!r} is not the holder's {holder.token!r}",
    )
    expect(
        isinstance(result.expires_in, float | int) and 0 <= result.expires_in <= ttl * 1.1,
        _SUITE,
        check,
        f"Held.expires_in must be the seconds left of a {ttl:g} s lease, got {result.expires_in!r}",
    )
    return result


async def _batch_one(provider: LockProvider, request: AcquireRequest) -> LockLease | Held | None:
    results = await provider.acquire_batch([request])
    if len(results) != 1:
        fail(_SUITE, "batch-of-one", f"one request got {len(results)} answers")
    return results[0]


async def _held(ctx: _Ctx) -> None:
    check = "held"
    key = ctx.key("held")
    first = await _batch_one(ctx.a, AcquireRequest(key, ctx.ttl * 4, keep=ctx.ttl * 8))
    if not isinstance(first, LockLease):
        fail(_SUITE, check, f"acquire_batch of a free key answered {first!r}")
    ctx.saw(check, _lease_shape(check, first, key))
    expect(first.taken_over is None, _SUITE, check, "a fresh lease names a taken_over token")
    _held_shape(check, await _batch_one(ctx.b, AcquireRequest(key, ctx.ttl)), first, ctx.ttl * 4)
    await ctx.advance(ctx.ttl * 2)
    again = _held_shape(
        check, await _batch_one(ctx.a, AcquireRequest(key, ctx.ttl)), first, ctx.ttl * 4
    )
    expect(
        again.expires_in <= ctx.ttl * 2.5,
        _SUITE,
        check,
        f"Held.expires_in did not count down: {again.expires_in:g} s left of a "
        f"{ctx.ttl * 4:g} s lease taken {ctx.ttl * 2:g} s ago",
    )


async def _lapsed(ctx: _Ctx, check: str, key: str) -> LockLease:
    """A lease on `key` by provider a that ran out undispatched; its record is kept."""
    old = await _batch_one(ctx.a, AcquireRequest(key, ctx.ttl, keep=ctx.ttl * 8))
    if not isinstance(old, LockLease):
        fail(_SUITE, check, f"acquire_batch of a free key answered {old!r}")
    ctx.saw(check, old)
    await ctx.advance(ctx.ttl * 1.5)
    return old


async def _takeover(ctx: _Ctx) -> None:
    check = "takeover"
    key = ctx.key("takeover")
    old = await _lapsed(ctx, check, key)
    new = await _batch_one(ctx.b, AcquireRequest(key, ctx.ttl * 4, keep=ctx.ttl * 8))
    if not isinstance(new, LockLease):
        fail(
            _SUITE,
            check,
            f"a request for an occurrence whose lease ran out undispatched must take it "
            f"over (rule L7), got {new!r}",
        )
    ctx.saw(check, _lease_shape(check, new, key))
    expect(
        new.taken_over == old.token and new.token != old.token,
        _SUITE,
        check,
        f"the takeover must have a new token and name the old one: {old!r} -> {new!r}",
    )
    await _renew_is_lost(ctx.a, old, ctx.ttl, check, "the taken-over lease could still be renewed")
    marked = await ctx.a.mark_dispatched([old])
    expect(marked == [False], _SUITE, check, f"mark_dispatched of a taken-over lease: {marked}")
    expect(not await ctx.a.release(old), _SUITE, check, "a taken-over lease could be released")
    _held_shape(check, await _batch_one(ctx.a, AcquireRequest(key, ctx.ttl)), new, ctx.ttl * 4)
    renewed = await ctx.b.renew(new, ctx.ttl * 4)
    expect(
        (renewed.token, renewed.fencing_token, renewed.taken_over)
        == (new.token, new.fencing_token, new.taken_over),
        _SUITE,
        check,
        f"renew of a takeover must keep its token, fencing token and taken_over: {new!r} "
        f"-> {renewed!r}",
    )
    marked = await ctx.b.mark_dispatched([renewed])
    expect(marked == [True], _SUITE, check, f"mark_dispatched by the new holder: {marked}")


async def _dispatched(ctx: _Ctx) -> None:
    check = "dispatched"
    key, other = ctx.key("dispatched"), ctx.key("dispatched")
    results = await ctx.a.acquire_batch(
        [AcquireRequest(key, ctx.ttl, keep=ctx.ttl * 3), AcquireRequest(other, ctx.ttl * 4)]
    )
    lease, second = results
    if not isinstance(lease, LockLease) or not isinstance(second, LockLease):
        fail(_SUITE, check, f"acquire_batch of two free keys answered {results!r}")
    ctx.saw(check, lease)
    ctx.fencing.append(max(lease.fencing_token, second.fencing_token))
    forged = dataclasses.replace(second, token=second.token + "-forged")
    marked = await ctx.b.mark_dispatched([lease, forged])
    expect(marked == [True, False], _SUITE, check, f"mark_dispatched answered {marked}")
    expect(await ctx.b.mark_dispatched([]) == [], _SUITE, check, "an empty mark must give []")
    for provider in (ctx.a, ctx.b):
        answer = await _batch_one(provider, AcquireRequest(key, ctx.ttl))
        expect(
            answer is None,
            _SUITE,
            check,
            f"a request for a dispatched occurrence must be answered None, got {answer!r}",
        )
    expect(not await ctx.a.release(lease), _SUITE, check, "a dispatched record was released")
    await ctx.advance(ctx.ttl * 1.5)  # the lease ran out; the record is still kept
    answer = await _batch_one(ctx.b, AcquireRequest(key, ctx.ttl))
    expect(
        answer is None,
        _SUITE,
        check,
        f"a dispatched occurrence was taken over after its lease ran out: {answer!r}",
    )
    _held_shape(check, await _batch_one(ctx.b, AcquireRequest(other, ctx.ttl)), second, ctx.ttl * 4)
    await ctx.advance(ctx.ttl * 2)  # 3.5 * ttl after the acquire: the memory ended
    fresh = await _batch_one(ctx.b, AcquireRequest(key, ctx.ttl))
    if not isinstance(fresh, LockLease):
        fail(_SUITE, check, f"the key was not free once its record's memory ended: {fresh!r}")
    ctx.saw(check, fresh)
    expect(
        fresh.taken_over is None,
        _SUITE,
        check,
        f"a key whose record ended is a fresh acquire, not a takeover: {fresh!r}",
    )


async def _race_takeover(ctx: _Ctx) -> None:
    check = "race-takeover"
    key = ctx.key("race-takeover")
    old = await _lapsed(ctx, check, key)
    winners = await _race(ctx, lambda p: _batch_one(p, AcquireRequest(key, ctx.ttl * 4)))
    expect(
        len(winners) == 1,
        _SUITE,
        check,
        f"{ctx.concurrency} concurrent takeovers of one expired lease: {len(winners)} "
        f"winners, want 1",
    )
    expect(winners[0].taken_over == old.token, _SUITE, check, "the winner names no old token")
    ctx.saw(check, winners[0])


async def _health(ctx: _Ctx) -> None:
    await ctx.a.health_check()
    await ctx.b.health_check()


async def _aclose(ctx: _Ctx) -> None:
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
            fail(_SUITE, check, "acquire on a closed provider did not raise ClosedError")
    # Closing one client must not close the backend for the others.
    await ctx.a.health_check()
    key = ctx.key("after-close")
    lease = await ctx.a.acquire(key, ctx.ttl)
    ctx.saw(check, _lease_shape(check, lease, key))


_CHECKS: tuple[tuple[str, Callable[[_Ctx], Awaitable[None]]], ...] = (
    ("health-check", _health),
    ("exclusive", _exclusive),
    ("independent-keys", _independent_keys),
    ("ttl-expiry", _ttl_expiry),
    ("renew-extends", _renew_extends),
    ("wrong-token", _wrong_token),
    ("stale-token", _stale_token),
    ("release-reacquire", _release_reacquire),
    ("fencing", _fencing_increases),
    ("acquire-batch", _batch),
    ("held", _held),
    ("takeover", _takeover),
    ("dispatched", _dispatched),
    ("race-takeover", _race_takeover),
    ("watermarks", _watermarks),
    ("race-one-key", _race_one_key),
    ("race-batches", _race_batches),
    ("aclose", _aclose),
)
