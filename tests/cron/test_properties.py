"""Hypothesis properties of the cron engine against the independent model.

Generated expressions (`_strategies`) carry their meaning; starts are aware instants in
ten zones, mostly near DST transitions of 2019-2023. For each: the parse result holds
that meaning (C2-C5), and next/prev fires are exactly the model's (C6, C9-C11):
`next_after(t) > t`, the fire matches (`_reference.is_fire`), nothing fires in between
(the model's enumeration, and a brute-force scan on short windows), and `prev_before`
inverts `next_after` on every fire. Random text never raises anything but
ValidationError.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, event, example, given, note
from hypothesis import strategies as st

from trio_sched.cron import Schedule, ValidationError, parse

from . import _reference as ref
from ._helpers import assert_fire_shape, spec_from_fields, utc
from ._strategies import GenExpr, cases, cron_exprs, zones

FOLLOWING = 3  # consecutive fires checked after the first
SCAN_WINDOW = timedelta(hours=3)  # brute-force scans stay this short
CAP = timedelta(days=49 * 365)  # the engine may give up past its 50-year search cap


def parse_or_check_c7(gen: GenExpr, tz: ZoneInfo) -> Schedule:
    """Parse; a rejection is only allowed for expressions that can never fire (C7)."""
    try:
        return parse(gen.text, tz=tz)
    except ValidationError:
        assert gen.spec is not None, f"rejected valid {gen.text!r}"
        assert not ref.can_ever_fire(gen.spec), f"rejected {gen.text!r}, which can fire"
        assume(False)
        raise  # unreachable: assume(False) ends the example


def check_fire(s: Schedule, gen: GenExpr, spec: ref.Spec | None, t: datetime) -> datetime:
    """next_after(t) is right, and prev_before inverts it; returns the fire."""
    try:
        fire = s.next_after(t)
    except ValidationError:
        # Only where the search cap (50 years, C7) or the datetime range runs out.
        assert spec is not None
        model = ref.next_fire(spec, s.tz, t)
        assert model is None or model - utc(t) > CAP, f"gave up, but {model} fires"
        assume(False)
        raise
    note(f"next_after({t.isoformat()}) = {fire.isoformat()}")
    assert utc(fire) > utc(t)
    assert_fire_shape(s, fire)
    before = s.prev_before(fire)
    assert_fire_shape(s, before)
    assert utc(s.next_after(before)) == utc(fire)  # C11 on both fires
    if spec is None:
        assert gen.interval is not None
        assert utc(fire) == ref.every_next(gen.interval, t)
        assert utc(before) == ref.every_prev(gen.interval, fire)
    else:
        assert ref.is_fire(spec, s.tz, fire), f"{fire.isoformat()} does not match"
        event(_dst_kind(spec, s.tz, fire))
        # Nothing fires strictly between t and the fire: the model's first fire is it...
        assert ref.next_fire(spec, s.tz, t) == utc(fire)
        # ... and a second-by-second brute force agrees where that is cheap.
        if utc(fire) - utc(t) <= SCAN_WINDOW:
            assert ref.scan_fires(spec, s.tz, t, fire) == []
        assert utc(before) <= utc(t)
        assert utc(before) == ref.prev_fire(spec, s.tz, fire)
    return fire


def _dst_kind(spec: ref.Spec, tz: ZoneInfo, fire: datetime) -> str:
    """Which DST situation a fire exercised (reported by --hypothesis-show-statistics)."""
    local = utc(fire).astimezone(tz)
    if not ref.wall_matches(spec, local.replace(tzinfo=None)):
        return "fire at the end of a gap (fixed job)"
    if local.fold == 1:
        return "second pass of a repeated time (interval job)"
    if local.replace(fold=1).utcoffset() != local.utcoffset():
        return "first pass of a repeated time"
    return "plain wall time"


def expected_fields(gen: GenExpr) -> list[tuple[str, tuple[int, ...]]]:
    spec = gen.spec
    assert spec is not None
    return [
        ("second", tuple(sorted(spec.seconds))),
        ("minute", tuple(sorted(spec.minutes))),
        ("hour", tuple(sorted(spec.hours))),
        ("day-of-month", tuple(sorted(spec.days))),
        ("month", tuple(sorted(spec.months))),
        ("day-of-week", tuple(sorted(spec.weekdays))),
    ]


@given(st.one_of(cron_exprs(), cron_exprs(seconds=True)), zones)
@example(
    GenExpr(
        "0 0 30 2 *",
        ref.Spec(
            frozenset({0}),
            frozenset({0}),
            frozenset({0}),
            frozenset({30}),
            frozenset({2}),
            frozenset(range(7)),
            dom_star=False,
            dow_star=True,
            fixed=True,
        ),
    ),
    ZoneInfo("UTC"),
)
def test_parse_holds_the_generated_meaning(gen: GenExpr, tz: ZoneInfo) -> None:
    try:
        s = parse(gen.text, tz=tz)
    except ValidationError:
        assert gen.spec is not None
        assert not ref.can_ever_fire(gen.spec), f"rejected {gen.text!r}, which can fire"
        return
    assert gen.spec is not None
    assert ref.can_ever_fire(gen.spec), f"accepted {gen.text!r}, which never fires (C7)"
    assert [(f.name, f.values) for f in s.fields] == expected_fields(gen)
    assert s.fields[0].implied is (not gen.six_fields)
    texts = tuple(f.text for f in s.fields[0 if gen.six_fields else 1 :])
    assert texts == gen.field_texts
    assert s.fixed is gen.spec.fixed
    assert spec_from_fields(s) == gen.spec
    assert s.expression == gen.text.strip()


@given(cases)
def test_fires_match_the_model(case: tuple[GenExpr, ZoneInfo, datetime]) -> None:
    gen, tz, t = case
    s = parse_or_check_c7(gen, tz)
    spec = None if gen.spec is None else spec_from_fields(s)
    if gen.spec is not None:
        assert spec == gen.spec
    fire = check_fire(s, gen, spec, t)
    # A few consecutive fires: the iterator agrees with next_after, and each step holds.
    for got in itertools.islice(s.iter_after(fire), FOLLOWING):
        assert utc(got) == utc(check_fire(s, gen, spec, fire))
        fire = got


@given(cases)
def test_prev_before_matches_the_model(case: tuple[GenExpr, ZoneInfo, datetime]) -> None:
    gen, tz, t = case
    t += timedelta(hours=3)  # DST cases start before their change: look back across it
    s = parse_or_check_c7(gen, tz)
    try:
        fire = s.prev_before(t)
    except ValidationError:
        assert gen.spec is not None
        model = ref.prev_fire(gen.spec, tz, t)
        assert model is None or utc(t) - model > CAP, f"gave up, but {model} fires"
        assume(False)
        raise
    note(f"prev_before({t.isoformat()}) = {fire.isoformat()}")
    assert utc(fire) < utc(t)
    assert_fire_shape(s, fire)
    if gen.spec is None:
        assert gen.interval is not None
        assert utc(fire) == ref.every_prev(gen.interval, t)
    else:
        assert ref.is_fire(gen.spec, tz, fire)
        event(_dst_kind(gen.spec, tz, fire))
        assert utc(fire) == ref.prev_fire(gen.spec, tz, t)
        if utc(t) - utc(fire) <= SCAN_WINDOW:
            assert ref.scan_fires(gen.spec, tz, fire, t) == []
    after = s.next_after(fire)
    assert utc(after) >= utc(t)
    assert utc(s.prev_before(after)) == utc(fire)
    # Backward iteration agrees with repeated prev_before.
    cur = fire
    for got in itertools.islice(s.iter_before(fire), FOLLOWING):
        expected = s.prev_before(cur)
        assert utc(got) == utc(expected)
        assert utc(s.next_after(got)) == utc(cur)
        cur = got


CRONISH = "0123456789*/,-#LW?@ abcdefghijklmnopqrstuvwxyz"
START = datetime(2021, 3, 27, 12, 0, tzinfo=UTC)


def _parse_any(text: str) -> Schedule | None:
    error: ValidationError | None = None
    try:
        return parse(text, tz="Europe/Berlin")
    except ValidationError as err:
        error = err
    assert error.message
    if error.token is not None and error.position is not None and error.expression is not None:
        assert error.expression[error.position : error.position + len(error.token)] == error.token
    return None


def _exercise(s: Schedule) -> None:
    """Whatever parsed must also compute, and its fires must satisfy its own fields."""
    try:
        fire = s.next_after(START)
    except ValidationError:
        return  # the 50-year search cap (C7) is a ValidationError too
    assert utc(fire) > START
    assert_fire_shape(s, fire)
    if s.interval is None:
        spec = spec_from_fields(s)
        assert s.fixed is spec.fixed
        assert ref.is_fire(spec, s.tz, fire)
    assert utc(s.prev_before(fire)) < utc(fire)


@given(st.text())
def test_random_text_only_raises_validation_error(text: str) -> None:
    s = _parse_any(text)
    if s is not None:
        _exercise(s)


@given(
    st.one_of(
        st.text(alphabet=CRONISH, max_size=40),
        st.lists(
            st.text(alphabet=CRONISH.replace(" ", ""), min_size=1, max_size=8), max_size=7
        ).map(" ".join),
        st.lists(
            st.text(alphabet="0123456789*/,-LW#", min_size=1, max_size=6), min_size=5, max_size=6
        ).map(" ".join),
    )
)
@example("@every 1.5.5s")
@example("@every 1e3s")
@example("@every .5s")
@example("@every 5.s")
@example("@every 99999999999999999999h")
@example("0 0 31 2,4 *")
@example("99999999999999999999 * * * *")
@example("*/99999999999999999999 * * * *")
@example("0 0 * * 5#3,5L,L")
def test_cronish_text_only_raises_validation_error(text: str) -> None:
    s = _parse_any(text)
    if s is not None:
        _exercise(s)
