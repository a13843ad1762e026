"""The tables of one `PostgresLockProvider` (rule PG1 of `trio_sched.locks.postgres`).

`LockTables` is what every part of the provider reaches Postgres through: the driver
(P1-P5), the statements (`LockStatements`), and the schema, created on first use and
created again when the tables disappear (PG1), as `SchemaTables` does for it.
"""

from __future__ import annotations

from typing import Final, final

from trio_sched._postgres_common import LOCK_TABLE, WATERMARK_TABLE, TableName
from trio_sched._postgres_driver import PostgresDriver
from trio_sched._postgres_tables import SchemaTables
from trio_sched.locks._postgres_pause import PAUSE_TABLE
from trio_sched.locks._postgres_sql import LockStatements

__all__ = ["LockTables"]


@final
class LockTables(SchemaTables):
    """The lock, watermark and pause tables of one provider on one driver: `call` runs
    a statement function on the driver once the schema exists (PG1). Construction does
    no I/O."""

    def __init__(self, driver: PostgresDriver, name: TableName) -> None:
        self.sql: Final = LockStatements(name)
        super().__init__(
            driver,
            name,
            advisory_key=self.sql.advisory_key,
            create=self.sql.create,
            tables=(
                (name, "", LOCK_TABLE),
                (name, "_watermarks", WATERMARK_TABLE),
                (name, "_paused", PAUSE_TABLE),
            ),
        )
