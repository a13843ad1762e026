"""Per-operation latency of `PostgresLockProvider` against a local Postgres, from Trio.

Run from the project root:  python -m benchmarks.postgres_ops [--url URL] [--n N] [--batches B]

The server is ``--url``, else ``TRIO_SCHED_POSTGRES_URL``, else
postgresql://127.0.0.1:5432/test. Only loopback hosts or Unix sockets are accepted. The
lock tables get a fresh random name and are dropped at the end.

What is measured (wall time per call on `time.perf_counter`, from inside `trio.run`):
- ping:            ``health_check`` (``SELECT 1`` through the worker-thread driver): the
                   floor of one thread hand-off plus one round trip.
- acquire:         ``acquire`` of a fresh key (one INSERT ... ON CONFLICT), one at a time.
- renew:           ``renew`` of each lease just taken.
- release:         ``release`` of each lease.
- acquire_batch:   ``acquire_batch`` of 1,000 fresh keys, each with a watermark check
                   (one statement).
- advance_wm:      ``advance_watermarks`` of 1,000 names (one statement).
- 1000 concurrent: 1,000 single ``acquire`` calls started together (total time of the
                   whole group, repeated), to compare with one batch of 1,000.
- raw acquire:     the same INSERT with a sync psycopg connection in the main thread, no
                   Trio and no thread: what the driver adds on top.
p50/p99 are over all calls of a row; the table also gives the mean and the count.
``--no-synchronous-commit`` measures with ``synchronous_commit=False`` (rule PG8 of
`trio_sched.locks.postgres`): writes then do not wait for the WAL flush.
The amortised cleanup is off (``cleanup_interval=None``) so every row times one kind of
statement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import time
from pathlib import Path

import psycopg
import trio
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from benchmarks._lock_ops import measure_provider, percentile
from trio_sched._postgres_common import redact_dsn
from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

RESULTS = Path(__file__).parent / "results"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


async def measure(
    url: str, table: str, n: int, batches: int, sync_commit: bool
) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {}
    config = PostgresLockProviderConfig(
        url=url,
        table=table,
        max_connections=10,
        cleanup_interval=None,
        synchronous_commit=sync_commit,
    )
    async with PostgresLockProvider(config) as locks:
        rows.update(await measure_provider(locks, n, batches))

    statement = sql.SQL(
        "INSERT INTO {} AS l (key, token, expires_at)"
        " VALUES (%s, %s, clock_timestamp() + %s * interval '1 second')"
        " ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token,"
        " fencing_token = DEFAULT, expires_at = EXCLUDED.expires_at"
        " WHERE l.expires_at <= clock_timestamp()"
        " RETURNING l.fencing_token, l.expires_at"
    ).format(sql.Identifier(table))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT set_config('synchronous_commit', %s, false)", ("on" if sync_commit else "off",)
        )
        rows["raw acquire (no trio, no thread)"] = samples = []
        for i in range(n):
            started = time.perf_counter()
            conn.execute(statement, (f"raw:{i}", "t", 30.0)).fetchone()
            samples.append(time.perf_counter() - started)
    return rows


def drop(url: str, table: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for name in (table + "_paused", table + "_watermarks", table):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def is_local(url: str) -> bool:
    params = conninfo_to_dict(url)
    hosts = [h for h in str(params.get("host") or "").split(",") if h]
    addrs = [h for h in str(params.get("hostaddr") or "").split(",") if h]
    return all(h in LOOPBACK or h.startswith("/") for h in hosts) and all(
        a in LOOPBACK for a in addrs
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("TRIO_SCHED_POSTGRES_URL", "postgresql://127.0.0.1:5432/test"),
    )
    parser.add_argument("--n", type=int, default=2000, help="calls per single-key row")
    parser.add_argument("--batches", type=int, default=30, help="calls per 1,000-key row")
    parser.add_argument(
        "--no-synchronous-commit",
        action="store_true",
        help="run with synchronous_commit=False (commits do not wait for the disk)",
    )
    args = parser.parse_args()
    sync_commit = not args.no_synchronous_commit
    if not is_local(args.url):
        raise SystemExit(f"refusing a non-loopback server: {redact_dsn(args.url)}")
    table = f"trio_sched_bench_{secrets.token_hex(4)}"
    try:
        rows = trio.run(measure, args.url, table, args.n, args.batches, sync_commit)
    finally:
        drop(args.url, table)

    with psycopg.connect(args.url) as conn:
        server = conn.info.parameter_status("server_version") or "?"
    print(
        f"PostgresLockProvider latency, {redact_dsn(args.url)} (postgres {server}), "
        f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), trio {trio.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} cpus, "
        f"synchronous_commit={'on' if sync_commit else 'off'}"
    )
    print(f"{'operation':36} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}")
    record = {}
    for name, samples in rows.items():
        p50, p99, mean = (
            percentile(samples, 0.5),
            percentile(samples, 0.99),
            statistics.fmean(samples),
        )
        record[name] = {
            "n": len(samples),
            "p50_ms": p50 * 1e3,
            "p99_ms": p99 * 1e3,
            "mean_ms": mean * 1e3,
        }
        print(f"{name:36} {len(samples):>6} {p50 * 1e3:>9.3f} {p99 * 1e3:>9.3f} {mean * 1e3:>9.3f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("postgres_ops.json" if sync_commit else "postgres_ops_async_commit.json")
    out.write_text(
        json.dumps({"server": server, "synchronous_commit": sync_commit, "rows": record}, indent=2)
    )
    print(f"recorded in {out}")


if __name__ == "__main__":
    main()
