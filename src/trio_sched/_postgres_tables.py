"""Tables on one `PostgresDriver` whose schema is made on first use (rules PG1, PJ1).

`SchemaTables` is the part the lock provider's `LockTables` and the jobs runtime's
`JobsTable` share: the schema is created (under the advisory lock every trio-sched
schema creation takes) before the first statement runs, and created again, then the
statement retried once, when the tables disappeared under a running process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, LiteralString, TypeVar

import trio

from trio_sched._errors import NotInitializedError
from trio_sched._postgres_common import Connection, TableName, TableShape
from trio_sched._postgres_driver import PostgresDriver

if TYPE_CHECKING:  # psycopg is imported (with its install hint) by _postgres_common
    from psycopg import sql

__all__ = ["SchemaTables"]

T = TypeVar("T")


class SchemaTables:
    """Statements run through `call` once the schema exists. Construction does no I/O.

    `create` (statements) and `advisory_key` are what `PostgresDriver.create_schema`
    runs; `tables` the (name, suffix, shape) of each table whose shape it checks."""

    def __init__(
        self,
        driver: PostgresDriver,
        name: TableName,
        *,
        advisory_key: int,
        create: Sequence[sql.Composed | LiteralString],
        tables: Sequence[tuple[TableName, str, TableShape]],
    ) -> None:
        self.driver: Final = driver
        self.name: Final = name
        self._advisory_key = advisory_key
        self._create = create
        self._tables = tuple(tables)
        self._schema_ready = False
        self._schema_lock = trio.Lock()

    @property
    def schema_ready(self) -> bool:
        return self._schema_ready

    async def ensure_schema(self) -> None:
        """Create the tables and indexes if they do not exist, under the advisory lock of
        every trio-sched schema creation; a checkpoint once they exist."""
        async with self._schema_lock:
            if self._schema_ready:
                await self.checkpoint_open()
                return
            await self.driver.create_schema(
                self._advisory_key, self._create, self._mark_schema_ready, tables=self._tables
            )

    def _mark_schema_ready(self) -> None:
        self._schema_ready = True

    async def call(
        self, fn: Callable[[Connection], T], *, undo: Callable[[Connection], None] | None = None
    ) -> T:
        """``driver.call`` after creating the schema if needed."""
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
