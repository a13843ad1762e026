"""Health checks for lock providers, jobs runtimes and the scheduler loop.

Rules:
- H1 A `HealthChecker` is an async callable returning a frozen `HealthResult`; it never
  raises for an unhealthy target (the failure is the result), only for cancellation.
- H2 Every check is bounded by its ``timeout`` (seconds); a check that times out is
  unhealthy with ``error="timed out after ...s"``.
- H3 ``latency`` is the check's duration in seconds on Trio's clock, so checks run on
  a `trio.testing.MockClock` report virtual time.
- H4 The scheduler check is healthy when the scheduler runs and its loop lag (how late
  the shared timer serves an entry that is due now, measured by a probe) is at most
  ``max_lag`` seconds.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, final

import trio

from trio_sched._errors import InvalidArgumentError
from trio_sched._runtime import Scheduler
from trio_sched.jobs._job import JobsRuntime
from trio_sched.locks._protocol import LockProvider

__all__ = [
    "HealthChecker",
    "HealthResult",
    "jobs_runtime_health_checker",
    "lock_provider_health_checker",
    "scheduler_health_checker",
]


@final
@dataclass(frozen=True, slots=True)
class HealthResult:
    """The outcome of one check (H1, H3)."""

    name: str
    healthy: bool
    error: str | None
    latency: float


class HealthChecker(Protocol):
    """An async callable running one check (H1)."""

    @property
    def name(self) -> str: ...

    async def __call__(self) -> HealthResult: ...


@final
class _Checker:
    __slots__ = ("_name", "_probe", "_timeout")

    def __init__(self, name: str, probe: Callable[[], Awaitable[str | None]], timeout: float):
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"health check name must be a non-empty str: {name!r}")
        if isinstance(timeout, bool) or not (
            isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0
        ):
            raise InvalidArgumentError(f"timeout must be finite seconds > 0, got {timeout!r}")
        self._name = name
        self._probe = probe
        self._timeout = float(timeout)

    @property
    def name(self) -> str:
        return self._name

    async def __call__(self) -> HealthResult:
        """Run the check (H1, H2). A checkpoint; cancellation propagates."""
        started = trio.current_time()
        error: str | None
        with trio.move_on_after(self._timeout) as scope:
            try:
                error = await self._probe()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        if scope.cancelled_caught:
            error = f"timed out after {self._timeout}s"
        return HealthResult(
            name=self._name,
            healthy=error is None,
            error=error,
            latency=trio.current_time() - started,
        )

    def __repr__(self) -> str:
        return f"<HealthChecker {self._name!r} timeout={self._timeout}>"


def lock_provider_health_checker(
    name: str, provider: LockProvider, timeout: float = 5.0
) -> HealthChecker:
    """Check that `provider` answers ``health_check`` within `timeout` seconds."""

    async def probe() -> str | None:
        await provider.health_check()
        return None

    return _Checker(name, probe, timeout)


def jobs_runtime_health_checker(
    name: str, runtime: JobsRuntime, timeout: float = 5.0
) -> HealthChecker:
    """Check that `runtime` answers ``health_check`` within `timeout` seconds."""

    async def probe() -> str | None:
        await runtime.health_check()
        return None

    return _Checker(name, probe, timeout)


def scheduler_health_checker(
    name: str, scheduler: Scheduler, *, max_lag: float = 0.5, timeout: float = 5.0
) -> HealthChecker:
    """Check that `scheduler` runs and its timer loop lag is at most `max_lag` (H4)."""

    async def probe() -> str | None:
        if not scheduler.running:
            return f"scheduler is {scheduler.statistics().state}"
        lag = await scheduler.measure_loop_lag()
        if lag > max_lag:
            return f"loop lag {lag * 1000:.1f} ms exceeds {max_lag * 1000:.1f} ms"
        return None

    return _Checker(name, probe, timeout)
