"""Shared Redis configuration checks and URL redaction (rules R5 and R6).

Imported only by the Redis backends (``trio_sched.locks.redis``, ``trio_sched.jobs.redis``)
and the Redis plumbing (`trio_sched._redis_driver`, `trio_sched._redis_epoch`); importing
it imports redis-py. ``import trio_sched`` never does.

Rules (R1-R4 and R7 are the driver's, in `trio_sched._redis_driver`; R8 the epoch
sentinel's, in `trio_sched._redis_epoch`):
- R5 A URL's password never appears in a message, a log record or a ``repr``: messages
  name the URL through `redact_url`, and driver messages are scrubbed of the password.
- R6 Configuration is checked when the config is built, by parsing alone (`check_redis_url`,
  `check_prefix`), so a mistake raises `ValidationError` at once instead of a
  `RetryableError` retried forever: the port must be 1-65535; the database index (the
  path, or ``?db=``) an int >= 0; every query option one redis-py knows for the scheme,
  with a valid value; ``protocol`` only 2; the options the driver sets itself
  (``socket_timeout``, ``socket_connect_timeout``, ``max_connections``,
  ``retry_on_timeout``, ``retry_on_error``, ``decode_responses``) are refused. What
  only the server can tell is classified at first use: an index beyond its
  ``databases`` is `InvalidArgumentError` (R4), a refused connection, a timeout or an
  unresolvable host stays `RetryableError`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.exceptions as rex
from redis.connection import parse_url

from trio_sched._errors import ValidationError

__all__ = [
    "check_flag",
    "check_prefix",
    "check_redis_url",
    "check_timeout",
    "redact_url",
    "secrets_of",
]

_SCHEMES: Final = ("redis", "rediss", "unix")
REDACTED: Final = "***"

# R6: query options the driver sets itself. From a URL they would win over the driver's
# values (redis-py lets query options override keyword arguments) and break R1 or R2.
_DRIVER_OPTIONS: Final = {
    "socket_timeout": "operation_timeout bounds every socket (R2); set that instead",
    "socket_connect_timeout": "operation_timeout bounds every socket (R2); set that instead",
    "max_connections": "the config's max_connections sizes the pool (R1); set that instead",
    "retry_on_timeout": "the driver never retries a command itself (R1)",
    "retry_on_error": "the driver never retries a command itself (R1)",
    "decode_responses": "the driver decodes every reply itself",
}
# Special in SCAN MATCH / KEYS patterns (the backslash escapes): never in a prefix.
_GLOB_CHARS: Final = ("*", "?", "[", "]", "\\")
_DB_PATH: Final = re.compile(r"/([0-9]+)/?")
_UNEXPECTED_ARGUMENT: Final = re.compile(r"unexpected keyword argument '([^']*)'")


def redact_url(url: str) -> str:
    """`url` with its password (userinfo or ``?password=`` query) replaced by ``***``.

    ``redis://user:secret@host:6379/0`` -> ``redis://user:***@host:6379/0``. A text that
    does not parse as a URL is replaced whole, since it cannot be shown safely.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
        netloc = parts.netloc
    except ValueError:
        return "<unparsable redis url>"
    if password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() == "password" for name, _ in pairs):
            query = urlencode(
                [(n, REDACTED if n.lower() == "password" else v) for n, v in pairs],
                safe="*",
            )
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret; urlunsplit would also drop an empty "//" authority
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets_of(url: str) -> tuple[str, ...]:
    """Password spellings that must never leak: raw, percent-decoded and re-quoted."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        raw = parts.netloc.rpartition("@")[0].partition(":")[2] if "@" in parts.netloc else ""
        if raw:
            found.update({raw, unquote(raw), quote(unquote(raw), safe="")})
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name.lower() == "password" and value:
                found.update({value, quote(value, safe="")})
    except ValueError:
        pass
    return tuple(sorted(found, key=len, reverse=True))


def check_redis_url(url: object) -> str:
    """Validate a Redis URL as far as parsing can (rule R6); raise `ValidationError`.

    Checks the scheme, the port (1-65535), the database index (the path of a
    ``redis://`` or ``rediss://`` URL, or ``?db=``: an int >= 0) and the query options:
    each must be one redis-py accepts for the scheme, with a value of the right type,
    and none may override what the driver sets itself (`_DRIVER_OPTIONS`, ``protocol``
    other than 2). No I/O. Messages show the URL redacted (R5).
    """
    if not isinstance(url, str) or not url:
        raise ValidationError("url: expected a non-empty str", field="url")
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a port that is not 0-65535
    except ValueError:
        raise ValidationError(
            f"url: cannot parse {shown!r} (is the port a number from 1 to 65535?)", field="url"
        ) from None  # the original message may quote the URL, password included
    if parts.scheme not in _SCHEMES:
        raise ValidationError(
            f"url: scheme must be one of {', '.join(_SCHEMES)}, got {shown!r}", field="url"
        )
    if port == 0:
        # redis-py would silently use 6379 instead.
        raise ValidationError(f"url: port must be from 1 to 65535, got 0 in {shown!r}", field="url")
    try:
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ValidationError(
            f"url: {_scrub_url_text(url, str(exc))} ({shown})", field="url"
        ) from None
    path_db = _path_db(parts.scheme, unquote(parts.path), shown)
    if "db" in options:
        db = options["db"]
        if db < 0:
            raise ValidationError(
                f"url: db must be an int >= 0, got {db} in {shown!r}", field="url"
            )
        if path_db is not None and path_db != db:
            raise ValidationError(
                f"url: the path names db {path_db} and ?db= names db {db} in {shown!r}",
                field="url",
            )
    for name, why in _DRIVER_OPTIONS.items():
        if name in options:
            raise ValidationError(
                f"url: query option {name!r} is not allowed: {why} ({shown})", field="url"
            )
    if options.get("protocol", 2) != 2:
        raise ValidationError(
            f"url: protocol={options['protocol']} is not supported: trio-sched speaks RESP2 "
            f"(protocol=2) to every server; remove the option ({shown})",
            field="url",
        )
    connection_class = options.pop("connection_class", redis.Connection)
    try:
        # No I/O (a connection connects on first use): this is how an option redis-py
        # does not know for this scheme (a typo, ``ssl_*`` on redis://) or a value its
        # connection class refuses surfaces now instead of at the first call.
        connection_class(**options)
    except TypeError as exc:
        unknown = _UNEXPECTED_ARGUMENT.search(str(exc))
        name = unknown.group(1) if unknown else "?"
        raise ValidationError(
            f"url: query option {name!r} is not a redis-py option for {parts.scheme}:// ({shown})",
            field="url",
        ) from None
    except (ValueError, rex.RedisError) as exc:
        raise ValidationError(
            f"url: {_scrub_url_text(url, str(exc))} ({shown})", field="url"
        ) from None
    return url


def check_prefix(prefix: object) -> str:
    """Validate a key prefix (rule R6); raise `ValidationError`.

    Non-empty, printable, without whitespace and without the glob characters of Redis'
    ``SCAN MATCH``/``KEYS`` patterns (``* ? [ ] \\``), so ``{prefix}:*`` finds exactly
    the keys under it and an operator can type it in ``redis-cli``. Colons, dashes,
    dots, letters, digits and other punctuation are fine (``trio-sched:test:1f2e``).
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValidationError("prefix: expected a non-empty str", field="prefix")
    for char in prefix:
        if char.isspace() or not char.isprintable():
            raise ValidationError(
                f"prefix: {prefix!r} holds whitespace or a control character ({char!r}); "
                "use letters, digits and punctuation such as ':' '-' '_' '.'",
                field="prefix",
                token=prefix,
            )
        if char in _GLOB_CHARS:
            raise ValidationError(
                f"prefix: {prefix!r} holds {char!r}, a glob character of Redis key patterns "
                f"({' '.join(_GLOB_CHARS)}); use letters, digits and punctuation such as "
                "':' '-' '_' '.'",
                field="prefix",
                token=prefix,
            )
    return prefix


def _path_db(scheme: str, path: str, shown: str) -> int | None:
    """The database index named by a ``redis://``/``rediss://`` URL's path, or None.

    redis-py reads ``/abc`` or ``/-1`` as "no index" and silently uses db 0 (or sends
    ``SELECT -1``); R6 refuses them. A ``unix://`` URL's path is the socket's.
    """
    if scheme == "unix" or path in ("", "/"):
        return None
    match = _DB_PATH.fullmatch(path)
    if match is None:
        raise ValidationError(
            f"url: the path must be a database index (an int >= 0), got {path!r} in {shown!r}",
            field="url",
        )
    return int(match.group(1))


def _scrub_url_text(url: str, text: str) -> str:
    for secret in secrets_of(url):
        text = text.replace(secret, REDACTED)
    return text


def check_flag(name: str, value: object) -> bool:
    """A bool (not merely truthy), else `ValidationError`."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name}: expected True or False, got {value!r}", field=name)
    return value


def check_timeout(name: str, value: object) -> float:
    """A finite number of seconds > 0 (bools refused), else `ValidationError`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name}: expected seconds, got {value!r}", field=name)
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(f"{name}: must be finite seconds > 0, got {value!r}", field=name)
    return float(value)
