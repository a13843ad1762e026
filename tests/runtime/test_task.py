"""`Task` and `Config` validation (rules T1-T4, K1-K3)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from trio_sched import Config, MisfirePolicy, Task, ValidationError
from trio_sched.__main__ import main
from trio_sched._config import check_wall_clock


def make(**overrides: Any) -> Task:
    fields: dict[str, Any] = {"name": "report", "schedule": "0 9 * * MON-FRI"}
    fields.update(overrides)
    return Task(**fields)


def test_defaults_and_cached_schedule() -> None:
    task = make(timezone="Europe/Berlin")
    assert task.queue == "default"
    assert task.payload == b"{}"
    assert task.effective_job_name == "report"
    assert task.misfire_policy is MisfirePolicy.SKIP
    assert task.lock_ttl is None
    assert task.cron.expression == "0 9 * * MON-FRI"
    assert str(task.cron.tz) == "Europe/Berlin"
    assert task.cron is task.cron  # parsed once, kept
    assert make(job_name="build").effective_job_name == "build"
    assert hash(task) == hash(make(timezone="Europe/Berlin"))
    assert task == make(timezone="Europe/Berlin")


@pytest.mark.parametrize("text", ["skip", "SKIP", "Fire_Once", "fire_once"])
def test_misfire_policy_accepts_strings(text: str) -> None:
    task = make(misfire_policy=text)
    assert isinstance(task.misfire_policy, MisfirePolicy)
    assert task.policy.value == text.lower()


def test_headers_are_frozen_copies() -> None:
    headers = {"team": "sales"}
    task = make(headers=headers)
    headers["team"] = "changed"
    assert task.headers["team"] == "sales"
    with pytest.raises(TypeError):
        task.headers["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": " report"}, "name"),
        ({"name": "a b"}, "name"),
        ({"name": 3}, "name"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "@reboot"}, "schedule"),
        ({"schedule": "0 0 30 2 *"}, "schedule"),
        ({"schedule": None}, "schedule"),
        ({"schedule": "@every " + "1" * 5000 + "s"}, "schedule"),  # was a bare ValueError
        ({"schedule": "0" + ",0" * 1_000_000 + " * * * *"}, "schedule"),  # 2 MB
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"lock_ttl": 0}, "lock_ttl"),
        ({"lock_ttl": -1.0}, "lock_ttl"),
        ({"lock_ttl": math.nan}, "lock_ttl"),
        ({"lock_ttl": math.inf}, "lock_ttl"),
        ({"lock_ttl": True}, "lock_ttl"),
        ({"lock_ttl": "30"}, "lock_ttl"),
        ({"payload": "{}"}, "payload"),
        ({"payload": bytearray(b"{}")}, "payload"),
        ({"headers": {1: "a"}}, "headers"),
        ({"headers": {"a": 1}}, "headers"),
        ({"headers": {"X-Trio-Sched-Task": "forged"}}, "headers"),
        ({"headers": ["a"]}, "headers"),
        # Text PostgreSQL cannot store: every occurrence would fail to enqueue there.
        ({"headers": {"a\x00": "b"}}, "headers"),
        ({"headers": {"team": "b\x00"}}, "headers"),
        ({"headers": {"team": "lone \ud800"}}, "headers"),
        ({"content_type": "text/plain\x00"}, "content_type"),
        ({"content_type": "\udfff"}, "content_type"),
        ({"queue": "q\x00"}, "queue"),
        ({"job_name": "build\x00"}, "job_name"),
        ({"tenant_id": "acme\x00"}, "tenant_id"),
        ({"idempotency_key": "k\x00"}, "idempotency_key"),
        ({"name": "report\x00"}, "name"),
        ({"queue": ""}, "queue"),
        ({"job_name": ""}, "job_name"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"idempotency_key": "a b"}, "idempotency_key"),
        ({"content_type": ""}, "content_type"),
        ({"misfire_policy": "later"}, "misfire_policy"),
        ({"misfire_policy": 1}, "misfire_policy"),
    ],
)
def test_bad_fields_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(**overrides)
    assert info.value.field == field
    assert info.value.message.startswith(f"{field}:")


def test_nul_characters_are_named_in_the_message() -> None:
    with pytest.raises(ValidationError) as info:
        make(headers={"team": "b\x00"})
    assert info.value.message == (
        "headers: the value of 'team' must not contain a NUL character (PostgreSQL "
        "refuses it), got 'b\\x00'"
    )
    with pytest.raises(ValidationError, match=r"^content_type: must not contain a NUL"):
        make(content_type="a\x00")


def test_non_ascii_text_and_binary_payloads_are_fine() -> None:
    task = make(
        headers={"équipe": "naïve ✓"}, content_type="text/plain; charset=utf-8", payload=b"\x00"
    )
    assert task.headers == {"équipe": "naïve ✓"}


def test_schedule_error_keeps_the_cron_details() -> None:
    with pytest.raises(ValidationError) as info:
        make(schedule="0 0 32 * *")
    assert info.value.field == "schedule"
    assert "day-of-month" in info.value.message
    assert info.value.token == "32"
    assert isinstance(info.value.__cause__, ValidationError)


def test_validate_rechecks_and_task_is_frozen() -> None:
    task = make()
    task.validate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.name = "other"  # type: ignore[misc]


def test_config_defaults_and_validation() -> None:
    config = Config()
    assert config.dispatch_timeout == 10.0
    assert config.default_lock_ttl == 10.0
    assert config.dedupe_window == 60.0
    assert config.misfire_grace == 1.0
    assert config.instance
    assert config.instance != Config().instance
    assert config.lock_key_prefix == "trio_sched"
    assert config.wall_clock().tzinfo is not None
    for field, value in [
        ("dispatch_timeout", 0),
        ("default_lock_ttl", -1),
        ("misfire_grace", -0.1),
        ("misfire_grace", math.nan),
        ("retry_backoff", -1),
        ("clock_check_interval", 0),
        ("timer_spin", -0.001),
        ("lock_key_prefix", ""),
        ("lock_key_prefix", "a b"),
        ("wall_clock", 3),
        ("logger", "log"),
        ("on_event", 5),
        ("dispatch_timeout", True),
        ("dedupe_window", -1),
        ("instance", ""),
        ("instance", "a\nb"),
        ("instance", "x" * 201),
        ("instance", 7),
    ]:
        with pytest.raises(ValidationError) as info:
            Config(**{field: value})
        assert info.value.field == field


DURATIONS = (
    "dispatch_timeout",
    "default_lock_ttl",
    "dedupe_window",
    "misfire_grace",
    "retry_backoff",
    "retry_backoff_max",
    "clock_check_interval",
    "timer_spin",
)


@pytest.mark.parametrize("field", DURATIONS)
@pytest.mark.parametrize(
    "value", [10**400, -(10**400), 10**5000], ids=["1e400", "-1e400", "1e5000"]
)
def test_config_durations_beyond_the_float_range_are_validation_errors(
    field: str, value: int
) -> None:
    # float(10**400) raises OverflowError; 10**5000 cannot even be printed (digit limit).
    with pytest.raises(ValidationError) as info:
        Config(**{field: value})
    assert info.value.field == field
    assert info.value.message.startswith(f"{field}: must be ")
    assert "digits" in info.value.message


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["1e400", "-1e400"])
def test_task_lock_ttl_beyond_the_float_range_is_a_validation_error(value: int) -> None:
    with pytest.raises(ValidationError) as info:
        make(lock_ttl=value)
    assert info.value.field == "lock_ttl"
    assert info.value.message.startswith("lock_ttl: must be ")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1e-300, "must be >= 0.1 s, got 1e-300"),  # 0 ms on Redis: never acquired
        (0.099, "must be >= 0.1 s"),
        (86_400.001, "must be at most 86400 s (1 day), got 86400.001"),
        (1e12, "must be at most 86400 s (1 day)"),  # failed whole acquire batches
        (1e300, "must be at most 86400 s (1 day)"),
        (2**63, "must be at most 86400 s (1 day), got 9223372036854775808"),
    ],
)
def test_lock_ttls_outside_their_range_are_refused(value: float, words: str) -> None:
    with pytest.raises(ValidationError) as task_info:
        make(lock_ttl=value)
    assert task_info.value.field == "lock_ttl"
    assert words in task_info.value.message
    with pytest.raises(ValidationError) as config_info:
        Config(default_lock_ttl=value)
    assert config_info.value.field == "default_lock_ttl"
    assert words in config_info.value.message


@pytest.mark.parametrize("value", [0.1, 1, 30.0, 86_400, 86_400.0])
def test_lock_ttls_at_and_inside_the_bounds_are_kept(value: float) -> None:
    assert make(lock_ttl=value).lock_ttl == value
    assert Config(default_lock_ttl=value).default_lock_ttl == value


@pytest.mark.parametrize(
    ("field", "refused", "accepted"),
    [
        ("dispatch_timeout", [0, -1e-9, 86_400.5, 1e300], [1e-6, 86_400]),
        ("clock_check_interval", [0, 86_401, 1e300], [0.001, 86_400]),
        # 0 made skip tasks never fire: every real wake-up is a little late.
        ("misfire_grace", [0, 0.0099, 86_401, 1e300], [0.01, 1.0, 86_400]),
        ("retry_backoff", [-0.1, 86_401, 1e300], [0, 86_400]),
        ("retry_backoff_max", [-0.1, 86_401, 1e300], [0, 86_400]),
        # 1e300 busy-spun the CPU until every deadline.
        ("timer_spin", [-0.001, 0.051, 1.0, 1e300], [0, 0.05]),
    ],
)
def test_config_durations_have_documented_ranges(
    field: str, refused: list[float], accepted: list[float]
) -> None:
    for value in refused:
        with pytest.raises(ValidationError) as info:
            Config(**{field: value})
        assert info.value.field == field, value
        assert info.value.message.startswith(f"{field}: must be "), info.value.message
    for value in accepted:
        assert getattr(Config(**{field: value}), field) == value


def test_timezone_may_be_a_zoneinfo_and_is_kept_as_its_name() -> None:
    task = make(timezone=ZoneInfo("Europe/Berlin"))
    assert task.timezone == "Europe/Berlin"
    assert task == make(timezone="Europe/Berlin")
    assert task.cron.tz == ZoneInfo("Europe/Berlin")


def test_a_misspelt_timezone_gets_the_same_message_and_suggestion_as_the_cli(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ValidationError) as info:
        make(timezone="Europe/Berln")
    message = str(info.value)
    assert message.startswith("timezone: unknown time zone 'Europe/Berln'")
    assert "did you mean Europe/Berlin or " in message
    assert main(["next", "@daily", "--tz", "Europe/Berln"]) == 2
    cli = capsys.readouterr().err
    assert message.removeprefix("timezone: ") in cli


@pytest.mark.parametrize("zone", ["x" * 300, "Europe/" + "a" * 5000, "a\0b", "../etc/passwd"])
def test_any_timezone_string_is_a_validation_error(zone: str) -> None:
    with pytest.raises(ValidationError, match=r"^timezone: unknown time zone"):
        make(timezone=zone)


@pytest.mark.parametrize("clock", [datetime.now, datetime.utcnow, datetime.today])
def test_config_refuses_the_clocks_that_return_naive_datetimes(clock: object) -> None:
    with pytest.raises(ValidationError) as info:
        Config(wall_clock=clock)  # type: ignore[arg-type]
    assert info.value.field == "wall_clock"
    assert "naive" in str(info.value)


@pytest.mark.parametrize(
    ("clock", "words"),
    [
        (lambda: datetime(2026, 1, 1), "naive datetime"),
        (lambda: 1767225600.0, "returned float"),
        (lambda: 1 / 0, "raised ZeroDivisionError"),
    ],
)
def test_check_wall_clock_names_what_is_wrong(clock: Callable[[], datetime], words: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_wall_clock(clock)
    assert info.value.field == "wall_clock"
    assert words in str(info.value)


def test_check_wall_clock_returns_an_aware_reading() -> None:
    reading = datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Berlin"))
    assert check_wall_clock(lambda: reading) is reading
