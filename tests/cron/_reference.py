"""An independent, slow model of rules C2-C10, used as the oracle of the cron tests.

It shares no code with `trio_sched.cron`: expressions are described by plain value sets
(`Spec`), which the test strategies build alongside the expression text, and the model
answers "is this instant a fire?" and "which fire comes first after / last before t?"
by brute force over wall-clock times, with the DST rule of C10 written out directly:

- a wall time that exists once fires at that instant;
- a wall time repeated by a fall-back fires at both instants for interval jobs, at the
  first one only for fixed jobs;
- a wall time swallowed by a spring-forward gap does not fire for interval jobs and
  fires at the first instant after the gap for fixed jobs.

Two formulations are kept on purpose: `is_fire` looks at one instant (used by brute
scans), `next_fire` / `prev_fire` enumerate matching wall times day by day. A bug would
have to be made twice, in two shapes, to hide.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_SECOND = timedelta(seconds=1)
# No zone the tests use shifts its offset by more than this at one transition, so
# wall times further than this from an instant's own wall time cannot map to it.
MAX_SHIFT = timedelta(hours=2)
# How far the model searches before giving up (the engine's cap is 50 years, C7).
SEARCH_DAYS = 366 * 60


@dataclass(frozen=True)
class Spec:
    """What a cron expression means, as plain sets (day-of-week 0-6, 0 = Sunday)."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_star: bool
    dow_star: bool
    fixed: bool
    last: bool = False
    last_weekday: bool = False
    last_of: frozenset[int] = frozenset()
    nth: frozenset[tuple[int, int]] = frozenset()


def last_weekday_of_month(year: int, month: int) -> int:
    last = calendar.monthrange(year, month)[1]
    weekday = calendar.weekday(year, month, last)  # Monday = 0
    return last - max(0, weekday - 4)


def cron_weekday(d: date) -> int:
    """0 = Sunday ... 6 = Saturday."""
    return (d.weekday() + 1) % 7


