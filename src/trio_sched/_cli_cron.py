"""Text for the cron commands of the CLI: explain an expression, list and mark fires.

Rules of this module:
- It only formats. Every schedule fact comes from `trio_sched.cron` (the engine); this
  module never decides on its own whether a time matches. The one place that needs to
  know which *wall times* an expression matches (to name the wall times a DST gap
  swallowed) asks the engine too, through a "shadow" schedule of the same expression in
  UTC, where wall time and real time agree.
- It trusts that an expression was validated by `parse` before it is described, so the
  describer splits field text without re-checking it.
- Pure functions returning lines; printing and exit codes belong to `__main__`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from trio_sched._errors import SchedulerError
from trio_sched.cron import CronField, Schedule, ValidationError, parse

__all__ = [
    "describe",
    "dst_note",
    "error_lines",
    "fire_line",
    "job_kind",
    "shadow_of",
    "zone_name",
]

_MONTHS = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_NAME_TO_NUMBER = {name[:3].upper(): i for i, name in enumerate(_MONTHS) if name} | {
    name[:3].upper(): i for i, name in enumerate(_WEEKDAYS)
}
# (singular, plural) of what one step of a field counts.
_UNITS = {
    "second": ("second", "seconds"),
    "minute": ("minute", "minutes"),
    "hour": ("hour", "hours"),
    "day-of-month": ("day of the month", "days"),
    "month": ("month", "months"),
    "day-of-week": ("day of the week", "days"),
}
_LABEL_WIDTH = 14
# A gap longer than this between two fires is not searched for a DST transition. Within
# this span tzdata has at most one offset change, or a pair that cancels out (a DST that
# lasted one week, Brazil 2000), which leaves both ends at one offset: no note then.
_TRANSITION_SEARCH_SPAN = timedelta(days=20)
_TINY = timedelta(microseconds=1)


# -- time zones --------------------------------------------------------------------------


def zone_name(zone: tzinfo) -> str:
    """The IANA key of a ZoneInfo, else whatever the tzinfo calls itself."""
    key = getattr(zone, "key", None)
    return key if isinstance(key, str) else str(zone)


# -- errors ------------------------------------------------------------------------------


def error_lines(exc: ValidationError, given: str) -> list[str]:
    """The error message, then the expression with a caret under the offending token.

    Falls back to finding the token in the text when the engine gave no position, and
    to no caret at all when the token is missing or appears more than once.
    """
    expression = exc.expression if exc.expression is not None else given.strip()
    token = exc.token or ""
    position = exc.position
    if position is None and token:
        first = expression.find(token)
        if first >= 0 and expression.find(token, first + 1) < 0:
            position = first
    lines = [f"error: {exc.message}", f"  {expression}"]
    if position is not None and 0 <= position <= len(expression):
        # Keep tabs as tabs so the caret lines up however the terminal renders them.
        pad = "".join("\t" if ch == "\t" else " " for ch in expression[:position])
        width = max(1, min(len(token), len(expression) - position))
        lines.append(f"  {pad}{'^' * width}")
    return lines


# -- fires -------------------------------------------------------------------------------


def job_kind(schedule: Schedule) -> str:
    return "fixed" if schedule.fixed else "interval"


def fire_line(fire: datetime, note: str | None) -> str:
    """One fire: ISO time with UTC offset, weekday, zone abbreviation, DST note if any."""
    line = f"{fire.isoformat(sep=' ')}  {fire:%a}  {fire.tzname()}"
    return f"{line}  <- {note}" if note else line


def dst_note(schedule: Schedule, fire: datetime, shadow: Schedule | None) -> str | None:
    """Why DST changed this fire, or None when it did not.

    `shadow` is `parse(expression, tz="UTC")` for cron expressions (see the module
    docstring) and None for "@every", which has no wall times to lose.
    """
    return _repeated_hour_note(schedule, fire) or _gap_note(schedule, fire, shadow)


def shadow_of(schedule: Schedule) -> Schedule | None:
    """The same expression in UTC, to ask which wall times it matches; None for @every."""
    return None if schedule.interval is not None else parse(schedule.expression, tz=UTC)


def _is_fire(schedule: Schedule, instant: datetime) -> bool:
    before = instant.astimezone(UTC) - _TINY
    return schedule.next_after(before) == instant


def _repeated_hour_note(schedule: Schedule, fire: datetime) -> str | None:
    twin = fire.replace(fold=1 - fire.fold)
    if twin.utcoffset() == fire.utcoffset():
        return None  # an ordinary wall time: it happens once
    wall = _wall(fire)
    twin_fires = _is_fire(schedule, twin)
    if fire.fold == 0 and twin_fires:
        return (
            f"DST repeated hour, 1st pass: {wall} happens twice and this "
            f"{job_kind(schedule)} job fires again at {twin.isoformat(sep=' ')}"
        )
    if fire.fold == 1 and twin_fires:
        return (
            f"DST repeated hour, 2nd pass (fold=1): {wall} already fired at "
            f"{twin.isoformat(sep=' ')}"
        )
    if fire.fold == 0:
        return f"DST repeated hour: {wall} happens twice; this fixed job fires on the 1st pass only"
    return f"DST repeated hour, 2nd pass (fold=1) only: {wall} did not fire on the 1st pass"


def _gap_note(schedule: Schedule, fire: datetime, shadow: Schedule | None) -> str | None:
    if shadow is None:
        return None
    gap = _gap_just_before(schedule, fire)
    if gap is None:
        return None
    gap_start, gap_end = gap  # naive wall times: [start, end) did not exist
    lost = _matching_walls(shadow, gap_start, gap_end)
    if not lost:
        return None
    dated = gap_start.date() != gap_end.date()
    edges = _wall_format([gap_start, gap_end], dated)
    jump = f"clocks jumped from {gap_start:{edges}} to {gap_end:{edges}}"
    if schedule.fixed:
        if _wall_naive(fire) != gap_end:
            return None  # not the moved fire; the gap's fire is the one at gap_end
        return (
            f"DST gap: {_list_walls(lost, dated)} did not exist ({jump}); "
            "fixed job fires once at the first instant after the gap"
        )
    lost_text = _list_walls(lost, dated)
    return f"after a DST gap: {lost_text} did not exist ({jump}); interval job skipped it"


def _gap_just_before(schedule: Schedule, fire: datetime) -> tuple[datetime, datetime] | None:
    """The spring-forward gap between the previous fire and `fire`, as naive wall times.

    For a fixed job the moved fire sits exactly at the end of the gap; for an interval
    job the gap lies somewhere between the previous fire and this one.
    """
    zone = fire.tzinfo
    assert zone is not None
    fire_utc = fire.astimezone(UTC)
    offset_now = fire.utcoffset()
    offset_before = (fire_utc - _TINY).astimezone(zone).utcoffset()
    assert offset_now is not None
    assert offset_before is not None
    if offset_before < offset_now:
        transition = fire_utc
    else:
        try:
            previous = schedule.prev_before(fire).astimezone(UTC)
        except SchedulerError:
            return None  # no earlier fire within the search cap
        if fire_utc - previous > _TRANSITION_SEARCH_SPAN:
            return None
        transition_or_none = _transition_between(previous, fire_utc, zone)
        if transition_or_none is None:
            return None
        transition = transition_or_none
    old = (transition - _TINY).astimezone(zone).utcoffset()
    new = transition.astimezone(zone).utcoffset()
    assert old is not None
    assert new is not None
    if new <= old:
        return None  # a fall-back: nothing was skipped
    gap_end = transition.astimezone(zone).replace(tzinfo=None)
    return gap_end - (new - old), gap_end


def _transition_between(low: datetime, high: datetime, zone: tzinfo) -> datetime | None:
    """The first UTC instant in (low, high] whose offset differs from low's (bisection)."""
    offset_low = low.astimezone(zone).utcoffset()
    if high.astimezone(zone).utcoffset() == offset_low:
        return None
    while high - low > _TINY:
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset_low:
            low = middle
        else:
            high = middle
    return high


