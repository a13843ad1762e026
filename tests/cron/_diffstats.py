"""Counts of the differential tests: cases compared and cases excluded, per library and
per named divergence. `conftest.py` prints them at the end of the session."""

from __future__ import annotations

from collections import Counter

# Keys: (library, "compared") or (library, "excluded: <divergence name>").
STATS: Counter[tuple[str, str]] = Counter()
