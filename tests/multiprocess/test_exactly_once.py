"""Exactly once across OS processes (issue 4, "Proof"), on Redis and on Postgres.

Three processes (`_child.py`) run the same tasks on one shared backend and record every
dispatch into it without dedupe. From the records, for every task:
- no (task, nominal) pair is recorded twice, by any process, over the whole run;
- every nominal occurrence of the task inside the window that every process running
  throughout covers (its own wall clock, 1 s margins at both ends) is recorded: none is
  missing;
- each record carries the occurrence's idempotency key, and no fencing token is used by
  two dispatches.

Variant: wall clocks skewed by -2, 0 and +2 s with the +2 s process (the one that
reaches every occurrence first, so it wins nearly every lock) SIGKILLed mid-run at a
half second and started again with the same skew. (Equal clocks, with two of three
processes SIGKILLed and restarted, are the ``plain`` task of `test_policies`, on the
same backends with the real jobs runtimes.)

Why nothing may be missing in the kill variant, although the restarted process's first
occurrences can be late under its own clock (it resumes after the shared watermark,
which the other processes keep moving): a late occurrence is skipped (skip policy) or
fired once (fire_once) by THAT process only, while the two processes that never stopped
reach every occurrence on time on their own clocks and fire it if nobody holds it. The
kill lands at a half second, away from dispatches (they take milliseconds after a whole
second), so it does not strand a held lock: a process killed between acquire and
enqueue is the fault variant below.

Fault variant (rule M7 of `_child`, rule D12 of the runtime): four processes with lock
TTL 1 s and ``misfire_grace`` 3 s; two victims with clocks ahead (they reach every
occurrence first and take its leases). One SIGKILLs itself inside its enqueue, holding
a whole burst's leases undispatched; later the other stops dead for 2.5 s right after
an ``acquire_batch`` granted it leases. Either way the others find those occurrences
held, take them over once the leases run out and dispatch them: nothing is missing and
nothing is recorded twice; the paused holder reports ``lease_lost`` and enqueues
nothing under the leases that ran out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from trio_sched._plan import epoch_ms, from_epoch_ms

from ._child import TASKS
from .conftest import Backend

CHILD = Path(__file__).with_name("_child.py")
ROOT = Path(__file__).resolve().parents[2]
MARGIN_MS = 1000  # start and end margins of each process's covered window
START_TIMEOUT = 30.0  # generous: three interpreters start on two cores

pytestmark = pytest.mark.slow


@dataclass
class Child:
    label: str
    skew: float
    seconds: float
    status_path: Path
    stderr_path: Path
    proc: subprocess.Popen[bytes]

    def status(self) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return None
        return result

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text()[-6000:]
        except FileNotFoundError:
            return ""


def spawn(
    backend: Backend,
    tmp: Path,
    label: str,
    seconds: float,
    skew: float,
    extra: Sequence[str] = (),
) -> Child:
    status = tmp / f"{label}.json"
    stderr = tmp / f"{label}.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                "--backend", backend.kind,
                "--url", backend.url,
                "--space", backend.space,
                "--records", backend.records,
                "--seconds", str(seconds),
                "--skew", str(skew),
                "--status", str(status),
                *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )  # fmt: skip
    return Child(label, skew, seconds, status, stderr, proc)


def wait_running(children: list[Child]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for child in children:
        while child.status() is None:
            if child.proc.poll() is not None:
                pytest.fail(f"{child.label} exited early:\n{child.stderr()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{child.label} did not start:\n{child.stderr()}")
            time.sleep(0.05)


def wait_done(children: list[Child]) -> None:
    for child in children:
        # The child's own faulthandler deadline (20 s past its run time) fires first.
        try:
            code = child.proc.wait(timeout=child.seconds + 40)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{child.label} did not exit by itself:\n{child.stderr()}")
        assert code == 0, f"{child.label} exited with {code}:\n{child.stderr()}"
        status = child.status()
        assert status is not None, child.stderr()
        assert "exited_wall" in status, child.stderr()


def kill_all(children: list[Child]) -> None:
    for child in children:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(timeout=10)


def sleep_to_half_second() -> None:
    """Sleep until the real clock is at x.5 s: away from the whole-second dispatches."""
    frac = time.time() % 1.0
    time.sleep((0.5 - frac) % 1.0)


def window(initial: list[Child], completed: list[Child]) -> tuple[int, int]:
    """Nominal epoch ms covered by every process: after the last of the `initial` ones
    started and before the first of the `completed` ones stopped (own wall clocks)."""
    started = [child.status() for child in initial]
    stopped = [child.status() for child in completed]
    lo = max(int(s["started_wall"] * 1000) for s in started if s) + MARGIN_MS
    hi = min(int(s["stopped_wall"] * 1000) for s in stopped if s) - MARGIN_MS
    return lo, hi


def expected(lo_ms: int, hi_ms: int) -> set[tuple[str, int]]:
    """Every (task, nominal ms) of every task with lo_ms <= nominal <= hi_ms."""
    out: set[tuple[str, int]] = set()
    for task in TASKS:
        t = task.cron.next_after(from_epoch_ms(lo_ms) - timedelta(milliseconds=1))
        while epoch_ms(t) <= hi_ms:
            out.add((task.name, epoch_ms(t)))
            t = task.cron.next_after(t)
    return out


def policy_dropped(children: list[Child]) -> set[tuple[str, int]]:
    """Occurrences a misfire decision of some process dropped (rule M6 of `_child`):
    skip drops first late .. decided; fire_once drops first late .. before decided."""
    dropped: set[tuple[str, int]] = set()
    for child in children:
        status = child.status()
        assert status is not None
        for name, first_ms, decided_ms, action in status["misfires"]:
            task = next(t for t in TASKS if t.name == name)
            t = from_epoch_ms(first_ms)
            while epoch_ms(t) < decided_ms or (action == "skip" and epoch_ms(t) == decided_ms):
                dropped.add((name, epoch_ms(t)))
                t = task.cron.next_after(t)
    return dropped


def check_records(
    records: list[dict[str, Any]],
    lo_ms: int,
    hi_ms: int,
    pids: set[int],
    allowed_missing: set[tuple[str, int]],
) -> set[tuple[str, int]]:
    """Assert exactly once in [lo_ms, hi_ms]; return the occurrences missing by policy."""
    seen = Counter((r["task"], r["nominal_ms"]) for r in records)
    duplicates = {occ: n for occ, n in seen.items() if n > 1}
    assert not duplicates, f"dispatched more than once: {duplicates}"
    want = expected(lo_ms, hi_ms)
    # A window of at least 5 s: 4 every-second tasks and 1 every-two-seconds task.
    assert len(want) >= 5 * 4 + 2, (lo_ms, hi_ms)
    missing = want - set(seen)
    unexplained = sorted(missing - allowed_missing)
    assert not unexplained, f"never dispatched and not dropped by a misfire: {unexplained}"
    for r in records:
        assert r["idem"] == f"{r['task']}:{r['nominal_ms']}", r
        assert r["pid"] in pids, r
    fencing = Counter(r["fencing"] for r in records)
    assert all(n == 1 for n in fencing.values()), "a fencing token was granted twice"
    return missing


def check_statuses(children: list[Child]) -> None:
    for child in children:
        status = child.status()
        assert status is not None
        assert status["errors"] == [], (child.label, status["errors"])


def contention(children: list[Child]) -> int:
    """Occurrences some process found already held: the processes really competed."""
    total = 0
    for child in children:
        status = child.status()
        assert status is not None
        total += sum(t["lock_misses"] for t in status["tasks"].values())
    return total


def run_scenario(
    backend: Backend, tmp: Path, run: float, skews: tuple[float, float, float], kill_at: float
) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """Three processes with `skews`; the LAST one is SIGKILLed `kill_at` s after they all
    run (at a half second) and restarted (0 = no kill). Asserts exactly once; returns
    (occurrences missing, occurrences some misfire decision dropped)."""
    children: list[Child] = []
    try:
        children = [spawn(backend, tmp, f"p{i}", run, skew) for i, skew in enumerate(skews)]
        initial = list(children)
        wait_running(children)
        started = time.monotonic()
        completed = list(children)
        if kill_at:
            victim = children[2]
            time.sleep(kill_at)
            sleep_to_half_second()
            victim.proc.send_signal(signal.SIGKILL)
            assert victim.proc.wait(timeout=10) == -signal.SIGKILL
            # Down for about two whole seconds (the restart itself takes a few hundred ms).
            time.sleep(1.5)
            remaining = max(4.0, run - (time.monotonic() - started))
            again = spawn(backend, tmp, "p2-again", remaining, skews[2])
            children.append(again)
            wait_running([again])
            completed = [children[0], children[1], again]
        wait_done(completed)
        lo, hi = window(initial, completed)
        records = backend.read_records()
        dropped = policy_dropped(completed)
        missing = check_records(records, lo, hi, {c.proc.pid for c in children}, dropped)
        check_statuses(completed)
        assert contention(completed) > 0
        if kill_at:
            # The restarted process took part: it dispatched or found occurrences held.
            again_status = children[3].status()
            assert again_status is not None
            assert sum(t["fired"] + t["lock_misses"] for t in again_status["tasks"].values())
            if skews[2] > max(skews[:2]):
                # Its clock is ahead: it reaches every occurrence first, so the kill hit
                # the process doing the dispatching, and restarted it leads again. (With
                # equal clocks who wins is a race, possibly always the same process.)
                fired_by = Counter(r["pid"] for r in records)
                assert fired_by[children[2].proc.pid] > 0, fired_by
                assert fired_by[children[3].proc.pid] > 0, fired_by
        return missing, dropped
    finally:
        kill_all(children)


def test_skewed_clocks_with_the_leader_sigkilled(backend: Backend, tmp_path: Path) -> None:
    # Clocks -2, 0, +2 s; the +2 s process reaches every occurrence first and wins nearly
    # every lock. It is killed and restarted. Restarted, its clock is ~2 s ahead of the
    # watermark the others keep, so its first occurrence may be late ON ITS CLOCK: the
    # skip policy drops it there, and its next on-time dispatch moves the shared
    # watermark past it before the others (on time, their clocks behind) reach it. By
    # rule D10 of the runtime the others still fire it: an on-time occurrence that close
    # below the watermark is left to its lock, which nobody took. So nothing is missing,
    # even where the restarted process reported a misfire.
    missing, _dropped = run_scenario(backend, tmp_path, 13.5, (-2.0, 0.0, 2.0), kill_at=4.5)
    assert missing == set()


FAULT_OPTIONS = ("--lock-ttl", "1.0", "--grace", "3.0")


def test_holders_failing_between_acquire_and_enqueue_lose_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    """Four processes: two that never fail, and two victims whose clocks run ahead (so
    they take the leases first). The one 0.3 s ahead SIGKILLs itself inside its enqueue
    3 s in, holding a burst's leases; then the one 0.2 s ahead leads, and 4.5 s in it
    stops dead for 2.5 s right after an acquire granted it leases (rule M7 of
    `_child`). Exactly once with nothing missing, and the survivors took over."""
    run = 10.0
    children: list[Child] = []
    try:
        children = [
            spawn(backend, tmp_path, "p0", run, 0.0, FAULT_OPTIONS),
            spawn(backend, tmp_path, "p1", run, 0.0, FAULT_OPTIONS),
            spawn(
                backend,
                tmp_path,
                "dies",
                run,
                0.3,
                (*FAULT_OPTIONS, "--fault", "die-in-enqueue", "--fault-after", "3"),
            ),
            spawn(
                backend,
                tmp_path,
                "pauses",
                run,
                0.2,
                (*FAULT_OPTIONS, "--fault", "pause-after-acquire", "--fault-after", "4.5"),
            ),
        ]
        wait_running(children)
        dies, pauses = children[2], children[3]
        code = dies.proc.wait(timeout=run + 30)
        assert code == -signal.SIGKILL, (code, dies.stderr())
        survivors = children[:2]
        completed = [*survivors, pauses]
        wait_done(completed)
        lo, hi = window(children, completed)
        records = backend.read_records()
        dropped = policy_dropped(completed)
        missing = check_records(records, lo, hi, {c.proc.pid for c in children}, dropped)
        assert missing == set()
        check_statuses(survivors)
        takeovers = 0
        for child in survivors:
            status = child.status()
            assert status is not None
            takeovers += sum(t["takeovers"] for t in status["tasks"].values())
        # Each victim held a burst's leases (one per task due) when it failed.
        assert takeovers >= 2, takeovers
        status = pauses.status()
        assert status is not None
        assert status["errors"], ("the paused holder reported no lease_lost", pauses.stderr())
        assert all(e.startswith("lease_lost ") for e in status["errors"]), status["errors"]
    finally:
        kill_all(children)
