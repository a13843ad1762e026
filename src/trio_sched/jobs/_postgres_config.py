"""`PostgresJobsConfig`: where and how a `PostgresJobs` talks to Postgres.

Its documented home is `trio_sched.jobs.postgres`, which re-exports it. It is checked
when built, by parsing alone (P6, P7 of `trio_sched._postgres_common`), and shows its DSN
redacted (P5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from trio_sched._errors import ValidationError
from trio_sched._postgres_common import TableName, check_dsn, check_timeout, redact_dsn

__all__ = ["PostgresJobsConfig"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresJobsConfig:
    """Where and how a `PostgresJobs` talks to Postgres.

    - ``url``: a libpq URL or ``key=value`` DSN, shown redacted everywhere (P5).
    - ``table``: the jobs table, ``name`` or ``schema.name`` (P6, PJ1).
    - ``visibility_timeout``: seconds a claimed job stays leased without an ``extend``
      before it is redelivered (W2). ``max_attempts``: deliveries before dead-lettering.
    - ``operation_timeout`` and ``max_connections``: as for the lock provider (P1, P2).
      The listening connection is one more, outside ``max_connections``.
    - ``listen``: wake waiting claims with LISTEN/NOTIFY (PJ5); ``False`` polls only.
    - ``poll_interval``: longest single wait of a claim before it looks again even
      without a notification (the fallback poll, PJ5).
    - ``dedupe_retention``: seconds a completed job's idempotency key is remembered.
    - ``cleanup_interval``: seconds between amortised cleanups of old ``done`` rows,
      ``None`` for none (then only `PostgresJobs.cleanup_done`); ``cleanup_batch`` the
      most rows one cleanup deletes (PJ3).
    - ``synchronous_commit``: wait for each commit's disk flush (as for the locks).
    """

    url: str = "postgresql://127.0.0.1/test"
    table: str = "trio_sched_jobs"
    visibility_timeout: float = 30.0
    max_attempts: int = 5
    operation_timeout: float = 3.0
    max_connections: int = 8
    listen: bool = True
    poll_interval: float = 5.0
    dedupe_retention: float = 7 * 24 * 3600.0
    cleanup_interval: float | None = 60.0
    cleanup_batch: int = 1000
    synchronous_commit: bool = True

    def __post_init__(self) -> None:
        check_dsn(self.url)
        TableName.parse(self.table)
        for name in ("visibility_timeout", "operation_timeout", "poll_interval"):
            check_timeout(name, getattr(self, name))
        check_timeout("dedupe_retention", self.dedupe_retention)
        if self.cleanup_interval is not None:
            check_timeout("cleanup_interval", self.cleanup_interval)
        for name in ("max_attempts", "max_connections", "cleanup_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name}: expected an int >= 1, got {value!r}", field=name)
        for name in ("listen", "synchronous_commit"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(f"{name}: expected a bool", field=name)

    def __repr__(self) -> str:
        return (
            f"PostgresJobsConfig(url={redact_dsn(self.url)!r}, table={self.table!r}, "
            f"visibility_timeout={self.visibility_timeout!r}, "
            f"max_attempts={self.max_attempts!r}, "
            f"operation_timeout={self.operation_timeout!r}, listen={self.listen!r}, "
            f"poll_interval={self.poll_interval!r})"
        )

    __str__ = __repr__
