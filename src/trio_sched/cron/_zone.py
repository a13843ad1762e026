"""Offset segments of a timezone: where UTC offsets change, in integer epoch seconds.

The schedule math works on integers: an instant is seconds since the Unix epoch (UTC)
and a wall time is "local epoch seconds" (the instant plus the UTC offset, read as if
it were UTC). Between two offset transitions the mapping is a plain shift, so the
calculator only needs, for an instant `s`, its *segment*: the transition at or before
`s`, the next transition after it, the offset in between and the offset before.

Rules:
- Z1 A transition is an instant T whose offset differs from the offset at T - 1 s.
- Z2 Transitions are found per calendar year (UTC) by sampling the offset (weekly from
  1970 on, daily before) and bisecting each change to the second, then cached per
  zone. Two transitions closer than the sampling step that cancel each other out would
  be missed; tzdata has none since 1970 (the closest modern pairs, DST paused for
  Ramadan, are about a month apart).
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
# Years from which offsets are sampled weekly rather than daily (rule Z2).
_WEEKLY_FROM: Final = 1970
# A window of cached segments grows up to this many years before it is rebuilt.
_WINDOW_YEARS: Final = 60
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
        # year -> ((instant, offset before, offset after), ...)
        self._years: dict[int, tuple[tuple[int, int, int], ...]] = {}
        # (start, end, segment starts, segments): contiguous cached segments, replaced
        # as a whole so that readers never see a half-built window.
        self._window: tuple[int, int, tuple[int, ...], tuple[Segment, ...]] = (0, 0, (), ())
        self._window_years = (0, -10)
        self._lock = threading.Lock()

    def offset(self, s: int) -> int:
        """UTC offset in seconds at instant `s`."""
        if self._fixed is not None:
            return self._fixed
        s = min(max(s, EPOCH_MIN + 2 * 86400), EPOCH_MAX - 2 * 86400)
        delta = datetime.fromtimestamp(s, self.tz).utcoffset()
        assert delta is not None
        return delta.days * 86400 + delta.seconds

    def _transitions(self, year: int) -> tuple[tuple[int, int, int], ...]:
        """(instant, offset before, offset after) of each transition in `year` (UTC)."""
        cached = self._years.get(year)
        if cached is not None:
            return cached
        found: list[tuple[int, int, int]] = []
        if 1 <= year <= 9999:
            first = year_start(year)
            last = year_start(year + 1) - 1 if year < 9999 else EPOCH_MAX
            step = 7 * 86400 if year >= _WEEKLY_FROM else 86400
            points = [first - 1, *range(first, last, step), last]
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
                found.append((hi, offsets[i], self.offset(hi)))
        result = tuple(found)
        self._years[year] = result
        return result

    def segment(self, s: int) -> Segment:
        """The segment containing instant `s`."""
        if self._fixed is not None:
            return Segment(-_FAR, _FAR, self._fixed, self._fixed)
        window = self._window
        if window[0] <= s < window[1]:
            return window[3][bisect.bisect_right(window[2], s) - 1]
        with self._lock:
            return self._extend(s)

    def _extend(self, s: int) -> Segment:
        """Rebuild the window of cached segments so that it covers `s` with at least a
        year on each side (so a fold or gap just before `s` is never cut off)."""
        year = _year_of(s)
        first, last = max(year - 1, 1), min(year + 1, 9999)
        lo_year, hi_year = self._window_years
        if lo_year <= last + 2 and first - 2 <= hi_year and hi_year - lo_year < _WINDOW_YEARS:
            first, last = min(first, lo_year), max(last, hi_year)
        begin = year_start(first) if first > 1 else -_FAR
        end = year_start(last + 1) if last < 9999 else _FAR
        offset = self.offset(begin)
        segments = [Segment(begin, end, offset, self.offset(begin - 1))]
        for y in range(first, last + 1):
            for at, before, after in self._transitions(y):
                if at == begin:
                    segments[0] = Segment(begin, end, after, before)
                    continue
                segments[-1] = segments[-1]._replace(end=at)
                segments.append(Segment(at, end, after, before))
        self._window = (begin, end, tuple(seg.start for seg in segments), tuple(segments))
        self._window_years = (first, last)
        return segments[bisect.bisect_right(self._window[2], s) - 1]


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
