"""Parsing tables for rules C1-C5, C7 and C8: what is accepted, what each field holds
(`CronField.values` etc.), and how errors name the field and the offending token."""

from __future__ import annotations

import sys
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from trio_sched import SchedulerError
from trio_sched.cron import MAX_EXPRESSION_LENGTH, CronField, Schedule, ValidationError, parse
from trio_sched.cron._parse import _parse_cached

FIELD_ORDER = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
# Where a field's text goes in a 5-field expression ("second" uses a 6-field one).
_BASE5 = ["0", "0", "*", "*", "*"]


def with_field(field: str, text: str) -> str:
    """An expression whose only interesting field is `field` = `text`."""
    if field == "second":
        return " ".join([text, *_BASE5])
    parts = list(_BASE5)
    parts[FIELD_ORDER.index(field) - 1] = text
    return " ".join(parts)


def field_of(s: Schedule, name: str) -> CronField:
    return s.fields[FIELD_ORDER.index(name)]


# ------------------------------------------------------------------ C1 field counts


@pytest.mark.parametrize(
    ("expr", "six"),
    [
        ("* * * * *", False),
        ("0 9 * * MON-FRI", False),
        ("* * * * * *", True),
        ("30 0 9 * * MON-FRI", True),
        ("  0 9 * * *  ", False),  # surrounding whitespace is not a field
        ("0  9 *  * *", False),  # runs of spaces separate fields like one space
    ],
)
def test_c1_five_and_six_fields_accepted(expr: str, six: bool) -> None:
    s = parse(expr)
    assert s.expression == expr.strip()
    assert len(s.fields) == 6
    assert [f.name for f in s.fields] == list(FIELD_ORDER)
    assert s.fields[0].implied is (not six)
    assert s.interval is None


def test_c1_five_fields_imply_second_zero() -> None:
    second = parse("*/5 * * * *").fields[0]
    assert second.values == (0,)
    assert second.implied
    assert second.text == "0"


def test_c1_six_fields_lead_with_seconds() -> None:
    s = parse("15,45 30 9 * * *")
    assert s.fields[0].values == (15, 45)
    assert not s.fields[0].implied
    assert s.fields[1].values == (30,)
    assert s.fields[2].values == (9,)


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "   ",
        "*",
        "* * * *",
        "* * * * * * *",
        "0 0 0 1 1 * 2025",
        "* * * * * * * *",
    ],
)
def test_c1_wrong_field_counts_rejected(expr: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse(expr)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, SchedulerError)


# ------------------------------------------------------------------ C2 / C3 elements


