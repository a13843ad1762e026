"""Differential tests against cronsim 2.8 and croniter 7.0.

Generated expressions and starts (ten zones, DST years 2019-2023, two thirds of the
cases built around a DST change) are run through our engine and each library; several
consecutive next fires must be the same instants.

Syntax the other library spells differently is translated first (it means the same):
cronsim gets nicknames expanded and day-of-week ``X-0``/``X-SUN`` written ``X-7``;
croniter gets ``nL`` written ``Ln``. ``@every`` has no equivalent in either.

A case where a library is known to diverge from docs/cron.md is excluded *before*
comparing, by a named predicate below (each says what the library does and why we
differ), and counted; see the session summary ("cron differential"). Comparisons are
never loosened.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from cronsim import CronSim
from hypothesis import assume, given, note
from hypothesis import strategies as st

from trio_sched.cron import Schedule, ValidationError, parse

from . import _reference as ref
from ._diffstats import STATS
from ._helpers import spec_from_fields, utc
from ._strategies import DAY_NAMES, MONTH_NAMES, GenExpr, cases, plain_cases

FIRES = 4  # consecutive next fires compared per case
MARGIN = timedelta(hours=2)  # around the compared window, for "a DST change is near"


@dataclass(frozen=True)
class Case:
    gen: GenExpr
    tz: ZoneInfo
    start: datetime
    ours: list[datetime]  # our next FIRES fires (UTC)

    @property
    def fields(self) -> tuple[str, str, str, str, str]:
        """minute, hour, day-of-month, month, day-of-week texts."""
        texts = self.gen.field_texts
        return texts[1:] if self.gen.six_fields else texts  # type: ignore[return-value]

    def changes(self) -> list[ref.Transition]:
        return ref.transitions(self.tz, self.start - MARGIN, self.ours[-1] + MARGIN)

    def matched_changes(self) -> list[ref.Transition]:
        """Changes near the window that swallow or repeat a matching wall time."""
        spec = self.gen.spec
        assert spec is not None
        out = []
        for tr in self.changes():
            low, high = tr.wall_range()
            minute = low.replace(second=0)
            while minute < high:
                if ref.minute_matches(spec, minute):
                    out.append(tr)
                    break
                minute += timedelta(minutes=1)
        return out

    @property
    def fixed(self) -> bool:
        assert self.gen.spec is not None
        return self.gen.spec.fixed


def _elements(text: str) -> list[str]:
    return text.split(",")


def _number(token: str, names: tuple[str, ...], base: int) -> int:
    upper = token.upper()
    return names.index(upper) + base if upper in names else int(token)


def _field_tables(case: Case) -> list[tuple[str, tuple[str, ...], int]]:
    """(text, names, first value) of each field: for reading numbers and names alike."""
    minute, hour, dom, month, dow = case.fields
    out = [
        (minute, (), 0),
        (hour, (), 0),
        (dom, (), 1),
        (month, MONTH_NAMES, 1),
        (dow, DAY_NAMES, 0),
    ]
    if case.gen.six_fields:
        out.append((case.gen.field_texts[0], (), 0))
    return out


# ------------------------------------------------------------------ cronsim divergences


def cronsim_six_fields_no_dst_rule(case: Case) -> bool:
    """cronsim applies its DST handling only to 5-field expressions ("6-field
    expressions are not Debian cron compatible anyway"): a fixed 6-field job near a DST
    change follows elapsed time there, not C10."""
    return case.gen.six_fields and case.fixed and bool(case.matched_changes())


def cronsim_start_in_second_pass(case: Case) -> bool:
    """A start on the second pass of a repeated hour: cronsim computes fixed jobs on
    naive wall times, so it reads the start as the first pass and a fire already past
    comes back; for interval jobs its wall-time rounding can return a first-pass time,
    again before the start. C9 compares in UTC."""
    local = utc(case.start).astimezone(case.tz)
    return local.fold == 1


def cronsim_interval_change_off_the_hour(case: Case) -> bool:
    """cronsim rolls the hour in steps of 3600 s from minute 0 for the jobs it computes
    on aware times (interval jobs, and every 6-field job), so once its search crosses an
    offset change that is not a whole hour on the local hour grid (Lord Howe's 30-minute
    shift, Chatham's change at 02:45) it skips repeated wall times or lands on the wrong
    half hour ("* 0 * * *" fires from 00:30; "0 0 2 L * 0#1" misses 02:00)."""
    return (
        case.tz.key in ("Australia/Lord_Howe", "Pacific/Chatham")
        and (not case.fixed or case.gen.six_fields)
        and bool(case.changes())
    )


def cronsim_interval_midnight_gap(case: Case) -> bool:
    """When an interval job's search rolls onto a day whose midnight does not exist
    (America/Santiago, America/Havana), cronsim builds the imaginary midnight and reports
    the first real instant, 01:00, although hour 1 does not match. Found by these
    tests."""
    return not case.fixed and any(
        tr.is_gap and tr.wall_range()[0].time() == time(0) for tr in case.changes()
    )


def cronsim_equal_range_with_step(case: Case) -> bool:
    """cronsim reads "A-A/S" as "A/S" (A through the field's maximum, step S: its range
    parser yields one value and the step code then treats it as a start); C2 says A-A
    is the single value A, and a step cannot add values to it. Found by these tests."""
    for text, table, base in _field_tables(case):
        for element in _elements(text):
            m = re.fullmatch(r"([^-/]+)-([^-/]+)/\d+", element)
            if m and _number(m[1], table, base) == _number(m[2], table, base):
                return True
    return False


CRONSIM_DIVERGENCES: list[Callable[[Case], bool]] = [
    cronsim_equal_range_with_step,
    cronsim_six_fields_no_dst_rule,
    cronsim_start_in_second_pass,
    cronsim_interval_change_off_the_hour,
    cronsim_interval_midnight_gap,
]

# ------------------------------------------------------------------ croniter divergences


def croniter_rejects_lw(case: Case) -> bool:
    """croniter has no "LW" (last weekday of the month) in day-of-month."""
    return "LW" in case.fields[2].upper()


def croniter_rejects_mixed_nth(case: Case) -> bool:
    """croniter raises CroniterUnsupportedSyntaxError when day-of-week mixes plain
    values with "n#k" / "Ln" (C5 allows any list)."""
    items = _elements(case.fields[4])
    special = [e for e in items if "#" in e or "L" in e.upper()]
    return bool(special) and len(special) < len(items)


def croniter_nth_or_last_with_day_of_month_is_and(case: Case) -> bool:
    """With "n#k" or "Ln" in day-of-week and a non-star day-of-month, croniter requires
    both (or finds nothing); C6 says neither field is star, so either may match."""
    dom, dow = case.fields[2], case.fields[4]
    special = any("#" in e or "L" in e.upper() for e in _elements(dow))
    return special and not dom.startswith("*") and not dow.startswith("*")


def croniter_equal_range_is_full_cycle(case: Case) -> bool:
    """croniter reads an explicit "A-A" range (also "JAN-JAN", "7-0") as the whole
    cycle; C2 says A-A is the single value A."""
    for text, table, base in _field_tables(case):
        modulo = 7 if table is DAY_NAMES else 100  # day-of-week 7 is 0 to croniter
        for element in _elements(text):
            m = re.fullmatch(r"([^-/]+)-([^-/]+)(/\d+)?", element)
            if m and _number(m[1], table, base) % modulo == _number(m[2], table, base) % modulo:
                return True
    return False


def croniter_day_of_week_step_stops_at_6(case: Case) -> bool:
    """croniter expands day-of-week "N/S" to N-6/S, never reaching 7 (Sunday); C2 says
    N-max/S with max 7, so "1/2" includes Sunday (and "7/S" is Sunday alone)."""
    for element in _elements(case.fields[4]):
        m = re.fullmatch(r"([^-/]+)/(\d+)", element)
        if m and m[1] != "*":
            n = _number(m[1], DAY_NAMES, 0)
            if n >= 1 and (7 - n) % int(m[2]) == 0:
                return True
    return False


def croniter_star_inside_list(case: Case) -> bool:
    """A "*" element inside a list ("1,*", "0,*/1", "31,*/2") makes croniter read the
    field by its expanded values (a full range counts as a star), which changes its
    day rule and DST handling; C6/C10 look at the text's first char. Witness:
    "0 2 31,*/2 * 0,*/1" (OR by C6: every day; croniter ANDs: odd days only)."""
    texts = list(case.gen.field_texts)
    return any("," in t and any(e.startswith("*") for e in _elements(t)) for t in texts)


def croniter_full_range_is_interval(case: Case) -> bool:
    """croniter collapses a minute or hour field whose values cover the whole range
    ("0-23", "0/1") into "*" and then treats the job as an interval job at DST
    changes; C10 decides by the text (neither starts with '*': fixed). Found by these
    tests."""
    spec = case.gen.spec
    assert spec is not None
    minute, hour = case.fields[0], case.fields[1]
    full = (not minute.startswith("*") and len(spec.minutes) == 60) or (
        not hour.startswith("*") and len(spec.hours) == 24
    )
    return full and case.fixed and bool(case.matched_changes())


def croniter_interval_fold_off_the_hour(case: Case) -> bool:
    """When a repeated half hour (Lord Howe) or an hour off the local hour grid
    (Chatham, 02:45-03:45) begins while croniter searches from the first pass, it can
    miss the second-pass fires of an interval job ("0-30 * * * *" from 01:58:59+11:00
    skips 01:30+10:30); C10 fires both passes. Found by these tests."""
    return (
        case.tz.key in ("Australia/Lord_Howe", "Pacific/Chatham")
        and not case.fixed
        and any(not tr.is_gap for tr in case.matched_changes())
    )


def croniter_fixed_twice_in_fold(case: Case) -> bool:
    """croniter fires a fixed job on both passes of a repeated hour; C10 fires it on the
    first pass only."""
    return case.fixed and any(not tr.is_gap for tr in case.matched_changes())


def croniter_gap_keeps_seconds(case: Case) -> bool:
    """For a fixed 6-field job whose wall time falls in a gap, croniter moves the wall
    time forward in whole minutes until it exists (02:00:01 -> 03:00:01); C10 fires at
    the first instant after the gap (03:00:00). Found by these tests."""
    return case.gen.six_fields and case.fixed and any(tr.is_gap for tr in case.matched_changes())


def croniter_interval_gap_day(case: Case) -> bool:
    """On a spring-forward day croniter adds or drops fires of some interval jobs (it
    re-searches from a shifted wall time); C10: skipped wall times do not exist."""
    return not case.fixed and any(tr.is_gap for tr in case.matched_changes())


CRONITER_DIVERGENCES: list[Callable[[Case], bool]] = [
    croniter_rejects_lw,
    croniter_rejects_mixed_nth,
    croniter_nth_or_last_with_day_of_month_is_and,
    croniter_equal_range_is_full_cycle,
    croniter_day_of_week_step_stops_at_6,
    croniter_star_inside_list,
    croniter_full_range_is_interval,
    croniter_interval_fold_off_the_hour,
    croniter_fixed_twice_in_fold,
    croniter_gap_keeps_seconds,
    croniter_interval_gap_day,
]

# ------------------------------------------------------------------ running them


def cronsim_text(case: Case) -> str:
    minute, hour, dom, month, dow = case.fields
    # X-0 / X-SUN (C2: X through Sunday) is X-7 for cronsim, which rejects the former;
    # "0-0" / "SUN-SUN" is the single value Sunday (A-A) and stays as it is.
    dow = ",".join(
        re.sub(r"^(?!0-|sun-)([^-]+)-(0|sun)(/\d+)?$", r"\1-7\3", e, flags=re.IGNORECASE)
        for e in _elements(dow)
    )
    fields = [minute, hour, dom, month, dow]
    if case.gen.six_fields:
        fields.insert(0, case.gen.field_texts[0])
    return " ".join(fields)


def croniter_text(case: Case) -> str:
    if case.gen.nickname is not None:
        return case.gen.text
    *rest, dow = case.gen.field_texts
    dow = ",".join(re.sub(r"^(\d)L$", r"L\1", e, flags=re.IGNORECASE) for e in _elements(dow))
    return " ".join([*rest, dow])


def run_cronsim(case: Case) -> list[datetime]:
    it = CronSim(cronsim_text(case), utc(case.start).astimezone(case.tz))
    return [utc(f) for f in islice(it, FIRES)]


def run_croniter(case: Case) -> list[datetime]:
    text = croniter_text(case)
    it = croniter(
        text,
        utc(case.start).astimezone(case.tz),
        implement_cron_bug=True,
        second_at_beginning=case.gen.six_fields,
    )
    return [utc(it.get_next(datetime)) for _ in range(FIRES)]


def compare(
    library: str,
    case: Case,
    divergences: list[Callable[[Case], bool]],
    run: Callable[[Case], list[datetime]],
) -> None:
    for divergence in divergences:
        if divergence(case):
            STATS[library, f"excluded: {divergence.__name__}"] += 1
            return
    STATS[library, "compared"] += 1
    try:
        theirs: list[datetime] | str = run(case)
    except Exception as exc:  # a library error is a difference too
        theirs = f"{type(exc).__name__}: {exc}"
    ours = [f.astimezone(case.tz).isoformat() for f in case.ours]
    if isinstance(theirs, list):
        theirs_iso: list[str] | str = [f.astimezone(case.tz).isoformat() for f in theirs]
    else:
        theirs_iso = theirs
    assert theirs_iso == ours, (
        f"{library} differs on {case.gen.text!r} in {case.tz.key} from "
        f"{case.start.isoformat()}: ours {ours}, {library} {theirs_iso}"
    )


def _case(gen: GenExpr, tz: ZoneInfo, start: datetime) -> Case:
    try:
        s: Schedule = parse(gen.text, tz=tz)
    except ValidationError:
        assume(False)  # never fires (C7): the properties check that
        raise
    ours = [utc(f) for f in islice(s.iter_after(start), FIRES)]
    note(f"ours: {[f.astimezone(tz).isoformat() for f in ours]}")
    return Case(gen, tz, start, ours)


@given(st.one_of(cases, plain_cases, plain_cases))
def test_same_fires_as_cronsim(case: tuple[GenExpr, ZoneInfo, datetime]) -> None:
    gen, tz, start = case
    if gen.interval is not None:
        STATS["cronsim", "excluded: no @every in cronsim"] += 1
        return
    compare("cronsim", _case(gen, tz, start), CRONSIM_DIVERGENCES, run_cronsim)


@given(st.one_of(cases, plain_cases, plain_cases))
def test_same_fires_as_croniter(case: tuple[GenExpr, ZoneInfo, datetime]) -> None:
    gen, tz, start = case
    if gen.interval is not None:
        STATS["croniter", "excluded: no @every in croniter"] += 1
        return
    compare("croniter", _case(gen, tz, start), CRONITER_DIVERGENCES, run_croniter)


# ------------------------------------------------------------------ known divergences

LH, BERLIN, UTC_Z = "Australia/Lord_Howe", "Europe/Berlin", "UTC"

# One witness per named divergence: our fires, the library's (or its error), and the
# predicate that must flag the case. If a library changes, its witness fails here and
# the exclusion can go.
WITNESSES = [
    (cronsim_equal_range_with_step, "0 0 0-0/6 * * *", UTC_Z, "2021-06-01T00:00:00+00:00",
     ["2021-06-02T00:00:00+00:00", "2021-06-03T00:00:00+00:00"],
     ["2021-06-01T06:00:00+00:00", "2021-06-01T12:00:00+00:00"]),
    (cronsim_six_fields_no_dst_rule, "0 30 2 * * *", BERLIN, "2021-03-28T00:00:00+01:00",
     ["2021-03-28T03:00:00+02:00", "2021-03-29T02:30:00+02:00"],
     ["2021-03-29T02:30:00+02:00", "2021-03-30T02:30:00+02:00"]),
    (cronsim_six_fields_no_dst_rule, "0 30 2 * * *", BERLIN, "2021-10-31T00:00:00+02:00",
     ["2021-10-31T02:30:00+02:00", "2021-11-01T02:30:00+01:00"],
     ["2021-10-31T02:30:00+02:00", "2021-10-31T02:30:00+01:00"]),
    (cronsim_start_in_second_pass, "30 2 * * *", BERLIN, "2021-10-31T02:10:00+01:00",
     ["2021-11-01T02:30:00+01:00", "2021-11-02T02:30:00+01:00"],
     ["2021-10-31T02:30:00+02:00", "2021-11-01T02:30:00+01:00"]),
    (cronsim_interval_change_off_the_hour, "30 * * * *", LH, "2021-04-04T00:45:00+11:00",
     ["2021-04-04T01:30:00+11:00", "2021-04-04T01:30:00+10:30"],
     ["2021-04-04T01:30:00+11:00", "2021-04-04T02:30:00+10:30"]),
    (cronsim_start_in_second_pass, "* * 3 * * *", "Pacific/Chatham",
     "2019-04-07T02:45:00+12:45",
     ["2019-04-07T03:00:00+12:45", "2019-04-07T03:00:01+12:45"],
     ["2019-04-07T03:00:00+13:45", "2019-04-07T03:00:01+13:45"]),
    (cronsim_interval_change_off_the_hour, "* 2 * * *", "Pacific/Chatham",
     "2019-04-07T03:44:58+13:45",
     ["2019-04-07T02:45:00+12:45", "2019-04-07T02:46:00+12:45"],
     ["2019-04-08T02:00:00+12:45", "2019-04-08T02:01:00+12:45"]),
    (cronsim_interval_change_off_the_hour, "* 0 * * *", LH, "2019-04-07T01:59:59+11:00",
     ["2019-04-08T00:00:00+10:30", "2019-04-08T00:01:00+10:30"],
     ["2019-04-08T00:30:00+10:30", "2019-04-08T00:31:00+10:30"]),
    (cronsim_interval_change_off_the_hour, "0 0 2 L * 0#1", LH, "2019-04-07T01:59:59+11:00",
     ["2019-04-07T02:00:00+10:30", "2019-04-30T02:00:00+10:30"],
     ["2019-04-30T02:00:00+10:30", "2019-05-05T02:00:00+10:30"]),
    (cronsim_interval_midnight_gap, "* 0 * * 0", "America/Santiago",
     "2019-09-07T23:59:58-04:00",
     ["2019-09-15T00:00:00-03:00", "2019-09-15T00:01:00-03:00"],
     ["2019-09-08T01:00:00-03:00", "2019-09-15T00:00:00-03:00"]),
    (croniter_full_range_is_interval, "0 0/1 * * *", LH, "2019-10-06T01:59:59+10:30",
     ["2019-10-06T02:30:00+11:00", "2019-10-06T03:00:00+11:00"],
     ["2019-10-06T03:00:00+11:00", "2019-10-06T04:00:00+11:00"]),
    (croniter_interval_fold_off_the_hour, "0-30 * * * *", LH, "2019-04-07T01:58:59+11:00",
     ["2019-04-07T01:30:00+10:30", "2019-04-07T02:00:00+10:30"],
     ["2019-04-07T02:00:00+10:30", "2019-04-07T02:01:00+10:30"]),
    (croniter_rejects_lw, "0 0 LW * *", UTC_Z, "2021-06-01T00:00:00+00:00",
     ["2021-06-30T00:00:00+00:00", "2021-07-30T00:00:00+00:00"], "CroniterNotAlphaError"),
    (croniter_rejects_mixed_nth, "0 0 * * 1,5#3", UTC_Z, "2021-06-01T00:00:00+00:00",
     ["2021-06-07T00:00:00+00:00", "2021-06-14T00:00:00+00:00"],
     "CroniterUnsupportedSyntaxError"),
    (croniter_nth_or_last_with_day_of_month_is_and, "0 0 1 * 5#3", UTC_Z,
     "2021-06-01T00:00:00+00:00", ["2021-06-18T00:00:00+00:00", "2021-07-01T00:00:00+00:00"],
     "CroniterBadDateError"),
    (croniter_equal_range_is_full_cycle, "0 0 5-5 * *", UTC_Z, "2021-06-01T00:00:00+00:00",
     ["2021-06-05T00:00:00+00:00", "2021-07-05T00:00:00+00:00"],
     ["2021-06-02T00:00:00+00:00", "2021-06-03T00:00:00+00:00"]),
    # 2021-06-06 is a Sunday: 1/2 is 1,3,5,7
    (croniter_day_of_week_step_stops_at_6, "0 0 * * 1/2", UTC_Z, "2021-06-03T00:00:00+00:00",
     ["2021-06-04T00:00:00+00:00", "2021-06-06T00:00:00+00:00"],
     ["2021-06-04T00:00:00+00:00", "2021-06-07T00:00:00+00:00"]),
    (croniter_star_inside_list, "0 0 1,* * MON", UTC_Z, "2021-06-01T00:00:00+00:00",
     ["2021-06-02T00:00:00+00:00", "2021-06-03T00:00:00+00:00"],
     ["2021-06-07T00:00:00+00:00", "2021-06-14T00:00:00+00:00"]),
    (croniter_star_inside_list, "0 2 31,*/2 * 0,*/1", UTC_Z, "2021-06-01T03:00:00+00:00",
     ["2021-06-02T02:00:00+00:00", "2021-06-03T02:00:00+00:00"],
     ["2021-06-03T02:00:00+00:00", "2021-06-05T02:00:00+00:00"]),
    (croniter_fixed_twice_in_fold, "30 2 * * *", BERLIN, "2021-10-31T00:00:00+02:00",
     ["2021-10-31T02:30:00+02:00", "2021-11-01T02:30:00+01:00"],
     ["2021-10-31T02:30:00+02:00", "2021-10-31T02:30:00+01:00"]),
    (croniter_gap_keeps_seconds, "1 30 2 * * *", BERLIN, "2021-03-28T00:00:00+01:00",
     ["2021-03-28T03:00:00+02:00", "2021-03-29T02:30:01+02:00"],
     ["2021-03-28T03:00:01+02:00", "2021-03-29T02:30:01+02:00"]),
    (croniter_interval_gap_day, "* 2 * * *", BERLIN, "2021-03-28T01:00:00+01:00",
     ["2021-03-29T02:00:00+02:00", "2021-03-29T02:01:00+02:00"],
     ["2021-03-28T03:00:00+02:00", "2021-03-29T02:00:00+02:00"]),
    (croniter_interval_gap_day, "0 */2 * * *", BERLIN, "2021-03-28T01:00:00+01:00",
     ["2021-03-28T04:00:00+02:00", "2021-03-28T06:00:00+02:00"],
     ["2021-03-28T03:00:00+02:00", "2021-03-28T04:00:00+02:00"]),
]  # fmt: skip


def _witness_case(expr: str, zone: str, start: str, fires: int) -> Case:
    s = parse(expr, tz=zone)
    t = datetime.fromisoformat(start)
    texts = tuple(expr.split())
    gen = GenExpr(expr, spec_from_fields(s), six_fields=len(texts) == 6, field_texts=texts)
    return Case(gen, ZoneInfo(zone), t, [utc(f) for f in islice(s.iter_after(t), fires)])


@pytest.mark.parametrize(
    ("divergence", "expr", "zone", "start", "ours", "theirs"),
    [pytest.param(*w, id=w[0].__name__) for w in WITNESSES],
)
def test_named_divergences_are_real(
    divergence: Callable[[Case], bool],
    expr: str,
    zone: str,
    start: str,
    ours: list[str],
    theirs: list[str] | str,
) -> None:
    """Each exclusion stands for an actual difference, and its predicate flags it."""
    case = _witness_case(expr, zone, start, len(ours))
    assert [f.astimezone(case.tz).isoformat() for f in case.ours] == ours
    assert divergence(case)
    run = run_cronsim if divergence.__name__.startswith("cronsim") else run_croniter
    try:
        got: list[str] | str = [f.astimezone(case.tz).isoformat() for f in run(case)[: len(ours)]]
    except Exception as exc:
        got = type(exc).__name__
    assert got == theirs


@given(
    st.sampled_from(("minute", "hour", "day-of-month", "month")),
    st.data(),
)
def test_descending_ranges_rejected_where_croniter_wraps(field: str, data: st.DataObject) -> None:
    """C2: a descending range is an error (cronsim agrees); croniter wraps it around."""
    hi = {"minute": 59, "hour": 23, "day-of-month": 31, "month": 12}[field]
    lo = 1 if field in ("day-of-month", "month") else 0
    b = data.draw(st.integers(lo, hi - 1))
    a = data.draw(st.integers(b + 1, hi))
    parts = ["0", "0", "*", "*", "*"]
    parts[("minute", "hour", "day-of-month", "month").index(field)] = f"{a}-{b}"
    expr = " ".join(parts)
    with pytest.raises(ValidationError) as info:
        parse(expr)
    assert info.value.field == field
    with pytest.raises(Exception, match="Bad"):
        CronSim(expr, datetime(2021, 1, 1))
    croniter(expr, datetime(2021, 1, 1))  # accepted: wraps around (a divergence)
    STATS["croniter (validity)", "excluded: croniter_wraps_descending_ranges"] += 1
