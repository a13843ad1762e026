"""`PostgresLockProvider` when things go wrong: redaction, unreachable or silent servers,
replies lost mid-statement, dropped connections, cancellation while a statement waits.

Stalls and cuts go through `PgProxy` (a loopback proxy of the test's own), never through
the shared server.
"""

from __future__ import annotations

import logging
import random
import socket
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
import trio

from trio_sched import ClosedError, RetryableError, SchedulerError, ValidationError
from trio_sched._postgres_common import redact_dsn
from trio_sched._postgres_driver import PostgresDriver
from trio_sched.health import lock_provider_health_checker
from trio_sched.locks import AcquireRequest, LockLease
from trio_sched.locks.postgres import PostgresLockProvider, PostgresLockProviderConfig

from ._helpers import running_proxy, sync_connect
from .conftest import ProviderFactory

SECRET = "S3cr3t-pw"
# Generous bounds for "returns within its timeout": they catch a hang, not a slow machine.
BOUND = 10.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- redaction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://al:S3cr3t-pw@h:5/db", "postgresql://al:***@h:5/db"),
        ("postgres://al:S3cr3t-pw@h/db?sslmode=off", "postgres://al:***@h/db?sslmode=off"),
        ("postgresql://al@h/db?password=S3cr3t-pw&x=1", "postgresql://al@h/db?password=***&x=1"),
        ("host=h password=S3cr3t-pw dbname=db", "host=h password=*** dbname=db"),
        ("host=h password = 'S3cr3t-pw x' dbname=db", "host=h password = *** dbname=db"),
        ("postgresql://al:p%40S3cr3t-pw@h/db", "postgresql://al:***@h/db"),
        ("postgresql://h/db", "postgresql://h/db"),
    ],
)
def test_redact_dsn(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown
    assert SECRET not in redact_dsn(dsn)


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert "p%40" + SECRET not in text
        assert "p@" + SECRET not in text


@pytest.mark.parametrize(
    "form",
    ["url", "query", "keyword", "encoded"],
)
async def test_password_never_shown_when_unreachable(
    form: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = _closed_port()
    dsn = {
        "url": f"postgresql://alice:{SECRET}@127.0.0.1:{port}/test",
        "query": f"postgresql://alice@127.0.0.1:{port}/test?password={SECRET}",
        "keyword": f"host=127.0.0.1 port={port} dbname=test user=alice password={SECRET}",
        "encoded": f"postgresql://alice:p%40{SECRET}@127.0.0.1:{port}/test",
    }[form]
    config = PostgresLockProviderConfig(url=dsn, operation_timeout=1.0)
    provider = PostgresLockProvider(config)
    try:
        with trio.fail_after(BOUND), pytest.raises(RetryableError) as info:
            await provider.acquire("k", 1.0)
        result = await lock_provider_health_checker("pg", provider, timeout=BOUND)()
        assert not result.healthy
        assert result.error is not None
        _no_secret(
            repr(config),
            str(config),
            repr(provider),
            str(info.value),
            "".join(traceback.format_exception(info.value)),
            result.error,
            caplog.text,
        )
    finally:
        await provider.aclose()


def test_invalid_dsn_message_withholds_the_password() -> None:
    with pytest.raises(ValidationError) as info:
        PostgresLockProviderConfig(url=f"host=127.0.0.1 password={SECRET} port='unterminated")
    _no_secret(str(info.value), "".join(traceback.format_exception(info.value)))
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


async def test_driver_text_holding_the_password_is_scrubbed_and_not_chained(
    postgres_url: str,
) -> None:
    # Trust auth ignores the password, so this DSN connects; the failure names it.
    dsn = psycopg.conninfo.make_conninfo(postgres_url, password=SECRET)
    driver = PostgresDriver(dsn, operation_timeout=3.0, max_connections=1, what="test")

    def fails(conn: psycopg.Connection[object]) -> None:
        raise psycopg.OperationalError(f"could not do it with password {SECRET}")

    try:
        with pytest.raises(RetryableError) as info:
            await driver.call(fails)
    finally:
        driver.close()
    _no_secret(str(info.value), "".join(traceback.format_exception(info.value)))
    assert "could not do it with password ***" in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


# -- unreachable and silent servers ------------------------------------------------------


async def test_unreachable_server_is_retryable_and_unhealthy() -> None:
    config = PostgresLockProviderConfig(
        url=f"postgresql://127.0.0.1:{_closed_port()}/test", operation_timeout=1.0
    )
    async with PostgresLockProvider(config) as provider:
        with trio.fail_after(BOUND):
            with pytest.raises(RetryableError):
                await provider.health_check()
            with pytest.raises(RetryableError) as info:
                await provider.acquire("k", 1.0)
            result = await lock_provider_health_checker("pg", provider, timeout=BOUND)()
        assert not result.healthy
        assert isinstance(info.value.__cause__, psycopg.OperationalError)  # chained
        assert provider.statistics().driver.failures >= 2


@asynccontextmanager
async def silent_listener() -> AsyncIterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    held: list[trio.SocketStream] = []

    async def hold(stream: trio.SocketStream) -> None:
        held.append(stream)
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, hold, listeners)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def test_silent_server_times_out_within_operation_timeout() -> None:
    async with silent_listener() as port:
        config = PostgresLockProviderConfig(
            url=f"postgresql://127.0.0.1:{port}/test", operation_timeout=0.5
        )
        async with PostgresLockProvider(config) as provider:
            with trio.fail_after(BOUND):
                with pytest.raises(RetryableError, match="no answer within"):
                    await provider.health_check()
                result = await lock_provider_health_checker("pg", provider, timeout=BOUND)()
            assert not result.healthy
            assert provider.statistics().driver.timeouts == 2


# -- replies lost mid-statement: watchdog and undo ------------------------------------------


async def test_lost_reply_to_acquire_is_undone_by_token(
    make_provider: ProviderFactory, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_sched")
    key = f"lost-reply:{random.random()}"
    async with (
        running_proxy(postgres_url) as proxy,
        make_provider(
            url=proxy.url(), operation_timeout=0.5, max_connections=1, cleanup_interval=None
        ) as flaky,
        make_provider() as direct,
    ):
        await flaky.ensure_schema()  # one pooled connection through the proxy
        assert proxy.mute_replies() == 1  # statements still reach the server
        with trio.fail_after(BOUND), pytest.raises(RetryableError):
            await flaky.acquire(key, 30.0)
        # The INSERT committed but its reply was dropped. The watchdog cuts the silent
        # connection, and the abandoned thread releases the key by its token.
        with trio.fail_after(BOUND):
            while flaky.statistics().driver.undos == 0:  # noqa: ASYNC110 - a thread's counter
                await trio.sleep(0.02)
        stats = flaky.statistics().driver
        assert (stats.interrupted, stats.abandoned, stats.undo_failures) == (1, 1, 0)
        assert "released 1 lock(s) of an abandoned or failed acquire" in caplog.text
        # Long before its 30 s TTL, the key is free for everyone.
        assert await direct.acquire(key, 5.0) is not None
        # And the flaky provider works again once the network does.
        assert await flaky.acquire(f"{key}:after", 5.0) is not None


async def test_connection_closed_while_idle_is_replaced_without_an_error(
    make_provider: ProviderFactory, postgres_url: str
) -> None:
    async with (
        running_proxy(postgres_url) as proxy,
        make_provider(url=proxy.url(), max_connections=1) as provider,
    ):
        await provider.health_check()
        assert await proxy.cut() == 1
        await trio.sleep(0.05)  # let the FIN arrive
        await provider.health_check()
        assert provider.statistics().driver.connections_opened == 2


async def test_connection_dropped_mid_call_is_retryable_then_recovers(
    make_provider: ProviderFactory, postgres_url: str
) -> None:
    async with (
        running_proxy(postgres_url) as proxy,
        make_provider(url=proxy.url(), max_connections=1) as provider,
    ):
        await provider.ensure_schema()
        proxy.mute_replies()

        async def cut_soon() -> None:
            await trio.sleep(0.1)
            await proxy.cut()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cut_soon)
            with trio.fail_after(BOUND), pytest.raises(RetryableError):
                await provider.get_watermarks(["x"])
        assert await provider.get_watermarks(["x"]) == {}


# -- cancellation ------------------------------------------------------------------------


async def test_cancelled_acquire_waiting_on_a_row_lock_leaves_no_lock(
    make_provider: ProviderFactory,
    postgres_url: str,
    session_table: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_sched")
    key = f"cancel:{random.random()}"
    async with make_provider(operation_timeout=5.0) as provider, make_provider() as other:
        assert await provider.acquire(key, 0.1) is not None
        await trio.sleep(0.2)  # expired: the next acquire takes the row over
        with sync_connect(postgres_url) as blocker:
            with blocker.transaction():
                blocker.execute(
                    f'SELECT 1 FROM "{session_table}" WHERE key = %s FOR UPDATE', (key,)
                )
                with trio.move_on_after(0.3) as scope:
                    await provider.acquire(key, 30.0)  # waits for the row lock
                assert scope.cancelled_caught
            # The transaction ended: the abandoned INSERT now takes the expired row, and
            # the thread, finding its caller gone, releases it by its token.
            with trio.fail_after(BOUND):
                while provider.statistics().driver.undos == 0:  # noqa: ASYNC110 - a thread's counter
                    await trio.sleep(0.02)
        assert "released 1 lock(s) of an abandoned or failed acquire" in caplog.text
        assert await other.acquire(key, 5.0) is not None


async def test_cancelled_mark_waiting_on_a_row_lock_is_not_undone(
    make_provider: ProviderFactory, postgres_url: str, session_table: str
) -> None:
    # PG6: a mark that reached the server may still apply after its caller gave up, and
    # nothing takes it back (a dispatch that happened stays marked).
    key = f"cancel-mark:{random.random()}"
    async with make_provider(operation_timeout=5.0) as provider:
        (lease,) = await provider.acquire_batch([AcquireRequest(key, 30.0)])
        assert isinstance(lease, LockLease)
        with sync_connect(postgres_url) as blocker:
            with blocker.transaction():
                blocker.execute(
                    f'SELECT 1 FROM "{session_table}" WHERE key = %s FOR UPDATE', (key,)
                )
                with trio.move_on_after(0.3) as scope:
                    await provider.mark_dispatched([lease])  # waits for the row lock
                assert scope.cancelled_caught
            with trio.fail_after(BOUND):
                while not _dispatched(blocker, session_table, key):  # noqa: ASYNC110 - a row
                    await trio.sleep(0.02)
        stats = provider.statistics()
        assert (stats.driver.abandoned, stats.driver.undos) == (1, 0)
        # Marked again, now by a call that returns: still the caller's record.
        assert await provider.mark_dispatched([lease]) == [True]
        assert not await provider.release(lease)


def _dispatched(conn: psycopg.Connection[Any], table: str, key: str) -> bool:
    row = conn.execute(f'SELECT dispatched FROM "{table}" WHERE key = %s', (key,)).fetchone()
    return row is not None and bool(row[0])


async def test_aclose_is_idempotent_and_use_after_close_raises(
    make_provider: ProviderFactory,
) -> None:
    async with make_provider() as provider:
        await provider.health_check()
        await provider.aclose()
        await provider.aclose()
        with pytest.raises(ClosedError):
            await provider.acquire("k", 1.0)
        with pytest.raises(ClosedError):
            await provider.advance_watermarks({"w": 1})
        with pytest.raises(ClosedError):
            await provider.mark_dispatched([])
        assert provider.statistics().closed


async def test_errors_are_scheduler_errors(make_provider: ProviderFactory) -> None:
    async with make_provider() as provider:
        with pytest.raises(SchedulerError):
            await provider.advance_watermarks({"w": 2**63})
        with pytest.raises(SchedulerError):
            await provider.acquire("", 1.0)
        with pytest.raises(SchedulerError):
            await provider.acquire("k", float("nan"))
