"""Loop stalls and lost occurrences at scale (issue 11, section 3), and start-up.

Run from the project root::

    python -m benchmarks stall --full            # 200 s per kind, 100,000-task start-up
    python -m benchmarks stall --quick           # 65 s per kind, 20,000-task start-up
    python -m benchmarks stall --seconds 200 --minute-tasks 20000 --second-tasks 2000

Rules (what is measured):
- L1 Load: memory lock provider, and a recording jobs runtime of each kind (rule H1 of
  `benchmarks._harness`) that drops each job after one checkpoint (the scheduler alone).
  ``--minute-tasks`` tasks (20,000) on ``* * * * *`` (5 fields: each whole minute) and
  ``--second-tasks`` tasks (2,000) on ``* * * * * *``, all registered before start,
  default `Config` (``misfire_grace`` 1 s, skip policy).
- L2 Window: nominal instants from the first whole second at least 1 s after every loop
  is parked (rule H3), for ``--seconds`` seconds. Expected occurrences: every (task,
  nominal) due in it. The recorder keeps one bit per (task, nominal), so each is counted
  once: lost = expected minus distinct enqueued (waiting until each is in or 3 s after
  the window); duplicates = enqueues of a (task, nominal) already seen.
- L3 Every-second lateness: wall clock at enqueue (rule H2) minus the nominal instant,
  of the first enqueue of each every-second occurrence in the window: p50, p99, max.
  Every-minute bursts: lateness of the last of each burst.
- L4 Loop stall: a `LoopProbe` (rule H4) over the window: p50, p99, max oversleep and the
  five longest, with their second of the minute. ``statistics()`` is read only after the
  window (one snapshot of 22,000 tasks holds the loop for a noticeable time).
- L5 Start-up (also in the suite): N tasks that never fire during the run (January 1st)
  are registered on a scheduler that is not started (timed); then the probe runs while
  ``nursery.start(scheduler.run)`` starts the scheduler until every loop is parked (rule
  H3): the start-up time and the longest stall while it happens. The load scenario
  reports the same for its own 22,000 tasks.
- L6 Targets (printed met/MISSED with the figure; nothing is asserted): nothing lost,
  every-second lateness p99 <= 50 ms and max <= 200 ms, longest stall <= 50 ms; start-up
  of 100,000 tasks <= 3 s with its longest stall <= 50 ms. Results are JSON under
  ``benchmarks/results/`` (machine, load average, versions, exact command).
- L7 ``--gc-freeze`` adds, for each kind, a second load run where the process calls
  ``gc.freeze()`` once every loop is parked (what an application may choose to do: it
  is process-wide, so the scheduler never does it). Its rows are labelled
  ``<kind>+gc.freeze`` and judged against the same targets; the plain rows still count.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import math
import os
import shlex
import sys
import time
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from trio_sched import Config, Scheduler, Task
from trio_sched.jobs import Job
from trio_sched.locks import MemoryLockProvider

from ._harness import KINDS, LoopProbe, TimedLocks, wait_parked

RESULTS = Path(__file__).resolve().parent / "results"
NEVER_DURING_RUN = "0 0 0 1 1 *"  # January 1st, 00:00:00 UTC
EVERY_MINUTE = "* * * * *"
EVERY_SECOND = "* * * * * *"
TARGETS = {  # rule L6
    "lost": 0.0,
    "second_p99_ms": 50.0,
    "second_max_ms": 200.0,
    "stall_max_ms": 50.0,
    "startup_s": 3.0,
    "startup_stall_max_ms": 50.0,
}
STARTUP_TARGET_TASKS = 100_000


class _Counting:
    """A sink jobs runtime keeping one bit per (task, nominal) (rule L2), ``enqueue`` only.

    Task names are ``m{i}`` (every minute) and ``s{i}`` (every second). Nothing it keeps
    is tracked by the garbage collector (bytearrays and arrays), so recording 400,000
    occurrences does not make the collector's passes longer.
    """

    def __init__(self, minute_tasks: int, second_tasks: int) -> None:
        self.sizes = {"m": minute_tasks, "s": second_tasks}
        self.seen: dict[tuple[str, float], bytearray] = {}
        self.duplicates: dict[tuple[str, float], int] = {}
        self.count: dict[tuple[str, float], int] = {}
        self.last: dict[tuple[str, float], float] = {}  # latest enqueue wall per burst
        self.second_nominal = array("d")
        self.second_lateness = array("d")
        self.total = 0

    def _note(self, now: float, job: Job) -> None:
        assert job.run_at is not None
        nominal = job.run_at.timestamp()
        group, index = job.name[0], int(job.name[1:])
        key = (group, nominal)
        bits = self.seen.get(key)
        if bits is None:
            bits = self.seen[key] = bytearray(self.sizes[group])
        self.total += 1
        if bits[index]:
            self.duplicates[key] = self.duplicates.get(key, 0) + 1
            return
        bits[index] = 1
        self.count[key] = self.count.get(key, 0) + 1
        self.last[key] = max(self.last.get(key, 0.0), now)
        if group == "s":
            self.second_nominal.append(nominal)
            self.second_lateness.append(now - nominal)

    async def enqueue(self, job: Job) -> None:
        self._note(time.time(), job)
        await trio.lowlevel.checkpoint()

    async def health_check(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class _BatchCounting(_Counting):
    async def enqueue_many(self, jobs: Sequence[Job]) -> list[Exception | None]:
        await trio.lowlevel.checkpoint()
        now = time.time()
        for job in jobs:
            self._note(now, job)
        return [None] * len(jobs)


def _counting(kind: str, minute_tasks: int, second_tasks: int) -> _Counting:
    if kind == "enqueue":
        return _Counting(minute_tasks, second_tasks)
    if kind == "enqueue_many":
        return _BatchCounting(minute_tasks, second_tasks)
    raise ValueError(f"unknown jobs-runtime kind {kind!r}")


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def _until_wall(target: float) -> None:
    delay = target - time.time()
    if delay > 0:
        await trio.sleep(delay)


async def measure_startup(kind: str, n: int) -> dict[str, Any]:
    """Rule L5 for N never-firing tasks: start-up time and longest stall."""
    from ._harness import recorder
    from .suite import _new_jobs

    gc.collect()
    jobs = recorder(kind, _new_jobs(100))
    jobs.sink = True
    locks = TimedLocks(MemoryLockProvider())
    scheduler = Scheduler(jobs=jobs, locks=locks, config=Config())
    began = time.perf_counter()
    for i in range(n):
        scheduler.register(Task(name=f"t{i}", schedule=NEVER_DURING_RUN))
    register_s = time.perf_counter() - began
    probe = LoopProbe()
    async with trio.open_nursery() as nursery:
        await nursery.start(probe.run)
        await trio.sleep(0.05)
        wall0, t0 = time.time(), trio.current_time()
        await nursery.start(scheduler.run)
        start_returned_s = trio.current_time() - t0
        parked = await wait_parked(scheduler, locks, n, 600.0, probe=probe)
        wall1 = wall0 + parked["parked_s"] + start_returned_s
        stall = probe.summary(wall0, wall1)
        scheduler.stop_nowait()
        nursery.cancel_scope.cancel()
    return {
        "kind": kind,
        "tasks": n,
        "register_s": register_s,
        "start_returned_s": start_returned_s,
        # From nursery.start(scheduler.run) until the snapshot that saw all parked.
        "startup_s": start_returned_s + parked["parked_s"],
        "parked": parked,
        "stall": stall,
    }


async def run_load(
    kind: str,
    minute_tasks: int,
    second_tasks: int,
    seconds: int,
    *,
    log: Any = print,
    gc_freeze: bool = False,
) -> dict[str, Any]:
    """Rules L1-L4 (and L7 with `gc_freeze`) for one jobs-runtime kind."""
    gc.collect()
    jobs = _counting(kind, minute_tasks, second_tasks)
    locks = TimedLocks(MemoryLockProvider())
    scheduler = Scheduler(jobs=jobs, locks=locks, config=Config())
    for i in range(minute_tasks):
        scheduler.register(Task(name=f"m{i}", schedule=EVERY_MINUTE))
    for i in range(second_tasks):
        scheduler.register(Task(name=f"s{i}", schedule=EVERY_SECOND))
    total = minute_tasks + second_tasks
    probe = LoopProbe()
    async with trio.open_nursery() as nursery:
        await nursery.start(probe.run)
        await trio.sleep(0.05)
        wall0, t0 = time.time(), trio.current_time()
        await nursery.start(scheduler.run)
        parked = await wait_parked(scheduler, locks, total, 600.0, probe=probe)
        startup_s = trio.current_time() - t0
        startup_stall = probe.summary(wall0, time.time())
        if gc_freeze:
            with probe.excluded():
                gc.collect()
                gc.freeze()  # L7: what is alive now is never walked by a collection again
        first = math.ceil(time.time() + 1.0)
        last = first + seconds - 1
        log(f"  {kind}: {total:,} tasks parked after {startup_s:.2f} s; window {seconds} s")
        await _until_wall(first - 0.2)
        gc0 = [s["collections"] for s in gc.get_stats()]
        cpu0 = time.process_time()
        await _until_wall(last + 1.0)
        cpu = time.process_time() - cpu0
        gc1 = [s["collections"] for s in gc.get_stats()]
        stall = probe.summary(first - 0.2, last + 1.0)
        minutes = [x for x in range(first, last + 1) if x % 60 == 0]
        expected = second_tasks * seconds + minute_tasks * len(minutes)

        def in_window() -> int:
            return sum(c for (_, x), c in jobs.count.items() if first <= x <= last)

        # Stragglers: until every expected occurrence is in, or 3 s after the window.
        deadline = time.time() + 3.0
        while in_window() < expected and time.time() < deadline:
            await trio.sleep(0.05)
        with probe.excluded():
            stats = scheduler.statistics()
        scheduler.stop_nowait()
        nursery.cancel_scope.cancel()
    if gc_freeze:
        gc.unfreeze()
    got = in_window()
    keep = [
        lat * 1000.0
        for x, lat in zip(jobs.second_nominal, jobs.second_lateness, strict=True)
        if first <= x <= last
    ]
    minute_lasts = [
        (jobs.last[("m", float(x))] - x) * 1000.0 for x in minutes if ("m", float(x)) in jobs.last
    ]
    return {
        "kind": f"{kind}+gc.freeze" if gc_freeze else kind,
        "gc_freeze": gc_freeze,
        "minute_tasks": minute_tasks,
        "second_tasks": second_tasks,
        "seconds": seconds,
        "window": [first, last],
        "minute_instants": len(minutes),
        "expected": expected,
        "enqueued_distinct": got,
        "lost": expected - got,
        "duplicates": sum(c for (_, x), c in jobs.duplicates.items() if first <= x <= last),
        "second_lateness": {
            "occurrences": len(keep),
            "p50_ms": _pct(keep, 0.50),
            "p99_ms": _pct(keep, 0.99),
            "max_ms": max(keep) if keep else math.nan,
        },
        "minute_last_ms": minute_lasts,
        "stall": stall,
        "startup": {
            "tasks": total,
            "startup_s": startup_s,
            "parked": parked,
            "stall": startup_stall,
        },
        "cpu_s": cpu,
        "cpu_share": cpu / (seconds + 0.2),
        "gc_collections": [b - a for a, b in zip(gc0, gc1, strict=True)],
        "scheduler": {
            "misfired": sum(t.misfired for t in stats.tasks.values()),
            "skipped": sum(t.skipped for t in stats.tasks.values()),
            "errors": sum(t.errors for t in stats.tasks.values()),
            "lock_misses": sum(t.lock_misses for t in stats.tasks.values()),
            "timer_lag_max_ms": (stats.timer_lag_max or 0.0) * 1000,
        },
    }


def _verdict(value: float, limit: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not measured"
    return "met" if value <= limit else "MISSED"


def judge_load(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Rule L6 for one load row."""
    lat, stall = row["second_lateness"], row["stall"]
    checks = [
        ("occurrences lost", row["lost"], TARGETS["lost"], ""),
        ("every-second lateness p99", lat["p99_ms"], TARGETS["second_p99_ms"], "ms"),
        ("every-second lateness max", lat["max_ms"], TARGETS["second_max_ms"], "ms"),
        ("longest loop stall", stall["max_ms"], TARGETS["stall_max_ms"], "ms"),
    ]
    return [
        {
            "kind": row["kind"],
            "goal": g,
            "value": v,
            "limit": lim,
            "unit": u,
            "verdict": _verdict(v, lim),
        }
        for g, v, lim, u in checks
    ]


