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
    assert config.default_lock_ttl == 30.0
    assert config.misfire_grace == 1.0
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
    ]:
        with pytest.raises(ValidationError) as info:
            Config(**{field: value})
        assert info.value.field == field


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
