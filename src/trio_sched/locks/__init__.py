"""Coordination backends: the `LockProvider` interface (and `PauseStore`, its pause
records) and its implementations.

Only the interface and the in-memory provider are imported here. The Redis and
Postgres providers live in ``trio_sched.locks.redis`` and ``trio_sched.locks.postgres``
and are imported only by users who ask for them, so ``import trio_sched`` stays light.
"""

from trio_sched.locks._protocol import AcquireRequest as AcquireRequest
from trio_sched.locks._protocol import Held as Held
from trio_sched.locks._protocol import LockLease as LockLease
from trio_sched.locks._protocol import LockProvider as LockProvider
from trio_sched.locks._protocol import Paused as Paused
from trio_sched.locks._protocol import PauseStore as PauseStore
from trio_sched.locks.memory import MemoryLockProvider as MemoryLockProvider
from trio_sched.locks.memory import MemoryLockStatistics as MemoryLockStatistics

__all__ = [
    "AcquireRequest",
    "Held",
    "LockLease",
    "LockProvider",
    "MemoryLockProvider",
    "MemoryLockStatistics",
    "PauseStore",
    "Paused",
]
