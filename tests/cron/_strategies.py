"""Hypothesis strategies for cron expressions and start instants.

Every generated expression comes with its meaning (`_reference.Spec`) built from the
same random choices, so tests can check the engine against a model that never reads
the engine's own parse result. Only valid syntax is generated (C1-C5); a combination of
valid fields that can never fire (C7) is possible and left to the tests to judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from ._reference import Spec, _transitions_in_year

# At least eight zones, chosen for their DST shapes: none (UTC, Kolkata), whole hours
# (Berlin, Riga, New York, Sydney), 30 minutes (Lord_Howe), at midnight (Santiago,
# Havana), and a :45 offset (Chatham).
ZONE_NAMES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Havana",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Europe/Riga",
    "Australia/Sydney",
)
DST_YEARS = (2019, 2020, 2021, 2022, 2023)
# Sometimes elsewhere: old rules (1970s-90s) and years past 2037, where zoneinfo
# extends the rules from the zone's POSIX TZ string.
FAR_YEARS = (1975, 1996, 2037, 2038, 2046, 2099)

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _F:
    name: str
    lo: int
    hi: int  # day-of-week: 7 (also Sunday)

    def name_of(self, value: int) -> str | None:
        if self.name == "month":
            return MONTH_NAMES[value - 1]
        if self.name == "day-of-week" and value < 7:
            return DAY_NAMES[value]
        return None


SECOND = _F("second", 0, 59)
MINUTE = _F("minute", 0, 59)
HOUR = _F("hour", 0, 23)
DOM = _F("day-of-month", 1, 31)
MONTH = _F("month", 1, 12)
DOW = _F("day-of-week", 0, 7)


@dataclass(frozen=True)
class GenExpr:
    """A generated expression, its tokens per field, and what it means."""

    text: str
    spec: Spec | None  # None for "@every"
    interval: timedelta | None = None
    six_fields: bool = False
    field_texts: tuple[str, ...] = ()  # (second,) minute, hour, dom, month, dow as written
    nickname: str | None = None


@st.composite
def _value_text(draw: st.DrawFn, field: _F, value: int) -> str:
    name = field.name_of(value)
    if name is not None and draw(st.booleans()):
        return draw(st.sampled_from((name, name.lower(), name.title())))
    return str(value)


@st.composite
def _element(draw: st.DrawFn, field: _F, plain: bool = False) -> tuple[str, frozenset[int]]:
    """One list element and the plain values it stands for (day-of-week 7 kept as 7)."""
    lo, hi = field.lo, field.hi
    kind = draw(
        st.sampled_from(("star", "value", "range", "star_step", "range_step", "start_step"))
    )
    if kind == "star":
        return "*", frozenset(range(lo, hi + 1))
    if kind == "value":
        v = draw(st.integers(lo, hi))
        return draw(_value_text(field, v)), frozenset({v})
    if kind == "star_step":
        step = draw(st.integers(1, hi - lo + 1))
        return f"*/{step}", frozenset(range(lo, hi + 1, step))
    if kind == "start_step":  # N/S = N-max/S; day-of-week max is 7
        start = draw(st.integers(lo, hi))
        step = draw(st.integers(1, hi - lo + 1))
        text = f"{draw(_value_text(field, start))}/{step}"
        return text, frozenset(range(start, hi + 1, step))
    a = draw(st.integers(lo, hi))
    if field is DOW and a > 0 and draw(st.integers(0, 4)) == 0:
        # X-0 / X-SUN: X through Sunday (C2's one allowed descending range).
        b_text = draw(st.sampled_from(("0", "SUN", "sun")))
        values = frozenset(range(a, 8))
        text = f"{draw(_value_text(field, a))}-{b_text}"
    else:
        b = draw(st.integers(min(a + 1, hi) if plain else a, hi))
        values = frozenset(range(a, b + 1))
        text = f"{draw(_value_text(field, a))}-{draw(_value_text(field, b))}"
    if kind == "range_step":
        step = draw(st.integers(1, hi - lo + 1))
        text = f"{text}/{step}"
        values = frozenset(sorted(values)[::step])
    return text, values


@st.composite
def _plain_field(
    draw: st.DrawFn, field: _F, max_items: int = 3, plain: bool = False
) -> tuple[str, frozenset[int]]:
    items = draw(st.lists(_element(field, plain), min_size=1, max_size=max_items))
    if plain and len(items) > 1:
        items = [item for item in items if item[0] != "*"] or items[:1]
    text = ",".join(t for t, _ in items)
    values: frozenset[int] = frozenset().union(*(v for _, v in items))
    return text, values


def _dow_norm(values: frozenset[int]) -> frozenset[int]:
    return frozenset(v % 7 for v in values)


@st.composite
def _dom_field(draw: st.DrawFn, plain: bool = False) -> tuple[str, frozenset[int], bool, bool]:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.sampled_from(("L", "l"))), frozenset(), True, False
    if choice == 1:
        return draw(st.sampled_from(("LW", "lw", "Lw"))), frozenset(), False, True
    text, values = draw(_plain_field(DOM, plain=plain))
    return text, values, False, False


@st.composite
def _dow_field(
    draw: st.DrawFn, plain: bool = False
) -> tuple[str, frozenset[int], frozenset[int], frozenset[tuple[int, int]]]:
    items: list[str] = []
    weekdays: set[int] = set()
    last_of: set[int] = set()
    nth: set[tuple[int, int]] = set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 7))
        if kind == 0:
            n = draw(st.integers(0, 7))
            items.append(f"{n}{draw(st.sampled_from(('L', 'l')))}")
            last_of.add(n % 7)
        elif kind == 1:
            n, k = draw(st.integers(0, 7)), draw(st.integers(1, 5))
            items.append(f"{n}#{k}")
            nth.add((n % 7, k))
        else:
            text, values = draw(_element(DOW, plain))
            items.append(text)
            weekdays |= _dow_norm(values)
    if plain and len(items) > 1 and "*" in items:  # no bare '*' inside a list
        return "*", frozenset(range(7)), frozenset(), frozenset()
    return ",".join(items), frozenset(weekdays), frozenset(last_of), frozenset(nth)


@st.composite
def cron_exprs(draw: st.DrawFn, *, seconds: bool | None = None, plain: bool = False) -> GenExpr:
    """A 5- or 6-field expression built from random elements of every kind."""
    six = draw(st.booleans()) if seconds is None else seconds
    if six:
        # Keep second sets small most of the time: brute-force checks scan them.
        sec_text, sec_values = draw(
            st.one_of(
                st.integers(0, 59).map(lambda v: (str(v), frozenset({v}))),
                _plain_field(SECOND, max_items=2, plain=plain),
            )
        )
    else:
        sec_text, sec_values = "0", frozenset({0})
    min_text, min_values = draw(_plain_field(MINUTE, plain=plain))
    hour_text, hour_values = draw(_plain_field(HOUR, plain=plain))
    dom_text, dom_values, last, last_wd = draw(_dom_field(plain))
    mon_text, mon_values = draw(_plain_field(MONTH, max_items=2, plain=plain))
    dow_text, dow_values, last_of, nth = draw(_dow_field(plain))
    spec = Spec(
        seconds=sec_values,
        minutes=min_values,
        hours=hour_values,
        days=dom_values,
        months=mon_values,
        weekdays=dow_values,
        dom_star=dom_text.startswith("*"),
        dow_star=dow_text.startswith("*"),
        fixed=not (min_text.startswith("*") or hour_text.startswith("*")),
        last=last,
        last_weekday=last_wd,
        last_of=last_of,
        nth=nth,
    )
    fields = (min_text, hour_text, dom_text, mon_text, dow_text)
    if six:
        fields = (sec_text, *fields)
    sep = draw(st.sampled_from((" ", " ", " ", "  ")))
    return GenExpr(sep.join(fields), spec, six_fields=six, field_texts=fields)


NICKNAMES: dict[str, tuple[str, str, str, str, str]] = {
    "@yearly": ("0", "0", "1", "1", "*"),
    "@annually": ("0", "0", "1", "1", "*"),
    "@monthly": ("0", "0", "1", "*", "*"),
    "@weekly": ("0", "0", "*", "*", "0"),
    "@daily": ("0", "0", "*", "*", "*"),
    "@midnight": ("0", "0", "*", "*", "*"),
    "@hourly": ("0", "*", "*", "*", "*"),
}


def nickname_spec(fields: tuple[str, str, str, str, str]) -> Spec:
    """The Spec of an all-plain 5-field expansion ("0", "*", "1", ...)."""
    ranges = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))

    def values(text: str, i: int) -> frozenset[int]:
        lo, hi = ranges[i]
        return frozenset(range(lo, hi + 1)) if text == "*" else frozenset({int(text)})

    return Spec(
        seconds=frozenset({0}),
        minutes=values(fields[0], 0),
        hours=values(fields[1], 1),
        days=values(fields[2], 2),
        months=values(fields[3], 3),
        weekdays=values(fields[4], 4),
        dom_star=fields[2].startswith("*"),
        dow_star=fields[4].startswith("*"),
        fixed=not (fields[0].startswith("*") or fields[1].startswith("*")),
    )


@st.composite
def nickname_exprs(draw: st.DrawFn) -> GenExpr:
    name = draw(st.sampled_from(sorted(NICKNAMES)))
    spelled = draw(st.sampled_from((name, name.upper(), name.title())))
    fields = NICKNAMES[name]
    return GenExpr(spelled, nickname_spec(fields), field_texts=fields, nickname=name)


_UNITS = {"h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000, "ms": 1_000}


@st.composite
def every_exprs(draw: st.DrawFn) -> GenExpr:
    """`@every` with Go-style durations: units h m s ms, combinable, fractional."""
    units = draw(
        st.lists(st.sampled_from(("h", "m", "s", "ms")), min_size=1, max_size=4, unique=True)
    )
    order = ("h", "m", "s", "ms")
    parts: list[str] = []
    micros = 0
    for unit in sorted(units, key=order.index):
        whole = draw(st.integers(0, 90))
        frac = draw(st.sampled_from(("", "", "", ".5", ".25", ".125")))
        amount = Decimal(f"{whole}{frac}")
        micros += int(amount * _UNITS[unit])
        parts.append(f"{whole}{frac}{unit}")
    if micros == 0:
        parts.append("1s")
        micros = 1_000_000
    return GenExpr("@every " + "".join(parts), None, interval=timedelta(microseconds=micros))


def any_exprs(plain: bool = False) -> st.SearchStrategy[GenExpr]:
    crons = cron_exprs(plain=plain)
    return st.one_of(crons, crons, crons, nickname_exprs(), every_exprs())


zones = st.sampled_from(ZONE_NAMES).map(ZoneInfo)

_SPAN_START = datetime(DST_YEARS[0], 1, 1, tzinfo=UTC)
_WIDE_START = datetime(1971, 1, 1, tzinfo=UTC)
_WIDE_SECONDS = int((datetime(2100, 1, 1, tzinfo=UTC) - _WIDE_START).total_seconds())
_SPAN_SECONDS = int((datetime(DST_YEARS[-1] + 1, 1, 1, tzinfo=UTC) - _SPAN_START).total_seconds())


@st.composite
def starts(draw: st.DrawFn, tz: ZoneInfo) -> datetime:
    """Aware start instants, mostly within a day and a half of one of tz's transitions.

    Given in the schedule's zone, in UTC or in a fixed offset; some are built from a
    wall time with fold 0 or 1, which may name a repeated or a skipped wall time.
    """
    changes = [tr for year in DST_YEARS for tr in _transitions_in_year(tz.key, year)]
    if changes and draw(st.integers(0, 3)) > 0:
        tr = draw(st.sampled_from(changes))
        u = tr.at + timedelta(seconds=draw(st.integers(-36 * 3600, 36 * 3600)))
    elif draw(st.integers(0, 3)):
        u = _SPAN_START + timedelta(seconds=draw(st.integers(0, _SPAN_SECONDS)))
    else:
        u = _WIDE_START + timedelta(seconds=draw(st.integers(0, _WIDE_SECONDS)))
    if draw(st.integers(0, 3)) == 0:
        u += timedelta(microseconds=draw(st.integers(1, 999_999)))
    shape = draw(st.integers(0, 5))
    target: tzinfo
    if shape == 0:
        target = UTC
    elif shape == 1:
        target = timezone(timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
    elif shape == 2:
        # A wall time taken literally, with a chosen fold: possibly in a gap or a fold.
        wall = u.astimezone(tz).replace(tzinfo=None)
        wall += timedelta(minutes=draw(st.sampled_from((0, 30, 60))))
        return wall.replace(tzinfo=tz, fold=draw(st.integers(0, 1)))
    else:
        target = tz
    return u.astimezone(target)


_DST_ZONES = tuple(name for name in ZONE_NAMES if _transitions_in_year(name, 2021))


@st.composite
def _covering(draw: st.DrawFn, field: _F, value: int) -> tuple[str, frozenset[int]]:
    """A list element of `field` that surely contains `value`."""
    # Mostly not '*', so that fixed jobs (C10) are common.
    kind = draw(st.sampled_from((0, 1, 1, 1, 2, 2, 3)))
    if kind == 0:
        return "*", frozenset(range(field.lo, field.hi + 1))
    if kind == 1:
        return str(value), frozenset({value})
    if kind == 2:
        a = draw(st.integers(field.lo, value))
        b = draw(st.integers(value, field.hi))
        return f"{a}-{b}", frozenset(range(a, b + 1))
    # N/S with value = N + k * S
    step = draw(st.integers(1, 6))
    start = value - step * draw(st.integers(0, (value - field.lo) // step))
    return f"{start}/{step}", frozenset(range(start, field.hi + 1, step))


@st.composite
def _field_with(
    draw: st.DrawFn, field: _F, value: int, plain: bool = False
) -> tuple[str, frozenset[int]]:
    items = draw(st.lists(_element(field, plain), max_size=2))
    covering = draw(_covering(field, value))
    if plain:  # no bare '*' inside a list
        items = [] if covering[0] == "*" else [i for i in items if i[0] != "*"]
    items.insert(draw(st.integers(0, len(items))), covering)
    return ",".join(t for t, _ in items), frozenset().union(*(v for _, v in items))


@st.composite
def dst_cases(draw: st.DrawFn, plain: bool = False) -> tuple[GenExpr, ZoneInfo, datetime]:
    """An expression whose fields cover the wall times a DST change swallows or repeats,
    with a start a few hours before (or just after) that change."""
    tz = ZoneInfo(draw(st.sampled_from(_DST_ZONES)))
    years = DST_YEARS if draw(st.integers(0, 5)) else FAR_YEARS
    changes = [t for y in years for t in _transitions_in_year(tz.key, y)]
    if not changes:  # a zone without DST in those years
        changes = [t for y in DST_YEARS for t in _transitions_in_year(tz.key, y)]
    tr = draw(st.sampled_from(changes))
    low, high = tr.wall_range()
    inside = low + (high - low) * draw(st.sampled_from((0, 0.25, 0.5, 0.75)))
    six = draw(st.integers(0, 3)) == 0
    if six:
        sec_text, sec_values = draw(_plain_field(SECOND, max_items=2, plain=plain))
    else:
        sec_text, sec_values = "0", frozenset({0})
    min_text, min_values = draw(_field_with(MINUTE, inside.minute, plain))
    hour_text, hour_values = draw(_field_with(HOUR, inside.hour, plain))
    dom_text, dom_values = draw(
        st.one_of(st.just(("*", frozenset(range(1, 32)))), _field_with(DOM, inside.day, plain))
    )
    mon_text, mon_values = draw(
        st.one_of(st.just(("*", frozenset(range(1, 13)))), _field_with(MONTH, inside.month, plain))
    )
    weekday = (inside.weekday() + 1) % 7
    dow_text, dow_values = draw(
        st.one_of(st.just(("*", frozenset(range(0, 8)))), _field_with(DOW, weekday, plain))
    )
    spec = Spec(
        seconds=sec_values,
        minutes=min_values,
        hours=hour_values,
        days=dom_values,
        months=mon_values,
        weekdays=_dow_norm(dow_values),
        dom_star=dom_text.startswith("*"),
        dow_star=dow_text.startswith("*"),
        fixed=not (min_text.startswith("*") or hour_text.startswith("*")),
    )
    fields: tuple[str, ...] = (min_text, hour_text, dom_text, mon_text, dow_text)
    if six:
        fields = (sec_text, *fields)
    gen = GenExpr(" ".join(fields), spec, six_fields=six, field_texts=fields)
    start = tr.at + timedelta(seconds=draw(st.integers(-2 * 3600, 600)))
    if draw(st.booleans()):
        start += timedelta(microseconds=draw(st.integers(0, 999_999)))
    return gen, tz, start.astimezone(draw(st.sampled_from((tz, UTC))))


@st.composite
def random_cases(draw: st.DrawFn, plain: bool = False) -> tuple[GenExpr, ZoneInfo, datetime]:
    """Any expression, any of the zones, a start from `starts`."""
    gen = draw(any_exprs(plain), label="expression")
    tz = draw(zones, label="zone")
    return gen, tz, draw(starts(tz), label="start")


# Two thirds of the cases are built around one DST change (fields covering the wall
# times it swallows or repeats), so the rule of C10 is exercised on most runs.
cases = st.one_of(random_cases(), dst_cases(), dst_cases())
# The same without a bare '*' inside a list and without "A-A" ranges (both valid, both
# read differently by croniter or cronsim), so differential runs compare more cases.
plain_cases = st.one_of(random_cases(plain=True), dst_cases(plain=True), dst_cases(plain=True))
