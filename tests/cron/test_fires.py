"""Fire-time tables away from DST: element semantics (C2-C5), the day rule (C6), rare
expressions (C7), `@every` (C4), aware-only inputs and aware results (C9), strictness
and inverses (C11). Expected fires are written out literally."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from trio_sched.cron import ValidationError, parse

from ._helpers import assert_fire_shape, at, isos, next_n, prev_n, utc

# (expression, tz, start, the next fires written out). June/July 2021: June 1 is a
# Tuesday, July 1 a Thursday (see `cal 6 2021`).
FIRE_TABLE = [
    # plain elements
    (
        "0 9 * * *",
        "UTC",
        "2021-06-01T08:00:00+00:00",
        ["2021-06-01T09:00:00+00:00", "2021-06-02T09:00:00+00:00"],
    ),
    (
        "*/20 * * * *",
        "UTC",
        "2021-06-01T08:00:00+00:00",
        ["2021-06-01T08:20:00+00:00", "2021-06-01T08:40:00+00:00", "2021-06-01T09:00:00+00:00"],
    ),
    (
        "5/20 10 * * *",
        "UTC",
        "2021-06-01T10:30:00+00:00",
        ["2021-06-01T10:45:00+00:00", "2021-06-02T10:05:00+00:00"],
    ),
    (
        "15,45 30 9 * * *",
        "UTC",
        "2021-06-01T09:30:20+00:00",
        ["2021-06-01T09:30:45+00:00", "2021-06-02T09:30:15+00:00"],
    ),
    (
        "* * * * * *",
        "UTC",
        "2021-06-01T23:59:58+00:00",
        ["2021-06-01T23:59:59+00:00", "2021-06-02T00:00:00+00:00"],
    ),
    (
        "0 0 1 */5 *",
        "UTC",
        "2021-02-01T00:00:00+00:00",
        ["2021-06-01T00:00:00+00:00", "2021-11-01T00:00:00+00:00", "2022-01-01T00:00:00+00:00"],
    ),
    ("0 12 * JAN,jul *", "UTC", "2021-06-30T00:00:00+00:00", ["2021-07-01T12:00:00+00:00"]),
    ("0 0 * * MON-FRI", "UTC", "2021-06-04T12:00:00+00:00", ["2021-06-07T00:00:00+00:00"]),
    (
        "0 0 * * 5-0",
        "UTC",
        "2021-06-02T12:00:00+00:00",
        [
            "2021-06-04T00:00:00+00:00",
            "2021-06-05T00:00:00+00:00",
            "2021-06-06T00:00:00+00:00",
            "2021-06-11T00:00:00+00:00",
        ],
    ),
    ("0 0 * * 7", "UTC", "2021-06-01T00:00:00+00:00", ["2021-06-06T00:00:00+00:00"]),
    (
        "0 0 * * 1/2",
        "UTC",
        "2021-06-01T00:00:00+00:00",
        [
            "2021-06-02T00:00:00+00:00",
            "2021-06-04T00:00:00+00:00",
            "2021-06-06T00:00:00+00:00",
            "2021-06-07T00:00:00+00:00",
        ],
    ),
    (
        "0 0 10-10 * *",
        "UTC",
        "2021-06-01T00:00:00+00:00",
        ["2021-06-10T00:00:00+00:00", "2021-07-10T00:00:00+00:00"],
    ),
    # C6: neither day field starts with '*': either may match (OR)
    (
        "0 0 1 * MON",
        "UTC",
        "2021-05-31T12:00:00+00:00",
        [
            "2021-06-01T00:00:00+00:00",
            "2021-06-07T00:00:00+00:00",
            "2021-06-14T00:00:00+00:00",
            "2021-06-21T00:00:00+00:00",
            "2021-06-28T00:00:00+00:00",
            "2021-07-01T00:00:00+00:00",
            "2021-07-05T00:00:00+00:00",
        ],
    ),
    (
        "0 0 1-31/2 * MON",
        "UTC",
        "2021-06-26T12:00:00+00:00",
        [
            "2021-06-27T00:00:00+00:00",
            "2021-06-28T00:00:00+00:00",
            "2021-06-29T00:00:00+00:00",
            "2021-07-01T00:00:00+00:00",
        ],
    ),
    (
        "0 0 1 * 0-7",
        "UTC",
        "2021-06-10T12:00:00+00:00",
        ["2021-06-11T00:00:00+00:00", "2021-06-12T00:00:00+00:00"],
    ),
    (
        "0 0 1,*/10 * MON",
        "UTC",
        "2021-06-10T12:00:00+00:00",
        [
            "2021-06-11T00:00:00+00:00",
            "2021-06-14T00:00:00+00:00",
            "2021-06-21T00:00:00+00:00",
            "2021-06-28T00:00:00+00:00",
        ],
    ),
    # C6: a day field starting with '*' makes it AND (the Vixie/cronie behaviour)
    (
        "0 0 */2 * MON",
        "UTC",
        "2021-06-01T00:00:00+00:00",
        [
            "2021-06-07T00:00:00+00:00",
            "2021-06-21T00:00:00+00:00",
            "2021-07-05T00:00:00+00:00",
            "2021-07-19T00:00:00+00:00",
        ],
    ),
    ("0 0 1 * */1", "UTC", "2021-06-10T12:00:00+00:00", ["2021-07-01T00:00:00+00:00"]),
    (
        "0 0 */10,1 * MON",
        "UTC",
        "2021-06-01T00:00:00+00:00",
        ["2021-06-21T00:00:00+00:00", "2021-10-11T00:00:00+00:00"],
    ),
    ("0 0 1 * *", "UTC", "2021-06-10T12:00:00+00:00", ["2021-07-01T00:00:00+00:00"]),
    (
        "0 0 13 * */7",
        "UTC",
        "2021-01-01T00:00:00+00:00",
        ["2021-06-13T00:00:00+00:00", "2022-02-13T00:00:00+00:00"],
    ),
    # C5 extensions
    (
        "0 0 L * *",
        "UTC",
        "2021-01-31T00:00:00+00:00",
        ["2021-02-28T00:00:00+00:00", "2021-03-31T00:00:00+00:00", "2021-04-30T00:00:00+00:00"],
    ),
    (
        "0 0 L 2 *",
        "UTC",
        "2023-03-01T00:00:00+00:00",
        ["2024-02-29T00:00:00+00:00", "2025-02-28T00:00:00+00:00"],
    ),
    (
        "0 0 LW * *",
        "UTC",
        "2021-06-01T00:00:00+00:00",
        [
            "2021-06-30T00:00:00+00:00",
            "2021-07-30T00:00:00+00:00",
            "2021-08-31T00:00:00+00:00",
            "2021-09-30T00:00:00+00:00",
            "2021-10-29T00:00:00+00:00",
        ],
    ),
    (
        "0 0 * * 5L",
        "UTC",
        "2021-10-01T00:00:00+00:00",
        ["2021-10-29T00:00:00+00:00", "2021-11-26T00:00:00+00:00", "2021-12-31T00:00:00+00:00"],
    ),
    (
        "0 0 * * 7L",
        "UTC",
        "2021-10-01T00:00:00+00:00",
        ["2021-10-31T00:00:00+00:00", "2021-11-28T00:00:00+00:00"],
    ),
    (
        "0 0 * * 5#3",
        "UTC",
        "2021-10-01T00:00:00+00:00",
        ["2021-10-15T00:00:00+00:00", "2021-11-19T00:00:00+00:00"],
    ),
    (
        "0 0 * * 1#5",
        "UTC",
        "2021-04-01T00:00:00+00:00",
        ["2021-05-31T00:00:00+00:00", "2021-08-30T00:00:00+00:00"],
    ),
    (
        "0 0 * * 1#1,5L",
        "UTC",
        "2021-10-01T00:00:00+00:00",
        ["2021-10-04T00:00:00+00:00", "2021-10-29T00:00:00+00:00", "2021-11-01T00:00:00+00:00"],
    ),
    (
        "0 0 1 * 5#3",
        "UTC",
        "2021-10-01T12:00:00+00:00",
        ["2021-10-15T00:00:00+00:00", "2021-11-01T00:00:00+00:00", "2021-11-19T00:00:00+00:00"],
    ),
    (
        "0 0 L * 5L",
        "UTC",
        "2021-10-01T00:00:00+00:00",
        [
            "2021-10-29T00:00:00+00:00",
            "2021-10-31T00:00:00+00:00",
            "2021-11-26T00:00:00+00:00",
            "2021-11-30T00:00:00+00:00",
        ],
    ),
    # C7: rare but possible
    (
        "0 0 29 2 *",
        "UTC",
        "2021-01-01T00:00:00+00:00",
        ["2024-02-29T00:00:00+00:00", "2028-02-29T00:00:00+00:00"],
    ),
    ("0 0 * 2 1#5", "UTC", "2021-01-01T00:00:00+00:00", ["2044-02-29T00:00:00+00:00"]),
    (
        "0 0 31 * *",
        "UTC",
        "2021-04-01T00:00:00+00:00",
        ["2021-05-31T00:00:00+00:00", "2021-07-31T00:00:00+00:00"],
    ),
    # zones without DST: wall time in the zone, results in the zone
    (
        "30 9 * * *",
        "Asia/Kolkata",
        "2021-06-01T00:00:00+00:00",
        ["2021-06-01T09:30:00+05:30", "2021-06-02T09:30:00+05:30"],
    ),
    ("0 0 * * *", "Asia/Kolkata", "2021-06-01T00:00:00+00:00", ["2021-06-02T00:00:00+05:30"]),
    # nicknames
    ("@yearly", "UTC", "2021-06-01T00:00:00+00:00", ["2022-01-01T00:00:00+00:00"]),
    ("@annually", "UTC", "2021-12-31T23:59:59+00:00", ["2022-01-01T00:00:00+00:00"]),
    ("@monthly", "UTC", "2021-06-01T00:00:00+00:00", ["2021-07-01T00:00:00+00:00"]),
    ("@weekly", "UTC", "2021-06-01T00:00:00+00:00", ["2021-06-06T00:00:00+00:00"]),
    ("@daily", "UTC", "2021-06-01T00:00:00+00:00", ["2021-06-02T00:00:00+00:00"]),
    ("@midnight", "UTC", "2021-06-01T00:00:00+00:00", ["2021-06-02T00:00:00+00:00"]),
    (
        "@hourly",
        "UTC",
        "2021-06-01T00:59:59+00:00",
        ["2021-06-01T01:00:00+00:00", "2021-06-01T02:00:00+00:00"],
    ),
    # "@every": whole multiples of the interval since 1970-01-01T00:00:00Z
    (
        "@every 90s",
        "UTC",
        "2021-01-01T00:00:00+00:00",
        ["2021-01-01T00:01:30+00:00", "2021-01-01T00:03:00+00:00"],
    ),
    (
        "@every 250ms",
        "UTC",
        "2021-01-01T00:00:00.100000+00:00",
        ["2021-01-01T00:00:00.250000+00:00", "2021-01-01T00:00:00.500000+00:00"],
    ),
    (
        "@every 1.5s",
        "UTC",
        "2021-01-01T00:00:00+00:00",
        ["2021-01-01T00:00:01.500000+00:00", "2021-01-01T00:00:03+00:00"],
    ),
    # 2021-01-01T00:00Z is 1609459200 s = 298048 * 5400 = 3832045 * 420 + 300
    (
        "@every 1h30m",
        "UTC",
        "2021-01-01T00:00:00+00:00",
        ["2021-01-01T01:30:00+00:00", "2021-01-01T03:00:00+00:00"],
    ),
    (
        "@every 7m",
        "Asia/Kolkata",
        "2021-01-01T00:00:00+00:00",
        ["2021-01-01T05:32:00+05:30", "2021-01-01T05:39:00+05:30"],
    ),
]


@pytest.mark.parametrize(("expr", "tz", "start", "expected"), FIRE_TABLE)
def test_fire_table(expr: str, tz: str, start: str, expected: list[str]) -> None:
    s = parse(expr, tz=tz)
    fires = next_n(s, at(start), len(expected))
    assert isos(fires) == expected
    for fire in fires:
        assert_fire_shape(s, fire)
    # next_after agrees with the iterator, and prev_before inverts it (C11).
    assert isos([s.next_after(at(start))]) == expected[:1]
    for earlier, later in itertools.pairwise(fires):
        assert utc(s.next_after(earlier)) == utc(later)
        assert utc(s.prev_before(later)) == utc(earlier)
    assert isos(prev_n(s, fires[-1], len(fires) - 1)) == expected[-2::-1]


def test_next_after_is_strict_and_prev_before_is_strict() -> None:
    s = parse("0 * * * *")
    t = at("2021-06-01T10:00:00+00:00")
    assert s.next_after(t).isoformat() == "2021-06-01T11:00:00+00:00"
    assert s.prev_before(t).isoformat() == "2021-06-01T09:00:00+00:00"


def test_sub_second_starts() -> None:
    s = parse("* * * * * *")
    t = at("2021-06-01T10:00:00.500000+00:00")
    assert s.next_after(t).isoformat() == "2021-06-01T10:00:01+00:00"
    assert s.prev_before(t).isoformat() == "2021-06-01T10:00:00+00:00"
    m = parse("* * * * *")
    assert m.next_after(t).isoformat() == "2021-06-01T10:01:00+00:00"
    assert m.prev_before(t).isoformat() == "2021-06-01T10:00:00+00:00"


def test_every_on_and_between_multiples() -> None:
    s = parse("@every 250ms")
    on = at("2021-01-01T00:00:00.250000+00:00")
    assert s.next_after(on).isoformat() == "2021-01-01T00:00:00.500000+00:00"
    assert s.prev_before(on).isoformat() == "2021-01-01T00:00:00+00:00"
    assert isos(prev_n(s, on, 2)) == [
        "2021-01-01T00:00:00+00:00",
        "2020-12-31T23:59:59.750000+00:00",
    ]


def test_every_counts_from_the_epoch_not_from_the_start() -> None:
    s = parse("@every 1h30m", tz="Europe/Berlin")
    a = s.next_after(at("2021-01-01T00:00:00+00:00"))
    b = s.next_after(at("2021-01-01T00:59:59+00:00"))
    assert a == b
    assert a.isoformat() == "2021-01-01T02:30:00+01:00"
    assert_fire_shape(s, a)


def test_results_are_in_the_schedule_zone_whatever_the_input_zone() -> None:
    s = parse("0 9 * * *", tz="Europe/Berlin")
    for start in (
        at("2021-06-01T00:00:00+00:00"),
        at("2021-06-01T02:00:00+02:00"),
        datetime(2021, 5, 31, 20, 0, tzinfo=ZoneInfo("America/New_York")),
        datetime(2021, 6, 1, 0, 0, tzinfo=timezone(timedelta(hours=-11))),
    ):
        fire = s.next_after(start)
        assert_fire_shape(s, fire)
        assert fire.utcoffset() == timedelta(hours=2)
    assert s.next_after(at("2021-06-01T00:00:00+00:00")).isoformat() == "2021-06-01T09:00:00+02:00"
    # 2021-06-01T00:00-11:00 is 11:00 UTC = 13:00 in Berlin, past 09:00.
    late = s.next_after(datetime(2021, 6, 1, 0, 0, tzinfo=timezone(timedelta(hours=-11))))
    assert late.isoformat() == "2021-06-02T09:00:00+02:00"


def test_default_zone_results_are_utc() -> None:
    # 10:00+02:00 is 08:00 UTC: the 09:00 UTC fire of that same day comes next.
    fire = parse("0 9 * * *").next_after(at("2021-06-01T10:00:00+02:00"))
    assert fire.utcoffset() == timedelta(0)
    assert utc(fire) == datetime(2021, 6, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("expr", ["0 9 * * *", "@every 5m", "@hourly", "0 0 L * *"])
def test_naive_datetimes_are_rejected(expr: str) -> None:
    s = parse(expr, tz="Europe/Berlin")
    naive = datetime(2021, 6, 1, 12, 0)
    with pytest.raises(ValidationError):
        s.next_after(naive)
    with pytest.raises(ValidationError):
        s.prev_before(naive)
    with pytest.raises(ValidationError):
        next(iter(s.iter_after(naive)))
    with pytest.raises(ValidationError):
        next(iter(s.iter_before(naive)))


def test_iterators_continue_past_month_and_year_ends() -> None:
    s = parse("0 0 L * *", tz="Asia/Kolkata")
    fires = next_n(s, at("2021-11-15T00:00:00+05:30"), 4)
    assert isos(fires) == [
        "2021-11-30T00:00:00+05:30",
        "2021-12-31T00:00:00+05:30",
        "2022-01-31T00:00:00+05:30",
        "2022-02-28T00:00:00+05:30",
    ]
    assert isos(prev_n(s, at("2022-03-01T00:00:00+05:30"), 4)) == isos(fires[::-1])


def test_schedule_reports_its_expression() -> None:
    assert parse("  @Hourly ").expression == "@Hourly"
    assert parse("0 9 * * MON-FRI").expression == "0 9 * * MON-FRI"


@pytest.mark.parametrize(
    ("expr", "after", "before"),
    [
        # No 29 February between 9997 and the end of datetime (year 9999) ...
        ("0 0 29 2 *", datetime(9997, 1, 1, tzinfo=UTC), None),
        # ... nor between the start of datetime (year 1) and 0003.
        ("0 0 29 2 *", None, datetime(3, 1, 1, tzinfo=UTC)),
        ("@every 1h", datetime(9999, 12, 31, 23, 30, tzinfo=UTC), None),
    ],
)
def test_search_ends_with_an_error_not_a_loop(
    expr: str, after: datetime | None, before: datetime | None
) -> None:
    """C7: a search that finds nothing raises (here: the datetime range runs out)."""
    s = parse(expr)
    if after is not None:
        with pytest.raises(ValidationError):
            s.next_after(after)
        assert list(s.iter_after(after)) == []
    if before is not None:
        with pytest.raises(ValidationError):
            s.prev_before(before)
        assert list(s.iter_before(before)) == []
