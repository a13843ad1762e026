"""nox sessions: tests, lint, typecheck, bench, docs."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", "--strict", "src/trio_sched")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The benchmark suite in quick mode (vs APScheduler 4 and the floor), then cron
    throughput. Redis and Postgres: TRIO_SCHED_REDIS_URL / TRIO_SCHED_POSTGRES_URL or the
    local servers; the suite says which backend it could not measure."""
    session.install("-e", ".[test,bench,redis,postgres]")
    session.run("python", "-m", "benchmarks", "suite", "--quick", *session.posargs)
    session.run("python", "-m", "benchmarks", "cron")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Check that the docs' examples run: every `python -m trio_sched` line in docs/."""
    session.install("-e", ".")
    session.run("python", "-m", "trio_sched", "validate", "0 9 * * MON-FRI")
    session.run("python", "-m", "trio_sched", "next", "0 9 * * MON-FRI", "--tz", "Europe/Berlin")
