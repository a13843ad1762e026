"""Bad Redis configuration is refused clearly (issue 11 §4, rule R6 of _redis_common).

What parsing can tell raises `ValidationError` (field ``url`` or ``prefix``) when the
config is built, for the lock provider and the jobs runtime alike, before any I/O;
what only the server can tell is classified at first use, and a mistake there is
`InvalidArgumentError`, never `RetryableError`. Transient failures stay retryable.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from trio_sched import InvalidArgumentError, RetryableError, ValidationError
from trio_sched._redis_driver import RedisDriver
from trio_sched.jobs.redis import RedisJobs, RedisJobsConfig
from trio_sched.locks.redis import RedisLockProvider, RedisLockProviderConfig

from .servers import free_port

SECRET = "s3cr3t-Pa55"
CONFIGS = [RedisLockProviderConfig, RedisJobsConfig]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://127.0.0.1:99999/0", "1 to 65535"),
        ("redis://127.0.0.1:abc/0", "1 to 65535"),
        ("redis://127.0.0.1:0/0", "1 to 65535"),  # redis-py would use 6379
        ("redis://127.0.0.1:6379/abc", "database index"),  # redis-py would use db 0
        ("redis://127.0.0.1:6379/-1", "database index"),
        ("redis://127.0.0.1:6379/1.5", "database index"),
        ("redis://127.0.0.1:6379/0?db=-1", "db must be an int >= 0"),
        ("redis://127.0.0.1:6379/0?db=abc", "'db'"),
        ("redis://127.0.0.1:6379/1?db=2", "names db 1"),
        ("redis://127.0.0.1:6379/0?protocol=9", "protocol=9"),
        ("redis://127.0.0.1:6379/0?protocol=3", "RESP2"),
        ("redis://127.0.0.1:6379/0?protocol=abc", "'protocol'"),
        ("redis://127.0.0.1:6379/0?sockettimeout=1", "'sockettimeout'"),  # a typo
        ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "'ssl_cert_reqs'"),  # TLS only
        ("rediss://127.0.0.1:6379/0?ssl_cert_reqs=bogus", "bogus"),
        ("redis://127.0.0.1:6379/0?socket_timeout=60", "operation_timeout"),
        ("redis://127.0.0.1:6379/0?max_connections=1", "max_connections"),
        ("redis://127.0.0.1:6379/0?retry_on_timeout=yes", "never retries"),
        ("unix:///tmp/redis.sock?db=x", "'db'"),
    ],
)
def test_bad_url_is_refused_when_the_config_is_built(
    config: type[RedisLockProviderConfig | RedisJobsConfig], url: str, says: str
) -> None:
    with pytest.raises(ValidationError) as info:
        config(url=url)
    assert info.value.field == "url"
    assert says in str(info.value)


@pytest.mark.parametrize("config", CONFIGS)
def test_bad_url_messages_hide_the_password(
    config: type[RedisLockProviderConfig | RedisJobsConfig],
) -> None:
    for query in ("db=abc", "protocol=9", "nope=1", "socket_timeout=1"):
        with pytest.raises(ValidationError) as info:
            config(url=f"redis://user:{SECRET}@127.0.0.1:6379/0?{query}")
        assert SECRET not in str(info.value)
        assert "user:***@127.0.0.1" in str(info.value)
        assert info.value.__cause__ is None


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://127.0.0.1:6379/0/",
        "redis://127.0.0.1:6379",
        "redis://127.0.0.1:6379/",
        "redis://localhost/15?db=15",
        f"redis://localhost?password={SECRET}&db=1",
        "redis://127.0.0.1:6379/0?protocol=2&client_name=worker&health_check_interval=5",
        "rediss://[::1]:6380/0?ssl_cert_reqs=none",
        "unix:///tmp/redis.sock?db=3",
    ],
)
def test_good_urls_still_pass(
    config: type[RedisLockProviderConfig | RedisJobsConfig], url: str
) -> None:
    assert config(url=url).url == url


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    "prefix",
    [
        "trio sched",
        " trio",
        "trio\t",
        "trio\n",
        "trio\x00",
        "trio\x1b",
        "trio*",
        "tr?o",
        "trio[1]",
        "trio]",
        "trio\\x",
        "",
    ],
)
def test_bad_prefix_is_refused(
    config: type[RedisLockProviderConfig | RedisJobsConfig], prefix: str
) -> None:
    with pytest.raises(ValidationError) as info:
        config(prefix=prefix)
    assert info.value.field == "prefix"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    "prefix",
    [
        "trio_sched",
        "trio-sched-test:0123456789abcdef",  # the fixtures' shape
        "trio-sched-mp:0a1b2c",
        "bench_1f2e3d4c",
        "app.prod/eu-1:{tenant}#2",
        "zürich",
    ],
)
def test_ordinary_prefixes_still_pass(
    config: type[RedisLockProviderConfig | RedisJobsConfig], prefix: str
) -> None:
    assert config(prefix=prefix).prefix == prefix


def test_prefix_type_is_checked() -> None:
    for config in CONFIGS:
        with pytest.raises(ValidationError) as info:
            config(prefix=b"trio")  # type: ignore[arg-type]
        assert info.value.field == "prefix"


def test_db_index_the_server_lacks_is_mapped_to_invalid_argument() -> None:
    driver = RedisDriver(
        f"redis://u:{SECRET}@127.0.0.1:1/0", operation_timeout=1.0, max_connections=1, what="x"
    )
    mapped = driver.map_error(redis.ResponseError("DB index is out of range"))
    assert type(mapped) is InvalidArgumentError
    assert SECRET not in str(mapped)
    driver.close()


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


async def test_db_index_beyond_the_server_is_not_retryable(
    redis_url: str, redis_prefix: str
) -> None:
    url = _with_db(redis_url, 9999)  # servers have 16 databases unless told otherwise
    async with RedisLockProvider(RedisLockProviderConfig(url=url, prefix=redis_prefix)) as locks:
        with pytest.raises(InvalidArgumentError) as info:
            await locks.acquire("k", 1.0)
        assert "db index" in str(info.value)
    async with RedisJobs(RedisJobsConfig(url=url, prefix=redis_prefix)) as jobs:
        with pytest.raises(InvalidArgumentError):
            await jobs.queue_statistics("q")


async def test_refused_connection_stays_retryable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    config = RedisLockProviderConfig(url=url, operation_timeout=1.0)
    async with RedisLockProvider(config) as locks:
        with pytest.raises(RetryableError):
            await locks.health_check()
