"""The shared timer heap (rules R1-R5 of `_timer`) on MockClock."""

from __future__ import annotations

import trio
import trio.testing

from trio_sched._timer import TimerHeap


class Wall:
    def __init__(self) -> None:
        self.skew = 1_000_000.0

    def __call__(self) -> float:
        return trio.current_time() + self.skew


async def test_entries_run_in_deadline_order_in_one_pass(
    autojump_clock: trio.testing.MockClock,
) -> None:
    passes: list[list[str]] = []
    current: list[str] = []

    def end_pass() -> None:
        passes.append(list(current))
        current.clear()

    timer = TimerHeap(wall_time=Wall(), clock_check_interval=1000, on_pass_end=end_pass)
    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        start = trio.current_time()
        timer.call_at(start + 2, lambda: current.append("b"))
        timer.call_at(start + 1, lambda: current.append("a1"))
        timer.call_at(start + 1, lambda: current.append("a2"))
        dropped = timer.call_at(start + 1, lambda: current.append("never"))
        dropped.cancel()
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert passes == [["a1", "a2"], ["b"]]


async def test_sleep_until_and_cancellation(autojump_clock: trio.testing.MockClock) -> None:
    timer = TimerHeap(wall_time=Wall(), clock_check_interval=1000)
    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        start = trio.current_time()
        await timer.sleep_until(start + 5)
        assert trio.current_time() == start + 5
        with trio.move_on_after(1) as scope:
            await timer.sleep_until(start + 100)
        assert scope.cancelled_caught
        assert trio.current_time() == start + 6
        # The cancelled entry does not wake anything later.
        woke: list[float] = []
        timer.call_at(start + 200, lambda: woke.append(trio.current_time()))
        await trio.sleep(300)
        assert woke == [start + 200]
        nursery.cancel_scope.cancel()


async def test_wall_anchored_entries_follow_a_wall_clock_jump(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = Wall()
    timer = TimerHeap(wall_time=wall, clock_check_interval=1)
    fired: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        start = trio.current_time()
        timer.call_at_wall(wall() + 3600, lambda: fired.append(trio.current_time() - start))
        await trio.sleep(10)
        wall.skew += 3000  # the wall clock jumps 50 minutes ahead
        await trio.sleep(1000)
        nursery.cancel_scope.cancel()
    # Due 3600 s of wall time after the start: 600 s of Trio time after the jump.
    assert len(fired) == 1
    assert 600 <= fired[0] <= 602


async def test_many_cancelled_entries_are_compacted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timer = TimerHeap(wall_time=Wall(), clock_check_interval=1000)
    async with trio.open_nursery() as nursery:
        await nursery.start(timer.run)
        start = trio.current_time()
        handles = [timer.call_at(start + 50 + i, lambda: None) for i in range(5000)]
        for handle in handles:
            handle.cancel()
        timer.call_at(start + 1, lambda: None)
        assert len(timer) < 100
        nursery.cancel_scope.cancel()
