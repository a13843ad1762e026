"""`Config`: the scheduler's tunables, validated at construction.

Rules:
- K1 Durations are ``float`` seconds (as everywhere in Trio), checked by `check_seconds`:
  a number (not a bool), finite, and within its range, else a `ValidationError` naming
  the field (an int too large for a float too, never an ``OverflowError``). Ranges:
  ``dispatch_timeout`` and ``clock_check_interval`` in (0, 1 day]; ``default_lock_ttl``
  (and `Task.lock_ttl`) in [0.1 s, 1 day]; ``dedupe_window`` in [0, 1 day];
  ``misfire_grace`` in [0.01 s, 1 day];
  ``retry_backoff`` and ``retry_backoff_max`` in [0, 1 day]; ``timer_spin`` in
  [0, 0.05 s]. Why: a lock TTL is stored in whole milliseconds (Redis PX) and renewed
  every TTL/3, so a shorter one expires before anything renews it; one day bounds every
  deadline computed from a duration well inside what each backend stores (a TTL of
  1e12 s failed whole lock batches) and one lock lives per occurrence for its TTL; a
  grace below 10 ms is smaller than the scheduler's own wake-up latency, so on-time
  occurrences would count as misfires (with 0, ``skip`` tasks never fired); the spin
  busy-loops the CPU for its whole length before every wake-up.
- K2 ``wall_clock`` returns an *aware* datetime (any zone; compared in UTC). Schedules
  are wall-clock while sleeping uses Trio's clock, so tests inject a fake wall clock
  derived from ``trio.current_time()`` and run on ``MockClock``. The clocks known to
  return naive datetimes (``datetime.now``, ``datetime.utcnow``, ``datetime.today``)
  are refused at construction; any other clock is called once when the scheduler
  starts (`check_wall_clock`), and one that raises or returns anything but an aware
  datetime stops the start with a `ValidationError` (it could never fire a task). A
  clock that fails *later* does not stop the scheduler: `GuardedClock` logs the
  failure once per run of failures and answers with its last good reading advanced by
  Trio's clock until the clock reads well again.
- K3 ``on_event`` is called synchronously from the scheduler's own tasks for every
  `SchedulerEvent`; it must be quick and must not block. An exception it raises is
  logged and otherwise ignored, so a broken hook cannot stop the schedule.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, final

import trio

from trio_sched._errors import ValidationError

if TYPE_CHECKING:
    from trio_sched._events import SchedulerEvent

__all__ = [
    "MAX_DURATION",
    "MAX_TIMER_SPIN",
    "MIN_LOCK_TTL",
    "MIN_MISFIRE_GRACE",
    "Config",
    "GuardedClock",
    "check_seconds",
    "check_wall_clock",
]

# Duration bounds of rule K1, in seconds.
MAX_DURATION: Final = 86_400.0  # one day: every duration of Config and Task.lock_ttl
MIN_LOCK_TTL: Final = 0.1
MIN_MISFIRE_GRACE: Final = 0.01
MAX_TIMER_SPIN: Final = 0.05

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

    Every duration is in seconds and has a range (rule K1): a value outside it raises
    `ValidationError` naming the field.

    - ``dispatch_timeout``: bound on one dispatch (enqueue and its retries), seconds,
      counted from the occurrence's lock request. More than 0, at most 1 day.
    - ``default_lock_ttl``: occurrence lease TTL for tasks without ``lock_ttl``; from
      0.1 s to 1 day. The lease is renewed every TTL/3 while its dispatch runs; when
      its holder dies or stalls, another instance takes the occurrence over once the
      lease runs out (rule D12), so a short lease means a fast takeover.
    - ``dedupe_window``: how long an occurrence's record is kept after its lease could
      have ended (``lock_ttl + dispatch_timeout`` after the acquire), remembered as
      dispatched or watched for a takeover: instances whose clocks differ by less than
      ``lock_ttl + dispatch_timeout + dedupe_window - misfire_grace`` (79 s with the
      defaults) fire it at most once (D10). From 0 to 1 day.
    - ``misfire_grace``: how late an occurrence may be reached and still fire on time;
      from 0.01 s (the scheduler's own wake-up latency must fit in it) to 1 day.
    - ``lock_key_prefix``: first part of every lock key and watermark name.
    - ``wall_clock``: returns the current aware datetime (K2).
    - ``logger``: where errors and misfires are logged.
    - ``retry_backoff`` / ``retry_backoff_max``: first and largest pause between retries
      of a transient backend error (O7); the pause doubles each time. From 0 to 1 day.
    - ``clock_check_interval``: how often the timer compares the wall clock with Trio's
      clock to notice wall-clock jumps (suspend, NTP step) while occurrences sleep.
      More than 0, at most 1 day.
    - ``timer_spin``: how long before a deadline the shared timer stops sleeping and
      yields in a loop instead (rule R5 of `_timer`: Trio's sleeps round up to whole
      milliseconds). Costs up to that much CPU per distinct wake-up instant; ``0``
      disables it (wake-ups are then up to ~1 ms late). At most 0.05 s.
    - ``on_event``: optional synchronous hook receiving every event (K3).
    - ``instance``: this scheduler's name in job headers (``x-trio-sched-instance``)
      and events; default ``host:pid:random``. A non-empty str of at most 200
      printable characters.
    """

    dispatch_timeout: float = 10.0
    default_lock_ttl: float = 10.0
    dedupe_window: float = 60.0
    misfire_grace: float = 1.0
    lock_key_prefix: str = "trio_sched"
    wall_clock: Callable[[], datetime] = utc_now
    logger: logging.Logger = field(default_factory=_default_logger)
    retry_backoff: float = 0.05
    retry_backoff_max: float = 1.0
    clock_check_interval: float = 1.0
    timer_spin: float = 0.0015
    on_event: Callable[[SchedulerEvent], object] | None = None
    instance: str = field(default_factory=lambda: default_instance())

    def __post_init__(self) -> None:
        check_seconds("dispatch_timeout", self.dispatch_timeout, minimum=0.0, exclusive=True)
        check_seconds("default_lock_ttl", self.default_lock_ttl, minimum=MIN_LOCK_TTL)
        check_seconds(
            "clock_check_interval", self.clock_check_interval, minimum=0.0, exclusive=True
        )
        check_seconds("misfire_grace", self.misfire_grace, minimum=MIN_MISFIRE_GRACE)
        check_seconds("dedupe_window", self.dedupe_window, minimum=0.0)
        check_seconds("retry_backoff", self.retry_backoff, minimum=0.0)
        check_seconds("retry_backoff_max", self.retry_backoff_max, minimum=0.0)
        check_seconds("timer_spin", self.timer_spin, minimum=0.0, maximum=MAX_TIMER_SPIN)
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
        instance = self.instance
        if (
            not isinstance(instance, str)
            or not 0 < len(instance) <= 200
            or not instance.isprintable()
        ):
            raise ValidationError(
                f"instance: expected 1 to 200 printable characters, got {instance!r}",
                field="instance",
            )