VALUE_TABLE = [
    # (field, text, values)
    ("minute", "*", tuple(range(60))),
    ("minute", "7", (7,)),
    ("minute", "0", (0,)),
    ("minute", "59", (59,)),
    ("minute", "10-15", (10, 11, 12, 13, 14, 15)),
    ("minute", "5-5", (5,)),  # A-A is the single value A
    ("minute", "*/15", (0, 15, 30, 45)),
    ("minute", "*/1", tuple(range(60))),
    ("minute", "10-30/7", (10, 17, 24)),
    ("minute", "5/15", (5, 20, 35, 50)),  # N/S = N-max/S
    ("minute", "59/15", (59,)),
    ("minute", "1,2,3", (1, 2, 3)),
    ("minute", "3,1,2", (1, 2, 3)),  # sorted
    ("minute", "5,5,5", (5,)),  # deduplicated
    ("minute", "1-3,10-12", (1, 2, 3, 10, 11, 12)),
    ("minute", "*/20,7", (0, 7, 20, 40)),
    ("minute", "0-59", tuple(range(60))),
    ("second", "*/20", (0, 20, 40)),
    ("second", "59", (59,)),
    ("second", "10/25", (10, 35)),
    ("hour", "*/5", (0, 5, 10, 15, 20)),
    ("hour", "23", (23,)),
    ("hour", "9-17/4", (9, 13, 17)),
    ("hour", "22/1", (22, 23)),
    ("hour", "0-0", (0,)),
    ("day-of-month", "*/10", (1, 11, 21, 31)),
    ("day-of-month", "3/10", (3, 13, 23)),
    ("day-of-month", "31", (31,)),
    ("day-of-month", "1-7,15", (1, 2, 3, 4, 5, 6, 7, 15)),
    ("day-of-month", "29-29", (29,)),
    ("month", "*/5", (1, 6, 11)),
    ("month", "2/5", (2, 7, 12)),
    ("month", "JAN", (1,)),
    ("month", "dec", (12,)),
    ("month", "Jun", (6,)),
    ("month", "jan-mar", (1, 2, 3)),
    ("month", "JAN,MAR-APR", (1, 3, 4)),
    ("month", "FEB-Feb", (2,)),
    ("month", "JAN/3", (1, 4, 7, 10)),
    ("month", "JAN-DEC/6", (1, 7)),
    ("month", "3-3", (3,)),
    ("month", "mar-5", (3, 4, 5)),
    ("day-of-week", "*", (0, 1, 2, 3, 4, 5, 6)),
    ("day-of-week", "0", (0,)),
    ("day-of-week", "7", (0,)),  # C3: 0 and 7 are both Sunday
    ("day-of-week", "0,7", (0,)),
    ("day-of-week", "1-5", (1, 2, 3, 4, 5)),
    ("day-of-week", "MON-FRI", (1, 2, 3, 4, 5)),
    ("day-of-week", "mon-fri", (1, 2, 3, 4, 5)),
    ("day-of-week", "sun,Mon,TUE", (0, 1, 2)),
    ("day-of-week", "sat", (6,)),
    ("day-of-week", "5-7", (0, 5, 6)),
    ("day-of-week", "5-0", (0, 5, 6)),  # X-0 = X through Sunday
    ("day-of-week", "FRI-SUN", (0, 5, 6)),  # X-SUN likewise
    ("day-of-week", "SAT-0", (0, 6)),
    ("day-of-week", "1-0", (0, 1, 2, 3, 4, 5, 6)),
    ("day-of-week", "*/2", (0, 2, 4, 6)),
    ("day-of-week", "1/2", (0, 1, 3, 5)),  # 1-7/2 = 1,3,5,7 and 7 is Sunday
    ("day-of-week", "2/5", (0, 2)),  # 2,7
    ("day-of-week", "0/3", (0, 3, 6)),
    ("day-of-week", "MON-FRI/2", (1, 3, 5)),
    ("day-of-week", "1-7/3", (0, 1, 4)),  # 1,4,7
    ("day-of-week", "5-5", (5,)),
    ("day-of-week", "SUN-SUN", (0,)),
    ("day-of-week", "0-7", (0, 1, 2, 3, 4, 5, 6)),
]


@pytest.mark.parametrize(("field", "text", "values"), VALUE_TABLE)
def test_c2_c3_field_values(field: str, text: str, values: tuple[int, ...]) -> None:
    expr = with_field(field, text)
    f = field_of(parse(expr), field)
    assert f.name == field
    assert f.text == text
    assert f.values == values
    assert f.star is text.startswith("*")
    assert not f.implied


@pytest.mark.parametrize(
    ("field", "text", "star"),
    [
        ("day-of-month", "*", True),
        ("day-of-month", "*/2", True),
        ("day-of-month", "*/10,5", True),
        ("day-of-month", "1-31", False),
        ("day-of-month", "5,*/10", False),  # star means the text *starts* with '*'
        ("day-of-week", "*", True),
        ("day-of-week", "*/1", True),
        ("day-of-week", "0-7", False),
        ("day-of-week", "MON,*", False),
        ("minute", "*/5", True),
        ("hour", "0-23", False),
    ],
)
def test_c6_star_is_about_the_text(field: str, text: str, star: bool) -> None:
    assert field_of(parse(with_field(field, text)), field).star is star


