"""trio-sched: a Trio-native, distributed cron scheduler.

This module only re-exports the public API.
"""

from trio_sched._errors import ClosedError as ClosedError
from trio_sched._errors import ConflictError as ConflictError
from trio_sched._errors import InvalidArgumentError as InvalidArgumentError
from trio_sched._errors import LeaseLostError as LeaseLostError
from trio_sched._errors import NotFoundError as NotFoundError
from trio_sched._errors import NotInitializedError as NotInitializedError
from trio_sched._errors import RetryableError as RetryableError
from trio_sched._errors import SchedulerError as SchedulerError
from trio_sched._errors import ValidationError as ValidationError

__version__ = "0.1.0.dev0"
