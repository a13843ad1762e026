"""`benchmarks/jobs_throughput.py` runs end to end on both backends and records rows.

Tiny N: this checks the benchmark's plumbing (every job handled, JSON written), never
its numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_jobs_throughput_quick_run(
    backend: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `benchmarks` is a package at the project root, which pytest does not put on sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    from benchmarks import jobs_throughput

    output = tmp_path / "result.json"
    argv = ["--backend", backend, "--n", "40", "--url", redis_url, "--output", str(output)]
    assert jobs_throughput.main(argv) == 0
    record = json.loads(output.read_text())
    assert [row["row"] for row in record["results"]] == [
        "enqueue serial",
        "enqueue concurrent",
        "drain",
        "end to end",
    ]
    assert all(row["n"] == 40 and row["jobs_per_s"] > 0 for row in record["results"])
