"""Every runtime test runs against a jobs runtime without ``enqueue_many`` (each loop
dispatches its own occurrence, rule D7) and with it (a burst is one call, rule D6):
modules that build a scheduler use ``pytestmark = pytest.mark.usefixtures("jobs_mode")``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._helpers import MODE


@pytest.fixture(params=["per-job", "batch"])
def jobs_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    MODE.batch = request.param == "batch"
    try:
        yield request.param
    finally:
        MODE.batch = False
