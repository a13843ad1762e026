"""`LockStatements`: the SQL text of `PostgresLockProvider` (`trio_sched.locks.postgres`).

Its table names reach the text quoted as identifiers (P6 of `trio_sched._postgres_common`).
No I/O here: the provider runs these statements through its driver.

Rules (of the lock provider, numbered with its PG1, PG5-PG8 and PG10; these are the
ones the statements carry out; PG1's schema is `LockStatements.create`):
- PG2 Time is the server's alone: a lease ends at ``clock_timestamp() + ttl`` and a
  record's memory at ``clock_timestamp() + max(ttl, keep)`` (one clock reading per row,
  so ``kept_until >= expires_at``); a lease holds while ``expires_at >
  clock_timestamp()``, a record is kept while its memory's end is later than that. The
  memory's end is ``GREATEST(kept_until, expires_at)`` in every statement (see PG9 for
  rows without a ``kept_until``). Every decision reads the clock inside the statement
  that decides, after the row is locked. `LockLease.expire_at` is the stored
  ``expires_at``, `Held.expires_in` ``expires_at - clock_timestamp()`` read in the same
  statement. No client clock takes part (the process's monotonic clock only paces the
  cleanup of PG5).
- PG3 Fencing tokens come from the identity sequence of ``fencing_token`` (``CACHE 1``,
  so values are strictly increasing across sessions), drawn in the statement that takes
  the key: an insert draws it from the column default, a take-over of an existing row
  (rule L7, or a record whose memory ended) calls ``nextval`` on that sequence after the
  row is locked, so a take-over always gets a larger token than the row's last holder.
  (An insert after a release or cleanup draws its token just before inserting; it could
  only be smaller than the previous holder's if that one statement stalled between the
  two for the previous holder's whole lease.)
- PG4 Statements. ``acquire`` is ONE ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE``
  the existing row may be taken: its lease ran out and it is not dispatched (a take-over,
  whose ``taken_over`` is set from the existing row's ``token``) or its memory ended (a
  fresh record). ON CONFLICT locks the row before that test, so the decision is atomic
  and of racing contenders exactly one wins. ``acquire_batch`` is ONE statement for the
  whole batch (rule L5): the requests travel as arrays, the watermark table is joined for
  rule L4, the first eligible request per key is kept (a key named twice goes to its
  first request not refused by its watermark) and the rows are inserted in key order, so
  two concurrent batches never deadlock. It answers with one row per key: ours
  (granted), dispatched (``None``) or another's (`Held`, its token and seconds left).
  ON CONFLICT locks every conflicting row, but ``RETURNING`` reports only rows it
  updates, and a row committed after the statement's snapshot (the winner's of a race,
  or a renewal) is invisible to every other read in the statement. So ``DO UPDATE``
  also rewrites, with its own values, each conflicting row whose locked version the
  snapshot does not see (a lookup of its ``ctid``); the others are locked, not written,
  and read from the snapshot, which sees exactly the version locked. A lost race costs
  one row version per key, a key held for a while none. Whether a row is taken is
  decided in the ``SET``, once per row, on one clock reading. Renew, release
  and ``mark_dispatched`` are one statement each and check the token: renew also that
  the lease has not run out, and it moves ``kept_until`` to at least the new lease end;
  release also that the lease has not run out and the row is not dispatched;
  ``mark_dispatched`` that the record is still kept (its lease may have run out: nobody
  took it over, since the token still owns it). It locks its rows in key order and
  writes only rows not yet marked. ``advance_watermarks`` is one ``INSERT ... ON
  CONFLICT DO UPDATE SET value = GREATEST(...)`` (forward only), ``get_watermarks`` one
  ``SELECT``; ``set_paused`` and ``get_paused`` likewise (PG10; their statements are in
  `trio_sched.locks._postgres_pause`); empty batches make no round trip.
- PG9 Migration: a lock table of an earlier trio-sched (it has no ``kept_until``) is
  upgraded once, in the schema transaction of PG1: ``ALTER TABLE ... ADD COLUMN IF NOT
  EXISTS`` for the three new columns, the identity switched to ``BY DEFAULT`` (a
  take-over sets it, PG3), the old ``<table>_expires_at_idx`` dropped, and
  ``kept_until`` backfilled with ``expires_at`` in the rows whose lease has not ended
  (an old row's memory is its lease). ``kept_until`` defaults to the epoch (1970), so
  an expired old row needs no write (its memory ended either way, PG2, and the cleanup
  deletes it first), and neither does a row inserted without it by an earlier
  trio-sched during a rolling upgrade (remembered for its lease alone). The upgrade thus
  writes only the live leases' rows and never rewrites the table (a constant default is
  catalog-only), so it stays well inside ``operation_timeout``. The ``ALTER TABLE``
  takes an exclusive lock on the table, so it only runs when the column is missing: a
  provider starting against an upgraded table never waits behind (or blocks) the lock
  traffic of running schedulers. Earlier instances keep working on the upgraded table
  but follow their own rules (they take any expired row, dispatched or not), so while
  versions are mixed only the earlier guarantees hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from trio_sched._postgres_common import TableName, advisory_key, query

if TYPE_CHECKING:
    # Only for annotations: the first psycopg import goes through _postgres_common,
    # which says which extra to install when psycopg is missing.
    from psycopg import sql

__all__ = ["LockStatements"]


@final
class LockStatements:
    """The provider's statements, with its table names quoted as identifiers (P6)."""

    def __init__(self, table: TableName) -> None:
        # Imported here, not at the top: the first psycopg import goes through
        # _postgres_common (see TYPE_CHECKING above), which is loaded by now.
        from psycopg import sql

        parts = [table.name] if table.schema is None else [table.schema, table.name]
        ids: dict[str, sql.Composable] = {
            "locks": table.identifier(),
            "marks": table.identifier("_watermarks"),
            "paused": table.identifier("_paused"),
            "kept_idx": table.local_identifier("_kept_until_idx"),
            # The table's name as text for catalog functions (to_regclass,
            # pg_get_serial_sequence): its parts as literals, quoted as identifiers by
            # the server so the case survives. And the name of PG9's old index.
            "locks_name": sql.SQL(" || '.' || ").join(
                sql.SQL("quote_ident({})").format(sql.Literal(part)) for part in parts
            ),
            "old_idx_name": sql.Literal(f"{table.name}_expires_at_idx"),
        }
        # One key for every trio-sched schema creation in the database, whatever the
        # table: ``x`` and ``public.x`` may name one table, and creations are rare and short.
        self.advisory_key = advisory_key("trio_sched", "schema")
        self.create = [
            query(
                "CREATE TABLE IF NOT EXISTS {locks} ("
                " key text PRIMARY KEY,"
                " token text NOT NULL,"
                # PG3: CACHE 1 keeps values increasing across sessions; BY DEFAULT lets a
                # take-over set the next value itself.
                " fencing_token bigint GENERATED BY DEFAULT AS IDENTITY (CACHE 1),"
                " expires_at timestamptz NOT NULL,"
                " kept_until timestamptz NOT NULL DEFAULT 'epoch',"
                " dispatched boolean NOT NULL DEFAULT false,"
                " taken_over text)",
                **ids,
            ),
            # PG9: the upgrade of an earlier lock table, only when it lacks kept_until
            # (the ALTER TABLE locks the table exclusively, even when it changes nothing).
            query(
                "DO $$DECLARE locks regclass := to_regclass({locks_name}); old regclass;"
                " BEGIN"
                " IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = locks"
                " AND attname = 'kept_until' AND NOT attisdropped) THEN RETURN; END IF;"
                " ALTER TABLE {locks}"
                " ADD COLUMN IF NOT EXISTS kept_until timestamptz NOT NULL DEFAULT 'epoch',"
                " ADD COLUMN IF NOT EXISTS dispatched boolean NOT NULL DEFAULT false,"
                " ADD COLUMN IF NOT EXISTS taken_over text,"
                " ALTER COLUMN fencing_token SET GENERATED BY DEFAULT;"
                " UPDATE {locks} SET kept_until = expires_at WHERE expires_at > clock_timestamp();"
                " SELECT i.indexrelid INTO old FROM pg_index AS i"
                " JOIN pg_class AS c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = locks AND c.relname = {old_idx_name};"
                " IF old IS NOT NULL THEN EXECUTE 'DROP INDEX ' || old::text; END IF;"
                " END$$",
                **ids,
            ),
            query("CREATE INDEX IF NOT EXISTS {kept_idx} ON {locks} (kept_until)", **ids),
            query(
                "CREATE TABLE IF NOT EXISTS {marks} (name text PRIMARY KEY, value bigint NOT NULL)",
                **ids,
            ),
            # PG10: also what upgrades a schema of an earlier trio-sched, which lacks it.
            query(
                "CREATE TABLE IF NOT EXISTS {paused} (name text PRIMARY KEY,"
                " paused_since timestamptz, paused_by text, paused_reason text)",
                **ids,
            ),
        ]
        # PG4: a fresh lease whose record is kept as long as its lease (keep = ttl); one
        # clock reading for both ends. Only a row it takes comes back.
        self.acquire = query(
            "INSERT INTO {locks} AS l (key, token, expires_at, kept_until)"
            " SELECT %(key)s, %(token)s, e.at, e.at"
            " FROM (SELECT clock_timestamp() + %(ttl)s * interval '1 second' AS at) AS e"
            " ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token,"
            " fencing_token = DEFAULT, expires_at = EXCLUDED.expires_at,"
            " kept_until = GREATEST(l.kept_until, EXCLUDED.kept_until),"
            " dispatched = false,"
            " taken_over = CASE WHEN GREATEST(l.kept_until, l.expires_at) > clock_timestamp()"
            " THEN l.token END"
            " WHERE GREATEST(l.kept_until, l.expires_at) <= clock_timestamp()"
            " OR (l.expires_at <= clock_timestamp() AND NOT l.dispatched)"
            " RETURNING l.fencing_token, l.expires_at, l.taken_over",
            **ids,
        )
        # PG4: one row per eligible key, (key, token, fencing, expiry, taken_over,
        # dispatched, seconds left, NULL, NULL, NULL), and one (NULL, token, NULL, ...) per
        # request refused by its watermark or paused (PG10: then with its task's pause
        # record, since, by and reason, last; a paused request is not eligible). The SET
        # decides, once per row on one clock reading (`d`), whether the row is taken
        # (`free`: its memory ended, a fresh record) or keeps its values. The
        # WHERE only says which rows to write: those taken (the same test, true at least
        # as early) and those whose locked version this statement's snapshot does not see
        # (the ctid lookup), which only RETURNING can report. A row the snapshot sees is
        # locked, not written, and read by the last SELECT.
        self.acquire_batch = query(
            "WITH req AS ("
            " SELECT r.key, r.token, r.ttl, r.keep, r.ord,"
            " p.paused_since AS since, p.paused_by AS by_whom, p.paused_reason AS reason,"
            " (r.mark IS NOT NULL AND w.value IS NOT NULL AND r.nominal <= w.value"
            " AND w.value - r.nominal >= r.slack) AS refused"
            " FROM unnest(%(keys)s::text[], %(tokens)s::text[], %(ttls)s::float8[],"
            " %(keeps)s::float8[], %(marks)s::text[], %(nominals)s::int8[],"
            " %(slacks)s::int8[])"
            " WITH ORDINALITY AS r(key, token, ttl, keep, mark, nominal, slack, ord)"
            " LEFT JOIN {marks} AS w ON w.name = r.mark"
            " LEFT JOIN {paused} AS p ON p.name = r.mark AND p.paused_since IS NOT NULL"
            "), eligible AS ("
            " SELECT DISTINCT ON (key) key, token, ttl, keep FROM req"
            " WHERE NOT refused AND since IS NULL"
            " ORDER BY key, ord"
            "), taken AS ("
            " INSERT INTO {locks} AS l (key, token, expires_at, kept_until)"
            " SELECT key, token, now + ttl * interval '1 second',"
            " now + keep * interval '1 second'"
            " FROM (SELECT key, token, ttl, keep, clock_timestamp() AS now FROM eligible"
            " ORDER BY key) AS e"
            " ON CONFLICT (key) DO UPDATE"
            " SET (token, fencing_token, expires_at, kept_until, dispatched, taken_over) = ("
            " SELECT CASE WHEN d.take THEN EXCLUDED.token ELSE l.token END,"
            " CASE WHEN d.take THEN nextval(pg_get_serial_sequence({locks_name},"
            " 'fencing_token')) ELSE l.fencing_token END,"
            " CASE WHEN d.take THEN EXCLUDED.expires_at ELSE l.expires_at END,"
            " CASE WHEN d.take THEN GREATEST(l.kept_until, EXCLUDED.kept_until)"
            " ELSE l.kept_until END,"
            " l.dispatched AND NOT d.take,"
            " CASE WHEN NOT d.take THEN l.taken_over WHEN NOT d.free THEN l.token END"
            " FROM (SELECT c.kept_until <= c.now AS free, c.kept_until <= c.now"
            " OR (l.expires_at <= c.now AND NOT l.dispatched) AS take"
            " FROM (SELECT clock_timestamp() AS now,"
            " GREATEST(l.kept_until, l.expires_at) AS kept_until) AS c) AS d)"
            " WHERE GREATEST(l.kept_until, l.expires_at) <= clock_timestamp()"
            " OR (l.expires_at <= clock_timestamp() AND NOT l.dispatched)"
            " OR NOT EXISTS (SELECT FROM {locks} AS v WHERE v.ctid = l.ctid)"
            " RETURNING l.key, l.token, l.fencing_token, l.expires_at, l.taken_over,"
            " l.dispatched,"
            " extract(epoch FROM l.expires_at - clock_timestamp())::float8 AS expires_in"
            ")"
            " SELECT key, token, fencing_token, expires_at, taken_over, dispatched, expires_in,"
            " NULL::timestamptz, NULL::text, NULL::text"
            " FROM taken"
            " UNION ALL SELECT l.key, l.token, l.fencing_token, l.expires_at, l.taken_over,"
            " l.dispatched, extract(epoch FROM l.expires_at - clock_timestamp())::float8,"
            " NULL, NULL, NULL"
            " FROM eligible AS e JOIN {locks} AS l ON l.key = e.key"
            " WHERE NOT EXISTS (SELECT FROM taken AS t WHERE t.key = e.key)"
            " UNION ALL SELECT NULL, token, NULL, NULL, NULL, NULL, NULL, since, by_whom, reason"
            " FROM req WHERE refused OR since IS NOT NULL",
            **ids,
        )
        self.renew = query(
            "UPDATE {locks} SET expires_at = e.at, kept_until = GREATEST(kept_until, e.at)"
            " FROM (SELECT clock_timestamp() + %(ttl)s * interval '1 second' AS at) AS e"
            " WHERE key = %(key)s AND token = %(token)s AND expires_at > clock_timestamp()"
            " RETURNING fencing_token, expires_at",
            **ids,
        )
        self.release = query(
            "DELETE FROM {locks}"
            " WHERE key = %(key)s AND token = %(token)s AND expires_at > clock_timestamp()"
            " AND NOT dispatched",
            **ids,
        )
        # PG4: the records the leases own, locked in key order (as a batch locks them);
        # those not marked yet are marked, and every owned one comes back.
        self.mark_dispatched = query(
            "WITH mine AS ("
            " SELECT l.key, l.token, l.dispatched FROM {locks} AS l"
            " JOIN unnest(%(keys)s::text[], %(tokens)s::text[]) AS r(key, token)"
            " ON l.key = r.key AND l.token = r.token"
            " WHERE GREATEST(l.kept_until, l.expires_at) > clock_timestamp()"
            " ORDER BY l.key FOR UPDATE OF l"
            "), marked AS ("
            " UPDATE {locks} AS l SET dispatched = true FROM mine"
            " WHERE l.key = mine.key AND NOT mine.dispatched"
            ")"
            " SELECT key, token FROM mine",
            **ids,
        )
        # The undo of an acquire (PG6): rows locked in key order, as a batch locks them.
        # Its leases were never handed out, so never dispatched; the test says so anyway.
        self.release_many = query(
            "DELETE FROM {locks} AS l USING ("
            " SELECT l2.key FROM {locks} AS l2"
            " JOIN unnest(%(keys)s::text[], %(tokens)s::text[]) AS r(key, token)"
            " ON l2.key = r.key AND l2.token = r.token"
            " WHERE NOT l2.dispatched"
            " ORDER BY l2.key FOR UPDATE OF l2"
            ") AS mine WHERE l.key = mine.key",
            **ids,
        )
        self.get_marks = query(
            "SELECT name, value FROM {marks} WHERE name = ANY(%(names)s::text[])", **ids
        )
        # Sorted by name so concurrent advances lock rows in one order (no deadlock); the
        # WHERE skips writing a row version when nothing moves.
        self.advance_marks = query(
            "INSERT INTO {marks} AS w (name, value)"
            " SELECT name, value FROM unnest(%(names)s::text[], %(values)s::int8[])"
            " AS m(name, value) ORDER BY name"
            " ON CONFLICT (name) DO UPDATE SET value = GREATEST(w.value, EXCLUDED.value)"
            " WHERE EXCLUDED.value > w.value",
            **ids,
        )
        # PG5: the inner SELECT walks the kept_until index and skips rows another session
        # has locked; the outer condition re-checks a row that was taken over meanwhile.
        # Both ends are tested: a row without a kept_until (the epoch, PG9) is kept for
        # its lease.
        self.cleanup = query(
            "DELETE FROM {locks} AS l USING ("
            " SELECT key FROM {locks}"
            " WHERE kept_until < clock_timestamp() - %(grace)s * interval '1 second'"
            " AND expires_at < clock_timestamp() - %(grace)s * interval '1 second'"
            " ORDER BY kept_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
            ") AS old"
            " WHERE l.key = old.key"
            " AND l.kept_until < clock_timestamp() - %(grace)s * interval '1 second'"
            " AND l.expires_at < clock_timestamp() - %(grace)s * interval '1 second'",
            **ids,
        )