def _matching_walls(shadow: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Wall times in [start, end) that the expression matches (naive datetimes)."""
    found: list[datetime] = []
    cursor = start.replace(tzinfo=UTC) - _TINY
    limit = end.replace(tzinfo=UTC)
    while True:
        cursor = shadow.next_after(cursor)
        if cursor >= limit:
            return found
        found.append(cursor.replace(tzinfo=None))


def _list_walls(walls: Sequence[datetime], dated: bool) -> str:
    form = _wall_format(walls, dated)
    names = [wall.strftime(form) for wall in walls]
    if len(names) > 3:
        return f"{names[0]}, {names[1]}, ... {names[-1]} ({len(names)} wall times)"
    return _join(names)


def _wall_naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None, fold=0)


def _wall(moment: datetime) -> str:
    wall = _wall_naive(moment)
    return wall.strftime(_wall_format([wall], dated=False))


def _wall_format(walls: Sequence[datetime], dated: bool) -> str:
    """One strftime format for a group of wall times: as short as all of them allow."""
    if any(wall.microsecond for wall in walls):
        clock = "%H:%M:%S.%f"
    elif any(wall.second for wall in walls):
        clock = "%H:%M:%S"
    else:
        clock = "%H:%M"
    # A gap can cross midnight or swallow whole days (Pacific/Apia skipped 2011-12-30).
    return f"%Y-%m-%d {clock}" if dated else clock


# -- explaining an expression ------------------------------------------------------------


def describe(schedule: Schedule) -> list[str]:
    """Field-by-field English for a parsed expression (without its fires)."""
    lines = [_row("expression", schedule.expression), _row("time zone", zone_name(schedule.tz))]
    if schedule.interval is not None:
        seconds = schedule.interval.total_seconds()
        lines.append(
            _row(
                "interval",
                f"{schedule.interval} ({seconds:g} s), at whole multiples of the interval "
                "since 1970-01-01 00:00 UTC",
            )
        )
    else:
        written = [field.text for field in schedule.fields if not field.implied]
        if schedule.expression.startswith("@"):
            lines.append(_row("nickname", f"{schedule.expression} = {' '.join(written)}"))
        lines.extend(_field_row(field) for field in schedule.fields)
        lines.append(_row("day rule", _day_rule(schedule.fields)))
    lines.append(_row("dst", _dst_rule(schedule)))
    return lines


def _row(label: str, text: str) -> str:
    return f"{label:<{_LABEL_WIDTH}}{text}"


def _field_row(field: CronField) -> str:
    if field.implied:
        return _row(field.name, f"{field.text} (implied: a 5-field expression fires at second 0)")
    english = _field_english(field)
    return _row(field.name, f"{field.text} ({english})" if english else field.text)


def _field_english(field: CronField) -> str | None:
    elements = field.text.split(",")
    named = field.name in ("month", "day-of-week")
    if not named and all(element.isdigit() for element in elements):
        return None  # plain numbers say it already
    english = _join([_element_english(field.name, element) for element in elements])
    if "/" in field.text:
        english += ": " + _list_values(field)
    return english


def _element_english(name: str, element: str) -> str:
    singular, plural = _UNITS[name]
    token = element.upper()
    if token == "*":
        return f"every {singular}"
    if token == "L":
        return "the last day of the month"
    if token == "LW":
        return "the last weekday (Monday to Friday) of the month"
    if name == "day-of-week" and token.endswith("L"):
        return f"the last {_value_name(name, token[:-1])} of the month"
    if "#" in token:
        day, nth = token.split("#")
        return f"the {_ordinal(int(nth))} {_value_name(name, day)} of the month"
    base, _, step = token.partition("/")
    low, _, high = base.partition("-")
    if step:
        every = f"every {step} {plural if step != '1' else singular}"
        if base == "*":
            return every
        if high:
            return f"{every} from {_value_name(name, low)} to {_value_name(name, high)}"
        return f"{every} from {_value_name(name, low)}"
    if high:
        return f"{_value_name(name, low)} to {_value_name(name, high)}"
    return _value_name(name, low)


def _value_name(name: str, token: str) -> str:
    number = int(token) if token.isdigit() else _NAME_TO_NUMBER[token.upper()]
    if name == "month":
        return _MONTHS[number]
    if name == "day-of-week":
        return _WEEKDAYS[number % 7]  # 7 is Sunday too
    return str(number)


def _list_values(field: CronField) -> str:
    names = [_value_name(field.name, str(value)) for value in field.values]
    if len(names) > 12:
        return f"{', '.join(names[:4])}, ..., {names[-1]} ({len(names)} values)"
    return ", ".join(names)


def _ordinal(n: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n if n < 20 else n % 10, "th")
    return f"{n}{suffix}"


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


def _day_rule(fields: Iterable[CronField]) -> str:
    by_name = {field.name: field for field in fields}
    dom, dow = by_name["day-of-month"], by_name["day-of-week"]
    if dom.star and dow.star:
        return "AND: both day fields start with '*', so a day must match both (rule C6)"
    if dom.star or dow.star:
        star = dom if dom.star else dow
        return (
            f"AND: {star.name} starts with '*', so a day must match both "
            f"day-of-month {dom.text} and day-of-week {dow.text} (rule C6)"
        )
    return (
        "OR: neither day field starts with '*', so a day matches if EITHER "
        f"day-of-month {dom.text} OR day-of-week {dow.text} matches (rule C6, Vixie cron)"
    )


def _dst_rule(schedule: Schedule) -> str:
    if schedule.fixed:
        return (
            "fixed job (neither minute nor hour starts with '*'): a wall time skipped by a "
            "spring-forward gap fires once at the first instant after the gap; a repeated "
            "hour fires on the 1st pass only (rule C10)"
        )
    if schedule.interval is not None:
        why = "@every"
    else:
        starred = [f.name for f in schedule.fields if f.name in ("minute", "hour") and f.star]
        why = f"{' and '.join(starred)} {'start' if len(starred) > 1 else 'starts'} with '*'"
    return (
        f"interval job ({why}): follows real elapsed time; wall times skipped by a "
        "spring-forward gap do not fire, repeated wall times fire on both passes (rule C10)"
    )
