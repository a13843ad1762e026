"""Bad Postgres configuration is refused clearly (issue 11 §4, rules P4, P6-P8).

What parsing can tell raises `ValidationError` (field ``url`` or ``table``) when the
config is built, for the lock provider and the jobs runtime alike, before any I/O;
what only a connection attempt can tell (the PG* environment) is classified at first
use, and a mistake there is `InvalidArgumentError`, never `RetryableError`. A refused
connection stays retryable. A table of another component's shape (one table for locks
and jobs) is a `ConflictError` naming it when the schema is first created (P8).
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from trio_sched import ConflictError, InvalidArgumentError, RetryableError, ValidationError
from trio_sched._postgres_driver import PostgresDriver
from trio_sched.jobs import Job
from trio_sched.jobs.postgres import PostgresJobs, PostgresJobsConfig
from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

from ._helpers import sync_connect
from .conftest import Tables

SECRET = "s3cr3t-Pa55"
CONFIGS = [PostgresLockProviderConfig, PostgresJobsConfig]
Config = type[PostgresLockProviderConfig | PostgresJobsConfig]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://127.0.0.1:99999/test", "port must be a number from 1 to 65535"),
        ("postgresql://127.0.0.1:abc/test", "got 'abc'"),
        ("postgresql://127.0.0.1:0/test", "got '0'"),
        ("host=127.0.0.1 port=abc dbname=test", "got 'abc'"),
        ("host=127.0.0.1 port=-5 dbname=test", "got '-5'"),
        ("host=a,b port=1,2,3", "3 ports for 2 host(s)"),
        ("host=a,b hostaddr=10.0.0.1", "2 host names but 1 hostaddr"),
        ("postgresql://127.0.0.1/test?hostaddr=db.example", "hostaddr must be numeric"),
        ("postgresql://127.0.0.1/test?sslmode=bogus", "sslmode must be one of"),
        ("postgresql://127.0.0.1/test?sslmode=Require", "got 'Require'"),  # case matters
        ("postgresql://127.0.0.1/test?gssencmode=x", "gssencmode"),
        ("postgresql://127.0.0.1/test?channel_binding=x", "channel_binding"),
        ("postgresql://127.0.0.1/test?target_session_attrs=rw", "target_session_attrs"),
        ("postgresql://127.0.0.1/test?load_balance_hosts=x", "load_balance_hosts"),
        ("postgresql://127.0.0.1/test?keepalives=yes", "keepalives must be an integer"),
        ("postgresql://127.0.0.1/test?tcp_user_timeout=1.5", "tcp_user_timeout"),
        ("postgresql://127.0.0.1/test?nosuchoption=1", "cannot parse"),
    ],
)
def test_bad_dsn_is_refused_when_the_config_is_built(config: Config, url: str, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        config(url=url)
    assert info.value.field == "url"
    assert says in str(info.value)


@pytest.mark.parametrize("config", CONFIGS)
def test_bad_dsn_messages_hide_the_password(config: Config) -> None:
    for url in (
        f"postgresql://u:{SECRET}@127.0.0.1:99999/test",
        f"postgresql://u:{SECRET}@127.0.0.1/test?sslmode=bogus",
        f"host=127.0.0.1 password={SECRET} port=abc",
    ):
        with pytest.raises(ValidationError) as info:
            config(url=url)
        assert SECRET not in str(info.value)
        assert info.value.__cause__ is None


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://127.0.0.1/test",
        "postgresql://127.0.0.1:5432/test?sslmode=verify-full&target_session_attrs=read-write",
        "postgresql://h1:5432,h2:5433/test?load_balance_hosts=random",
        "postgresql://h1,h2:5432/test",
        "postgresql:///test?host=/var/run/postgresql",
        "host=a,b port=5432,5433 hostaddr=127.0.0.1,::1 keepalives=1 keepalives_idle=30",
        f"host=127.0.0.1 port=5432 dbname=test password={SECRET} sslmode=disable",
        "dbname=test",
    ],
)
def test_good_dsns_still_pass(config: Config, url: str) -> None:
    assert config(url=url).url == url


@pytest.mark.parametrize(
    ("message", "mapped"),
    [
        ('connection is bad: invalid sslmode value: "bogus"', InvalidArgumentError),
        ('connection is bad: invalid port number: "99999"', InvalidArgumentError),
        (
            'connection is bad: invalid integer value "abc" for connection option "port"',
            InvalidArgumentError,
        ),
        ('connection is bad: invalid require_auth value: "x"', InvalidArgumentError),
        ("connection is bad: could not match 3 port numbers to 2 hosts", InvalidArgumentError),
        ('could not parse network address "foo": Name or service not known', InvalidArgumentError),
        (
            'FATAL:  invalid value for parameter "statement_timeout": "abc"',
            InvalidArgumentError,
        ),
        (
            'connection to server at "127.0.0.1", port 1 failed: Connection refused',
            RetryableError,
        ),
        (
            "failed to resolve host 'db.invalid': [Errno -2] Name or service not known",
            RetryableError,
        ),
        ("connection timeout expired", RetryableError),
        ("server closed the connection unexpectedly", RetryableError),
        ("FATAL:  the database system is starting up", RetryableError),
    ],
)
def test_connection_failures_no_retry_can_cure_are_invalid_arguments(
    message: str, mapped: type[Exception]
) -> None:
    driver = PostgresDriver(
        "postgresql://127.0.0.1/test", operation_timeout=1.0, max_connections=1, what="x"
    )
    assert type(driver.map_error(psycopg.OperationalError(message))) is mapped
    driver.close()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PGSSLMODE", "bogus"), ("PGPORT", "99999"), ("PGPORT", "abc"), ("PGGSSENCMODE", "x")],
)
async def test_bad_environment_fails_at_first_use_as_invalid_argument(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # libpq reads these at every connection attempt, which fails before any network I/O.
    monkeypatch.setenv(variable, value)
    config = PostgresLockProviderConfig(url="host=127.0.0.1 dbname=test", operation_timeout=2.0)
    async with PostgresLockProvider(config) as provider:
        with pytest.raises(InvalidArgumentError) as info:
            await provider.health_check()
    assert value in str(info.value)


async def test_refused_connection_stays_retryable() -> None:
    # Port 1: nobody listens there; the connection is refused at once.
    config = PostgresLockProviderConfig(url="postgresql://127.0.0.1:1/test", operation_timeout=2.0)
    async with PostgresLockProvider(config) as provider:
        with pytest.raises(RetryableError):
            await provider.health_check()


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    "table",
    ["pg_temp.locks", "pg_catalog.locks", "pg_toast.jobs", "information_schema.locks"],
)
def test_system_schemas_are_refused(config: Config, table: str) -> None:
    with pytest.raises(ValidationError) as info:
        config(table=table)
    assert info.value.field == "table"
    assert "system schema" in str(info.value)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    "table", ["jobs; DROP TABLE users", 'x"y', "a.b.c", "tab\x00le", "t" * 49, "lócks", 7]
)
def test_table_names_follow_the_same_rule_in_both_configs(config: Config, table: object) -> None:
    with pytest.raises(ValidationError) as info:
        config(table=table)  # type: ignore[arg-type]
    assert info.value.field == "table"


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("table", ["locks", "public.Jobs_2", "_x", "PG_mine.t", "t" * 48])
def test_ordinary_table_names_still_pass(config: Config, table: str) -> None:
    assert config(table=table).table == table


# -- one table for two components (P8) ---------------------------------------------------


async def test_jobs_runtime_on_a_lock_table_is_a_clear_conflict(
    postgres_url: str, tables: Tables
) -> None:
    table = tables.new()
    locks = PostgresLockProvider(PostgresLockProviderConfig(url=postgres_url, table=table))
    jobs = PostgresJobs(PostgresJobsConfig(url=postgres_url, table=table))
    async with locks, jobs:
        assert await locks.acquire("k", 5.0) is not None
        for call in (jobs.ensure_schema, lambda: jobs.queue_statistics("q")):
            with pytest.raises(ConflictError) as info:
                await call()
            message = str(info.value)
            assert f"table {table!r} exists but is not a trio-sched jobs table" in message
            assert "looks like a trio-sched lock table" in message
            assert "PostgresJobsConfig.table" in message
        assert not jobs.statistics().schema_ready
        # The lock provider is unharmed: nothing was created or changed.
        assert await locks.acquire("k2", 5.0) is not None


async def test_lock_provider_on_a_jobs_table_is_a_clear_conflict(
    postgres_url: str, tables: Tables
) -> None:
    table = tables.new("trio_sched_jobs")
    jobs = PostgresJobs(PostgresJobsConfig(url=postgres_url, table=table))
    locks = PostgresLockProvider(PostgresLockProviderConfig(url=postgres_url, table=table))
    async with locks, jobs:
        await jobs.enqueue(Job(id="j1", queue="q", name="n"))
        with pytest.raises(ConflictError) as info:
            await locks.acquire("k", 5.0)
        message = str(info.value)
        assert f"table {table!r} exists but is not a trio-sched lock table" in message
        assert "lacks the column(s) expires_at, key, token" in message
        assert "looks like a trio-sched jobs table" in message
        assert (await jobs.queue_statistics("q")).ready == 1
    with sync_connect(postgres_url) as conn:
        # The watermark table was not created either: all or nothing.
        row = conn.execute("SELECT to_regclass(%s)", (f"{table}_watermarks",)).fetchone()
    assert row == (None,)


async def test_jobs_runtime_on_a_watermark_table_is_a_clear_conflict(
    postgres_url: str, tables: Tables
) -> None:
    table = tables.new()
    async with PostgresLockProvider(PostgresLockProviderConfig(url=postgres_url, table=table)) as p:
        await p.ensure_schema()
    # tables.new names are dropped with their _watermarks sibling at the end.
    jobs = PostgresJobs(PostgresJobsConfig(url=postgres_url, table=f"{table}_watermarks"))
    async with jobs:
        with pytest.raises(ConflictError) as info:
            await jobs.ensure_schema()
    assert "looks like a trio-sched watermark table" in str(info.value)


async def test_foreign_table_or_view_of_that_name_is_a_clear_conflict(
    postgres_url: str, tables: Tables
) -> None:
    table, view = tables.new(), tables.new()
    with sync_connect(postgres_url) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (a int, b text)").format(sql.Identifier(table)))
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT 1 AS x").format(sql.Identifier(view)))
    try:
        config = PostgresLockProviderConfig(url=postgres_url, table=table)
        async with PostgresLockProvider(config) as locks:
            with pytest.raises(ConflictError) as info:
                await locks.ensure_schema()
        assert "is not a trio-sched table (its columns: a, b)" in str(info.value)
        async with PostgresJobs(PostgresJobsConfig(url=postgres_url, table=view)) as jobs:
            with pytest.raises(ConflictError) as info:
                await jobs.ensure_schema()
        assert f"{view!r} is a view, not a table" in str(info.value)
    finally:
        with sync_connect(postgres_url) as conn:
            conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(view)))


async def test_own_tables_pass_the_shape_check_again(postgres_url: str, tables: Tables) -> None:
    # A restart (a new instance) on tables made earlier finds them of the right shape,
    # extra columns included.
    locks_table, jobs_table = tables.new(), tables.new("trio_sched_jobs")
    for _ in range(2):
        locks = PostgresLockProvider(
            PostgresLockProviderConfig(url=postgres_url, table=locks_table)
        )
        jobs = PostgresJobs(PostgresJobsConfig(url=postgres_url, table=jobs_table))
        async with locks, jobs:
            await locks.ensure_schema()
            await jobs.ensure_schema()
        with sync_connect(postgres_url) as conn:
            for name in (locks_table, jobs_table):
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS note text").format(
                        sql.Identifier(name)
                    )
                )
