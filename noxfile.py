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
    """Check the docs: every Python example in README.md and docs/ runs as a program
    (fragments through the file that completes them), every command line of a ``sh``
    block works, and every ``$ trio-sched ...`` listing in docs/cron.md prints what the
    page shows (tests/docs, tests/test_cli.py). The Redis and PostgreSQL examples use
    the test servers (TRIO_SCHED_REDIS_URL / TRIO_SCHED_POSTGRES_URL, else local, else
    embedded)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/docs", "tests/test_cli.py::test_docs_show_real_output")
