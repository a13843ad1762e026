"""Prints the differential-test counts (compared / excluded per named divergence)."""

from __future__ import annotations

import pytest

from ._diffstats import STATS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not STATS:
        return
    terminalreporter.section("cron differential: cases per library")
    for library in sorted({lib for lib, _ in STATS}):
        rows = sorted((k, n) for (lib, k), n in STATS.items() if lib == library)
        total = sum(n for _, n in rows)
        terminalreporter.write_line(f"{library}: {total} cases")
        for key, n in rows:
            terminalreporter.write_line(f"  {n:6d}  {key}")