def test_day_of_week_in_a_star_list() -> None:
    # '*' may appear inside a list like any element: the union is every day.
    f = field_of(parse("0 0 * * MON,*"), "day-of-week")
    assert f.values == (0, 1, 2, 3, 4, 5, 6)


# ------------------------------------------------------------------ C4 nicknames


NICKNAME_TABLE = [
    ("@yearly", ("0", "0", "1", "1", "*"), True),
    ("@annually", ("0", "0", "1", "1", "*"), True),
    ("@monthly", ("0", "0", "1", "*", "*"), True),
    ("@weekly", ("0", "0", "*", "*", "0"), True),
    ("@daily", ("0", "0", "*", "*", "*"), True),
    ("@midnight", ("0", "0", "*", "*", "*"), True),
    ("@hourly", ("0", "*", "*", "*", "*"), False),
]


@pytest.mark.parametrize(("nick", "texts", "fixed"), NICKNAME_TABLE)
@pytest.mark.parametrize("spelling", ["lower", "upper", "title"])
def test_c4_nicknames(nick: str, texts: tuple[str, ...], fixed: bool, spelling: str) -> None:
    written = getattr(nick, spelling)()
    s = parse(written)
    assert s.expression == written
    assert s.interval is None
    assert s.fixed is fixed
    assert s.fields[0].implied
    assert s.fields[0].values == (0,)
    assert tuple(f.text for f in s.fields[1:]) == texts
    equivalent = parse(" ".join(texts))
    assert [f.values for f in s.fields] == [f.values for f in equivalent.fields]


EVERY_TABLE = [
    ("@every 250ms", timedelta(milliseconds=250)),
    ("@every 90s", timedelta(seconds=90)),
    ("@every 1h30m", timedelta(hours=1, minutes=30)),
    ("@every 1.5s", timedelta(seconds=1.5)),
    ("@every 1.5h", timedelta(minutes=90)),
    ("@every 2m", timedelta(minutes=2)),
    ("@every 1m30s", timedelta(seconds=90)),
    ("@every 1h1m1s1ms", timedelta(hours=1, minutes=1, seconds=1, milliseconds=1)),
    ("@every 0.5m", timedelta(seconds=30)),
    ("@every 24h", timedelta(days=1)),
    ("@every 100h", timedelta(hours=100)),
    ("@EVERY 5s", timedelta(seconds=5)),
]


@pytest.mark.parametrize(("expr", "interval"), EVERY_TABLE)
def test_c4_every_durations(expr: str, interval: timedelta) -> None:
    s = parse(expr)
    assert s.interval == interval
    assert s.fields == ()
    assert s.fixed is False
    assert s.expression == expr


