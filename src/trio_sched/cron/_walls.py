"""`WallTimes`: the wall times a cron expression matches (C5-C7, C12).

The search over wall times (C12). Wall times are "local epoch seconds" (see `_zone`);
`WallTimes` knows nothing of offsets or DST, which `Schedule` handles (C10). It finds
the first (or last) matching wall time field by field - matching day (month, then
day-of-month/day-of-week through a per-month-shape table), then time of day (hour,
minute, second by bisection over sorted tuples) - with no minute-by-minute scan.

A day matches by the Vixie/cronie day rule (C6) over the fields' plain values and
extensions (C5). Searches end at a caller's day `limit` (the search cap, C7) or at the
ends of the `datetime` range, raising `Exhausted`.
"""

from __future__ import annotations

import bisect
from datetime import date
from typing import Final, final

from trio_sched.cron._fields import DOM, DOW, HOUR, MINUTE, MONTH, SECOND, CronField
from trio_sched.cron._zone import EPOCH_ORDINAL

__all__ = ["MAX_ORDINAL", "Exhausted", "WallTimes"]

MAX_ORDINAL: Final = date.max.toordinal()
_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class Exhausted(Exception):
    """No fire time within the search cap or the datetime range."""


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@final
class WallTimes:
    """The matching wall times of a cron expression's fields, with its search caches.

    Built once per `Schedule` (which is shared through the parse cache), so the caches
    serve every search of that expression and zone.
    """

    __slots__ = (
        "_day_and",
        "_dom",
        "_dow",
        "_mod_mask",
        "_month_set",
        "_months",
        "_months_cache",
        "_sec_first",
        "_sec_last",
        "_sec_mask",
        "_shapes",
        "_tod_first",
        "_tod_last",
        "day_cache",
    )

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

    def __init__(self, fields: tuple[CronField, ...]) -> None:
        """`fields`: the six fields of a cron expression (not of ``@every``)."""
        self._months_cache: dict[int, tuple[int, tuple[int, ...]]] = {}
        self._shapes: dict[tuple[int, int], tuple[int, ...]] = {}
        # (ordinal, year, month, day, matches): the last day looked at, since
        # consecutive searches usually stay on one day.
        self.day_cache: tuple[int, int, int, int, bool] = (0, 0, 0, 0, False)
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
        cached = self.day_cache
        if cached[0] == ordinal:
            return cached[4]
        d = date.fromordinal(ordinal)
        _, days = self._month_days(d.year, d.month)
        matches = d.day in days
        self.day_cache = (ordinal, d.year, d.month, d.day, matches)
        return matches

    def first_match(self, lo: int, limit: int) -> int:
        """The first matching wall time at or after wall time `lo`."""
        day, sod = divmod(lo, 86400)
        ordinal = day + EPOCH_ORDINAL
        if ordinal > limit or ordinal < 1:
            raise Exhausted
        cached = self.day_cache
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

    def last_match(self, hi: int, limit: int) -> int:
        """The last matching wall time at or before wall time `hi`."""
        day, sod = divmod(hi, 86400)
        ordinal = day + EPOCH_ORDINAL
        if ordinal < limit or ordinal > MAX_ORDINAL:
            raise Exhausted
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
                raise Exhausted
            i = bisect.bisect_left(days, day)
            if i < len(days):
                ordinal = first + days[i] - 1
                if ordinal > limit:
                    raise Exhausted
                return ordinal
            j = bisect.bisect_right(months, month)
            if j < len(months):
                month = months[j]
            else:
                year, month = year + 1, months[0]
                if year > 9999:
                    raise Exhausted
            day = 1

    def _day_le(self, year: int, month: int, day: int, limit: int) -> int:
        months = self._months
        while True:
            first, days = self._month_days(year, month)
            i = bisect.bisect_right(days, day)
            if i:
                ordinal = first + days[i - 1] - 1
                if ordinal < limit:
                    raise Exhausted
                return ordinal
            if first <= limit:
                raise Exhausted
            j = bisect.bisect_left(months, month)
            if j:
                month = months[j - 1]
            else:
                year, month = year - 1, months[-1]
                if year < 1:
                    raise Exhausted
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
