"""`Schedule.min_interval` (a lower bound on the interval between fires) and the jitter
it bounds (rule P6 of `trio_sched._plan`, rule T6 of `Task`)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_sched import Task, ValidationError, _plan
from trio_sched.cron import parse

from ._strategies import cron_exprs, every_exprs


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    expr=st.one_of(cron_exprs(), every_exprs()),
    start_s=st.integers(0, 3 * 365 * 86_400),
    share=st.floats(0.0, 0.999),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
)
def test_a_jittered_occurrence_never_reaches_the_next_one(
    expr: object, start_s: int, share: float, zone: str
) -> None:
    """For any schedule and any jitter shorter than its `min_interval`, each delayed
    occurrence fires before the next nominal instant, also across DST transitions."""
    text = expr.text  # type: ignore[attr-defined]
    schedule = parse(text, tz=zone)
    try:
        shortest = schedule.min_interval()
    except ValidationError:
        return
    jitter = min(86_400.0, max(0.001, shortest * share))
    if jitter >= shortest:
        return
    task = Task(name="j", schedule=text, timezone=zone, jitter=jitter)
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=start_s)
    try:
        times = []
        t = schedule.next_after(start)
        for _ in range(12):
            times.append(t)
            t = schedule.next_after(t)
    except ValidationError:
        return  # a schedule that runs out (C7)
    assert task.jitter == timedelta(seconds=jitter)
    for here, nxt in itertools.pairwise(times):
        gap = (nxt - here).total_seconds()
        delay = _plan.jitter_delay("j", _plan.epoch_ms(here), jitter, gap)
        assert 0.0 <= delay < jitter
        assert here + timedelta(seconds=delay) < nxt


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(expr=cron_exprs(), start_s=st.integers(0, 3 * 365 * 86_400))
def test_min_interval_is_a_lower_bound_in_utc(expr: object, start_s: int) -> None:
    schedule = parse(expr.text)  # type: ignore[attr-defined]
    shortest = schedule.min_interval()
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=start_s)
    try:
        t = schedule.next_after(start)
        for _ in range(30):
            nxt = schedule.next_after(t)
            assert (nxt - t).total_seconds() >= shortest, (expr, t, nxt)
            t = nxt
    except ValidationError:
        return
