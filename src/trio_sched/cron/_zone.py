"""Offset segments of a timezone: where UTC offsets change, in integer epoch seconds.

The schedule math works on integers: an instant is seconds since the Unix epoch (UTC)
and a wall time is "local epoch seconds" (the instant plus the UTC offset, read as if
it were UTC). Between two offset transitions the mapping is a plain shift, so the
calculator only needs, for an instant `s`, its *segment*: the transition at or before
`s`, the next transition after it, the offset in between and the offset before.

Rules:
- Z1 A transition is an instant T whose offset differs from the offset at T - 1 s.
- Z2 Transitions are found per calendar year (UTC) by sampling the offset daily and
  bisecting each change to the second, then cached per zone. Two transitions less than
  a day apart that cancel each other out would be missed; tzdata has none since 1970.
- Z3 Segment ends that are not real transitions (no transition within the next two
  years) are harmless: the offset is the same on both sides, so nothing is skipped or
  repeated there.
- Z4 Instants near the ends of the `datetime` range (years 1 and 9999) use the offset
  of the nearest representable instant.
"""

from __future__ import annotations

import bisect
import threading
from datetime import UTC, date, datetime, timezone, tzinfo
from typing import Final, NamedTuple, final
from zoneinfo import ZoneInfo

__all__ = ["EPOCH_MAX", "EPOCH_MIN", "EPOCH_ORDINAL", "Segment", "Zone", "utc_epoch", "zone_for"]

EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
EPOCH_MIN: Final = (date.min.toordinal() - EPOCH_ORDINAL) * 86400
EPOCH_MAX: Final = (date.max.toordinal() - EPOCH_ORDINAL) * 86400 + 86399
_FAR: Final = 2**62
_UTC_KEYS: Final = frozenset(
    {
        "UTC",
        "Etc/UTC",
        "Etc/UCT",
        "Etc/Universal",
        "Etc/Zulu",
        "GMT",
        "Etc/GMT",
        "Etc/GMT0",
        "Etc/GMT+0",
        "Etc/GMT-0",
        "Etc/Greenwich",
        "UCT",
        "Universal",
        "Zulu",
        "Greenwich",
    }
)


class Segment(NamedTuple):
    """Instants `start <= s < end` have UTC offset `offset`; `before` is the offset
    just before `start` (equal to `offset` when `start` is not a real transition)."""

    start: int
    end: int
    offset: int
    before: int


def year_start(year: int) -> int:
    return (date(year, 1, 1).toordinal() - EPOCH_ORDINAL) * 86400


def _year_of(s: int) -> int:
    ordinal = min(max(s // 86400 + EPOCH_ORDINAL, 1), date.max.toordinal())
    return date.fromordinal(ordinal).year


@final
class Zone:
    """The transitions of one tzinfo, computed lazily per year and cached."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._fixed: int | None = None
        if isinstance(tz, timezone):
            self._fixed = int(tz.utcoffset(None).total_seconds())
        elif isinstance(tz, ZoneInfo) and tz.key in _UTC_KEYS:
            self._fixed = 0
        # year -> (transition instants, offsets before, offsets after)
        self._years: dict[int, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
        self._lock = threading.Lock()

    def offset(self, s: int) -> int:
        """UTC offset in seconds at instant `s`."""
        if self._fixed is not None:
            return self._fixed
        s = min(max(s, EPOCH_MIN + 2 * 86400), EPOCH_MAX - 2 * 86400)
        delta = datetime.fromtimestamp(s, self.tz).utcoffset()
        assert delta is not None
        return delta.days * 86400 + delta.seconds

    def _transitions(self, year: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        found_at: list[int] = []
        found_before: list[int] = []
        found_after: list[int] = []
        if 1 <= year <= 9999:
            first = year_start(year)
            last = year_start(year + 1) - 1 if year < 9999 else EPOCH_MAX
            points = [first - 1, *range(first, last, 86400), last]
            offsets = [self.offset(p) for p in points]
            for i in range(len(points) - 1):
                if offsets[i] == offsets[i + 1]:
                    continue
                lo, hi = points[i], points[i + 1]
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if self.offset(mid) == offsets[i]:
                        lo = mid
                    else:
                        hi = mid
                found_at.append(hi)
                found_before.append(offsets[i])
                found_after.append(self.offset(hi))
        result = (tuple(found_at), tuple(found_before), tuple(found_after))
        with self._lock:
            self._years[year] = result
        return result

    def segment(self, s: int) -> Segment:
        """The segment containing instant `s`."""
        if self._fixed is not None:
            return Segment(-_FAR, _FAR, self._fixed, self._fixed)
        year = _year_of(s)
        start = before = offset = None
        for y in (year, year - 1):
            at, bef, aft = self._transitions(y)
            i = bisect.bisect_right(at, s)
            if i:
                start, before, offset = at[i - 1], bef[i - 1], aft[i - 1]
                break
        if start is None or before is None or offset is None:
            offset = before = self.offset(s)
            start = year_start(max(year - 1, 1)) if year > 1 else -_FAR
        end = None
        for y in (year, year + 1):
            at, _, _ = self._transitions(y)
            i = bisect.bisect_right(at, s)
            if i < len(at):
                end = at[i]
                break
        if end is None:
            end = year_start(year + 2) if year + 2 <= 9999 else _FAR
        return Segment(start, end, offset, before)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_zones: dict[tzinfo, Zone] = {}
_zones_lock = threading.Lock()


def zone_for(tz: tzinfo) -> Zone:
    """The shared `Zone` of `tz` (one per tzinfo object, so caches are shared)."""
    zone = _zones.get(tz)
    if zone is None:
        with _zones_lock:
            zone = _zones.setdefault(tz, Zone(tz))
    return zone


def utc_epoch(t: datetime) -> tuple[int, int]:
    """Aware `t` as (whole seconds since the epoch, microseconds), exactly."""
    delta = t - _EPOCH
    return delta.days * 86400 + delta.seconds, delta.microseconds
