"""The CLI (`python -m trio_sched`): next, validate, demo.

DST cases are pinned to Europe/Berlin in 2021:
- 2021-03-28 02:00 CET (+01:00) clocks jumped to 03:00 CEST (+02:00): 02:00-02:59 did not
  exist.
- 2021-10-31 03:00 CEST (+02:00) clocks went back to 02:00 CET (+01:00): 02:00-02:59
  happened twice (fold=0 first, fold=1 second).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import trio_sched
from trio_sched import _plan
from trio_sched.__main__ import main
from trio_sched._cli_cron import error_lines
from trio_sched.cron import ValidationError


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def berlin_next(
    capsys: pytest.CaptureFixture[str], expr: str, after: str, count: int
) -> tuple[int, list[str], str]:
    return run(capsys, "next", expr, "--tz", "Europe/Berlin", "--after", after, "-n", str(count))


def fire_lines(lines: list[str]) -> list[str]:
    """The fire lines of `next`'s output (the header line is the first)."""
    return lines[1:]


# -- next ------------------------------------------------------------------------------


def test_next_prints_fires_with_offset_weekday_and_zone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines, err = berlin_next(capsys, "0 9 * * MON-FRI", "2026-03-27T12:00", 3)
    assert status == 0, err
    assert "Europe/Berlin" in lines[0]
    assert "fixed job" in lines[0]
    assert fire_lines(lines) == [
        "2026-03-30 09:00:00+02:00  Mon  CEST",
        "2026-03-31 09:00:00+02:00  Tue  CEST",
        "2026-04-01 09:00:00+02:00  Wed  CEST",
    ]


