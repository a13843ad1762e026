"""The benchmark suite runs end to end in a tiny mode and records what it measured.

Plumbing only, never numbers: no timing is asserted. The smoke run covers our side
(memory lock backend) and the floor; the APScheduler 4 side, Redis, Postgres, the
multi-instance runs and the plot are exercised by ``nox -s bench`` (APScheduler and
matplotlib are benchmark-only dependencies, not test dependencies).
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
    argv = ["--quick", "--sizes", "1", "3", "--backends", "memory", "--bursts", "1"]
    argv += ["--memory-sizes", "200", "--idle-tasks", "10", "--idle-seconds", "0.2"]
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
    assert set(rows) == {("trio-sched/memory", 1), ("trio-sched/memory", 3)}
    for (_, n), row in rows.items():
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
    assert floors == {
        ("floor/trio.sleep_until", 1),
        ("floor/trio.sleep_until", 3),
        ("floor/time.sleep", 1),
    }
    assert record["idle_cpu"]["tasks"] == 10
    assert "apscheduler4" not in record["idle_cpu"]
    (memory,) = record["memory"]
    assert memory["tasks"] == 200
    assert memory["trio-sched"]["bytes_per_schedule"] > 0
    assert memory["trio-sched"]["register_s"] > 0
    assert "apscheduler4" not in memory
    assert record["multi"] == []
    assert "cron_throughput" not in record
    goals = {goal["goal"]: goal for goal in record["goals"]}
    assert goals["1 task: p50 lateness to enqueue"]["met"] in (True, False)
    # Not measured in this mode: said so, not judged.
    assert goals["1,000 due together: last enqueued, p50 over bursts"]["met"] is None

    out = capsys.readouterr().out
    assert "trio-sched/memory" in out
    assert "floor/trio.sleep_until" in out
    assert "not measured" in out
