"""`check_lock_provider`: the conformance suite every `LockProvider` runs.

The checks live by theme: leases (`_lock_leases`), batches and races
(`_lock_batches`), held, taken-over and dispatched records (`_lock_records`), pause
records (`_lock_pause`, only for providers that are a `PauseStore`); what they share is
in `_lock_context`. This module runs them, in the order of `_CHECKS`, then
`PAUSE_CHECKS`.

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

import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import trio

from trio_sched.locks._protocol import LockProvider
from trio_sched.testing._check import run_check, unique_prefix
from trio_sched.testing._lock_batches import batch, race_batches, race_one_key, watermarks
from trio_sched.testing._lock_context import SUITE, Ctx
from trio_sched.testing._lock_leases import (
    aclose,
    exclusive,
    fencing_increases,
    health,
    independent_keys,
    release_reacquire,
    renew_extends,
    stale_token,
    ttl_expiry,
    wrong_token,
)
from trio_sched.testing._lock_pause import PAUSE_CHECKS, pausable
from trio_sched.testing._lock_records import dispatched, held, race_takeover, takeover

__all__ = ["check_lock_provider"]


async def check_lock_provider(
    make: Callable[[], AbstractAsyncContextManager[LockProvider]],
    *,
    ttl: float = 0.5,
    advance: Callable[[float], Awaitable[None]] = trio.sleep,
    prefix: str | None = None,
    concurrency: int = 20,
) -> None:
    """Check that the providers `make` returns behave as rules L1-L8 require, and L9
    when they are a `PauseStore` (``set_paused``/``get_paused``).

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
        ctx = Ctx(
            a=a,
            b=b,
            make=make,
            ttl=ttl,
            advance=advance,
            prefix=prefix,
            concurrency=concurrency,
        )
        checks = _CHECKS + (PAUSE_CHECKS if pausable(a) and pausable(b) else ())
        for name, check in checks:
            await run_check(SUITE, name, functools.partial(check, ctx))


_CHECKS: tuple[tuple[str, Callable[[Ctx], Awaitable[None]]], ...] = (
    ("health-check", health),
    ("exclusive", exclusive),
    ("independent-keys", independent_keys),
    ("ttl-expiry", ttl_expiry),
    ("renew-extends", renew_extends),
    ("wrong-token", wrong_token),
    ("stale-token", stale_token),
    ("release-reacquire", release_reacquire),
    ("fencing", fencing_increases),
    ("acquire-batch", batch),
    ("held", held),
    ("takeover", takeover),
    ("dispatched", dispatched),
    ("race-takeover", race_takeover),
    ("watermarks", watermarks),
    ("race-one-key", race_one_key),
    ("race-batches", race_batches),
    ("aclose", aclose),
)
