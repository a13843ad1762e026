"""The pause checks of the lock suite (rule L9) on the memory provider, and mutants
proving each check can fail.

`_PauseView` is `_View` (one client of a shared `MemoryLockProvider`) that also forwards
the `PauseStore` methods, so the suite runs its pause checks; a plain `_View` is no
`PauseStore`, and the suite skips them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta, timezone

import pytest
import trio
import trio.testing

from trio_sched import InvalidArgumentError
from trio_sched.locks import (
    AcquireRequest,
    Held,
    LockLease,
    MemoryLockProvider,
    Paused,
    PauseStore,
)
from trio_sched.testing import CheckFailed, check_lock_provider

from .test_conformance_memory import _View, views_of


class _PauseView(_View):
    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        await self._open().set_paused(states)

    async def get_paused(self, names: Sequence[str]) -> dict[str, Paused]:
        return await self._open().get_paused(names)


async def test_pause_checks_pass(autojump_clock: trio.testing.MockClock) -> None:
    shared = MemoryLockProvider()
    assert isinstance(_PauseView(shared), PauseStore)
    await check_lock_provider(views_of(shared, _PauseView), ttl=1.0)
    stats = shared.statistics()
    assert stats.refused_by_pause > 0  # the pause checks ran
    assert stats.paused == 5  # what pause-batch, get-paused and pause-many leave


async def test_pause_checks_skipped_without_pause_store(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shared = MemoryLockProvider()
    assert not isinstance(_View(shared), PauseStore)
    await check_lock_provider(views_of(shared), ttl=1.0)
    assert shared.statistics().refused_by_pause == 0
    assert shared.statistics().paused == 0


# -- mutants: each breaks rule L9 one way; the suite must notice ------------------------


class _NotEnforced(_PauseView):
    """Keeps pause records beside the provider: acquire_batch never sees them."""

    def __init__(self, shared: MemoryLockProvider, side: dict[str, Paused]) -> None:
        super().__init__(shared)
        self.side = side

    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        await super().set_paused({})  # checkpoint
        for name, state in states.items():
            if state is None:
                self.side.pop(name, None)
            else:
                self.side[name] = state

    async def get_paused(self, names: Sequence[str]) -> dict[str, Paused]:
        await super().get_paused([])
        return {name: self.side[name] for name in names if name in self.side}


class _LosesReason(_PauseView):
    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        await super().set_paused(
            {
                n: None if s is None else dataclasses.replace(s, reason=None)
                for n, s in states.items()
            }
        )


class _AnswersRewritten(_PauseView):
    """Answers each Paused record rewritten by `fix` (from acquire_batch and get_paused)."""

    def __init__(self, shared: MemoryLockProvider, fix: Callable[[Paused], Paused]) -> None:
        super().__init__(shared)
        self.fix = fix

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | Paused | None]:
        results = await super().acquire_batch(requests)
        return [self.fix(r) if isinstance(r, Paused) else r for r in results]

    async def get_paused(self, names: Sequence[str]) -> dict[str, Paused]:
        return {n: self.fix(p) for n, p in (await super().get_paused(names)).items()}


class _KeepsMicroseconds(_PauseView):
    """Answers `since` as given, not floored to the millisecond."""

    def __init__(self, shared: MemoryLockProvider, given: dict[str, Paused]) -> None:
        super().__init__(shared)
        self.given = given

    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        await super().set_paused(states)
        self.given.update({n: s for n, s in states.items() if s is not None})

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | Paused | None]:
        results = await super().acquire_batch(requests)
        return [
            self.given.get(q.watermark or "", r) if isinstance(r, Paused) else r
            for q, r in zip(requests, results, strict=True)
        ]


class _RecordsWhilePaused(_PauseView):
    """Takes the key of a paused request anyway (and answers Paused)."""

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | Paused | None]:
        results = await super().acquire_batch(requests)
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, Paused):
                await self.shared.acquire(request.key, request.ttl)
        return results


class _GetIgnoresResume(_PauseView):
    def __init__(self, shared: MemoryLockProvider, ever: dict[str, Paused]) -> None:
        super().__init__(shared)
        self.ever = ever

    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        await super().set_paused(states)
        self.ever.update(await super().get_paused([n for n, s in states.items() if s]))

    async def get_paused(self, names: Sequence[str]) -> dict[str, Paused]:
        got = await super().get_paused(names)
        return {**{n: self.ever[n] for n in names if n in self.ever}, **got}


class _WatermarkFirst(_PauseView):
    """Refuses by the watermark (rule L4) before looking at the pause."""

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | Paused | None]:
        names = [r.watermark for r in requests if r.watermark is not None]
        marks = await self.shared.get_watermarks(names)
        results = await super().acquire_batch(requests)
        return [
            None
            if isinstance(result, Paused)
            and request.watermark in marks
            and request.nominal_ms <= marks[request.watermark]
            else result
            for request, result in zip(requests, results, strict=True)
        ]


class _PausesByKey(_PauseView):
    """Also answers Paused for a later request of a key a paused request named."""

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | Paused | None]:
        results = await super().acquire_batch(requests)
        seen: dict[str, Paused] = {}
        out: list[LockLease | Held | Paused | None] = []
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, Paused):
                seen[request.key] = result
            elif request.key in seen:
                if isinstance(result, LockLease):
                    await self.shared.release(result)
                result = seen[request.key]
            out.append(result)
        return out


class _PauseFreesHolder(_PauseView):
    """Deletes the record of a key whose request is answered Paused."""

    def __init__(self, shared: MemoryLockProvider, holders: dict[str, LockLease]) -> None:
        super().__init__(shared)
        self.holders = holders

    async def acquire_batch(
        self, requests: Sequence[AcquireRequest]
    ) -> list[LockLease | Held | Paused | None]:
        results = await super().acquire_batch(requests)
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, LockLease):
                self.holders[result.key] = result
            elif isinstance(result, Paused) and request.key in self.holders:
                await self.shared.release(self.holders[request.key])
        return results


class _FirstNameOnly(_PauseView):
    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        await super().set_paused(dict(list(states.items())[:1]))


class _NoInputChecks(_PauseView):
    async def set_paused(self, states: Mapping[str, Paused | None]) -> None:
        with contextlib.suppress(InvalidArgumentError):
            await super().set_paused(states)


_EAST = timezone(timedelta(hours=2))


# mutant -> (view factory, the check that must catch it)
def _mutants() -> dict[str, tuple[Callable[[MemoryLockProvider], _View], str]]:
    side: dict[str, Paused] = {}
    given: dict[str, Paused] = {}
    ever: dict[str, Paused] = {}
    holders: dict[str, LockLease] = {}
    return {
        "pause-not-enforced": (lambda s: _NotEnforced(s, side), "pause-blocks"),
        "reason-lost": (_LosesReason, "pause-blocks"),
        "since-not-utc": (
            lambda s: _AnswersRewritten(
                s, lambda p: dataclasses.replace(p, since=p.since.astimezone(_EAST))
            ),
            "pause-blocks",
        ),
        "since-not-floored": (lambda s: _KeepsMicroseconds(s, given), "pause-blocks"),
        "by-changed": (
            lambda s: _AnswersRewritten(s, lambda p: dataclasses.replace(p, by="someone")),
            "pause-blocks",
        ),
        "record-made-while-paused": (_RecordsWhilePaused, "pause-blocks"),
        "watermark-checked-first": (_WatermarkFirst, "pause-batch"),
        "pauses-by-key": (_PausesByKey, "pause-batch"),
        "get-ignores-resume": (lambda s: _GetIgnoresResume(s, ever), "get-paused"),
        "pause-frees-holder": (lambda s: _PauseFreesHolder(s, holders), "pause-held"),
        "first-name-only": (_FirstNameOnly, "pause-many"),
        "no-input-checks": (_NoInputChecks, "pause-input"),
    }


@pytest.mark.parametrize("mutant", sorted(_mutants()))
async def test_pause_checks_reject_mutant(
    mutant: str, autojump_clock: trio.testing.MockClock
) -> None:
    view, check = _mutants()[mutant]
    with pytest.raises(AssertionError) as info:
        await check_lock_provider(views_of(MemoryLockProvider(), view), ttl=1.0)
    assert isinstance(info.value, CheckFailed)
    assert str(info.value).startswith(f"check_lock_provider [{check}]: "), str(info.value)
