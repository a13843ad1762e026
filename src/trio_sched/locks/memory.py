"""In-memory `LockProvider` for one process (tests, demos, single-host deployments); a
`PauseStore` too (rule L9).

Rules (on top of L1-L9 of `trio_sched.locks._protocol`):
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
  acquire or takeover (single or batch) and never reused. ``renew`` keeps the lease's
  token.
- M6 Entries whose memory ended (L6) stay in the dict until an acquire finds the dict
  at least twice as large as after the last sweep (and at least 1,024 entries), then
  one sweep removes them all: amortised O(1) per acquire, memory bounded by the kept
  records.
- M7 Pause records (L9) are a dict of watermark name -> `Paused`, like the watermarks:
  ``set_paused`` applies a whole call under the lock, and ``acquire_batch`` looks a
  request's watermark name up there before anything else. They never expire and go
  with everything else on ``aclose``.
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
from trio_sched.locks._pause import check_names, check_states
from trio_sched.locks._protocol import (
    AcquireRequest,
    Held,
    LockLease,
    Paused,
    check_key,
    check_request,
    check_ttl,
    refused_by_watermark,
)

__all__ = ["MemoryLockProvider", "MemoryLockStatistics"]

# Sweeping is skipped below this many stored keys: small dicts cost nothing to keep.
_MIN_SWEEP_SIZE = 1024


# An entry is a plain (token, lease end, fencing token, memory end, dispatched) tuple
# (times on the provider's clock): the garbage collector stops tracking plain tuples of
# atoms, not NamedTuples, and a busy provider holds one entry per occurrence for as long
# as its record is kept (L6).
_Entry = tuple[str, float, int, float, bool]
_TOKEN: Final = 0
_EXPIRES: Final = 1
_FENCING: Final = 2
_KEPT: Final = 3
_DISPATCHED: Final = 4


@dataclass(frozen=True, slots=True)
class MemoryLockStatistics:
    """A snapshot of a `MemoryLockProvider`.

    `held_locks` counts leases that have not run out; `stored_keys` every stored record,
    also those whose memory ended and that are not swept yet (rule M6).
    `refused_by_watermark` counts batch requests refused by rule L4 and is not part of
    `misses` (a key found held or dispatched). `takeovers` counts rule L7's,
    `dispatched` the successful marks of rule L8. `paused` counts the stored pause
    records and `refused_by_pause` the batch requests answered `Paused` (L9; not part
    of `misses` either).
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
    takeovers: int = 0
    dispatched: int = 0
    paused: int = 0
    refused_by_pause: int = 0


