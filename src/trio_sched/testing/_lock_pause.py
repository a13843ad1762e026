"""The pause checks of `check_lock_provider` (rule L9), run only when both providers
are a `PauseStore`: a paused task's requests are answered its `Paused` record before
any other check and leave the key untouched, other requests of the batch are not
affected, ``get_paused`` reports exactly the paused names, several names change in one
call, and bad input raises `InvalidArgumentError`. The suite's rules LS1-LS5 are in
`_locks`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

from trio_sched._errors import InvalidArgumentError
from trio_sched.locks._protocol import (
    AcquireRequest,
    Held,
    LockLease,
    LockProvider,
    Paused,
    PauseStore,
)
from trio_sched.testing._check import expect, fail
from trio_sched.testing._lock_context import SUITE, Ctx, held_shape, lease_shape

__all__ = ["PAUSE_CHECKS", "pausable"]

# A `since` with microseconds, in a zone east of UTC: stored, it must come back floored
# to the millisecond and in UTC (rule L9).
_SINCE = datetime(2026, 3, 1, 12, 30, 15, 123_987, tzinfo=timezone(timedelta(hours=2)))
_FLOORED = datetime(2026, 3, 1, 10, 30, 15, 123_000, tzinfo=UTC)


def pausable(provider: LockProvider) -> bool:
    return isinstance(provider, PauseStore)


def _store(provider: LockProvider) -> PauseStore:
    return cast(PauseStore, provider)


def _record(by: str, reason: str | None, minutes: int = 0) -> tuple[Paused, Paused]:
    """A record to store, and the record a provider must answer for it."""
    return (
        Paused(_SINCE + timedelta(minutes=minutes), by, reason),
        Paused(_FLOORED + timedelta(minutes=minutes), by, reason),
    )


def _same(check: str, got: object, want: Paused, what: str) -> None:
    if not isinstance(got, Paused):
        fail(
            SUITE,
            check,
            f"{what}: a request naming a paused task's watermark must be answered its "
            f"Paused record (rule L9), got {got!r}",
        )
    expect(
        got == want,
        SUITE,
        check,
        f"{what}: the Paused record must equal the one stored (since floored to the "
        f"millisecond, by, reason): want {want!r}, got {got!r}",
    )
    expect(
        got.since.utcoffset() == timedelta(0),
        SUITE,
        check,
        f"{what}: Paused.since must be in UTC, got {got.since!r}",
    )


async def _got(provider: LockProvider, names: list[str]) -> dict[str, Paused]:
    got = await _store(provider).get_paused(names)
    if not isinstance(got, dict):
        fail(SUITE, "get-paused", f"get_paused must answer a dict, got {got!r}")
    return got


async def pause_blocks(ctx: Ctx) -> None:
    check = "pause-blocks"
    name = f"{ctx.prefix}:wm:paused"
    key = ctx.key("paused")
    stored, want = _record("instance-a", "maintenance window")
    await _store(ctx.a).set_paused({name: stored})
    request = AcquireRequest(key, ctx.ttl * 4, name, 1000)
    for provider in (ctx.b, ctx.a):
        (answer,) = await provider.acquire_batch([request])
        _same(check, answer, want, "after set_paused")
    await _store(ctx.b).set_paused({name: None})
    (answer,) = await ctx.a.acquire_batch([request])
    if not isinstance(answer, LockLease):
        fail(
            SUITE,
            check,
            f"after resume, the request of a task that was paused must be granted (its "
            f"key untouched while paused), got {answer!r}",
        )
    ctx.saw(check, lease_shape(check, answer, key))
    expect(
        answer.taken_over is None,
        SUITE,
        check,
        f"after resume, the grant took a record over: a record was made while paused ({answer!r})",
    )


async def pause_batch(ctx: Ctx) -> None:
    check = "pause-batch"
    name, other = f"{ctx.prefix}:wm:batch-paused", f"{ctx.prefix}:wm:batch-running"
    await ctx.a.advance_watermarks({name: 1000, other: 1000})
    stored, want = _record("instance-b", None, minutes=1)
    await _store(ctx.b).set_paused({name: stored})
    dispatched = ctx.key("pause-dispatched")
    done = lease_shape(check, await ctx.a.acquire(dispatched, ctx.ttl * 4), dispatched)
    ctx.saw(check, done)
    expect(await ctx.a.mark_dispatched([done]) == [True], SUITE, check, "mark_dispatched failed")
    shared, running, plain = ctx.key("pause-shared"), ctx.key("pause-run"), ctx.key("pause-plain")
    requests = [
        AcquireRequest(shared, ctx.ttl * 4, name, 2000),  # 0 paused
        AcquireRequest(running, ctx.ttl * 4, other, 2000),  # 1 granted: another task
        AcquireRequest(plain, ctx.ttl * 4),  # 2 granted: no watermark
        AcquireRequest(ctx.key("pause-old"), ctx.ttl * 4, name, 500),  # 3 paused, not refused
        AcquireRequest(dispatched, ctx.ttl * 4, name, 2000),  # 4 paused, not None
        AcquireRequest(shared, ctx.ttl * 4),  # 5 granted: the paused request took nothing
        AcquireRequest(ctx.key("pause-old"), ctx.ttl * 4, other, 500),  # 6 refused: L4
    ]
    results = await ctx.a.acquire_batch(requests)
    expect(
        len(results) == len(requests),
        SUITE,
        check,
        f"{len(requests)} requests got {len(results)} answers",
    )
    for i in (0, 3, 4):
        _same(check, results[i], want, f"answer {i} (checked before the watermark and the key)")
    tokens: list[int] = []
    for i in (1, 2, 5):
        lease = lease_shape(check, results[i], requests[i].key)
        expect(lease.fencing_token > ctx.fencing[-1], SUITE, check, f"answer {i}: fencing")
        tokens.append(lease.fencing_token)
    ctx.fencing.append(max(tokens))
    expect(
        results[6] is None,
        SUITE,
        check,
        f"answer 6: a request of a running task at or before its watermark must still be "
        f"refused (None), got {results[6]!r}",
    )


async def get_paused(ctx: Ctx) -> None:
    check = "get-paused"
    one, two, never = (f"{ctx.prefix}:wm:get-{label}" for label in ("one", "two", "never"))
    got = await _got(ctx.a, [one, two, never])
    expect(got == {}, SUITE, check, f"names never paused must be absent, got {got}")
    first, first_want = _record("instance-a", "first", minutes=2)
    second, second_want = _record("instance-b", None, minutes=3)
    await _store(ctx.a).set_paused({one: first})
    await _store(ctx.b).set_paused({two: second})
    got = await _got(ctx.b, [one, two, never])
    expect(
        got == {one: first_want, two: second_want},
        SUITE,
        check,
        f"get_paused after pausing two names: {got}",
    )
    for name, record in got.items():
        _same(check, record, {one: first_want, two: second_want}[name], f"get_paused {name!r}")
    await _store(ctx.b).set_paused({one: None, never: None})  # resuming a running task: no-op
    got = await _got(ctx.a, [one, two, never])
    expect(got == {two: second_want}, SUITE, check, f"get_paused after resuming one: {got}")
    got = await _got(ctx.a, [])
    expect(got == {}, SUITE, check, f"get_paused([]) must give {{}}, got {got}")
    await _store(ctx.a).set_paused({})


async def pause_held(ctx: Ctx) -> None:
    check = "pause-held"
    name = f"{ctx.prefix}:wm:held-paused"
    key = ctx.key("pause-held")
    request = AcquireRequest(key, ctx.ttl * 4, name, 1000)
    (lease,) = await ctx.a.acquire_batch([request])
    lease = lease_shape(check, lease, key)
    ctx.saw(check, lease)
    stored, want = _record("instance-b", "paused while held", minutes=4)
    await _store(ctx.b).set_paused({name: stored})
    (answer,) = await ctx.b.acquire_batch([request])
    _same(check, answer, want, "a request for a key another token holds")
    renewed = await ctx.a.renew(lease, ctx.ttl * 4)  # the holder is unaffected
    expect(
        (renewed.token, renewed.fencing_token) == (lease.token, lease.fencing_token),
        SUITE,
        check,
        f"renew while paused must keep the lease: {lease!r} -> {renewed!r}",
    )
    (answer,) = await ctx.b.acquire_batch([dataclasses.replace(request, watermark=None)])
    held_shape(check, answer, lease, ctx.ttl * 4)
    await _store(ctx.a).set_paused({name: None})
    (answer,) = await ctx.b.acquire_batch([request])
    expect(
        isinstance(answer, Held),
        SUITE,
        check,
        f"after resume, the record held while paused must still be Held, got {answer!r}",
    )
    marked = await ctx.a.mark_dispatched([renewed])
    expect(marked == [True], SUITE, check, f"the holder's mark_dispatched answered {marked}")


async def pause_many(ctx: Ctx) -> None:
    check = "pause-many"
    names = [f"{ctx.prefix}:wm:many-{i}" for i in range(4)]
    records = [_record(f"instance-{i}", f"reason {i}", minutes=10 + i) for i in range(3)]
    await _store(ctx.a).set_paused({n: r for n, (r, _) in zip(names, records, strict=False)})
    got = await _got(ctx.b, names)
    want = {n: w for n, (_, w) in zip(names, records, strict=False)}
    expect(got == want, SUITE, check, f"after pausing three names in one call: {got}")
    keys = [ctx.key("pause-many") for _ in names]
    answers = await ctx.b.acquire_batch(
        [AcquireRequest(k, ctx.ttl * 4, n, 1000) for k, n in zip(keys, names, strict=True)]
    )
    for i in range(3):
        _same(check, answers[i], want[names[i]], f"answer {i}")
    ctx.saw(check, lease_shape(check, answers[3], keys[3]))
    again, again_want = _record("instance-9", "paused again", minutes=20)
    changes: Mapping[str, Paused | None] = {names[0]: None, names[1]: again, names[3]: again}
    await _store(ctx.b).set_paused(changes)
    got = await _got(ctx.a, names)
    want = {names[1]: again_want, names[2]: want[names[2]], names[3]: again_want}
    expect(got == want, SUITE, check, f"after resuming, re-pausing and pausing in one call: {got}")


async def pause_input(ctx: Ctx) -> None:
    check = "pause-input"
    store = _store(ctx.a)
    name = f"{ctx.prefix}:wm:input"
    good = Paused(_SINCE, "instance-a")
    bad: list[tuple[str, object]] = [
        ("an empty name", {"": good}),
        ("a name that is not a str", {7: good}),
        ("an empty by", {name: Paused(_SINCE, "")}),
        ("a by with NUL", {name: Paused(_SINCE, "a\0b")}),
        ("a by of 201 characters", {name: Paused(_SINCE, "b" * 201)}),
        ("a by that is not a str", {name: Paused(_SINCE, cast(str, 7))}),
        ("a reason with NUL", {name: Paused(_SINCE, "a", "x\0y")}),
        ("a reason of 1,001 characters", {name: Paused(_SINCE, "a", "r" * 1001)}),
        ("a reason that is not a str", {name: Paused(_SINCE, "a", cast(str, 7))}),
        ("a naive since", {name: Paused(datetime(2026, 3, 1), "a")}),
        ("a since that is not a datetime", {name: Paused(cast(datetime, 1.5), "a")}),
        ("a state that is not Paused", {name: "paused"}),
        ("one bad name among good ones", {name: good, "": good}),
    ]
    for what, states in bad:
        try:
            await store.set_paused(cast(Mapping[str, Paused | None], states))
        except InvalidArgumentError:
            pass
        else:
            fail(SUITE, check, f"set_paused with {what} did not raise InvalidArgumentError")
    got = await _got(ctx.a, [name])
    expect(got == {}, SUITE, check, f"a set_paused that raised still paused a name: {got}")
    try:
        await store.get_paused([name, ""])
    except InvalidArgumentError:
        pass
    else:
        fail(SUITE, check, "get_paused with an empty name did not raise InvalidArgumentError")
    longest = Paused(_SINCE, "b" * 200, "r" * 1000)
    await store.set_paused({name: longest})
    got = await _got(ctx.b, [name])
    expect(
        got == {name: dataclasses.replace(longest, since=_FLOORED)},
        SUITE,
        check,
        "a by of 200 and a reason of 1,000 characters must be stored whole",
    )
    await store.set_paused({name: None})


PAUSE_CHECKS: tuple[tuple[str, Callable[[Ctx], Awaitable[None]]], ...] = (
    ("pause-blocks", pause_blocks),
    ("pause-batch", pause_batch),
    ("get-paused", get_paused),
    ("pause-held", pause_held),
    ("pause-many", pause_many),
    ("pause-input", pause_input),
)
