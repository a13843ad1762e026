"""The coordination interface every lock backend implements (rules O2-O5 of docs/runtime.md).

Rules:
- L1 Acquire is set-if-absent with a TTL measured on the *backend's* clock.
- L2 Every successful acquire carries a fencing token that strictly increases across
  the provider's whole key space (never reused, never decreasing).
- L3 ``renew`` and ``release`` only act when the lease's ``token`` still owns the key.
- L4 A watermark is a per-name integer (epoch milliseconds of the last dispatched
  occurrence) that only moves forward. ``acquire_batch`` refuses an occurrence at or
  before its task's watermark, unless the request's ``watermark_slack_ms`` says the
  occurrence is recent enough for its lock alone to decide: a request is refused when
  ``nominal_ms <= watermark`` and ``watermark - nominal_ms >= watermark_slack_ms``.
- L5 ``acquire_batch`` and ``advance_watermarks`` do their whole batch in one backend
  round trip.

TTLs and timeouts are ``float`` seconds, as everywhere in Trio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from trio_sched._errors import InvalidArgumentError

__all__ = [
    "AcquireRequest",
    "LockLease",
    "LockProvider",
    "check_key",
    "check_ttl",
    "refused_by_watermark",
]


@dataclass(frozen=True, slots=True)
class LockLease:
    """A held lock.

    `expire_at` is the provider's best estimate of the expiry as an aware UTC
    datetime (informational: expiry itself is decided on the backend's clock).
    `fencing_token` strictly increases per provider key space (rule L2).
    """

    key: str
    token: str
    expire_at: datetime
    fencing_token: int


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
    for locks that have no watermark (manual triggers).
    """

    key: str
    ttl: float
    watermark: str | None = None
    nominal_ms: int = 0
    watermark_slack_ms: int = 0


@runtime_checkable
class LockProvider(Protocol):
    """Structural interface of a coordination backend.

    Every method is a Trio checkpoint. On cancellation an implementation must not
    leave a lock held that the caller does not know about: a cancelled ``acquire``
    either did not take the key, or releases it before re-raising (or the key expires
    by its TTL, which the implementation documents).
    """

    async def acquire(self, key: str, ttl: float) -> LockLease | None:
        """Take `key` for `ttl` seconds if nobody holds it; ``None`` when held."""
        ...

    async def acquire_batch(self, requests: Sequence[AcquireRequest]) -> list[LockLease | None]:
        """Acquire many keys in one round trip; result ``i`` answers request ``i``.

        A request is answered ``None`` when its key is held or its occurrence is at or
        before its watermark.
        """
        ...

    async def renew(self, lease: LockLease, ttl: float) -> LockLease:
        """Extend `lease` to `ttl` seconds from now (backend clock).

        Raises `LeaseLostError` when the lease expired or another token holds the key.
        """
        ...

    async def release(self, lease: LockLease) -> bool:
        """Delete the key if `lease` still owns it; returns whether it did."""
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


def check_key(key: object) -> None:
    """Raise `InvalidArgumentError` unless `key` is a non-empty str (every provider)."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"lock key must be a non-empty str, got {key!r}")


def check_ttl(ttl: object) -> float:
    """Return `ttl` if it is a finite number of seconds > 0, else raise
    `InvalidArgumentError` (every provider)."""
    # bool is an int; a TTL of True seconds is certainly a bug.
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidArgumentError(f"ttl must be a number of seconds, got {ttl!r}")
    if not (math.isfinite(ttl) and ttl > 0):
        raise InvalidArgumentError(f"ttl must be a finite number of seconds > 0, got {ttl!r}")
    return ttl


def refused_by_watermark(request: AcquireRequest, mark: int | None) -> bool:
    """Rule L4 for one request, given its watermark's current value (None: never set)."""
    return (
        request.watermark is not None
        and mark is not None
        and request.nominal_ms <= mark
        and mark - request.nominal_ms >= request.watermark_slack_ms
    )