def day_matches(spec: Spec, d: date) -> bool:
    if d.month not in spec.months:
        return False
    month_len = calendar.monthrange(d.year, d.month)[1]
    dom_ok = (
        d.day in spec.days
        or (spec.last and d.day == month_len)
        or (spec.last_weekday and d.day == last_weekday_of_month(d.year, d.month))
    )
    weekday = cron_weekday(d)
    dow_ok = (
        weekday in spec.weekdays
        or (weekday in spec.last_of and d.day + 7 > month_len)
        or (weekday, (d.day - 1) // 7 + 1) in spec.nth
    )
    # C6: a star day field makes the two an AND, otherwise either may match.
    if spec.dom_star or spec.dow_star:
        return dom_ok and dow_ok
    return dom_ok or dow_ok


def wall_matches(spec: Spec, wall: datetime) -> bool:
    return (
        wall.second in spec.seconds
        and wall.minute in spec.minutes
        and wall.hour in spec.hours
        and day_matches(spec, wall.date())
    )


def minute_matches(spec: Spec, wall: datetime) -> bool:
    """Some second of this wall-clock minute matches (the seconds set is never empty)."""
    return (
        wall.minute in spec.minutes and wall.hour in spec.hours and day_matches(spec, wall.date())
    )


def to_utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("naive datetime given to the reference model")
    return t.astimezone(UTC)


def local_wall(u: datetime, tz: tzinfo) -> datetime:
    return u.astimezone(tz).replace(tzinfo=None)


# ---------------------------------------------------------------- zone transitions


@dataclass(frozen=True)
class Transition:
    at: datetime  # UTC instant of the change
    before: timedelta  # offset in force just before
    after: timedelta  # offset from `at` on

    @property
    def is_gap(self) -> bool:
        return self.after > self.before

    def wall_range(self) -> tuple[datetime, datetime]:
        """Naive wall times swallowed (gap) or repeated (fold): [start, end)."""
        naive = self.at.replace(tzinfo=None)
        low, high = sorted((naive + self.before, naive + self.after))
        return low, high


def _offset(tz: tzinfo, u: datetime) -> timedelta:
    offset = u.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


@functools.cache
def _transitions_in_year(name: str, year: int) -> tuple[Transition, ...]:
    """Offset changes in a year: a daily scan, then 15-minute steps, then bisection.

    (No zone used here changes its offset twice within one day.)
    """
    tz = ZoneInfo(name)
    found: list[Transition] = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    while day < end:
        before, after = _offset(tz, day), _offset(tz, day + timedelta(days=1))
        if before != after:
            t = day
            while _offset(tz, t + timedelta(minutes=15)) == before:
                t += timedelta(minutes=15)
            low, high = t, t + timedelta(minutes=15)
            while high - low > ONE_SECOND:
                mid = low + (high - low) // 2
                if _offset(tz, mid) == before:
                    low = mid
                else:
                    high = mid
            found.append(Transition(high, before, after))
        day += timedelta(days=1)
    return tuple(found)


def transitions(tz: tzinfo, start: datetime, end: datetime) -> list[Transition]:
    """Offset changes of `tz` with start <= at <= end (a ZoneInfo with a key, or UTC)."""
    name = getattr(tz, "key", None)
    if name is None:
        return []
    out: list[Transition] = []
    for year in range(to_utc(start).year - 1, to_utc(end).year + 2):
        out.extend(
            tr for tr in _transitions_in_year(name, year) if to_utc(start) <= tr.at <= to_utc(end)
        )
    return out


# ---------------------------------------------------------------- the instant view


def gap_ending_at(u: datetime, tz: tzinfo) -> tuple[datetime, datetime] | None:
    """If `u` is the first instant after a spring-forward gap: the swallowed walls."""
    before = (u - ONE_SECOND).astimezone(tz)
    after = u.astimezone(tz)
    off_before, off_after = before.utcoffset(), after.utcoffset()
    assert off_before is not None
    assert off_after is not None
    if off_after <= off_before:
        return None
    naive = u.astimezone(UTC).replace(tzinfo=None)
    return naive + off_before, naive + off_after


def is_fire(spec: Spec, tz: tzinfo, t: datetime) -> bool:
    """Is the instant `t` a fire of `spec` in `tz` (C9, C10)?"""
    u = to_utc(t)
    if u.microsecond:
        return False
    local = u.astimezone(tz)
    wall = local.replace(tzinfo=None)
    if wall_matches(spec, wall) and not (spec.fixed and local.fold == 1):
        # zoneinfo sets fold=1 exactly on the second pass of a repeated wall time.
        return True
    if spec.fixed:
        gap = gap_ending_at(u, tz)
        if gap is not None:
            low, high = gap
            wall_minute = low.replace(second=0)
            while wall_minute < high:
                if minute_matches(spec, wall_minute):
                    return True
                wall_minute += timedelta(minutes=1)
    return False


# ---------------------------------------------------------------- the wall-time view


def _first_instant_after_gap(wall: datetime, tz: tzinfo) -> datetime:
    a = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    b = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = min(a, b), max(a, b)
    # local(low) < wall < local(high): find the first instant whose wall is past `wall`.
    while high - low > ONE_SECOND:
        mid = low + (high - low) // 2
        mid = mid.replace(microsecond=0)
        if local_wall(mid, tz) > wall:
            high = mid
        else:
            low = mid
    return high


def instants_of_wall(spec: Spec, tz: tzinfo, wall: datetime) -> list[datetime]:
    """The fire instants (UTC) produced by one matching wall time."""
    a = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    b = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    real = [u for u in {a, b} if local_wall(u, tz) == wall]
    if not real:  # swallowed by a gap
        return [_first_instant_after_gap(wall, tz)] if spec.fixed else []
    real.sort()
    return real[:1] if spec.fixed else real


def _walls_of_day(
    spec: Spec, d: date, low: datetime, high: datetime, *, descending: bool = False
) -> Iterator[datetime]:
    """Matching wall times of day `d` inside [low, high], in order (d already matches)."""
    for hour in sorted(spec.hours, reverse=descending):
        if datetime.combine(d, time(hour, 59, 59)) < low or datetime.combine(d, time(hour)) > high:
            continue
        for minute in sorted(spec.minutes, reverse=descending):
            start = datetime.combine(d, time(hour, minute))
            if start + timedelta(seconds=59) < low or start > high:
                continue
            for second in sorted(spec.seconds, reverse=descending):
                wall = start + timedelta(seconds=second)
                if low <= wall <= high:
                    yield wall


class _DayResolver:
    """Maps the matching walls of one day to fire instants.

    Away from offset changes an instant is simply wall - offset and walls come in the
    order of their instants; near a change each wall is resolved against the change
    list, and the search looks MAX_SHIFT further on either side.
    """

    def __init__(self, spec: Spec, tz: tzinfo, d: date) -> None:
        self.spec, self.tz = spec, tz
        noon = datetime.combine(d, time(12)).replace(tzinfo=tz)
        self.near = transitions(tz, noon - timedelta(days=2), noon + timedelta(days=2))
        offset = noon.utcoffset()
        assert offset is not None
        self.offset = offset
        self.margin = MAX_SHIFT if self.near else timedelta(0)
        # Offsets change on whole minutes here, so all seconds of a wall-clock minute
        # resolve alike: remember each minute's resolution.
        self._minutes: dict[datetime, tuple[list[timedelta], datetime | None]] = {}

    def _offset_at(self, u: datetime) -> timedelta:
        for tr in reversed(self.near):
            if tr.at <= u:
                return tr.after
        return self.near[0].before

    def _resolve_minute(self, minute: datetime) -> tuple[list[timedelta], datetime | None]:
        """Offsets under which this wall minute exists (earliest instant first), or, if
        a gap swallows it, the first instant after the gap."""
        offsets = {tr.before for tr in self.near} | {tr.after for tr in self.near}
        real = sorted(
            (off for off in offsets if self._offset_at((minute - off).replace(tzinfo=UTC)) == off),
            reverse=True,  # a larger offset means an earlier instant
        )
        if real:
            return real, None
        return [], _first_instant_after_gap(minute, self.tz)

    def instants(self, wall: datetime) -> list[datetime]:
        if not self.near:
            return [(wall - self.offset).replace(tzinfo=UTC)]
        minute = wall.replace(second=0)
        if minute not in self._minutes:
            self._minutes[minute] = self._resolve_minute(minute)
        offsets, gap_end = self._minutes[minute]
        if gap_end is not None:
            return [gap_end] if self.spec.fixed else []
        real = [(wall - off).replace(tzinfo=UTC) for off in offsets]
        return real[:1] if self.spec.fixed else real


def next_fire(spec: Spec, tz: tzinfo, t: datetime) -> datetime | None:
    """First fire strictly after `t` (UTC), or None within SEARCH_DAYS."""
    u = to_utc(t)
    low = local_wall(u, tz) - MAX_SHIFT
    best: datetime | None = None
    stop = datetime.max  # walls past this cannot beat `best`
    d = low.date()
    for _ in range(SEARCH_DAYS):
        if datetime.combine(d, time()) > stop:
            break
        if day_matches(spec, d):
            resolver = _DayResolver(spec, tz, d)
            for wall in _walls_of_day(spec, d, low, stop):
                if wall > stop:
                    break
                for inst in resolver.instants(wall):
                    if inst > u and (best is None or inst < best):
                        best = inst
                        stop = local_wall(best, tz) + resolver.margin
        d += timedelta(days=1)
    return best


def prev_fire(spec: Spec, tz: tzinfo, t: datetime) -> datetime | None:
    """Last fire strictly before `t` (UTC), or None within SEARCH_DAYS."""
    u = to_utc(t)
    high = local_wall(u, tz) + MAX_SHIFT
    best: datetime | None = None
    stop = datetime.min
    d = high.date()
    for _ in range(SEARCH_DAYS):
        if datetime.combine(d, time(23, 59, 59)) < stop:
            break
        if day_matches(spec, d):
            resolver = _DayResolver(spec, tz, d)
            for wall in _walls_of_day(spec, d, stop, high, descending=True):
                if wall < stop:
                    break
                for inst in resolver.instants(wall):
                    if inst < u and (best is None or inst > best):
                        best = inst
                        stop = local_wall(best, tz) - resolver.margin
        d -= timedelta(days=1)
    return best


def fires_between(spec: Spec, tz: tzinfo, a: datetime, b: datetime) -> list[datetime]:
    """All fires f with a < f < b (UTC), in order."""
    out: list[datetime] = []
    cur: datetime | None = to_utc(a)
    while True:
        assert cur is not None
        cur = next_fire(spec, tz, cur)
        if cur is None or cur >= to_utc(b):
            return out
        out.append(cur)


def scan_fires(spec: Spec, tz: tzinfo, a: datetime, b: datetime) -> list[datetime]:
    """Brute force: every candidate second in (a, b) tested with `is_fire`.

    Candidates are each UTC minute plus the matching seconds (all zones in the tests
    have whole-minute offsets, so wall minutes and UTC minutes share boundaries).
    """
    u, end = to_utc(a), to_utc(b)
    minute = u.replace(second=0, microsecond=0)
    offsets = sorted({0, *spec.seconds})
    out: list[datetime] = []
    while minute < end:
        for s in offsets:
            cand = minute + timedelta(seconds=s)
            if u < cand < end and is_fire(spec, tz, cand):
                out.append(cand)
        minute += timedelta(minutes=1)
    return out


def can_ever_fire(spec: Spec) -> bool:
    """Some date of a full 28-year cycle of year types matches the day fields."""
    d = date(2000, 1, 1)
    while d.year < 2028:
        if day_matches(spec, d):
            return True
        d += timedelta(days=1)
    return False


# ---------------------------------------------------------------- "@every"


def every_next(interval: timedelta, t: datetime) -> datetime:
    """First whole multiple of `interval` since the Unix epoch strictly after `t`."""
    step = interval // timedelta(microseconds=1)
    elapsed = (to_utc(t) - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=(elapsed // step + 1) * step)


def every_prev(interval: timedelta, t: datetime) -> datetime:
    step = interval // timedelta(microseconds=1)
    elapsed = (to_utc(t) - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=(-(-elapsed // step) - 1) * step)
