"""Shared Postgres pieces: DSN checks and redaction, table names and shapes, SQL text.

Imported only by the Postgres backends (``trio_sched.locks.postgres``,
``trio_sched.jobs.postgres``) and their driver (`trio_sched._postgres_driver`, rules
P1-P4: worker threads, timeouts, cancellation, error mapping); importing it imports
psycopg 3, and it is the first module to do so, so a missing psycopg is reported here
with the extra to install. ``import trio_sched`` never imports it.

Rules:
- P5 A DSN's password never appears in a message, a log record or a ``repr``: the DSN is
  shown through `redact_dsn`, driver messages are scrubbed of every spelling of the
  password, and a driver exception whose text still holds it is not chained.
- P6 Table names are validated by a strict identifier pattern (optionally
  schema-qualified) and always reach SQL through `psycopg.sql.Identifier`, never as
  formatted text.
- P7 Configuration is checked when the config is built, by parsing alone (`check_dsn`),
  so a mistake raises `ValidationError` at once instead of a `RetryableError` retried
  forever: the DSN must parse (libpq refuses unknown options); ports must be numbers
  from 1 to 65535, one or one per host; ``hostaddr`` numeric addresses, one per host;
  ``sslmode``, ``gssencmode``, ``channel_binding``, ``sslcertmode``,
  ``sslnegotiation``, ``target_session_attrs`` and ``load_balance_hosts`` one of libpq's
  values; the keepalive and ``tcp_user_timeout`` options integers. What parsing cannot
  see (``PGPORT``/``PGSSLMODE`` in the environment, a service file, an unknown
  database) fails at first use and is classified by P4: libpq's "invalid ... value",
  "invalid port number" and the like are `InvalidArgumentError`; a refused
  connection, a timeout or an unresolvable host stay `RetryableError`.
- P8 Before creating its schema, under the same advisory lock, a backend checks each
  of its tables that already exists: a relation of that name that is not a table, or a
  table without the columns the backend uses (`TableShape`), raises `ConflictError`
  naming the table and what it looks like (another component's lock, watermark or jobs
  table) and creates nothing. So one table configured for both a lock provider and a
  jobs runtime fails at first use with a clear message, not with "column ... does not
  exist" later. Extra columns are allowed; column types are not checked.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, LiteralString, TypeAlias, final
from urllib.parse import quote, unquote

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "the Postgres backends need psycopg 3: pip install 'trio-sched[postgres]'"
    ) from exc
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from trio_sched._errors import ValidationError

__all__ = [
    "JOBS_TABLE",
    "LOCK_TABLE",
    "REDACTED",
    "RELATION_QUERY",
    "WATERMARK_TABLE",
    "Connection",
    "TableName",
    "TableShape",
    "advisory_key",
    "check_dsn",
    "check_timeout",
    "query",
    "redact_dsn",
    "secrets_of",
    "shape_problem",
]

Connection: TypeAlias = "psycopg.Connection[Any]"

REDACTED: Final = "***"
# P6: one plain identifier part; the length cap leaves room for the derived names
# (``<table>_watermarks``, ``<table>_expires_at_idx``) within Postgres' 63-byte limit, so
# Postgres never truncates two derived names into one.
_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_URL_USERINFO: Final = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*):(?P<pw>[^@/?#]*)@"
)
_URL_QUERY_PW: Final = re.compile(r"(?P<head>[?&]password=)(?P<pw>[^&#]*)", re.IGNORECASE)
_KV_PW: Final = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:\\.|[^'\\])*'|[^\s']\S*)", re.IGNORECASE
)
# P7: the values libpq accepts for its enumerated options (its messages say the same).
_ENUM_OPTIONS: Final[dict[str, tuple[str, ...]]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "sslcertmode": ("disable", "allow", "require"),
    "sslnegotiation": ("postgres", "direct"),
    "target_session_attrs": (
        "any",
        "read-write",
        "read-only",
        "primary",
        "standby",
        "prefer-standby",
    ),
    "load_balance_hosts": ("disable", "random"),
}
_INT_OPTIONS: Final = (
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
)
_PORT: Final = re.compile(r"[0-9]{1,5}")
_INT: Final = re.compile(r"\s*[-+]?[0-9]+\s*")


# -- DSN redaction (P5) -------------------------------------------------------------------


def redact_dsn(dsn: str) -> str:
    """`dsn` (URL or ``key=value`` form) with every password replaced by ``***``.

    ``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``. When a
    spelling of the password survives the substitution (an odd DSN), the whole DSN is
    withheld, since it cannot be shown safely.
    """
    if _is_url(dsn):
        shown = _URL_USERINFO.sub(lambda m: f"{m['head']}:{REDACTED}@", dsn, count=1)
        shown = _URL_QUERY_PW.sub(lambda m: f"{m['head']}{REDACTED}", shown)
    else:
        shown = _KV_PW.sub(lambda m: f"{m['head']}{REDACTED}", dsn)
    if any(secret in shown for secret in secrets_of(dsn)):
        return "<postgres dsn withheld: it holds a password>"
    return shown


def secrets_of(dsn: str) -> tuple[str, ...]:
    """Every spelling of the DSN's password(s): as written, decoded and re-quoted."""
    found: set[str] = set()
    patterns = (_URL_USERINFO, _URL_QUERY_PW) if _is_url(dsn) else (_KV_PW,)
    for pattern in patterns:
        for match in pattern.finditer(dsn):
            raw = match["pw"]
            if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
                raw = raw[1:-1]
                found.add(re.sub(r"\\(.)", r"\1", raw))
            found.update({raw, unquote(raw), quote(unquote(raw), safe="")})
    try:
        parsed = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        parsed = None
    if isinstance(parsed, str):
        found.add(parsed)
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def _is_url(dsn: str) -> bool:
    return dsn.startswith(("postgresql://", "postgres://"))


