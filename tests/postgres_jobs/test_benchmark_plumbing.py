"""`benchmarks/jobs_throughput.py --backend postgres` runs end to end and records rows.

Tiny N: this checks the benchmark's plumbing (every job handled, JSON written, the
table dropped), never its numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest


def test_jobs_throughput_quick_run_on_postgres(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `benchmarks` is a package at the project root, which pytest does not put on sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    from benchmarks import jobs_throughput

    output = tmp_path / "result.json"
    argv = ["--backend", "postgres", "--n", "40", "--url", postgres_url, "--output", str(output)]
    assert jobs_throughput.main(argv) == 0
    record = json.loads(output.read_text())
    assert [row["row"] for row in record["results"]] == [
        "enqueue serial",
        "enqueue concurrent",
        "drain",
        "end to end",
    ]
    assert all(row["n"] == 40 and row["jobs_per_s"] > 0 for row in record["results"])
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'trio_sched_bench_jobs_%'"
        ).fetchone()
    assert left == (0,)


def test_remote_postgres_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    from benchmarks import jobs_throughput

    with pytest.raises(SystemExit):
        jobs_throughput.main(["--backend", "postgres", "--url", "postgresql://db.example.com/x"])
