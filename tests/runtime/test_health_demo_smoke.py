"""Health checks, the demo's entry point, and one real-time smoke run."""

from __future__ import annotations

import collections
import json
import math
import pathlib

import pytest
import trio
import trio.testing

from trio_sched import Config, Task, open_scheduler
from trio_sched._demo import main as demo_main
from trio_sched.health import (
    jobs_runtime_health_checker,
    lock_provider_health_checker,
    scheduler_health_checker,
)
from trio_sched.jobs import MemoryJobs
from trio_sched.locks import MemoryLockProvider

from ._helpers import RecordingJobs

pytestmark = pytest.mark.usefixtures("jobs_mode")


class HangingProvider:
    async def health_check(self) -> None:
        await trio.sleep_forever()


async def test_lock_provider_health(autojump_clock: trio.testing.MockClock) -> None:
    locks = MemoryLockProvider()
    check = lock_provider_health_checker("locks", locks, timeout=2)
    assert check.name == "locks"
    result = await check()
    assert result.healthy
    assert result.error is None
    assert result.name == "locks"
    await locks.aclose()
    closed = await check()
    assert not closed.healthy
    assert closed.error is not None
    assert "ClosedError" in closed.error
    hanging = lock_provider_health_checker("hang", HangingProvider(), timeout=2)  # type: ignore[arg-type]
    timed_out = await hanging()
    assert not timed_out.healthy
    assert timed_out.error == "timed out after 2.0s"
    assert timed_out.latency == pytest.approx(2)
    with pytest.raises(ValueError, match="timeout"):
        lock_provider_health_checker("x", locks, timeout=0)


async def test_jobs_runtime_health(autojump_clock: trio.testing.MockClock) -> None:
    jobs = MemoryJobs()
    check = jobs_runtime_health_checker("jobs", jobs)
    assert (await check()).healthy
    await jobs.aclose()
    assert not (await check()).healthy


async def test_scheduler_health_reports_state_and_lag(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_scheduler(jobs=RecordingJobs(), locks=MemoryLockProvider()) as scheduler:
        check = scheduler_health_checker("scheduler", scheduler, max_lag=0.5)
        result = await check()
        assert result.healthy, result.error
        assert await scheduler.measure_loop_lag() == 0.0  # MockClock: served on time
    after = await check()
    assert not after.healthy
    assert after.error == "scheduler is closed"


def test_demo_runs_and_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_main(1.2) == 0
    out = capsys.readouterr().out
    assert "registered heartbeat" in out
    assert "trigger nightly" in out
    assert "summary" in out
    assert "nightly    fired    0  triggered 1" in out
    assert demo_main(math.nan) == 2


@pytest.mark.slow
async def test_real_time_smoke_each_occurrence_once() -> None:
    # Real clocks, two instances sharing one provider: only "each occurrence once".
    jobs = RecordingJobs()
    locks = MemoryLockProvider()
    tasks = [
        Task(name="seconds", schedule="* * * * * *"),
        Task(name="every", schedule="@every 250ms"),
    ]

    async def instance() -> None:
        async with open_scheduler(jobs=jobs, locks=locks, config=Config()) as scheduler:
            for task in tasks:
                scheduler.register(task)
            await trio.sleep(2.6)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(instance)
        nursery.start_soon(instance)
    seen = collections.Counter((job.headers["x-trio-sched-task"], job.run_at) for job in jobs.jobs)
    assert seen
    assert max(seen.values()) == 1
    assert {name for name, _ in seen} == {"seconds", "every"}


@pytest.mark.slow
def test_lateness_benchmark_plumbing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Checks that the benchmark runs and records rows, never its numbers.
    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).resolve().parents[2]))
    from benchmarks import runtime_lateness

    output = tmp_path / "rows.json"
    argv = ["--tasks", "5", "--bursts", "1", "--seconds-single", "1", "--json", str(output)]
    assert runtime_lateness.main(argv) == 0
    rows = json.loads(output.read_text())["rows"]
    assert [row["scenario"] for row in rows] == ["1 task", "5 tasks", "floor: 5 x trio.sleep_until"]
    assert rows[2]["fires"] == 5
    assert "goal 1 task" in capsys.readouterr().out
