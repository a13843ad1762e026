"""The pause records of `PostgresLockProvider` (rule L9 of `trio_sched.locks._protocol`):
its `PauseStore` calls, their statements and values, and the shape of the pause table.

`PostgresLockProvider` keeps one `PostgresPauses` and hands ``set_paused`` and
``get_paused`` to it; the pause table is created with the others (PG1, the schema of
`trio_sched.locks._postgres_sql`), and ``acquire_batch`` joins it in its own statement
there, its answers read by `paused_record`. The input checks shared by every
`PauseStore` are in `trio_sched.locks._pause`.

Rules (of the lock provider `trio_sched.locks.postgres`, numbered with its PG1-PG9):
- PG10 Pause records (L9) live in their own table ``<table>_paused`` (``name text
  PRIMARY KEY, paused_since timestamptz, paused_by text, paused_reason text``), one row
  per watermark name, beside the watermark table rather than in it: a task paused
  before its first occurrence needs no watermark row, and the watermark table and its
  statements stay as earlier versions know them. A row with a NULL ``paused_since`` is
  no record: a resume clears the row rather than deleting it, so ``set_paused`` is ONE
  upsert in name order (concurrent calls never deadlock) and writes only rows that
  change. ``acquire_batch`` joins the table in its one statement (PG4), so a pause
  committed before the statement started is seen; a paused request is answered from
  that join before the watermark check and is not eligible for its key, which is never
  locked or written for it. ``get_paused`` is one ``SELECT``. A schema of an earlier
  trio-sched (no pause table) is upgraded by PG1's ``CREATE TABLE IF NOT EXISTS``: no
  ``ALTER TABLE``, no lock on the existing tables; earlier instances ignore the table
  (they do not honour pauses) while versions are mixed. ``paused_since`` holds the
  millisecond-floored ``since`` (timestamptz keeps microseconds, so it comes back
  equal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, final

from trio_sched._errors import SchedulerError
from trio_sched._postgres_common import Connection, TableName, TableShape, query
from trio_sched.locks._pause import check_names, check_states
from trio_sched.locks._postgres_values import as_utc
from trio_sched.locks._protocol import Paused

if TYPE_CHECKING:  # only for annotations: _postgres_table imports PAUSE_TABLE from here
    from trio_sched.locks._postgres_table import LockTables

__all__ = ["PAUSE_TABLE", "PauseStatements", "PostgresPauses", "paused_params", "paused_record"]

# P8 of `trio_sched._postgres_common` for PG10's table: the columns its statements use.
PAUSE_TABLE: Final = TableShape(
    "trio-sched pause table",
    "PostgresLockProviderConfig.table (its <table>_paused)",
    frozenset(("name", "paused_since", "paused_by", "paused_reason")),
)


@final
class PauseStatements:
    """The pause statements of one provider, its pause table quoted as an identifier (P6)."""

    __slots__ = ("get_paused", "set_paused")

    def __init__(self, table: TableName) -> None:
        paused = table.identifier("_paused")
        # PG10: one upsert in name order (concurrent calls lock rows in one order); a
        # resume clears the record (a row with a NULL since is no record) rather than
        # deleting the row, and writes no row for a name that has none.
        self.set_paused = query(
            "INSERT INTO {paused} AS p (name, paused_since, paused_by, paused_reason)"
            " SELECT s.name, s.since, s.by_whom, s.reason"
            " FROM unnest(%(names)s::text[], %(sinces)s::timestamptz[], %(bys)s::text[],"
            " %(reasons)s::text[]) AS s(name, since, by_whom, reason)"
            " WHERE s.since IS NOT NULL OR EXISTS (SELECT FROM {paused} AS o WHERE o.name = s.name)"
            " ORDER BY s.name"
            " ON CONFLICT (name) DO UPDATE SET paused_since = EXCLUDED.paused_since,"
            " paused_by = EXCLUDED.paused_by, paused_reason = EXCLUDED.paused_reason"
            " WHERE (p.paused_since, p.paused_by, p.paused_reason)"
            " IS DISTINCT FROM (EXCLUDED.paused_since, EXCLUDED.paused_by, EXCLUDED.paused_reason)",
            paused=paused,
        )
        self.get_paused = query(
            "SELECT name, paused_since, paused_by, paused_reason FROM {paused}"
            " WHERE name = ANY(%(names)s::text[]) AND paused_since IS NOT NULL",
            paused=paused,
        )


@final
class PostgresPauses:
    """The `PauseStore` calls of one `PostgresLockProvider` (PG10), on its tables."""

    __slots__ = ("_sql", "_tables")

    def __init__(self, tables: LockTables) -> None:
        self._tables = tables
        self._sql = PauseStatements(tables.name)

    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        """`PostgresLockProvider.set_paused`: one statement (PG10), none for no states."""
        params = paused_params(check_states(states))
        if not params["names"]:
            await self._tables.checkpoint_open()
            return
        driver = self._tables.driver

        def run(conn: Connection) -> None:
            driver.execute(conn, self._sql.set_paused, params)

        await self._tables.call(run)

    async def get_paused(self, names: Sequence[str]) -> dict[str, Paused]:
        """`PostgresLockProvider.get_paused`: one statement (PG10), none for no names."""
        wanted = check_names(names)
        if not wanted:
            await self._tables.checkpoint_open()
            return {}
        driver = self._tables.driver

        def run(conn: Connection) -> list[tuple[Any, ...]]:
            return driver.execute(conn, self._sql.get_paused, {"names": wanted}).fetchall()

        return {str(row[0]): paused_record(row[1:]) for row in await self._tables.call(run)}


def paused_params(states: Mapping[str, Paused | None]) -> dict[str, list[Any]]:
    """The parameters of `PauseStatements.set_paused` for checked `states` (PG10: one
    array per column, NULLs for a resume); no I/O."""
    params: dict[str, list[Any]] = {"names": [], "sinces": [], "bys": [], "reasons": []}
    for name, state in states.items():
        params["names"].append(name)
        params["sinces"].append(None if state is None else state.since)
        params["bys"].append(None if state is None else state.by)
        params["reasons"].append(None if state is None else state.reason)
    return params


def paused_record(columns: Sequence[Any]) -> Paused:
    """A `Paused` from a row's ``paused_since, paused_by, paused_reason`` (PG10)."""
    since, by, reason = columns
    if not isinstance(by, str) or not (reason is None or isinstance(reason, str)):
        raise SchedulerError(f"postgres lock provider: unexpected pause record {columns!r}")
    return Paused(as_utc(since), by, reason)
