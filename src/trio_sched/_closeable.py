"""`ClosesOnExit`: ``async with provider:`` closes it on exit, for every backend client.

Rule: ``__aenter__`` returns the object unchanged (it is usable before and without the
``async with``); ``__aexit__`` awaits ``aclose()`` and lets any exception of the block
propagate. Backends that need more on entry or exit (`MemoryJobs` runs a nursery)
write their own.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["ClosesOnExit"]


class ClosesOnExit:
    """Mixin: an async context manager that calls ``aclose`` on exit."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