def check_dsn(dsn: object) -> str:
    """Validate `dsn` as far as parsing can (rule P7); raise `ValidationError`.

    It must parse as a libpq URL or ``key=value`` string (unknown options are refused
    there), its ports must be numbers from 1 to 65535, one or one per host, its
    ``hostaddr`` numeric addresses, one per host, its enumerated options
    (`_ENUM_OPTIONS`: ``sslmode`` ...) one of their values and its integer options
    integers. No I/O; messages show the DSN redacted (P5).
    """
    if not isinstance(dsn, str) or not dsn:
        raise ValidationError("url: expected a non-empty str", field="url")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        parsed = False
    else:
        parsed = True
    if not parsed:
        # The driver's message quotes the DSN, password included (P5): neither chained nor
        # kept as context (this raise is outside the except block).
        raise ValidationError(
            f"url: cannot parse {redact_dsn(dsn)!r} as a Postgres URL or DSN", field="url"
        )
    problem = _dsn_problem({k: str(v) for k, v in params.items() if v is not None})
    if problem is not None:
        raise ValidationError(f"url: {problem} in {redact_dsn(dsn)!r}", field="url")
    return dsn


def _dsn_problem(params: dict[str, str]) -> str | None:
    """What is wrong with parsed DSN `params` that libpq would refuse at every connection
    attempt (P7), or None. Only options that are not secret are quoted."""
    hosts = _list(params.get("host"))
    addrs = _list(params.get("hostaddr"))
    ports = _list(params.get("port"))
    for port in ports:
        if port and not (_PORT.fullmatch(port) and 1 <= int(port) <= 65535):
            return f"port must be a number from 1 to 65535, got {port!r}"
    for addr in addrs:
        if addr:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                return f"hostaddr must be numeric IP addresses (use host for names), got {addr!r}"
    if hosts and addrs and len(hosts) != len(addrs):
        return f"{len(hosts)} host names but {len(addrs)} hostaddr values"
    n_hosts = max(len(hosts), len(addrs), 1)
    if len(ports) > 1 and len(ports) != n_hosts:
        return f"{len(ports)} ports for {n_hosts} host(s): give one port, or one per host"
    for name, allowed in _ENUM_OPTIONS.items():
        value = params.get(name)
        if value is not None and value not in allowed:
            return f"{name} must be one of {', '.join(allowed)}, got {value!r}"
    for name in _INT_OPTIONS:
        value = params.get(name)
        if value is not None and not _INT.fullmatch(value):
            return f"{name} must be an integer, got {value!r}"
    return None


def _list(value: str | None) -> list[str]:
    """A libpq multi-host list (``a,b,c``), stripped; [] when absent or empty."""
    if not value:
        return []
    return [part.strip() for part in value.split(",")]


