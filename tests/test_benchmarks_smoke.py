"""The benchmark suite runs end to end in a tiny mode and records what it measured.

Plumbing only, never numbers: no timing is asserted. The smoke run covers our side
with both jobs-runtime kinds (memory lock backend), the start-up probe and the floor;
the stall scenario runs at a few tasks for a couple of seconds. The APScheduler 4 side,
Redis, Postgres, the multi-instance runs and the plot are exercised by ``nox -s bench``
(APScheduler and matplotlib are benchmark-only dependencies, not test dependencies).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def suite(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # `benchmarks` is a package at the project root, which pytest does not put on sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    from benchmarks import suite

    return suite


def test_summarize_groups_bursts_by_nominal_instant(suite: ModuleType) -> None:
    pairs = [(10.001, 10.0), (10.003, 10.0), (11.002, 11.0), (11.010, 11.0), (12.5, 12.0)]
    summary = suite.summarize(pairs, (10.0, 11.0), expected=2)
    assert summary["fires"] == 4  # the burst at 12.0 is outside the window
    assert summary["bursts"] == 2
    assert summary["incomplete_bursts"] == 0
    assert summary["excess_fires"] == 0
    assert summary["last_per_burst_ms"] == pytest.approx([3.0, 10.0], abs=1e-6)
    assert summary["last_max_ms"] == pytest.approx(10.0, abs=1e-6)
    assert summary["max_ms"] == pytest.approx(10.0, abs=1e-6)
    assert summary["p50_ms"] == pytest.approx(2.0, abs=1e-6)  # nearest rank: 2nd of 4
    short = suite.summarize(pairs, (10.0, 12.0), expected=2)
    assert short["incomplete_bursts"] == 1
    assert math.isnan(suite.pct([], 0.5))


def test_quick_suite_tiny_mode_records_our_side_and_the_floor(
    suite: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "suite.json"
    argv = ["--quick", "--sizes", "1", "--backends", "memory", "--bursts", "1"]
    argv += ["--memory-sizes", "200", "--idle-tasks", "10", "--idle-seconds", "0.2"]
    argv += ["--startup-tasks", "100"]
    argv += ["--time-sleep-samples", "3", "--no-apscheduler", "--no-cron", "--no-multi"]
    argv += ["--no-plot", "--output", str(output)]
    assert suite.main(argv) == 0

    record = json.loads(output.read_text())
    assert record["mode"] == "quick"
    assert record["command"]
    assert record["machine"]["cpu_count"]
    assert len(record["load_average_before"]) == 3
    assert record["versions"]["trio_sched"]
    rows = {(row["impl"], row["tasks"]): row for row in record["lateness"]}
    kinds = ("enqueue", "enqueue_many")
    assert set(rows) == {(f"trio-sched/memory ({k})", 1) for k in kinds}
    for (_, n), row in rows.items():
        assert row["kind"] in kinds
        for phase in ("enqueued", "started"):
            summary = row[phase]
            # One whole burst, every task fired exactly once, and the handler saw each.
            assert summary["bursts"] == 1
            assert summary["fires"] == n
            assert summary["incomplete_bursts"] == 0
            assert summary["excess_fires"] == 0
            assert len(summary["sample_ms"]) == n
            assert summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
            assert summary["last_max_ms"] == summary["max_ms"]
        assert row["errors"] == 0
        assert row["cpu_us_per_fire"] > 0
    floors = {(row["impl"], row["tasks"]) for row in record["floor"]}
    assert floors == {("floor/trio.sleep_until", 1), ("floor/time.sleep", 1)}
    assert record["idle_cpu"]["tasks"] == 10
    assert set(record["idle_cpu"]["trio-sched"]) == set(kinds)
    assert "apscheduler4" not in record["idle_cpu"]
    (memory,) = record["memory"]
    assert memory["tasks"] == 200
    assert set(memory["trio-sched"]) == set(kinds)
    for ours in memory["trio-sched"].values():
        assert ours["bytes_per_schedule"] > 0
        assert ours["register_s"] > 0
    assert "apscheduler4" not in memory
    assert [(up["kind"], up["tasks"]) for up in record["startup"]] == [(k, 100) for k in kinds]
    for up in record["startup"]:
        assert up["parked"]["complete"]
        assert up["parked"]["parked"] == 100
        assert up["startup_s"] > 0
    assert record["multi"] == []
    assert "cron_throughput" not in record
    goals = {(goal["kind"], goal["goal"]): goal for goal in record["goals"]}
    for kind in kinds:
        assert goals[kind, "1 task: p50 lateness to enqueue"]["met"] in (True, False)
        # Not measured in this mode: said so, not judged.
        assert goals[kind, "1,000 due together: last enqueued, p50 over bursts"]["met"] is None
        assert goals[kind, "memory per idle schedule, 200 tasks"]["limit"] == 1400
        startup = goals[kind, "start-up of 100 tasks, all parked"]
        assert startup["limit"] == pytest.approx(3.0 * 100 / 100_000)
        assert "scaled" in startup["note"]

    out = capsys.readouterr().out
    assert "trio-sched/memory (enqueue)" in out
    assert "trio-sched/memory (enqueue_many)" in out
    assert "floor/trio.sleep_until" in out
    assert "not measured" in out
    assert "| enqueue_many | start-up of 100 tasks" in suite.markdown(record)


@pytest.fixture
def stall(suite: ModuleType) -> ModuleType:
    from benchmarks import stall

    return stall


@pytest.mark.parametrize("kind", ["enqueue", "enqueue_many"])
def test_stall_load_counts_each_occurrence_once(stall: ModuleType, kind: str) -> None:
    import trio

    row = trio.run(stall.run_load, kind, 4, 3, 1)
    first, last = row["window"]
    assert last == first
    minutes = sum(1 for x in range(first, last + 1) if x % 60 == 0)
    assert row["minute_instants"] == minutes
    assert row["expected"] == 3 * 1 + 4 * minutes
    assert row["enqueued_distinct"] + row["lost"] == row["expected"]
    assert row["lost"] == 0
    assert row["duplicates"] == 0
    assert row["second_lateness"]["occurrences"] == 3 * 1
    assert row["stall"]["samples"] > 0
    assert row["startup"]["parked"]["complete"]
    assert row["scheduler"]["errors"] == 0
    verdicts = {g["goal"]: g["verdict"] for g in stall.judge_load(row)}
    assert verdicts["occurrences lost"] == "met"
    assert set(verdicts.values()) <= {"met", "MISSED"}


def test_stall_command_writes_json_with_startup_probe(
    stall: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "stall.json"
    argv = ["--seconds", "1", "--minute-tasks", "2", "--second-tasks", "2"]
    argv += ["--kinds", "enqueue", "--startup-tasks", "50", "--output", str(output)]
    assert stall.main(argv) == 0
    record = json.loads(output.read_text())
    assert record["settings"]["seconds"] == 1
    assert record["command"]
    (load,) = record["load"]
    assert load["kind"] == "enqueue"
    assert load["expected"] >= 2
    (startup,) = record["startup"]
    assert (startup["kind"], startup["tasks"]) == ("enqueue", 50)
    assert startup["parked"]["complete"]
    assert {g["goal"] for g in record["goals"]} >= {
        "occurrences lost",
        "longest loop stall",
        "longest loop stall during start-up of 50 tasks",
    }
    out = capsys.readouterr().out
    assert "targets (issue 11" in out
    assert "| enqueue | 50 |" in stall.markdown(record)
