"""Pure rules of the task policies (issue 12): jitter (P6 of `_plan`), catch-up (P5),
`Schedule.min_interval` and the `Task` checks of rule T6."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_sched import MisfirePolicy, Task, ValidationError, _plan
from trio_sched._plan import Action, decide
from trio_sched._task import OverlapPolicy
from trio_sched.cron import parse

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# -- jitter (P6) ---------------------------------------------------------------------------


def test_jitter_delay_is_the_same_on_every_call_and_in_range() -> None:
    delays = [_plan.jitter_delay("report", 1_767_600_000_000 + i * 60_000, 30.0) for i in range(50)]
    assert delays == [
        _plan.jitter_delay("report", 1_767_600_000_000 + i * 60_000, 30.0) for i in range(50)
    ]
    assert all(0.0 <= d < 30.0 for d in delays)
    assert len(set(delays)) == 50  # a hash, not a constant
    # Another task gets other delays for the same instants.
    other = [_plan.jitter_delay("backup", 1_767_600_000_000 + i * 60_000, 30.0) for i in range(50)]
    assert other != delays


def test_jitter_delays_are_uniform_chi_square() -> None:
    """20 equal bins over 20,000 occurrences: the chi-square statistic stays below the
    0.999 quantile of chi-square with 19 degrees of freedom (43.82)."""
    bins = [0] * 20
    n = 20_000
    for i in range(n):
        delay = _plan.jitter_delay(f"t{i % 7}", 1_767_600_000_000 + i * 1000, 10.0)
        bins[int(delay / 10.0 * 20)] += 1
    expected = n / 20
    chi2 = sum((b - expected) ** 2 / expected for b in bins)
    assert chi2 < 43.82, (chi2, bins)


def test_jitter_delay_is_cut_before_the_next_occurrence() -> None:
    assert _plan.jitter_delay("t", 0, 10.0, gap=0.5) <= 0.499
    assert _plan.jitter_delay("t", 0, 10.0, gap=0.0005) == 0.0


def test_min_interval_examples() -> None:
    assert parse("* * * * * *").min_interval() == 1
    assert parse("0,59 * * * * *").min_interval() == 1
    assert parse("*/15 * * * *").min_interval() == 900
    assert parse("0 1,3 * * *").min_interval() == 7200
    assert parse("0 0 1 1 *").min_interval() == 86_400
    assert parse("@every 90s").min_interval() == 90


# -- Task checks (T6) ------------------------------------------------------------------------


def test_task_policy_fields_are_checked_and_normalised() -> None:
    task = Task(name="t", schedule="* * * * *", jitter=5, overlap="FORBID", paused=True)
    assert task.jitter == timedelta(seconds=5)
    assert task.jitter_seconds == 5.0
    assert task.overlap is OverlapPolicy.FORBID
    assert task.paused is True
    catch = Task(name="c", schedule="* * * * *", misfire_policy="fire_all", catchup_window=3600)
    assert catch.policy is MisfirePolicy.FIRE_ALL
    assert catch.catchup_window == timedelta(hours=1)
    assert catch.max_catchup == 100
    bad: list[tuple[dict[str, object], str]] = [
        ({"jitter": 60}, "jitter"),  # reaches the next occurrence of * * * * *
        ({"jitter": timedelta(seconds=-1)}, "jitter"),
        ({"jitter": 0}, "jitter"),
        ({"jitter": "5s"}, "jitter"),
        ({"jitter": 10**400}, "jitter"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"paused": "yes"}, "paused"),
        ({"misfire_policy": "fire_all"}, "catchup_window"),
        ({"catchup_window": 60}, "catchup_window"),  # only with fire_all
        ({"misfire_policy": "fire_all", "catchup_window": 0.5}, "catchup_window"),
        ({"misfire_policy": "fire_all", "catchup_window": 60, "max_catchup": 0}, "max_catchup"),
        ({"max_catchup": True}, "max_catchup"),
        ({"max_catchup": 10**6}, "max_catchup"),
    ]
    for fields, name in bad:
        with pytest.raises(ValidationError) as info:
            Task(name="t", schedule="* * * * *", **fields)  # type: ignore[arg-type]
        assert info.value.field == name, (fields, info.value)


# -- catch-up (P5) ---------------------------------------------------------------------------


def run_catch_up(
    expr: str, watermark: datetime, now: datetime, window: float, cap: int, grace: float = 1.0
) -> list[tuple[str, datetime, str]]:
    """Walk the decisions a loop makes from the first occurrence after `watermark`
    until it reaches one that is not late: (action, nominal, reason) each."""
    schedule = parse(expr)
    t = schedule.next_after(watermark)
    steps = []
    while True:
        decision = decide(schedule, t, now, grace, MisfirePolicy.FIRE_ALL, window, cap)
        if not decision.late:
            return steps
        steps.append((decision.action.value, decision.nominal, decision.reason))
        t = schedule.next_after(decision.nominal)


def test_fire_all_fires_every_missed_occurrence_in_the_window_oldest_first() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)
    steps = run_catch_up("* * * * *", T0 - timedelta(minutes=1), now, window=3600, cap=100)
    assert steps == [("fire", T0 + timedelta(minutes=i), "misfire") for i in range(11)]


def test_fire_all_skips_what_is_older_than_the_window() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)
    steps = run_catch_up("* * * * *", T0 - timedelta(hours=5), now, window=300, cap=100)
    # 10:06, 10:07 ... are inside the 5-minute window (now - 300 s = 09:05:30).
    assert steps[0] == ("skip", T0 + timedelta(minutes=5), "misfire")
    assert steps[1:] == [("fire", T0 + timedelta(minutes=i), "misfire") for i in range(6, 11)]


def test_fire_all_cap_keeps_the_newest_and_reports_the_rest() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)
    steps = run_catch_up("* * * * *", T0 - timedelta(minutes=1), now, window=3600, cap=3)
    assert steps[0] == ("skip", T0 + timedelta(minutes=7), "catchup_cap")
    assert steps[1:] == [("fire", T0 + timedelta(minutes=i), "misfire") for i in (8, 9, 10)]


@settings(max_examples=150)
@given(
    step_min=st.sampled_from([1, 2, 5, 15]),
    down_min=st.integers(1, 400),
    window_min=st.integers(1, 500),
    cap=st.integers(1, 50),
    into_s=st.integers(2, 50),
)
def test_fire_all_properties(
    step_min: int, down_min: int, window_min: int, cap: int, into_s: int
) -> None:
    """Each late occurrence is fired at most once, oldest first; exactly the newest
    `cap` of those inside the window fire."""
    expr = f"*/{step_min} * * * *"
    schedule = parse(expr)
    watermark = T0
    now = T0 + timedelta(minutes=down_min, seconds=into_s)
    window = window_min * 60.0
    steps = run_catch_up(expr, watermark, now, window, cap)
    fired = [t for action, t, _ in steps if action == "fire"]
    assert fired == sorted(set(fired))
    late = []
    t = schedule.next_after(watermark)
    while (now - t).total_seconds() > 1.0:
        late.append(t)
        t = schedule.next_after(t)
    in_window = [t for t in late if (now - t).total_seconds() <= window]
    assert fired == in_window[-cap:]
    assert all(action == "skip" for action, _, _ in steps[: len(steps) - len(fired)])
    assert len(steps) - len(fired) <= 1  # one decision skips everything before
    assert all(a == Action.FIRE.value for a, t, _ in steps if t in fired)
