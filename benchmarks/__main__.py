"""``python -m benchmarks COMMAND [ARGS]``: one entry point for every benchmark.

Commands: ``suite`` (``--quick`` / ``--full``, see `benchmarks.suite`), ``stall``
(``--quick`` / ``--full`` / ``--seconds N``: lost occurrences, lateness and event-loop
stalls with 20,000 tasks every minute plus 2,000 every second, and start-up of 100,000
tasks; see `benchmarks.stall`), ``cron``
(`benchmarks.cron_throughput`), ``lateness`` (`benchmarks.runtime_lateness`), ``cpu``
(`benchmarks.runtime_cpu`: CPU per fire on MockClock),
``redis-ops`` and ``postgres-ops`` (per-operation latency of the lock providers),
``plot RESULTS.json OUT.png`` (redraw a suite plot), ``table RESULTS.json`` (the suite's
results as Markdown tables). ``suite-worker`` is internal (the
suite's subprocesses).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = (
    "suite",
    "stall",
    "cron",
    "lateness",
    "cpu",
    "redis-ops",
    "postgres-ops",
    "plot",
    "table",
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "suite":
        from benchmarks import suite

        return suite.main(rest)
    if command == "stall":
        from benchmarks import stall

        return stall.main(rest)
    if command == "suite-worker":
        from benchmarks import suite

        return suite.worker_main(rest)
    if command == "cron":
        from benchmarks import cron_throughput

        return cron_throughput.main(rest)
    if command == "lateness":
        from benchmarks import runtime_lateness

        return runtime_lateness.main(rest)
    if command == "cpu":
        from benchmarks import runtime_cpu

        return runtime_cpu.main(rest)
    if command in ("redis-ops", "postgres-ops"):
        # These two read sys.argv themselves.
        sys.argv = [f"benchmarks {command}", *rest]
        if command == "redis-ops":
            from benchmarks import redis_ops as ops
        else:
            from benchmarks import postgres_ops as ops  # type: ignore[no-redef]
        ops.main()
        return 0
    if command == "plot":
        import json
        from pathlib import Path

        from benchmarks import _plot

        _plot.plot(json.loads(Path(rest[0]).read_text()), Path(rest[1]))
        return 0
    if command == "table":
        import json
        from pathlib import Path

        from benchmarks import suite

        record = json.loads(Path(rest[0]).read_text())
        if "startup" not in record:
            print(
                f"{rest[0]} was recorded by the suite before it measured both jobs-runtime "
                "kinds (issue 10); its tables are the ones in docs/benchmarks.md",
                file=sys.stderr,
            )
            return 2
        print(suite.markdown(record))
        return 0
    print(f"unknown command {command!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
