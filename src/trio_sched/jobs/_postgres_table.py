"""The jobs table of one `PostgresJobs` (rule PJ1 of `trio_sched.jobs.postgres`).

`JobsTable` is what every part of the runtime reaches Postgres through: the driver
(P1-P5), the table's statements (`JobsSql`) and its NOTIFY channel (PJ5), and its
schema, created on first use and created again when the table disappears (PJ1), as
`SchemaTables` does for it.
"""

from __future__ import annotations

import hashlib
from typing import Final, final

from trio_sched._postgres_common import JOBS_TABLE, TableName
from trio_sched._postgres_driver import PostgresDriver
from trio_sched._postgres_tables import SchemaTables
from trio_sched.jobs._postgres_sql import JobsSql

__all__ = ["JobsTable"]


@final
class JobsTable(SchemaTables):
    """One jobs table on one driver: `call` runs a statement function on the driver
    once the schema exists (PJ1). Construction does no I/O."""

    def __init__(self, driver: PostgresDriver, name: TableName) -> None:
        self.sql: Final = JobsSql(name)
        # A channel name is an identifier (at most 63 bytes): derived from the table name.
        digest = hashlib.blake2b(str(name).encode(), digest_size=10).hexdigest()
        self.channel: Final = f"trio_sched_jobs_{digest}"
        super().__init__(
            driver,
            name,
            advisory_key=self.sql.advisory_key,
            create=self.sql.create,
            tables=((name, "", JOBS_TABLE),),
        )
