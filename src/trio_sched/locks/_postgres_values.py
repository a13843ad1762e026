"""What goes into the lock statements and what comes out: parameters and row values.

Parameters are checked before they are sent; a row's values are checked as they are read,
so a column of an unexpected type raises `SchedulerError` instead of travelling on.

Rules (of the lock provider `trio_sched.locks.postgres`, numbered with its PG1-PG9):
- PG7 Watermark values and nominal instants are ints within Postgres' ``bigint``
  range; others raise `InvalidArgumentError`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from trio_sched._errors import InvalidArgumentError, SchedulerError
from trio_sched.locks._protocol import AcquireRequest, check_request

__all__ = [
    "as_float",
    "as_int",
    "as_utc",
    "batch_params",
    "bigint",
]

_BIGINT_MIN: Final = -(2**63)
_BIGINT_MAX: Final = 2**63 - 1


def batch_params(
    requests: Sequence[AcquireRequest],
) -> tuple[dict[str, list[Any]], list[str], list[str]]:
    """The parameters of `LockStatements.acquire_batch` for `requests` (PG4: one array
    per column), with their keys and the tokens generated for them here (PG6). Each
    request is checked first (`check_request`, PG7); no I/O."""
    keys: list[str] = []
    tokens: list[str] = []
    ttls: list[float] = []
    keeps: list[float] = []
    marks: list[str | None] = []
    nominals: list[int] = []
    slacks: list[int] = []
    for request in requests:
        keep = check_request(request)
        if request.watermark is not None and not isinstance(request.watermark, str):
            raise InvalidArgumentError(
                f"watermark must be a str or None, got {request.watermark!r}"
            )
        keys.append(request.key)
        tokens.append(secrets.token_hex(16))
        ttls.append(float(request.ttl))
        keeps.append(float(keep))
        marks.append(request.watermark)
        nominals.append(bigint("nominal_ms", request.nominal_ms))
        slacks.append(bigint("watermark_slack_ms", request.watermark_slack_ms))
    params: dict[str, list[Any]] = {
        "keys": keys,
        "tokens": tokens,
        "ttls": ttls,
        "keeps": keeps,
        "marks": marks,
        "nominals": nominals,
        "slacks": slacks,
    }
    return params, keys, tokens


def bigint(what: str, value: object) -> int:
    """PG7: an int in Postgres' bigint range (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be an int, got {value!r}")
    if not _BIGINT_MIN <= value <= _BIGINT_MAX:
        raise InvalidArgumentError(f"{what} is outside Postgres' bigint range: {value!r}")
    return value


def as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchedulerError(f"postgres lock provider: expected an integer, got {value!r}")
    return value


def as_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchedulerError(f"postgres lock provider: expected a number, got {value!r}")
    return float(value)


def as_utc(value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise SchedulerError(f"postgres lock provider: expected a timestamptz, got {value!r}")
    return value.astimezone(UTC)
