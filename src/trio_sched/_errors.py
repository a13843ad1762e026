"""The error classes of trio-sched (listed in the API section of docs/runtime.md).

Every error raised by the library is a `SchedulerError`. Where a Python built-in class
fits, the error subclasses it too, so `except ValueError` keeps working for callers
who do not know this library. Backend driver exceptions are mapped to these classes at
the boundary and chained with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

__all__ = [
    "ClosedError",
    "ConflictError",
    "DataLossError",
    "InvalidArgumentError",
    "LeaseLostError",
    "NotFoundError",
    "NotInitializedError",
    "RetryableError",
    "SchedulerError",
    "ValidationError",
]


class SchedulerError(Exception):
    """Base class of every error raised by trio-sched."""


class ValidationError(SchedulerError, ValueError):
    """Invalid input: a cron expression, a task, a configuration value.

    For cron expressions, `field` names the field ("minute", "day-of-week", ...),
    `token` is the offending text, `expression` the whole expression and `position`
    the offset of `token` inside `expression` (so a caret can point at it). Each is
    ``None`` when it does not apply.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        token: str | None = None,
        expression: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.token = token
        self.expression = expression
        self.position = position


class ConflictError(SchedulerError):
    """A state conflict: a duplicate task name, an already-running scheduler, a
    duplicate idempotency key."""


class NotFoundError(SchedulerError, LookupError):
    """A named resource (a task, a queue) does not exist."""


class RetryableError(SchedulerError):
    """A transient failure (connection trouble, timeout) that is safe to retry."""


class DataLossError(RetryableError):
    """The backend lost data it had acknowledged: a server restarted empty, flushed, or
    (where the backend can tell) rolled back to an older state.

    Raised once per detection by the call that saw it, which changed nothing. Retrying
    is safe: the backend is usable again, under the protection its module documents (a
    lock provider refuses occurrences from before `detected_at` for a while). As a
    `RetryableError`, the scheduler reports it as an ``error`` event and retries (D8).
    `detected_at` is the instant (aware UTC, the server's clock) from which the backend
    holds the data again; `vanished` maps queue names to how many jobs this client
    knew to be pending there and that are gone (empty for a lock provider).
    """

    def __init__(
        self, message: str, *, detected_at: datetime, vanished: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(message)
        self.detected_at = detected_at
        self.vanished: Mapping[str, int] = MappingProxyType(dict(vanished or {}))

    def __reduce__(self) -> tuple[object, ...]:
        # The keyword-only fields (and a mappingproxy) would not survive pickle's default.
        return (_data_loss, (str(self), self.detected_at, dict(self.vanished)))


def _data_loss(message: str, detected_at: datetime, vanished: dict[str, int]) -> DataLossError:
    return DataLossError(message, detected_at=detected_at, vanished=vanished)


class InvalidArgumentError(SchedulerError, ValueError):
    """A caller or provider passed an argument that makes no sense."""


class NotInitializedError(SchedulerError):
    """A component was used before it was started or initialized."""


class ClosedError(SchedulerError):
    """A component was used after it was closed."""


class LeaseLostError(SchedulerError):
    """A lease could not be renewed: it expired or another holder took the key."""


# Shown in tracebacks and reprs as the public path (``trio_sched.ConflictError``), which
# is also where `trio_sched` re-exports them (pickling finds them there).
for _cls in (
    SchedulerError,
    ValidationError,
    ConflictError,
    NotFoundError,
    RetryableError,
    DataLossError,
    InvalidArgumentError,
    NotInitializedError,
    ClosedError,
    LeaseLostError,
):
    _cls.__module__ = "trio_sched"
del _cls


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is worth retrying: a `RetryableError` or an `OSError` (connection
    trouble, timeouts). The runtime's rule D8 and the watermark flush (M2) use it."""
    return isinstance(exc, RetryableError | OSError)
