"""The input checks and the millisecond form of `Paused` records (rule L9), shared by
every `PauseStore`.

Every provider checks its input here before any I/O, so a bad call raises
`InvalidArgumentError` and changes nothing (not even the valid names of the same call):
names are non-empty str; ``by`` a non-empty str of at most `MAX_BY` characters and
``reason`` ``None`` or a str of at most `MAX_REASON`, neither with a NUL (Postgres' text
cannot hold one) nor a lone surrogate (no backend stores text that is not UTF-8);
``since`` an aware datetime, kept floored to the millisecond in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from trio_sched._errors import InvalidArgumentError
from trio_sched.locks._protocol import Paused

__all__ = [
    "MAX_BY",
    "MAX_REASON",
    "check_names",
    "check_states",
    "from_epoch_ms",
    "to_epoch_ms",
]

MAX_BY: Final = 200
MAX_REASON: Final = 1_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def check_names(names: Sequence[str]) -> list[str]:
    """`names` as a list, each a non-empty str, else `InvalidArgumentError`."""
    wanted = list(names)
    for name in wanted:
        _check_name(name)
    return wanted


def check_states(states: Mapping[str, Paused | None]) -> dict[str, Paused | None]:
    """`states` checked (see the module header), each record with its ``since`` floored
    to the millisecond in UTC: what the provider stores and answers."""
    checked: dict[str, Paused | None] = {}
    for name, state in states.items():
        _check_name(name)
        checked[name] = None if state is None else _check_record(name, state)
    return checked


def to_epoch_ms(since: datetime) -> int:
    """An aware datetime as whole epoch milliseconds, floored (exact integer math)."""
    return (since - _EPOCH) // _MS


def from_epoch_ms(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return _EPOCH + ms * _MS


def _storable(text: str) -> bool:
    """Whether every backend stores `text` as given: no NUL, valid UTF-8."""
    if "\0" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a pause record's name must be a non-empty str, got {name!r}")


def _check_record(name: str, state: object) -> Paused:
    if not isinstance(state, Paused):
        raise InvalidArgumentError(
            f"pause state of {name!r} must be a Paused or None, got {state!r}"
        )
    since, by, reason = state.since, state.by, state.reason
    if not isinstance(since, datetime) or since.tzinfo is None or since.utcoffset() is None:
        raise InvalidArgumentError(
            f"Paused.since of {name!r} must be an aware datetime, got {since!r}"
        )
    if not isinstance(by, str) or not by or len(by) > MAX_BY or not _storable(by):
        raise InvalidArgumentError(
            f"Paused.by of {name!r} must be a non-empty str of at most {MAX_BY} characters "
            f"without NUL, got {by!r}"
        )
    if reason is not None and (
        not isinstance(reason, str) or len(reason) > MAX_REASON or not _storable(reason)
    ):
        raise InvalidArgumentError(
            f"Paused.reason of {name!r} must be None or a str of at most {MAX_REASON} "
            f"characters without NUL, got {reason!r}"
        )
    try:
        floored = from_epoch_ms(to_epoch_ms(since))
    except OverflowError:  # within a day of datetime.min or .max: not in UTC's range
        raise InvalidArgumentError(
            f"Paused.since of {name!r} is outside the range of a UTC datetime: {since!r}"
        ) from None
    return Paused(floored, by, reason)
