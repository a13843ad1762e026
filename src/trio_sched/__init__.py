"""trio-sched: a Trio-native, distributed cron scheduler.

This module only re-exports the public API.
"""

from typing import TYPE_CHECKING

from trio_sched._config import Config as Config
from trio_sched._errors import ClosedError as ClosedError
from trio_sched._errors import ConflictError as ConflictError
from trio_sched._errors import DataLossError as DataLossError
from trio_sched._errors import InvalidArgumentError as InvalidArgumentError
from trio_sched._errors import LeaseLostError as LeaseLostError
from trio_sched._errors import NotFoundError as NotFoundError
from trio_sched._errors import NotInitializedError as NotInitializedError
from trio_sched._errors import RetryableError as RetryableError
from trio_sched._errors import SchedulerError as SchedulerError
from trio_sched._errors import ValidationError as ValidationError
from trio_sched._events import EventKind as EventKind
from trio_sched._events import SchedulerEvent as SchedulerEvent
from trio_sched._events import SchedulerStatistics as SchedulerStatistics
from trio_sched._events import TaskStatistics as TaskStatistics
from trio_sched._task import MisfirePolicy as MisfirePolicy
from trio_sched._task import OverlapPolicy as OverlapPolicy
from trio_sched._task import Task as Task

__version__ = "0.1.0.dev0"

if TYPE_CHECKING:
    from trio_sched._pausing import TaskStatus as TaskStatus
    from trio_sched._requested import BackfillResult as BackfillResult
    from trio_sched._runtime import Scheduler as Scheduler
    from trio_sched._runtime import open_scheduler as open_scheduler


def __getattr__(name: str) -> object:
    # The runtime needs Trio: import it on first use, so `import trio_sched` (and the
    # CLI's next/validate) stays light.
    if name in ("Scheduler", "open_scheduler"):
        from trio_sched import _runtime

        return getattr(_runtime, name)
    if name == "TaskStatus":
        from trio_sched import _pausing

        return _pausing.TaskStatus
    if name == "BackfillResult":
        from trio_sched import _requested

        return _requested.BackfillResult
    raise AttributeError(f"module 'trio_sched' has no attribute {name!r}")
