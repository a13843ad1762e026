"""In-memory `LockProvider` for one process (tests, demos, single-host deployments).

Rules (on top of L1-L5 of `trio_sched.locks._protocol`):
- M1 State lives in plain dicts guarded by one `threading.Lock`, held only for dict
  operations and never across an ``await``. One provider may therefore be shared by
  several schedulers in one Trio run *and* by several Trio runs in different threads
  (with ``clock=time.monotonic``, see M3).
- M2 Every async method starts with ``await trio.lowlevel.checkpoint()`` and only then
  decides and applies its state change atomically, without a further checkpoint. A call
  cancelled at its checkpoint therefore did nothing: a cancelled ``acquire`` never leaves
  a hidden lock. ``aclose`` is the exception: it closes first and checkpoints after, so
  it closes even when cancelled (as Trio's own ``aclose`` methods do).
- M3 TTLs run on the provider's ``clock`` (seconds, monotonic). The default clock is
  ``trio.current_time()`` of the Trio run that first uses the provider: the provider
  binds to that run (its `trio.lowlevel.TrioToken`) and raises `InvalidArgumentError`
  when a different run uses it, because times of two runs' clocks cannot be compared.
  That default makes `trio.testing.MockClock` (autojump) tests work. To share a provider
  across threads or Trio runs pass ``clock=time.monotonic``.
- M4 ``LockLease.expire_at`` comes from ``wall_clock`` (default ``datetime.now(UTC)``)
  plus the TTL; it is informational, expiry is decided on ``clock`` alone.
- M5 The fencing token is one counter per provider, incremented on every successful
  acquire (single or batch) and never reused. ``renew`` keeps the lease's token.
- M6 Expired entries stay in the dict until an acquire finds the dict at least twice as
  large as after the last sweep (and at least 1,024 entries), then one sweep removes
  them all: amortised O(1) per acquire, memory bounded by the live keys.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, final

import trio

from trio_sched._closeable import ClosesOnExit
from trio_sched._errors import ClosedError, InvalidArgumentError, LeaseLostError
from trio_sched.locks._protocol import (
    AcquireRequest,
    LockLease,
    check_key,
    check_ttl,
    refused_by_watermark,
)

__all__ = ["MemoryLockProvider", "MemoryLockStatistics"]

# Sweeping is skipped below this many stored keys: small dicts cost nothing to keep.
_MIN_SWEEP_SIZE = 1024


# An entry is a plain (token, expires on the provider's clock, fencing token) tuple: the
# garbage collector stops tracking plain tuples of atoms, not NamedTuples, and a busy
# provider holds one entry per occurrence for a whole TTL.
_Entry = tuple[str, float, int]
_TOKEN: Final = 0
_EXPIRES: Final = 1
_FENCING: Final = 2


@dataclass(frozen=True, slots=True)
class MemoryLockStatistics:
    """A snapshot of a `MemoryLockProvider`.

    `held_locks` counts unexpired keys; `stored_keys` also counts expired keys not yet
    swept (rule M6). `refused_by_watermark` counts batch requests refused by rule L4 and
    is not part of `misses` (a key found held).
    """

    held_locks: int
    stored_keys: int
    watermarks: int
    acquires: int
    misses: int
    refused_by_watermark: int
    renewals: int
    renewals_lost: int
    releases: int
    releases_missed: int
    last_fencing_token: int
    closed: bool


@final
class MemoryLockProvider(ClosesOnExit):
    """A `LockProvider` keeping its state in this process (rules M1-M6 above).

    ``clock`` returns monotonic seconds and decides expiry; ``None`` (the default) means
    ``trio.current_time()`` of the first Trio run that uses the provider (rule M3).
    ``wall_clock`` returns an aware datetime used only for `LockLease.expire_at`.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock if wall_clock is not None else _utc_now
        self._bound_run: trio.lowlevel.TrioToken | None = None
        self._mutex = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._watermarks: dict[str, int] = {}
        self._sweep_at = _MIN_SWEEP_SIZE
        self._fencing = 0
        self._token_prefix = secrets.token_hex(8) + "-"
        self._closed = False
        self._acquires = 0
        self._misses = 0
        self._refused = 0
        self._renewals = 0
        self._renewals_lost = 0
        self._releases = 0
        self._releases_missed = 0

    # -- LockProvider ---------------------------------------------------------------

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        """Take `key` for `ttl` seconds if nobody holds it; ``None`` when held.

        A checkpoint before the atomic decision: cancelled means not taken (rule M2).
        """
        check_key(key)
        check_ttl(ttl)
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            now = self._now()
            self._maybe_sweep(now)
            return self._try_take(key, ttl, now)

    async def acquire_batch(self, requests: Sequence[AcquireRequest]) -> list[LockLease | None]:
        """Acquire many keys at once; result ``i`` answers request ``i``.

        ``None`` means held, or refused by its watermark (rule L4).
        The whole batch is decided under one lock acquisition after one checkpoint, so a
        cancelled call took nothing and no other caller sees half a batch. A key named
        twice in one batch is granted to the first request only.
        """
        for request in requests:
            check_key(request.key)
            check_ttl(request.ttl)
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            now = self._now()
            self._maybe_sweep(now)
            results: list[LockLease | None] = []
            expire_at: dict[float, datetime] = {}
            for request in requests:
                if request.watermark is not None and refused_by_watermark(
                    request, self._watermarks.get(request.watermark)
                ):
                    self._refused += 1
                    results.append(None)
                    continue
                results.append(self._try_take(request.key, request.ttl, now, expire_at))
            return results

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        """Extend `lease` to `ttl` seconds from now; same token and fencing token.

        Raises `LeaseLostError` when the key expired (even if nobody took it since) or
        another token holds it. A checkpoint before the atomic decision: a cancelled
        renew changed nothing (the old expiry stands).
        """
        check_ttl(ttl)
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            now = self._now()
            entry = self._entries.get(lease.key)
            if entry is None or entry[_TOKEN] != lease.token or entry[_EXPIRES] <= now:
                self._renewals_lost += 1
                if entry is not None and entry[_EXPIRES] <= now:
                    del self._entries[lease.key]
                raise LeaseLostError(f"lease on {lease.key!r} was lost (expired or taken)")
            self._entries[lease.key] = (entry[_TOKEN], now + ttl, entry[_FENCING])
            self._renewals += 1
            return LockLease(
                key=lease.key,
                token=lease.token,
                expire_at=self._expire_at(ttl),
                fencing_token=entry[_FENCING],
            )

    async def release(self, lease: LockLease) -> bool:
        """Delete the key if `lease` still owns it and has not expired.

        Returns ``False`` (and changes nothing) otherwise. A checkpoint before the atomic
        decision: a cancelled release kept the key (it then ends by its TTL).
        """
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            now = self._now()
            entry = self._entries.get(lease.key)
            if entry is None or entry[_TOKEN] != lease.token or entry[_EXPIRES] <= now:
                self._releases_missed += 1
                return False
            del self._entries[lease.key]
            self._releases += 1
            return True

    async def get_watermarks(self, names: Sequence[str]) -> dict[str, int]:
        """Current watermarks for `names`; names never advanced are absent. A checkpoint."""
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            return {name: self._watermarks[name] for name in names if name in self._watermarks}

    async def advance_watermarks(self, marks: Mapping[str, int]) -> None:
        """Move each watermark to ``max(current, value)``, all at once.

        A checkpoint before the atomic update: a cancelled call moved nothing.
        """
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            for name, value in marks.items():
                current = self._watermarks.get(name)
                if current is None or value > current:
                    self._watermarks[name] = value

    async def health_check(self) -> None:
        """Return if open; raise `ClosedError` after `aclose`. A checkpoint."""
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()

    async def aclose(self) -> None:
        """Close and drop all state. Idempotent.

        Closes *before* its checkpoint, so the provider is closed even when the call is
        cancelled. Afterwards every other method raises `ClosedError`.
        """
        with self._mutex:
            self._closed = True
            self._entries.clear()
            self._watermarks.clear()
        await trio.lowlevel.checkpoint()

    # -- introspection --------------------------------------------------------------

    def statistics(self) -> MemoryLockStatistics:
        """A snapshot of counters and sizes.

        With the default clock (rule M3) call it inside the provider's Trio run, since
        counting unexpired keys reads the clock.
        """
        with self._mutex:
            now = self._now()
            held = sum(1 for entry in self._entries.values() if entry[_EXPIRES] > now)
            return MemoryLockStatistics(
                held_locks=held,
                stored_keys=len(self._entries),
                watermarks=len(self._watermarks),
                acquires=self._acquires,
                misses=self._misses,
                refused_by_watermark=self._refused,
                renewals=self._renewals,
                renewals_lost=self._renewals_lost,
                releases=self._releases,
                releases_missed=self._releases_missed,
                last_fencing_token=self._fencing,
                closed=self._closed,
            )

    # -- internals (all called with self._mutex held) ---------------------------------

    def _try_take(
        self, key: str, ttl: float, now: float, expire_at: dict[float, datetime] | None = None
    ) -> LockLease | None:
        """Take `key` if free. `expire_at` caches wall-clock expiries per TTL within one
        batch: the wall clock is read once per batch, not once per lease."""
        entry = self._entries.get(key)
        if entry is not None and entry[_EXPIRES] > now:
            self._misses += 1
            return None
        self._fencing += 1
        # Tokens need uniqueness, not secrecy: a random per-provider prefix and the
        # fencing counter are unique and cost far less than a random token per lease.
        token = f"{self._token_prefix}{self._fencing:x}"
        self._entries[key] = (token, now + ttl, self._fencing)
        self._acquires += 1
        if expire_at is None:
            wall = self._expire_at(ttl)
        else:
            wall = expire_at.get(ttl) or expire_at.setdefault(ttl, self._expire_at(ttl))
        return LockLease(key=key, token=token, expire_at=wall, fencing_token=self._fencing)

    def _maybe_sweep(self, now: float) -> None:
        if len(self._entries) < self._sweep_at:
            return
        self._entries = {k: e for k, e in self._entries.items() if e[_EXPIRES] > now}
        self._sweep_at = max(_MIN_SWEEP_SIZE, 2 * len(self._entries))

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        # Raises RuntimeError outside a Trio run, which is the right answer: there is
        # no clock to measure the TTL on.
        token = trio.lowlevel.current_trio_token()
        if self._bound_run is None:
            self._bound_run = token
        elif self._bound_run is not token:
            raise InvalidArgumentError(
                "this MemoryLockProvider uses the default clock (trio.current_time) and is "
                "bound to another Trio run; pass clock=time.monotonic to share it across "
                "Trio runs or threads"
            )
        return trio.current_time()

    def _expire_at(self, ttl: float) -> datetime:
        wall = self._wall_clock()
        if wall.tzinfo is None:
            raise InvalidArgumentError("wall_clock must return an aware datetime")
        return wall.astimezone(UTC) + timedelta(seconds=ttl)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("MemoryLockProvider is closed")


def _utc_now() -> datetime:
    return datetime.now(UTC)
