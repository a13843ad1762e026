"""Task policies across processes (issue 12), on real Redis and PostgreSQL.

Three scheduler processes (`_policy_child`, rules PC1-PC4) share the lock provider and
the jobs runtime of one backend; a worker process consumes the jobs. p0 runs all the
time and pauses task ``paused`` `PAUSE_AT` s in; p1 and p2 also run the ``catchup``
task (``fire_all``) and are SIGKILLed together `KILL_AT` s in (at a half second, away
from dispatches) and restarted `DOWN` s later. Then, for the run's window:

- ``plain``: every occurrence dispatched exactly once (the locks), whoever won, across
  the SIGKILL and restart of two of the three schedulers (the equal-clocks variant of
  `test_exactly_once`), none dropped by a misfire, no fencing token used twice.
- ``jit`` (jitter 0.8 s): every occurrence once, each enqueued at its nominal instant
  plus its own delay (`_plan.jitter_delay`: the same on every process).
- ``paused``: nothing whose lock was asked for after the pause returned is dispatched
  by any process; every scheduler that ran after it reports skips with reason paused.
- ``forbid`` (2.5 s handler, every second): no two runs overlap; skips with reason
  overlap are reported.
- ``replace`` (5 s handler, every 2 s): every run but the last is cancelled by its
  successor, so runs overlap at most by one lease-extension period of the worker.
- ``catchup``: every occurrence once, including those due while p1 and p2 were down,
  which the restarted processes fired late (each process oldest first).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from trio_sched import _plan

from ._policy_child import JITTER, VISIBILITY
from .conftest import Backend
from .test_exactly_once import Child, kill_all, sleep_to_half_second, wait_running

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("_policy_child.py")
ROOT = Path(__file__).resolve().parents[2]
RUN = 8.0
PAUSE_AT = 3.5
KILL_AT = 2.0
DOWN = 2.0
WORKER_EXTRA = 1.0  # the worker outlives the schedulers, to run what they enqueued


def spawn(backend: Backend, tmp: Path, label: str, role: str, seconds: float, *extra: str) -> Child:
    status = tmp / f"{label}.json"
    stderr = tmp / f"{label}.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable, str(CHILD), "--role", role, "--backend", backend.kind,
                "--url", backend.url, "--space", backend.space, "--records", backend.records,
                "--seconds", str(seconds), "--status", str(status), *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )  # fmt: skip
    return Child(label, 0.0, seconds, status, stderr, proc)


def finish(child: Child) -> dict[str, Any]:
    try:
        code = child.proc.wait(timeout=child.seconds + 40)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{child.label} did not exit by itself:\n{child.stderr()}")
    assert code == 0, f"{child.label} exited with {code}:\n{child.stderr()}"
    status = child.status()
    assert status is not None
    assert "exited_wall" in status, child.stderr()
    return status


def drop_jobs(backend: Backend) -> None:
    if backend.kind == "redis":
        return  # the conftest removes every key of the prefix
    with psycopg.connect(backend.url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(f"{backend.space}_jobs"))
        )


def seconds_between(lo: float, hi: float) -> list[int]:
    """Epoch ms of the whole seconds in [lo, hi] (wall seconds)."""
    return [s * 1000 for s in range(int(lo) + 1, int(hi) + 1)]


def run_policies(backend: Backend, tmp: Path) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    """The scenario on one backend: its records, the final schedulers' statuses and the
    wall time of the kill."""
    tmp.mkdir()
    children: list[Child] = []
    try:
        worker = spawn(backend, tmp, "worker", "worker", RUN + WORKER_EXTRA + 2)
        children.append(worker)
        p0 = spawn(backend, tmp, "p0", "scheduler", RUN, "--pause-at", str(PAUSE_AT))
        p1 = spawn(backend, tmp, "p1", "scheduler", RUN, "--catchup")
        p2 = spawn(backend, tmp, "p2", "scheduler", RUN, "--catchup")
        children += [p0, p1, p2]
        wait_running(children)
        time.sleep(KILL_AT)
        sleep_to_half_second()
        killed_wall = time.time()
        for victim in (p1, p2):
            victim.proc.send_signal(signal.SIGKILL)
        for victim in (p1, p2):
            assert victim.proc.wait(timeout=10) == -signal.SIGKILL
        time.sleep(DOWN)
        remaining = RUN - KILL_AT - DOWN
        p1b = spawn(backend, tmp, "p1-again", "scheduler", remaining, "--catchup")
        p2b = spawn(backend, tmp, "p2-again", "scheduler", remaining, "--catchup")
        children += [p1b, p2b]
        wait_running([p1b, p2b])
        statuses = {c.label: finish(c) for c in (p0, p1b, p2b)}
        finish(worker)
        return backend.read_records(), statuses, killed_wall
    finally:
        kill_all(children)
        drop_jobs(backend)


def test_policies_hold_across_processes(both_backends: list[Backend], tmp_path: Path) -> None:
    """Redis and PostgreSQL at the same time (each with its own four processes), so the
    suite pays for one run: the processes are light, and nothing asserted depends on a
    busy core beyond the bounds stated in `check`."""
    with ThreadPoolExecutor(max_workers=len(both_backends)) as pool:
        runs = {b.kind: pool.submit(run_policies, b, tmp_path / b.kind) for b in both_backends}
        results = {kind: run.result() for kind, run in runs.items()}
    for kind, (records, statuses, killed_wall) in results.items():
        try:
            check(records, statuses, killed_wall)
        except AssertionError as exc:
            raise AssertionError(f"on {kind}: {exc}") from exc


def check(
    records: list[dict[str, Any]],
    statuses: dict[str, dict[str, Any]],
    killed_wall: float,
) -> None:
    for label, status in statuses.items():
        assert status["errors"] == [], (label, status["errors"])
    enq: dict[str, list[dict[str, Any]]] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        (enq if r["kind"] == "enq" else runs).setdefault(r["task"], []).append(r)
    p0 = statuses["p0"]
    # The window p0 covered on its own, with 1 s margins.
    lo, hi = p0["started_wall"] + 1.0, p0["exited_wall"] - 1.5
    window = seconds_between(lo, hi)
    assert len(window) >= 5

    def once(task: str) -> Counter[int]:
        seen = Counter(r["nominal_ms"] for r in enq.get(task, []))
        duplicates = {ms: n for ms, n in seen.items() if n > 1}
        assert not duplicates, (task, duplicates)
        return seen

    # plain: exactly once, nothing missing, nothing dropped by a misfire (the restarted
    # processes resume after the shared watermark, which p0 keeps moving); every record
    # carries its occurrence's idempotency key, and no fencing token is used twice.
    plain = once("plain")
    assert [ms for ms in window if ms not in plain] == []
    assert len({r["pid"] for r in enq["plain"]}) >= 2  # the processes competed
    for label, status in statuses.items():
        assert "misfire" not in status["tasks"]["plain"]["skipped_by"], label
    every = [r for rs in enq.values() for r in rs]
    assert all(r["idem"] == f"{r['task']}:{r['nominal_ms']}" for r in every)
    fencing = Counter(r["fencing"] for r in every)
    assert all(n == 1 for n in fencing.values()), "a fencing token was granted twice"

    # jit: once each, at nominal + its delay (the same delay whoever enqueued it).
    jit = once("jit")
    assert [ms for ms in window if ms not in jit] == []
    for r in enq["jit"]:
        delay = _plan.jitter_delay("jit", r["nominal_ms"], JITTER, 1.0)
        late = r["wall"] - (r["nominal_ms"] / 1000 + delay)
        assert -0.05 <= late <= 0.5, (r, delay, late)

    # paused: nothing dispatched after the pause, by anyone; all schedulers saw it.
    paused_wall = p0["paused_wall"]
    after = [r for r in enq.get("paused", []) if r["nominal_ms"] / 1000 > paused_wall + 0.05]
    assert after == []
    before = [ms for ms in once("paused") if ms / 1000 < paused_wall - 1.5]
    assert before  # it ran before the pause
    for label, status in statuses.items():
        by = status["tasks"]["paused"]["skipped_by"]
        assert by.get("paused", 0) >= 2, (label, by)
        assert status["tasks"]["paused"]["paused"], label

    # forbid: no two runs overlap; overlaps were skipped.
    forbid = sorted(runs.get("forbid", []), key=lambda r: r["start"])
    assert len(forbid) >= 2
    for a, b in itertools.pairwise(forbid):
        assert a["end"] <= b["start"] + 0.01, (a, b)
    assert sum(s["tasks"]["forbid"]["skipped_by"].get("overlap", 0) for s in statuses.values())

    # replace: each run but the last was cancelled by its successor, within one
    # extension period (VISIBILITY / 3) of the successor's start, plus slack.
    replace = sorted(runs.get("replace", []), key=lambda r: r["start"])
    assert len(replace) >= 3
    for a, b in itertools.pairwise(replace):
        assert a["cancelled"], a
        assert a["end"] - b["start"] <= VISIBILITY / 3 + 0.75, (a, b)

    # catchup: every occurrence once, the ones missed while p1 and p2 were down fired
    # late by the restarted processes.
    restarted = min(statuses[label]["started_wall"] for label in ("p1-again", "p2-again"))
    catch = once("catchup")
    span = seconds_between(lo, hi)
    assert [ms for ms in span if ms not in catch] == []
    missed = [r for r in enq["catchup"] if killed_wall < r["nominal_ms"] / 1000 < restarted]
    assert len(missed) >= 1, "nothing was due while p1 and p2 were down"
    for r in missed:  # fired after the restart, so late
        assert r["wall"] >= restarted - 0.05, (r, restarted)
    # Oldest first within each process (two processes catching up together interleave:
    # one takes the next occurrence while the other still enqueues the one before).
    for pid in {r["pid"] for r in missed}:
        own = sorted((r for r in missed if r["pid"] == pid), key=lambda r: r["wall"])
        assert [r["nominal_ms"] for r in own] == sorted(r["nominal_ms"] for r in own), pid
