"""`RedisLockProviderConfig`: where and how a `RedisLockProvider` talks to Redis.

Its documented home is `trio_sched.locks.redis`, which re-exports it. It is checked when
built (R6 of `trio_sched._redis_common`) and shows its URL redacted (R5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from trio_sched._errors import ValidationError
from trio_sched._redis_common import (
    check_flag,
    check_prefix,
    check_redis_url,
    check_timeout,
    redact_url,
)

__all__ = ["RedisLockProviderConfig"]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RedisLockProviderConfig:
    """Where and how a `RedisLockProvider` talks to Redis.

    - ``url``: ``redis://``, ``rediss://`` (TLS) or ``unix://``, as redis-py reads it
      (``redis://user:password@host:port/db``). Shown redacted in every ``repr`` and
      message (R5).
    - ``prefix``: first part of every Redis key this provider touches (RD1).
    - ``operation_timeout``: bound on every call in seconds (R2).
    - ``max_connections``: worker threads (and so pooled connections) in use at once (R1).
    - ``require_persistence``: refuse to work (`InvalidArgumentError` from every call)
      unless the server runs the append-only file with ``appendfsync everysec`` or
      ``always`` and lets ``CONFIG GET`` show it; by default that check only warns (R7).
    """

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "trio_sched"
    operation_timeout: float = 3.0
    max_connections: int = 10
    require_persistence: bool = False

    def __post_init__(self) -> None:
        check_redis_url(self.url)
        check_prefix(self.prefix)
        check_timeout("operation_timeout", self.operation_timeout)
        check_flag("require_persistence", self.require_persistence)
        if (
            isinstance(self.max_connections, bool)
            or not isinstance(self.max_connections, int)
            or self.max_connections < 1
        ):
            raise ValidationError(
                f"max_connections: expected an int >= 1, got {self.max_connections!r}",
                field="max_connections",
            )

    def __repr__(self) -> str:
        return (
            f"RedisLockProviderConfig(url={redact_url(self.url)!r}, prefix={self.prefix!r}, "
            f"operation_timeout={self.operation_timeout!r}, "
            f"max_connections={self.max_connections!r}, "
            f"require_persistence={self.require_persistence!r})"
        )

    __str__ = __repr__
