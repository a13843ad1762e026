"""The jobs table of one `PostgresJobs` (rule PJ1 of `trio_sched.jobs.postgres`).

`JobsTable` is what every part of the runtime reaches Postgres through: the driver
(P1-P5), the table's statements (`JobsSql`) and its NOTIFY channel (PJ5), and its
schema, created on first use and created again when the table disappears (PJ1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final, TypeVar, final

import trio

from trio_sched._errors import NotInitializedError
from trio_sched._postgres_common import (
    JOBS_TABLE,
    Connection,
    TableName,
)
from trio_sched._postgres_driver import (
    PostgresDriver,
)
from trio_sched.jobs._postgres_sql import JobsSql

__all__ = ["JobsTable"]

T = TypeVar("T")


@final
class JobsTable:
    """One jobs table on one driver: `call` runs a statement function on the driver
    once the schema exists (PJ1). Construction does no I/O."""

    def __init__(self, driver: PostgresDriver, name: TableName) -> None:
        self.driver: Final = driver
        self.name: Final = name
        self.sql: Final = JobsSql(name)
        # A channel name is an identifier (at most 63 bytes): derived from the table name.
        digest = hashlib.blake2b(str(name).encode(), digest_size=10).hexdigest()
        self.channel: Final = f"trio_sched_jobs_{digest}"
        self._schema_ready = False
        self._schema_lock = trio.Lock()

    @property
    def schema_ready(self) -> bool:
        return self._schema_ready

    async def ensure_schema(self) -> None:
        """`PostgresJobs.ensure_schema`: create the table and its indexes if they do not
        exist (PJ1), under the advisory lock of every trio-sched schema creation."""
        async with self._schema_lock:
            if self._schema_ready:
                await self.checkpoint_open()
                return
            await self.driver.create_schema(
                self.sql.advisory_key,
                self.sql.create,
                self._mark_schema_ready,
                tables=((self.name, "", JOBS_TABLE),),
            )

    def _mark_schema_ready(self) -> None:
        self._schema_ready = True

    async def call(
        self, fn: Callable[[Connection], T], *, undo: Callable[[Connection], None] | None = None
    ) -> T:
        """``driver.call`` after creating the schema if needed (PJ1)."""
        if not self._schema_ready:
            await self.ensure_schema()
        try:
            return await self.driver.call(fn, undo=undo)
        except NotInitializedError:
            # The table was dropped under us. The statement failed, so it did nothing:
            # create it again and retry once.
            self._schema_ready = False
            await self.ensure_schema()
            return await self.driver.call(fn, undo=undo)

    async def checkpoint_open(self) -> None:
        await trio.lowlevel.checkpoint()
        self.driver.check_open()
