"""Pure cron math: parse expressions, compute next/previous fire times in a timezone.

Never imports trio. Rules C1-C12: docs/cron.md.

    >>> from trio_sched.cron import parse
    >>> s = parse("0 9 * * MON-FRI", tz="Europe/Berlin")
    >>> s.next_after(datetime(2026, 1, 1, tzinfo=UTC))   # first fire strictly after
"""

from trio_sched._errors import ValidationError as ValidationError
from trio_sched.cron._fields import CronField as CronField
from trio_sched.cron._parse import MAX_EXPRESSION_LENGTH as MAX_EXPRESSION_LENGTH
from trio_sched.cron._parse import parse as parse
from trio_sched.cron._schedule import Schedule as Schedule

__all__ = ["MAX_EXPRESSION_LENGTH", "CronField", "Schedule", "ValidationError", "parse"]
