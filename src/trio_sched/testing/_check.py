"""Small helpers shared by the conformance suites."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import NoReturn

__all__ = ["CheckFailed", "expect", "run_check", "unique_prefix"]


class CheckFailed(AssertionError):
    """A conformance check failed; the message names the suite and the check."""


def fail(suite: str, check: str, message: str) -> NoReturn:
    raise CheckFailed(f"{suite} [{check}]: {message}")


def expect(condition: bool, suite: str, check: str, message: str) -> None:
    # Explicit raise rather than `assert`: the suites must also fail under `python -O`.
    if not condition:
        fail(suite, check, message)


async def run_check(suite: str, check: str, body: Callable[[], Awaitable[None]]) -> None:
    """Run one check; an unexpected `Exception` becomes a `CheckFailed` naming it."""
    try:
        await body()
    except AssertionError:
        raise
    except Exception as exc:
        raise CheckFailed(f"{suite} [{check}]: unexpected {exc!r}") from exc


def unique_prefix(kind: str) -> str:
    """A fresh random prefix, so reruns and parallel runs never share keys."""
    return f"trio-sched-check:{kind}:{secrets.token_hex(8)}"
