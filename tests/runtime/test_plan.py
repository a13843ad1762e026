"""`_plan` is pure: occurrence identity and misfire decisions, no event loop needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_sched import MisfirePolicy, ValidationError, _plan
from trio_sched._plan import Action, decide
from trio_sched.cron import parse

T = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def test_epoch_ms_is_exact_and_zone_independent() -> None:
    assert _plan.epoch_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert _plan.epoch_ms(T) == 1767258000000
    berlin = T.astimezone(ZoneInfo("Europe/Berlin"))
    assert _plan.epoch_ms(berlin) == _plan.epoch_ms(T)
    assert _plan.epoch_ms(T + timedelta(microseconds=999)) == 1767258000000
    assert _plan.from_epoch_ms(1767258000123) == T + timedelta(milliseconds=123)
    with pytest.raises(ValidationError):
        _plan.epoch_ms(datetime(2026, 1, 1))  # naive


def test_keys_derive_from_the_nominal_instant() -> None:
    assert _plan.occurrence_key("p", "report", T) == "p:report:1767258000000"
    assert _plan.watermark_name("p", "report") == "p:report"
    assert _plan.idempotency_key("report", None, T) == "report:1767258000000"
    assert _plan.idempotency_key("report", "custom", T) == "custom:1767258000000"
    manual = _plan.manual_occurrence_key("p", "report", T, "abc")
    assert manual == "p:report:manual:1767258000000:abc"
    assert (
        _plan.manual_idempotency_key("report", None, T, "abc") == "report:manual:1767258000000:abc"
    )
    assert _plan.job_id("report:1") == _plan.job_id("report:1")
    assert _plan.job_id("report:1") != _plan.job_id("report:2")


def test_first_candidate_with_and_without_watermark() -> None:
    every_minute = parse("* * * * *")
    now = T + timedelta(seconds=30)
    assert _plan.first_candidate(every_minute, now, None) == T + timedelta(minutes=1)
    mark = _plan.epoch_ms(T - timedelta(minutes=10))
    assert _plan.first_candidate(every_minute, now, mark) == T - timedelta(minutes=9)


def test_decide_wait_and_on_time() -> None:
    cron = parse("* * * * *")
    early = decide(cron, T, T - timedelta(seconds=2), 1.0, MisfirePolicy.SKIP)
    assert early.action is Action.WAIT
    assert early.lateness == -2.0
    on_time = decide(cron, T, T + timedelta(seconds=0.5), 1.0, MisfirePolicy.SKIP)
    assert on_time.action is Action.FIRE
    assert on_time.nominal == T
    assert not on_time.late
    boundary = decide(cron, T, T + timedelta(seconds=1), 1.0, MisfirePolicy.SKIP)
    assert boundary.action is Action.FIRE  # "more than grace" is late; exactly grace is not


@pytest.mark.parametrize(
    ("policy", "action"),
    [(MisfirePolicy.SKIP, Action.SKIP), (MisfirePolicy.FIRE_ONCE, Action.FIRE)],
)
def test_decide_late_picks_the_latest_late_occurrence(
    policy: MisfirePolicy, action: Action
) -> None:
    cron = parse("* * * * *")
    now = T + timedelta(minutes=10, seconds=0.5)
    decision = decide(cron, T, now, 1.0, policy)
    assert decision.action is action
    # 09:10:00 is only 0.5 s old: on time, so the latest *late* one is 09:09.
    assert decision.nominal == T + timedelta(minutes=9)
    assert decision.first_late == T
    assert decision.late
    assert decision.lateness == pytest.approx(60.5)


def test_decide_late_single_occurrence() -> None:
    cron = parse("0 9 * * *")
    now = T + timedelta(hours=3)
    decision = decide(cron, T, now, 1.0, MisfirePolicy.FIRE_ONCE)
    assert decision.action is Action.FIRE
    assert decision.nominal == T
    assert decision.lateness == 3 * 3600


@given(
    step=st.integers(min_value=1, max_value=3600),
    late_us=st.integers(min_value=0, max_value=5 * 86400 * 10**6),
    # Whole microseconds: the resolution of `timedelta`, in which `decide` subtracts the
    # grace (a grace of 5.8e-7 s cannot be told from 1 us; Config's minimum is 10 ms).
    grace=st.floats(min_value=0, max_value=30, allow_nan=False).map(lambda g: round(g, 6)),
    fire_once=st.booleans(),
)
def test_decide_properties(step: int, late_us: int, grace: float, fire_once: bool) -> None:
    cron = parse(f"@every {step}s")
    nominal = cron.next_after(T)
    now = nominal + timedelta(microseconds=late_us)
    late_by = late_us / 10**6
    policy = MisfirePolicy.FIRE_ONCE if fire_once else MisfirePolicy.SKIP
    decision = decide(cron, nominal, now, grace, policy)
    shared = _plan.decide_on_time(nominal, now, grace)
    if late_by <= grace:
        assert decision.action is Action.FIRE
        assert decision.nominal == nominal
        assert shared == decision  # the shared on-time decision is the same value
        return
    assert shared is None
    # The chosen occurrence is late, and the next one after it is not (P3).
    assert decision.first_late == nominal
    assert nominal <= decision.nominal
    assert (now - decision.nominal).total_seconds() > grace
    assert (now - cron.next_after(decision.nominal)).total_seconds() <= grace
    assert decision.action is (Action.FIRE if fire_once else Action.SKIP)
