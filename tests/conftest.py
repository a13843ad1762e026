"""Shared test configuration: Hypothesis profiles.

`dev` (default) keeps the suite fast; `ci` (selected by CI=true or
HYPOTHESIS_PROFILE=ci) runs three times as many examples (300: the whole suite must
stay under 5 minutes). Both are deterministic per run only in
`ci` (derandomize), so a CI failure reproduces.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
_default = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))
