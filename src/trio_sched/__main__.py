"""The command line: ``python -m trio_sched`` and the ``trio-sched`` console script.

Subcommands:
    next EXPR [--tz ZONE] [-n N] [--after ISO] [--jitter D --task NAME]
                                                the next N fire times, DST effects marked
    validate EXPR [--tz ZONE] [--after ISO]      what the expression means, field by field
    demo [--seconds N]                           the runtime demo (trio_sched._demo)

Rules of this module:
- `main` returns the exit status instead of exiting: 0 success, 2 for a bad command
  line, expression, zone or time (argparse's own usage errors are 2 as well), 1 when a
  valid expression has no fire within the engine's search cap.
- Errors go to stderr, results to stdout.
- Nothing imports this module, and it imports only the cron engine and its own text
  helpers, so ``import trio_sched`` stays light. The demo (which needs Trio) is
  imported only when its subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice
from typing import TextIO

from trio_sched import _cli_cron
from trio_sched._errors import SchedulerError
from trio_sched._plan import epoch_ms, jitter_delay
from trio_sched._task import Task
from trio_sched.cron import Schedule, ValidationError, parse
from trio_sched.cron._parse import _parse_duration
from trio_sched.cron._zone import resolve_zone

__all__ = ["main"]

_USAGE_ERROR = 2
_NO_FIRE = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            expr = getattr(args, "expr", None)
            if expr is not None and not any(arg.startswith("-") for arg in extra):
                # `trio-sched next 0 9 * * *`: the shell split the expression (and may
                # have expanded its stars into file names).
                print(
                    f"{parser.prog}: error: the cron expression must be one argument; quote "
                    f"it, e.g. {parser.prog} {args.command} '0 9 * * MON-FRI' (got "
                    f"{len(extra) + 1} arguments: {' '.join([expr, *extra])!r})",
                    file=sys.stderr,
                )
                return _USAGE_ERROR
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        # argparse exits on --help, --version and usage errors; report its status.
        return exc.code if isinstance(exc.code, int) else _USAGE_ERROR
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def _version() -> str:
    try:
        return importlib.metadata.version("trio-sched")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-sched",
        description="Trio-native distributed cron scheduler: inspect cron expressions, run "
        "the demo.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(
        title="commands", required=True, metavar="COMMAND", dest="command"
    )

    expr_help = "cron expression, quoted: '0 9 * * MON-FRI', '@daily', '@every 90s'"
    tz_help = "IANA time zone the expression's wall times are in (default: UTC)"
    after_help = (
        "start after this time: ISO 8601 with a UTC offset, or naive and read in --tz "
        "(a repeated wall time means its 1st pass); default: now"
    )

    nxt = commands.add_parser(
        "next",
        help="print the next fire times",
        description="Print the next fire times, one per line, and mark the fires that a "
        "DST change moved (a skipped wall time) or doubled (a repeated wall time).",
    )
    nxt.add_argument("expr", metavar="EXPR", help=expr_help)
    nxt.add_argument("--tz", default="UTC", metavar="ZONE", help=tz_help)
    nxt.add_argument(
        "-n", type=_positive_int, default=10, metavar="N", help="how many fires (default: 10)"
    )
    nxt.add_argument("--after", metavar="ISO", help=after_help)
    nxt.add_argument(
        "--jitter",
        metavar="DURATION",
        help="also show when each fire runs with this jitter (90s, 5m, 1h30m or seconds); "
        "needs --task, whose name the delay is derived from",
    )
    nxt.add_argument("--task", metavar="NAME", help="the task name, for --jitter")
    nxt.set_defaults(handler=_cmd_next)

    val = commands.add_parser(
        "validate",
        help="explain an expression field by field",
        description="Check an expression and explain it field by field, with its next 3 "
        "fires. Exit status 2 when it is invalid.",
    )
    val.add_argument("expr", metavar="EXPR", help=expr_help)
    val.add_argument("--tz", default="UTC", metavar="ZONE", help=tz_help)
    val.add_argument("--after", metavar="ISO", help=after_help)
    val.set_defaults(handler=_cmd_validate)

    demo = commands.add_parser(
        "demo", help="run the scheduler demo", description="Run the scheduler demo."
    )
    demo.add_argument(
        "--seconds", type=float, default=None, metavar="N", help="stop after N seconds"
    )
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _UsageError(Exception):
    """A bad option value, reported as ``error: ...`` with exit status 2."""


def _cmd_next(args: argparse.Namespace) -> int:
    def list_fires(schedule: Schedule, after: datetime) -> int:
        try:
            jitter = _jitter(args, schedule)
        except _UsageError as exc:
            _error(str(exc))
            return _USAGE_ERROR
        print(
            f"{schedule.expression}  ({_cli_cron.job_kind(schedule)} job) in "
            f"{_cli_cron.zone_name(schedule.tz)}, next {args.n} after "
            f"{after.isoformat(sep=' ')}:"
            + (f" (task {args.task!r}, jitter {jitter:g} s)" if jitter else "")
        )
        return _print_fires(schedule, after, args.n, jitter=(args.task, jitter))

    return _with_schedule(args, list_fires)


def _jitter(args: argparse.Namespace, schedule: Schedule) -> float:
    """``--jitter`` in seconds (0 without it), checked as `Task` checks it (rule T6)."""
    if args.jitter is None:
        if args.task is not None:
            raise _UsageError("--task only applies with --jitter")
        return 0.0
    if args.task is None:
        raise _UsageError("--jitter needs --task NAME: the delay is derived from it")
    text = args.jitter.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = _parse_duration(text, text, 0) / 1e6
        except ValidationError:
            raise _UsageError(
                f"--jitter: {text!r} is not a duration (90s, 5m, 1h30m, or seconds)"
            ) from None
    try:
        Task(name=args.task, schedule=schedule.expression, timezone=args.tz, jitter=seconds)
    except ValidationError as exc:
        raise _UsageError(f"--{exc.field or 'jitter'}: {exc.message}") from None
    return seconds


def _cmd_validate(args: argparse.Namespace) -> int:
    def explain(schedule: Schedule, after: datetime) -> int:
        for line in _cli_cron.describe(schedule):
            print(line)
        print(f"valid; next 3 fires after {after.isoformat(sep=' ')}:")
        return _print_fires(schedule, after, 3, indent="  ")

    return _with_schedule(args, explain)


def _with_schedule(args: argparse.Namespace, action: Callable[[Schedule, datetime], int]) -> int:
    """Resolve zone, expression and start time (reporting errors), then run `action`."""
    try:
        zone = _zone(args.tz)
        schedule = parse(args.expr, tz=zone)
        after = _after(args.after, zone)
    except _UsageError as exc:
        _error(str(exc))
        return _USAGE_ERROR
    except ValidationError as exc:
        _print_lines(_cli_cron.error_lines(exc, args.expr), sys.stderr)
        return _USAGE_ERROR
    return action(schedule, after)


def _print_fires(
    schedule: Schedule,
    after: datetime,
    count: int,
    indent: str = "",
    jitter: tuple[str | None, float] = (None, 0.0),
) -> int:
    shadow = _cli_cron.shadow_of(schedule)
    task, spread = jitter
    printed, last = 0, after
    for last in islice(schedule.iter_after(after), count):
        note = _cli_cron.dst_note(schedule, last, shadow)
        line = _cli_cron.fire_line(last, note)
        if spread and task is not None:
            gap = (schedule.next_after(last) - last).total_seconds()
            delay = jitter_delay(task, epoch_ms(last), spread, gap)
            runs = (last + timedelta(seconds=delay)).isoformat(sep=" ", timespec="milliseconds")
            line = f"{line}  -> runs {runs} (+{delay:.3f} s)"
        print(indent + line)
        printed += 1
    if printed == count:
        return 0
    # iter_after ends quietly where the search cap (rule C7) or the datetime range
    # ends; next_after says why.
    try:
        schedule.next_after(last)
    except SchedulerError as exc:
        _error(str(exc))
    return _NO_FIRE


def _zone(name: str) -> tzinfo:
    try:
        return resolve_zone(name)
    except ValueError as exc:
        raise _UsageError(f"--tz: {exc}") from None


def _after(text: str | None, zone: tzinfo) -> datetime:
    if text is None:
        return datetime.now(zone).replace(microsecond=0)  # whole seconds read better
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _UsageError(
            f"--after: not an ISO 8601 time: {text!r} (e.g. 2026-03-29T01:30:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        # Through UTC and back: a wall time inside a gap becomes the instant zoneinfo
        # maps it to, shown as a wall time that exists.
        moment = moment.replace(tzinfo=zone).astimezone(UTC)
    return moment.astimezone(zone)


def _cmd_demo(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the demo pulls in Trio and the runtime, which the
    # cron commands do not need.
    try:
        demo = importlib.import_module("trio_sched._demo")
    except ModuleNotFoundError as exc:
        if exc.name != "trio_sched._demo":
            raise  # the demo exists but something it needs is missing: show that
        print("demo: not available yet", file=sys.stderr)
        return _USAGE_ERROR
    run: Callable[[float | None], int] = demo.main
    return run(args.seconds)


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _print_lines(lines: Sequence[str], stream: TextIO) -> None:
    for line in lines:
        print(line, file=stream)


if __name__ == "__main__":
    sys.exit(main())