@final
class MemoryLockProvider(ClosesOnExit):
    """A `LockProvider` and `PauseStore` keeping its state in this process (rules M1-M7
    above).

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
        self._paused: dict[str, Paused] = {}
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
        self._takeovers = 0
        self._marked = 0
        self._refused_paused = 0

    # -- LockProvider ---------------------------------------------------------------

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        """Take `key` for `ttl` seconds if nobody holds it, or take it over (L7);
        ``None`` when held or dispatched.

        A checkpoint before the atomic decision: cancelled means not taken (rule M2).
        """
        check_key(key)
        check_ttl(ttl)
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            now = self._now()
            self._maybe_sweep(now)
            result = self._try_take(key, ttl, ttl, now)
            return result if isinstance(result, LockLease) else None

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | Paused | None]:
        """Acquire (or take over, L7) many keys at once; result ``i`` answers request
        ``i``.

        `Paused` means its watermark names a paused task (L9, decided first; the key is
        untouched); `Held` leased by another token undispatched (L6); ``None``
        dispatched, refused by its watermark (rule L4), or granted earlier in the batch.
        The whole batch is decided under one lock acquisition after one checkpoint, so a
        cancelled call took nothing and no other caller sees half a batch.
        """
        kept = [check_request(request) for request in requests]
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            now = self._now()
            self._maybe_sweep(now)
            results: list[LockLease | Held | Paused | None] = []
            expire_at: dict[float, datetime] = {}
            granted: set[str] = set()
            paused = self._paused
            for request, keep in zip(requests, kept, strict=True):
                if request.watermark is not None:
                    record = paused.get(request.watermark) if paused else None
                    if record is not None:
                        self._refused_paused += 1
                        results.append(record)
                        continue
                    if refused_by_watermark(request, self._watermarks.get(request.watermark)):
                        self._refused += 1
                        results.append(None)
                        continue
                if request.key in granted:
                    self._misses += 1
                    results.append(None)
                    continue
                result = self._try_take(request.key, request.ttl, keep, now, expire_at)
                if isinstance(result, LockLease):
                    granted.add(request.key)
                results.append(result)
            return results

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        """Extend `lease` to `ttl` seconds from now; same token and fencing token.

        Raises `LeaseLostError` when the lease ran out (even if nobody took it over
        since) or another token holds the key. A checkpoint before the atomic decision: a
        cancelled renew changed nothing (the old expiry stands).
        """
        check_ttl(ttl)
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            now = self._now()
            entry = self._entries.get(lease.key)
            if entry is None or entry[_TOKEN] != lease.token or entry[_EXPIRES] <= now:
                self._renewals_lost += 1
                raise LeaseLostError(f"lease on {lease.key!r} was lost (expired or taken)")
            self._entries[lease.key] = (
                entry[_TOKEN],
                now + ttl,
                entry[_FENCING],
                max(entry[_KEPT], now + ttl),
                entry[_DISPATCHED],
            )
            self._renewals += 1
            return LockLease(
                key=lease.key,
                token=lease.token,
                expire_at=self._expire_at(ttl),
                fencing_token=entry[_FENCING],
                taken_over=lease.taken_over,  # as the Redis and PostgreSQL providers do
            )

    async def release(self, lease: LockLease) -> bool:
        """Delete the key if `lease` still owns it, its lease has not run out and it is
        not dispatched (L3, L8).

        Returns ``False`` (and changes nothing) otherwise. A checkpoint before the atomic
        decision: a cancelled release kept the key (it then ends by its TTL).
        """
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            now = self._now()
            entry = self._entries.get(lease.key)
            if (
                entry is None
                or entry[_TOKEN] != lease.token
                or entry[_EXPIRES] <= now
                or entry[_DISPATCHED]
            ):
                self._releases_missed += 1
                return False
            del self._entries[lease.key]
            self._releases += 1
            return True

    async def mark_dispatched(self, leases: Sequence[LockLease]) -> list[bool]:
        """Mark each lease's record dispatched if its token still owns it (L8).

        A checkpoint before the atomic update: a cancelled call marked nothing.
        """
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            now = self._now()
            results: list[bool] = []
            for lease in leases:
                entry = self._entries.get(lease.key)
                if entry is None or entry[_TOKEN] != lease.token or entry[_KEPT] <= now:
                    results.append(False)
                    continue
                if not entry[_DISPATCHED]:
                    self._entries[lease.key] = (*entry[:_DISPATCHED], True)
                    self._marked += 1
                results.append(True)
            return results

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

    # -- PauseStore -------------------------------------------------------------------

    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        """Store each name's pause record, or delete it (``None``: resumed), all at once
        (M7); ``since`` is kept floored to the millisecond in UTC.

        Every name and record is checked first (`InvalidArgumentError`, nothing
        changed). A checkpoint before the atomic update: a cancelled call changed
        nothing.
        """
        checked = check_states(states)
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            for name, state in checked.items():
                if state is None:
                    self._paused.pop(name, None)
                else:
                    self._paused[name] = state

    async def get_paused(self, names: Sequence[str]) -> dict[str, Paused]:
        """The pause records of those `names` that have one. A checkpoint."""
        wanted = check_names(names)
        await trio.lowlevel.checkpoint()
        with self._mutex:
            self._check_open()
            return {name: self._paused[name] for name in wanted if name in self._paused}

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
            self._paused.clear()
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
                takeovers=self._takeovers,
                dispatched=self._marked,
                paused=len(self._paused),
                refused_by_pause=self._refused_paused,
            )

    # -- internals (all called with self._mutex held) ---------------------------------

    def _try_take(
        self,
        key: str,
        ttl: float,
        keep: float,
        now: float,
        expire_at: dict[float, datetime] | None = None,
    ) -> LockLease | Held | None:
        """Take `key` if free, or take it over (L7); `keep` is how long its record is
        kept (>= `ttl`). `expire_at` caches wall-clock expiries per TTL within one
        batch: the wall clock is read once per batch, not once per lease."""
        entry = self._entries.get(key)
        previous: str | None = None
        kept = now + keep
        if entry is not None and entry[_KEPT] > now:
            if entry[_DISPATCHED]:
                self._misses += 1
                return None
            if entry[_EXPIRES] > now:
                self._misses += 1
                return Held(entry[_TOKEN], entry[_EXPIRES] - now)
            previous = entry[_TOKEN]  # ran out undispatched: taken over (L7)
            kept = max(kept, entry[_KEPT])
            self._takeovers += 1
        self._fencing += 1
        # Tokens need uniqueness, not secrecy: a random per-provider prefix and the
        # fencing counter are unique and cost far less than a random token per lease.
        token = f"{self._token_prefix}{self._fencing:x}"
        self._entries[key] = (token, now + ttl, self._fencing, kept, False)
        self._acquires += 1
        if expire_at is None:
            wall = self._expire_at(ttl)
        else:
            wall = expire_at.get(ttl) or expire_at.setdefault(ttl, self._expire_at(ttl))
        return LockLease(
            key=key, token=token, expire_at=wall, fencing_token=self._fencing, taken_over=previous
        )

    def _maybe_sweep(self, now: float) -> None:
        if len(self._entries) < self._sweep_at:
            return
        self._entries = {k: e for k, e in self._entries.items() if e[_KEPT] > now}
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
