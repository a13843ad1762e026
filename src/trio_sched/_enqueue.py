"""A plain runtime's burst: one ``enqueue`` per job, ``ENQUEUE_CONCURRENCY`` at once
(rules D6, D12 of `_runtime`).

For a `JobsRuntime` without ``enqueue_many`` the burst's task and up to
``ENQUEUE_CONCURRENCY - 1`` helpers take the jobs one after another (`enqueue_each`),
never a task per occurrence. Each job's enqueue runs in a cancel scope only its own
lease guard cancels, so a lost lease or the timeout ends that occurrence alone
(`CANCELLED`), and a job whose lease ran out by this instance's clock before its turn
is not enqueued (`ran_out`, D12). The results are what ``enqueue_many`` would return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Final

import trio

from trio_sched._errors import LeaseLostError
from trio_sched._lease import BatchGuard
from trio_sched._loop import H_OCCURRENCE
from trio_sched.jobs._job import Job

__all__ = ["CANCELLED", "ENQUEUE_CONCURRENCY", "enqueue_each", "ran_out"]

# D6: a plain `JobsRuntime`'s burst makes at most this many `enqueue` calls at once.
ENQUEUE_CONCURRENCY: Final = 64


class _Cancelled(Exception):
    """The result of an `enqueue` of a burst that its own lease guard cancelled."""


CANCELLED: Final = _Cancelled()


def ran_out(key: str) -> LeaseLostError:
    """D12: the error of an occurrence not enqueued because its lease ran out by this
    instance's clock before the enqueue."""
    return LeaseLostError(
        f"the lease of {key!r} ran out (by this instance's clock) before its enqueue: "
        "not enqueued; another instance may take the occurrence over"
    )


async def enqueue_each(
    enqueue: Callable[[Job], Awaitable[None]], jobs: list[Job], batch: BatchGuard
) -> list[Exception | None]:
    """A plain runtime's burst (D6): `enqueue` every job, at most
    ``ENQUEUE_CONCURRENCY`` at once, from this task and up to that many helpers
    (never a task per occurrence). Returns what ``enqueue_many`` would: ``None`` or
    the job's error, in order; `CANCELLED` for a job its own guard cancelled."""
    results: list[Exception | None] = [None] * len(jobs)
    order = iter(range(len(jobs)))  # shared: each job is taken by one of them
    helpers = min(len(jobs), ENQUEUE_CONCURRENCY) - 1
    if helpers <= 0:
        await _enqueue_some(enqueue, jobs, batch, results, order)
        return results
    async with trio.open_nursery() as nursery:
        for _ in range(helpers):
            nursery.start_soon(_enqueue_some, enqueue, jobs, batch, results, order)
        await _enqueue_some(enqueue, jobs, batch, results, order)
    return results


async def _enqueue_some(
    enqueue: Callable[[Job], Awaitable[None]],
    jobs: list[Job],
    batch: BatchGuard,
    results: list[Exception | None],
    order: Iterator[int],
) -> None:
    """Take jobs from `order` and enqueue them one after another. Each runs in this
    task's current cancel scope, which only its job's guard cancels (`_Slot`); after
    a cancellation the next job gets a fresh scope, so no job is cancelled for
    another one's lease."""
    running = batch.running
    cancelled = batch.cancelled
    while True:
        index = -1
        with trio.CancelScope() as scope:
            for index in order:
                if index in cancelled:  # its guard acted before it started
                    results[index] = CANCELLED
                    continue
                if batch.expires(index) <= trio.current_time():  # D12, as above
                    results[index] = ran_out(jobs[index].headers[H_OCCURRENCE])
                    continue
                running[index] = scope
                try:
                    await enqueue(jobs[index])
                except Exception as exc:
                    results[index] = exc
                del running[index]
                if scope.cancel_called:
                    break  # cancelled as that job returned: a fresh scope for the next
            else:
                return
        if scope.cancelled_caught:
            running.pop(index, None)
            results[index] = CANCELLED
