"""`Config`: the scheduler's tunables, validated at construction.

Rules:
- K1 Durations are ``float`` seconds (as everywhere in Trio) and must be finite;
  timeouts and TTLs are > 0, ``misfire_grace`` and backoffs >= 0.
- K2 ``wall_clock`` returns an *aware* datetime (any zone; compared in UTC). Schedules
  are wall-clock while sleeping uses Trio's clock, so tests inject a fake wall clock
  derived from ``trio.current_time()`` and run on ``MockClock``. The clocks known to
  return naive datetimes (``datetime.now``, ``datetime.utcnow``, ``datetime.today``)
  are refused at construction; any other clock is called once when the scheduler
  starts (`check_wall_clock`), and one that raises or returns anything but an aware
  datetime stops the start with a `ValidationError` (it could never fire a task).
- K3 ``on_event`` is called synchronously from the scheduler's own tasks for every
  `SchedulerEvent`; it must be quick and must not block. An exception it raises is
  logged and otherwise ignored, so a broken hook cannot stop the schedule.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, final

from trio_sched._errors import ValidationError

if TYPE_CHECKING:
    from trio_sched._events import SchedulerEvent

__all__ = ["Config", "check_wall_clock"]

# Callables that return naive datetimes: refused as ``wall_clock`` without calling them.
_NAIVE_CLOCKS: tuple[tuple[object, str], ...] = (
    (datetime.now, "datetime.now"),
    (datetime.utcnow, "datetime.utcnow"),
    (datetime.today, "datetime.today"),
)


def utc_now() -> datetime:
    """The default wall clock: ``datetime.now(UTC)``."""
    return datetime.now(UTC)


def _default_logger() -> logging.Logger:
    return logging.getLogger("trio_sched")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Scheduler configuration (all keyword-only; every field has a default).

    - ``dispatch_timeout``: bound on one dispatch (enqueue and its retries), seconds,
      counted from the occurrence's lock request.
    - ``default_lock_ttl``: occurrence lock TTL for tasks without ``lock_ttl``.
    - ``misfire_grace``: how late an occurrence may be reached and still fire on time.
    - ``lock_key_prefix``: first part of every lock key and watermark name.
    - ``wall_clock``: returns the current aware datetime (K2).
    - ``logger``: where errors and misfires are logged.
    - ``retry_backoff`` / ``retry_backoff_max``: first and largest pause between retries
      of a transient backend error (O7); the pause doubles each time.
    - ``clock_check_interval``: how often the timer compares the wall clock with Trio's
      clock to notice wall-clock jumps (suspend, NTP step) while occurrences sleep.
    - ``timer_spin``: how long before a deadline the shared timer stops sleeping and
      yields in a loop instead (rule R5 of `_timer`: Trio's sleeps round up to whole
      milliseconds). Costs up to that much CPU per distinct wake-up instant; ``0``
      disables it (wake-ups are then up to ~1 ms late).
    - ``on_event``: optional synchronous hook receiving every event (K3).
    """

    dispatch_timeout: float = 10.0
    default_lock_ttl: float = 30.0
    misfire_grace: float = 1.0
    lock_key_prefix: str = "trio_sched"
    wall_clock: Callable[[], datetime] = utc_now
    logger: logging.Logger = field(default_factory=_default_logger)
    retry_backoff: float = 0.05
    retry_backoff_max: float = 1.0
    clock_check_interval: float = 1.0
    timer_spin: float = 0.0015
    on_event: Callable[[SchedulerEvent], object] | None = None

    def __post_init__(self) -> None:
        _positive("dispatch_timeout", self.dispatch_timeout)
        _positive("default_lock_ttl", self.default_lock_ttl)
        _positive("clock_check_interval", self.clock_check_interval)
        _non_negative("misfire_grace", self.misfire_grace)
        _non_negative("retry_backoff", self.retry_backoff)
        _non_negative("retry_backoff_max", self.retry_backoff_max)
        _non_negative("timer_spin", self.timer_spin)
        prefix = self.lock_key_prefix
        if not isinstance(prefix, str) or not prefix or any(c.isspace() for c in prefix):
            raise ValidationError(
                f"lock_key_prefix: expected a non-empty str without spaces, got {prefix!r}",
                field="lock_key_prefix",
            )
        if not callable(self.wall_clock):
            raise ValidationError("wall_clock: expected a callable", field="wall_clock")
        naive = _naive_clock_name(self.wall_clock)
        if naive is not None:
            raise ValidationError(
                f"wall_clock: {naive} returns naive datetimes; use a clock that returns "
                "aware ones, such as the default (lambda: datetime.now(UTC))",
                field="wall_clock",
            )
        if not isinstance(self.logger, logging.Logger):
            raise ValidationError("logger: expected a logging.Logger", field="logger")
        if self.on_event is not None and not callable(self.on_event):
            raise ValidationError("on_event: expected a callable or None", field="on_event")


def _naive_clock_name(clock: object) -> str | None:
    for known, name in _NAIVE_CLOCKS:
        if clock == known:
            return name
    return None


def check_wall_clock(clock: Callable[[], datetime]) -> datetime:
    """Call `clock` once and return its reading if it is an aware datetime (K2); else
    raise `ValidationError` naming ``wall_clock``. Called when a scheduler starts."""
    try:
        now = clock()
    except Exception as exc:
        raise ValidationError(
            f"wall_clock: calling it raised {type(exc).__name__}: {exc}", field="wall_clock"
        ) from exc
    if not isinstance(now, datetime):
        raise ValidationError(
            f"wall_clock: must return an aware datetime, returned {type(now).__name__} {now!r}",
            field="wall_clock",
        )
    if now.utcoffset() is None:
        raise ValidationError(
            f"wall_clock: returned the naive datetime {now!r}; it must return aware "
            "datetimes (for example datetime.now(UTC))",
            field="wall_clock",
        )
    return now


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name}: expected finite seconds, got {value!r}", field=name)
    return float(value)


def _positive(name: str, value: object) -> None:
    if _number(name, value) <= 0:
        raise ValidationError(f"{name}: must be > 0, got {value!r}", field=name)


def _non_negative(name: str, value: object) -> None:
    if _number(name, value) < 0:
        raise ValidationError(f"{name}: must be >= 0, got {value!r}", field=name)
