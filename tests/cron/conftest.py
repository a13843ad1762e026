"""Prints the differential-test counts (compared / excluded per named divergence)."""

from __future__ import annotations

import pytest
from hypothesis import settings

from ._diffstats import STATS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not STATS:
        return
    terminalreporter.section("cron differential: cases per library")
    profile = settings.default
    if profile.derandomize:
        why = "derandomized: the same counts on every run of the same code"
    else:
        why = "random examples: counts change between runs; CI=true gives the fixed set"
    terminalreporter.write_line(
        f"Hypothesis profile {settings.get_current_profile_name()!r}, "
        f"{profile.max_examples} examples per test, {why}"
    )
    for library in sorted({lib for lib, _ in STATS}):
        rows = sorted((k, n) for (lib, k), n in STATS.items() if lib == library)
        total = sum(n for _, n in rows)
        terminalreporter.write_line(f"{library}: {total} cases")
        for key, n in rows:
            terminalreporter.write_line(f"  {n:6d}  {key}")
