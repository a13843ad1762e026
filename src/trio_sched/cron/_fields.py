"""Parse one cron field into a `CronField` (rules C1-C3, C5, C8).

Grammar of a field: a comma-separated list of elements, each one of

    *    */S    N    N/S    A-B    A-B/S        (S >= 1; N/S means N-max/S)
    L    LW                                     (day-of-month only)
    nL   n#k                                    (day-of-week only; k in 1-5)

Values are decimal numbers or, for month and day-of-week, three-letter English names
(case-insensitive). Ranges must ascend, except day-of-week `X-0` / `X-SUN`, which means
X through Sunday (0 is read as 7 there). Day-of-week 7 is Sunday, like 0.

Everything else is rejected with a `ValidationError` whose message names the field and
the offending token, and whose `position` points at the token inside the expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NoReturn

from trio_sched._errors import ValidationError

__all__ = ["FIELD_NAMES", "CronField", "parse_field"]

FIELD_NAMES: Final = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
SECOND, MINUTE, HOUR, DOM, MONTH, DOW = range(6)

_BOUNDS: Final = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTH_NAMES: Final = {
    name: i + 1
    for i, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
_DAY_NAMES: Final = {
    name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
_NAMES: Final = {MONTH: _MONTH_NAMES, DOW: _DAY_NAMES}
# Longer digit strings cannot be in range; refusing them early keeps int() cheap.
_MAX_DIGITS: Final = 9


@dataclass(frozen=True, slots=True)
class CronField:
    """One parsed field of a cron expression.

    `values` holds the plain values, sorted and without duplicates; for day-of-week
    they are normalised to 0-6 (0 = Sunday). `star` is true when the field's text
    starts with ``*`` (the Vixie/cronie day rule, C6). `implied` marks the seconds
    field that a 5-field expression gets ("0"). The extension fields are empty unless
    used: `last` (day-of-month ``L``), `last_weekday` (``LW``), `last_of` (day-of-week
    ``nL``, weekdays 0-6) and `nth` (day-of-week ``n#k`` as ``(weekday, k)``).
    """

    name: str
    text: str
    values: tuple[int, ...]
    star: bool
    implied: bool = False
    last: bool = False
    last_weekday: bool = False
    last_of: tuple[int, ...] = ()
    nth: tuple[tuple[int, int], ...] = ()


class _FieldParser:
    """Parses one field; holds the context needed for precise error messages."""

    def __init__(self, index: int, text: str, expression: str, offset: int) -> None:
        self.index = index
        self.name = FIELD_NAMES[index]
        self.text = text
        self.expression = expression
        self.offset = offset
        self.lo, self.hi = _BOUNDS[index]

    def fail(self, what: str, token: str, at: int) -> NoReturn:
        shown = token if token else "(empty)"
        raise ValidationError(
            f"{self.name}: {shown} {what} in {self.expression!r}",
            field=self.name,
            token=token,
            expression=self.expression,
            position=self.offset + at,
        )

    def value(self, token: str, at: int) -> int:
        """A single value: digits or (month, day-of-week) a name."""
        names = _NAMES.get(self.index)
        if names is not None and token.upper() in names:
            return names[token.upper()]
        if not token.isdecimal() or not token.isascii():
            self.fail(self._explain_bad(token), token, at)
        if len(token) > _MAX_DIGITS or not self.lo <= int(token) <= self.hi:
            self.fail(f"out of range {self.lo}-{self.hi}", token, at)
        return int(token)

    def _explain_bad(self, token: str) -> str:
        upper = token.upper()
        if token == "":
            return "is an empty value"
        if upper == "?":
            return "is not supported (use '*')"
        if upper == "H" or upper.startswith("H("):
            return "is not supported (hashed values)"
        if upper == "R":
            return "is not supported (random values)"
        if self.index == DOM and upper.endswith("W"):
            return "is not supported (nearest weekday; only 'LW' is)"
        if self.index != DOW and ("#" in token or upper.endswith("L")):
            return "is only valid in day-of-week"
        if self.index != DOM and upper.startswith("L"):
            return "is only valid in day-of-month"
        return "is not a valid value"

    def step(self, token: str, at: int) -> int:
        if not token.isdecimal() or not token.isascii():
            self.fail("is not a valid step", token, at)
        if len(token) > _MAX_DIGITS:
            self.fail("is too large a step", token, at)
        step = int(token)
        if step < 1:
            self.fail("is not a valid step (must be >= 1)", token, at)
        return step

    def parse(self) -> CronField:
        values: set[int] = set()
        last = last_weekday = False
        last_of: set[int] = set()
        nth: set[tuple[int, int]] = set()
        at = 0
        for element in self.text.split(","):
            upper = element.upper()
            if self.index == DOM and upper in ("L", "LW"):
                if upper == "L":
                    last = True
                else:
                    last_weekday = True
            elif self.index == DOM and upper.startswith("L"):
                self.fail("is not supported (only 'L' and 'LW')", element, at)
            elif self.index == DOW and "#" in element:
                day_text, _, k_text = element.partition("#")
                day = self.value(day_text, at) % 7
                if not (k_text.isdecimal() and k_text.isascii() and len(k_text) == 1):
                    self.fail("is not a valid week number (1-5)", k_text, at + len(day_text) + 1)
                k = int(k_text)
                if not 1 <= k <= 5:
                    self.fail("is not a valid week number (1-5)", k_text, at + len(day_text) + 1)
                nth.add((day, k))
            elif self.index == DOW and upper.endswith("L") and len(element) > 1:
                last_of.add(self.value(element[:-1], at) % 7)
            else:
                values.update(self.element(element, at))
            at += len(element) + 1
        if self.index == DOW:
            values = {v % 7 for v in values}
        return CronField(
            name=self.name,
            text=self.text,
            values=tuple(sorted(values)),
            star=self.text.startswith("*"),
            last=last,
            last_weekday=last_weekday,
            last_of=tuple(sorted(last_of)),
            nth=tuple(sorted(nth)),
        )

    def element(self, element: str, at: int) -> range:
        """`*`, `*/S`, `N`, `N/S`, `A-B`, `A-B/S` as a range of raw values."""
        base, slash, step_text = element.partition("/")
        step = self.step(step_text, at + len(base) + 1) if slash else 1
        if base == "*":
            return range(self.lo, self.hi + 1, step)
        first_text, dash, last_text = base.partition("-")
        first = self.value(first_text, at)
        if not dash:
            return range(first, (self.hi if slash else first) + 1, step)
        last_at = at + len(first_text) + 1
        last = self.value(last_text, last_at)
        if self.index == DOW and last == 0 and first > 0:
            last = 7  # X-0 / X-SUN: X through Sunday
        if last < first:
            self.fail(f"is a descending range ({first} > {last})", base, at)
        return range(first, last + 1, step)


def parse_field(index: int, text: str, expression: str, offset: int) -> CronField:
    """Parse field number `index` (0 = second ... 5 = day-of-week).

    `offset` is where `text` starts inside `expression`, for error positions.
    """
    return _FieldParser(index, text, expression, offset).parse()
