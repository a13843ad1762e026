"""The tables of one `PostgresLockProvider` (rule PG1 of `trio_sched.locks.postgres`).

`LockTables` is what every part of the provider reaches Postgres through: the driver
(P1-P5), the statements (`LockStatements`), and the schema, created on first use and
created again when the tables disappear (PG1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar, final

import trio

from trio_sched._errors import NotInitializedError
from trio_sched._postgres_common import LOCK_TABLE, WATERMARK_TABLE, Connection, TableName
from trio_sched._postgres_driver import PostgresDriver
from trio_sched.locks._postgres_pause import PAUSE_TABLE
from trio_sched.locks._postgres_sql import LockStatements

__all__ = ["LockTables"]

T = TypeVar("T")


@final
class LockTables:
    """The lock, watermark and pause tables of one provider on one driver: `call` runs
    a statement function on the driver once the schema exists (PG1). Construction does
    no I/O."""

    def __init__(self, driver: PostgresDriver, name: TableName) -> None:
        self.driver: Final = driver
        self.name: Final = name
        self.sql: Final = LockStatements(name)
        self._schema_ready = False
        self._schema_lock = trio.Lock()

    @property
    def schema_ready(self) -> bool:
        return self._schema_ready

    async def ensure_schema(self) -> None:
        """`PostgresLockProvider.ensure_schema`: create the tables and index if they do
        not exist (PG1), under the advisory lock of every trio-sched schema creation."""
        async with self._schema_lock:
            if self._schema_ready:
                await self.checkpoint_open()
                return
            await self.driver.create_schema(
                self.sql.advisory_key,
                self.sql.create,
                self._mark_schema_ready,
                tables=(
                    (self.name, "", LOCK_TABLE),
                    (self.name, "_watermarks", WATERMARK_TABLE),
                    (self.name, "_paused", PAUSE_TABLE),
                ),
            )

    def _mark_schema_ready(self) -> None:
        self._schema_ready = True

    async def call(
        self, fn: Callable[[Connection], T], *, undo: Callable[[Connection], None] | None = None
    ) -> T:
        """``driver.call`` after creating the schema if needed (PG1)."""
        if not self._schema_ready:
            await self.ensure_schema()
        try:
            return await self.driver.call(fn, undo=undo)
        except NotInitializedError:
            # The tables were dropped under us. The statement failed, so it did nothing:
            # create them again and retry once.
            self._schema_ready = False
            await self.ensure_schema()
            return await self.driver.call(fn, undo=undo)

    async def checkpoint_open(self) -> None:
        await trio.lowlevel.checkpoint()
        self.driver.check_open()