def default_instance() -> str:
    """The default `Config.instance`: ``host:pid:random`` (unique per scheduler)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


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


@final
class GuardedClock:
    """A wall clock that never fails once it read well (K2): a reading that raises or is
    not an aware datetime is replaced by the last good one advanced by Trio's clock,
    and logged once per run of failures. Call it inside the Trio run."""

    __slots__ = ("_clock", "_failing", "_last", "_last_at", "_logger", "failures")

    def __init__(self, clock: Callable[[], datetime], logger: logging.Logger) -> None:
        self._clock = clock
        self._logger = logger
        self._last: datetime | None = None
        self._last_at = 0.0
        self._failing = False
        self.failures = 0  # readings replaced so far

    def __call__(self) -> datetime:
        try:
            now = self._clock()
        except Exception as exc:
            return self._replace(f"raised {type(exc).__name__}: {exc}")
        if not isinstance(now, datetime) or now.utcoffset() is None:
            return self._replace(f"returned {now!r}, not an aware datetime")
        self._last = now
        self._last_at = trio.current_time()
        if self._failing:
            self._failing = False
            self._logger.warning("wall_clock reads well again")
        return now

    def _replace(self, what: str) -> datetime:
        last = self._last
        if last is None:
            # Never read well: nothing to stand in for it (`check_wall_clock` refuses
            # such a clock at start).
            raise ValidationError(f"wall_clock: {what}", field="wall_clock")
        self.failures += 1
        if not self._failing:
            self._failing = True
            self._logger.error(
                "wall_clock %s; using its last good reading advanced by Trio's clock "
                "until it reads well again",
                what,
            )
        return last + timedelta(seconds=trio.current_time() - self._last_at)


def check_seconds(
    name: str,
    value: object,
    *,
    minimum: float,
    maximum: float = MAX_DURATION,
    exclusive: bool = False,
) -> float:
    """`value` as float seconds if it is a number (not a bool) in [`minimum`, `maximum`]
    (``(minimum, maximum]`` when `exclusive`); else raise `ValidationError` whose
    ``field`` is `name` (rule K1). An int too large for a float is refused the same way."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name}: expected seconds as a number, got {value!r}", field=name)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{name}: expected finite seconds, got {value!r}", field=name)
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond the float range: compared as infinite
        seconds = math.inf if value > 0 else -math.inf
    if seconds < minimum or (exclusive and seconds == minimum):
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g} s"
        raise ValidationError(f"{name}: must be {bound}, got {_show(value)}", field=name)
    if seconds > maximum:
        limit = f"{maximum:g} s" + (" (1 day)" if maximum == MAX_DURATION else "")
        raise ValidationError(f"{name}: must be at most {limit}, got {_show(value)}", field=name)
    return seconds


def _show(value: int | float) -> str:
    """`value` for a message: a huge int by its size (its repr may be thousands of
    digits, or refused by Python's int-to-str digit limit)."""
    if isinstance(value, int) and abs(value) >= 10**30:
        sign = "a negative" if value < 0 else "an"
        return f"{sign} int of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return repr(value)
