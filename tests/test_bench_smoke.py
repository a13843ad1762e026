"""The cron throughput benchmark runs end to end and records what it measured.

Tiny batches, one repeat: this checks the benchmark's plumbing, never its numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_cron_throughput_quick_run_writes_ratios(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `benchmarks` is a package at the project root, which pytest does not put on sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    from benchmarks import cron_throughput

    output = tmp_path / "result.json"
    argv = ["--quick", "--repeats", "1", "--segment-length", "3", "--segments", "1"]
    argv += ["--starts", "4", "--output", str(output)]
    assert cron_throughput.main(argv) == 0

    record = json.loads(output.read_text())
    rows = record["results"]
    expected = {
        (mode, expr) for mode in cron_throughput.MODES for expr in cron_throughput.EXPRESSIONS
    }
    assert {(row["mode"], row["expression"]) for row in rows} == expected
    for row in rows:
        for library in cron_throughput.LIBRARIES:
            assert row[f"{library}_ops_per_s"] > 0
        assert row["ours_vs_cronsim"] == pytest.approx(
            row["ours_ops_per_s"] / row["cronsim_ops_per_s"], rel=0.01
        )
        assert row["ours_vs_croniter"] > 0
        assert row["target_met"] in ((True, False) if row["mode"] != "random+parse" else (None,))
    assert record["settings"]["repeats"] == 1
    assert record["settings"]["random_starts"] == 4
    assert record["machine"]["cpu_count"] is not None
    assert set(record["versions"]) >= {"trio_sched", "cronsim", "croniter", "python"}
    assert record["command"]
    # Every library agreed on every compared fire (3 chain fires + 4 random starts).
    for report in record["agreement"]:
        assert report["compared"] == 7
        assert report["mismatches_vs_cronsim"] == 0
        assert report["mismatches_vs_croniter"] == 0

    table = capsys.readouterr().out
    assert "ours/cronsim" in table
    assert "ours/croniter" in table


@pytest.mark.parametrize("per_job", [False, True])
def test_runtime_cpu_counts_every_fire_of_every_burst(
    monkeypatch: pytest.MonkeyPatch, per_job: bool
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    import trio
    import trio.testing
    from benchmarks import runtime_cpu

    fires, cpu, full = trio.run(
        lambda: runtime_cpu.measure(20, 3, per_job=per_job),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert fires == 20 * 3  # every task fired once per burst, nothing twice
    assert cpu > 0
    assert full >= 0