def check_timeout(name: str, value: object) -> float:
    """A finite number of seconds > 0 (bools refused), else `ValidationError`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name}: expected seconds, got {value!r}", field=name)
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(f"{name}: must be finite seconds > 0, got {value!r}", field=name)
    return float(value)


# -- identifiers (P6) -----------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class TableName:
    """A validated, optionally schema-qualified table name (rule P6).

    `parse` accepts ``name`` or ``schema.name``, each part matching
    ``[A-Za-z_][A-Za-z0-9_]{0,47}`` (ASCII only; the cap leaves room for the derived
    names within Postgres' 63 bytes); anything else (quotes, spaces, semicolons, NUL,
    dots beyond one) and the system schemas (``pg_*``, ``information_schema``) raise
    `ValidationError`. Names are quoted, so they are case-sensitive.
    """

    schema: str | None
    name: str

    @classmethod
    def parse(cls, text: object, *, field: str = "table") -> TableName:
        if not isinstance(text, str):
            raise ValidationError(f"{field}: expected a str, got {text!r}", field=field)
        parts = text.split(".")
        if len(parts) > 2 or not all(_IDENT.fullmatch(part) for part in parts):
            raise ValidationError(
                f"{field}: {text!r} is not a table name: expected 'name' or 'schema.name', "
                "each part a letter or '_' then up to 47 letters, digits or '_'",
                field=field,
                token=text,
            )
        if len(parts) == 2:
            if parts[0].startswith("pg_") or parts[0] == "information_schema":
                # pg_temp would give every connection a table of its own (no two
                # connections would ever see each other's locks); the others are system
                # schemas, where a CREATE fails or should not happen.
                raise ValidationError(
                    f"{field}: {text!r} names a system schema ({parts[0]!r}: pg_* and "
                    "information_schema are reserved); use a schema of your own or none",
                    field=field,
                    token=text,
                )
            return cls(schema=parts[0], name=parts[1])
        return cls(schema=None, name=parts[0])

    def identifier(self, suffix: str = "") -> sql.Identifier:
        """This table, or a sibling named ``<name><suffix>`` in the same schema."""
        if self.schema is None:
            return sql.Identifier(self.name + suffix)
        return sql.Identifier(self.schema, self.name + suffix)

    def local_identifier(self, suffix: str) -> sql.Identifier:
        """``<name><suffix>`` unqualified (an index name, created in the table's schema)."""
        return sql.Identifier(self.name + suffix)

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


# -- table shapes (P8) ----------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class TableShape:
    """The columns a table of one kind must have (rule P8): what the backend's statements
    use. `kind` names it in messages (``"trio-sched lock table"``), `setting` the
    configuration field that names it."""

    kind: str
    setting: str
    columns: frozenset[str]


LOCK_TABLE: Final = TableShape(
    "trio-sched lock table",
    "PostgresLockProviderConfig.table",
    frozenset(("key", "token", "fencing_token", "expires_at")),
)
WATERMARK_TABLE: Final = TableShape(
    "trio-sched watermark table",
    "PostgresLockProviderConfig.table (its <table>_watermarks)",
    frozenset(("name", "value")),
)
JOBS_TABLE: Final = TableShape(
    "trio-sched jobs table",
    "PostgresJobsConfig.table",
    frozenset(
        (
            "id",
            "queue",
            "name",
            "payload",
            "headers",
            "content_type",
            "tenant_id",
            "idempotency_key",
            "run_at",
            "created_at",
            "fencing_token",
            "attempt",
            "tries",
            "state",
            "lease_token",
            "leased_until",
            "available_at",
            "enqueued_at",
            "last_error",
            "failed_at",
            "dead_attempt",
            "finished_at",
        )
    ),
)
_RELKINDS: Final = {
    "v": "a view",
    "m": "a materialized view",
    "i": "an index",
    "I": "a partitioned index",
    "S": "a sequence",
    "f": "a foreign table",
    "c": "a composite type",
    "t": "a TOAST table",
}


def _looks_like(columns: frozenset[str]) -> str:
    """What a table with `columns` looks like, for a P8 message."""
    for shape in (JOBS_TABLE, LOCK_TABLE, WATERMARK_TABLE):
        if shape.columns <= columns:
            return f"it looks like a {shape.kind} (of {shape.setting})"
    shown = ", ".join(sorted(columns)[:8]) + (", ..." if len(columns) > 8 else "")
    return f"it is not a trio-sched table (its columns: {shown or 'none'})"


# P8: the kind and the columns of the relation a name (the one parameter) resolves to.
RELATION_QUERY: Final = (
    "SELECT c.relkind::text, array_remove(array_agg(a.attname::text ORDER BY"
    " a.attnum), NULL) FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid ="
    " c.oid AND a.attnum > 0 AND NOT a.attisdropped WHERE c.oid = to_regclass(%s)"
    " GROUP BY c.relkind"
)


def shape_problem(
    table: TableName, suffix: str, shape: TableShape, row: Sequence[Any] | None
) -> str | None:
    """Why the existing relation `table` + `suffix` cannot serve as `shape`, or None
    when it does not exist or has the columns (P8). `row` is `RELATION_QUERY`'s answer
    for it. No I/O."""
    if row is None:
        return None  # not there yet: the statements create it
    relkind, found = str(row[0]), frozenset(row[1] or ())
    shown = f"{table}{suffix}"
    if relkind not in ("r", "p"):
        what = _RELKINDS.get(relkind, f"a relation of kind {relkind!r}")
        return (
            f"{shown!r} is {what}, not a table; the {shape.kind} needs a name of its "
            f"own ({shape.setting})"
        )
    missing = shape.columns - found
    if not missing:
        return None
    named = sorted(missing)
    lacks = ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
    return (
        f"table {shown!r} exists but is not a {shape.kind}: it lacks the column(s) "
        f"{lacks}; {_looks_like(found)}. Each trio-sched lock "
        f"provider and jobs runtime needs a table of its own: give {shape.setting} a "
        "name no other component uses"
    )


# -- SQL helpers ---------------------------------------------------------------------------


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` derived from `parts`."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def query(text: LiteralString, **identifiers: sql.Composable) -> sql.Composed:
    """``sql.SQL(text).format(**identifiers)``: SQL text with identifiers quoted (P6)."""
    return sql.SQL(text).format(**identifiers)