@pytest.mark.parametrize(
    "expr",
    [
        "@every",
        "@every ",
        "@every 0s",
        "@every 0ms",
        "@every 0h0m0s",
        "@every -5s",
        "@every 5",
        "@every s",
        "@every 1d",
        "@every 1w",
        "@every 1.5",
        "@every 5 s",
        "@every five seconds",
        "@every 1h 30m",
        "@reboot",
        "@REBOOT",
        "@fortnightly",
        "@",
        "@daily extra",
        "@hourly *",
    ],
)
def test_c4_bad_nicknames_and_durations(expr: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse(expr)
    assert info.value.expression == expr.strip()


# ------------------------------------------------------------------ C5 extensions


def test_c5_last_day_of_month() -> None:
    dom = field_of(parse("0 0 L * *"), "day-of-month")
    assert dom.last
    assert not dom.last_weekday
    assert field_of(parse("0 0 l * *"), "day-of-month").last


def test_c5_last_weekday_of_month() -> None:
    dom = field_of(parse("0 0 LW * *"), "day-of-month")
    assert dom.last_weekday
    assert not dom.last
    assert field_of(parse("0 0 lw * *"), "day-of-month").last_weekday


@pytest.mark.parametrize(
    ("text", "last_of", "nth"),
    [
        ("5L", (5,), ()),
        ("5l", (5,), ()),
        ("0L", (0,), ()),
        ("7L", (0,), ()),  # 7 is Sunday here too
        ("5#3", (), ((5, 3),)),
        ("1#1", (), ((1, 1),)),
        ("7#2", (), ((0, 2),)),
        ("1#5", (), ((1, 5),)),
    ],
)
def test_c5_day_of_week_extensions(
    text: str, last_of: tuple[int, ...], nth: tuple[tuple[int, int], ...]
) -> None:
    dow = field_of(parse(f"0 0 * * {text}"), "day-of-week")
    assert tuple(dow.last_of) == last_of
    assert tuple(dow.nth) == nth
    assert dow.text == text


def test_plain_fields_carry_no_extension_flags() -> None:
    s = parse("0 0 1 * MON")
    dom, dow = field_of(s, "day-of-month"), field_of(s, "day-of-week")
    assert not dom.last
    assert not dom.last_weekday
    assert not dow.last_of
    assert not dow.nth


# ------------------------------------------------------------------ C10 fixed flag


@pytest.mark.parametrize(
    ("expr", "fixed"),
    [
        ("30 2 * * *", True),
        ("0 0-23 * * *", True),
        ("0,30 1-5 * * *", True),
        ("*/30 * * * *", False),
        ("0 * * * *", False),
        ("0 */2 * * *", False),
        ("* 2 * * *", False),
        ("*/10 30 2 * * *", True),  # seconds do not count
        ("0 */5 * * * *", False),
        ("5 4 * * SUN", True),
        ("@daily", True),
        ("@hourly", False),
        ("@every 1h", False),
    ],
)
def test_c10_fixed_flag(expr: str, fixed: bool) -> None:
    assert parse(expr).fixed is fixed


# ------------------------------------------------------------------ tz argument


def test_tz_default_is_utc_and_names_or_tzinfo_accepted() -> None:
    assert parse("* * * * *").tz.utcoffset(None) == timedelta(0)
    berlin = parse("* * * * *", tz="Europe/Berlin").tz
    assert isinstance(berlin, ZoneInfo)
    assert berlin.key == "Europe/Berlin"
    given = ZoneInfo("Asia/Kolkata")
    assert parse("* * * * *", tz=given).tz is given


def test_unknown_zone_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        parse("* * * * *", tz="Mars/Olympus_Mons")


# ------------------------------------------------------------------ C2/C3/C5/C8 errors

# (expression, field, acceptable tokens). The token may be the whole element or the
# part of it that is wrong; either way it must be found at .position in .expression.
ERROR_TABLE = [
    ("60 * * * *", "minute", ("60",)),
    ("* 24 * * *", "hour", ("24",)),
    ("0 0 32 * *", "day-of-month", ("32",)),
    ("0 0 0 * *", "day-of-month", ("0",)),
    ("0 0 * 13 *", "month", ("13",)),
    ("0 0 * 0 *", "month", ("0",)),
    ("0 0 * * 8", "day-of-week", ("8",)),
    ("60 * * * * *", "second", ("60",)),
    ("* 60 * * * *", "minute", ("60",)),
    ("0 0 1-32 * *", "day-of-month", ("1-32", "32")),
    ("0 0 * * 1-8", "day-of-week", ("1-8", "8")),
    # descending ranges (only day-of-week X-0 / X-SUN is allowed)
    ("0 0 5-1 * *", "day-of-month", ("5-1",)),
    ("30-10 * * * *", "minute", ("30-10",)),
    ("0 0 * DEC-JAN *", "month", ("DEC-JAN",)),
    ("0 0 * * 5-1", "day-of-week", ("5-1",)),
    ("0 0 * * FRI-MON", "day-of-week", ("FRI-MON",)),
    # steps
    ("*/0 * * * *", "minute", ("*/0", "0")),
    ("0 0 1-10/0 * *", "day-of-month", ("1-10/0", "0")),
    # names where they do not belong, unknown names
    ("0 0 * * JAN", "day-of-week", ("JAN",)),
    ("0 0 * MON *", "month", ("MON",)),
    ("0 0 * FOO *", "month", ("FOO",)),
    ("0 0 * * FRIDAY", "day-of-week", ("FRIDAY",)),
    ("0 MON * * *", "hour", ("MON",)),
    # C5: unsupported extensions, each named
    ("0 0 ? * MON", "day-of-month", ("?",)),
    ("0 0 * * ?", "day-of-week", ("?",)),
    ("0 0 15W * *", "day-of-month", ("15W",)),
    ("0 0 W * *", "day-of-month", ("W",)),
    ("0 0 L-3 * *", "day-of-month", ("L-3",)),
    ("0 0 5L * *", "day-of-month", ("5L",)),
    ("0 0 * * L", "day-of-week", ("L",)),
    ("0 0 * * LW", "day-of-week", ("LW",)),
    ("0 0 * * 5#0", "day-of-week", ("5#0", "0")),
    ("0 0 * * 5#6", "day-of-week", ("5#6", "6")),
    ("0 0 * * 8#1", "day-of-week", ("8#1", "8")),
    ("0 0 * * 9L", "day-of-week", ("9L", "9")),
    ("H * * * *", "minute", ("H",)),
    ("0 H * * *", "hour", ("H",)),
    ("R * * * *", "minute", ("R",)),
    ("0 0 L * 5L-6", "day-of-week", ("5L-6", "5L")),
]


@pytest.mark.parametrize(("expr", "field", "tokens"), ERROR_TABLE)
def test_c8_errors_name_field_and_token(expr: str, field: str, tokens: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        parse(expr)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.field == field
    assert err.token in tokens
    assert err.expression == expr
    assert err.position is not None
    assert expr[err.position : err.position + len(err.token)] == err.token
    assert field in err.message
    assert str(err) == err.message
    if err.token:
        assert err.token in err.message


@pytest.mark.parametrize(
    ("expr", "field"),
    [
        ("-1 * * * *", "minute"),
        ("*/ * * * *", "minute"),
        ("/5 * * * *", "minute"),
        ("*/-1 * * * *", "minute"),
        ("1//2 * * * *", "minute"),
        ("1-2-3 * * * *", "minute"),
        ("1,,2 * * * *", "minute"),
        ("1, * * * *", "minute"),
        ("0 0 1.5 * *", "day-of-month"),
        ("0 0 * * 1#", "day-of-week"),
        ("0 0 * * #2", "day-of-week"),
        ("0 0 * * 1##1", "day-of-week"),
        ("0 0 * * \u00b9", "day-of-week"),
        ("0 0 * * \u0661", "day-of-week"),  # Arabic-Indic digit one is not a cron digit
    ],
)
def test_c8_malformed_elements(expr: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse(expr)
    err = info.value
    assert err.field == field
    assert field in err.message
    if err.token is not None and err.position is not None:
        assert expr[err.position : err.position + len(err.token)] == err.token


@pytest.mark.parametrize(
    ("expr", "field", "token", "position"),
    [
        ("0 0 32 * *", "day-of-month", "32", 4),
        ("61 * * * *", "minute", "61", 0),
        ("0 0 * 13 *", "month", "13", 6),
        ("0 0 * * 1,2,9", "day-of-week", "9", 12),
        ("5 4 3 2 1 8", "day-of-week", "8", 10),
        ("0 25 1 * *", "hour", "25", 2),
        ("0 0 ? * *", "day-of-month", "?", 4),
        ("0  0  15W  *  *", "day-of-month", "15W", 6),
    ],
)
def test_c8_exact_token_and_position(expr: str, field: str, token: str, position: int) -> None:
    with pytest.raises(ValidationError) as info:
        parse(expr)
    assert (info.value.field, info.value.token, info.value.position) == (field, token, position)


def test_c8_documented_message() -> None:
    with pytest.raises(ValidationError) as info:
        parse("0 0 32 * *")
    assert info.value.message == "day-of-month: 32 out of range 1-31 in '0 0 32 * *'"


def test_c8_year_field_is_named() -> None:
    with pytest.raises(ValidationError) as info:
        parse("0 0 0 1 1 * 2030")
    assert "2030" in info.value.message or info.value.token == "2030"


def test_c8_reboot_is_named() -> None:
    with pytest.raises(ValidationError) as info:
        parse("@reboot")
    assert "@reboot" in info.value.message


def test_c8_position_is_relative_to_the_stripped_expression() -> None:
    with pytest.raises(ValidationError) as info:
        parse("   0 0 32 * *  ")
    err = info.value
    assert err.expression == "0 0 32 * *"
    assert err.position == 4


# ------------------------------------------------------------------ C7 impossible


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 30 2 *",
        "0 0 31 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 30,31 2 *",
        "0 0 31 APR *",
        "0 0 30 2 */2",  # day-of-week is star, so both must match: still never
        "0 0 31 4 *,1",  # likewise ('*,1' starts with '*')
        "0 0 0 30 2 *",
    ],
)
def test_c7_never_firing_expressions_rejected_at_parse(expr: str) -> None:
    with pytest.raises(ValidationError):
        parse(expr)


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 29 2 *",  # leap years only, but it fires
        "0 0 30 2 MON",  # neither day field is star: Mondays in February match
        "0 0 L 2 *",
        "0 0 * 2 1#5",  # a fifth Monday in February: next one is 2044-02-29
        "0 0 31 * *",
        "0 0 30,31 1,2 *",
    ],
)
def test_c7_rare_but_possible_expressions_accepted(expr: str) -> None:
    parse(expr)


