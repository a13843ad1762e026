"""`Task`: what to dispatch and when; `MisfirePolicy`.

Rules:
- T1 A `Task` is a frozen value. Construction validates every field and raises
  `ValidationError` whose ``field`` names the bad field; `Task.validate` runs the same
  checks again (useful after ``dataclasses.replace`` tricks or for symmetry with Go).
- T2 The schedule is parsed once, at construction, in the task's timezone, and kept
  (`Task.cron`); a bad expression is a `ValidationError` with ``field="schedule"`` whose
  message carries the cron engine's explanation.
- T3 ``misfire_policy`` accepts a `MisfirePolicy` or its value as a string in any case
  (``"skip"``, ``"FIRE_ONCE"``) and is normalised to the enum.
- T4 Headers starting with ``x-trio-sched-`` are reserved for the scheduler (task name,
  occurrence, fencing token) and refused, so a job's identity headers cannot be forged
  by a task definition.
- T6 Policies (issue 12, `docs/runtime.md` "Task policies"): ``paused`` registers the
  task paused in the coordination backend; ``jitter`` (a `timedelta` or seconds, from 1
  ms to 1 day) shifts each occurrence by a deterministic delay in ``[0, jitter)`` and
  must be shorter than the schedule's shortest interval (`Schedule.min_interval`);
  ``overlap`` is an `OverlapPolicy`; ``catchup_window`` (a `timedelta` or seconds, from
  1 s to 366 days) is required with ``misfire_policy=fire_all`` and refused with any
  other policy; ``max_catchup`` (1 to 100,000, default 100) bounds one catch-up.
  Durations are normalised to `timedelta`.
- T5 Text every backend can store: names (``name``, ``queue``, ``job_name``,
  ``tenant_id``, ``idempotency_key``) have no whitespace or control characters at all;
  ``content_type`` and header names and values have no NUL character (PostgreSQL text
  and jsonb refuse it) and no lone surrogate (not encodable as UTF-8). Otherwise every
  occurrence of the task would fail to enqueue on such a backend.

Never imports trio (the pure layer `_plan` uses it).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Final, TypeVar, final
from zoneinfo import ZoneInfo

from trio_sched._config import MIN_LOCK_TTL, check_seconds
from trio_sched._errors import ValidationError
from trio_sched.cron import Schedule, parse
from trio_sched.cron._zone import resolve_zone

__all__ = ["RESERVED_HEADER_PREFIX", "MisfirePolicy", "OverlapPolicy", "Task"]

_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})

RESERVED_HEADER_PREFIX: Final = "x-trio-sched-"

# Bounds of rule T6, in seconds.
MIN_JITTER: Final = 0.001
MAX_JITTER: Final = 86_400.0
MIN_CATCHUP_WINDOW: Final = 1.0
MAX_CATCHUP_WINDOW: Final = 366 * 86_400.0
MAX_CATCHUP_CAP: Final = 100_000
DEFAULT_MAX_CATCHUP: Final = 100


@final
class MisfirePolicy(enum.Enum):
    """What to do with occurrences reached more than ``Config.misfire_grace`` late (O6).

    ``SKIP``: fire none of them. ``FIRE_ONCE``: fire exactly one, the latest late one,
    then continue on schedule. ``FIRE_ALL``: fire every late occurrence inside the
    task's ``catchup_window``, oldest first, at most ``max_catchup`` of them (the
    newest), then continue on schedule (O11).
    """

    SKIP = "skip"
    FIRE_ONCE = "fire_once"
    FIRE_ALL = "fire_all"

    @classmethod
    def coerce(cls, value: MisfirePolicy | str) -> MisfirePolicy:
        """The policy named by `value` (an enum member or its value, any case)."""
        return _coerce(cls, value, "misfire_policy")


@final
class OverlapPolicy(enum.Enum):
    """What an occurrence does while the task's previous job is still queued or running
    (O12). ``ALLOW``: dispatch anyway. ``FORBID``: skip it (reason ``overlap``).
    ``REPLACE``: cancel the previous job, then dispatch. FORBID and REPLACE need a jobs
    runtime that is a `JobControl`."""

    ALLOW = "allow"
    FORBID = "forbid"
    REPLACE = "replace"

    @classmethod
    def coerce(cls, value: OverlapPolicy | str) -> OverlapPolicy:
        """The policy named by `value` (an enum member or its value, any case)."""
        return _coerce(cls, value, "overlap")


_E = TypeVar("_E", MisfirePolicy, OverlapPolicy)


def _coerce(cls: type[_E], value: _E | str, field_name: str) -> _E:
    """T3, T6: the member of `cls` named by `value` (a member, or its value in any case),
    else a `ValidationError` for `field_name` listing the choices."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        try:
            return cls(value.strip().lower())
        except ValueError:
            pass
    names = [repr(member.value) for member in cls]
    choices = ", ".join(names[:-1]) + f" or {names[-1]}"
    raise ValidationError(f"{field_name}: expected {choices}, got {value!r}", field=field_name)