def judge_startup(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Start-up targets for one start-up row (scaled when N is not 100,000)."""
    n = row["tasks"]
    scale = n / STARTUP_TARGET_TASKS
    limit = TARGETS["startup_s"] * scale
    note = "" if n == STARTUP_TARGET_TASKS else f" (target for 100,000 scaled to {n:,})"
    return [
        {
            "kind": row["kind"],
            "goal": f"start-up of {n:,} tasks, all parked{note}",
            "value": row["startup_s"],
            "limit": limit,
            "unit": "s",
            "verdict": _verdict(row["startup_s"], limit),
        },
        {
            "kind": row["kind"],
            "goal": f"longest loop stall during start-up of {n:,} tasks",
            "value": row["stall"]["max_ms"],
            "limit": TARGETS["startup_stall_max_ms"],
            "unit": "ms",
            "verdict": _verdict(row["stall"]["max_ms"], TARGETS["startup_stall_max_ms"]),
        },
    ]


def _f(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def report(record: dict[str, Any]) -> str:
    lines = []
    for row in record["load"]:
        lat, stall, sch = row["second_lateness"], row["stall"], row["scheduler"]
        worst = ", ".join(
            f"{w['ms']:.0f} ms at :{w['second_of_minute']:06.3f}" for w in stall["worst"][:3]
        )
        lines += [
            f"load, trio-sched ({row['kind']}): {row['minute_tasks']:,} every minute + "
            f"{row['second_tasks']:,} every second, {row['seconds']} s "
            f"({row['minute_instants']} minute instants)",
            f"  expected {row['expected']:,}, enqueued {row['enqueued_distinct']:,}, "
            f"lost {row['lost']:,}, duplicates {row['duplicates']:,} "
            f"(scheduler: {sch['misfired']:,} misfired, {sch['skipped']:,} skipped, "
            f"{sch['errors']} errors)",
            f"  every-second lateness p50/p99/max {_f(lat['p50_ms'], 2)} / "
            f"{_f(lat['p99_ms'], 2)} / {_f(lat['max_ms'], 2)} ms; every-minute bursts, "
            "last enqueued: "
            + (", ".join(f"{v:.0f} ms" for v in row["minute_last_ms"]) or "none in the window"),
            f"  loop stall p50/p99/max {_f(stall['p50_ms'], 2)} / {_f(stall['p99_ms'], 2)} / "
            f"{_f(stall['max_ms'], 2)} ms (longest: {worst}); CPU {row['cpu_share']:.0%} "
            f"of one core; gc collections per generation {row['gc_collections']}",
            f"  its own start-up ({row['startup']['tasks']:,} tasks): "
            f"{row['startup']['startup_s']:.2f} s, longest stall "
            f"{_f(row['startup']['stall']['max_ms'])} ms",
        ]
    for row in record["startup"]:
        lines.append(
            f"start-up, trio-sched ({row['kind']}): {row['tasks']:,} tasks registered in "
            f"{row['register_s']:.2f} s, started and all parked in {row['startup_s']:.2f} s; "
            f"longest stall {_f(row['stall']['max_ms'])} ms (p99 "
            f"{_f(row['stall']['p99_ms'])} ms)"
        )
    lines.append("targets (issue 11, section 3; issue 10 start-up):")
    for g in record["goals"]:
        unit = f" {g['unit']}" if g["unit"] else ""
        digits = {"": 0, "s": 2}.get(g["unit"], 1)
        lines.append(
            f"  [{g['kind']}] {g['goal']}: {_f(g['value'], digits)}{unit} (target <= "
            f"{g['limit']:g}{unit}) {g['verdict']}"
        )
    return "\n".join(lines)


def markdown(record: dict[str, Any]) -> str:
    out = [
        "| kind | tasks (minute + second) | seconds | expected | lost | duplicates "
        "| every-second p50 / p99 / max ms | stall p99 / max ms | CPU |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in record["load"]:
        lat, stall = row["second_lateness"], row["stall"]
        out.append(
            f"| {row['kind']} | {row['minute_tasks']:,} + {row['second_tasks']:,} "
            f"| {row['seconds']} | {row['expected']:,} | {row['lost']:,} "
            f"| {row['duplicates']:,} | {_f(lat['p50_ms'], 2)} / {_f(lat['p99_ms'], 2)} / "
            f"{_f(lat['max_ms'], 2)} | {_f(stall['p99_ms'], 2)} / {_f(stall['max_ms'], 2)} "
            f"| {row['cpu_share']:.0%} |"
        )
    if record["startup"]:
        out += [
            "",
            "| kind | start-up tasks | register s | start-up s (all parked) | stall p99 / max ms |",
            "|---|--:|--:|--:|--:|",
        ]
        for row in record["startup"]:
            out.append(
                f"| {row['kind']} | {row['tasks']:,} | {_f(row['register_s'], 2)} "
                f"| {_f(row['startup_s'], 2)} | {_f(row['stall']['p99_ms'])} / "
                f"{_f(row['stall']['max_ms'])} |"
            )
    out += ["", "| kind | target | value | limit | verdict |", "|---|---|--:|--:|---|"]
    for g in record["goals"]:
        out.append(
            f"| {g['kind']} | {g['goal']} | {_f(g['value'])} {g['unit']} "
            f"| <= {g['limit']:g} {g['unit']} | {g['verdict']} |"
        )
    return "\n".join(out)


def _startup_in_subprocess(kind: str, n: int) -> dict[str, Any]:
    from .suite import _collect, _spawn_worker

    return _collect(_spawn_worker("startup-ours", {"kind": kind, "tasks": n}))  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("trio_sched").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m benchmarks stall", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="65 s per kind (default)")
    mode.add_argument("--full", action="store_true", help="200 s per kind")
    parser.add_argument("--seconds", type=int, help="window per kind (200 full, 65 quick)")
    parser.add_argument("--minute-tasks", type=int, default=20_000)
    parser.add_argument("--second-tasks", type=int, default=2_000)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument(
        "--startup-tasks",
        type=int,
        help="start-up probe size (100,000 full, 20,000 quick; 0: none)",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="also run each kind with gc.freeze() after start-up (rule L7)",
    )
    parser.add_argument("--output", type=Path, help="JSON (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    full = bool(args.full)
    seconds = args.seconds or (200 if full else 65)
    startup_n = (
        args.startup_tasks
        if args.startup_tasks is not None
        else (STARTUP_TARGET_TASKS if full else 20_000)
    )
    output = args.output or RESULTS / f"stall_{'full' if full else 'quick'}.json"
    from .suite import machine_info, versions

    began = time.perf_counter()
    record: dict[str, Any] = {
        "benchmark": "stall",
        "mode": "full" if full else "quick",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "machine": machine_info(),
        "versions": versions(),
        "settings": {
            "seconds": seconds,
            "minute_tasks": args.minute_tasks,
            "second_tasks": args.second_tasks,
            "kinds": args.kinds,
            "startup_tasks": startup_n,
            "gc_freeze": bool(args.gc_freeze),
        },
        "load_average_before": os.getloadavg(),
        "load": [],
        "startup": [],
    }
    for kind in args.kinds:
        if args.minute_tasks + args.second_tasks > 0 and seconds > 0:
            print(f"load scenario ({kind}), {seconds} s:")
            row = trio.run(run_load, kind, args.minute_tasks, args.second_tasks, seconds)
            record["load"].append(row)
            gc.collect()
            if args.gc_freeze:
                print(f"load scenario ({kind}, gc.freeze after start-up), {seconds} s:")
                frozen = trio.run(
                    functools.partial(
                        run_load,
                        kind,
                        args.minute_tasks,
                        args.second_tasks,
                        seconds,
                        gc_freeze=True,
                    )
                )
                record["load"].append(frozen)
                gc.collect()
        if startup_n > 0:
            print(f"start-up probe ({kind}): {startup_n:,} tasks (subprocess)")
            record["startup"].append(_startup_in_subprocess(kind, startup_n))
    goals: list[dict[str, Any]] = []
    for row in record["load"]:
        goals += judge_load(row)
    for row in record["startup"]:
        goals += judge_startup(row)
    record["goals"] = goals
    record["load_average_after"] = os.getloadavg()
    record["duration_s"] = time.perf_counter() - began
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=1) + "\n")
    print(report(record))
    print(
        f"load average before {tuple(round(x, 2) for x in record['load_average_before'])}, "
        f"after {tuple(round(x, 2) for x in record['load_average_after'])}; "
        f"{record['duration_s']:.0f} s; wrote {output}"
    )
    return 0


__all__ = ["judge_load", "judge_startup", "main", "measure_startup", "run_load"]
