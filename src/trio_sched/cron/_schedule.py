"""`parse` and `Schedule`: next and previous fire times in a timezone (C4, C6-C12).

How the search works. Instants are integer seconds since the epoch (UTC); wall times
are "local epoch seconds" (see `_zone`). Within one offset segment a wall time maps to
an instant by a plain shift, so the calculator finds the first matching wall time field
by field - matching day (month, then day-of-month/day-of-week through a per-month-shape
table), then time of day (hour, minute, second by bisection over sorted tuples) - and
only then checks whether that wall time lies inside the current segment. If it does not,
the search moves to the next segment. There is no minute-by-minute scan.

DST, cronie's rule (C10):
- Interval jobs (minute or hour text starts with ``*``, ``@hourly``, ``@every``) follow
  elapsed time: a wall time inside a spring-forward gap does not exist and does not
  fire; a repeated wall time fires on both passes (the second one with ``fold=1``).
- Fixed jobs map every matching wall time to one instant: an existing time to itself, a
  repeated time to its first pass, a time inside a gap to the first instant after the
  gap. Equal instants fire once. The mapping never goes backwards, so "first fire after
  t" is "first matching wall time whose instant is after t".

Fires of cron expressions are at whole seconds; `next_after(t)` is the first fire at or
after ``floor(t) + 1 s`` and `prev_before(t)` the last at or before ``ceil(t) - 1 s``.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from fractions import Fraction
from typing import Final, final
from zoneinfo import ZoneInfo

from trio_sched._errors import ValidationError
from trio_sched.cron._fields import DOM, DOW, HOUR, MINUTE, MONTH, SECOND, CronField, parse_field
from trio_sched.cron._zone import EPOCH_ORDINAL, Segment, Zone, zone_for

__all__ = ["MAX_EXPRESSION_LENGTH", "Schedule", "parse"]

SEARCH_YEARS: Final = 50
# Longest expression `parse` accepts (C8), after stripping surrounding whitespace. Real
# expressions are a few dozen characters; without a cap a 2 MB list took a second to
# parse and stayed in the parse cache.
MAX_EXPRESSION_LENGTH: Final = 1000
_SEARCH_DAYS: Final = SEARCH_YEARS * 366
_MAX_ORDINAL: Final = date.max.toordinal()
_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
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
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class _Exhausted(Exception):
    """No fire time within the search cap or the datetime range."""


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@final
class Schedule:
    """A parsed cron expression bound to a timezone. Immutable and thread-safe.

    Build one with `parse`. All methods take and return aware datetimes; results are
    in the schedule's zone with the correct ``fold``.
    """

    __slots__ = (
        "_day_and",
        "_day_cache",
        "_dom",
        "_dow",
        "_interval_us",
        "_last_result",
        "_mod_mask",
        "_month_set",
        "_months",
        "_months_cache",
        "_sec_first",
        "_sec_last",
        "_sec_mask",
        "_segment_cache",
        "_shapes",
        "_tod_first",
        "_tod_last",
        "_zone",
        "expression",
        "fields",
        "fixed",
        "interval",
        "tz",
    )

    expression: str
    tz: tzinfo
    fields: tuple[CronField, ...]
    interval: timedelta | None
    fixed: bool
    _mod_mask: int
    _sec_mask: int
    _sec_first: int
    _sec_last: int
    _tod_first: int
    _tod_last: int
    _months: tuple[int, ...]
    _month_set: frozenset[int]
    _dom: CronField
    _dow: CronField
    _day_and: bool

    def __init__(
        self,
        expression: str,
        tz: tzinfo,
        fields: tuple[CronField, ...],
        interval_us: int | None = None,
    ) -> None:
        """Use `parse`; this constructor trusts its (already validated) arguments."""
        self.expression = expression
        self.tz = tz
        self.fields = fields
        self._interval_us = interval_us
        self.interval = None if interval_us is None else timedelta(microseconds=interval_us)
        self._zone: Zone = zone_for(tz)
        self._segment_cache: Segment = Segment(0, 0, 0, 0)
        self._months_cache: dict[int, tuple[int, tuple[int, ...]]] = {}
        self._shapes: dict[tuple[int, int], tuple[int, ...]] = {}
        # (ordinal, year, month, day, matches): the last day looked at, since
        # consecutive searches usually stay on one day.
        self._day_cache: tuple[int, int, int, int, bool] = (0, 0, 0, 0, False)
        # (datetime, instant) of the last result: iterating feeds it straight back.
        self._last_result: tuple[datetime | None, int] = (None, 0)
        if not fields:
            self.fixed = False
            return
        self.fixed = not fields[MINUTE].star and not fields[HOUR].star
        seconds, minutes, hours = fields[SECOND].values, fields[MINUTE].values, fields[HOUR].values
        self._months = fields[MONTH].values
        self._month_set = frozenset(self._months)
        self._dom = fields[DOM]
        self._dow = fields[DOW]
        self._day_and = fields[DOM].star or fields[DOW].star
        self._tod_first = hours[0] * 3600 + minutes[0] * 60 + seconds[0]
        self._tod_last = hours[-1] * 3600 + minutes[-1] * 60 + seconds[-1]
        # Times of day as bitmasks: bit h*60+m of _mod_mask, bit s of _sec_mask. Finding
        # the next set bit is a shift and a bit trick; 1440 bits take ~200 bytes.
        minute_mask = sum(1 << m for m in minutes)
        self._mod_mask = sum(minute_mask << (h * 60) for h in hours)
        self._sec_mask = sum(1 << sec for sec in seconds)
        self._sec_first = seconds[0]
        self._sec_last = seconds[-1]

    # -- public API -------------------------------------------------------------------

    def next_after(self, t: datetime) -> datetime:
        """The first fire strictly after `t` (an aware datetime)."""
        s, us = self._epoch(t)
        try:
            if self._interval_us is not None:
                return self._every(((s * 1_000_000 + us) // self._interval_us) + 1)
            return self._to_datetime(*self._next_ge(s + 1))
        except _Exhausted:
            raise self._exhausted("after", t) from None

    def prev_before(self, t: datetime) -> datetime:
        """The last fire strictly before `t` (an aware datetime)."""
        s, us = self._epoch(t)
        try:
            if self._interval_us is not None:
                return self._every(-((-(s * 1_000_000 + us)) // self._interval_us) - 1)
            return self._to_datetime(*self._prev_le(s - 1 if us == 0 else s))
        except _Exhausted:
            raise self._exhausted("before", t) from None

    def iter_after(self, t: datetime) -> Iterator[datetime]:
        """Fires strictly after `t`, oldest first; ends only where the search ends.

        `t` is checked at once: a naive datetime raises here, not on the first ``next``.
        """
        self._epoch(t)
        return self._iterate(self.next_after, t)

    def iter_before(self, t: datetime) -> Iterator[datetime]:
        """Fires strictly before `t`, newest first (checked at once, as `iter_after`)."""
        self._epoch(t)
        return self._iterate(self.prev_before, t)

    @staticmethod
    def _iterate(step: Callable[[datetime], datetime], t: datetime) -> Iterator[datetime]:
        while True:
            try:
                t = step(t)
            except ValidationError:  # t is valid, so this is the end of the search
                return
            yield t

    def __repr__(self) -> str:
        return f"Schedule({self.expression!r}, tz={_tz_name(self.tz)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return (self.fields, self._interval_us, self.tz) == (
            other.fields,
            other._interval_us,
            other.tz,
        )

    def __hash__(self) -> int:
        return hash((self.fields, self._interval_us, self.tz))

    # -- helpers for the public API ---------------------------------------------------

    def _epoch(self, t: datetime) -> tuple[int, int]:
        """`t` as (whole seconds since the epoch, microseconds), exactly."""
        last, instant = self._last_result
        if t is last:
            return instant, 0
        if not isinstance(t, datetime):
            raise ValidationError(f"expected an aware datetime, got {type(t).__name__}")
        offset = t.utcoffset()
        if offset is None:
            raise ValidationError(
                f"naive datetime {t.isoformat()} has no timezone; pass an aware datetime "
                "(e.g. datetime.now(UTC))"
            )
        seconds = (
            (t.toordinal() - EPOCH_ORDINAL) * 86400
            + t.hour * 3600
            + t.minute * 60
            + t.second
            - offset.days * 86400
            - offset.seconds
        )
        micro = t.microsecond - offset.microseconds
        if micro < 0:
            return seconds - 1, micro + 1_000_000
        return seconds, micro

    def _exhausted(self, direction: str, t: datetime) -> ValidationError:
        return ValidationError(
            f"{self.expression!r} has no fire time within {SEARCH_YEARS} years {direction} "
            f"{t.isoformat()} (or the search left the datetime range)",
            expression=self.expression,
        )

    def _every(self, n: int) -> datetime:
        interval_us = self._interval_us
        assert interval_us is not None
        try:
            return (_EPOCH + timedelta(microseconds=n * interval_us)).astimezone(self.tz)
        except OverflowError:
            raise _Exhausted from None

    def _to_datetime(self, wall: int, fold: int, instant: int) -> datetime:
        day, sod = divmod(wall, 86400)
        ordinal = day + EPOCH_ORDINAL
        cached = self._day_cache
        if cached[0] == ordinal:
            year, month, mday = cached[1], cached[2], cached[3]
        else:
            d = date.fromordinal(ordinal)
            year, month, mday = d.year, d.month, d.day
        hour, rem = divmod(sod, 3600)
        minute, second = divmod(rem, 60)
        if fold:
            result = datetime(year, month, mday, hour, minute, second, 0, self.tz, fold=1)
        else:
            result = datetime(year, month, mday, hour, minute, second, 0, self.tz)
        self._last_result = (result, instant)
        return result

    def _segment(self, s: int) -> Segment:
        seg = self._segment_cache
        if seg.start <= s < seg.end:
            return seg
        seg = self._zone.segment(s)
        self._segment_cache = seg
        return seg

    # -- the search over instants (C10, C11) --------------------------------------------

    def _next_ge(self, s: int) -> tuple[int, int, int]:
        """(wall, fold, instant) of the first fire at or after instant `s`."""
        seg = self._segment_cache
        if not seg.start <= s < seg.end:
            seg = self._segment(s)
        off = seg.offset
        lo = s + off
        limit = min(lo // 86400 + EPOCH_ORDINAL + _SEARCH_DAYS, _MAX_ORDINAL)
        if not self.fixed:
            while True:
                wall = self._first_match(lo, limit)
                instant = wall - seg.offset
                if instant < seg.end:
                    fold = seg.before > seg.offset and wall < seg.start + seg.before
                    return wall, int(fold), instant
                nxt = self._segment(seg.end)
                lo = seg.end + nxt.offset
                seg = nxt
        if seg.before > off and lo < seg.start + seg.before:
            lo = seg.start + seg.before  # second pass: earlier walls fired on the first
        elif s == seg.start and seg.before < off:
            lo = s + seg.before  # walls in the gap just before s map to s itself
        while True:
            wall = self._first_match(lo, limit)
            instant = wall - seg.offset
            if instant < seg.start:  # inside the gap that opens this segment
                return seg.start + seg.offset, 0, seg.start
            if instant < seg.end:
                return wall, 0, instant
            nxt = self._segment(seg.end)
            if wall < seg.end + nxt.offset:  # inside the gap between seg and nxt
                return seg.end + nxt.offset, 0, seg.end
            seg = nxt
            lo = wall

    def _prev_le(self, s: int) -> tuple[int, int, int]:
        """(wall, fold, instant) of the last fire at or before instant `s`."""
        seg = self._segment(s)
        hi = s + seg.offset
        limit = max(hi // 86400 + EPOCH_ORDINAL - _SEARCH_DAYS, 1)
        if not self.fixed:
            while True:
                wall = self._last_match(hi, limit)
                instant = wall - seg.offset
                if instant >= seg.start:
                    fold = seg.before > seg.offset and wall < seg.start + seg.before
                    return wall, int(fold), instant
                start = seg.start
                seg = self._segment(start - 1)
                hi = start - 1 + seg.offset
        if seg.before > seg.offset and hi < seg.start + seg.before:
            hi = seg.start + seg.before - 1  # second pass: all earlier walls fired before s
        while True:
            wall = self._last_match(hi, limit)
            instant = wall - seg.offset
            if instant >= seg.start:
                if seg.before > seg.offset and wall < seg.start + seg.before:
                    return wall, 0, wall - seg.before  # a repeated time fires on its first pass
                return wall, 0, instant
            if seg.before < seg.offset and wall >= seg.start + seg.before:
                return seg.start + seg.offset, 0, seg.start  # in the gap: fires when it ends
            seg = self._segment(seg.start - 1)
            hi = wall

    # -- the search over wall times (C12) -----------------------------------------------

    def _month_days(self, year: int, month: int) -> tuple[int, tuple[int, ...]]:
        """(ordinal of the 1st, matching days of month) for one calendar month."""
        key = year * 12 + month
        cached = self._months_cache.get(key)
        if cached is not None:
            return cached
        first = date(year, month, 1).toordinal()
        if month in self._month_set:
            ndays = 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month]
            days = self._shape(ndays, first % 7)
        else:
            days = ()
        result = (first, days)
        if len(self._months_cache) > 4096:
            self._months_cache.clear()
        self._months_cache[key] = result
        return result

    def _shape(self, ndays: int, first_weekday: int) -> tuple[int, ...]:
        """Matching days of a month with `ndays` days starting on `first_weekday`
        (0 = Sunday): every month of that shape matches the same days (C5, C6)."""
        key = (ndays, first_weekday)
        cached = self._shapes.get(key)
        if cached is not None:
            return cached
        dom, dow = self._dom, self._dow
        dom_values, dow_values = set(dom.values), set(dow.values)
        last_of, nth = set(dow.last_of), set(dow.nth)
        last_weekday = ndays
        while (first_weekday + last_weekday - 1) % 7 in (0, 6):
            last_weekday -= 1
        days = []
        for day in range(1, ndays + 1):
            weekday = (first_weekday + day - 1) % 7
            dom_ok = (
                day in dom_values
                or (dom.last and day == ndays)
                or (dom.last_weekday and day == last_weekday)
            )
            dow_ok = (
                weekday in dow_values
                or (weekday in last_of and day > ndays - 7)
                or (weekday, (day - 1) // 7 + 1) in nth
            )
            if (dom_ok and dow_ok) if self._day_and else (dom_ok or dow_ok):
                days.append(day)
        result = tuple(days)
        self._shapes[key] = result
        return result

    def can_fire(self) -> bool:
        """Whether some calendar month has a matching day (C7). Months of every shape
        (length, first weekday) recur within the search cap."""
        for month in self._months:
            lengths = (28, 29) if month == 2 else (_DAYS_IN_MONTH[month],)
            for ndays in lengths:
                for first_weekday in range(7):
                    if self._shape(ndays, first_weekday):
                        return True
        return False

    def _day_matches(self, ordinal: int) -> bool:
        cached = self._day_cache
        if cached[0] == ordinal:
            return cached[4]
        d = date.fromordinal(ordinal)
        _, days = self._month_days(d.year, d.month)
        matches = d.day in days
        self._day_cache = (ordinal, d.year, d.month, d.day, matches)
        return matches

    def _first_match(self, lo: int, limit: int) -> int:
        """The first matching wall time at or after wall time `lo`."""
        day, sod = divmod(lo, 86400)
        ordinal = day + EPOCH_ORDINAL
        if ordinal > limit or ordinal < 1:
            raise _Exhausted
        cached = self._day_cache
        matches = cached[4] if cached[0] == ordinal else self._day_matches(ordinal)
        if matches:
            # Inlined _tod_ge: this is the hot path of every search.
            minute, second = divmod(sod, 60)
            mod_mask = self._mod_mask
            if (mod_mask >> minute) & 1:
                rest = self._sec_mask >> second
                if rest:
                    return lo + (rest & -rest).bit_length() - 1
                minute += 1
            rest = mod_mask >> minute
            if rest:
                minute += (rest & -rest).bit_length() - 1
                return lo - sod + minute * 60 + self._sec_first
        d = date.fromordinal(ordinal)
        ordinal = self._day_ge(d.year, d.month, d.day + 1, limit)
        return (ordinal - EPOCH_ORDINAL) * 86400 + self._tod_first

    def _last_match(self, hi: int, limit: int) -> int:
        """The last matching wall time at or before wall time `hi`."""
        day, sod = divmod(hi, 86400)
        ordinal = day + EPOCH_ORDINAL
        if ordinal < limit or ordinal > _MAX_ORDINAL:
            raise _Exhausted
        if self._day_matches(ordinal):
            tod = self._tod_le(sod)
            if tod is not None:
                return hi - sod + tod
        d = date.fromordinal(ordinal)
        ordinal = self._day_le(d.year, d.month, d.day - 1, limit)
        return (ordinal - EPOCH_ORDINAL) * 86400 + self._tod_last

    def _day_ge(self, year: int, month: int, day: int, limit: int) -> int:
        months = self._months
        while True:
            first, days = self._month_days(year, month)
            if first > limit:
                raise _Exhausted
            i = bisect.bisect_left(days, day)
            if i < len(days):
                ordinal = first + days[i] - 1
                if ordinal > limit:
                    raise _Exhausted
                return ordinal
            j = bisect.bisect_right(months, month)
            if j < len(months):
                month = months[j]
            else:
                year, month = year + 1, months[0]
                if year > 9999:
                    raise _Exhausted
            day = 1

    def _day_le(self, year: int, month: int, day: int, limit: int) -> int:
        months = self._months
        while True:
            first, days = self._month_days(year, month)
            i = bisect.bisect_right(days, day)
            if i:
                ordinal = first + days[i - 1] - 1
                if ordinal < limit:
                    raise _Exhausted
                return ordinal
            if first <= limit:
                raise _Exhausted
            j = bisect.bisect_left(months, month)
            if j:
                month = months[j - 1]
            else:
                year, month = year - 1, months[-1]
                if year < 1:
                    raise _Exhausted
            day = 31

    def _tod_le(self, sod: int) -> int | None:
        """Last matching second-of-day at or before `sod`, or None."""
        minute, second = divmod(sod, 60)
        mod_mask = self._mod_mask
        if (mod_mask >> minute) & 1:
            rest = self._sec_mask & ((2 << second) - 1)
            if rest:
                return sod - second + rest.bit_length() - 1
            minute -= 1
        if minute < 0:
            return None
        rest = mod_mask & ((2 << minute) - 1)
        if not rest:
            return None
        return (rest.bit_length() - 1) * 60 + self._sec_last


# -- parsing ---------------------------------------------------------------------------


def _tz_name(tz: tzinfo) -> str:
    return getattr(tz, "key", None) or str(tz)


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