def _duration(field_name: str, value: object, minimum: float, maximum: float) -> timedelta:
    """A `timedelta` or a number of seconds within [minimum, maximum] (T6)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    else:
        seconds = check_seconds(field_name, value, minimum=minimum, maximum=maximum)
    if not (minimum <= seconds <= maximum):
        raise _fail(field_name, f"must be from {minimum:g} s to {maximum:g} s, got {seconds:g} s")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


def _fail(field_name: str, message: str) -> ValidationError:
    return ValidationError(f"{field_name}: {message}", field=field_name)


def _check_name(field_name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise _fail(field_name, f"expected a str, got {type(value).__name__}")
    if not value or value != value.strip():
        raise _fail(field_name, f"must be non-empty without surrounding spaces, got {value!r}")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise _fail(field_name, f"must not contain whitespace or control characters: {value!r}")


def _check_storable(field_name: str, what: str, value: str) -> None:
    """Refuse text some backend cannot store (T5): NUL, lone surrogates. `what` names
    the part of the field (``"name 'x' "``), or is empty."""
    if "\x00" in value:
        raise _fail(
            field_name,
            f"{what}must not contain a NUL character (PostgreSQL refuses it), got {value!r}",
        )
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise _fail(
                field_name, f"{what}must be valid Unicode (no lone surrogate), got {value!r}"
            ) from None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """A registered schedule: run `job_name` on `queue` at every fire of `schedule`.

    ``job_name`` defaults to the task name. ``lock_ttl`` ``None`` means
    ``Config.default_lock_ttl``; else it is seconds from 0.1 to 86,400 (1 day), the range
    of ``Config.default_lock_ttl`` (rule K1 of `Config`). ``idempotency_key`` replaces
    the task name as the prefix of each occurrence's idempotency key
    (``{key}:{nominal epoch ms}``).
    """

    name: str
    schedule: str
    queue: str = "default"
    job_name: str | None = None
    payload: bytes = b"{}"
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    content_type: str = "application/json"
    tenant_id: str | None = None
    idempotency_key: str | None = None
    # An IANA name, or a ZoneInfo: typed as a union so callers may pass either; always
    # the name (a str) after construction.
    timezone: str | ZoneInfo = "UTC"
    lock_ttl: float | None = None
    # Typed as a union so callers may pass "skip"/"fire_once" (T3); always a
    # MisfirePolicy after construction: read it through `policy` for a precise type.
    misfire_policy: MisfirePolicy | str = MisfirePolicy.SKIP
    # T6: policies every instance agrees on (issue 12).
    paused: bool = False
    jitter: timedelta | float | None = None
    overlap: OverlapPolicy | str = OverlapPolicy.ALLOW
    catchup_window: timedelta | float | None = None
    max_catchup: int = DEFAULT_MAX_CATCHUP
    _cron: Schedule | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "misfire_policy", MisfirePolicy.coerce(self.misfire_policy))
        object.__setattr__(self, "overlap", OverlapPolicy.coerce(self.overlap))
        if self.jitter is not None:
            jitter = _duration("jitter", self.jitter, MIN_JITTER, MAX_JITTER)
            object.__setattr__(self, "jitter", jitter)
        if self.catchup_window is not None:
            window = _duration(
                "catchup_window", self.catchup_window, MIN_CATCHUP_WINDOW, MAX_CATCHUP_WINDOW
            )
            object.__setattr__(self, "catchup_window", window)
        if isinstance(self.timezone, ZoneInfo) and isinstance(self.timezone.key, str):
            # Kept as its IANA name, as every reader of `timezone` expects (a ZoneInfo
            # made from a file has no name and is refused by validate()).
            object.__setattr__(self, "timezone", self.timezone.key)
        if isinstance(self.headers, Mapping):
            # Tasks without headers share one empty proxy: one object fewer per task
            # for the garbage collector to walk.
            frozen = MappingProxyType(dict(self.headers)) if self.headers else _NO_HEADERS
            object.__setattr__(self, "headers", frozen)
        self.validate()

    @property
    def cron(self) -> Schedule:
        """The parsed schedule (T2)."""
        assert self._cron is not None  # set by validate() in __post_init__
        return self._cron

    @property
    def policy(self) -> MisfirePolicy:
        """``misfire_policy`` as the enum (it is normalised at construction, T3)."""
        return MisfirePolicy.coerce(self.misfire_policy)

    @property
    def overlap_policy(self) -> OverlapPolicy:
        """``overlap`` as the enum (normalised at construction, T6)."""
        return OverlapPolicy.coerce(self.overlap)

    @property
    def jitter_seconds(self) -> float:
        """``jitter`` in seconds (0 without jitter)."""
        jitter = self.jitter
        if jitter is None:
            return 0.0
        return jitter.total_seconds() if isinstance(jitter, timedelta) else float(jitter)

    @property
    def catchup_seconds(self) -> float:
        """``catchup_window`` in seconds (0 without one)."""
        window = self.catchup_window
        if window is None:
            return 0.0
        return window.total_seconds() if isinstance(window, timedelta) else float(window)

    @property
    def effective_job_name(self) -> str:
        """``job_name``, or the task name when it is ``None``."""
        return self.job_name if self.job_name is not None else self.name

    def validate(self) -> None:
        """Check every field (T1); raise `ValidationError` naming the first bad one."""
        _check_name("name", self.name)
        _check_name("queue", self.queue)
        _check_name("job_name", self.job_name, optional=True)
        _check_name("tenant_id", self.tenant_id, optional=True)
        _check_name("idempotency_key", self.idempotency_key, optional=True)
        if not isinstance(self.content_type, str) or not self.content_type:
            raise _fail("content_type", f"expected a non-empty str, got {self.content_type!r}")
        _check_storable("content_type", "", self.content_type)
        if not isinstance(self.payload, bytes):
            raise _fail("payload", f"expected bytes, got {type(self.payload).__name__}")
        self._validate_headers()
        zone = self._validate_timezone()
        self._validate_ttl()
        MisfirePolicy.coerce(self.misfire_policy)
        if not isinstance(self.schedule, str):
            raise _fail("schedule", f"expected a str, got {type(self.schedule).__name__}")
        try:
            parsed = parse(self.schedule, tz=zone)
        except ValidationError as exc:
            raise ValidationError(
                f"schedule: {exc.message}",
                field="schedule",
                token=exc.token,
                expression=exc.expression,
                position=exc.position,
            ) from exc
        object.__setattr__(self, "_cron", parsed)
        self._validate_policies(parsed)

    def _validate_policies(self, parsed: Schedule) -> None:
        """T6: pause, jitter, overlap and catch-up."""
        if not isinstance(self.paused, bool):
            raise _fail("paused", f"expected a bool, got {self.paused!r}")
        OverlapPolicy.coerce(self.overlap)
        if self.jitter is not None:
            jitter = _duration("jitter", self.jitter, MIN_JITTER, MAX_JITTER).total_seconds()
            shortest = parsed.min_interval()
            if jitter >= shortest:
                raise _fail(
                    "jitter",
                    f"{jitter:g} s could reach the next occurrence: the schedule "
                    f"{self.schedule!r} fires as often as every {shortest:g} s",
                )
        policy = MisfirePolicy.coerce(self.misfire_policy)
        if policy is MisfirePolicy.FIRE_ALL:
            if self.catchup_window is None:
                raise _fail("catchup_window", "required with misfire_policy 'fire_all'")
            _duration("catchup_window", self.catchup_window, MIN_CATCHUP_WINDOW, MAX_CATCHUP_WINDOW)
        elif self.catchup_window is not None:
            raise _fail(
                "catchup_window",
                f"only applies to misfire_policy 'fire_all', not {policy.value!r}",
            )
        cap = self.max_catchup
        if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_CATCHUP_CAP:
            raise _fail(
                "max_catchup", f"expected an int from 1 to {MAX_CATCHUP_CAP:,}, got {cap!r}"
            )

    def _validate_headers(self) -> None:
        if not isinstance(self.headers, Mapping):
            raise _fail("headers", f"expected a mapping, got {type(self.headers).__name__}")
        for key, value in self.headers.items():
            if not isinstance(key, str) or not key:
                raise _fail("headers", f"keys must be non-empty str, got {key!r}")
            if not isinstance(value, str):
                raise _fail("headers", f"value of {key!r} must be a str, got {value!r}")
            if key.lower().startswith(RESERVED_HEADER_PREFIX):
                raise _fail("headers", f"{key!r} is reserved for the scheduler (T4)")
            _check_storable("headers", "a header name ", key)
            _check_storable("headers", f"the value of {key!r} ", value)

    def _validate_timezone(self) -> ZoneInfo:
        if not isinstance(self.timezone, str) or not self.timezone:
            raise _fail(
                "timezone", f"expected an IANA zone name or a ZoneInfo, got {self.timezone!r}"
            )
        try:
            return resolve_zone(self.timezone)
        except ValueError as exc:
            raise _fail("timezone", str(exc)) from exc

    def _validate_ttl(self) -> None:
        if self.lock_ttl is not None:
            check_seconds("lock_ttl", self.lock_ttl, minimum=MIN_LOCK_TTL)