# ------------------------------------------------------------------ C8 size limits


def test_c8_expressions_up_to_the_length_limit_parse() -> None:
    longest = "00" + ",0" * 495 + " * * * *"
    assert len(longest) == MAX_EXPRESSION_LENGTH == 1000
    assert field_of(parse(longest), "minute").values == (0,)
    # Surrounding whitespace is not part of the expression (it is stripped first).
    assert parse(f"   {longest}\n").expression == longest


@pytest.mark.parametrize("extra", [1, 2_000_000])
def test_c8_longer_expressions_are_refused_before_parsing_or_caching(extra: int) -> None:
    # The minute list grows by `extra` characters ("00,0,...,0,000...0").
    expr = "00" + ",0" * 495 + "," + "0" * (extra - 1) + " * * * *"
    length = 1000 + extra
    assert len(expr) == length
    before = _parse_cached.cache_info()
    with pytest.raises(ValidationError) as info:
        parse(expr)
    err = info.value
    assert err.message.startswith(
        f"expression is {length:,} characters long, more than the limit of 1,000: '00,0,0,"
    )
    assert len(err.message) < 200  # names the start of the text, does not repeat it
    assert err.expression == expr
    assert _parse_cached.cache_info() == before  # not even looked up


def test_c8_a_huge_every_is_a_validation_error() -> None:
    # 5,000 digits: refused by the length limit (int() alone would raise a bare
    # ValueError past Python's 4,300-digit conversion limit).
    expr = "@every " + "1" * 5000 + "s"
    with pytest.raises(ValidationError, match=r"^expression is 5,008 characters long"):
        parse(expr)


def test_c8_every_digits_past_the_int_conversion_limit_name_the_duration() -> None:
    # Inside the length limit, a lowered int-to-str digit limit (640 is the smallest
    # Python allows) still turns into the usual @every error, not a bare ValueError.
    expr = "@every " + "1" * 700 + "ms"
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        with pytest.raises(ValidationError) as info:
            parse(expr)
    finally:
        sys.set_int_max_str_digits(limit)
    assert info.value.field == "@every"
    assert "has a number with too many digits" in info.value.message
    assert info.value.expression == expr
