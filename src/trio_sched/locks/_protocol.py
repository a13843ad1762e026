"""The coordination interface every lock backend implements (rules O2-O5 of docs/runtime.md).

Rules:
- L1 Acquire is set-if-absent with a TTL measured on the *backend's* clock.
- L2 Every successful acquire carries a fencing token that strictly increases across
  the provider's whole key space (never reused, never decreasing).
- L3 ``renew`` only acts when the lease's ``token`` still owns the key and its lease has
  not run out; ``release`` only when, in addition, the occurrence is not dispatched.
- L4 A watermark is a per-name integer (epoch milliseconds of the last dispatched
  occurrence) that only moves forward. ``acquire_batch`` refuses an occurrence at or
  before its task's watermark, unless the request's ``watermark_slack_ms`` says the
  occurrence is recent enough for its lock alone to decide: a request is refused when
  ``nominal_ms <= watermark`` and ``watermark - nominal_ms >= watermark_slack_ms``.
- L5 ``acquire_batch``, ``mark_dispatched`` and ``advance_watermarks`` do their whole
  batch in one backend round trip.
- L6 A key is a *record* of one occurrence: its lease (``ttl``, renewed while the
  dispatch runs) and its memory (``keep`` seconds from the acquire, at least until the
  lease ends). While the record is kept, ``acquire_batch`` answers a request for it
  with `Held` (the holder's token and the seconds until its lease runs out, backend
  clock) while it is leased and not dispatched, and with ``None`` once it is
  dispatched (L8). A record whose memory ended is gone: the key is free.
- L7 Takeover: a request for a kept record whose lease ran out undispatched takes the
  occurrence over: a new lease (new token, higher fencing token, ``ttl`` from now)
  whose `LockLease.taken_over` names the old token. Of racing contenders exactly one
  wins; the old token's ``renew``, ``release`` and ``mark_dispatched`` then fail.
- L8 ``mark_dispatched`` marks each record its lease's token still owns as dispatched
  (its lease may have run out as long as nobody took it over): it is never taken over
  again and ``release`` leaves it, until its memory ends.
- L9 A provider that is a `PauseStore` answers, in ``acquire_batch``, every request
  whose ``watermark`` names a paused task with that task's `Paused` record (equal to
  what ``set_paused`` stored: ``since`` to the millisecond, ``by``, ``reason``), before
  any other check: the key is untouched (no record made, no fencing token used, a
  `Held`/dispatched record stays as it is). Requests with ``watermark=None`` are not
  affected. ``set_paused`` is atomic per name with respect to ``acquire_batch``: an
  ``acquire_batch`` that starts after ``set_paused`` returned sees the new state.

TTLs and timeouts are ``float`` seconds, as everywhere in Trio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from trio_sched._errors import InvalidArgumentError

__all__ = [
    "AcquireRequest",
    "Held",
    "LockLease",
    "LockProvider",
    "PauseStore",
    "Paused",
    "check_key",
    "check_request",
    "check_ttl",
    "refused_by_watermark",
]


@dataclass(frozen=True, slots=True)
class LockLease:
    """A held lock.

    `expire_at` is the provider's best estimate of the expiry as an aware UTC
    datetime (informational: expiry itself is decided on the backend's clock).
    `fencing_token` strictly increases per provider key space (rule L2). `taken_over`
    is the token of the expired, undispatched lease this one took over (rule L7), or
    ``None`` for a fresh acquire.
    """

    key: str
    token: str
    expire_at: datetime
    fencing_token: int
    taken_over: str | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """`acquire_batch`'s answer for an occurrence another token leases and has not
    dispatched yet (rule L6): `token` is the holder's, `expires_in` the seconds (>= 0,
    backend clock) until its lease runs out unrenewed. A caller that wants the
    occurrence taken over if the holder fails asks again after that (rule L7)."""

    token: str
    expires_in: float


@dataclass(frozen=True, slots=True)
class Paused:
    """A task's pause record (rule L9).

    `since` is when it was paused: an aware datetime, the pausing caller's clock as
    given, stored and answered at millisecond precision (floored) in UTC. `by` names
    who paused it (a scheduler instance id, non-empty), `reason` is free text or
    ``None``. A `PauseStore` checks the values (`trio_sched.locks._pause`).
    """

    since: datetime
    by: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AcquireRequest:
    """One occurrence lock to take in a batch.

    `watermark` names the watermark to check (usually ``{prefix}:{task}``) and
    `nominal_ms` is the occurrence's nominal instant in epoch milliseconds: the
    request is refused when ``nominal_ms <= watermark`` and ``watermark - nominal_ms >=
    watermark_slack_ms`` (rule L4). With the default slack of 0 every occurrence at or
    before the watermark is refused. The scheduler sends a slack for occurrences it
    reaches on time: an instance whose clock runs ahead may have moved the watermark
    past an occurrence nobody dispatched yet, and such a recent occurrence is still
    protected by its lock (held until its TTL once taken). `watermark` may be ``None``
    for locks that have no watermark (manual triggers). `keep` is how long, in seconds
    from the acquire, the record remembers the occurrence (rule L6); a value below
    `ttl` (the default 0) means `ttl`.
    """

    key: str
    ttl: float
    watermark: str | None = None
    nominal_ms: int = 0
    watermark_slack_ms: int = 0
    keep: float = 0.0


@runtime_checkable
class LockProvider(Protocol):
    """Structural interface of a coordination backend.

    Every method is a Trio checkpoint. On cancellation an implementation must not
    leave a lock held that the caller does not know about: a cancelled ``acquire``
    either did not take the key, or releases it before re-raising (or the key expires
    by its TTL, which the implementation documents).
    """

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        """Take `key` for `ttl` seconds if nobody holds it (or take it over, L7);
        ``None`` when held or dispatched."""
        ...

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | Paused | None]:
        """Acquire (or take over, L7) many keys in one round trip; result ``i`` answers
        request ``i``.

        A request is answered `Paused` when its watermark names a paused task (L9, only
        from a provider that is a `PauseStore`; its key is untouched), `Held` when
        another token leases its key undispatched (L6), ``None`` when its occurrence is
        dispatched or at or before its watermark (L4), or when the same key was granted
        earlier in the batch.
        """
        ...

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        """Extend `lease` to `ttl` seconds from now (backend clock).

        Raises `LeaseLostError` when the lease expired or another token holds the key.
        """
        ...

    async def release(self, lease: LockLease) -> bool:
        """Delete the key if `lease` still owns it undispatched; returns whether it did."""
        ...

    async def mark_dispatched(self, leases: Sequence[LockLease]) -> list[bool]:
        """Mark each lease's occurrence dispatched (L8) in one round trip; result ``i``
        says whether lease ``i``'s token still owned its record."""
        ...

    async def get_watermarks(self, names: Sequence[str]) -> dict[str, int]:
        """Current watermarks (epoch ms) for `names`; names never set are absent."""
        ...

    async def advance_watermarks(self, marks: Mapping[str, int]) -> None:
        """Move each watermark to ``max(current, value)`` in one round trip."""
        ...

    async def health_check(self) -> None:
        """Return when the backend answers; raise a `SchedulerError` otherwise."""
        ...

    async def aclose(self) -> None:
        """Release client resources. Idempotent."""
        ...


