"""`parse`: a cron expression and a timezone into a `Schedule` (C4, C7-C9).

Five or six fields (each parsed by `_fields`), a nickname or ``@every <duration>``
(C4), bound to an IANA zone or a tzinfo (C9). Anything invalid raises a
`ValidationError` naming the field and token (C8), and so does an expression that can
never fire (C7). Results are cached per (expression, zone).
"""

from __future__ import annotations

import functools
import re
from datetime import tzinfo
from fractions import Fraction
from typing import Final
from zoneinfo import ZoneInfo

from trio_sched._errors import ValidationError
from trio_sched.cron._fields import DOM, DOW, MONTH, CronField, parse_field
from trio_sched.cron._schedule import Schedule

__all__ = ["MAX_EXPRESSION_LENGTH", "parse"]

# Longest expression `parse` accepts (C8), after stripping surrounding whitespace. Real
# expressions are a few dozen characters; without a cap a 2 MB list took a second to
# parse and stayed in the parse cache.
MAX_EXPRESSION_LENGTH: Final = 1000
_NICKNAMES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_UNIT_US: Final = {"h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000, "ms": 1_000}
# Go's time.Duration limit (int64 nanoseconds), about 292 years.
_MAX_INTERVAL_US: Final = (2**63 - 1) // 1000


def _resolve_tz(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str) or not tz:
        raise ValidationError(
            f"timezone: expected an IANA name or tzinfo, got {tz!r}",
            field="timezone",
            token=str(tz),
        )
    try:
        return ZoneInfo(tz)
    except (ValueError, OSError, KeyError):
        raise ValidationError(
            f"timezone: unknown timezone {tz!r}", field="timezone", token=tz
        ) from None


def _parse_duration(text: str, expression: str, offset: int) -> int:
    """Go-style duration (`250ms`, `90s`, `1h30m`, `1.5s`) in whole microseconds."""

    def fail(what: str) -> ValidationError:
        return ValidationError(
            f"@every: {text or '(empty)'} {what} in {expression!r}",
            field="@every",
            token=text,
            expression=expression,
            position=offset,
        )

    lowered = text.lower()
    total = Fraction(0)
    pos = 0
    while pos < len(lowered):
        match = _DURATION_PART.match(lowered, pos)
        if match is None:
            raise fail("is not a duration (use units ms, s, m, h, e.g. 90s or 1h30m)")
        try:
            number = Fraction(match.group(1))
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            raise fail("has a number with too many digits") from None
        total += number * _UNIT_US[match.group(2)]
        pos = match.end()
    if not lowered:
        raise fail("is not a duration (use units ms, s, m, h, e.g. 90s or 1h30m)")
    if total <= 0:
        raise fail("must be greater than zero")
    if total.denominator != 1:
        raise fail("is not a whole number of microseconds")
    if total > _MAX_INTERVAL_US:
        raise fail("is too long")
    return int(total)


def parse(expression: str, tz: str | tzinfo = "UTC") -> Schedule:
    """Parse a cron expression and bind it to a timezone (an IANA name or a tzinfo).

    Raises `ValidationError` naming the field and token for anything invalid,
    including expressions that can never fire and expressions longer than
    `MAX_EXPRESSION_LENGTH` (1,000) characters. Results are cached: parsing the same
    expression and zone twice returns the same (immutable) `Schedule`.
    """
    if not isinstance(expression, str):
        raise ValidationError(f"expected a cron expression string, got {expression!r}")
    zone = _resolve_tz(tz)
    stripped = expression.strip()
    if len(stripped) > MAX_EXPRESSION_LENGTH:
        raise ValidationError(
            f"expression is {len(stripped):,} characters long, more than the limit of "
            f"{MAX_EXPRESSION_LENGTH:,}: {stripped[:20]!r}...",
            expression=stripped,
        )
    return _parse_cached(stripped, zone)


# Bounded by count, and so by size: every key is at most MAX_EXPRESSION_LENGTH
# characters (checked by `parse` before the lookup; errors are not cached), and a
# freshly parsed `Schedule` holds that text and at most six fields of at most 60 values:
# about 6 kB for a 1,000-character expression listing every value, so at most ~25 MB
# for a full cache. (The search caches of a `Schedule` grow as it is used, each with its
# own cap.)
@functools.lru_cache(maxsize=4096)
def _parse_cached(expression: str, tz: tzinfo) -> Schedule:
    if expression.startswith("@"):
        head, _, rest = expression.partition(" ")
        lowered = head.lower()
        if lowered == "@every":
            text = rest.strip()
            return Schedule(
                expression, tz, (), _parse_duration(text, expression, expression.find(text, 6))
            )
        if lowered == "@reboot":
            raise ValidationError(
                f"@reboot is not supported: a scheduler has no boot time in {expression!r}",
                token=head,
                expression=expression,
                position=0,
            )
        if lowered not in _NICKNAMES or rest.strip():
            raise ValidationError(
                f"{head} is not a known nickname (use @yearly, @annually, @monthly, "
                f"@weekly, @daily, @midnight, @hourly or @every <duration>) in {expression!r}",
                token=expression if lowered in _NICKNAMES else head,
                expression=expression,
                position=0,
            )
        spans = [(m.group(), -1) for m in re.finditer(r"\S+", _NICKNAMES[lowered])]
    else:
        spans = [(m.group(), m.start()) for m in re.finditer(r"\S+", expression)]
    if len(spans) not in (5, 6):
        extra = spans[6] if len(spans) > 6 else None
        raise ValidationError(
            f"expected 5 or 6 fields (6 = seconds first), got {len(spans)} in {expression!r}"
            + ("; a year field is not supported" if len(spans) == 7 else ""),
            token=extra[0] if extra else expression,
            expression=expression,
            position=extra[1] if extra else 0,
        )
    if len(spans) == 5:
        fields = [CronField("second", "0", (0,), star=False, implied=True)]
        first_index = 1
    else:
        fields = []
        first_index = 0
    for i, (text, offset) in enumerate(spans):
        fields.append(parse_field(first_index + i, text, expression, max(offset, 0)))
    for field in fields:
        if field.name not in ("day-of-month", "day-of-week") and not field.values:
            raise ValidationError(
                f"{field.name}: no values in {expression!r}",
                field=field.name,
                token=field.text,
                expression=expression,
            )
    schedule = Schedule(expression, tz, tuple(fields))
    if not schedule.can_fire():
        dom = fields[DOM]
        raise ValidationError(
            f"day-of-month: {dom.text} never matches in month {fields[MONTH].text} "
            f"(with day-of-week {fields[DOW].text}): {expression!r} can never fire",
            field="day-of-month",
            token=dom.text,
            expression=expression,
            position=max(spans[DOM - first_index][1], 0),
        )
    return schedule
