"""`PostgresLockProviderConfig`: where and how a `PostgresLockProvider` talks to Postgres.

Its documented home is `trio_sched.locks.postgres`, which re-exports it. It is checked
when built, by parsing alone (P6, P7 of `trio_sched._postgres_common`), and shows its DSN
redacted (P5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import final

from trio_sched._errors import ValidationError
from trio_sched._postgres_common import TableName, check_dsn, check_timeout, redact_dsn

__all__ = ["PostgresLockProviderConfig"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresLockProviderConfig:
    """Where and how a `PostgresLockProvider` talks to Postgres.

    - ``url``: a libpq URL (``postgresql://user:password@host:5432/db``) or ``key=value``
      DSN. Shown redacted in every ``repr`` and message (P5).
    - ``table``: the lock table, ``name`` or ``schema.name`` (P6); the watermark table is
      ``<table>_watermarks`` next to it (PG1).
    - ``operation_timeout``: bound on every call in seconds (P2); also the server's
      ``statement_timeout`` for this provider's connections.
    - ``max_connections``: worker threads (and so connections) in use at once (P1).
    - ``cleanup_interval``: seconds between amortised cleanups of expired rows, ``None``
      for none (then only `PostgresLockProvider.cleanup_expired` cleans) (PG5).
    - ``cleanup_grace``: seconds a row stays after its expiry before cleanup deletes it.
    - ``cleanup_batch``: most rows one cleanup statement deletes.
    - ``synchronous_commit``: wait for each commit's disk flush (PG8); ``False`` trades
      durability across a server crash for latency.
    """

    url: str = "postgresql://127.0.0.1/test"
    table: str = "trio_sched_locks"
    operation_timeout: float = 3.0
    max_connections: int = 4
    cleanup_interval: float | None = 30.0
    cleanup_grace: float = 60.0
    cleanup_batch: int = 1000
    synchronous_commit: bool = True

    def __post_init__(self) -> None:
        check_dsn(self.url)
        TableName.parse(self.table)
        check_timeout("operation_timeout", self.operation_timeout)
        if self.cleanup_interval is not None:
            check_timeout("cleanup_interval", self.cleanup_interval)
        grace = self.cleanup_grace
        if isinstance(grace, bool) or not isinstance(grace, int | float):
            raise ValidationError(f"cleanup_grace: expected seconds, got {grace!r}")
        if not (math.isfinite(grace) and grace >= 0):
            raise ValidationError(
                f"cleanup_grace: must be finite seconds >= 0, got {grace!r}",
                field="cleanup_grace",
            )
        for name in ("max_connections", "cleanup_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name}: expected an int >= 1, got {value!r}", field=name)
        if not isinstance(self.synchronous_commit, bool):
            raise ValidationError(
                f"synchronous_commit: expected a bool, got {self.synchronous_commit!r}",
                field="synchronous_commit",
            )

    def __repr__(self) -> str:
        return (
            f"PostgresLockProviderConfig(url={redact_dsn(self.url)!r}, table={self.table!r}, "
            f"operation_timeout={self.operation_timeout!r}, "
            f"max_connections={self.max_connections!r}, "
            f"cleanup_interval={self.cleanup_interval!r}, "
            f"cleanup_grace={self.cleanup_grace!r}, cleanup_batch={self.cleanup_batch!r}, "
            f"synchronous_commit={self.synchronous_commit!r})"
        )

    __str__ = __repr__
