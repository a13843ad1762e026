"""`Schedule`: next and previous fire times in a timezone (C7, C9-C11).

How the search works. Instants are integer seconds since the epoch (UTC); wall times
are "local epoch seconds" (see `_zone`). Within one offset segment a wall time maps to
an instant by a plain shift, so the calculator finds the first matching wall time field
by field (`WallTimes`, in `_walls`: C12) and only then checks whether that wall time
lies inside the current segment. If it does not, the search moves to the next segment.
There is no minute-by-minute scan.

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

Every search is capped at `SEARCH_YEARS` from its start and at the ends of the
`datetime` range (C7); there it raises `ValidationError`. Build a `Schedule` with
`parse` (`_parse`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final, final

from trio_sched._errors import ValidationError
from trio_sched.cron._fields import HOUR, MINUTE, SECOND, CronField
from trio_sched.cron._walls import MAX_ORDINAL, Exhausted, WallTimes
from trio_sched.cron._zone import EPOCH_ORDINAL, Segment, Zone, zone_for

__all__ = ["Schedule"]

SEARCH_YEARS: Final = 50
_SEARCH_DAYS: Final = SEARCH_YEARS * 366
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@final
class Schedule:
    """A parsed cron expression bound to a timezone. Immutable and thread-safe.

    Build one with `parse`. All methods take and return aware datetimes; results are
    in the schedule's zone with the correct ``fold``.
    """

    __slots__ = (
        "_interval_us",
        "_last_result",
        "_segment_cache",
        "_walls",
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
    _walls: WallTimes

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
        # (datetime, instant) of the last result: iterating feeds it straight back.
        self._last_result: tuple[datetime | None, int] = (None, 0)
        if not fields:
            self.fixed = False
            return
        self.fixed = not fields[MINUTE].star and not fields[HOUR].star
        self._walls = WallTimes(fields)

    # -- public API -------------------------------------------------------------------

    def next_after(self, t: datetime) -> datetime:
        """The first fire strictly after `t` (an aware datetime)."""
        s, us = self._epoch(t)
        try:
            if self._interval_us is not None:
                return self._every(((s * 1_000_000 + us) // self._interval_us) + 1)
            return self._to_datetime(*self._next_ge(s + 1))
        except Exhausted:
            raise self._exhausted("after", t) from None

    def prev_before(self, t: datetime) -> datetime:
        """The last fire strictly before `t` (an aware datetime)."""
        s, us = self._epoch(t)
        try:
            if self._interval_us is not None:
                return self._every(-((-(s * 1_000_000 + us)) // self._interval_us) - 1)
            return self._to_datetime(*self._prev_le(s - 1 if us == 0 else s))
        except Exhausted:
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
            raise Exhausted from None

    def _to_datetime(self, wall: int, fold: int, instant: int) -> datetime:
        day, sod = divmod(wall, 86400)
        ordinal = day + EPOCH_ORDINAL
        cached = self._walls.day_cache
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
        limit = min(lo // 86400 + EPOCH_ORDINAL + _SEARCH_DAYS, MAX_ORDINAL)
        if not self.fixed:
            while True:
                wall = self._walls.first_match(lo, limit)
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
            wall = self._walls.first_match(lo, limit)
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
                wall = self._walls.last_match(hi, limit)
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
            wall = self._walls.last_match(hi, limit)
            instant = wall - seg.offset
            if instant >= seg.start:
                if seg.before > seg.offset and wall < seg.start + seg.before:
                    return wall, 0, wall - seg.before  # a repeated time fires on its first pass
                return wall, 0, instant
            if seg.before < seg.offset and wall >= seg.start + seg.before:
                return seg.start + seg.offset, 0, seg.start  # in the gap: fires when it ends
            seg = self._segment(seg.start - 1)
            hi = wall

    def min_interval(self) -> float:
        """A lower bound, in seconds, on the wall-clock interval between two consecutive
        fires, from the fields alone (no search): the ``@every`` interval; else the
        smallest cyclic gap between the values of the finest of seconds, minutes and
        hours with more than one value, times its unit; else one day. A DST transition
        can bring two fires of a fixed-time schedule closer in real time by its shift
        (``0 1,3 * * *`` fires 1 h apart on a spring-forward day)."""
        if self.interval is not None:
            return self.interval.total_seconds()
        for index, unit, size in ((SECOND, 1, 60), (MINUTE, 60, 60), (HOUR, 3600, 24)):
            values = self.fields[index].values
            if len(values) > 1:
                gaps = [b - a for a, b in itertools.pairwise(values)]
                gaps.append(values[0] + size - values[-1])
                return float(min(gaps) * unit)
        return 86_400.0

    def can_fire(self) -> bool:
        """Whether some calendar month has a matching day (C7); see `WallTimes.can_fire`."""
        return self._walls.can_fire()


def _tz_name(tz: tzinfo) -> str:
    return getattr(tz, "key", None) or str(tz)