def test_next_marks_fixed_job_moved_out_of_spring_gap(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines, err = berlin_next(capsys, "30 2 * * *", "2021-03-26T12:00", 3)
    assert status == 0, err
    before, moved, after = fire_lines(lines)
    assert before == "2021-03-27 02:30:00+01:00  Sat  CET"
    # The moved fire: at the first instant after the gap, naming the lost wall time.
    assert moved.startswith("2021-03-28 03:00:00+02:00  Sun  CEST  <- DST gap: 02:30 did not exist")
    assert "clocks jumped from 02:00 to 03:00" in moved
    assert "fixed job fires once at the first instant after the gap" in moved
    assert after == "2021-03-29 02:30:00+02:00  Mon  CEST"


def test_next_gap_note_lists_every_lost_wall_time(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = berlin_next(capsys, "0,30 2 * * *", "2021-03-28T00:00", 2)
    assert status == 0, err
    moved, after = fire_lines(lines)
    # Rule C10: a fixed job fires ONCE after the gap, however many wall times it lost.
    assert moved.startswith("2021-03-28 03:00:00+02:00  Sun  CEST  <- DST gap: 02:00 and 02:30")
    assert after == "2021-03-29 02:00:00+02:00  Mon  CEST"


def test_next_gap_note_summarises_many_lost_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    # Seconds do not count for "fixed" (rule C10): 60 lost wall times, one fire.
    status, lines, err = berlin_next(capsys, "* 30 2 * * *", "2021-03-28T00:00", 2)
    assert status == 0, err
    moved, after = fire_lines(lines)
    assert moved.startswith(
        "2021-03-28 03:00:00+02:00  Sun  CEST  <- DST gap: 02:30:00, 02:30:01, ... 02:30:59 "
        "(60 wall times) did not exist"
    )
    assert after == "2021-03-29 02:30:00+02:00  Mon  CEST"


def test_next_marks_interval_job_skipping_the_gap(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = berlin_next(capsys, "*/30 * * * *", "2021-03-28T01:15", 3)
    assert status == 0, err
    assert fire_lines(lines)[0] == "2021-03-28 01:30:00+01:00  Sun  CET"
    assert fire_lines(lines)[1].startswith(
        "2021-03-28 03:00:00+02:00  Sun  CEST  <- after a DST gap: 02:00 and 02:30 did not exist"
    )
    assert "interval job skipped it" in fire_lines(lines)[1]
    assert fire_lines(lines)[2] == "2021-03-28 03:30:00+02:00  Sun  CEST"


def test_next_gap_notes_in_other_zones(capsys: pytest.CaptureFixture[str]) -> None:
    # Pacific/Apia skipped all of 2011-12-30 (it moved from -10:00 to +14:00).
    status, lines, err = run(
        capsys, "next", "0 12 30 12 *", "--tz", "Pacific/Apia", "--after", "2011-12-29", "-n", "1"
    )
    assert status == 0, err
    assert fire_lines(lines) == [
        "2011-12-31 00:00:00+14:00  Sat  +14  <- DST gap: 2011-12-30 12:00 did not exist (clocks "
        "jumped from 2011-12-30 00:00 to 2011-12-31 00:00); fixed job fires once at the first "
        "instant after the gap"
    ]
    # Australia/Lord_Howe springs forward by half an hour, 02:00 -> 02:30.
    status, lines, err = run(
        capsys, "next", "*/20 * * * *", "--tz", "Australia/Lord_Howe",
        "--after", "2021-10-03T01:30", "-n", "2",
    )  # fmt: skip
    assert status == 0, err
    assert fire_lines(lines) == [
        "2021-10-03 01:40:00+10:30  Sun  +1030",
        "2021-10-03 02:40:00+11:00  Sun  +11  <- after a DST gap: 02:00 and 02:20 did not exist "
        "(clocks jumped from 02:00 to 02:30); interval job skipped it",
    ]


def test_next_marks_both_passes_of_interval_job_in_repeated_hour(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, lines, err = berlin_next(capsys, "*/30 * * * *", "2021-10-31T01:45", 5)
    assert status == 0, err
    fires = fire_lines(lines)
    assert [line[:25] for line in fires] == [
        "2021-10-31 02:00:00+02:00",
        "2021-10-31 02:30:00+02:00",
        "2021-10-31 02:00:00+01:00",
        "2021-10-31 02:30:00+01:00",
        "2021-10-31 03:00:00+01:00",
    ]
    assert "DST repeated hour, 1st pass: 02:00 happens twice" in fires[0]
    assert "fires again at 2021-10-31 02:00:00+01:00" in fires[0]
    assert "DST repeated hour, 1st pass: 02:30 happens twice" in fires[1]
    assert (
        "DST repeated hour, 2nd pass (fold=1): 02:00 already fired at 2021-10-31 02:00:00+02:00"
        in fires[2]
    )
    assert "2nd pass (fold=1): 02:30" in fires[3]
    assert "<-" not in fires[4]


def test_next_marks_fixed_job_first_pass_only(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = berlin_next(capsys, "30 2 * * *", "2021-10-30T12:00", 2)
    assert status == 0, err
    repeated, after = fire_lines(lines)
    assert repeated.startswith("2021-10-31 02:30:00+02:00  Sun  CEST  <- DST repeated hour")
    assert "fires on the 1st pass only" in repeated
    assert after == "2021-11-01 02:30:00+01:00  Mon  CET"


def test_next_after_with_offset_is_converted_to_the_zone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 2021-10-31 00:45 UTC is 02:45 CEST, the first pass of the repeated hour.
    status, lines, err = berlin_next(capsys, "*/30 * * * *", "2021-10-31T00:45:00+00:00", 1)
    assert status == 0, err
    assert "after 2021-10-31 02:45:00+02:00" in lines[0]
    assert fire_lines(lines)[0].startswith("2021-10-31 02:00:00+01:00  Sun  CET  <- DST repeated")


def test_next_naive_after_inside_a_gap_is_shown_as_a_real_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 02:30 did not exist in Berlin on 2021-03-28; zoneinfo reads it with the offset
    # from before the gap (+01:00), which is 03:30 CEST.
    status, lines, err = berlin_next(capsys, "0 * * * *", "2021-03-28T02:30", 1)
    assert status == 0, err
    assert "after 2021-03-28 03:30:00+02:00" in lines[0]
    assert fire_lines(lines) == ["2021-03-28 04:00:00+02:00  Sun  CEST"]


def test_next_every_fires_on_epoch_multiples(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = run(
        capsys, "next", "@every 90s", "--after", "2026-01-01T00:00:00+00:00", "-n", "2"
    )
    assert status == 0, err
    assert "interval job" in lines[0]
    assert fire_lines(lines) == [
        "2026-01-01 00:01:30+00:00  Thu  UTC",
        "2026-01-01 00:03:00+00:00  Thu  UTC",
    ]


def test_next_bad_zone_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = run(capsys, "next", "0 9 * * *", "--tz", "Europe/Berln")
    assert status == 2
    assert lines == []
    assert "unknown time zone 'Europe/Berln'" in err
    assert "did you mean Europe/Berlin" in err


def test_next_bad_after_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "next", "0 9 * * *", "--after", "tomorrow")
    assert status == 2
    assert "--after: not an ISO 8601 time: 'tomorrow'" in err


def test_next_bad_expression_shows_caret(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = run(capsys, "next", "0 0 32 * *")
    assert status == 2
    assert lines == []
    assert err.splitlines()[-1] == "      ^^"


def test_next_reports_when_fires_run_out(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = run(
        capsys, "next", "0 0 1 1 *", "--after", "9997-06-01T00:00:00+00:00", "-n", "5"
    )
    assert status == 1
    assert fire_lines(lines) == [
        "9998-01-01 00:00:00+00:00  Thu  UTC",
        "9999-01-01 00:00:00+00:00  Fri  UTC",
    ]
    assert err.startswith("error: '0 0 1 1 *' has no fire time")


def test_next_with_jitter_shows_each_shifted_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["next", "*/10 * * * * *", "--after", "2026-01-01T00:00:00Z", "-n", "4"]
    assert main([*argv, "--jitter", "7.5", "--task", "t"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(task 't', jitter 7.5 s)" in lines[0]
    for line, seconds in zip(lines[1:], (10, 20, 30, 40), strict=True):
        nominal = datetime(2026, 1, 1, 0, 0, seconds, tzinfo=UTC)
        delay = _plan.jitter_delay("t", _plan.epoch_ms(nominal), 7.5, 10.0)
        runs = nominal + timedelta(seconds=delay)
        assert line.startswith(nominal.isoformat(sep=" "))
        assert f"-> runs {runs.isoformat(sep=' ', timespec='milliseconds')}" in line
    # Go-style durations are read like @every's.
    assert main([*argv, "--jitter", "7500ms", "--task", "t"]) == 0
    assert capsys.readouterr().out.splitlines() == lines


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--jitter", "10s", "--task", "t"], "could reach the next occurrence"),
        (["--jitter", "5s"], "--jitter needs --task"),
        (["--task", "t"], "--task only applies with --jitter"),
        (["--jitter", "soon", "--task", "t"], "is not a duration"),
        (["--jitter", "1s", "--task", "bad name"], "--name"),
    ],
)
def test_next_jitter_errors_exit_2(
    capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["next", "*/10 * * * * *", "-n", "1", *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["next"], ["next", "* * * * *", "-n", "0"], ["bogus"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("next", "validate", "demo"):
        assert command in out


# -- validate --------------------------------------------------------------------------


def test_validate_explains_each_field(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = run(
        capsys,
        "validate",
        "0 9 * * MON-FRI",
        "--tz",
        "Europe/Berlin",
        "--after",
        "2026-03-27T12:00",
    )
    assert status == 0, err
    assert lines[:8] == [
        "expression    0 9 * * MON-FRI",
        "time zone     Europe/Berlin",
        "second        0 (implied: a 5-field expression fires at second 0)",
        "minute        0",
        "hour          9",
        "day-of-month  * (every day of the month)",
        "month         * (every month)",
        "day-of-week   MON-FRI (Monday to Friday)",
    ]
    assert lines[8].startswith("day rule      AND: day-of-month starts with '*'")
    assert lines[9].startswith("dst           fixed job")
    assert lines[10] == "valid; next 3 fires after 2026-03-27 12:00:00+01:00:"
    assert lines[11:] == [
        "  2026-03-30 09:00:00+02:00  Mon  CEST",
        "  2026-03-31 09:00:00+02:00  Tue  CEST",
        "  2026-04-01 09:00:00+02:00  Wed  CEST",
    ]


def field_row(lines: list[str], name: str) -> str:
    (row,) = [line for line in lines if line.startswith(f"{name} ")]
    return row[14:]


def test_validate_or_rule_lists_and_steps(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = run(capsys, "validate", "15,45 */2 1-15 * MON-FRI")
    assert status == 0, err
    assert field_row(lines, "minute") == "15,45"
    every_2 = "every 2 hours: 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22"
    assert field_row(lines, "hour") == f"*/2 ({every_2})"
    assert field_row(lines, "day-of-month") == "1-15 (1 to 15)"
    assert field_row(lines, "day rule").startswith(
        "OR: neither day field starts with '*', so a day matches if EITHER day-of-month 1-15 "
        "OR day-of-week MON-FRI matches"
    )
    assert field_row(lines, "dst").startswith("interval job (hour starts with '*')")


@pytest.mark.parametrize(
    ("expr", "name", "text"),
    [
        ("0 0 L * *", "day-of-month", "L (the last day of the month)"),
        ("0 0 LW * *", "day-of-month", "LW (the last weekday (Monday to Friday) of the month)"),
        ("0 0 * * 5L", "day-of-week", "5L (the last Friday of the month)"),
        ("0 0 * * FRI#3", "day-of-week", "FRI#3 (the 3rd Friday of the month)"),
        ("0 0 * * 5-0", "day-of-week", "5-0 (Friday to Sunday)"),
        ("0 0 * JAN,jul-SEP *", "month", "JAN,jul-SEP (January and July to September)"),
        (
            "0 0 * * 1-5/2",
            "day-of-week",
            "1-5/2 (every 2 days from Monday to Friday: Monday, Wednesday, Friday)",
        ),
        ("10/20 * * * *", "minute", "10/20 (every 20 minutes from 10: 10, 30, 50)"),
        ("*/1 * * * *", "minute", "*/1 (every 1 minute: 0, 1, 2, 3, ..., 59 (60 values))"),
        ("5 4 3 2 1 0", "second", "5"),
    ],
)
def test_validate_describes_elements(
    capsys: pytest.CaptureFixture[str], expr: str, name: str, text: str
) -> None:
    status, lines, err = run(capsys, "validate", expr, "--after", "2026-01-01T00:00:00+00:00")
    assert status == 0, err
    assert field_row(lines, name) == text


def test_validate_nickname_and_every(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = run(capsys, "validate", "@DAILY")
    assert status == 0, err
    assert field_row(lines, "nickname") == "@DAILY = 0 0 * * *"
    assert field_row(lines, "dst").startswith("fixed job")

    status, lines, err = run(capsys, "validate", "@every 1h30m")
    assert status == 0, err
    assert field_row(lines, "interval").startswith("1:30:00 (5400 s)")
    assert field_row(lines, "dst").startswith("interval job (@every): follows real elapsed time")
    assert not any(line.startswith("minute") for line in lines)


def test_validate_error_shows_message_and_caret(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = run(capsys, "validate", "0 0 32 * *")
    assert status == 2
    assert lines == []
    assert err.splitlines() == [
        "error: day-of-month: 32 out of range 1-31 in '0 0 32 * *'",
        "  0 0 32 * *",
        "      ^^",
    ]


@pytest.mark.parametrize(
    ("expr", "token"),
    [
        ("0 0 ? * *", "?"),
        ("0 0 15W * *", "15W"),
        ("0 0 L-3 * *", "L-3"),
        ("H 0 * * *", "H"),
        ("0 0 1 1 * 2026 *", None),
        ("@reboot", None),
        ("0 0 * * MON-FOO", "FOO"),
    ],
)
def test_validate_rejects_unsupported_syntax(
    capsys: pytest.CaptureFixture[str], expr: str, token: str | None
) -> None:
    status, _, err = run(capsys, "validate", expr)
    assert status == 2
    first, *rest = err.splitlines()
    assert first.startswith("error: ")
    if token is not None:
        caret = rest[-1]
        assert caret.strip().startswith("^")
        column = caret.index("^") - 2
        assert expr[column : column + len(token)] == token


def test_error_lines_fall_back_without_position() -> None:
    once = ValidationError("minute: bad", token="61", expression="61 * * * *")
    assert error_lines(once, "61 * * * *")[-1] == "  ^^"
    twice = ValidationError("hour: bad", token="9", expression="9 9 * * *")
    assert error_lines(twice, "9 9 * * *") == ["error: hour: bad", "  9 9 * * *"]
    nothing = ValidationError("expected 5 or 6 fields")
    assert error_lines(nothing, "  * *  ") == ["error: expected 5 or 6 fields", "  * *"]


def test_validate_subprocess_exit_code_and_caret() -> None:
    # The subprocess imports the same trio_sched as this test, installed or not.
    src = str(Path(trio_sched.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "trio_sched", "validate", "0 0 1 13 *"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    message, echo, caret = done.stderr.splitlines()
    assert message == "error: month: 13 out of range 1-12 in '0 0 1 13 *'"
    assert echo == "  0 0 1 13 *"
    assert caret.index("^") == echo.index("13")


# -- demo ------------------------------------------------------------------------------


def test_demo_not_available_yet(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "trio_sched._demo", None)  # import -> ModuleNotFoundError
    status, _, err = run(capsys, "demo")
    assert status == 2
    assert err.strip() == "demo: not available yet"


def test_demo_runs_the_demo_module_lazily(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float | None] = []

    def fake_main(seconds: float | None) -> int:
        calls.append(seconds)
        return 7

    fake = types.ModuleType("trio_sched._demo")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "trio_sched._demo", fake)
    assert run(capsys, "demo", "--seconds", "1.5")[0] == 7
    assert run(capsys, "demo")[0] == 7
    assert calls == [1.5, None]


def test_cli_is_not_imported_by_the_package() -> None:
    code = (
        "import sys, trio_sched, trio_sched.cron; "
        "print(sorted({'trio_sched.__main__', 'trio_sched._cli_cron'} & set(sys.modules)))"
    )
    src = str(Path(trio_sched.__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=src),
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"


# -- docs ------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cron.md"


def doc_examples() -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) of every `$ trio-sched ...` in docs/cron.md.

    The output of a command is every line after it up to the next command or the end of
    its code block.
    """
    examples: list[tuple[str, list[str]]] = []
    output: list[str] | None = None
    for line in DOCS.read_text().splitlines():
        if line.startswith("```"):
            output = None
        elif line.startswith("$ trio-sched "):
            output = []
            examples.append((line[2:], output))
        elif output is not None:
            output.append(line)
    return examples


@pytest.mark.parametrize(("command", "expected"), doc_examples())
def test_docs_show_real_output(
    capsys: pytest.CaptureFixture[str], command: str, expected: list[str]
) -> None:
    # "..." in the docs stands for any number of lines left out.
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + r"\n" for line in expected
    )
    main(shlex.split(command)[1:])
    captured = capsys.readouterr()
    assert re.fullmatch(pattern, captured.out + captured.err), captured.out + captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "--version")
    assert status == 0
    assert lines == [f"trio-sched {importlib.metadata.version('trio-sched')}"]


@pytest.mark.parametrize("command", ["next", "validate"])
def test_an_unquoted_expression_gets_a_hint_to_quote_it(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # What the shell hands over for `trio-sched next 0 9 * * MON-FRI` (stars expanded
    # into file names, here two of them).
    status, lines, err = run(capsys, command, "0", "9", "README.md", "pyproject.toml", "MON-FRI")
    assert status == 2
    assert lines == []
    assert "the cron expression must be one argument; quote it" in err
    assert f"trio-sched {command} '0 9 * * MON-FRI'" in err


def test_unknown_options_are_still_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "next", "@daily", "--bogus")
    assert status == 2
    assert "unrecognized arguments: --bogus" in err


def test_errors_show_their_public_module() -> None:
    for name in (
        "SchedulerError",
        "ValidationError",
        "ConflictError",
        "NotFoundError",
        "RetryableError",
        "InvalidArgumentError",
        "NotInitializedError",
        "ClosedError",
        "LeaseLostError",
    ):
        cls = getattr(trio_sched, name)
        assert cls.__module__ == "trio_sched"
        assert f"{cls.__module__}.{cls.__qualname__}" == f"trio_sched.{name}"
