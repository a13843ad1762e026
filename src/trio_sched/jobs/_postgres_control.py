"""Job state and cancellation for `PostgresJobs` (rule PJ8 of the Postgres jobs runtime,
`trio_sched.jobs.postgres`; `JobControl`, rules JC1-JC5 of `trio_sched.jobs._control`).

Rules:
- PJ8 ``job_state`` is one ``SELECT`` of the row holding the idempotency key (the column
  is UNIQUE, so at most one): ``ready`` is QUEUED (delayed and retry-waiting rows
  included), ``leased`` is RUNNING while ``leased_until`` lies ahead on the server's
  clock and QUEUED once it passed (the next claim takes it again, PJ2), ``done``,
  ``dead`` and ``cancelled`` are DONE, DEAD and CANCELLED, no row UNKNOWN. ``cancel`` is
  one ``UPDATE`` of a ``ready`` or ``leased`` row to ``cancelled`` (payload cleared,
  token and lease cleared, ``finished_at`` now): the holder's ``extend``, ``complete``,
  ``fail`` and ``release`` find no row with its token (stale, PJ6), and no claim takes a
  cancelled row. A claim and a cancel lock the row: a claim skips a row a cancel holds
  (``SKIP LOCKED``), and a cancel waiting for a claim's lock re-reads the row then and
  cancels the new lease. Cancelled rows keep their key, like ``done`` rows, for
  ``dedupe_retention`` seconds after ``finished_at``, then the cleanup of PJ3 deletes
  them (UNKNOWN from then on); dead rows stay until redriven. Upgrade: the state check
  of a table made by an earlier trio-sched lacks ``cancelled``; in the schema
  transaction of PJ1, and only when it lacks it, it is replaced by the new check,
  added ``NOT VALID`` (every old row passed a stricter check, so no scan is needed and
  the exclusive lock is brief), and ``<table>_cancelled_idx`` is created. No column
  changes, so the table shape check (P8) accepts old and new tables alike. An earlier
  trio-sched keeps working on the upgraded table; it never writes ``cancelled`` and
  never claims such rows.
"""

from __future__ import annotations

from typing import Any, Final, final

from trio_sched._errors import SchedulerError
from trio_sched._postgres_common import Connection
from trio_sched.jobs._control import JobState
from trio_sched.jobs._postgres_table import JobsTable

__all__ = ["Control"]

_STATES: Final = {
    "ready": JobState.QUEUED,
    "done": JobState.DONE,
    "dead": JobState.DEAD,
    "cancelled": JobState.CANCELLED,
}


@final
class Control:
    """`PostgresJobs.job_state` and `PostgresJobs.cancel` (PJ8), after their key check."""

    __slots__ = ("_table",)

    def __init__(self, table: JobsTable) -> None:
        self._table = table

    async def job_state(self, key: str) -> JobState:
        driver, statement = self._table.driver, self._table.sql.job_state

        def run(conn: Connection) -> tuple[Any, ...] | None:
            return driver.execute(conn, statement, {"key": key}).fetchone()

        row = await self._table.call(run)
        if row is None:
            return JobState.UNKNOWN
        state, lease_runs = str(row[0]), bool(row[1])
        if state == "leased":
            return JobState.RUNNING if lease_runs else JobState.QUEUED
        try:
            return _STATES[state]
        except KeyError:
            raise SchedulerError(f"postgres jobs runtime: unexpected state {state!r}") from None

    async def cancel(self, key: str) -> bool:
        driver, statement = self._table.driver, self._table.sql.cancel

        def run(conn: Connection) -> int:
            return driver.execute(conn, statement, {"key": key}).rowcount

        return bool(await self._table.call(run))
