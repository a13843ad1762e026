"""Offset segments of a timezone: where UTC offsets change, in integer epoch seconds.

The schedule math works on integers: an instant is seconds since the Unix epoch (UTC)
and a wall time is "local epoch seconds" (the instant plus the UTC offset, read as if
it were UTC). Between two offset transitions the mapping is a plain shift, so the
calculator only needs, for an instant `s`, its *segment*: the transition at or before
`s`, the next transition after it, the offset in between and the offset before.

Rules:
- Z1 A transition is an instant T whose offset differs from the offset at T - 1 s.
- Z2 Transitions are found per calendar year (UTC) by sampling the offset every two
  days and bisecting each change to the second, then cached per zone. Two transitions
  less than two days apart that cancel each other out would be missed; the closest
  such pairs in tzdata 2026 are about a week (166 h) apart (America/Cambridge_Bay 2000,
  Brazil 2000, Asia/Gaza and Asia/Hebron from 2040).
- Z3 Segments are cached per UTC year; a segment end at New Year that is not a real
  transition is harmless (the offset is the same on both sides, so nothing is skipped
  or repeated there). A segment start is always the last real transition (or, with
  none in two years, the year start), so fold and gap information is never cut off.
- Z4 Instants near the ends of the `datetime` range (years 1 and 9999) use the offset
  of the nearest representable instant.
"""

from __future__ import annotations

import bisect
import difflib
import threading
import zoneinfo
from datetime import UTC, date, datetime, timezone, tzinfo
from typing import Final, NamedTuple, final
from zoneinfo import ZoneInfo

__all__ = [
    "EPOCH_MAX",
    "EPOCH_MIN",
    "EPOCH_ORDINAL",
    "Segment",
    "Zone",
    "resolve_zone",
    "utc_epoch",
    "zone_for",
]

EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
EPOCH_MIN: Final = (date.min.toordinal() - EPOCH_ORDINAL) * 86400
EPOCH_MAX: Final = (date.max.toordinal() - EPOCH_ORDINAL) * 86400 + 86399
_FAR: Final = 2**62
# Offsets are sampled every _STEP seconds (rule Z2).
_STEP: Final = 2 * 86400
# Cached years of segments per zone before the cache starts over.
_MAX_CACHED_YEARS: Final = 2048
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
        # year -> (start, end, segment starts, segments); the last one used is kept in
        # _last_year, replaced as a whole so that readers never see half an update.
        self._segments: dict[int, tuple[int, int, tuple[int, ...], tuple[Segment, ...]]] = {}
        self._last_year: tuple[int, int, tuple[int, ...], tuple[Segment, ...]] = (0, 0, (), ())
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
            points = [first - 1, *range(first, last, _STEP), last]
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
        last = self._last_year
        if not last[0] <= s < last[1]:
            last = self._year_segments(_year_of(s))
            self._last_year = last
        return last[3][bisect.bisect_right(last[2], s) - 1]

    def _year_segments(self, year: int) -> tuple[int, int, tuple[int, ...], tuple[Segment, ...]]:
        """(year start, year end, segment starts, segments) covering one UTC year.

        The first segment starts at the last real transition before the year (looked up
        to two years back), so a fold or gap that began just before New Year keeps its
        `before` offset (rule Z3). The last segment ends at the year's end.
        """
        cached = self._segments.get(year)
        if cached is not None:
            return cached
        begin = year_start(year) if year > 1 else -_FAR
        end = year_start(year + 1) if year < 9999 else _FAR
        transitions = list(self._transitions(year))
        if transitions and transitions[0][0] == begin:
            start, before, offset = transitions.pop(0)
        else:
            start, before, offset = begin, self.offset(begin), self.offset(begin)
            for back in (year - 1, year - 2):
                earlier = self._transitions(back)
                if earlier:
                    start, before, offset = earlier[-1]
                    break
        segments: list[Segment] = []
        for at, next_before, next_offset in transitions:
            segments.append(Segment(start, at, offset, before))
            start, before, offset = at, next_before, next_offset
        segments.append(Segment(start, end, offset, before))
        result = (begin, end, tuple(seg.start for seg in segments), tuple(segments))
        with self._lock:
            if len(self._segments) > _MAX_CACHED_YEARS:
                self._segments.clear()
            self._segments[year] = result
        return result


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_zones: dict[tzinfo, Zone] = {}
_zones_lock = threading.Lock()


def resolve_zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or `ValueError` with a message that helps fix a typo
    (one message for `Task(timezone=...)` and the CLI's ``--tz``)."""
    try:
        return ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass  # OSError: a name too long for a file name
    hint = ""
    if len(name) <= 64:  # a longer name is no typo of a zone (and close matches are slow)
        # Only on the error path: listing every zone reads the whole tz database.
        known = sorted(zoneinfo.available_timezones())
        exact = {key.lower(): key for key in known}.get(name.lower())
        guesses = [exact] if exact else difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(guesses)}?" if guesses else ""
    shown = name if len(name) <= 64 else f"{name[:60]}..."
    raise ValueError(
        f"unknown time zone {shown!r} (use an IANA name such as Europe/Berlin or UTC){hint}"
    )


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