@runtime_checkable
class PauseStore(Protocol):
    """What a `LockProvider` that keeps pause records adds (rule L9).

    Records are keyed by watermark name (the names of `LockProvider.get_watermarks`),
    so each task's pause sits next to its watermark. Both methods are Trio checkpoints
    and raise `InvalidArgumentError` for bad input before any I/O.
    """

    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        """Store each name's pause record, or delete it (None = resumed), in one round
        trip (L5)."""
        ...

    async def get_paused(self, names: Sequence[str]) -> dict[str, Paused]:
        """The pause records of those names that have one (paused); one round trip."""
        ...


def check_key(key: object) -> None:
    """Raise `InvalidArgumentError` unless `key` is a non-empty str (every provider)."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"lock key must be a non-empty str, got {key!r}")


# The longest TTL or memory any provider accepts (ten years): every backend, and an
# aware datetime of the expiry, can hold it; longer is certainly a mistake.
MAX_TTL = 10 * 366 * 86_400.0


def check_ttl(ttl: object) -> float:
    """Return `ttl` if it is a finite number of seconds in (0, `MAX_TTL`], else raise
    `InvalidArgumentError` (every provider)."""
    # bool is an int; a TTL of True seconds is certainly a bug.
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidArgumentError(f"ttl must be a number of seconds, got {ttl!r}")
    if not (ttl > 0 and ttl <= MAX_TTL):  # also false for NaN; an int never overflows here
        raise InvalidArgumentError(
            f"ttl must be a finite number of seconds > 0 and at most {MAX_TTL:g} "
            f"(ten years), got {ttl!r}"
        )
    return float(ttl)


def check_request(request: AcquireRequest) -> float:
    """Check a batch request's key, TTL and `keep` (every provider); return how long its
    record is kept, in seconds: ``max(ttl, keep)`` (rule L6)."""
    check_key(request.key)
    ttl = check_ttl(request.ttl)
    keep = request.keep
    if isinstance(keep, bool) or not isinstance(keep, int | float):
        raise InvalidArgumentError(f"keep must be a number of seconds, got {keep!r}")
    if not (keep >= 0 and keep <= MAX_TTL):
        raise InvalidArgumentError(
            f"keep must be a number of seconds from 0 to {MAX_TTL:g} (ten years), got {keep!r}"
        )
    return max(ttl, keep)


def refused_by_watermark(request: AcquireRequest, mark: int | None) -> bool:
    """Rule L4 for one request, given its watermark's current value (None: never set)."""
    return (
        request.watermark is not None
        and mark is not None
        and request.nominal_ms <= mark
        and mark - request.nominal_ms >= request.watermark_slack_ms
    )
